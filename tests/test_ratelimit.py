"""Rate limiting: Clerk-keyed flask-limiter, JSON 429s, Redis storage shared by app instances, Redis down."""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import flask
import pytest
from flask import Flask, request
from flask_limiter import Limiter
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_clerk_security import Auth, ClerkSecurity, ConfigurationError
from flask_clerk_security.ratelimit import LIMITER_HOOKS, rate_limit_key
from flask_clerk_security.signals import rate_limit_exceeded
from flask_clerk_security.state import AUTH_KEY
from flask_clerk_security.testing import ClerkTestIssuer, clerk_event

from .conftest import REDIS_URL, closed_port

_REDIS = urlsplit(REDIS_URL)
_REDIS_ADDRESS = (_REDIS.hostname or "127.0.0.1", _REDIS.port or 6379)


def _redis_url_via(port: int) -> str:
    """``REDIS_URL`` (same credentials and database) through a proxy on a loopback ``port``."""
    credentials = _REDIS.netloc.rpartition("@")[0]
    return _REDIS._replace(netloc=f"{credentials}{'@' if credentials else ''}127.0.0.1:{port}").geturl()

Build = Callable[..., tuple[Flask, ClerkSecurity]]


@pytest.fixture(autouse=True, params=["ClerkLimiter", "Limiter"])
def limiter_class(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs with ClerkLimiter, and again as if flask-limiter had changed a private hook ClerkLimiter
    overrides (``__release_context`` takes other parameters): the extension then uses a plain Limiter, and
    every limit must still hold."""
    if request.param == "Limiter":
        release = Limiter._Limiter__release_context  # type: ignore[attr-defined]
        monkeypatch.setattr(Limiter, "_Limiter__release_context", lambda self, *args: release(self, *args))
    return str(request.param)


#: For the tests of ClerkLimiter's own shortcuts, which exist only while it is used.
clerk_limiter_only = pytest.mark.parametrize("limiter_class", ["ClerkLimiter"], indirect=True)


@pytest.fixture
def limited_app(app_factory: Build) -> Build:
    """An app with ``/api/limited`` (2 per minute, protected) and ``/open`` (2 per minute, public)."""

    def build(config: dict[str, Any] | None = None, **options: Any) -> tuple[Flask, ClerkSecurity]:
        app, clerk = app_factory(config, **options)

        @app.get("/api/limited")
        @clerk.limiter.limit("2 per minute")
        def limited() -> dict[str, str]:
            return {"ok": "yes"}

        @app.get("/open")
        @clerk.public
        @clerk.limiter.limit("2 per minute")
        def open_() -> dict[str, str]:
            return {"ok": "yes"}

        return app, clerk

    return build


def statuses(client: Any, path: str, count: int, **kwargs: Any) -> list[int]:
    return [client.get(path, **kwargs).status_code for _ in range(count)]


def test_limits_are_per_clerk_user(limited_app: Build, clerk_issuer: ClerkTestIssuer) -> None:
    app, clerk = limited_app()
    assert isinstance(clerk.limiter, Limiter)
    client = app.test_client()
    alice = clerk_issuer.auth_header(user_id="user_alice")
    bob = clerk_issuer.auth_header(user_id="user_bob")
    assert statuses(client, "/api/limited", 3, headers=alice) == [200, 200, 429]
    # same client address, another user: its own budget
    assert statuses(client, "/api/limited", 2, headers=bob) == [200, 200]
    # a fresh token for alice is still alice
    assert client.get("/api/limited", headers=clerk_issuer.auth_header(user_id="user_alice")).status_code == 429


def test_signed_out_requests_are_limited_per_client_address(limited_app: Build) -> None:
    app, _ = limited_app()
    client = app.test_client()
    first = {"REMOTE_ADDR": "192.0.2.1"}
    second = {"REMOTE_ADDR": "192.0.2.2"}
    assert statuses(client, "/open", 3, environ_base=first) == [200, 200, 429]
    assert statuses(client, "/open", 2, environ_base=second) == [200, 200]


def test_proxyfix_gives_the_real_client_address(limited_app: Build) -> None:
    app, _ = limited_app()
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1)  # type: ignore[method-assign]
    client = app.test_client()
    proxy = {"REMOTE_ADDR": "10.0.0.1"}
    assert statuses(client, "/open", 3, environ_base=proxy, headers={"X-Forwarded-For": "198.51.100.7"}) == [
        200,
        200,
        429,
    ]
    assert statuses(client, "/open", 1, environ_base=proxy, headers={"X-Forwarded-For": "198.51.100.8"}) == [200]


def test_429_is_json_with_retry_after_and_rate_limit_headers(limited_app: Build, clerk_issuer: ClerkTestIssuer) -> None:
    app, _ = limited_app()
    client = app.test_client()
    headers = clerk_issuer.auth_header(user_id="user_429")
    ok = client.get("/api/limited", headers=headers)
    assert ok.headers["X-RateLimit-Limit"] == "2" and ok.headers["X-RateLimit-Remaining"] == "1"
    client.get("/api/limited", headers=headers)
    seen: list[dict[str, Any]] = []

    def receiver(sender: Any, **data: Any) -> None:
        seen.append(data)

    with rate_limit_exceeded.connected_to(receiver):
        limited = client.get("/api/limited", headers=headers)
    assert limited.status_code == 429
    assert limited.get_json() == {"error": "rate_limited"}
    assert limited.mimetype == "application/json"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    [event] = seen
    assert event["limit"] == "2 per 1 minute" and event["route"] == "/api/limited"
    assert "user:user_429" in event["key"]


def test_key_resolves_auth_lazily_whatever_the_hook_order(app_factory: Build, clerk_issuer: ClerkTestIssuer) -> None:
    """The limiter's before_request hook runs before the extension's own: the key still sees the user."""
    app, clerk = app_factory()
    order: list[str] = []
    app.before_request_funcs[None].insert(0, lambda: order.append("first hook") or None)

    @app.get("/api/who")
    @clerk.limiter.limit("1 per minute")
    def who() -> dict[str, str]:
        return {"key": rate_limit_key()}

    client = app.test_client()
    response = client.get("/api/who", headers=clerk_issuer.auth_header(user_id="user_lazy"))
    assert response.get_json() == {"key": "user:user_lazy"}
    assert client.get("/api/who", headers=clerk_issuer.auth_header(user_id="user_other")).status_code == 200
    assert order == ["first hook", "first hook"]


def test_machine_tokens_are_keyed_by_their_subject(app: Flask) -> None:
    with app.test_request_context("/", environ_base={"REMOTE_ADDR": "192.0.2.9"}):
        request.environ[AUTH_KEY] = Auth(id="m2m_1", subject="mch_worker", token_type="m2m_token")
        assert rate_limit_key() == "machine:mch_worker"
    with app.test_request_context("/", environ_base={"REMOTE_ADDR": "192.0.2.9"}):
        assert rate_limit_key() == "ip:192.0.2.9"


def test_an_apps_own_limiter_is_used(app_factory: Build, clerk_issuer: ClerkTestIssuer) -> None:
    own = Limiter(rate_limit_key, storage_uri="memory://", headers_enabled=False)
    app, clerk = app_factory(limiter=own)
    assert clerk.limiter is own

    @app.get("/api/own")
    @clerk.limiter.limit("1 per minute")
    def own_view() -> dict[str, str]:
        return {}

    client = app.test_client()
    headers = clerk_issuer.auth_header()
    assert statuses(client, "/api/own", 2, headers=headers) == [200, 429]
    assert "X-RateLimit-Limit" not in client.get("/api/own", headers=headers).headers


def test_webhook_endpoint_is_limited_per_client_address(app_factory: Build, clerk_issuer: ClerkTestIssuer) -> None:
    app, clerk = app_factory(
        {"CLERK_WEBHOOK_SECRET": clerk_issuer.webhook_secret, "CLERK_WEBHOOK_RATE_LIMIT": "2 per minute"}
    )
    app.register_blueprint(clerk.webhooks)
    client = app.test_client()

    def deliver(address: str) -> int:
        body, headers = clerk_issuer.sign_webhook(clerk_event("user.created"))
        return int(
            client.post(
                "/api/webhooks/clerk", data=body, headers=headers, environ_base={"REMOTE_ADDR": address}
            ).status_code
        )

    assert [deliver("203.0.113.1") for _ in range(3)] == [200, 200, 429]
    assert client.post("/api/webhooks/clerk", environ_base={"REMOTE_ADDR": "203.0.113.1"}).get_json() == {
        "error": "rate_limited"
    }
    assert deliver("203.0.113.2") == 200


def test_webhook_limit_default_and_off(app_factory: Build, clerk_issuer: ClerkTestIssuer) -> None:
    app, clerk = app_factory({"CLERK_WEBHOOK_SECRET": clerk_issuer.webhook_secret})
    assert app.extensions["clerk_security"].settings.webhook_rate_limit == "600 per minute"
    app.register_blueprint(clerk.webhooks)
    assert app.test_client().post("/api/webhooks/clerk").headers["X-RateLimit-Limit"] == "600"
    app, clerk = app_factory({"CLERK_WEBHOOK_SECRET": clerk_issuer.webhook_secret, "CLERK_WEBHOOK_RATE_LIMIT": "off"})
    app.register_blueprint(clerk.webhooks)
    client = app.test_client()
    responses = [client.post("/api/webhooks/clerk") for _ in range(5)]
    assert [response.status_code for response in responses] == [400] * 5
    assert "X-RateLimit-Limit" not in responses[0].headers


def test_unusable_storage_uri_fails_at_init_app_without_echoing_it(app_factory: Build) -> None:
    with pytest.raises(ConfigurationError, match="CLERK_RATELIMIT_STORAGE_URI") as caught:
        app_factory({"CLERK_RATELIMIT_STORAGE_URI": "bogus://user:hunter2@example.com"})
    assert "hunter2" not in str(caught.value)


def test_conflicting_flask_limiter_storage_setting_is_refused(app_factory: Build) -> None:
    with pytest.raises(ConfigurationError, match="RATELIMIT_STORAGE_URI"):
        app_factory({"RATELIMIT_STORAGE_URI": "memory://", "CLERK_RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/0"})


def test_apps_sharing_one_clerksecurity_share_its_limiter(clerk_issuer: ClerkTestIssuer) -> None:
    clerk = ClerkSecurity()

    def make(name: str, **config: Any) -> Flask:
        app = Flask(name)
        app.config.update(clerk_issuer.config, TESTING=True, **config)

        @app.get("/api/shared")
        @clerk.limiter.limit("2 per minute")
        def shared() -> dict[str, str]:
            return {}

        clerk.init_app(app)
        return app

    first, second = make("first"), make("second")
    headers = clerk_issuer.auth_header(user_id="user_shared")
    assert statuses(first.test_client(), "/api/shared", 2, headers=headers) == [200, 200]
    assert statuses(second.test_client(), "/api/shared", 1, headers=headers) == [429]
    with pytest.raises(ConfigurationError, match="differs between apps"):
        make("third", CLERK_RATELIMIT_STORAGE_URI="redis://127.0.0.1:6379/0")


def test_redis_down_falls_back_to_per_process_memory_and_logs(
    limited_app: Build, clerk_issuer: ClerkTestIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    """The documented choice: keep serving, keep enforcing the limits in this process, log a warning."""
    app, _ = limited_app({"CLERK_RATELIMIT_STORAGE_URI": f"redis://127.0.0.1:{closed_port()}/0"})
    client = app.test_client()
    headers = clerk_issuer.auth_header(user_id="user_down")
    with caplog.at_level(logging.WARNING, logger="flask-limiter"):
        assert statuses(client, "/api/limited", 3, headers=headers) == [200, 200, 429]
    assert "falling back to in-memory storage" in caplog.text
    assert client.get("/api/limited", headers=clerk_issuer.auth_header(user_id="user_up")).status_code == 200


@pytest.mark.redis
def test_redis_counters_are_shared_by_app_instances(
    limited_app: Build, clerk_issuer: ClerkTestIssuer, redis_client: Any, redis_prefix: str
) -> None:
    config = {"CLERK_RATELIMIT_STORAGE_URI": REDIS_URL, "RATELIMIT_KEY_PREFIX": redis_prefix}
    # two ClerkSecurity objects, two limiters, two Redis connections: what two worker processes have
    clients = [limited_app(config)[0].test_client() for _ in range(2)]
    headers = clerk_issuer.auth_header(user_id="user_redis")
    assert clients[0].get("/api/limited", headers=headers).status_code == 200
    assert clients[1].get("/api/limited", headers=headers).status_code == 200
    assert clients[0].get("/api/limited", headers=headers).status_code == 429
    assert clients[1].get("/api/limited", headers=headers).status_code == 429
    keys = [key.decode() for key in redis_client.scan_iter(match=f"*{redis_prefix}*")]
    assert len(keys) == 1 and "user:user_redis" in keys[0]


@pytest.mark.redis
def test_redis_counters_are_namespaced_per_clerk_instance(
    redis_client: Any, redis_prefix: str, clerk_issuer: ClerkTestIssuer
) -> None:
    """Two apps of two Clerk instances on one Redis: one's traffic never spends the other's limits."""
    clients = []
    for issuer in (clerk_issuer, ClerkTestIssuer()):
        app = Flask("same_name")
        app.config.update(
            TESTING=True,
            CLERK_RATELIMIT_STORAGE_URI="redis://127.0.0.1:6379/0",
            CLERK_STORE_KEY_PREFIX=redis_prefix,
            **issuer.config,
        )
        clerk = ClerkSecurity(app)
        app.get("/open")(clerk.public(clerk.limiter.limit("2 per minute")(lambda: {"ok": "yes"})))
        clients.append(app.test_client())
    assert statuses(clients[0], "/open", 3) == [200, 200, 429]
    assert statuses(clients[1], "/open", 2) == [200, 200]
    keys = [key.decode() for key in redis_client.scan_iter(match=f"*{redis_prefix}*")]
    assert len(keys) == 2 and all(f"{redis_prefix}ratelimit:" in key for key in keys)


def test_flask_limiter_storage_setting_alone_is_honoured(app_factory: Build, clerk_issuer: ClerkTestIssuer) -> None:
    app, clerk = app_factory(
        {"RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/5", "CLERK_WEBHOOK_SECRET": clerk_issuer.webhook_secret}
    )
    assert type(clerk.limiter.storage).__name__ == "RedisStorage"
    assert app.extensions["clerk_security"].settings.webhook_store_uri.reveal() == "redis://127.0.0.1:6379/5"


class SwitchableRedisProxy:
    """A TCP proxy to the tests' Redis server (``REDIS_URL``) that can be switched off and on (a Redis outage)."""

    def __init__(self) -> None:
        self.up = True
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            upstream = socket.create_connection(_REDIS_ADDRESS, timeout=5)
            self._sockets += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, target), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                sock.close()

    def set_up(self, up: bool) -> None:
        self.up = up
        if not up:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self._sockets.clear()

    def close(self) -> None:
        self._listener.close()
        self.set_up(False)


@pytest.mark.redis
def test_limiter_returns_to_redis_when_it_recovers(
    limited_app: Build, clerk_issuer: ClerkTestIssuer, redis_client: Any, redis_prefix: str
) -> None:
    proxy = SwitchableRedisProxy()
    try:
        app, _ = limited_app(
            {"CLERK_RATELIMIT_STORAGE_URI": _redis_url_via(proxy.port), "RATELIMIT_KEY_PREFIX": redis_prefix}
        )
        client = app.test_client()
        headers = clerk_issuer.auth_header(user_id="user_outage", lifetime=300)

        def redis_count() -> int:
            [key] = list(redis_client.scan_iter(match=f"*{redis_prefix}*"))
            return int(redis_client.get(key))

        assert client.get("/api/limited", headers=headers).status_code == 200
        assert redis_count() == 1
        proxy.set_up(False)
        assert client.get("/api/limited", headers=headers).status_code == 200  # counted in memory meanwhile
        assert redis_count() == 1
        proxy.set_up(True)
        time.sleep(1.2)  # flask-limiter re-checks a dead storage after a back-off of at least one second
        assert client.get("/api/limited", headers=headers).status_code == 200
        assert redis_count() == 2
        assert client.get("/api/limited", headers=headers).status_code == 429
    finally:
        proxy.close()


@clerk_limiter_only
def test_before_request_check_is_skipped_while_no_app_wide_limit_exists(
    app_factory: Build, clerk_issuer: ClerkTestIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, clerk = app_factory()

    @app.get("/api/limited")
    @clerk.limiter.limit("1 per minute")
    def limited() -> dict[str, str]:
        return {}

    resolved: list[bool] = []
    original = clerk.limiter.limit_manager.resolve_limits

    def spy(*args: Any, **kwargs: Any) -> Any:
        resolved.append(kwargs.get("in_middleware", args[4] if len(args) > 4 else False))
        return original(*args, **kwargs)

    monkeypatch.setattr(clerk.limiter.limit_manager, "resolve_limits", spy)
    client = app.test_client()
    headers = clerk_issuer.auth_header()
    assert client.get("/api/me", headers=headers).status_code == 200
    assert resolved == [], "no app-wide limits: the before_request check has nothing to resolve"
    assert statuses(client, "/api/limited", 2, headers=headers) == [200, 429]
    assert resolved and not any(resolved), "decorated limits are still checked, by their decorator"


@pytest.mark.parametrize(
    "config",
    [{"RATELIMIT_DEFAULT": "2 per minute"}, {"RATELIMIT_APPLICATION": "2 per minute"}],
)
def test_app_wide_limits_still_apply_through_before_request(
    app_factory: Build, clerk_issuer: ClerkTestIssuer, config: dict[str, str]
) -> None:
    app, _ = app_factory(config)
    headers = clerk_issuer.auth_header()
    assert statuses(app.test_client(), "/api/me", 3, headers=headers) == [200, 200, 429]


def test_blueprint_limits_still_apply_through_before_request(clerk_issuer: ClerkTestIssuer) -> None:
    from flask import Blueprint

    app = Flask("blueprint_limits")
    app.config.update(clerk_issuer.config, TESTING=True)
    clerk = ClerkSecurity()
    reports = Blueprint("reports", __name__)
    reports.add_url_rule("/reports", "list", lambda: {"reports": []})
    clerk.limiter.limit("2 per minute")(reports)
    app.register_blueprint(reports)
    clerk.init_app(app)
    headers = clerk_issuer.auth_header()
    assert statuses(app.test_client(), "/reports", 3, headers=headers) == [200, 200, 429]


def test_after_request_work_of_the_limiter_still_runs_where_a_limit_was_checked(app_factory: Build) -> None:
    """The limiter's after/teardown hooks skip requests no limit was checked for; where one was, its
    conditional deductions (``deduct_when``) and ``current_limit`` work as in flask-limiter."""
    app, clerk = app_factory()

    @app.get("/teapot")
    @clerk.public
    @clerk.limiter.limit("2 per minute", deduct_when=lambda response: response.status_code == 418)
    def teapot() -> tuple[dict[str, Any], int]:
        limit = clerk.limiter.current_limit
        status = 418 if flask.request.args.get("brew") else 200
        return {"limit": limit.limit.amount if limit else None}, status

    @app.get("/unlimited")
    @clerk.public
    def unlimited() -> dict[str, Any]:
        return {"limit": clerk.limiter.current_limit}

    client = app.test_client()
    assert statuses(client, "/teapot", 3) == [200, 200, 200]  # never deducted: deduct_when said no
    assert client.get("/teapot").get_json() == {"limit": 2}
    assert statuses(client, "/teapot?brew=1", 2) == [418, 418]  # deducted after each response
    assert client.get("/teapot").status_code == 429
    response = client.get("/unlimited")
    assert response.get_json() == {"limit": None} and "X-RateLimit-Limit" not in response.headers


def test_in_memory_storage_and_redis_fallback_are_bounded(limited_app: Build, clerk_issuer: ClerkTestIssuer) -> None:
    from flask_clerk_security.limiter_memory import BoundedMemoryStorage

    _, clerk = limited_app()
    limiter: Any = clerk.limiter
    assert type(limiter.storage) is BoundedMemoryStorage
    assert type(limiter._fallback_storage) is BoundedMemoryStorage
    _, clerk = limited_app({"CLERK_RATELIMIT_STORAGE_URI": f"redis://127.0.0.1:{closed_port()}/0"})
    assert type(clerk.limiter._fallback_storage) is BoundedMemoryStorage  # type: ignore[attr-defined]
    own = Limiter(lambda: "k", storage_uri="memory://", in_memory_fallback_enabled=True)
    _, clerk = limited_app(limiter=own)
    assert type(own.storage).__name__ == "MemoryStorage", "an app's own limiter is left as it is"


@pytest.mark.parametrize("strategy", ["fixed-window", "moving-window", "sliding-window-counter"])
def test_bounded_memory_storage_evicts_the_oldest_window_and_keeps_limiting(
    strategy: str, caplog: pytest.LogCaptureFixture
) -> None:
    from limits import parse
    from limits.strategies import STRATEGIES

    from flask_clerk_security.limiter_memory import BoundedMemoryStorage

    storage = BoundedMemoryStorage(max_keys=50)
    limiter = STRATEGIES[strategy](storage)
    limit = parse("3 per minute")
    with caplog.at_level(logging.WARNING, logger="flask_clerk_security"):
        for client in range(500):
            assert limiter.hit(limit, f"client{client}")
    held = max(len(storage.storage), len(storage.events))
    assert held <= 51 + 1, f"{held} keys held for a cap of 50"  # sliding windows keep two keys per client
    assert not storage.timer.is_alive(), "no background scan"
    assert caplog.text.count("the oldest windows are forgotten") == 1
    assert [limiter.hit(limit, "busy") for _ in range(4)] == [True, True, True, False]
    assert all(len(entries) <= 3 for entries in storage.events.values())


def test_a_changed_private_hook_falls_back_to_a_plain_limiter_with_one_warning(
    app_factory: Build, limiter_class: str, caplog: pytest.LogCaptureFixture
) -> None:
    from flask_clerk_security import private_hooks
    from flask_clerk_security.ratelimit import limiter_class as clerk_limiter_class

    private_hooks._warn_once.cache_clear()  # once per process: an earlier test may have said it
    for _ in range(2):
        _, clerk = app_factory()
        assert isinstance(clerk.limiter, clerk_limiter_class()) is (limiter_class == "ClerkLimiter")
        assert isinstance(clerk.limiter, Limiter)
    warnings = [record.getMessage() for record in caplog.records if "flask-limiter" in record.getMessage()]
    if limiter_class == "ClerkLimiter":
        assert warnings == []
    else:
        assert len(warnings) == 1
        assert f"flask-limiter {importlib.metadata.version('flask-limiter')} " in warnings[0]
        assert "_Limiter__release_context" in warnings[0]


@clerk_limiter_only
@pytest.mark.parametrize("hook", sorted(LIMITER_HOOKS))
def test_each_changed_limiter_hook_gives_a_plain_limiter_that_still_limits(
    limited_app: Build, hook: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flask_clerk_security.ratelimit import limiter_class as clerk_limiter_class

    original = getattr(Limiter, hook)
    monkeypatch.setattr(Limiter, hook, lambda self, *args, **kwargs: original(self, *args, **kwargs))
    app, clerk = limited_app()
    assert type(clerk.limiter) is Limiter and not isinstance(clerk.limiter, clerk_limiter_class())
    assert statuses(app.test_client(), "/open", 3) == [200, 200, 429]


@clerk_limiter_only
def test_a_missing_limit_manager_attribute_gives_a_plain_limiter(
    limited_app: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As if a flask-limiter release had renamed one of the attributes ClerkLimiter reads."""
    from flask_clerk_security import ratelimit

    renamed = (*ratelimit.LIMIT_MANAGER_ATTRIBUTES, "_application_limits_renamed")
    monkeypatch.setattr(ratelimit, "LIMIT_MANAGER_ATTRIBUTES", renamed)
    app, clerk = limited_app()
    assert type(clerk.limiter) is Limiter
    assert statuses(app.test_client(), "/open", 3) == [200, 200, 429]
