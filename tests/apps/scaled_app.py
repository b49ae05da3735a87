"""The app tests/test_multiprocess.py serves from two gunicorn processes sharing one Redis.

Configured from the environment as in production: ``CLERK_JWT_KEY``, ``CLERK_WEBHOOK_SECRET``,
``CLERK_RATELIMIT_STORAGE_URI`` (Redis, also the webhook replay store), ``CLERK_STORE_KEY_PREFIX``; the
``SCALED_APP_PREFIX`` variable namespaces the limiter's keys and the handler's counter for one test run.
"""

from __future__ import annotations

import os
import time

import redis
from flask import Flask

from flask_clerk_security import ClerkSecurity, current_auth
from flask_clerk_security.webhooks import WebhookEvent


def create_app() -> Flask:
    app = Flask(__name__)
    prefix = os.environ["SCALED_APP_PREFIX"]
    app.config["RATELIMIT_KEY_PREFIX"] = prefix
    app.config["CLERK_FORCE_HTTPS"] = False  # plain HTTP on loopback (read once security headers are merged)
    clerk = ClerkSecurity(app)
    counter = redis.Redis.from_url(os.environ["CLERK_RATELIMIT_STORAGE_URI"], socket_timeout=2)

    @app.get("/health")
    @clerk.public
    def health() -> dict[str, int]:
        return {"pid": os.getpid()}

    @app.get("/api/limited")
    @clerk.limiter.limit("5 per hour")
    def limited() -> dict[str, object]:
        return {"pid": os.getpid(), "user_id": current_auth.user_id}

    @clerk.webhooks.on("user.created")
    def user_created(event: WebhookEvent) -> None:
        counter.incr(f"{prefix}handled:{event.id}")
        time.sleep(0.5)  # keep the claim held while the other process receives the same delivery

    app.register_blueprint(clerk.webhooks)
    return app


app = create_app()
