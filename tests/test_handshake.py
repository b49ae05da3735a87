"""Clerk's handshake for server-rendered pages: when it happens, the redirect, the return, the guards.

The Frontend API and Backend API are the test kit's stand-ins over real HTTP on 127.0.0.1; the app is
pointed at them with CLERK_PROXY_URL and CLERK_API_URL.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask

from flask_clerk_security import ClerkSecurity, current_auth, get_auth
from flask_clerk_security.cookies import cookie_suffix
from flask_clerk_security.errors import ConfigurationError, TokenVerificationError
from flask_clerk_security.handshake import _same_origin_target, safe_directives
from flask_clerk_security.testing import BackendAPIStandIn, ClerkTestIssuer, FrontendAPIStandIn

DOC = {"Sec-Fetch-Dest": "document", "Accept": "text/html,application/xhtml+xml"}


@pytest.fixture(scope="module")
def live_issuer() -> ClerkTestIssuer:
    """A production instance (pk_live_): no dev-browser flow, handshake cookies only when stale."""
    return ClerkTestIssuer(instance="live")


@pytest.fixture(scope="module")
def dev_issuer() -> ClerkTestIssuer:
    return ClerkTestIssuer(instance="test")


class Env:
    def __init__(self, issuer: ClerkTestIssuer, backend: BackendAPIStandIn, fapi: FrontendAPIStandIn) -> None:
        self.issuer = issuer
        self.backend = backend
        self.fapi = fapi

    def app(self, **config: Any) -> Flask:
        app = Flask("handshake_test")
        app.config.update(
            TESTING=True,
            CLERK_SECRET_KEY=self.issuer.secret_key,
            CLERK_PUBLISHABLE_KEY=self.issuer.publishable_key,
            CLERK_API_URL=self.backend.url,
            CLERK_PROXY_URL=self.fapi.url,
            **config,
        )
        clerk = ClerkSecurity(app)

        @app.get("/dashboard")
        def dashboard() -> str:
            return f"<h1>Hello {current_auth.user_id}</h1>"

        @app.get("/api/me")
        def me() -> dict[str, Any]:
            return {"user_id": current_auth.user_id}

        @app.get("/welcome")
        @clerk.public
        def welcome() -> str:
            return f"<p>{current_auth.user_id or 'guest'}</p>"

        @app.get("/<path:rest>")
        def anything(rest: str) -> str:
            return rest

        return app

    def stale_cookies(self, **claims: Any) -> dict[str, str]:
        now = int(time.time())
        token = self.issuer.session_token(issued_at=now - 120, lifetime=60, **claims)
        return {"__session": token, "__client_uat": str(now - 300)}

    def fresh_cookies(self, **claims: Any) -> dict[str, str]:
        now = int(time.time())
        return {"__session": self.issuer.session_token(**claims), "__client_uat": str(now - 300)}


def _env(issuer: ClerkTestIssuer) -> Iterator[Env]:
    with BackendAPIStandIn(issuer) as backend, FrontendAPIStandIn(issuer, backend_api=backend) as fapi:
        yield Env(issuer, backend, fapi)


@pytest.fixture
def live(live_issuer: ClerkTestIssuer) -> Iterator[Env]:
    yield from _env(live_issuer)


@pytest.fixture
def dev(dev_issuer: ClerkTestIssuer) -> Iterator[Env]:
    yield from _env(dev_issuer)


def _client(app: Flask, cookies: dict[str, str]) -> Any:
    client = app.test_client()
    for name, value in cookies.items():
        client.set_cookie(name, value)
    return client


def _query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query, keep_blank_values=True).items()}


def _set_cookies(response: Any) -> dict[str, str]:
    pairs = (c.split(";")[0].split("=", 1) for c in response.headers.getlist("Set-Cookie"))
    return {name: value for name, value in pairs}


# --------------------------------------------------------------------------------------------- when
def test_stale_cookie_page_gets_handshake_redirect_with_clerks_parameters(live: Env) -> None:
    cookies = live.stale_cookies()
    response = _client(live.app(), cookies).get("/dashboard?tab=2", headers=DOC)
    assert response.status_code == 307
    location = response.headers["Location"]
    assert location.startswith(f"{live.fapi.url}/v1/client/handshake?")
    assert _query(location) == {
        "redirect_url": "http://localhost/dashboard?tab=2",
        "__clerk_api_version": "2026-05-12",
        "suffixed_cookies": "false",
        "__clerk_hs_reason": "session-token-expired-refresh-non-eligible-no-refresh-cookie",
        "format": "nonce",
        "__session": cookies["__session"],
    }
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["x-clerk-auth-status"] == "handshake"
    assert "__clerk_redirect_count=1; SameSite=Lax; HttpOnly; Max-Age=2" in response.headers.getlist("Set-Cookie")


@pytest.mark.parametrize(
    ("headers", "handshake"),
    [
        ({"Sec-Fetch-Dest": "document"}, True),
        ({"Sec-Fetch-Dest": "iframe"}, True),
        ({"Accept": "text/html"}, True),
        ({"Accept": "application/json, text/html"}, False),
        ({"Sec-Fetch-Dest": "empty", "Accept": "text/html"}, False),
        ({"Accept": "application/json"}, False),
        ({}, False),
    ],
)
def test_only_page_navigations_hand_shake(live: Env, headers: dict[str, str], handshake: bool) -> None:
    response = _client(live.app(), live.stale_cookies()).get("/api/me", headers=headers)
    if handshake:
        assert response.status_code == 307
        assert response.headers["Location"].startswith(live.fapi.url)
    else:
        assert response.status_code == 401
        assert response.get_json() == {"error": "unauthorized"}


def test_post_navigation_never_hand_shakes(live: Env) -> None:
    app = live.app()

    @app.post("/dashboard")
    def post_dashboard() -> str:
        return "posted"

    response = _client(app, live.stale_cookies()).post("/dashboard", headers={**DOC, "Origin": "http://localhost"})
    # Authentication ran (a route exists, so no 405) and refused the stale cookie without a handshake.
    assert response.status_code == 401
    assert "Location" not in response.headers
    assert response.headers["x-clerk-auth-reason"] == "session-token-expired-refresh-non-eligible-non-get"
    fresh = _client(app, live.fresh_cookies()).post("/dashboard", headers={**DOC, "Origin": "http://localhost"})
    assert (fresh.status_code, fresh.get_data(as_text=True)) == (200, "posted")


@pytest.mark.parametrize(
    ("cookies", "reason"),
    [
        (lambda e: {"__client_uat": str(int(time.time()))}, "client-uat-but-no-session-token"),
        (lambda e: {"__session": e.issuer.session_token()}, "session-token-but-no-client-uat"),
        (
            lambda e: {"__session": e.issuer.session_token(), "__client_uat": str(int(time.time()) + 30)},
            "session-token-iat-before-client-uat",
        ),
        (
            lambda e: {
                "__session": e.issuer.session_token(extra_claims={"nbf": int(time.time()) + 60}),
                "__client_uat": str(int(time.time()) - 300),
            },
            "session-token-nbf",
        ),
    ],
)
def test_handshake_reasons(live: Env, cookies: Any, reason: str) -> None:
    response = _client(live.app(), cookies(live)).get("/dashboard", headers=DOC)
    assert response.status_code == 307
    assert _query(response.headers["Location"])["__clerk_hs_reason"] == reason


def test_signed_out_page_goes_to_account_portal_sign_in(live: Env) -> None:
    response = live.app().test_client().get("/dashboard?x=1", headers=DOC)
    assert response.status_code == 307
    assert response.headers["Location"] == (
        "https://accounts.example.test/sign-in?redirect_url=http%3A%2F%2Flocalhost%2Fdashboard%3Fx%3D1"
    )


def test_sign_in_url_setting_wins(live: Env) -> None:
    response = live.app(CLERK_SIGN_IN_URL="/sign-in").test_client().get("/dashboard", headers=DOC)
    assert response.headers["Location"] == "/sign-in?redirect_url=http%3A%2F%2Flocalhost%2Fdashboard"


def test_redirect_loop_guard_stops_after_three(live: Env) -> None:
    app = live.app()
    client = _client(app, {**live.stale_cookies(), "__clerk_redirect_count": "2"})
    third = client.get("/dashboard", headers=DOC)
    assert third.status_code == 307 and third.headers["Location"].startswith(live.fapi.url)
    assert "__clerk_redirect_count=3; SameSite=Lax; HttpOnly; Max-Age=2" in third.headers.getlist("Set-Cookie")
    stopped = _client(app, {**live.stale_cookies(), "__clerk_redirect_count": "3"}).get("/dashboard", headers=DOC)
    assert stopped.status_code == 307
    assert stopped.headers["Location"].startswith("https://accounts.example.test/sign-in?")


def test_public_page_hand_shakes_public_api_does_not(live: Env) -> None:
    client = _client(live.app(), live.stale_cookies())
    assert client.get("/welcome", headers=DOC).headers["Location"].startswith(live.fapi.url)
    assert client.get("/welcome", headers={"Accept": "application/json"}).status_code == 200


def test_fresh_cookie_is_served_without_handshake(live: Env) -> None:
    response = _client(live.app(), live.fresh_cookies()).get("/dashboard", headers=DOC)
    assert response.status_code == 200
    assert response.text == "<h1>Hello user_123</h1>"
    assert "Set-Cookie" not in response.headers


def test_cross_site_referrer_hand_shakes_known_clerk_referrer_does_not(live: Env) -> None:
    client = _client(live.app(), live.fresh_cookies())
    foreign = client.get("/dashboard", headers={**DOC, "Referer": "https://news.example.org/item"})
    assert _query(foreign.headers["Location"])["__clerk_hs_reason"] == "primary-domain-cross-origin-sync"
    portal = client.get("/dashboard", headers={**DOC, "Referer": "https://accounts.example.test/sign-in"})
    assert portal.status_code == 200


# --------------------------------------------------------------------------------------------- return
def _walk(env: Env, app: Flask, cookies: dict[str, str], path: str = "/dashboard") -> tuple[Any, Any]:
    """Stale page -> Frontend API stand-in (real HTTP) -> back to the app; returns (client, response)."""
    client = _client(app, cookies)
    first = client.get(path, headers=DOC)
    assert first.status_code == 307
    hop = requests.get(first.headers["Location"], allow_redirects=False, timeout=5)
    assert hop.status_code == 307
    return client, client.get(hop.headers["Location"], headers=DOC)


@pytest.mark.parametrize("use_nonce", [True, False], ids=["nonce", "token"])
def test_handshake_return_signs_in_and_sets_cookies(live: Env, use_nonce: bool) -> None:
    live.fapi.use_nonce = use_nonce
    live.fapi.signed_in_as = {"user_id": "user_back"}
    _, back = _walk(live, live.app(), live.stale_cookies())
    assert back.status_code == 200
    assert back.text == "<h1>Hello user_back</h1>"
    cookies = _set_cookies(back)
    assert cookies["__client_uat"] != "0" and cookies["__session"].count(".") == 2
    assert back.headers["Cache-Control"] == "no-store"
    assert live.backend.count("GET", "/v1/clients/handshake_payload") == (1 if use_nonce else 0)


def test_handshake_return_signed_out_client_clears_cookies(live: Env) -> None:
    live.fapi.signed_in_as = None
    _, back = _walk(live, live.app(), live.stale_cookies())
    assert back.status_code == 307
    assert back.headers["Location"].startswith("https://accounts.example.test/sign-in?")
    assert _set_cookies(back)["__client_uat"] == "0"


def test_nonce_is_exchanged_once_and_backend_failure_is_not_a_5xx(live: Env) -> None:
    app = live.app()
    _, back = _walk(live, app, live.stale_cookies())
    assert back.status_code == 200
    replay = _client(app, {}).get(back.request.url, headers={"Accept": "application/json"})
    assert replay.status_code == 401
    assert "__session" not in _set_cookies(replay)
    live.backend.fail_status = 500
    _, failed = _walk(live, app, live.stale_cookies())
    assert failed.status_code == 307
    assert "__session" not in _set_cookies(failed)


def test_development_instance_dev_browser_flow(dev: Env) -> None:
    app = dev.app()
    client = app.test_client()
    first = client.get("/dashboard?tab=2", headers=DOC)
    assert first.status_code == 307
    assert _query(first.headers["Location"])["__clerk_hs_reason"] == "dev-browser-missing"
    hop = requests.get(first.headers["Location"], allow_redirects=False, timeout=5)
    assert "__clerk_db_jwt=" in hop.headers["Location"]
    back = client.get(hop.headers["Location"], headers=DOC)
    assert back.status_code == 307
    assert back.headers["Location"] == "/dashboard?tab=2"
    assert _set_cookies(back)["__clerk_db_jwt"] == dev.fapi.dev_browser_token
    page = client.get("/dashboard?tab=2", headers=DOC)
    assert page.status_code == 200 and page.text == "<h1>Hello user_123</h1>"


def test_development_dev_browser_sync_from_query(dev: Env) -> None:
    response = dev.app().test_client().get("/dashboard?__clerk_db_jwt=dvb_x&a=1", headers=DOC)
    query = _query(response.headers["Location"])
    assert query["__clerk_hs_reason"] == "dev-browser-sync"
    assert query["__clerk_db_jwt"] == "dvb_x"
    assert query["redirect_url"] == "http://localhost/dashboard?a=1"


def test_suffixed_cookies_are_read_and_reported(live: Env) -> None:
    suffix = cookie_suffix(live.issuer.publishable_key)
    stale = live.stale_cookies()
    client = _client(live.app(), {f"{k}_{suffix}": v for k, v in stale.items()})
    response = client.get("/dashboard", headers=DOC)
    assert _query(response.headers["Location"])["suffixed_cookies"] == "true"
    fresh = {f"{k}_{suffix}": v for k, v in live.fresh_cookies(user_id="user_sfx").items()}
    other = ClerkTestIssuer(frontend_api="clerk.other.test").session_token()
    page = _client(live.app(), {**fresh, "__session": other, "__client_uat": "1"}).get("/dashboard", headers=DOC)
    assert page.text == "<h1>Hello user_sfx</h1>"


# --------------------------------------------------------------------------------------------- bad input
def _handshake_return(env: Env, app: Flask, token: str, path: str = "/dashboard") -> Any:
    return app.test_client().get(f"{path}?__clerk_handshake={token}", headers=DOC)


@pytest.mark.parametrize(
    "token",
    ["garbage", "a.b.c", "e30.e30.", "x" * 20000, "eyJhbGciOiJub25lIn0.eyJoYW5kc2hha2UiOlsiX19zZXNzaW9uPXgiXX0."],
    ids=["garbage", "three-parts", "empty-objects", "huge", "alg-none"],
)
def test_malformed_handshake_tokens_set_nothing(live: Env, dev: Env, token: str) -> None:
    for env in (live, dev):
        response = _handshake_return(env, env.app(), token)
        assert response.status_code < 500
        assert not any(c.startswith("__session") for c in response.headers.getlist("Set-Cookie"))


def test_forged_handshake_token_signs_nothing_in(live: Env, dev: Env) -> None:
    for env in (live, dev):
        forger = ClerkTestIssuer(kid=env.issuer.kid, frontend_api=env.issuer.frontend_api)
        directives = [f"__session={env.issuer.session_token()}; Path=/", f"__client_uat={int(time.time())}; Path=/"]
        response = _handshake_return(env, env.app(), forger.sign({"handshake": directives}))
        assert response.status_code == 307
        assert not response.headers["Location"].startswith(env.fapi.url)  # no new handshake either
        assert response.headers.getlist("Set-Cookie") == []


def test_directives_outside_clerks_namespace_are_dropped(live: Env) -> None:
    session = live.issuer.session_token(user_id="user_ns")
    directives = [
        "sessionid=stolen; Path=/",
        "evil__session=1",
        "__session\r\nX-Injected: 1=1",
        f"__session={session}; Path=/; SameSite=Lax",
        f"__client_uat={int(time.time())}; Path=/",
        "__clerk_db_jwt=dvb_1; Path=/",
    ]
    response = _handshake_return(live, live.app(), live.issuer.sign({"handshake": directives}))
    assert response.status_code == 200 and response.text == "<h1>Hello user_ns</h1>"
    assert set(_set_cookies(response)) == {"__session", "__client_uat", "__clerk_db_jwt"}
    assert "X-Injected" not in response.headers
    assert safe_directives("not a list") == [] and safe_directives([1, None, {"a": 1}]) == []


def test_post_handshake_redirect_never_leaves_the_site(dev: Env) -> None:
    directives = [f"__session={dev.issuer.session_token()}; Path=/", "__clerk_db_jwt=dvb_1; Path=/"]
    token = dev.issuer.sign({"handshake": directives})
    app = dev.app()
    response = app.test_client().get(f"/evil.example/x?__clerk_handshake={token}", headers=DOC)
    assert response.headers["Location"] == "/evil.example/x"
    for raw in ("http://localhost//evil.example/x?a=1", "http://localhost/\\evil.example", "http://h/\\/evil"):
        target = _same_origin_target(raw)
        assert target.startswith("/") and not target.startswith(("//", "/\\"))


def test_multi_domain_redirect_parameter_is_ignored(dev: Env) -> None:
    client = _client(dev.app(), {"__clerk_db_jwt": "dvb_1", **dev.fresh_cookies()})
    response = client.get("/dashboard?__clerk_redirect_url=https://evil.example/", headers=DOC)
    assert response.status_code == 200
    response = client.get("/dashboard?redirect_url=https://evil.example/", headers=DOC)
    assert response.status_code == 200


@pytest.mark.parametrize("suffixed", [False, True])
def test_kit_session_cookies_sign_in_on_a_development_instance(dev: Env, suffixed: bool) -> None:
    cookies = dev.issuer.session_cookies(user_id="user_kit", suffixed=suffixed)
    assert any(name.startswith("__clerk_db_jwt") for name in cookies)
    response = _client(dev.app(), cookies).get("/dashboard", headers=DOC)
    assert response.status_code == 200 and response.text == "<h1>Hello user_kit</h1>"
    without_dev_browser = {k: v for k, v in cookies.items() if not k.startswith("__clerk_db_jwt")}
    api = _client(dev.app(), without_dev_browser).get("/api/me")
    assert api.status_code == 401 and api.headers["x-clerk-auth-reason"] == "dev-browser-missing"


# --------------------------------------------------------------------------------------------- nonce budget
PAYLOAD = ("GET", "/v1/clients/handshake_payload")


def _nonce_get(app: Flask, nonce: str, address: str = "203.0.113.7", headers: dict[str, str] | None = None) -> Any:
    return app.test_client().get(
        f"/welcome?__clerk_handshake_nonce={nonce}",
        headers=DOC if headers is None else headers,
        environ_base={"REMOTE_ADDR": address},
    )


def test_anonymous_nonces_from_one_client_are_bounded(live: Env, caplog: pytest.LogCaptureFixture) -> None:
    """Each made-up nonce on a public page cost one Backend API call; now a client gets a few per minute."""
    app = live.app(CLERK_HANDSHAKE_NONCE_RATE="5 per minute")
    with caplog.at_level("WARNING", logger="flask_clerk_security"):
        answers = [_nonce_get(app, f"made_up_{i}") for i in range(40)]
    assert live.backend.count(*PAYLOAD) == 5
    assert {r.status_code for r in answers} == {200}
    assert {r.headers["x-clerk-auth-reason"] for r in answers} == {"session-token-missing"}
    assert sum("CLERK_HANDSHAKE_NONCE_RATE" in r.getMessage() for r in caplog.records) == 1  # once per window
    other = _nonce_get(app, "made_up_other", address="198.51.100.9")
    assert other.status_code == 200 and live.backend.count(*PAYLOAD) == 6


def test_anonymous_nonces_are_bounded_overall(live: Env) -> None:
    app = live.app(CLERK_HANDSHAKE_NONCE_RATE="5 per minute", CLERK_HANDSHAKE_NONCE_RATE_TOTAL="12 per minute")
    for i in range(40):
        _nonce_get(app, f"made_up_{i}", address=f"192.0.2.{i}")
    assert live.backend.count(*PAYLOAD) == 12


@pytest.mark.parametrize(
    "headers",
    [{"Accept": "application/json"}, {"Sec-Fetch-Dest": "empty"}, {}],
    ids=["json", "fetch", "no-headers"],
)
def test_nonces_on_requests_that_are_no_navigation_never_reach_the_backend_api(
    live: Env, headers: dict[str, str]
) -> None:
    app = live.app()
    directives = [f"__session={live.issuer.session_token()}; Path=/", "__client_uat=1; Path=/"]
    live.backend.handshake_payloads["real"] = directives
    response = _nonce_get(app, "real", headers=headers)
    assert response.status_code == 200 and response.text == "<p>guest</p>"
    post = app.test_client().post("/welcome?__clerk_handshake_nonce=real", headers=DOC)
    assert post.status_code in (401, 405)
    assert live.backend.count(*PAYLOAD) == 0
    assert _nonce_get(app, "real").text == "<p>user_123</p>"  # the same nonce on a navigation still signs in
    assert live.backend.count(*PAYLOAD) == 1


def test_nonce_budget_settings_are_validated(live: Env) -> None:
    with pytest.raises(Exception, match="CLERK_HANDSHAKE_NONCE_RATE"):
        live.app(CLERK_HANDSHAKE_NONCE_RATE="lots")
    app = live.app(CLERK_HANDSHAKE_NONCE_RATE="off", CLERK_HANDSHAKE_NONCE_RATE_TOTAL="off")
    for i in range(15):
        _nonce_get(app, f"made_up_{i}")
    assert live.backend.count(*PAYLOAD) == 15


# --------------------------------------------------------------------------------------------- pending sessions
def _pending_app(env: Env, **config: Any) -> Flask:
    """Routes for each pending-session option: the app's setting, and require()/get_auth() overrides."""
    app = Flask("pending_test")
    app.config.update(
        TESTING=True,
        CLERK_SECRET_KEY=env.issuer.secret_key,
        CLERK_PUBLISHABLE_KEY=env.issuer.publishable_key,
        CLERK_API_URL=env.backend.url,
        CLERK_PROXY_URL=env.fapi.url,
        **config,
    )
    clerk = ClerkSecurity(app)

    @app.route("/app", methods=["GET", "POST"])
    def default() -> dict[str, Any]:
        return {"user_id": current_auth.user_id, "status": current_auth.session_status}

    @app.route("/pending-ok", methods=["GET", "POST"])
    @clerk.require(treat_pending_as_signed_out=False)
    def pending_ok() -> dict[str, Any]:
        auth = get_auth(treat_pending_as_signed_out=False)
        return {"user_id": auth.user_id, "admin": auth.has(role="admin")}

    @app.get("/public")
    @clerk.public
    def public() -> dict[str, Any]:
        return {"default": current_auth.user_id, "pending": get_auth(treat_pending_as_signed_out=False).user_id}

    return app


def _pending_cookies(env: Env) -> dict[str, str]:
    org = {"id": "org_1", "slug": "acme", "role": "admin"}
    return env.fresh_cookies(user_id="user_p", status="pending", org=org)


def test_pending_session_is_signed_out_by_default_with_no_reason(live: Env) -> None:
    token = live.issuer.session_token(user_id="user_p", status="pending")
    response = _pending_app(live).test_client().get("/app", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert "x-clerk-auth-reason" not in response.headers  # Clerk's toAuth() gives none (no "session-pending")


def test_pending_session_is_signed_in_with_the_setting_off(live: Env) -> None:
    token = live.issuer.session_token(user_id="user_p", status="pending")
    app = _pending_app(live, CLERK_TREAT_PENDING_AS_SIGNED_OUT="false")
    response = app.test_client().get("/app", headers={"Authorization": f"Bearer {token}"})
    assert response.get_json() == {"user_id": "user_p", "status": "pending"}


def test_route_and_get_auth_options_sign_a_pending_session_in(live: Env) -> None:
    client = _client(_pending_app(live), _pending_cookies(live))
    assert client.get("/pending-ok", headers=DOC).get_json() == {"user_id": "user_p", "admin": True}
    assert client.get("/public", headers=DOC).get_json() == {"default": None, "pending": "user_p"}
    assert client.get("/app", headers=DOC).headers["Location"] == (
        "https://accounts.example.test/sign-in/tasks?redirect_url=http%3A%2F%2Flocalhost%2Fapp"
    )


def test_a_cross_origin_write_with_a_pending_session_is_refused_as_csrf(live: Env) -> None:
    client = _client(_pending_app(live), _pending_cookies(live))
    response = client.post("/pending-ok", headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert client.post("/pending-ok", headers={"Origin": "http://localhost"}).status_code == 200


def test_treat_pending_option_is_validated() -> None:
    clerk = ClerkSecurity()
    clerk.require(treat_pending_as_signed_out=False)
    with pytest.raises(TypeError, match="treat_pending_as_signed_out"):
        clerk.require(treat_pending_as_signed_out="no")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------- the __refresh cookie
def _refresh_cookies(env: Env, refresh: str) -> dict[str, str]:
    suffix = cookie_suffix(env.issuer.publishable_key)
    return {f"{name}_{suffix}": value for name, value in {**env.stale_cookies(), "__refresh": refresh}.items()}


def test_refresh_cookie_signs_in_with_one_backend_api_call(live: Env) -> None:
    live.backend.add_session("sess_123", "user_refreshed")
    live.backend.add_refresh_token("rt_1", "sess_123")
    cookies = _refresh_cookies(live, "rt_1")
    response = _client(live.app(), cookies).get("/dashboard?a=1", headers=DOC)
    assert response.status_code == 200 and response.text == "<h1>Hello user_refreshed</h1>"
    suffix = cookie_suffix(live.issuer.publishable_key)
    assert set(_set_cookies(response)) == {f"__session_{suffix}", f"__client_uat_{suffix}"}
    assert response.headers["Cache-Control"] == "no-store"
    (call,) = [c for c in live.backend.calls if c.path == "/v1/sessions/sess_123/refresh"]
    assert call.method == "POST" and call.query == {"suffixed_cookies": ["true"]}
    assert {k: call.json[k] for k in ("format", "expired_token", "refresh_token", "request_origin")} == {
        "format": "cookie",
        "expired_token": cookies[f"__session_{suffix}"],
        "refresh_token": "rt_1",
        "request_origin": "http://localhost",
    }
    assert call.json["request_headers"]["sec-fetch-dest"] == ["document"]


def test_an_expired_authorization_token_is_refreshed_with_the_refresh_cookie(live: Env) -> None:
    live.backend.add_session("sess_123", "user_refreshed")
    live.backend.add_refresh_token("rt_1", "sess_123")
    expired = live.stale_cookies()["__session"]
    suffix = cookie_suffix(live.issuer.publishable_key)
    client = _client(live.app(), {f"__refresh_{suffix}": "rt_1"})
    response = client.get("/api/me", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 200 and response.get_json() == {"user_id": "user_refreshed"}
    assert set(_set_cookies(response)) == {"__session", "__client_uat"}
    (call,) = [c for c in live.backend.calls if c.path == "/v1/sessions/sess_123/refresh"]
    assert call.json["expired_token"] == expired and call.query == {"suffixed_cookies": ["false"]}
    # Without the cookie (or on a POST) there is nothing to exchange: 401, with Clerk's reason for it.
    refused = live.app().test_client().get("/api/me", headers={"Authorization": f"Bearer {expired}"})
    assert refused.status_code == 401
    assert refused.headers["x-clerk-auth-reason"] == "session-token-expired-refresh-non-eligible-no-refresh-cookie"
    assert live.backend.count("POST", "/v1/sessions/sess_123/refresh") == 1


def test_a_refresh_that_times_out_hands_shake_within_the_deadline(live: Env) -> None:
    live.backend.add_refresh_token("rt_1", "sess_123")
    live.backend.delay = 3.0
    started = time.monotonic()
    app = live.app(CLERK_HTTP_TIMEOUT=0.3, CLERK_JWT_KEY=live.issuer.public_pem)  # keys without the slow API
    response = _client(app, _refresh_cookies(live, "rt_1")).get("/dashboard", headers=DOC)
    assert time.monotonic() - started < 2.0
    assert response.status_code == 307
    assert _query(response.headers["Location"])["__clerk_hs_reason"] == "session-token-expired-refresh-fetch-error"


def test_refresh_without_a_secret_key_reports_clerks_missing_api_client(live: Env) -> None:
    app = Flask("no_secret")
    app.config.update(
        TESTING=True,
        CLERK_JWT_KEY=live.issuer.public_pem,
        CLERK_PUBLISHABLE_KEY=live.issuer.publishable_key,
        CLERK_PROXY_URL=live.fapi.url,
    )
    ClerkSecurity(app)
    app.add_url_rule("/dashboard", view_func=lambda: "page")
    response = _client(app, _refresh_cookies(live, "rt_1")).get("/dashboard", headers=DOC)
    assert response.headers["x-clerk-auth-reason"] == "session-token-expired-refresh-missing-api-client"
    assert live.backend.count("POST", "/v1/sessions/sess_123/refresh") == 0


def test_authorization_token_refreshes_share_the_nonce_budget(live: Env) -> None:
    """An expired token of one's own plus any ``__refresh`` value buys a Backend API call: one client gets
    CLERK_HANDSHAKE_NONCE_RATE of them, refreshes and handshake nonces together; past it, Clerk's fetch-error."""
    app = live.app(CLERK_HANDSHAKE_NONCE_RATE="3 per minute")
    suffix = cookie_suffix(live.issuer.publishable_key)
    expired = live.stale_cookies()["__session"]
    client = _client(app, {f"__refresh_{suffix}": "rt_unknown"})
    reasons = [
        client.get("/api/me", headers={"Authorization": f"Bearer {expired}"}, environ_base=CLIENT).headers[
            "x-clerk-auth-reason"
        ]
        for _ in range(5)
    ]
    assert reasons == 3 * ["session-token-expired-refresh-refresh_token_invalid"] + 2 * [
        "session-token-expired-refresh-fetch-error"
    ]
    assert sum(call.path.endswith("/refresh") for call in live.backend.calls) == 3
    _nonce_get(app, "n_after_refreshes")
    assert live.backend.count("GET", "/v1/clients/handshake_payload") == 0
    other = client.get("/api/me", headers={"Authorization": f"Bearer {expired}"}, environ_base=OTHER_CLIENT)
    assert other.headers["x-clerk-auth-reason"] == "session-token-expired-refresh-refresh_token_invalid"


CLIENT = {"REMOTE_ADDR": "203.0.113.7"}
OTHER_CLIENT = {"REMOTE_ADDR": "203.0.113.8"}


@pytest.mark.parametrize(
    "sid",
    ["..", ".", "%2e%2e", "%252E.", "a/../..", "a\\..", "x/%2E", "%" + "25" * 11 + "2e"],
)
def test_a_refresh_never_calls_the_backend_api_on_another_path(live: Env, sid: str) -> None:
    """The session id of the exchange comes from the session cookie when there is one, and with an expired token
    of one's own in the Authorization header that cookie is never verified: anyone can put any ``sid`` there.
    One that is a dot segment (however often percent-encoded, or after a backslash) would move the secret-key
    POST to another Backend API path (``/v1/refresh``); Clerk's ``joinPaths`` throws there, no call is made and
    the refresh fails with ``unexpected-bapi-error``."""
    forger = ClerkTestIssuer(kid=live.issuer.kid, frontend_api=live.issuer.frontend_api, instance="live")
    forged = forger.sign(forger.session_claims(extra_claims={"sid": sid}))
    suffix = cookie_suffix(live.issuer.publishable_key)
    client = _client(live.app(), {"__session": forged, f"__refresh_{suffix}": "rt_1"})
    expired = live.stale_cookies()["__session"]
    response = client.get("/api/me", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401
    assert response.headers["x-clerk-auth-reason"] == "session-token-expired-refresh-unexpected-bapi-error"
    assert [call.path for call in live.backend.calls if call.method == "POST"] == []


def test_a_refresh_quotes_the_session_id_as_javascript_writes_it(live: Env) -> None:
    """A ``sid`` that is no string is written into the path as Clerk's ``joinPaths`` writes it (``String()``),
    never as Python's ``str()`` (``1.0``, ``True``, ``{'a': 1}``), and encoded so it stays one path segment."""
    forger = ClerkTestIssuer(kid=live.issuer.kid, frontend_api=live.issuer.frontend_api, instance="live")
    suffix = cookie_suffix(live.issuer.publishable_key)
    expired = live.stale_cookies()["__session"]
    for sid, segment in [(1.0, "1"), (True, "true"), ({"a": 1}, "%5Bobject%20Object%5D"), (["a", "b"], "a%2Cb")]:
        forged = forger.sign(forger.session_claims(extra_claims={"sid": sid}))
        client = _client(live.app(), {"__session": forged, f"__refresh_{suffix}": "rt_1"})
        client.get("/api/me", headers={"Authorization": f"Bearer {expired}"})
        assert live.backend.count("POST", f"/v1/sessions/{segment}/refresh") == 1, live.backend.calls[-1].path


def test_a_session_id_with_a_lone_surrogate_is_no_server_error(live: Env) -> None:
    """JSON's ``"\\ud800"`` is a lone surrogate, which UTF-8 cannot encode: quoting it into the path raised (a 500).
    It goes out as WHATWG's URL writes it, U+FFFD."""
    forged_claims = {**live.issuer.session_claims(), "sid": "s\ud800"}
    forged = f"{_segment({'alg': 'RS256'})}.{_segment(forged_claims)}.AAAA"
    suffix = cookie_suffix(live.issuer.publishable_key)
    client = _client(live.app(), {"__session": forged, f"__refresh_{suffix}": "rt_1"})
    expired = live.stale_cookies()["__session"]
    response = client.get("/api/me", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401
    assert response.headers["x-clerk-auth-reason"] == "session-token-expired-refresh-refresh_token_invalid"
    assert live.backend.count("POST", "/v1/sessions/s%EF%BF%BD/refresh") == 1


def _segment(value: Any) -> str:
    """A JWT segment of ``value`` as JSON with its escapes (a lone surrogate stays ``\\ud800``)."""
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


# --------------------------------------------------------------------------------------------- satellite domains
@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"CLERK_IS_SATELLITE": True}, "CLERK_DOMAIN"),
        ({"CLERK_IS_SATELLITE": True, "CLERK_DOMAIN": "satellite.test"}, "needs CLERK_SIGN_IN_URL"),
        (
            {"CLERK_IS_SATELLITE": True, "CLERK_DOMAIN": "satellite.test", "CLERK_SIGN_IN_URL": "/sign-in"},
            "absolute URL",
        ),
        (
            {
                "CLERK_IS_SATELLITE": True,
                "CLERK_DOMAIN": "Satellite.test",
                "CLERK_SIGN_IN_URL": "https://satellite.test/in",
            },
            "own origin",
        ),
        (
            {
                "CLERK_IS_SATELLITE": True,
                "CLERK_DOMAIN": "satellite.test:8080",
                "CLERK_SIGN_IN_URL": "http://satellite.test:8080/",
            },
            "own origin",
        ),
    ],
)
def test_satellite_settings_are_checked_at_init(
    dev_issuer: ClerkTestIssuer, config: dict[str, Any], message: str
) -> None:
    app = Flask("satellite")
    app.config.update(
        CLERK_SECRET_KEY=dev_issuer.secret_key, CLERK_PUBLISHABLE_KEY=dev_issuer.publishable_key, **config
    )
    with pytest.raises(ConfigurationError, match=message):
        ClerkSecurity(app)


def test_a_satellite_sign_in_url_on_another_port_is_another_origin(dev_issuer: ClerkTestIssuer) -> None:
    app = Flask("satellite")
    app.config.update(
        **dev_issuer.config,
        CLERK_IS_SATELLITE=True,
        CLERK_DOMAIN="satellite.test:3000",
        CLERK_SIGN_IN_URL="http://satellite.test/sign-in",
    )
    ClerkSecurity(app)


@pytest.mark.parametrize("domain", ["localhost:3001", "http://localhost:3001", "localhost"])
def test_a_local_development_satellite_is_accepted(dev_issuer: ClerkTestIssuer, domain: str) -> None:
    """Clerk's satellite guide develops on localhost: the primary on ``localhost:3000``, the satellite's domain
    ``localhost:3001`` (a development domain "can contain the port"). A one-label host is a host too."""
    app = Flask("satellite")
    app.config.update(
        **dev_issuer.config,
        CLERK_IS_SATELLITE=True,
        CLERK_DOMAIN=domain,
        CLERK_SIGN_IN_URL="http://localhost:3000/sign-in",
    )
    ClerkSecurity(app)
    assert app.extensions["clerk_security"].settings.domain == domain.removeprefix("http://")
    same = Flask("satellite")
    same.config.update(app.config, CLERK_SIGN_IN_URL="http://localhost:3001/sign-in", CLERK_DOMAIN="localhost:3001")
    with pytest.raises(ConfigurationError, match="own origin"):
        ClerkSecurity(same)


def test_a_satellite_request_on_its_sign_in_urls_origin_is_not_synced_with_itself(
    dev: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """No CLERK_DOMAIN to check at init (a proxy URL instead): the request's own origin is the sign-in page's."""
    app = dev.app(CLERK_IS_SATELLITE=True, CLERK_SATELLITE_AUTO_SYNC=True, CLERK_SIGN_IN_URL="http://localhost/sign-in")
    client = _client(app, {"__clerk_db_jwt": "dvb_1"})
    with caplog.at_level(logging.WARNING, logger="flask_clerk_security"):
        response = client.get("/welcome", headers=DOC)
    assert (response.status_code, response.text) == (200, "<p>guest</p>")
    assert response.headers["x-clerk-auth-reason"] == "satellite-needs-syncing"
    assert "CLERK_SIGN_IN_URL must be the primary app's sign-in page" in caplog.text
    # On another origin the same satellite syncs with the primary's sign-in page, as Clerk's does.
    other = client.get("/welcome", headers=DOC, base_url="http://satellite.test")
    assert other.status_code == 307
    assert other.headers["Location"].startswith("http://localhost/sign-in?__clerk_redirect_url=")


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//satellite.test:3000/x",
        "javascript:alert(1)",
        "http://user@satellite.test:3000/x",
        "http://satellite.test:3001/x",
        "http://[/x",
    ],
)
def test_a_primary_answers_redirect_urls_only_for_listed_origins(dev: Env, target: str) -> None:
    app = dev.app(CLERK_AUTHORIZED_PARTIES=["http://satellite.test:3000", "http://localhost"])
    cookies = dev.fresh_cookies(azp="http://localhost")
    client = _client(app, {**cookies, "__clerk_db_jwt": "dvb_1"})
    response = client.get("/dashboard", query_string={"__clerk_redirect_url": target}, headers=DOC)
    assert response.status_code == 200, response.headers.get("Location")
    listed = client.get(
        "/dashboard", query_string={"__clerk_redirect_url": "http://SATELLITE.test:3000/x"}, headers=DOC
    )
    assert listed.status_code == 307
    assert listed.headers["Location"] == "http://satellite.test:3000/x?__clerk_db_jwt=dvb_1&__clerk_synced=true"


def test_a_primary_says_once_why_it_ignores_an_unlisted_satellite(
    dev: Env, caplog: pytest.LogCaptureFixture, fresh_warnings: None
) -> None:
    """A development primary without CLERK_AUTHORIZED_PARTIES (the default) never answers a satellite's sync:
    the log names the setting and the origin to list, once per process (anyone can send the parameter)."""
    client = _client(dev.app(), {**dev.fresh_cookies(), "__clerk_db_jwt": "dvb_1"})
    with caplog.at_level(logging.WARNING, logger="flask_clerk_security"):
        for target in ("http://localhost:3001/x", "https://evil.example/"):
            response = client.get("/dashboard", query_string={"__clerk_redirect_url": target}, headers=DOC)
            assert response.status_code == 200
    assert caplog.text.count("__clerk_redirect_url") == 1
    assert "add 'http://localhost:3001' to CLERK_AUTHORIZED_PARTIES" in caplog.text


@pytest.mark.parametrize(
    ("party", "target"),
    [
        ("http://[::1]:3000", "http://[::1]:3000/x"),
        ("http://[0:0::1]:3000", "http://[::1]:3000/x"),  # listed in another spelling of the same address
        ("http://[2001:DB8::1]", "http://[2001:db8:0:0::1]:80/x"),
    ],
)
def test_a_primary_answers_redirect_urls_for_listed_ipv6_origins(dev: Env, party: str, target: str) -> None:
    app = dev.app(CLERK_AUTHORIZED_PARTIES=[party, "http://localhost"])
    client = _client(app, {**dev.fresh_cookies(azp="http://localhost"), "__clerk_db_jwt": "dvb_1"})
    response = client.get("/dashboard", query_string={"__clerk_redirect_url": target}, headers=DOC)
    assert response.status_code == 307
    assert response.headers["Location"] == f"{target}?__clerk_db_jwt=dvb_1&__clerk_synced=true"
    other = client.get("/dashboard", query_string={"__clerk_redirect_url": "http://[::2]:3000/x"}, headers=DOC)
    assert other.status_code == 200


# --------------------------------------------------------------------------------------------- organization sync
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"organization_patterns": ["/orgs/:slug:id"]}, "not a valid Clerk route pattern"),
        ({"organizationPatterns": ["/o/(("]}, "not a valid Clerk route pattern"),
        ({"org_patterns": ["/orgs/:slug"]}, "unknown keys"),
        (["/orgs/:slug"], "must be a mapping"),
        # Clerk's match() gives a list for a repeated :slug/:id, which never equals the session's organization.
        ({"organization_patterns": ["/orgs/:slug+"]}, r"repeats :slug \('\+' or '\*'\)"),
        ({"organization_patterns": ["/o/:id*"]}, "names no single organization"),
        # A pattern that matches but names no :slug or :id activates nothing: Clerk ignores such a match silently.
        ({"organization_patterns": ["/orgs/:slugs"]}, r"'/orgs/:slugs' has no :slug or :id"),
        ({"organization_patterns": ["/orgs/[slug]"]}, "has no :slug or :id"),
        ({"organization_patterns": ["/orgs/{slug}"]}, "has no :slug or :id"),
        ({"organization_patterns": ["/orgs/(.*)"]}, "has no :slug or :id"),
        # A pattern that can never match a path, or a glob, is refused with the pattern Clerk's syntax expects.
        ({"organization_patterns": ["orgs/:slug"]}, r"can never match .*Fix: write '/orgs/:slug'"),
        ({"personal_account_patterns": ["me"]}, r"personal account pattern 'me' can never match .*'/me'"),
        ({"organization_patterns": ["/orgs/:slug/*"]}, r"Fix: write '/orgs/:slug/\(\.\*\)'"),
    ],
)
def test_organization_sync_patterns_are_checked_at_init(live: Env, value: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        live.app(CLERK_ORGANIZATION_SYNC=value)


def test_organization_sync_reads_json_and_camel_case(live: Env) -> None:
    sync = '{"organizationPatterns": ["/orgs/:slug"], "personalAccountPatterns": ["/me"]}'
    client = _client(live.app(CLERK_ORGANIZATION_SYNC=sync), live.fresh_cookies(org={"id": "org_1", "slug": "acme"}))
    assert client.get("/orgs/acme", headers=DOC).status_code == 200
    response = client.get("/orgs/globex", headers=DOC)
    assert response.status_code == 307
    query = _query(response.headers["Location"])
    assert (query["__clerk_hs_reason"], query["organization_id"]) == ("active-organization-mismatch", "globex")
    assert _query(client.get("/me", headers=DOC).headers["Location"])["organization_id"] == ""


@pytest.mark.parametrize("audience", ["https://api.example.com", "https://wrong.example"], ids=["right", "wrong"])
def test_development_clock_skew_retry_still_checks_audience(dev: Env, audience: str) -> None:
    """A development handshake's session token both expired and for another audience does not sign in (the first
    verification refuses its audience before its times; the 24 h skew retry checks it too, see below)."""
    now = int(time.time())
    claims = {**dev.issuer.session_claims(user_id="user_late"), "aud": audience}
    claims.update(iat=now - 7200, nbf=now - 7210, exp=now - 7140)
    directives = [f"__session={dev.issuer.sign(claims)}; Path=/", "__clerk_db_jwt=dvb_1; Path=/"]
    app = dev.app(CLERK_AUDIENCE="https://api.example.com")
    response = _handshake_return(dev, app, dev.issuer.sign({"handshake": directives}))
    signed_in = "__session" in _set_cookies(response)
    assert signed_in == (audience == "https://api.example.com")


@pytest.mark.parametrize(
    ("claim", "value", "reason"),
    [
        ("aud", "https://wrong.example", "token-verification-failed"),
        ("iss", "https://wrong.example", "token-invalid-issuer"),
    ],
)
def test_development_clock_skew_retry_verifier_checks_everything_but_the_clock(
    dev: Env, claim: str, value: str, reason: str
) -> None:
    """The retry built its own TokenVerifier from the key source and authorized parties only: CLERK_AUDIENCE and
    CLERK_ISSUER were not checked by it. Its verifier now has every setting of the app's but the clock skew."""
    from flask_clerk_security.handshake import DEV_HANDSHAKE_SKEW
    from flask_clerk_security.state import get_state

    app = dev.app(CLERK_AUDIENCE="https://api.example.com", CLERK_ISSUER=dev.issuer.issuer)
    handshake = get_state(app).authenticator.pages.handshake
    lenient = handshake.verifier.with_clock_skew(DEV_HANDSHAKE_SKEW)
    now = int(time.time())
    claims = {**dev.issuer.session_claims(), "aud": "https://api.example.com", "iat": now - 7200}
    claims.update(nbf=now - 7210, exp=now - 7140)
    assert lenient.verify(dev.issuer.sign(claims))["sub"] == claims["sub"]  # only the clock is lenient
    with pytest.raises(TokenVerificationError) as refused:
        lenient.verify(dev.issuer.sign({**claims, claim: value}))
    assert refused.value.reason == reason
