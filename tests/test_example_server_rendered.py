"""The server_rendered example: pages render the user, stale sessions go through the handshake."""

from __future__ import annotations

import time

from examples.server_rendered import create_app
from flask_clerk_security.testing import ClerkTestIssuer

DOC = {"Sec-Fetch-Dest": "document", "Accept": "text/html"}


def test_example_renders_user_and_hands_shake_on_stale_cookie() -> None:
    issuer = ClerkTestIssuer(instance="live")
    app = create_app(
        {"TESTING": True, "CLERK_JWT_KEY": issuer.public_pem, "CLERK_PUBLISHABLE_KEY": issuer.publishable_key}
    )
    client = app.test_client()
    assert "Welcome, guest" in client.get("/", headers=DOC).text
    signed_out = client.get("/dashboard", headers=DOC)
    assert signed_out.status_code == 307
    assert signed_out.headers["Location"].startswith("https://accounts.example.test/sign-in?redirect_url=")
    now = int(time.time())
    client.set_cookie("__client_uat", str(now - 300))
    client.set_cookie("__session", issuer.session_token(user_id="user_ex"))
    page = client.get("/dashboard", headers=DOC)
    assert page.status_code == 200 and "Hello user_ex" in page.text
    assert 'data-clerk-publishable-key="' + issuer.publishable_key in page.text
    client.set_cookie("__session", issuer.session_token(user_id="user_ex", issued_at=now - 120))
    stale = client.get("/dashboard", headers=DOC)
    assert stale.status_code == 307
    assert stale.headers["Location"].startswith("https://clerk.example.test/v1/client/handshake?")
