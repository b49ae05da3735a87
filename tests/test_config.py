"""Configuration is checked at init_app: the key is named, the fix is given, secrets are masked."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from flask import Flask

from flask_clerk_security import ClerkSecurity, ConfigurationError, current_auth
from flask_clerk_security.clerk_keys import frontend_api_from_publishable_key
from flask_clerk_security.secret_values import Secret, SecretURI, mask_secret
from flask_clerk_security.testing import BackendAPIStandIn, ClerkTestIssuer, clerk_event

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
        ("CLERK_SIGN_UP_URL", "sign-up"),
        # Not a path, and not an absolute URL either (they started with "http", which was the whole check).
        ("CLERK_SIGN_IN_URL", "https:///sign-in"),
        ("CLERK_SIGN_IN_URL", "http:/primary.example.com/sign-in"),
        ("CLERK_SIGN_IN_URL", "httpfoo"),
        ("CLERK_SIGN_UP_URL", "https://[::1/sign-up"),
    ],
)
def test_bad_values_name_the_key(clerk_issuer: ClerkTestIssuer, key: str, value: str) -> None:
    assert key in error_for({**clerk_issuer.config, key: value})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("CLERK_MAX_BODY_BYTES", float("inf")),
        ("CLERK_TOKEN_CACHE_SIZE", float("inf")),
        ("CLERK_PUBLISHABLE_KEY", 5),
        ("CLERK_JWT_KEY", 5),
        ("CLERK_PUBLIC_ROUTES", 0),
        ("CLERK_PROXY_URL", "http://[::1/__clerk"),
        ("CLERK_DOMAIN", "satellite.test:99999"),
        ("CLERK_DOMAIN", "satellite.test:" + "9" * 5000),
    ],
    ids=["inf-bytes", "inf-cache", "int-publishable-key", "int-jwt-key", "int-routes", "ipv6-open", "port", "digits"],
)
def test_values_of_the_wrong_type_or_range_name_the_key(clerk_issuer: ClerkTestIssuer, key: str, value: Any) -> None:
    """A ConfigurationError naming the key, never an OverflowError, TypeError or ValueError from deeper down (an
    infinite size, a number where a string goes, an IPv6 URL without its closing bracket, a port past 65535)."""
    satellite = {"CLERK_IS_SATELLITE": True, "CLERK_SIGN_IN_URL": "https://primary.test/sign-in"}
    config = {**clerk_issuer.config, **(satellite if key == "CLERK_DOMAIN" else {})}
    assert key in error_for({**config, key: value})


def test_api_url_with_credentials_is_refused_without_showing_them(clerk_issuer: ClerkTestIssuer) -> None:
    """``https://user:password@host``: requests would send them as Basic auth instead of the secret key's Bearer
    (fetch refuses such a URL outright in Clerk's SDK), and every JWKS failure message, sent in
    x-clerk-auth-message and logged, would quote them."""
    message = error_for({**clerk_issuer.config, "CLERK_API_URL": "https://proxy:hunter2@api.clerk.com"})
    assert message.startswith("CLERK_API_URL must not hold a user name or password") and "Fix:" in message
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("config", "fix"),
    [
        ({"CLERK_API_URL": "https://api.clerk.com/v1"}, "https://api.clerk.com"),
        ({"CLERK_API_URL": "https://api.clerk.com/v1/"}, "https://api.clerk.com"),
        ({"CLERK_API_URL": "https://proxy.example/clerk/v2", "CLERK_API_VERSION": "v2"}, "https://proxy.example/clerk"),
    ],
)
def test_api_url_ending_in_the_api_version_is_refused(
    clerk_issuer: ClerkTestIssuer, config: dict[str, str], fix: str
) -> None:
    """The version is added to every call: ``https://api.clerk.com/v1`` would fetch ``/v1/v1/jwks`` (a 404, so
    every request a 503) instead of failing at start-up."""
    message = error_for({**clerk_issuer.config, **config})
    assert message.startswith("CLERK_API_URL ends with the API version") and f"Fix: set it to {fix}" in message


def test_api_url_with_a_trailing_slash_or_a_proxy_path_is_kept(clerk_issuer: ClerkTestIssuer) -> None:
    for url, kept in [("https://api.clerk.com/", "https://api.clerk.com"), ("https://p.example/clerk", None)]:
        app = init({**clerk_issuer.config, "CLERK_API_URL": url})
        assert app.extensions["clerk_security"].settings.api_url == (kept or url)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("clerk.example.com", "'clerk.example.com', which is not an http(s) URL"),
        ("https://clerk.example.com/", "'https://clerk.example.com/', which ends with '/'"),
        ("https://a.example, b.example", "'b.example', which is not an http(s) URL"),
    ],
)
def test_issuer_that_no_clerk_token_carries_is_refused(clerk_issuer: ClerkTestIssuer, value: str, problem: str) -> None:
    """A session token's ``iss`` is its Frontend API URL (``https://clerk.example.com``, no trailing slash): a bare
    host or a trailing slash refused every token at run time (``token-invalid-issuer``)."""
    message = error_for({**clerk_issuer.config, "CLERK_ISSUER": value})
    assert message.startswith(f"CLERK_ISSUER has {problem}") and "Fix: " in message


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


def test_satellite_auto_sync_without_a_satellite_warns(
    clerk_issuer: ClerkTestIssuer, caplog: pytest.LogCaptureFixture, fresh_warnings: None
) -> None:
    """Clerk reads ``satelliteAutoSync`` only on a satellite: without CLERK_IS_SATELLITE it does nothing."""
    init({**clerk_issuer.config, "CLERK_SATELLITE_AUTO_SYNC": "true"})
    assert "CLERK_SATELLITE_AUTO_SYNC is on but CLERK_IS_SATELLITE is not: it has no effect." in caplog.text
    caplog.clear()
    init({**clerk_issuer.config, "CLERK_SATELLITE_AUTO_SYNC": "false"})
    assert "CLERK_SATELLITE_AUTO_SYNC" not in caplog.text


def test_missing_authorized_parties_warns(
    clerk_issuer: ClerkTestIssuer, caplog: pytest.LogCaptureFixture, fresh_warnings: None
) -> None:
    init(clerk_issuer.config)
    assert "CLERK_AUTHORIZED_PARTIES" in caplog.text


def test_accessors_fail_loudly_without_init_app() -> None:
    from flask_clerk_security import get_auth

    app = Flask("bare")
    with app.test_request_context("/"), pytest.raises(RuntimeError, match="init_app"):
        get_auth()
    with pytest.raises(RuntimeError, match="active request"):
        get_auth()


# Secrets are held masked: no repr/str of anything the extension builds, and no log line, carries one


REDIS_PASSWORD = "hunter2-" + "Pa55word-k7Q"  # the server's default user is nopass: any password is accepted


def walk(root: Any) -> Iterator[Any]:
    """Every object reachable from ``root`` through the extension's own objects and containers.

    Objects of other libraries (Talisman, redis, svix, flask-limiter) are reached and yielded but not entered:
    an error reporter shows their ``repr``. A :class:`Secret` is yielded but not entered (its slot is the
    value, by design).
    """
    seen: set[int] = set()
    stack = [root]
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, (int, float, bool, type(None))):
            continue
        seen.add(id(item))
        yield item
        if isinstance(item, Secret):
            continue
        if isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        elif type(item).__module__.startswith("flask_clerk_security"):
            stack.extend(vars(item).values() if hasattr(item, "__dict__") else ())
            for slots in (getattr(cls, "__slots__", ()) for cls in type(item).__mro__):
                names = (slots,) if isinstance(slots, str) else slots
                stack.extend(getattr(item, name) for name in names if hasattr(item, name))


def test_no_repr_str_or_log_line_carries_a_secret(
    clerk_issuer: ClerkTestIssuer,
    clerk_backend_api: BackendAPIStandIn,
    redis_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    webhook_secret = clerk_issuer.webhook_secret
    machine_secret = "ak_" + "0123456789abcdef" * 2
    clerk_backend_api.machine_secret_key = machine_secret
    redis_uri = f"redis://default:{REDIS_PASSWORD}@127.0.0.1:6379/0"
    secrets = {
        "secret key": clerk_issuer.secret_key.removeprefix("sk_test_"),
        "webhook secret": webhook_secret.removeprefix("whsec_"),
        "machine secret": machine_secret.removeprefix("ak_"),
        "redis password": REDIS_PASSWORD,
    }
    app = Flask("every_feature")
    app.config.update(
        TESTING=False,
        SECRET_KEY="flask-session-secret",
        CLERK_FORCE_HTTPS=False,
        CLERK_PUBLISHABLE_KEY=clerk_issuer.publishable_key,
        CLERK_API_URL=clerk_backend_api.url,
        CLERK_ACCEPTS_TOKEN="any",
        CLERK_MACHINE_TOKEN_CACHE_TTL=5,
        CLERK_STORE_KEY_PREFIX=redis_prefix,
        RATELIMIT_KEY_PREFIX=redis_prefix,
    )
    clerk = ClerkSecurity(
        app,
        secret_key=clerk_issuer.secret_key,
        webhook_secret=webhook_secret,
        machine_secret_key=machine_secret,
        machine_token_cache_uri=redis_uri,
        ratelimit_storage_uri=redis_uri,
        webhook_store_uri=redis_uri,
    )
    app.register_blueprint(clerk.webhooks)
    received: list[str] = []

    @clerk.webhooks.on("user.created")
    def on_user(event: Any) -> None:
        received.append(event.id)

    @app.get("/api/limited")
    @clerk.limiter.limit("2 per minute")
    def limited() -> dict[str, str | None]:
        return {"user": current_auth.user_id}

    @app.get("/api/leak")
    def leak() -> dict[str, str]:
        return {"oops": clerk_issuer.secret_key}

    state = app.extensions["clerk_security"]
    with caplog.at_level(logging.DEBUG):
        client = app.test_client()
        session = clerk_issuer.auth_header()
        statuses = [client.get("/api/limited", headers=session).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        assert client.get("/api/limited").status_code == 401
        api_key = clerk_backend_api.mint_api_key()
        m2m = clerk_backend_api.mint_m2m_token()
        for token in (api_key, api_key, m2m, "ak_" + "f" * 32):
            client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        body, headers = clerk_issuer.sign_webhook(clerk_event("user.created"))
        for _ in range(2):  # the second is a replay
            assert client.post("/api/webhooks/clerk", data=body, headers=headers).status_code == 200
        assert client.post("/api/webhooks/clerk", data=body, headers={**headers, "svix-signature": "v1,x"}).status_code
        assert client.get("/api/leak", headers=session).status_code == 500
    assert len(received) == 1
    texts = [caplog.text]
    texts += [text for record in caplog.records for text in (str(record.__dict__), record.getMessage())]
    for item in [clerk, state, *walk(state), *walk(clerk), *walk(app.after_request_funcs)]:
        texts += [repr(item), str(item)]
    for text in texts:
        for name, value in secrets.items():
            assert value not in text, f"the {name} is in {text[:300]!r}"
    assert repr(state.settings.secret_key) == f"Secret('sk_test_****{clerk_issuer.secret_key[-4:]}')"
    assert str(state.settings.webhook_store_uri) == "redis://default:****@127.0.0.1:6379/0"
    assert state.settings.secret_key.reveal() == clerk_issuer.secret_key


def test_secret_holds_its_value_behind_reveal() -> None:
    held = Secret(SECRET)
    assert repr(held) == f"Secret('sk_live_****{SECRET[-4:]}')"
    assert str(held) == f"{held}" == f"sk_live_****{SECRET[-4:]}"
    assert held.reveal() == SECRET and held == Secret(SECRET) and held != Secret(SECRET + "x")
    assert held != SECRET  # never equal to a plain string: comparisons go through reveal()
    assert not Secret("") and Secret(held).reveal() == SECRET
    uri = SecretURI("rediss://user:p%40ss@cache.internal:6380/2?password=again")
    assert str(uri) == "rediss://user:****@cache.internal:6380/2?password=****"
    assert "p%40ss" not in repr(uri) and "again" not in repr(uri)
    assert str(SecretURI("memory://")) == "memory://"
    assert str(SecretURI("redis://:p@ss@host:6379/0")) == "redis://:****@host:6379/0"  # an unescaped @ too
    app = init({"CLERK_SECRET_KEY": held, "CLERK_JWT_KEY": None})  # a Secret in app.config is read too
    assert app.extensions["clerk_security"].settings.secret_key == held


# --------------------------------------------------------------------------------------------- issue 14 §1
@pytest.mark.parametrize(
    ("typo", "known"),
    [
        ("CLERK_SIGNIN_URL", "CLERK_SIGN_IN_URL"),
        ("CLERK_PUBLIC_ROUTE", "CLERK_PUBLIC_ROUTES"),
        ("CLERK_SECRETKEY", "CLERK_SECRET_KEY"),
    ],
)
def test_misspelled_config_key_warns_once_with_did_you_mean(
    typo: str, known: str, fresh_warnings: None, caplog: pytest.LogCaptureFixture
) -> None:
    issuer = ClerkTestIssuer()
    with caplog.at_level(logging.WARNING, logger="flask_clerk_security"):
        for _ in range(3):
            init({**issuer.config, typo: "/x"})
    warnings = [r.getMessage() for r in caplog.records if typo in r.getMessage()]
    said = f"{typo} in app.config is not a flask-clerk-security setting and is ignored. Did you mean {known}?"
    assert warnings == [said]


def test_misspelled_environment_key_warns_but_foreign_clerk_variables_do_not(
    fresh_warnings: None, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLERK_PUBLISHABLE_KY", "pk_test_x")
    monkeypatch.setenv("CLERK_TELEMETRY_DISABLED", "1")  # read by Clerk's JavaScript SDKs, not by us
    with caplog.at_level(logging.WARNING, logger="flask_clerk_security"):
        init(ClerkTestIssuer().config)
    assert "CLERK_PUBLISHABLE_KY in the environment is not a flask-clerk-security setting" in caplog.text
    assert "Did you mean CLERK_PUBLISHABLE_KEY?" in caplog.text
    assert "CLERK_TELEMETRY_DISABLED" not in caplog.text


def test_known_keys_are_the_settings_fields() -> None:
    from dataclasses import fields

    from flask_clerk_security.settings import KNOWN_KEYS, ClerkSettings

    assert {f"CLERK_{f.name.upper()}" for f in fields(ClerkSettings)} - KNOWN_KEYS == {"CLERK_FRONTEND_API"}
    assert {"CLERK_SECRET_KEY", "CLERK_SIGN_IN_URL", "CLERK_CHECK_IGNORE"} <= KNOWN_KEYS


def test_every_key_the_package_reads_is_known() -> None:
    import re
    from pathlib import Path

    import flask_clerk_security
    from flask_clerk_security.settings import KNOWN_KEYS

    package = Path(flask_clerk_security.__file__).parent
    read = set()
    for path in package.rglob("*.py"):
        read |= set(re.findall(r"""(?:get|parse)\(\s*["'](CLERK_[A-Z0-9_]+)["']""", path.read_text()))
    assert read and read <= KNOWN_KEYS, read - KNOWN_KEYS


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (SECRET + "\n", "CLERK_SECRET_KEY has a trailing newline"),
        (SECRET + "\r\n", "CLERK_SECRET_KEY has a trailing newline"),
        (" " + SECRET, "CLERK_SECRET_KEY has a leading space"),
        (SECRET + "\t", "CLERK_SECRET_KEY has a trailing tab"),
        (f'"{SECRET}"', "CLERK_SECRET_KEY has a quote (\") at its start. Fix: remove the quotes"),
        (f"'{SECRET}'", "CLERK_SECRET_KEY has a quote (') at its start. Fix: remove the quotes"),
    ],
)
def test_secret_key_with_whitespace_or_quotes_says_so(value: str, said: str) -> None:
    message = error_for({"CLERK_SECRET_KEY": value})
    assert message.startswith(said)
    assert "\n" not in message and "\r" not in message
    assert SECRET[8:] not in message and SECRET[-4:] not in message


def test_publishable_key_and_webhook_secret_with_a_trailing_newline_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    issuer = ClerkTestIssuer()
    monkeypatch.setenv("CLERK_PUBLISHABLE_KEY", issuer.publishable_key + "\n")
    assert error_for({"CLERK_JWT_KEY": issuer.public_pem}).startswith("CLERK_PUBLISHABLE_KEY has a trailing newline")
    monkeypatch.delenv("CLERK_PUBLISHABLE_KEY")
    message = error_for({**issuer.config, "CLERK_WEBHOOK_SECRET": issuer.webhook_secret + "\n"})
    assert message.startswith("CLERK_WEBHOOK_SECRET has a trailing newline") and issuer.webhook_secret not in message


def test_pem_jwt_key_keeps_its_trailing_newline_but_not_quotes() -> None:
    issuer = ClerkTestIssuer()
    init({**issuer.config, "CLERK_JWT_KEY": issuer.public_pem + "\n"})
    message = error_for({**issuer.config, "CLERK_JWT_KEY": f'"{issuer.public_pem}"'})
    assert message.startswith('CLERK_JWT_KEY has a quote (") at its start. Fix: remove the quotes')


@pytest.mark.parametrize(
    ("key", "uri", "problem"),
    [
        ("CLERK_RATELIMIT_STORAGE_URI", "redis://:hunter2@127.0.0.1:63x9/0", "its port is not a number"),
        ("RATELIMIT_STORAGE_URI", "redis://127.0.0.1:99999/0", "its port is not a number"),
        ("CLERK_WEBHOOK_STORE_URI", "redis://:hunter2@127.0.0.1:6379/zero", "its database"),
        ("CLERK_MACHINE_TOKEN_CACHE_URI", "redis://user:hunter2/0", "its port is not a number"),
        ("CLERK_MACHINE_TOKEN_CACHE_URI", "rediss://:6379/0", "it has no host"),
        ("CLERK_RATELIMIT_STORAGE_URI", "redis://:hunter2@[::1:6379/0", "its host is not a host"),
    ],
)
def test_bad_redis_uri_names_the_key(key: str, uri: str, problem: str) -> None:
    issuer = ClerkTestIssuer()
    config = {**issuer.config, "CLERK_WEBHOOK_SECRET": issuer.webhook_secret, "CLERK_MACHINE_TOKEN_CACHE_TTL": 5}
    message = error_for({**config, key: uri})
    assert message.startswith(f"{key} is not a valid Redis URI: {problem}") and "Fix:" in message
    assert "hunter2" not in message


def test_clerk_keys_changed_after_init_app_warn_on_the_first_request(
    clerk_issuer: ClerkTestIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    """The settings are read once, by init_app: a later ``app.config["CLERK_AUTHORIZED_PARTIES"] = [...]`` did
    nothing, silently (any azp stayed accepted). The first request now names the changed keys, never values."""
    app = Flask(__name__)
    app.config.update(clerk_issuer.config, TESTING=True, CLERK_PUBLIC_ROUTES=["/health"])
    ClerkSecurity(app)
    app.add_url_rule("/api/me", "me", lambda: {"user": current_auth.user_id})
    app.config["CLERK_AUTHORIZED_PARTIES"] = ["https://app.example.com"]
    app.config["CLERK_PUBLIC_ROUTES"].append("/docs")
    client = app.test_client()
    with caplog.at_level(logging.WARNING, logger="flask_clerk_security"):
        assert client.get("/api/me", headers=clerk_issuer.auth_header()).status_code == 200
        assert client.get("/api/me", headers=clerk_issuer.auth_header()).status_code == 200
    warnings = [r.getMessage() for r in caplog.records if "after ClerkSecurity.init_app" in r.getMessage()]
    assert warnings == [
        "CLERK_AUTHORIZED_PARTIES, CLERK_PUBLIC_ROUTES changed in app.config after ClerkSecurity.init_app read it, so "
        "the change has no effect. Fix: set CLERK_* keys before ClerkSecurity(app) / clerk.init_app(app) (in the app "
        "factory, before init_app)"
    ]
    assert clerk_issuer.secret_key not in caplog.text


def test_unchanged_clerk_keys_do_not_warn(clerk_issuer: ClerkTestIssuer, caplog: pytest.LogCaptureFixture) -> None:
    app = Flask(__name__)
    app.config.update(clerk_issuer.config, TESTING=True)
    ClerkSecurity(app)
    app.add_url_rule("/api/me", "me", lambda: {"user": current_auth.user_id})
    app.config["OTHER"] = 1
    with caplog.at_level(logging.WARNING, logger="flask_clerk_security"):
        app.test_client().get("/api/me")
    assert "after ClerkSecurity.init_app" not in caplog.text


def test_a_second_init_app_on_one_app_raises(clerk_issuer: ClerkTestIssuer) -> None:
    """A second ClerkSecurity(app) (or init_app twice) installed every hook again and silently replaced the first
    one's settings (its public routes, its authorized parties)."""
    app = Flask(__name__)
    app.config.update(clerk_issuer.config)
    clerk = ClerkSecurity(app)
    hooks = list(app.before_request_funcs[None])
    with pytest.raises(ConfigurationError, match="already set up on this app"):
        clerk.init_app(app)
    with pytest.raises(ConfigurationError, match="already set up on this app"):
        ClerkSecurity(app, public_routes=["/(.*)"])
    assert app.before_request_funcs[None] == hooks
