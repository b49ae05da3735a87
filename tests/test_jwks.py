"""JWKS from the Backend API stand-in over real HTTP: caching, single flight, bounded refetch, outages."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from flask_clerk_security import ClerkSecurity, current_auth
from flask_clerk_security.errors import TokenVerificationError
from flask_clerk_security.jwks import remote_key_source
from flask_clerk_security.state import get_state
from flask_clerk_security.testing import BackendAPIStandIn, ClerkTestIssuer


def wait_for(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Poll ``condition`` until it holds (background refreshes finish on their own thread)."""
    ends = time.monotonic() + within
    while not condition():
        assert time.monotonic() < ends, "condition not met in time"
        time.sleep(0.01)


def timed(client: Any, header: dict[str, str]) -> tuple[int, float]:
    started = time.monotonic()
    status = client.get("/me", headers=header).status_code
    return status, time.monotonic() - started


def remote_app(stand_in: BackendAPIStandIn, **config: Any) -> Flask:
    app = Flask("jwks_app")
    app.config.update(
        TESTING=True,
        CLERK_SECRET_KEY=stand_in.issuer.secret_key,
        CLERK_API_URL=stand_in.url,
        **config,
    )
    ClerkSecurity(app)
    app.add_url_rule("/me", "me", lambda: {"user": current_auth.user_id})
    return app


def test_keys_are_fetched_once_with_the_secret_key(
    clerk_backend_api: BackendAPIStandIn, clerk_issuer: ClerkTestIssuer
) -> None:
    client = remote_app(clerk_backend_api).test_client()
    for _ in range(20):
        assert client.get("/me", headers=clerk_issuer.auth_header()).status_code == 200
    assert clerk_backend_api.count("GET", "/v1/jwks") == 1
    call = clerk_backend_api.calls[0]
    assert call.headers["Authorization"] == f"Bearer {clerk_issuer.secret_key}"
    assert call.headers["Clerk-API-Version"]


def test_apps_with_the_same_instance_share_one_cache(
    clerk_backend_api: BackendAPIStandIn, clerk_issuer: ClerkTestIssuer
) -> None:
    for _ in range(3):
        remote_app(clerk_backend_api).test_client().get("/me", headers=clerk_issuer.auth_header())
    assert clerk_backend_api.count("GET", "/v1/jwks") == 1


def test_forged_kids_cost_a_handful_of_fetches(
    clerk_backend_api: BackendAPIStandIn, clerk_issuer: ClerkTestIssuer
) -> None:
    client = remote_app(clerk_backend_api).test_client()
    client.get("/me", headers=clerk_issuer.auth_header())
    for index in range(500):
        forged = ClerkTestIssuer(kid=f"ins_forged_{index}", private_key=clerk_issuer.private_key)
        response = client.get("/me", headers=forged.auth_header())
        assert response.status_code == 401
        assert response.headers["x-clerk-auth-reason"] == "jwk-kid-mismatch"
    assert clerk_backend_api.count("GET", "/v1/jwks") <= 2


def test_new_kid_after_rotation_is_picked_up(
    clerk_backend_api: BackendAPIStandIn, clerk_issuer: ClerkTestIssuer
) -> None:
    client = remote_app(clerk_backend_api, CLERK_JWKS_REFETCH_COOLDOWN=0).test_client()
    assert client.get("/me", headers=clerk_issuer.auth_header()).status_code == 200
    rotated = ClerkTestIssuer(kid="ins_rotated")
    clerk_backend_api.routes[("GET", "/v1/jwks")] = lambda _: (200, {"keys": [clerk_issuer.jwk, rotated.jwk]})
    assert client.get("/me", headers=rotated.auth_header()).status_code == 200
    assert clerk_backend_api.count("GET", "/v1/jwks") == 2


def test_cached_keys_keep_serving_while_the_backend_api_is_down(
    clerk_backend_api: BackendAPIStandIn, clerk_issuer: ClerkTestIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    client = remote_app(clerk_backend_api, CLERK_JWKS_CACHE_TTL=0.05, CLERK_JWKS_REFETCH_COOLDOWN=0).test_client()
    assert client.get("/me", headers=clerk_issuer.auth_header()).status_code == 200
    clerk_backend_api.fail_status = 503
    time.sleep(0.1)
    with caplog.at_level(logging.WARNING, logger="flask_clerk_security"):
        assert client.get("/me", headers=clerk_issuer.auth_header()).status_code == 200
        wait_for(lambda: "serving 1 cached key" in caplog.text)
    assert clerk_backend_api.count("GET", "/v1/jwks") == 2


@pytest.mark.parametrize("failure", ["status", "hang", "wrong_key"])
def test_cold_start_against_a_broken_backend_api_fails_closed_in_time(
    clerk_backend_api: BackendAPIStandIn, clerk_issuer: ClerkTestIssuer, failure: str
) -> None:
    if failure == "status":
        clerk_backend_api.fail_status = 500
    elif failure == "hang":
        clerk_backend_api.hang = True
    else:
        clerk_backend_api.secret_key = "sk_test_someoneelse"
    client = remote_app(clerk_backend_api, CLERK_HTTP_TIMEOUT=0.5).test_client()
    started = time.monotonic()
    response = client.get("/me", headers=clerk_issuer.auth_header())
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.get_json() == {"error": "auth_unavailable"}
    assert elapsed < 3.0, f"took {elapsed:.2f}s with a 0.5 s budget"
    # Within the failure backoff, further requests fail fast without another call.
    assert client.get("/me", headers=clerk_issuer.auth_header()).status_code == 503
    assert clerk_backend_api.count("GET", "/v1/jwks") == 1


def test_cold_start_fetches_once_across_threads(
    clerk_backend_api: BackendAPIStandIn, clerk_issuer: ClerkTestIssuer
) -> None:
    clerk_backend_api.delay = 0.2
    app = remote_app(clerk_backend_api)
    statuses: list[int] = []
    header = clerk_issuer.auth_header()

    def call() -> None:
        statuses.append(app.test_client().get("/me", headers=header).status_code)

    threads = [threading.Thread(target=call) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert statuses == [200] * 16
    assert clerk_backend_api.count("GET", "/v1/jwks") == 1


def test_malformed_jwks_is_not_trusted(clerk_backend_api: BackendAPIStandIn, clerk_issuer: ClerkTestIssuer) -> None:
    clerk_backend_api.routes[("GET", "/v1/jwks")] = lambda _: (
        200,
        {"keys": [{"kty": "RSA", "kid": clerk_issuer.kid, "n": "!"}]},
    )
    response = remote_app(clerk_backend_api).test_client().get("/me", headers=clerk_issuer.auth_header())
    assert response.status_code == 503


def test_a_cached_kid_never_waits_for_a_hanging_refresh(
    clerk_backend_api: BackendAPIStandIn, clerk_issuer: ClerkTestIssuer
) -> None:
    # The refresh hangs for its whole 30 s deadline; requests that waited for it could not finish in the
    # 10 s the threads are given, whatever the machine's load.
    app = remote_app(clerk_backend_api, CLERK_JWKS_CACHE_TTL=0.2, CLERK_HTTP_TIMEOUT=30.0)
    header = clerk_issuer.auth_header()
    assert app.test_client().get("/me", headers=header).status_code == 200
    clerk_backend_api.hang = True
    time.sleep(0.3)
    results: list[tuple[int, float]] = []

    def user() -> None:
        client = app.test_client()
        for _ in range(10):
            results.append(timed(client, header))

    threads = [threading.Thread(target=user) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert [status for status, _ in results] == [200] * 80
    # One refresh, started in the background (it may reach the stand-in after the requests are done) and hanging.
    deadline = time.monotonic() + 10
    while clerk_backend_api.count("GET", "/v1/jwks") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert clerk_backend_api.count("GET", "/v1/jwks") == 2


def test_an_unknown_kid_waits_no_longer_than_the_deadline(
    clerk_backend_api: BackendAPIStandIn, clerk_issuer: ClerkTestIssuer
) -> None:
    app = remote_app(clerk_backend_api, CLERK_HTTP_TIMEOUT=1.0)
    assert app.test_client().get("/me", headers=clerk_issuer.auth_header()).status_code == 200
    clerk_backend_api.hang = True
    forged = ClerkTestIssuer(kid="ins_unknown", private_key=clerk_issuer.private_key)
    status, elapsed = timed(app.test_client(), forged.auth_header())
    assert status == 401
    assert elapsed < 1.0 + 3.0  # the deadline, not the hang (which lasts until the stand-in stops)


def test_a_forged_kid_flood_costs_at_most_five_fetches(
    clerk_backend_api: BackendAPIStandIn, clerk_issuer: ClerkTestIssuer
) -> None:
    client = remote_app(clerk_backend_api, CLERK_JWKS_REFETCH_COOLDOWN=0).test_client()
    assert client.get("/me", headers=clerk_issuer.auth_header()).status_code == 200
    for index in range(1300):
        forged = ClerkTestIssuer(kid=f"ins_forged_{index}", private_key=clerk_issuer.private_key)
        assert client.get("/me", headers=forged.auth_header()).status_code == 401
    assert clerk_backend_api.count("GET", "/v1/jwks") <= 1 + 5


def test_a_rotated_kid_is_accepted_within_seconds_with_the_defaults(
    clerk_backend_api: BackendAPIStandIn, clerk_issuer: ClerkTestIssuer
) -> None:
    client = remote_app(clerk_backend_api).test_client()
    assert client.get("/me", headers=clerk_issuer.auth_header()).status_code == 200
    rotated = ClerkTestIssuer(kid="ins_rotated")
    clerk_backend_api.routes[("GET", "/v1/jwks")] = lambda _: (200, {"keys": [clerk_issuer.jwk, rotated.jwk]})
    published = time.monotonic()
    wait_for(lambda: client.get("/me", headers=rotated.auth_header()).status_code == 200, within=10.0)
    accepted_after = time.monotonic() - published
    assert accepted_after < 5.5, f"the new kid was refused for {accepted_after:.1f} s"
    assert clerk_backend_api.count("GET", "/v1/jwks") == 2


def test_a_removed_kid_stops_verifying_after_the_next_refresh(
    clerk_backend_api: BackendAPIStandIn, clerk_issuer: ClerkTestIssuer
) -> None:
    client = remote_app(clerk_backend_api, CLERK_JWKS_CACHE_TTL=0.2).test_client()
    header = clerk_issuer.auth_header()
    assert client.get("/me", headers=header).status_code == 200
    successor = ClerkTestIssuer(kid="ins_successor")
    clerk_backend_api.routes[("GET", "/v1/jwks")] = lambda _: (200, {"keys": [successor.jwk]})
    time.sleep(0.3)
    assert client.get("/me", headers=header).status_code == 200  # stale keys serve while the refresh runs
    wait_for(lambda: clerk_backend_api.count("GET", "/v1/jwks") == 2)
    wait_for(lambda: client.get("/me", headers=header).status_code == 401)
    response = client.get("/me", headers=header)
    assert response.headers["x-clerk-auth-reason"] == "jwk-kid-mismatch"
    assert client.get("/me", headers=successor.auth_header()).status_code == 200


def test_stale_keys_serve_for_max_stale_then_requests_get_503_and_one_log_line(
    clerk_backend_api: BackendAPIStandIn, clerk_issuer: ClerkTestIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    client = remote_app(clerk_backend_api, CLERK_JWKS_CACHE_TTL=0.2, CLERK_JWKS_MAX_STALE=0.6).test_client()
    header = clerk_issuer.auth_header()
    assert client.get("/me", headers=header).status_code == 200
    clerk_backend_api.fail_status = 503
    time.sleep(0.3)
    with caplog.at_level(logging.WARNING, logger="flask_clerk_security"):
        assert client.get("/me", headers=header).status_code == 200
        time.sleep(0.6)
        for _ in range(50):
            response = client.get("/me", headers=header)
            assert response.status_code == 503
            assert response.get_json() == {"error": "auth_unavailable"}
    ran_out = [r for r in caplog.records if "CLERK_JWKS_MAX_STALE (" in r.getMessage()]
    assert len(ran_out) == 1
    assert ran_out[0].levelno == logging.ERROR


def test_an_outage_logs_its_transitions_not_every_request(
    clerk_backend_api: BackendAPIStandIn, clerk_issuer: ClerkTestIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    clerk_backend_api.fail_status = 503
    client = remote_app(clerk_backend_api).test_client()
    header = clerk_issuer.auth_header()
    with caplog.at_level(logging.INFO, logger="flask_clerk_security"):
        for _ in range(200):
            assert client.get("/me", headers=header).status_code == 503
        down = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert [r.getMessage()[:28] for r in down] == ["JWKS could not be loaded (jw"]
        clerk_backend_api.fail_status = None
        time.sleep(2.1)  # the first failure backoff
        assert client.get("/me", headers=header).status_code == 200
    back = [r.getMessage() for r in caplog.records if "loaded again" in r.getMessage()]
    assert len(back) == 1
    assert "1 failed fetches, 200 requests refused" in back[0]


class SteppedClock:
    """Stands in for the ``time`` module inside ``jwks`` only: its monotonic clock moves when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_failed_fetches_back_off_to_thirty_seconds(
    clerk_backend_api: BackendAPIStandIn, clerk_issuer: ClerkTestIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flask_clerk_security import jwks

    clock = SteppedClock()
    monkeypatch.setattr(jwks, "time", clock)
    clerk_backend_api.fail_status = 503
    source = jwks.RemoteKeySource(clerk_backend_api.url, clerk_issuer.secret_key, timeout=1.0)

    def fetches_after(step: float) -> int:
        clock.now += step
        with pytest.raises(TokenVerificationError, match="503"):
            source.get_key(clerk_issuer.kid)
        return clerk_backend_api.count("GET", "/v1/jwks")

    assert fetches_after(0) == 1
    for number, backoff in enumerate([2, 4, 8, 16, 30, 30], start=2):
        assert fetches_after(backoff - 0.01) == number - 1, f"retried before {backoff} s"
        assert fetches_after(0.02) == number


def test_a_forked_worker_does_not_wait_on_the_parents_refresh(
    clerk_backend_api: BackendAPIStandIn, clerk_issuer: ClerkTestIssuer
) -> None:
    import os

    app = remote_app(clerk_backend_api, CLERK_JWKS_CACHE_TTL=0.1, CLERK_JWKS_REFETCH_COOLDOWN=0, CLERK_HTTP_TIMEOUT=1)
    client = app.test_client()
    assert client.get("/me", headers=clerk_issuer.auth_header()).status_code == 200
    rotated = ClerkTestIssuer(kid="ins_rotated")
    clerk_backend_api.routes[("GET", "/v1/jwks")] = lambda _: (200, {"keys": [clerk_issuer.jwk, rotated.jwk]})
    clerk_backend_api.hang = True
    time.sleep(0.2)
    assert client.get("/me", headers=clerk_issuer.auth_header()).status_code == 200  # starts a refresh that hangs
    wait_for(lambda: clerk_backend_api.count("GET", "/v1/jwks") == 2)
    clerk_backend_api.hang = False
    pid = os.fork()
    if pid == 0:  # the worker: its own fetch, not a wait on the parent's thread that did not survive the fork
        status = client.get("/me", headers=rotated.auth_header()).status_code
        os._exit(0 if status == 200 else 1)
    _, exit_status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(exit_status) == 0


def test_apps_with_their_own_key_settings_get_their_own_key_cache(
    clerk_backend_api: BackendAPIStandIn, clerk_issuer: ClerkTestIssuer
) -> None:
    first = remote_app(clerk_backend_api, CLERK_JWKS_CACHE_TTL=600)
    same = remote_app(clerk_backend_api, CLERK_JWKS_CACHE_TTL=600)
    other = remote_app(clerk_backend_api, CLERK_JWKS_CACHE_TTL=0.2)
    sources = [get_state(app).machine.key_source for app in (first, same, other)]
    assert sources[0] is sources[1]
    assert sources[2] is not sources[0]
    assert sources[2]._ttl == 0.2  # never the first app's 600 s


def test_a_stopped_stand_in_leaves_no_keys_for_the_next_server_on_its_port(clerk_issuer: ClerkTestIssuer) -> None:
    with BackendAPIStandIn(clerk_issuer) as stand_in:
        app = remote_app(stand_in)
        assert app.test_client().get("/me", headers=clerk_issuer.auth_header()).status_code == 200
        source = get_state(app).machine.key_source
        url = stand_in.url
    assert remote_key_source(url, clerk_issuer.secret_key) is not source
