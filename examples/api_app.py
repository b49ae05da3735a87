"""A JSON API protected by Clerk: run with ``flask --app examples.api_app run`` and CLERK_* set in the environment.

    export CLERK_SECRET_KEY=sk_test_...        # or CLERK_JWT_KEY for networkless verification
    export CLERK_PUBLISHABLE_KEY=pk_test_...
    export CLERK_AUTHORIZED_PARTIES=http://localhost:3000

Run it from the repository root. With development keys (``pk_test_``) it answers plain HTTP on 127.0.0.1 and
localhost, ``--debug`` or not; with production keys (``pk_live_``) plain HTTP is redirected to HTTPS.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from flask_clerk_security import ClerkSecurity, current_auth

clerk = ClerkSecurity(public_routes=["/health"])


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.from_prefixed_env(prefix="FLASK")
    app.config.update(config or {})
    clerk.init_app(app)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/me")
    def me() -> dict[str, Any]:
        return {"user_id": current_auth.user_id, "org_id": current_auth.org_id, "org_role": current_auth.org_role}

    @app.get("/api/reports")
    @clerk.require(permission="org:reports:read")
    def reports() -> dict[str, list[str]]:
        return {"reports": ["q1", "q2"]}

    @app.post("/api/transfer")
    @clerk.require(reverification="strict")
    def transfer() -> dict[str, bool]:
        return {"transferred": True}

    return app
