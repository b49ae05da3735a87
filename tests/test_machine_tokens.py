"""Machine tokens (API keys, M2M, OAuth) against the Backend API stand-in over real HTTP on 127.0.0.1."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from flask_clerk_security import ClerkSecurity, ConfigurationError, current_auth
from flask_clerk_security.extension import get_state
from flask_clerk_security.machine import is_machine_token, machine_token_type
from flask_clerk_security.testing import BackendAPIStandIn, ClerkTestIssuer, StandInRequest

from .conftest import REDIS_URL

ORIGIN = "http://localhost:5000"
MachineApp = Callable[..., Flask]


def _auth_json() -> dict[str, Any]:
    auth = current_auth
    return {
        "token_type": auth.token_type,
        "id": auth.id,
        "subject": auth.subject,
        "scopes": auth.scopes,
        "claims": dict(auth.claims) if auth.claims is not None else None,
        "name": auth.name,
        "user_id": auth.user_id,
        "org_id": auth.org_id,
        "machine_id": auth.machine_id,
        "client_id": auth.client_id,
        "has": auth.has(permission="org:x:read"),
    }


@pytest.fixture
def make_app(clerk_issuer: ClerkTestIssuer, clerk_backend_api: BackendAPIStandIn) -> MachineApp:
    """An app whose keys come from the stand-in over HTTP, with one route per ``accepts_token`` shape."""

    def build(config: dict[str, Any] | None = None, **options: Any) -> Flask:
        app = Flask("machine_app")
        app.config.update(
            TESTING=True,
            CLERK_SECRET_KEY=clerk_issuer.secret_key,
            CLERK_PUBLISHABLE_KEY=clerk_issuer.publishable_key,
            CLERK_API_URL=clerk_backend_api.url,
            CLERK_HTTP_TIMEOUT=2,
        )
        app.config.update(config or {})
        clerk = ClerkSecurity(app, **options)

        @app.get("/api/me")
        def me() -> dict[str, Any]:
            return _auth_json()

        @app.get("/api/keys")
        @clerk.require(accepts_token="api_key")
        def keys() -> dict[str, Any]:
            return _auth_json()

        @app.get("/api/m2m")
        @clerk.require(accepts_token="m2m_token")
        def m2m() -> dict[str, Any]:
            return _auth_json()

        @app.get("/api/oauth")
        @clerk.require(accepts_token="oauth_token")
        def oauth() -> dict[str, Any]:
            return _auth_json()

        @app.get("/api/any")
        @clerk.require(accepts_token="any")
        def any_token() -> dict[str, Any]:
            return _auth_json()

        @app.get("/api/mixed")
        @clerk.require(accepts_token=["session_token", "api_key"])
        def mixed() -> dict[str, Any]:
            return _auth_json()

        @app.get("/api/machines")
        @clerk.require(accepts_token=["api_key", "m2m_token"])
        def machines() -> dict[str, Any]:
            return _auth_json()

        @app.get("/api/reports")
        @clerk.require(accepts_token="any", scopes=["reports:read", "reports:list"])
        def reports() -> dict[str, Any]:
            return _auth_json()

        @app.get("/api/admin")
        @clerk.require(accepts_token="api_key", permission="org:x:read")
        def admin() -> dict[str, Any]:
            return _auth_json()

        @app.get("/api/async")
        @clerk.require(accepts_token="api_key")
        async def async_view() -> dict[str, Any]:
            return {"subject": current_auth.subject}

        return app

    return build


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def verify_calls(stand_in: BackendAPIStandIn) -> list[StandInRequest]:
    return [call for call in stand_in.calls if call.path.endswith("/verify")]


# -- detection ---------------------------------------------------------------------------------------------------


def test_detection_matches_clerk(clerk_issuer: ClerkTestIssuer) -> None:
    session = clerk_issuer.session_token()
    both = clerk_issuer.sign({"sub": "mch_1", "exp": 2**31}, headers={"typ": "at+jwt"})
    cases = {
        "ak_abc": "api_key",
        "mt_abc": "m2m_token",
        "oat_abc": "oauth_token",
        clerk_issuer.m2m_jwt(): "m2m_token",
        clerk_issuer.m2m_jwt(category=None): "m2m_token",
        clerk_issuer.oauth_jwt(): "oauth_token",
        clerk_issuer.oauth_jwt(typ="application/at+jwt"): "oauth_token",
        both: "m2m_token",  # Clerk tests the M2M form first
        session: None,
        "sk_test_abc": None,
        "a.b.c": None,
        "": None,
    }
    for token, expected in cases.items():
        assert machine_token_type(token) == expected, token[:20]
        assert is_machine_token(token) == (expected is not None)


# -- each type where it is accepted, and refused where it is not ---------------------------------------------------


def test_api_key_is_verified_with_the_backend_api(make_app: MachineApp, clerk_backend_api: BackendAPIStandIn) -> None:
    client = make_app().test_client()
    user_key = clerk_backend_api.mint_api_key(subject="user_42", scopes=["a"], name="ci", claims={"env": "ci"})
    org_key = clerk_backend_api.mint_api_key(subject="org_7")

    body = client.get("/api/keys", headers=bearer(user_key)).get_json()
    record = clerk_backend_api.machine_tokens[user_key].resource
    assert body == {
        "token_type": "api_key",
        "id": record["id"],
        "subject": "user_42",
        "scopes": ["a"],
        "claims": {"env": "ci"},
        "name": "ci",
        "user_id": "user_42",
        "org_id": None,
        "machine_id": None,
        "client_id": None,
        "has": False,
    }
    org = client.get("/api/keys", headers=bearer(org_key)).get_json()
    assert (org["user_id"], org["org_id"]) == (None, "org_7")

    call = verify_calls(clerk_backend_api)[0]
    assert (call.method, call.path, call.json) == ("POST", "/api_keys/verify", {"secret": user_key})
    assert call.headers["Authorization"] == f"Bearer {clerk_backend_api.secret_key}"


def test_m2m_and_oauth_tokens_are_verified(make_app: MachineApp, clerk_backend_api: BackendAPIStandIn) -> None:
    client = make_app().test_client()
    m2m = clerk_backend_api.mint_m2m_token(machine_id="mch_billing", scopes=["mch_api"], claims={"tier": 2})
    oauth = clerk_backend_api.mint_oauth_token(user_id="user_9", client_id="client_cli", scopes=["profile"])

    body = client.get("/api/m2m", headers=bearer(m2m)).get_json()
    assert body["token_type"] == "m2m_token"
    assert (body["machine_id"], body["subject"], body["scopes"], body["claims"]) == (
        "mch_billing",
        "mch_billing",
        ["mch_api"],
        {"tier": 2},
    )
    body = client.get("/api/oauth", headers=bearer(oauth)).get_json()
    assert body["token_type"] == "oauth_token"
    assert (body["user_id"], body["client_id"], body["scopes"], body["has"]) == (
        "user_9",
        "client_cli",
        ["profile"],
        False,
    )

    paths = [(call.path, call.json) for call in verify_calls(clerk_backend_api)]
    assert paths == [
        ("/m2m_tokens/verify", {"token": m2m}),
        ("/oauth_applications/access_tokens/verify", {"access_token": oauth}),
    ]


def test_machine_tokens_are_refused_where_not_accepted(
    make_app: MachineApp, clerk_backend_api: BackendAPIStandIn, clerk_issuer: ClerkTestIssuer
) -> None:
    client = make_app().test_client()
    tokens = {
        "api_key": clerk_backend_api.mint_api_key(),
        "m2m_token": clerk_backend_api.mint_m2m_token(),
        "oauth_token": clerk_backend_api.mint_oauth_token(),
        "m2m_jwt": clerk_issuer.m2m_jwt(category=None),
        "oauth_jwt": clerk_issuer.oauth_jwt(),
    }
    routes = {
        "api_key": ["/api/me", "/api/m2m", "/api/oauth"],
        "m2m_token": ["/api/me", "/api/keys", "/api/oauth", "/api/mixed"],
        "oauth_token": ["/api/me", "/api/keys", "/api/m2m", "/api/machines"],
        "m2m_jwt": ["/api/me", "/api/keys", "/api/oauth"],
        "oauth_jwt": ["/api/me", "/api/keys", "/api/m2m"],
    }
    for name, paths in routes.items():
        for path in paths:
            response = client.get(path, headers=bearer(tokens[name]))
            assert response.status_code == 401, (name, path)
            assert response.get_json() == {"error": "unauthorized"}
            # A session-only route reads an opaque token as a malformed session JWT, as Clerk does.
            expected = "token-invalid" if path == "/api/me" and "jwt" not in name else "token-type-mismatch"
            assert response.headers["x-clerk-auth-reason"] == expected, (name, path)
    assert verify_calls(clerk_backend_api) == [], "a token of the wrong type must not reach the Backend API"


def test_session_tokens_and_token_lists(
    make_app: MachineApp, clerk_backend_api: BackendAPIStandIn, clerk_issuer: ClerkTestIssuer
) -> None:
    client = make_app().test_client()
    session = clerk_issuer.auth_header(azp=ORIGIN)
    for path in ("/api/me", "/api/any", "/api/mixed"):
        body = client.get(path, headers=session).get_json()
        assert (body["token_type"], body["user_id"]) == ("session_token", "user_123"), path
    for path in ("/api/keys", "/api/machines"):
        response = client.get(path, headers=session)
        assert response.status_code == 401
        assert response.headers["x-clerk-auth-reason"] == "token-type-mismatch"

    key = clerk_backend_api.mint_api_key()
    m2m = clerk_backend_api.mint_m2m_token()
    for path, token in (("/api/any", key), ("/api/any", m2m), ("/api/mixed", key), ("/api/machines", m2m)):
        assert client.get(path, headers=bearer(token)).status_code == 200, path
    assert client.get("/api/async", headers=bearer(key)).get_json() == {"subject": "user_123"}


def test_machine_tokens_come_from_the_header_only(
    make_app: MachineApp, clerk_backend_api: BackendAPIStandIn, clerk_issuer: ClerkTestIssuer
) -> None:
    client = make_app({"CLERK_SIGN_IN_URL": "/sign-in"}).test_client()
    key = clerk_backend_api.mint_api_key()
    client.set_cookie("__session", key)
    client.set_cookie("__client_uat", str(int(time.time()) - 10))
    for path in ("/api/keys", "/api/any", "/api/mixed"):
        assert client.get(path).status_code == 401, path
    assert verify_calls(clerk_backend_api) == []

    # A browser navigation to a machine-only route is refused, not sent to a sign-in page it cannot use.
    page = client.get("/api/keys", headers={"Sec-Fetch-Dest": "document"})
    assert page.status_code == 401
    assert page.headers["x-clerk-auth-reason"] == "No token in header"
    assert client.get("/api/me", headers={"Sec-Fetch-Dest": "document"}).status_code == 307

    # Routes that take sessions still take the cookie session.
    for name, value in clerk_issuer.session_cookies(azp=ORIGIN).items():
        client.set_cookie(name, value)
    assert client.get("/api/mixed").get_json()["user_id"] == "user_123"
    assert client.get("/api/keys").status_code == 401


def test_app_default_accepts_token(
    make_app: MachineApp, clerk_backend_api: BackendAPIStandIn, clerk_issuer: ClerkTestIssuer
) -> None:
    key = clerk_backend_api.mint_api_key(subject="user_5")
    for app in (
        make_app(accepts_token=["session_token", "api_key"]),
        make_app({"CLERK_ACCEPTS_TOKEN": "session_token, api_key"}),
        make_app({"CLERK_ACCEPTS_TOKEN": '["session_token", "api_key"]'}),
    ):
        client = app.test_client()
        assert client.get("/api/me", headers=bearer(key)).get_json()["user_id"] == "user_5"
        assert client.get("/api/me", headers=clerk_issuer.auth_header(azp=ORIGIN)).status_code == 200
        # A route's own accepts_token overrides the default.
        assert client.get("/api/m2m", headers=bearer(key)).status_code == 401
    only_keys = make_app(accepts_token="api_key").test_client()
    assert only_keys.get("/api/me", headers=clerk_issuer.auth_header(azp=ORIGIN)).status_code == 401
    assert only_keys.get("/api/me", headers=bearer(key)).status_code == 200


# -- misuse fails loudly ------------------------------------------------------------------------------------------


def test_misconfiguration_fails_loudly(make_app: MachineApp, clerk_issuer: ClerkTestIssuer) -> None:
    for bad in ("apikey", "session_token,apikey", '{"api_key": 1}', "[]"):
        with pytest.raises(ConfigurationError, match="CLERK_ACCEPTS_TOKEN"):
            make_app({"CLERK_ACCEPTS_TOKEN": bad})
    with pytest.raises(ConfigurationError, match="CLERK_MACHINE_TOKEN_CACHE_URI"):
        make_app({"CLERK_MACHINE_TOKEN_CACHE_TTL": 5, "CLERK_MACHINE_TOKEN_CACHE_URI": "memcached://x"})
    with pytest.raises(ConfigurationError, match="CLERK_MACHINE_TOKEN_CACHE_TTL"):
        make_app({"CLERK_MACHINE_TOKEN_CACHE_TTL": "-1"})
    networkless = Flask("networkless")
    networkless.config.update(clerk_issuer.config)
    with pytest.raises(ConfigurationError, match="CLERK_SECRET_KEY"):
        ClerkSecurity(networkless, accepts_token="api_key")
    networkless.config["CLERK_MACHINE_SECRET_KEY"] = "ak_" + "m" * 32
    ClerkSecurity(networkless, accepts_token="m2m_token")  # M2M verification can use the machine secret

    clerk = ClerkSecurity()
    with pytest.raises(ValueError, match="apikey"):
        clerk.require(accepts_token="apikey")
    with pytest.raises(ValueError, match="unknown"):
        clerk.require(accepts_token=[])
    with pytest.raises(TypeError, match="scopes"):
        clerk.require(accepts_token="api_key", scopes="read")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sessions have no scopes"):
        clerk.require(accepts_token="session_token", scopes=["read"])


def test_which_machine_tokens_need_the_secret_key(clerk_issuer: ClerkTestIssuer) -> None:
    # API keys and OAuth tokens are verified with CLERK_SECRET_KEY; M2M tokens can use CLERK_MACHINE_SECRET_KEY.
    def start(accepts: str, machine_secret_key: str | None = None) -> None:
        app = Flask("keys")
        app.config.update(clerk_issuer.config)
        if machine_secret_key:
            app.config["CLERK_MACHINE_SECRET_KEY"] = machine_secret_key
        ClerkSecurity(app, accepts_token=accepts)

    machine_key = "ak_" + "m" * 32
    start("m2m_token", machine_key)
    needs_secret_key = [("m2m_token", None), ("api_key", machine_key), ("oauth_token", machine_key)]
    for accepts, key in [*needs_secret_key, ("any", machine_key)]:
        with pytest.raises(ConfigurationError, match="CLERK_SECRET_KEY"):
            start(accepts, key)


def test_a_one_second_cache_still_caches(make_app: MachineApp, clerk_backend_api: BackendAPIStandIn) -> None:
    client = make_app({"CLERK_MACHINE_TOKEN_CACHE_TTL": 1}).test_client()
    key = clerk_backend_api.mint_api_key()
    for _ in range(2):
        assert client.get("/api/keys", headers=bearer(key)).status_code == 200
    assert len(verify_calls(clerk_backend_api)) == 1


# -- scopes and has() ----------------------------------------------------------------------------------------------


def test_scopes_must_all_be_granted(
    make_app: MachineApp, clerk_backend_api: BackendAPIStandIn, clerk_issuer: ClerkTestIssuer
) -> None:
    client = make_app().test_client()
    both = ["reports:read", "reports:list"]
    assert client.get("/api/reports", headers=bearer(clerk_backend_api.mint_api_key(scopes=both))).status_code == 200
    assert client.get("/api/reports", headers=bearer(clerk_issuer.m2m_jwt(scopes=[*both, "x"]))).status_code == 200
    assert client.get("/api/reports", headers=bearer(clerk_issuer.oauth_jwt(scopes=both))).status_code == 200
    for token in (
        clerk_backend_api.mint_api_key(scopes=["reports:read"]),
        clerk_backend_api.mint_oauth_token(scopes=[]),
        clerk_issuer.m2m_jwt(scopes=["reports:list"]),
    ):
        response = client.get("/api/reports", headers=bearer(token))
        assert response.status_code == 403
        assert response.get_json() == {"error": "forbidden"}
    # Sessions carry no scopes: a scoped route refuses them even when it accepts any token type.
    assert client.get("/api/reports", headers=clerk_issuer.auth_header(azp=ORIGIN)).status_code == 403
    # has() is False for machines, so permission requirements refuse them.
    admin_key = clerk_backend_api.mint_api_key(subject="org_1", scopes=["org:x:read"])
    assert client.get("/api/admin", headers=bearer(admin_key)).status_code == 403


def test_missing_scopes_send_authorization_denied(
    make_app: MachineApp, clerk_backend_api: BackendAPIStandIn, clerk_issuer: ClerkTestIssuer
) -> None:
    from flask_clerk_security import signals

    app = make_app()
    events: list[dict[str, Any]] = []

    def receiver(sender: Any, **data: Any) -> None:
        events.append({"sender": sender, **data})

    key = clerk_backend_api.mint_api_key(subject="user_scoped", scopes=["reports:read"])
    granted = clerk_backend_api.mint_api_key(scopes=["reports:read", "reports:list"])
    with signals.authorization_denied.connected_to(receiver):
        assert app.test_client().get("/api/reports", headers=bearer(granted)).status_code == 200
        assert app.test_client().get("/api/reports", headers=bearer(key)).status_code == 403
    requirement = {"scopes": ["reports:read", "reports:list"]}
    assert events == [{"sender": app, "user_id": "user_scoped", "requirement": requirement}]


def test_session_claims_are_the_verified_payload(make_app: MachineApp, clerk_issuer: ClerkTestIssuer) -> None:
    claims = clerk_issuer.session_claims(azp=ORIGIN)
    body = make_app().test_client().get("/api/me", headers=bearer(clerk_issuer.sign(claims))).get_json()
    assert body["claims"] == claims


def test_refused_machine_tokens_keep_their_token_type(
    make_app: MachineApp, clerk_backend_api: BackendAPIStandIn, clerk_issuer: ClerkTestIssuer
) -> None:
    # Clerk's signed-out auth object of a refused machine token still says which kind of token it was.
    app = make_app()

    @app.errorhandler(401)
    def signed_out(_: Exception) -> tuple[dict[str, Any], int]:
        return {"token_type": current_auth.token_type, "reason": current_auth.reason}, 401

    client = app.test_client()
    revoked = clerk_backend_api.mint_api_key()
    clerk_backend_api.revoke(revoked)
    expired_m2m = clerk_backend_api.mint_m2m_token(expires_in=-5)
    expired_oauth = clerk_backend_api.mint_oauth_token(expires_in=-5)
    cases = [
        ("/api/any", revoked, {"token_type": "api_key", "reason": "token-invalid"}),
        ("/api/any", expired_m2m, {"token_type": "m2m_token", "reason": "token-expired"}),
        ("/api/any", expired_oauth, {"token_type": "oauth_token", "reason": "token-expired"}),
        ("/api/keys", clerk_backend_api.mint_m2m_token(), {"token_type": "api_key", "reason": "token-type-mismatch"}),
        ("/api/keys", None, {"token_type": "api_key", "reason": "No token in header"}),
    ]
    for path, token, expected in cases:
        response = client.get(path, headers=bearer(token) if token else {})
        assert (response.status_code, response.get_json()) == (401, expected), path


# -- Backend API answers: 401, 404, 5xx, timeouts, slow server ---------------------------------------------------


def test_backend_api_401_is_a_secret_key_problem(
    make_app: MachineApp, clerk_backend_api: BackendAPIStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    key = clerk_backend_api.mint_api_key()
    wrong = "sk_test_" + "w" * 40
    client = make_app({"CLERK_SECRET_KEY": wrong}).test_client()
    with caplog.at_level(logging.ERROR, logger="flask_clerk_security"):
        response = client.get("/api/keys", headers=bearer(key))
    assert response.status_code == 503
    assert response.get_json() == {"error": "auth_unavailable"}
    assert response.headers["Retry-After"]
    assert len(verify_calls(clerk_backend_api)) == 1, "a refused secret key is not retried"
    assert "CLERK_SECRET_KEY" in caplog.text and "sk_test_****wwww" in caplog.text
    assert key not in caplog.text and wrong not in caplog.text


def test_unknown_revoked_and_expired_tokens_are_401(make_app: MachineApp, clerk_backend_api: BackendAPIStandIn) -> None:
    client = make_app().test_client()
    revoked = clerk_backend_api.mint_api_key()
    clerk_backend_api.revoke(revoked)
    expired_m2m = clerk_backend_api.mint_m2m_token(expires_in=-5)
    expired_oauth = clerk_backend_api.mint_oauth_token(expires_in=-5)
    cases = [
        ("/api/keys", "ak_unknown", "token-invalid"),
        ("/api/keys", revoked, "token-invalid"),
        ("/api/m2m", expired_m2m, "token-expired"),
        ("/api/oauth", expired_oauth, "token-expired"),
    ]
    for path, token, reason in cases:
        response = client.get(path, headers=bearer(token))
        assert response.status_code == 401, token[:8]
        assert response.headers["x-clerk-auth-reason"] == reason


def test_expiration_is_checked_even_when_the_backend_api_says_not_expired(
    make_app: MachineApp, clerk_backend_api: BackendAPIStandIn
) -> None:
    client = make_app().test_client()
    key = clerk_backend_api.mint_api_key()
    record = clerk_backend_api.machine_tokens[key]
    record.resource["expiration"] = int((time.time() - 60) * 1000)  # milliseconds, as Clerk sends them
    response = client.get("/api/keys", headers=bearer(key))
    assert response.status_code == 401
    assert response.headers["x-clerk-auth-reason"] == "token-expired"


def test_5xx_is_retried_then_503(
    make_app: MachineApp, clerk_backend_api: BackendAPIStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_app().test_client()
    key = clerk_backend_api.mint_api_key()
    clerk_backend_api.fail_status = 500
    with caplog.at_level(logging.ERROR, logger="flask_clerk_security"):
        response = client.get("/api/keys", headers=bearer(key))
    assert response.status_code == 503
    assert response.get_json() == {"error": "auth_unavailable"}
    assert "Backend API could not verify a api_key (Backend API answered 500)" in caplog.text
    assert len(verify_calls(clerk_backend_api)) == 3


def test_a_backend_api_outage_logs_once_not_per_request(
    make_app: MachineApp, clerk_backend_api: BackendAPIStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by benchmarks/soak.py: every machine-token request of an outage logged two ERROR lines and a
    WARNING per retry. Now: one ERROR when it starts, one WARNING when it ends, the requests in between counted."""
    client = make_app().test_client()
    key = clerk_backend_api.mint_api_key()
    clerk_backend_api.fail_status = 500
    with caplog.at_level(logging.DEBUG, logger="flask_clerk_security"):
        caplog.clear()  # only what the requests log, not the app's start-up warnings
        assert [client.get("/api/keys", headers=bearer(key)).status_code for _ in range(4)] == [503] * 4
        clerk_backend_api.fail_status = None
        assert client.get("/api/keys", headers=bearer(key)).status_code == 200
        assert client.get("/api/keys", headers=bearer("ak_unknown")).status_code == 401
    loud = [(r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING]
    assert loud == [
        (
            "ERROR",
            "machine-token verification: Backend API could not verify a api_key (Backend API answered 500); "
            "machine-token requests get 503 until the Backend API answers",
        ),
        ("WARNING", loud[1][1]),
    ]
    assert loud[1][1].startswith("machine-token verification: Backend API answers again after")
    assert loud[1][1].endswith("(4 requests affected)")


def test_a_transient_5xx_recovers_on_retry(make_app: MachineApp, clerk_backend_api: BackendAPIStandIn) -> None:
    client = make_app().test_client()
    key = clerk_backend_api.mint_api_key()
    real = clerk_backend_api.routes[("POST", "/api_keys/verify")]
    answers = iter([(502, {"errors": []})])
    clerk_backend_api.routes[("POST", "/api_keys/verify")] = lambda request: next(answers, None) or real(request)
    assert client.get("/api/keys", headers=bearer(key)).status_code == 200
    assert len(verify_calls(clerk_backend_api)) == 2


@pytest.mark.parametrize(("status", "expected"), [(400, 401), (422, 401), (403, 503), (429, 503)])
def test_other_4xx_are_not_retried(
    make_app: MachineApp, clerk_backend_api: BackendAPIStandIn, status: int, expected: int
) -> None:
    client = make_app().test_client()
    clerk_backend_api.routes[("POST", "/api_keys/verify")] = lambda _: (status, {"errors": []})
    assert client.get("/api/keys", headers=bearer("ak_whatever")).status_code == expected
    assert len(verify_calls(clerk_backend_api)) == 1


def test_unreachable_backend_api_is_503(make_app: MachineApp) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = make_app({"CLERK_API_URL": f"http://127.0.0.1:{port}", "CLERK_HTTP_TIMEOUT": 1}).test_client()
    response = client.get("/api/keys", headers=bearer("ak_abc"))
    assert response.status_code == 503
    assert response.headers["Retry-After"]


def test_hanging_backend_api_is_cut_off(make_app: MachineApp, clerk_backend_api: BackendAPIStandIn) -> None:
    client = make_app({"CLERK_HTTP_TIMEOUT": 0.5}).test_client()
    clerk_backend_api.hang = True
    started = time.monotonic()
    response = client.get("/api/keys", headers=bearer("ak_abc"))
    assert response.status_code == 503
    assert time.monotonic() - started < 5, "the total verification budget bounds a hanging Backend API"


def test_slow_backend_api(make_app: MachineApp, clerk_backend_api: BackendAPIStandIn) -> None:
    key = clerk_backend_api.mint_api_key()
    clerk_backend_api.delay = 0.3
    assert make_app({"CLERK_HTTP_TIMEOUT": 3}).test_client().get("/api/keys", headers=bearer(key)).status_code == 200
    clerk_backend_api.delay = 1.0
    response = make_app({"CLERK_HTTP_TIMEOUT": 0.4}).test_client().get("/api/keys", headers=bearer(key))
    assert response.status_code == 503


def test_machine_secret_key_is_the_m2m_bearer(make_app: MachineApp, clerk_backend_api: BackendAPIStandIn) -> None:
    machine_secret = "ak_" + "s" * 40
    clerk_backend_api.machine_secret_key = machine_secret
    client = make_app({"CLERK_MACHINE_SECRET_KEY": machine_secret}).test_client()
    m2m = clerk_backend_api.mint_m2m_token()
    key = clerk_backend_api.mint_api_key()
    assert client.get("/api/m2m", headers=bearer(m2m)).status_code == 200
    assert client.get("/api/keys", headers=bearer(key)).status_code == 200
    bearers = [(call.path, call.headers["Authorization"]) for call in verify_calls(clerk_backend_api)]
    assert bearers == [
        ("/m2m_tokens/verify", f"Bearer {machine_secret}"),
        ("/api_keys/verify", f"Bearer {clerk_backend_api.secret_key}"),
    ]


# -- JWT forms, verified locally ------------------------------------------------------------------------------------


def test_jwt_forms_are_verified_locally(
    make_app: MachineApp, clerk_backend_api: BackendAPIStandIn, clerk_issuer: ClerkTestIssuer
) -> None:
    client = make_app().test_client()
    m2m = clerk_issuer.m2m_jwt(machine_id="mch_etl", scopes=["mch_a", "mch_b"], claims={"team": "data"})
    body = client.get("/api/m2m", headers=bearer(m2m)).get_json()
    assert body["id"].startswith("mt_")
    assert (body["machine_id"], body["scopes"]) == ("mch_etl", ["mch_a", "mch_b"])
    assert body["claims"] == {"team": "data", "scopes": "mch_a mch_b"}  # Clerk surfaces custom claims and scopes
    oauth = clerk_issuer.oauth_jwt(user_id="user_3", client_id="client_x", scopes=["email", "profile"])
    body = client.get("/api/oauth", headers=bearer(oauth)).get_json()
    assert (body["user_id"], body["client_id"], body["scopes"]) == ("user_3", "client_x", ["email", "profile"])
    assert client.get("/api/oauth", headers=bearer(clerk_issuer.oauth_jwt(typ="application/at+jwt"))).status_code == 200
    assert client.get("/api/m2m", headers=bearer(clerk_issuer.m2m_jwt(category=None))).status_code == 200
    assert verify_calls(clerk_backend_api) == []
    assert clerk_backend_api.count("GET", "/v1/jwks") == 1

    networkless = make_app({"CLERK_JWT_KEY": clerk_issuer.public_pem, "CLERK_API_URL": "http://127.0.0.1:9"})
    assert networkless.test_client().get("/api/m2m", headers=bearer(m2m)).status_code == 200


def test_bad_machine_jwts_are_refused(make_app: MachineApp, clerk_issuer: ClerkTestIssuer) -> None:
    client = make_app({"CLERK_JWT_KEY": clerk_issuer.public_pem}).test_client()
    forger = ClerkTestIssuer(kid=clerk_issuer.kid)
    cases = [
        ("/api/m2m", clerk_issuer.m2m_jwt(lifetime=-60), "token-verification-failed"),
        ("/api/m2m", forger.m2m_jwt(), "token-verification-failed"),
        ("/api/m2m", clerk_issuer.m2m_jwt(category="cl_B7d4PD111AAA"), "token-invalid"),
        ("/api/m2m", clerk_issuer.m2m_jwt(nbf=int(time.time()) + 600), "token-verification-failed"),
        ("/api/oauth", forger.oauth_jwt(), "token-verification-failed"),
        ("/api/oauth", clerk_issuer.oauth_jwt(lifetime=-60), "token-verification-failed"),
    ]
    for path, token, reason in cases:
        response = client.get(path, headers=bearer(token))
        assert response.status_code == 401, reason
        assert response.headers["x-clerk-auth-reason"] == reason


def test_machine_jwts_never_pass_as_sessions(make_app: MachineApp, clerk_issuer: ClerkTestIssuer) -> None:
    client = make_app({"CLERK_JWT_KEY": clerk_issuer.public_pem}).test_client()
    # Signed by the instance key with a session-shaped payload but an M2M subject and no category header.
    disguised = clerk_issuer.session_token(azp=ORIGIN, user_id="mch_robot")
    for token in (disguised, clerk_issuer.oauth_jwt(azp=ORIGIN, sid="sess_1")):
        response = client.get("/api/me", headers=bearer(token))
        assert response.status_code == 401
        assert response.headers["x-clerk-auth-reason"] == "token-type-mismatch"


# -- verification cache -----------------------------------------------------------------------------------------------


def test_cache_saves_backend_api_calls(make_app: MachineApp, clerk_backend_api: BackendAPIStandIn) -> None:
    key = clerk_backend_api.mint_api_key(scopes=["reports:read", "reports:list"])
    uncached = make_app().test_client()
    for _ in range(3):
        assert uncached.get("/api/keys", headers=bearer(key)).status_code == 200
    assert len(verify_calls(clerk_backend_api)) == 3

    app = make_app({"CLERK_MACHINE_TOKEN_CACHE_TTL": 60})
    cached = app.test_client()
    first = cached.get("/api/reports", headers=bearer(key)).get_json()
    for _ in range(3):
        assert cached.get("/api/reports", headers=bearer(key)).get_json() == first
    assert len(verify_calls(clerk_backend_api)) == 4

    store = get_state(app).machine.cache  # type: ignore[union-attr]
    assert key not in repr(store.__dict__), "the cache is keyed by a hash, never by the token"


def test_cache_keeps_no_failures_and_respects_expiration(
    make_app: MachineApp, clerk_backend_api: BackendAPIStandIn
) -> None:
    client = make_app({"CLERK_MACHINE_TOKEN_CACHE_TTL": 60}).test_client()
    for _ in range(2):
        assert client.get("/api/keys", headers=bearer("ak_unknown")).status_code == 401
    assert len(verify_calls(clerk_backend_api)) == 2

    key = clerk_backend_api.mint_api_key()
    clerk_backend_api.fail_status = 503
    assert client.get("/api/keys", headers=bearer(key)).status_code == 503
    clerk_backend_api.fail_status = None
    assert client.get("/api/keys", headers=bearer(key)).status_code == 200

    short = clerk_backend_api.mint_api_key(expires_in=1.0)
    assert client.get("/api/keys", headers=bearer(short)).status_code == 200
    calls = len(verify_calls(clerk_backend_api))
    time.sleep(1.2)
    response = client.get("/api/keys", headers=bearer(short))
    assert response.status_code == 401, "a cached verification never outlives the token"
    assert len(verify_calls(clerk_backend_api)) == calls + 1


def test_cache_trades_revocation_latency_for_calls(make_app: MachineApp, clerk_backend_api: BackendAPIStandIn) -> None:
    key = clerk_backend_api.mint_api_key()
    cached = make_app({"CLERK_MACHINE_TOKEN_CACHE_TTL": 60}).test_client()
    uncached = make_app().test_client()
    assert cached.get("/api/keys", headers=bearer(key)).status_code == 200
    clerk_backend_api.revoke(key)
    assert cached.get("/api/keys", headers=bearer(key)).status_code == 200, "revocation waits for the cache TTL"
    assert uncached.get("/api/keys", headers=bearer(key)).status_code == 401


#: One process of the shared-cache test: an app like make_app's, one request with the key, its JSON printed.
_CACHE_PROCESS = """
import json, sys
from flask import Flask
from flask_clerk_security import ClerkSecurity, current_auth
config = json.loads(sys.argv[1])
app = Flask("cache_process")
app.config.update(TESTING=True, **config)
clerk = ClerkSecurity(app)

@app.get("/api/keys")
@clerk.require(accepts_token="api_key")
def keys():
    return {"subject": current_auth.subject}

response = app.test_client().get("/api/keys", headers={"Authorization": "Bearer " + sys.argv[2]})
print(json.dumps([response.status_code, response.get_json()]))
"""


@pytest.mark.redis
def test_redis_cache_is_shared_between_processes(
    clerk_issuer: ClerkTestIssuer, clerk_backend_api: BackendAPIStandIn, redis_client: Any, redis_prefix: str
) -> None:
    import json
    import subprocess
    import sys

    from .conftest import REDIS_URL

    config = {
        "CLERK_SECRET_KEY": clerk_issuer.secret_key,
        "CLERK_PUBLISHABLE_KEY": clerk_issuer.publishable_key,
        "CLERK_API_URL": clerk_backend_api.url,
        "CLERK_MACHINE_TOKEN_CACHE_TTL": 30,
        "CLERK_MACHINE_TOKEN_CACHE_URI": REDIS_URL,
        "CLERK_STORE_KEY_PREFIX": redis_prefix,
    }
    key = clerk_backend_api.mint_api_key(subject="user_shared")
    for _ in range(2):  # two processes, one after the other: the second finds the first one's entry
        run = subprocess.run(
            [sys.executable, "-c", _CACHE_PROCESS, json.dumps(config), key],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        assert json.loads(run.stdout.splitlines()[-1]) == [200, {"subject": "user_shared"}]
    assert len(verify_calls(clerk_backend_api)) == 1

    names = list(redis_client.scan_iter(match=f"{redis_prefix}*"))
    assert [name.decode().removeprefix(redis_prefix).split(":")[0] for name in names] == ["machine-token"]
    assert all(key.encode() not in name and key.encode() not in redis_client.get(name) for name in names)
    assert all(0 < redis_client.pttl(name) <= 30_000 for name in names)


@pytest.mark.redis
def test_redis_cache_is_namespaced_per_clerk_instance(redis_client: Any, redis_prefix: str) -> None:
    """Two apps of two Clerk instances share one cache Redis: B never answers from A's verifications."""
    issuers = [ClerkTestIssuer(instance="test"), ClerkTestIssuer(instance="test")]
    with BackendAPIStandIn(issuers[0]) as api_a, BackendAPIStandIn(issuers[1]) as api_b:
        clients = []
        for issuer, api in zip(issuers, (api_a, api_b), strict=True):
            app = Flask("instance_app")
            app.config.update(
                TESTING=True,
                CLERK_SECRET_KEY=issuer.secret_key,
                CLERK_PUBLISHABLE_KEY=issuer.publishable_key,
                CLERK_API_URL=api.url,
                CLERK_ACCEPTS_TOKEN="api_key",
                CLERK_MACHINE_TOKEN_CACHE_TTL=30,
                CLERK_MACHINE_TOKEN_CACHE_URI=REDIS_URL,
                CLERK_STORE_KEY_PREFIX=redis_prefix,
            )
            ClerkSecurity(app)
            app.get("/api/me")(lambda: {"subject": current_auth.subject})
            clients.append(app.test_client())
        key = api_a.mint_api_key(subject="user_of_a")
        assert clients[0].get("/api/me", headers=bearer(key)).get_json() == {"subject": "user_of_a"}
        response = clients[1].get("/api/me", headers=bearer(key))
        assert response.status_code == 401, "instance B must not accept an API key instance A verified"
        assert len(verify_calls(api_b)) == 1, "B asks its own Backend API"
        names = [name.decode() for name in redis_client.scan_iter(match=f"*{redis_prefix}*")]
        assert len(names) == 1 and names[0].startswith(f"{redis_prefix}machine-token:")


@pytest.mark.redis
def test_redis_cache_is_namespaced_per_audience(
    make_app: MachineApp, clerk_backend_api: BackendAPIStandIn, redis_prefix: str
) -> None:
    """Two resource servers of one Clerk instance share a cache Redis: B (CLERK_AUDIENCE b) never accepts an
    OAuth token for A because A verified and cached it."""
    from .conftest import REDIS_URL

    cache = {
        "CLERK_MACHINE_TOKEN_CACHE_TTL": 30,
        "CLERK_MACHINE_TOKEN_CACHE_URI": REDIS_URL,
        "CLERK_STORE_KEY_PREFIX": redis_prefix,
    }
    a = make_app({**cache, "CLERK_AUDIENCE": "https://a.example.com"}).test_client()
    b = make_app({**cache, "CLERK_AUDIENCE": "https://b.example.com"}).test_client()
    token = clerk_backend_api.mint_oauth_token(aud="https://a.example.com")
    assert a.get("/api/oauth", headers=bearer(token)).status_code == 200
    response = b.get("/api/oauth", headers=bearer(token))
    assert response.status_code == 401, "B must not accept a token for A from A's cache entry"
    assert response.headers["x-clerk-auth-reason"] == "token-verification-failed"


def test_cache_store_down_falls_back_to_the_backend_api(
    make_app: MachineApp, clerk_backend_api: BackendAPIStandIn
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = {"CLERK_MACHINE_TOKEN_CACHE_TTL": 30, "CLERK_MACHINE_TOKEN_CACHE_URI": f"redis://127.0.0.1:{port}/0"}
    client = make_app(config).test_client()
    key = clerk_backend_api.mint_api_key()
    for _ in range(2):
        assert client.get("/api/keys", headers=bearer(key)).status_code == 200
    assert len(verify_calls(clerk_backend_api)) == 2


def test_audience_is_checked_on_opaque_oauth_tokens(make_app: MachineApp, clerk_backend_api: BackendAPIStandIn) -> None:
    """Clerk's idPOAuthAccessToken.verify(token, {audience}): the verify answer's ``aud`` must name an audience."""
    api = "https://api.example.com"
    client = make_app({"CLERK_AUDIENCE": api}).test_client()
    listed = clerk_backend_api.mint_oauth_token(aud=[api, "https://other.example.com"])
    other = clerk_backend_api.mint_oauth_token(aud="https://other.example.com")
    missing = clerk_backend_api.mint_oauth_token()
    assert client.get("/api/oauth", headers=bearer(listed)).status_code == 200
    for token in (other, missing):
        response = client.get("/api/oauth", headers=bearer(token))
        assert response.status_code == 401
        assert response.headers["x-clerk-auth-reason"] == "token-verification-failed"
    # API keys and M2M tokens carry no OAuth audience: Clerk does not check one for them.
    assert client.get("/api/keys", headers=bearer(clerk_backend_api.mint_api_key())).status_code == 200
    assert client.get("/api/m2m", headers=bearer(clerk_backend_api.mint_m2m_token())).status_code == 200
    # Without CLERK_AUDIENCE the claim is not looked at.
    assert make_app().test_client().get("/api/oauth", headers=bearer(other)).status_code == 200
