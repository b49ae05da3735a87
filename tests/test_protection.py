"""Default-deny protection: where tokens are read, public routes, cookies, CSRF, signed-out answers."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import pytest
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st

from flask_clerk_security import ClerkSecurity, ConfigurationError, current_auth
from flask_clerk_security.authenticate import cookie_suffix
from flask_clerk_security.testing import ClerkTestIssuer

from .conftest import AppFactory


def test_protected_route_needs_a_token(client: Any) -> None:
    response = client.get("/api/me")
    assert response.status_code == 401
    assert response.get_json() == {"error": "unauthorized"}
    assert response.headers["WWW-Authenticate"] == "Bearer"
    # A development instance (pk_test_) first needs Clerk's dev-browser cookie, as in @clerk/backend.
    assert response.headers["x-clerk-auth-reason"] == "dev-browser-missing"


def test_bearer_token_is_accepted(client: Any, clerk_issuer: ClerkTestIssuer) -> None:
    response = client.get("/api/me", headers=clerk_issuer.auth_header(user_id="user_9"))
    assert response.status_code == 200
    assert response.get_json() == {"user_id": "user_9", "org_id": None}


def test_bare_authorization_value_is_a_token_but_other_schemes_are_not(
    client: Any, clerk_issuer: ClerkTestIssuer
) -> None:
    token = clerk_issuer.session_token()
    assert client.get("/api/me", headers={"Authorization": token}).status_code == 200
    assert client.get("/api/me", headers={"Authorization": f"bearer {token}"}).status_code == 401
    assert client.get("/api/me", headers={"Authorization": f"Basic {token}"}).status_code == 401


def test_tokens_in_query_strings_are_never_read(client: Any, clerk_issuer: ClerkTestIssuer) -> None:
    token = clerk_issuer.session_token()
    for name in ("token", "__session", "access_token", "__clerk_db_jwt"):
        assert client.get(f"/api/me?{name}={token}").status_code == 401


def test_public_decorator_and_options_preflight(client: Any) -> None:
    assert client.get("/health").status_code == 200
    assert client.options("/api/me").status_code == 200
    assert client.get("/nope").status_code == 404


def test_static_files_are_public(clerk_issuer: ClerkTestIssuer, tmp_path: Any) -> None:
    (tmp_path / "app.css").write_text("body{}")
    app = Flask("static_app", static_folder=str(tmp_path), static_url_path="/static")
    app.config.update(TESTING=True, **clerk_issuer.config)
    ClerkSecurity(app)
    assert app.test_client().get("/static/app.css").status_code == 200


def test_public_route_patterns(app_factory: AppFactory) -> None:
    app, _ = app_factory(public_routes=["/sign-in(.*)", "/api/public/:id"])

    @app.get("/sign-in/<path:rest>")
    def sign_in(rest: str) -> str:
        return "sign in"

    @app.get("/api/public/<item>")
    def public_item(item: str) -> dict[str, Any]:
        return {"item": item, "user": current_auth.user_id}

    client = app.test_client()
    assert client.get("/sign-in/factor-one").status_code == 200
    assert client.get("/api/public/7").get_json() == {"item": "7", "user": None}
    assert client.get("/api/me").status_code == 401


def test_public_routes_from_config_string(app_factory: AppFactory) -> None:
    app, _ = app_factory({"CLERK_PUBLIC_ROUTES": "/api/me, /other"})
    assert app.test_client().get("/api/me").status_code == 200


def test_public_route_still_sees_a_signed_in_user(client: Any, clerk_issuer: ClerkTestIssuer) -> None:
    app = client.application

    @app.get("/hello")
    @ClerkSecurity.public
    def hello() -> dict[str, Any]:
        return {"user": current_auth.user_id, "signed_in": current_auth.is_authenticated}

    assert client.get("/hello").get_json() == {"user": None, "signed_in": False}
    assert client.get("/hello", headers=clerk_issuer.auth_header()).get_json() == {
        "user": "user_123",
        "signed_in": True,
    }


def session_cookies(issuer: ClerkTestIssuer, client: Any, suffixed: bool = False, **claims: Any) -> None:
    for name, value in issuer.session_cookies(**claims, extra_claims={"suffixed": suffixed}).items():
        client.set_cookie(name, value)


def test_cookie_session(client: Any, clerk_issuer: ClerkTestIssuer) -> None:
    session_cookies(clerk_issuer, client)
    assert client.get("/api/me").status_code == 200


def test_suffixed_cookies(client: Any, clerk_issuer: ClerkTestIssuer) -> None:
    session_cookies(clerk_issuer, client, suffixed=True, user_id="user_s")
    assert client.get("/api/me").get_json()["user_id"] == "user_s"


def test_cookie_suffix_matches_clerk() -> None:
    # The value @clerk/shared's getCookieSuffix gives for this key.
    assert cookie_suffix("pk_test_Y2xlcmsuZXhhbXBsZS5jb20k") == "l2OS3d9k"


@pytest.mark.parametrize(
    ("cookies", "reason"),
    [
        ({}, "session-token-and-uat-missing"),
        ({"__client_uat": "0"}, "session-token-and-uat-missing"),
        ({"__client_uat": "1700000000"}, "client-uat-but-no-session-token"),
        ({"__session": "TOKEN"}, "session-token-but-no-client-uat"),
        ({"__session": "TOKEN", "__client_uat": "0"}, "session-token-but-no-client-uat"),
        ({"__session": "TOKEN", "__client_uat": "FUTURE"}, "session-token-iat-before-client-uat"),
        ({"__session": "garbage", "__client_uat": "1700000000"}, "token-invalid"),
    ],
)
def test_cookie_rules(client: Any, clerk_issuer: ClerkTestIssuer, cookies: dict[str, str], reason: str) -> None:
    token = clerk_issuer.session_token()
    client.set_cookie("__clerk_db_jwt", "dvb_test")
    for name, value in cookies.items():
        value = value.replace("TOKEN", token).replace("FUTURE", str(int(time.time()) + 3600))
        client.set_cookie(name, value)
    response = client.get("/api/me")
    assert response.status_code == 401
    assert response.headers["x-clerk-auth-reason"] == reason


def test_header_wins_over_cookie(client: Any, clerk_issuer: ClerkTestIssuer) -> None:
    session_cookies(clerk_issuer, client, user_id="user_cookie")
    response = client.get("/api/me", headers=clerk_issuer.auth_header(user_id="user_header"))
    assert response.get_json()["user_id"] == "user_header"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 403),
        ({"Origin": "https://evil.example"}, 403),
        ({"Origin": "null"}, 403),
        ({"Origin": "null", "Referer": "http://localhost/page"}, 200),  # privacy-mode origin: the Referer decides
        ({"Origin": "null", "Referer": "https://evil.example/page"}, 403),
        ({"Origin": "null", "Referer": "https://app.example.com/page"}, 200),
        ({"Referer": "https://evil.example/page"}, 403),
        ({"Origin": "http://localhost"}, 200),
        ({"Referer": "http://localhost/page"}, 200),
        ({"Origin": "https://app.example.com"}, 200),
    ],
)
def test_cookie_writes_need_a_trusted_origin(
    app_factory: AppFactory, clerk_issuer: ClerkTestIssuer, headers: dict[str, str], status: int
) -> None:
    app, _ = app_factory({"CLERK_AUTHORIZED_PARTIES": "https://app.example.com"})
    client = app.test_client()
    session_cookies(clerk_issuer, client, azp="https://app.example.com")
    response = client.post("/api/me", headers=headers)
    assert response.status_code == status
    if status == 403:
        assert response.get_json() == {"error": "forbidden"}


def test_bearer_writes_need_no_origin(client: Any, clerk_issuer: ClerkTestIssuer) -> None:
    assert client.post("/api/me", headers=clerk_issuer.auth_header()).status_code == 200


@pytest.fixture
def live_config(clerk_issuer: ClerkTestIssuer) -> dict[str, str]:
    """A production instance (no dev-browser handshake) with the same signing key."""
    return ClerkTestIssuer(instance="live", private_key=clerk_issuer.private_key).config


def test_page_request_redirects_to_sign_in(app_factory: AppFactory, live_config: dict[str, str]) -> None:
    app, _ = app_factory({**live_config, "CLERK_SIGN_IN_URL": "https://accounts.example.com/sign-in"})
    client = app.test_client()
    page = client.get("/api/me?tab=2", headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 307
    assert page.headers["Location"] == (
        "https://accounts.example.com/sign-in?redirect_url=http%3A%2F%2Flocalhost%2Fapi%2Fme%3Ftab%3D2"
    )
    api = client.get("/api/me", headers={"Accept": "application/json"})
    assert api.status_code == 401
    fetch = client.get("/api/me", headers={"Accept": "text/html", "Sec-Fetch-Dest": "empty"})
    assert fetch.status_code == 401


def test_without_sign_in_url_pages_go_to_the_account_portal(
    app_factory: AppFactory, live_config: dict[str, str]
) -> None:
    app, _ = app_factory(live_config)
    page = app.test_client().get("/api/me", headers={"Accept": "text/html", "Sec-Fetch-Dest": "document"})
    assert page.status_code == 307
    assert page.headers["Location"].startswith("https://accounts.example.test/sign-in?redirect_url=")


def test_without_publishable_key_pages_get_401(clerk_issuer: ClerkTestIssuer) -> None:
    app = Flask("no_pk")
    app.config.update(TESTING=True, CLERK_JWT_KEY=clerk_issuer.public_pem)
    ClerkSecurity(app)
    app.add_url_rule("/page", "page", lambda: "page")
    assert app.test_client().get("/page", headers={"Accept": "text/html"}).status_code == 401


def test_reason_is_logged_but_never_the_token(
    client: Any, clerk_issuer: ClerkTestIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    token = clerk_issuer.session_token(lifetime=-60)
    with caplog.at_level(logging.DEBUG, logger="flask_clerk_security"):
        response = client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert "token-expired" in caplog.text
    assert token not in caplog.text and token.split(".")[2] not in caplog.text
    assert token.encode() not in response.data


def test_several_apps_in_one_process(clerk_issuer: ClerkTestIssuer) -> None:
    other_issuer = ClerkTestIssuer(kid="ins_other")
    clerk = ClerkSecurity()
    apps = []
    for issuer in (clerk_issuer, other_issuer):
        app = Flask(f"app_{issuer.kid}")
        app.config.update(TESTING=True, **issuer.config)
        clerk.init_app(app)
        app.add_url_rule("/me", "me", lambda: {"user": current_auth.user_id})
        apps.append(app)
    first, second = (app.test_client() for app in apps)
    assert first.get("/me", headers=clerk_issuer.auth_header()).status_code == 200
    assert first.get("/me", headers=other_issuer.auth_header()).status_code == 401
    assert second.get("/me", headers=other_issuer.auth_header()).status_code == 200
    assert second.get("/me", headers=clerk_issuer.auth_header()).status_code == 401


def test_auth_is_computed_once_per_request(client: Any, clerk_issuer: ClerkTestIssuer) -> None:
    app = client.application
    state = app.extensions["clerk_security"]
    calls = []
    original = state.authenticator.authenticate

    def counting(request: Any, header_token: str | None) -> Any:
        calls.append(1)
        return original(request, header_token)

    state.authenticator.authenticate = counting

    @app.get("/twice")
    def twice() -> dict[str, Any]:
        return {"a": current_auth.user_id, "b": current_auth.session_id}

    assert client.get("/twice", headers=clerk_issuer.auth_header()).get_json() == {"a": "user_123", "b": "sess_123"}
    assert calls == [1]


@pytest.mark.parametrize(
    ("headers", "claims"),
    [
        ({"typ": "at+jwt"}, {}),
        ({"cat": "cl_B7d4PD222AAA"}, {}),
        ({"cat": "cl_unknown"}, {}),
        ({}, {"user_id": "mch_machine"}),
    ],
)
def test_machine_and_template_jwts_are_not_sessions(
    client: Any, clerk_issuer: ClerkTestIssuer, headers: dict[str, str], claims: dict[str, Any]
) -> None:
    token = clerk_issuer.sign(clerk_issuer.session_claims(**claims), headers=headers)
    response = client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.headers["x-clerk-auth-reason"] == "token-type-mismatch"
    client.set_cookie("__session", token)
    client.set_cookie("__client_uat", "1")
    client.set_cookie("__clerk_db_jwt", "dvb_test")
    assert client.get("/api/me").headers["x-clerk-auth-reason"] == "token-type-mismatch"


@pytest.mark.parametrize("category", ["cl_B7d4PD111AAA", "cl_I7d4PD111III"])
def test_session_categories_are_sessions(client: Any, clerk_issuer: ClerkTestIssuer, category: str) -> None:
    token = clerk_issuer.sign(clerk_issuer.session_claims(), headers={"cat": category})
    assert client.get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200


@given(st.lists(st.sampled_from(["Bearer", "bearer", " ", "t", "x.y"]), max_size=8).map("".join))
def test_authorization_header_parsing_matches_clerks_split(value: str) -> None:
    """``token_from_authorization`` as Clerk's ``parseAuthorizationHeader``: ``header.split(' ', 2)`` in
    JavaScript keeps the first two pieces; an empty token gives back the scheme."""
    from flask_clerk_security.authenticate import token_from_authorization

    pieces = value.split(" ")[:2]  # JavaScript's split(' ', 2)
    scheme, token = pieces[0], pieces[1] if len(pieces) > 1 else ""
    expected = (scheme or None) if not token else (token if scheme == "Bearer" else None)
    assert token_from_authorization(value) == (expected if value else None)


def test_public_routes_as_regexes_callables_and_escapes_through_an_app(app_factory: AppFactory) -> None:
    app, _ = app_factory(
        public_routes=[re.compile(r"^/feeds/"), lambda path: path.endswith(".txt"), r"/files/\:raw"]
    )

    @app.get("/<path:rest>")
    def anything(rest: str) -> str:
        return rest

    client = app.test_client()
    for path in ("/feeds/news", "/robots.txt", "/files/:raw"):
        assert client.get(path).status_code == 200, path
    for path in ("/feed", "/robots.txt.bak", "/files/raw", "/files/x", "/api/me"):
        assert client.get(path).status_code == 401, path


def test_cookie_reads_need_no_origin(app_factory: AppFactory, clerk_issuer: ClerkTestIssuer) -> None:
    # The CSRF origin check is for writes: GET, HEAD, OPTIONS and TRACE pass without Origin or Referer.
    app, _ = app_factory()

    @app.route("/api/trace", methods=["TRACE"])
    def trace() -> str:
        return "traced"

    @app.route("/api/options", methods=["OPTIONS"], provide_automatic_options=False)
    def options() -> dict[str, Any]:
        return {"user_id": current_auth.user_id}  # protection lets OPTIONS through; the cookie still counts

    client = app.test_client()
    session_cookies(clerk_issuer, client)
    assert client.get("/api/me").status_code == 200
    assert client.head("/api/me").status_code == 200
    assert client.open("/api/trace", method="TRACE").status_code == 200
    assert client.options("/api/options").get_json() == {"user_id": "user_123"}
    assert client.post("/api/me").status_code == 403


def test_extension_wiring_pins(
    app_factory: AppFactory, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address

    from flask_clerk_security import config_warnings

    # Warnings go to the "flask_clerk_security" logger, the one an app configures (once per process: forget
    # that an earlier test's app said it).
    monkeypatch.setattr(config_warnings, "_warned_keys", set())
    with caplog.at_level(logging.WARNING):
        app, _ = app_factory()
    assert any(r.name == "flask_clerk_security" and "CLERK_AUTHORIZED_PARTIES" in r.message for r in caplog.records)
    assert app.config["RATELIMIT_STORAGE_URI"] == "memory://"  # the extension's own limiter: our storage setting
    # An app's own limiter keeps its own RATELIMIT_* configuration.
    own, _ = app_factory(limiter=Limiter(get_remote_address, storage_uri="memory://"))
    assert "RATELIMIT_STORAGE_URI" not in own.config
    # With machine-token caching off, its cache URI is not read at all.
    app_factory({"CLERK_MACHINE_TOKEN_CACHE_TTL": 0, "CLERK_MACHINE_TOKEN_CACHE_URI": "bogus://nowhere"})


@pytest.mark.parametrize("scopes", [[], [""], ["read", ""], {"read": True}, "read", [1]])
def test_require_scopes_must_be_a_non_empty_list_of_names(scopes: Any) -> None:
    with pytest.raises(TypeError, match="scopes"):
        ClerkSecurity().require(accepts_token="api_key", scopes=scopes)


def test_redirect_to_sign_up_and_sign_in_build_urls_as_clerks_create_redirect(app_factory: AppFactory) -> None:
    """CLERK_SIGN_UP_URL (Clerk's signUpUrl) and redirect_to_sign_up()/redirect_to_sign_in(), as createRedirect:
    redirect_url back, the Account Portal by default, the dev-browser token only to another origin."""
    from flask_clerk_security import redirect_to_sign_in, redirect_to_sign_up

    def build(**config: str) -> Any:
        app, clerk = app_factory(config)

        @app.get("/join")
        @clerk.public
        def join() -> Any:
            return redirect_to_sign_up()

        @app.get("/login")
        @clerk.public
        def login() -> Any:
            return redirect_to_sign_in(return_back_url="/after?x=1")

        client = app.test_client()
        client.set_cookie("__clerk_db_jwt", "dvb_1")
        return client

    back = "redirect_url=http%3A%2F%2Flocalhost%2Fjoin"
    response = build(CLERK_SIGN_UP_URL="https://www.example.com/sign-up?ref=a").get("/join")
    assert response.status_code == 307
    assert response.headers["Location"] == f"https://www.example.com/sign-up?ref=a&{back}&__clerk_db_jwt=dvb_1"
    portal = build().get("/join").headers["Location"]
    assert portal == f"https://accounts.example.test/sign-up?{back}&__clerk_db_jwt=dvb_1"
    assert build(CLERK_SIGN_UP_URL="/sign-up").get("/join").headers["Location"] == f"/sign-up?{back}"
    login = build(CLERK_SIGN_IN_URL="/sign-in", CLERK_SIGN_UP_URL="/sign-up").get("/login").headers["Location"]
    assert login == "/sign-in?redirect_url=http%3A%2F%2Flocalhost%2Fafter%3Fx%3D1"


def test_redirect_to_sign_up_without_any_target_is_a_configuration_error(clerk_issuer: ClerkTestIssuer) -> None:
    from flask_clerk_security import redirect_to_sign_up

    app = Flask("no_pk")
    app.config.update(TESTING=True, CLERK_JWT_KEY=clerk_issuer.public_pem)
    ClerkSecurity(app)
    with app.test_request_context("/join"), pytest.raises(ConfigurationError, match="CLERK_SIGN_UP_URL"):
        redirect_to_sign_up()
