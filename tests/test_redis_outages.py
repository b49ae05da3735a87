"""A slow, hung or unpersisted Redis of our own (a real ``redis-server`` per test): stores fail fast, recover,
never let a late claim block a delivery, and warn when a restart would forget webhook ids."""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_clerk_security import ClerkSecurity, current_auth, stores
from flask_clerk_security.stores import MemoryStore
from flask_clerk_security.testing import BackendAPIStandIn, ClerkTestIssuer, clerk_event

from .conftest import closed_port

pytestmark = [pytest.mark.slow, pytest.mark.redis]
URL = "/api/webhooks/clerk"
#: Seconds each own Redis server may live at most (killed earlier by the fixture).
LIFETIME = 120


class OwnRedis:
    """``redis-server`` on a free loopback port with no persistence, killed when the test ends."""

    def __init__(self, directory: Path, *extra: str) -> None:
        import redis

        self.port = closed_port()
        self.process = subprocess.Popen(
            # `timeout` bounds the server's life even if this test process dies without cleaning up.
            ["timeout", str(LIFETIME), "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(directory), "--enable-debug-command", "yes", *extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.client = redis.Redis.from_url(self.url, socket_timeout=10)
        for _ in range(100):
            try:
                self.client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stall(self, seconds: float) -> threading.Thread:
        """Block the server's event loop for ``seconds`` (``DEBUG SLEEP`` from a client of its own)."""
        import redis

        sleeper = redis.Redis.from_url(self.url, socket_timeout=seconds + 5)
        thread = threading.Thread(target=sleeper.execute_command, args=("DEBUG", "SLEEP", seconds), daemon=True)
        thread.start()
        time.sleep(0.1)  # the sleep has begun before the test's next call
        return thread

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(5)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Callable[..., OwnRedis]]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    servers: list[OwnRedis] = []

    def start(*extra: str) -> OwnRedis:
        servers.append(OwnRedis(tmp_path, *extra))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def hook_app(issuer: ClerkTestIssuer, store_uri: str, **config: Any) -> tuple[Flask, ClerkSecurity]:
    app = Flask("outage_app")
    app.config.update(TESTING=True, CLERK_WEBHOOK_SECRET=issuer.webhook_secret, CLERK_WEBHOOK_STORE_URI=store_uri)
    app.config.update(issuer.config, **config)
    clerk = ClerkSecurity(app)
    app.register_blueprint(clerk.webhooks)
    return app, clerk


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = call()
    return result, time.perf_counter() - start


def test_stalled_replay_store_fails_fast_and_a_late_claim_never_blocks_the_delivery(
    own_redis: Callable[..., OwnRedis], clerk_issuer: ClerkTestIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stores, "BREAKER_COOLDOWN", 2.0, raising=False)  # absent before the breaker
    server = own_redis()
    app, clerk = hook_app(clerk_issuer, server.url)
    runs: list[str] = []
    clerk.webhooks.on("user.created")(lambda event: runs.append(event.id))
    client = app.test_client()
    warm_up = clerk_issuer.sign_webhook(clerk_event("user.created"), msg_id="msg_warm_up")
    assert (
        client.post(URL, data=warm_up[0], headers=warm_up[1]).status_code == 200
    )  # a pooled connection, as in production
    body, headers = clerk_issuer.sign_webhook(clerk_event("user.created"), msg_id="msg_stalled")
    stall = server.stall(2.5)
    first, first_time = timed(lambda: client.post(URL, data=body, headers=headers))
    # Bounds in units of the 1 s timeout, not of speed: a loaded machine is slower, never a timeout faster.
    assert first.status_code == 503 and 0.9 < first_time < 2.0, "the first call waits for one 1 s timeout"
    later = [timed(lambda: client.post(URL, data=body, headers=headers)) for _ in range(5)]
    assert [response.status_code for response, _ in later] == [503] * 5
    assert max(elapsed for _, elapsed in later) < 0.5, "after a timeout the store answers without waiting for one"
    stall.join()
    # Redis has now run the claim the first delivery gave up on; it must not hold the delivery back.
    time.sleep(2.1)  # the breaker's cooldown: the next call probes Redis
    response = client.post(URL, data=body, headers=headers)
    assert (response.status_code, response.get_json()) == (200, {"status": "processed"})
    assert runs == ["msg_warm_up", "msg_stalled"]
    assert client.post(URL, data=body, headers=headers).get_json() == {"status": "duplicate"}


def test_replay_store_outage_logs_once_not_per_delivery(
    clerk_issuer: ClerkTestIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by benchmarks/soak.py: 575 ERROR lines in one 15 s outage, one per delivery Svix retried. The store's
    breaker logs the outage; a delivery it refuses is a DEBUG line."""
    app, clerk = hook_app(clerk_issuer, f"redis://127.0.0.1:{closed_port()}/0")
    clerk.webhooks.on("user.created")(lambda event: None)
    client = app.test_client()
    with caplog.at_level(logging.DEBUG, logger="flask_clerk_security"):
        caplog.clear()  # only what the requests log, not the app's start-up warnings
        for index in range(5):
            body, headers = clerk_issuer.sign_webhook(clerk_event("user.created"), msg_id=f"msg_down_{index}")
            assert client.post(URL, data=body, headers=headers).status_code == 503
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith("webhook replay store: Redis unavailable"), errors
    assert caplog.text.count("not processed: replay store unavailable") == 5, "each refusal is still at DEBUG"


def test_stalled_machine_token_cache_is_skipped_at_once(
    own_redis: Callable[..., OwnRedis],
    clerk_issuer: ClerkTestIssuer,
    clerk_backend_api: BackendAPIStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = own_redis()
    app = Flask("cache_app")
    app.config.update(
        TESTING=True,
        CLERK_SECRET_KEY=clerk_issuer.secret_key,
        CLERK_PUBLISHABLE_KEY=clerk_issuer.publishable_key,
        CLERK_API_URL=clerk_backend_api.url,
        CLERK_ACCEPTS_TOKEN="api_key",
        CLERK_MACHINE_TOKEN_CACHE_TTL=30,
        CLERK_MACHINE_TOKEN_CACHE_URI=server.url,
    )
    ClerkSecurity(app)
    app.get("/api/me")(lambda: {"subject": current_auth.subject})
    client = app.test_client()
    headers = {"Authorization": f"Bearer {clerk_backend_api.mint_api_key(subject='user_cached')}"}
    stall = server.stall(3)
    with caplog.at_level(logging.WARNING, logger="flask_clerk_security"):
        answers = [timed(lambda: client.get("/api/me", headers=headers)) for _ in range(6)]
    assert all(response.get_json() == {"subject": "user_cached"} for response, _ in answers)
    assert answers[0][1] < 2.0, "one 1 s timeout, not one per cache call"
    assert max(elapsed for _, elapsed in answers[1:]) < 0.5, "later requests skip the stalled cache (no timeout)"
    assert caplog.text.count("Redis unavailable") == 1, "the outage is logged once"
    stall.join()


def test_limiter_falls_back_for_every_request_in_flight_when_its_redis_hangs(
    own_redis: Callable[..., OwnRedis], clerk_issuer: ClerkTestIssuer
) -> None:
    """gthread workers: requests waiting on Redis when another thread declares it dead fall back too (no 500),
    and the rest answer from memory at once (one timeout to notice, then only flask-limiter's probes wait)."""
    server = own_redis()
    app = Flask("limited_app")
    app.config.update(TESTING=True, CLERK_RATELIMIT_STORAGE_URI=server.url, **clerk_issuer.config)
    clerk = ClerkSecurity(app)
    app.get("/open")(clerk.public(clerk.limiter.limit("100000 per minute")(lambda: {"ok": "yes"})))
    assert app.test_client().get("/open").status_code == 200
    answers: list[tuple[int | str, float]] = []
    stall = server.stall(3)
    start = time.perf_counter()

    def worker() -> None:
        client = app.test_client()
        while time.perf_counter() - start < 2.5:
            began = time.perf_counter()
            try:
                status: int | str = client.get("/open").status_code
            except Exception as exc:  # recorded, asserted on below: TESTING propagates a view's exception
                status = type(exc).__name__
            answers.append((status, time.perf_counter() - began))

    workers = [threading.Thread(target=worker) for _ in range(6)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    stall.join()
    assert {status for status, _ in answers} == {200}
    slow = [elapsed for _, elapsed in answers if elapsed > 0.9]
    assert len(slow) <= 6 + 2, "each thread waits for one timeout at most, plus a probe or two"
    assert len(answers) > 100


def test_processing_claim_ttl_is_configurable(
    clerk_issuer: ClerkTestIssuer, redis_client: Any, redis_prefix: str
) -> None:
    app, clerk = hook_app(
        clerk_issuer,
        "redis://127.0.0.1:6379/0",
        CLERK_STORE_KEY_PREFIX=redis_prefix,
        CLERK_WEBHOOK_PROCESSING_TTL=300,
    )
    seen: list[int] = []

    @clerk.webhooks.on("user.created")
    def slow(event: Any) -> None:
        [key] = list(redis_client.scan_iter(match=f"{redis_prefix}webhook:*"))
        seen.append(redis_client.pttl(key))

    body, headers = clerk_issuer.sign_webhook(clerk_event("user.created"))
    assert app.test_client().post(URL, data=body, headers=headers).status_code == 200
    assert len(seen) == 1 and 290_000 < seen[0] <= 300_000


def test_unpersisted_replay_store_warns_once_with_the_fix(
    own_redis: Callable[..., OwnRedis], clerk_issuer: ClerkTestIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    bare, durable = own_redis(), own_redis("--appendonly", "yes")
    with caplog.at_level(logging.WARNING, logger="flask_clerk_security"):
        for _ in range(2):
            hook_app(clerk_issuer, bare.url)
        hook_app(clerk_issuer, durable.url)
    warnings = [record.getMessage() for record in caplog.records if "webhook replay store" in record.getMessage()]
    assert len(warnings) == 1 and "appendonly yes" in warnings[0]


def test_managed_redis_refusing_config_is_tolerated(
    own_redis: Callable[..., OwnRedis], clerk_issuer: ClerkTestIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    managed = own_redis("--rename-command", "CONFIG", "")
    with caplog.at_level(logging.DEBUG, logger="flask_clerk_security"):
        app, clerk = hook_app(clerk_issuer, managed.url)
    assert "could not read Redis persistence settings" in caplog.text
    assert "webhook replay store" not in caplog.text
    clerk.webhooks.on("user.created")(lambda event: None)
    body, headers = clerk_issuer.sign_webhook(clerk_event("user.created"))
    assert app.test_client().post(URL, data=body, headers=headers).get_json() == {"status": "processed"}


def test_memory_store_logs_when_it_evicts_a_live_entry(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore(3, purpose="webhook replay store")
    with caplog.at_level(logging.WARNING, logger="flask_clerk_security"):
        store.set("short", "done", 0.001)
        store.set("a", "done", 60)
        store.set("b", "done", 60)
        time.sleep(0.01)
        for name in ("c", "d", "e"):  # evicts the expired "short" (nothing lost), then the live "a" and "b"
            store.set(name, "done", 60)
    assert store.live_evictions == 2
    assert caplog.text.count("evicted a live entry") == 1, "the first eviction, then one in 10,000"


def test_redis_refusing_scripts_still_serialises_deliveries(
    own_redis: Callable[..., OwnRedis], clerk_issuer: ClerkTestIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    """Some managed services refuse EVAL: claims fall back to a plain SET NX (and say so once), never a 503."""
    server = own_redis("--rename-command", "EVAL", "", "--rename-command", "EVALSHA", "")
    app, clerk = hook_app(clerk_issuer, server.url)
    runs: list[str] = []
    clerk.webhooks.on("user.created")(lambda event: runs.append(event.id))
    client = app.test_client()
    body, headers = clerk_issuer.sign_webhook(clerk_event("user.created"), msg_id="msg_plain")
    with caplog.at_level(logging.WARNING, logger="flask_clerk_security"):
        assert client.post(URL, data=body, headers=headers).get_json() == {"status": "processed"}
        assert client.post(URL, data=body, headers=headers).get_json() == {"status": "duplicate"}
    assert runs == ["msg_plain"]
    assert caplog.text.count("claims are not deadline-guarded on this Redis (it refuses scripts)") == 1


def test_rate_limit_headers_fall_back_when_redis_died_during_the_request(
    own_redis: Callable[..., OwnRedis], clerk_issuer: ClerkTestIssuer
) -> None:
    """The limit was checked on a healthy Redis; then Redis hung. Another request, already waiting on it, times
    out first and switches the limiter to memory while this one waits for its rate-limit headers: those must come
    from memory too, not raise the timeout (a 500)."""
    server = own_redis()
    app = Flask("limited_app")
    app.config.update(TESTING=True, CLERK_RATELIMIT_STORAGE_URI=server.url, **clerk_issuer.config)
    clerk = ClerkSecurity(app)
    background: list[threading.Thread] = []
    other: list[int] = []

    @app.get("/first")
    @clerk.public
    @clerk.limiter.limit("1000 per minute")
    def first() -> dict[str, str]:
        background.append(server.stall(3))
        background.append(threading.Thread(target=lambda: other.append(app.test_client().get("/other").status_code)))
        background[-1].start()
        time.sleep(0.3)  # the other request's limit check is waiting on Redis before this one's headers are
        return {"ok": "yes"}

    app.get("/other")(clerk.public(clerk.limiter.limit("1000 per minute")(lambda: {"ok": "yes"})))
    response = app.test_client().get("/first")
    for thread in background:
        thread.join()
    assert response.status_code == 200 and "X-RateLimit-Remaining" in response.headers
    assert other == [200]


def test_redis_hanging_during_the_view_falls_back_for_the_headers(
    own_redis: Callable[..., OwnRedis], clerk_issuer: ClerkTestIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    server = own_redis()
    app = Flask("limited_app")
    app.config.update(TESTING=True, CLERK_RATELIMIT_STORAGE_URI=server.url, **clerk_issuer.config)
    clerk = ClerkSecurity(app)
    stalls: list[threading.Thread] = []

    @app.get("/open")
    @clerk.public
    @clerk.limiter.limit("1000 per minute")
    def open_() -> dict[str, str]:
        if not stalls:  # Redis hangs while the first request's view runs, after its limit was checked
            stalls.append(server.stall(2))
        return {"ok": "yes"}

    with caplog.at_level(logging.WARNING, logger="flask-limiter"):
        response = app.test_client().get("/open")
    stalls[0].join()
    # the hit was counted in Redis; the in-memory fallback that answers the headers has not seen it
    assert response.status_code == 200 and response.headers["X-RateLimit-Remaining"] == "1000"
    assert "falling back to in-memory storage" in caplog.text
    assert app.test_client().get("/open").status_code == 200
