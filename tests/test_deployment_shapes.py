"""The extension inside real deployment shapes, not only its own test apps.

A pushed app context, several apps and several instances in one process, several instances on one Redis,
threads serving many users at once (gunicorn's gthread worker), an app under a URL prefix (``SCRIPT_NAME``),
and one behind werkzeug's ``ProxyFix``.

The machine-token cache shared by two instances on one Redis (issue 13 #5) is tested with the stores' instance
namespace, where that is built.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.test import Client
from werkzeug.wrappers import Response

from flask_clerk_security import ClerkSecurity, current_auth
from flask_clerk_security.testing import ClerkTestIssuer

DOC = {"Sec-Fetch-Dest": "document", "Accept": "text/html"}


def _app(issuer: ClerkTestIssuer, name: str = "shape", clerk: ClerkSecurity | None = None, **config: Any) -> Flask:
    app = Flask(name)
    app.config.update(TESTING=True, **issuer.config, **config)
    if clerk is None:
        clerk = ClerkSecurity(app)
    else:
        clerk.init_app(app)

    @app.route("/api/me", methods=["GET", "POST"])
    def me() -> dict[str, Any]:
        return {"user_id": current_auth.user_id}

    @app.get("/health")
    @clerk.public
    def health() -> dict[str, Any]:
        return {"user_id": current_auth.user_id}

    @app.get("/dashboard")
    def dashboard() -> str:
        return f"<p>{current_auth.user_id}</p>"

    return app


@pytest.fixture(scope="module")
def issuer() -> ClerkTestIssuer:
    return ClerkTestIssuer(instance="live")


def _cookie_header(issuer: ClerkTestIssuer, user_id: str) -> str:
    return f"__session={issuer.session_token(user_id=user_id)}; __client_uat={int(time.time()) - 300}"


# --------------------------------------------------------------------------------------------- contexts, threads
def test_users_never_mix_under_a_pushed_app_context_and_threads(issuer: ClerkTestIssuer) -> None:
    """An app context pushed at import (shared by every request) and 8 threads serving 50 users by header
    and by cookie, with anonymous requests in between: each response names its own user, or nobody."""
    app = _app(issuer)
    context = app.app_context()
    context.push()
    try:
        tokens = {f"user_{i}": issuer.session_token(user_id=f"user_{i}") for i in range(50)}

        def one(i: int) -> tuple[str | None, Any]:
            user = f"user_{i % 50}" if i % 3 else None
            client = app.test_client(use_cookies=False)
            if user is None:
                return None, client.get("/health").get_json()["user_id"]
            if i % 2:
                response = client.get("/api/me", headers={"Authorization": f"Bearer {tokens[user]}"})
            else:
                response = client.get("/api/me", headers={"Cookie": _cookie_header(issuer, user)})
            return user, response.get_json()["user_id"]

        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(one, range(600)))
    finally:
        context.pop()
    assert all(expected == got for expected, got in answers), [a for a in answers if a[0] != a[1]][:5]


# --------------------------------------------------------------------------------------------- several apps
def test_several_apps_and_instances_in_one_process_keep_their_own_clerk(issuer: ClerkTestIssuer) -> None:
    """Two Clerk instances, three apps (one ClerkSecurity serving two of them): a token of one instance
    never signs in on an app of the other, and each app answers with its own settings."""
    other = ClerkTestIssuer(instance="live", kid="ins_other", frontend_api="clerk.other.test")
    shared = ClerkSecurity()
    first = _app(issuer, "first", clerk=shared)
    second = _app(other, "second", clerk=shared, CLERK_SIGN_IN_URL="https://other.test/sign-in")
    third = _app(issuer, "third")
    for app, own, foreign in ((first, issuer, other), (second, other, issuer), (third, issuer, other)):
        client = app.test_client()
        mine = client.get("/api/me", headers=own.auth_header(user_id="user_own"))
        theirs = client.get("/api/me", headers=foreign.auth_header(user_id="user_foreign"))
        assert mine.get_json() == {"user_id": "user_own"}
        assert theirs.status_code == 401
    page = second.test_client().get("/dashboard", headers=DOC)
    assert page.headers["Location"].startswith("https://other.test/sign-in?")
    assert first.test_client().get("/dashboard", headers=DOC).headers["Location"].startswith(
        "https://accounts.example.test/sign-in?"
    )


def test_several_instances_on_one_redis_each_get_their_own_webhook_deliveries(
    issuer: ClerkTestIssuer, redis_client: Any, redis_prefix: str
) -> None:
    """Two apps of two Clerk instances keep webhook replay ids in one Redis: a delivery id one has processed
    does not stop the other's delivery with the same id, and each still refuses its own replay."""
    other = ClerkTestIssuer(instance="live", kid="ins_other", frontend_api="clerk.other.test")
    seen: list[str] = []
    answers = []
    for own in (issuer, other):
        app = Flask(f"hooks_{own.kid}")
        app.config.update(
            TESTING=True,
            **own.config,
            CLERK_WEBHOOK_SECRET=own.webhook_secret,
            CLERK_WEBHOOK_STORE_URI="redis://127.0.0.1:6379/0",
            CLERK_STORE_KEY_PREFIX=redis_prefix,
        )
        clerk = ClerkSecurity(app)

        @clerk.webhooks.on("user.created")
        def created(event: Any) -> None:
            seen.append(event.data["id"])

        app.register_blueprint(clerk.webhooks)
        body, headers = own.sign_webhook({"type": "user.created", "data": {"id": own.kid}}, msg_id="msg_same")
        client = app.test_client()
        answers += [client.post("/api/webhooks/clerk", data=body, headers=headers).get_json() for _ in range(2)]
    assert seen == [issuer.kid, other.kid]
    assert [a.get("status") for a in answers][1::2] == ["duplicate", "duplicate"]


# --------------------------------------------------------------------------------------------- URL prefix
@pytest.fixture
def prefixed(issuer: ClerkTestIssuer) -> Iterator[tuple[Client, Flask]]:
    app = _app(issuer, CLERK_PUBLIC_ROUTES="/open(.*)")

    @app.get("/open/page")
    def open_page() -> dict[str, Any]:
        return {"user_id": current_auth.user_id}

    yield Client(DispatcherMiddleware(Response("not here", status=404), {"/app": app}), Response), app


def test_an_app_under_a_url_prefix_matches_its_public_routes_relative_to_the_app(
    prefixed: tuple[Client, Flask],
) -> None:
    client, _ = prefixed
    assert client.get("/app/open/page").status_code == 200
    assert client.get("/app/health").status_code == 200
    assert client.get("/app/api/me").status_code == 401
    assert client.get("/app/app/open/page").status_code == 404


def test_an_app_under_a_url_prefix_redirects_with_its_full_url(
    prefixed: tuple[Client, Flask], issuer: ClerkTestIssuer
) -> None:
    client, app = prefixed
    signed_out = client.get("/app/dashboard?tab=2", headers=DOC)
    assert signed_out.status_code == 307
    redirect_url = parse_qs(urlsplit(signed_out.headers["Location"]).query)["redirect_url"][0]
    assert redirect_url == "http://localhost/app/dashboard?tab=2"
    stale = f"__session={issuer.session_token(issued_at=int(time.time()) - 120)}; __client_uat=1"
    handshake = client.get("/app/dashboard", headers={**DOC, "Cookie": stale})
    assert handshake.status_code == 307
    query = parse_qs(urlsplit(handshake.headers["Location"]).query)
    assert query["redirect_url"] == ["http://localhost/app/dashboard"]
    app.config["CLERK_SIGN_IN_URL"] = "ignored: read once at init_app"


def test_a_path_sign_in_url_is_inside_the_prefixed_app(issuer: ClerkTestIssuer) -> None:
    """``CLERK_SIGN_IN_URL="/sign-in"`` names the app's own page, as ``url_for`` would: under ``/app`` it is
    ``/app/sign-in`` (before, the browser went to the host's ``/sign-in``, outside the app)."""
    app = _app(issuer, CLERK_SIGN_IN_URL="/sign-in")
    client = Client(DispatcherMiddleware(Response("not here", status=404), {"/app": app}), Response)
    location = client.get("/app/dashboard", headers=DOC).headers["Location"]
    assert location.startswith("/app/sign-in?redirect_url=")
    assert app.test_client().get("/dashboard", headers=DOC).headers["Location"].startswith("/sign-in?")


# --------------------------------------------------------------------------------------------- ProxyFix
def test_behind_proxy_fix_origin_check_and_redirects_use_the_public_url(issuer: ClerkTestIssuer) -> None:
    """TLS ends at the proxy: the app sees http://internal, the browser https://app.example.com."""
    app = _app(issuer)
    app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1, x_host=1)  # type: ignore[method-assign]
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "app.example.com"}
    client = app.test_client(use_cookies=False)
    cookie = _cookie_header(issuer, "user_1")
    same_site = client.post(
        "/api/me", headers={**forwarded, "Cookie": cookie, "Origin": "https://app.example.com"}
    )
    assert same_site.get_json() == {"user_id": "user_1"}
    cross_site = client.post("/api/me", headers={**forwarded, "Cookie": cookie, "Origin": "https://evil.test"})
    assert cross_site.status_code == 403
    plain_http = client.post("/api/me", headers={**forwarded, "Cookie": cookie, "Origin": "http://app.example.com"})
    assert plain_http.status_code == 403
    page = client.get("/dashboard?x=1", headers={**forwarded, **DOC})
    redirect_url = parse_qs(urlsplit(page.headers["Location"]).query)["redirect_url"][0]
    assert redirect_url == "https://app.example.com/dashboard?x=1"
    stale = f"__session={issuer.session_token(issued_at=int(time.time()) - 120)}; __client_uat=1"
    handshake = client.get("/dashboard", headers={**forwarded, **DOC, "Cookie": stale})
    assert parse_qs(urlsplit(handshake.headers["Location"]).query)["redirect_url"] == [
        "https://app.example.com/dashboard"
    ]
