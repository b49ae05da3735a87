"""An app that pushes an app context at import time (a common pattern), served by tests/test_request_state.py
from one gunicorn sync worker: every request then shares that app context and its ``g``.

Configured from the environment: ``CLERK_JWT_KEY`` and ``CLERK_PUBLISHABLE_KEY``.
"""

from __future__ import annotations

from flask import Flask

from flask_clerk_security import ClerkSecurity, current_auth

app = Flask(__name__)
clerk = ClerkSecurity(app)


@app.get("/health")
@clerk.public
def health() -> dict[str, str | None]:
    return {"user_id": current_auth.user_id}


@app.get("/page")
@clerk.public
def page() -> str:
    return f"<p>{current_auth.user_id or 'guest'}</p>"


@app.get("/api/me")
def me() -> dict[str, str | None]:
    return {"user_id": current_auth.user_id}


app.app_context().push()
