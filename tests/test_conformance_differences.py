"""Intended differences from Clerk found by the parity review (issue 17 #9), each pinned with its reason.

Clerk's side of the first two lives in ``@clerk/nextjs`` (``src/server/protect.ts``), which the oracle does not
install; it is quoted here. The third is Clerk's ``@clerk/backend`` (pinned in tests/conformance), run by
``clerk_pages.mjs`` on the same request as ours.

1. **A machine token on a permission-gated route.** Clerk's ``auth.protect({permission})`` returns a machine
   token's auth object without calling ``has()`` ("they don't have ... organization permissions"), so the
   permission is not checked at all. Here ``has()`` runs and is ``False`` for machine tokens: 403. Letting every
   valid API key through a ``permission=`` gate would turn a typo in ``accepts_token`` into an authorization hole.
2. **A signed-out non-GET page navigation** (``Accept: text/html``, e.g. a form POST). Clerk's ``isPageRequest``
   ignores the method and redirects with a 307, which makes the browser re-send the form body to the sign-in
   page (on the Account Portal, another origin, by default). Here only GET navigations redirect; a write gets 401.
3. **A relative ``CLERK_PROXY_URL``** (``/__clerk``). Clerk resolves it against the origin it reads from
   ``x-forwarded-host``/``x-forwarded-proto``, which any client can send; here it is resolved against
   ``request.host``, which follows those headers only behind ``werkzeug.middleware.proxy_fix.ProxyFix`` (the
   app states which proxies it trusts). Behind ProxyFix the handshake URL is Clerk's.
4. **A satellite request whose ``Origin`` is the sign-in page's.** Clerk's ``assertSignInUrlFormatAndOrigin``
   throws (a 500 in its SDKs) when the ``Origin`` header equals ``signInUrl``'s origin: any page on the primary
   that calls the satellite, or any client sending that header, gets an error. Here the configuration is checked
   at init (``CLERK_SIGN_IN_URL`` on ``CLERK_DOMAIN``'s origin is refused), the ``Origin`` header is not read
   for it, and a request that arrives on the sign-in page's own origin is not synced with itself (it stays
   signed out, and the log says why once).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_clerk_security import ClerkSecurity
from flask_clerk_security.testing import BackendAPIStandIn, ClerkTestIssuer

from .oracle import run_node_raw

DOC = {"sec-fetch-dest": "document", "accept": "text/html,application/xhtml+xml"}


def test_machine_token_on_a_permission_route_is_refused(
    clerk_issuer: ClerkTestIssuer, clerk_backend_api: BackendAPIStandIn
) -> None:
    """Difference 1: Clerk returns the machine auth without has(); we answer 403."""
    app = Flask("permission_route")
    app.config.update(TESTING=True, CLERK_SECRET_KEY=clerk_issuer.secret_key, CLERK_API_URL=clerk_backend_api.url)
    clerk = ClerkSecurity(app)

    @app.get("/api/admin")
    @clerk.require(accepts_token=["session_token", "api_key"], permission="org:admin:read")
    def admin() -> dict[str, str]:
        return {"ok": "yes"}

    key = clerk_backend_api.mint_api_key(subject="org_1", scopes=["org:admin:read"])
    response = app.test_client().get("/api/admin", headers={"Authorization": f"Bearer {key}"})
    assert (response.status_code, response.get_json()) == (403, {"error": "forbidden"})


def test_signed_out_form_post_is_not_redirected() -> None:
    """Difference 2: Clerk 307-redirects a signed-out POST navigation (re-posting the body); we answer 401."""
    issuer = ClerkTestIssuer(instance="live")  # no dev-browser handshake: a signed-out GET goes to sign-in
    app = Flask("form_post")
    app.config.update(TESTING=True, **issuer.config, CLERK_SIGN_IN_URL="/sign-in")
    clerk = ClerkSecurity(app)

    @app.route("/settings", methods=["GET", "POST"])
    @clerk.require
    def settings() -> str:
        return "saved"

    client = app.test_client()
    post = client.post("/settings", data={"name": "x"}, headers=DOC)
    assert post.status_code == 401 and "Location" not in post.headers
    get = client.get("/settings", headers=DOC)
    assert get.status_code == 307 and urlsplit(get.headers["Location"]).path == "/sign-in"


def _clerk_handshake_location(
    node: str, issuer: ClerkTestIssuer, headers: dict[str, str], cookies: dict[str, str]
) -> Any:
    case = {
        "id": "relative_proxy",
        "method": "GET",
        "url": "http://localhost:5000/dashboard",
        "headers": {"host": "localhost:5000", **headers},
        "cookies": cookies,
        "secretKey": issuer.secret_key,
        "publishableKey": issuer.publishable_key,
        "jwtKey": issuer.public_pem,
        "proxyUrl": "/__clerk",
    }
    [answer] = run_node_raw(node, "clerk_pages.mjs", [case])
    assert answer["status"] == "handshake", answer
    return answer["location"]


def test_relative_proxy_url_follows_forwarded_headers_only_behind_proxyfix(conformance_node: str) -> None:
    """Difference 3: Clerk trusts x-forwarded-* for a relative proxy URL; we do behind ProxyFix, and then agree."""
    issuer = ClerkTestIssuer(instance="live")
    forwarded = {"x-forwarded-host": "app.example.com", "x-forwarded-proto": "https"}
    cookies = {"__client_uat": str(int(time.time()) - 60)}  # signed in elsewhere, no session here: a handshake
    theirs = urlsplit(_clerk_handshake_location(conformance_node, issuer, {**DOC, **forwarded}, cookies))
    assert (theirs.scheme, theirs.netloc, theirs.path) == ("https", "app.example.com", "/__clerk/v1/client/handshake")

    def our_location(proxy_fix: bool) -> Any:
        app = Flask("relative_proxy")
        app.config.update(TESTING=True, **issuer.config, CLERK_PROXY_URL="/__clerk")
        clerk = ClerkSecurity(app)

        @app.get("/dashboard")
        @clerk.require
        def dashboard() -> str:
            return "ok"

        if proxy_fix:
            app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1, x_host=1)  # type: ignore[method-assign]
        client = app.test_client()
        for name, value in cookies.items():
            client.set_cookie(name, value, domain="localhost")
        response = client.get("/dashboard", headers={**DOC, **forwarded}, base_url="http://localhost:5000")
        assert response.status_code == 307, response.text
        return urlsplit(response.headers["Location"])

    without = our_location(proxy_fix=False)
    assert (without.scheme, without.netloc) == ("http", "localhost:5000")  # the forwarded headers are not trusted
    behind = our_location(proxy_fix=True)
    assert (behind.scheme, behind.netloc, behind.path) == (theirs.scheme, theirs.netloc, theirs.path)


def test_a_satellite_request_from_the_primarys_origin_is_answered(conformance_node: str) -> None:
    """Difference 4: Clerk throws on an Origin header equal to the sign-in URL's origin; we answer as without it."""
    issuer = ClerkTestIssuer(instance="live")
    primary = "https://primary.test"
    cookies = {"__client_uat": "0"}
    case = {
        "id": "satellite_origin",
        "method": "GET",
        "url": "http://localhost:5000/dashboard",
        "headers": {"host": "localhost:5000", "origin": primary, "accept": "application/json"},
        "cookies": cookies,
        "secretKey": issuer.secret_key,
        "publishableKey": issuer.publishable_key,
        "jwtKey": issuer.public_pem,
        "options": {"isSatellite": True, "domain": "satellite.test", "signInUrl": f"{primary}/sign-in"},
    }
    [theirs] = run_node_raw(conformance_node, "clerk_pages.mjs", [case])
    assert theirs["status"] == "error", theirs
    assert "signInUrl needs to be on a different origin" in theirs["error"]
    [without_origin] = run_node_raw(
        conformance_node,
        "clerk_pages.mjs",
        [{**case, "headers": {"host": "localhost:5000", "accept": "application/json"}}],
    )

    app = Flask("satellite_origin")
    app.config.update(
        TESTING=True,
        **issuer.config,
        CLERK_IS_SATELLITE=True,
        CLERK_DOMAIN="satellite.test",
        CLERK_SIGN_IN_URL=f"{primary}/sign-in",
    )
    ClerkSecurity(app)
    app.add_url_rule("/dashboard", view_func=lambda: "ok")
    response = app.test_client().get(
        "/dashboard", headers={"Origin": primary, "Accept": "application/json"}, base_url="http://localhost:5000"
    )
    assert response.status_code == 401
    assert (response.headers["x-clerk-auth-status"], response.headers["x-clerk-auth-reason"]) == (
        without_origin["status"],
        without_origin["reason"],
    )
