"""End to end in real headless Chromium: stale cookie -> handshake at the Frontend API stand-in -> page shows user.

The app, the Frontend API stand-in and the Backend API stand-in all listen on 127.0.0.1 (free ports).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from flask import Flask

from flask_clerk_security import ClerkSecurity, current_auth
from flask_clerk_security.testing import BackendAPIStandIn, ClerkTestIssuer, FrontendAPIStandIn, serve_app

pytestmark = pytest.mark.browser






@pytest.mark.parametrize(("instance", "use_nonce"), [("live", True), ("test", False)], ids=["prod-nonce", "dev-token"])
def test_stale_cookie_is_refreshed_through_the_handshake(browser: Any, instance: str, use_nonce: bool) -> None:
    issuer = ClerkTestIssuer(instance=instance, frontend_api="clerk.browser.test")
    with BackendAPIStandIn(issuer) as backend, FrontendAPIStandIn(issuer, backend_api=backend) as fapi:
        fapi.use_nonce = use_nonce
        fapi.signed_in_as = {"user_id": "user_browser", "azp": None}
        app = Flask("browser_handshake")
        app.config.update(
            CLERK_SECRET_KEY=issuer.secret_key,
            CLERK_PUBLISHABLE_KEY=issuer.publishable_key,
            CLERK_API_URL=backend.url,
            CLERK_PROXY_URL=fapi.url,
            CLERK_FORCE_HTTPS=False,  # served over plain HTTP on loopback
        )
        ClerkSecurity(app)

        @app.get("/dashboard")
        def dashboard() -> str:
            return f"<html><body><h1 id='who'>Hello {current_auth.user_id}</h1></body></html>"

        with serve_app(app) as base:
            now = int(time.time())
            stale = issuer.session_token(user_id="user_browser", issued_at=now - 120, azp=None)
            context = browser.new_context()
            cookies = [{"name": "__session", "value": stale}, {"name": "__client_uat", "value": str(now - 600)}]
            if instance == "test":
                cookies.append({"name": "__clerk_db_jwt", "value": fapi.dev_browser_token})
            context.add_cookies([{**c, "url": base} for c in cookies])
            page = context.new_page()
            response = page.goto(f"{base}/dashboard?tab=2", wait_until="load", timeout=15000)
            assert response is not None and response.status == 200
            assert page.inner_text("#who") == "Hello user_browser"
            if instance == "test":  # development: the app redirects to the URL without the handshake parameters
                assert page.url == f"{base}/dashboard?tab=2"
            assert len(fapi.calls) == 1
            assert fapi.calls[0]["__clerk_hs_reason"].startswith("session-token-expired")
            assert fapi.calls[0]["redirect_url"] == f"{base}/dashboard?tab=2"
            assert backend.count("GET", "/v1/clients/handshake_payload") == (1 if use_nonce else 0)
            jar = {c["name"]: c["value"] for c in context.cookies(base)}
            assert jar["__session"] != stale and int(jar["__client_uat"]) >= now - 5
            again = page.goto(f"{base}/dashboard", wait_until="load", timeout=15000)
            assert again is not None and again.status == 200 and len(fapi.calls) == 1
            context.close()
