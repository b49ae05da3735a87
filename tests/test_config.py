"""Configuration is checked at init_app: the key is named, the fix is given, secrets are masked."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from flask import Flask

from flask_clerk_security import ClerkSecurity, ConfigurationError
from flask_clerk_security.config import frontend_api_from_publishable_key, mask_secret
from flask_clerk_security.testing import ClerkTestIssuer

SECRET = "sk_live_" + "a1B2c3D4" * 5


def init(config: dict[str, Any], monkeypatch: pytest.MonkeyPatch | None = None, **options: Any) -> Flask:
    app = Flask("config_test")
    app.config.update(config)
    ClerkSecurity(app, **options)
    return app


def error_for(config: dict[str, Any], **options: Any) -> str:
    with pytest.raises(ConfigurationError) as info:
        init(config, **options)
    return str(info.value)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("CLERK_"):
            monkeypatch.delenv(key)


def test_no_key_names_both_keys_and_the_fix() -> None:
    message = error_for({})
    assert "CLERK_SECRET_KEY" in message and "CLERK_JWT_KEY" in message and "Fix:" in message


@pytest.mark.parametrize("value", ["sk_prod_Zq9xY8w7V6u5", "sk_live_", "Zq9xY8w7V6u5T4s3", "sk_live_Zq9x Y8w7V6u5"])
def test_malformed_secret_key(value: str) -> None:
    message = error_for({"CLERK_SECRET_KEY": value})
    assert "CLERK_SECRET_KEY" in message and "Fix:" in message
    assert "Zq9x" not in message


def test_secret_key_is_never_printed_whole() -> None:
    pk = "pk_test_" + base64.b64encode(b"clerk.example.com$").decode()
    message = error_for({"CLERK_SECRET_KEY": SECRET, "CLERK_PUBLISHABLE_KEY": pk})
    assert "test key" in message and "live key" in message
    assert SECRET not in message
    assert "sk_live_****D4a1"[:9] in message and SECRET[-4:] in message


def test_mask_secret() -> None:
    assert mask_secret(SECRET) == f"sk_live_****{SECRET[-4:]}"
    assert mask_secret("whsec_c2VjcmV0c2VjcmV0c2VjcmV0") == "whsec_****cmV0"
    assert mask_secret("sk_test_abc") == "sk_test_****"
    assert mask_secret(None) == "<unset>"


@pytest.mark.parametrize(
    ("key", "host"),
    [
        ("pk_test_" + base64.b64encode(b"clerk.example.com$").decode(), "clerk.example.com"),
        ("pk_live_" + base64.b64encode(b"clerk.example.com$").decode().rstrip("="), "clerk.example.com"),
        ("pk_test_" + base64.b64encode(b"happy-cat-1.clerk.accounts.dev$").decode(), "happy-cat-1.clerk.accounts.dev"),
    ],
)
def test_publishable_key_decodes_to_the_frontend_api(key: str, host: str) -> None:
    assert frontend_api_from_publishable_key(key) == host


@pytest.mark.parametrize(
    "payload", [b"clerk.example.com", b"clerk.example.com$$", b"localhost$", b"\xff\xfe$", b"clerk example.com$"]
)
def test_publishable_key_that_is_not_a_host_fails_at_init(payload: bytes, clerk_issuer: ClerkTestIssuer) -> None:
    key = "pk_test_" + base64.b64encode(payload).decode()
    message = error_for({"CLERK_JWT_KEY": clerk_issuer.public_pem, "CLERK_PUBLISHABLE_KEY": key})
    assert "CLERK_PUBLISHABLE_KEY" in message


def test_jwt_key_must_be_an_rsa_pem(clerk_issuer: ClerkTestIssuer) -> None:
    assert "CLERK_JWT_KEY" in error_for({"CLERK_JWT_KEY": "not a pem"})
    escaped = clerk_issuer.public_pem.replace("\n", "\\n")
    init({"CLERK_JWT_KEY": escaped})


def test_webhook_secret_format(clerk_issuer: ClerkTestIssuer) -> None:
    message = error_for({**clerk_issuer.config, "CLERK_WEBHOOK_SECRET": "whsec_not*base64"})
    assert "CLERK_WEBHOOK_SECRET" in message and "not*base64" not in message
    init({**clerk_issuer.config, "CLERK_WEBHOOK_SECRET": "whsec_" + base64.b64encode(b"x" * 24).decode()})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("CLERK_CLOCK_SKEW", "soon"),
        ("CLERK_CLOCK_SKEW", "-1"),
        ("CLERK_API_URL", "ftp://api.clerk.com"),
        ("CLERK_AUTHORIZED_PARTIES", '{"a": 1}'),
        ("CLERK_AUTHORIZED_PARTIES", "https://app.example.com/path"),
        ("CLERK_AUTHORIZED_PARTIES", "[1, 2]"),
        ("CLERK_TOKEN_CACHE_SIZE", "-5"),
        ("CLERK_SIGN_IN_URL", "sign-in"),
    ],
)
def test_bad_values_name_the_key(clerk_issuer: ClerkTestIssuer, key: str, value: str) -> None:
    assert key in error_for({**clerk_issuer.config, key: value})


def test_options_win_over_config_which_wins_over_environment(
    clerk_issuer: ClerkTestIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLERK_AUTHORIZED_PARTIES", "https://env.example")
    monkeypatch.setenv("CLERK_CLOCK_SKEW", "7")
    app = init({**clerk_issuer.config, "CLERK_AUTHORIZED_PARTIES": "https://config.example"}, clock_skew=2)
    settings = app.extensions["clerk_security"].settings
    assert settings.authorized_parties == ("https://config.example",)
    assert settings.clock_skew == 2


def test_environment_is_the_fallback(clerk_issuer: ClerkTestIssuer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLERK_JWT_KEY", clerk_issuer.public_pem)
    monkeypatch.setenv("CLERK_AUTHORIZED_PARTIES", '["https://a.example", "https://b.example"]')
    settings = init({}).extensions["clerk_security"].settings
    assert settings.authorized_parties == ("https://a.example", "https://b.example")


def test_missing_authorized_parties_warns(clerk_issuer: ClerkTestIssuer, caplog: pytest.LogCaptureFixture) -> None:
    init(clerk_issuer.config)
    assert "CLERK_AUTHORIZED_PARTIES" in caplog.text


def test_accessors_fail_loudly_without_init_app() -> None:
    from flask_clerk_security import get_auth

    app = Flask("bare")
    with app.test_request_context("/"), pytest.raises(RuntimeError, match="init_app"):
        get_auth()
    with pytest.raises(RuntimeError, match="active request"):
        get_auth()
