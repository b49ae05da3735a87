"""Shared fixtures: app factories over the test kit's issuer (the kit's own fixtures come from its plugin)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from flask_clerk_security import ClerkSecurity, current_auth
from flask_clerk_security.testing import ClerkTestIssuer

AppFactory = Callable[..., tuple[Flask, ClerkSecurity]]


@pytest.fixture
def app_factory(clerk_issuer: ClerkTestIssuer) -> AppFactory:
    """Build a ClerkSecurity app verifying the issuer's tokens; config and extension options are overridable."""

    def build(config: dict[str, Any] | None = None, **options: Any) -> tuple[Flask, ClerkSecurity]:
        app = Flask("clerk_test_app")
        app.config.update(TESTING=True, **clerk_issuer.config)
        app.config.update(config or {})
        clerk = ClerkSecurity(app, **options)

        @app.get("/api/me")
        def me() -> dict[str, Any]:
            return {"user_id": current_auth.user_id, "org_id": current_auth.org_id}

        @app.post("/api/me")
        def update_me() -> dict[str, Any]:
            return {"updated": current_auth.user_id}

        @app.get("/health")
        @clerk.public
        def health() -> dict[str, str]:
            return {"status": "ok"}

        return app, clerk

    return build


@pytest.fixture
def app(app_factory: AppFactory) -> Flask:
    return app_factory()[0]


@pytest.fixture
def client(app: Flask) -> Any:
    return app.test_client()


REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def redis_client() -> Any:
    """A client for the Redis server on 127.0.0.1:6379; skips (outside CI) or fails (in CI) when none answers."""
    import os

    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        message = f"no Redis server answers on 127.0.0.1:6379 ({type(exc).__name__}); .ci/run starts one"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return client


@pytest.fixture
def redis_prefix(redis_client: Any) -> Iterator[str]:
    """A key prefix unique to this test; every key containing it is deleted afterwards."""
    import uuid

    prefix = f"fcs-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    keys = list(redis_client.scan_iter(match=f"*{prefix}*", count=500))
    if keys:
        redis_client.delete(*keys)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released): a server that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
