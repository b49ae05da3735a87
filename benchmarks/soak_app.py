"""The app ``benchmarks/soak.py`` serves under gunicorn (``benchmarks.soak_app:app``), built like a real one.

Configured from the environment as in production (``CLERK_SECRET_KEY``, ``CLERK_API_URL``,
``CLERK_RATELIMIT_STORAGE_URI``, ...), behind ProxyFix, with logging configured so the extension's log lines
reach gunicorn's stderr. ``SOAK_RUNS_FILE`` is where the webhook handler appends one line per run.
Every answer carries ``X-Soak-Pid`` (the worker that made it).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask, Response
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_clerk_security import ClerkSecurity, current_auth, current_user
from flask_clerk_security.webhooks import WebhookEvent

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
logging.getLogger("flask_clerk_security").setLevel(logging.WARNING)


def create_app() -> Flask:
    app = Flask("soak")
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)  # type: ignore[method-assign]
    clerk = ClerkSecurity(app)
    runs_file = os.environ["SOAK_RUNS_FILE"]

    @app.get("/public")
    @clerk.public
    def public() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/api/me")
    def me() -> dict[str, Any]:
        return {"user_id": current_auth.user_id}

    @app.get("/api/profile")
    def profile() -> dict[str, Any]:
        user = current_user._get_current_object()  # cached across requests (Redis), fetched from the Backend API
        return {"user_id": user.id if user else None}

    @app.get("/api/limited")
    @clerk.limiter.limit("3 per minute")
    def limited() -> dict[str, Any]:
        return {"user_id": current_auth.user_id}

    @app.get("/api/machine")
    @clerk.require(accepts_token="api_key")
    def machine() -> dict[str, Any]:
        return {"user_id": current_auth.user_id}

    @clerk.webhooks.on("user.created")
    def user_created(event: WebhookEvent) -> None:
        # One write() of a short line with O_APPEND: lines from several workers never interleave.
        fd = os.open(runs_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{event.id} {os.getpid()}\n".encode())
        finally:
            os.close(fd)

    app.register_blueprint(clerk.webhooks)

    @app.after_request
    def tag_worker(response: Response) -> Response:
        response.headers["X-Soak-Pid"] = str(os.getpid())
        return response

    return app


app = create_app()
