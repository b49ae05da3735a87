"""Server-rendered pages protected by Clerk: ``flask --app examples.server_rendered run`` with CLERK_* set.

    export CLERK_SECRET_KEY=sk_test_...
    export CLERK_PUBLISHABLE_KEY=pk_test_...
    # optional: export CLERK_SIGN_IN_URL=/sign-in   (default: your instance's Account Portal)

Open http://localhost:5000/dashboard: signed out, you go to sign-in and come back; signed in with a session
token older than 60 seconds (a tab left open, a link from another site), the extension runs Clerk's handshake
and the page renders with a fresh session. ClerkJS on the page keeps the ``__session`` cookie fresh while the
tab is open.
"""

from __future__ import annotations

from html import escape
from typing import Any

from flask import Flask

from flask_clerk_security import ClerkSecurity, current_auth
from flask_clerk_security.extension import get_state

clerk = ClerkSecurity(public_routes=["/"])

_LAYOUT = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<script async crossorigin="anonymous" data-clerk-publishable-key="{pk}"
 src="https://{fapi}/npm/@clerk/clerk-js@5/dist/clerk.browser.js"
 onload="window.Clerk && window.Clerk.load()"></script></head>
<body><h1 id="who">{heading}</h1>{body}</body></html>"""


def _page(app: Flask, title: str, heading: str, body: str = "") -> str:
    settings = get_state(app).settings
    pk, fapi = settings.publishable_key or "", settings.frontend_api or ""
    return _LAYOUT.format(title=escape(title), pk=escape(pk), fapi=escape(fapi), heading=heading, body=body)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.from_prefixed_env(prefix="FLASK")
    app.config.update(config or {})
    clerk.init_app(app)

    @app.get("/")
    def home() -> str:
        who = escape(current_auth.user_id) if current_auth.is_authenticated else "guest"
        return _page(app, "Home", f"Welcome, {who}", '<p><a href="/dashboard">Dashboard</a></p>')

    @app.get("/dashboard")
    def dashboard() -> str:
        return _page(app, "Dashboard", f"Hello {escape(current_auth.user_id or '')}")

    return app
