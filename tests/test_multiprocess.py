"""Two real gunicorn server processes sharing Redis: a per-user limit holds across them, and a webhook delivered
to both runs its handler exactly once."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from flask_clerk_security.testing import ClerkTestIssuer, clerk_event

from .conftest import REDIS_URL

pytestmark = [pytest.mark.slow, pytest.mark.redis]

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
BOOT_TIMEOUT = 60.0


class Server:
    """One ``gunicorn scaled_app:app`` process (one sync worker) on a free 127.0.0.1 port."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--workers",
                "1",
                "--bind",
                "127.0.0.1:0",
                "--error-logfile",
                str(log_path),
                "--timeout",
                "30",
                "scaled_app:app",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = ""

    def wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{self.log()}")
            if not self.url:
                match = re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", self.log())
                self.url = match.group(1) if match else ""
            if self.url:
                try:
                    if requests.get(f"{self.url}/health", timeout=2).status_code == 200:
                        return
                except requests.RequestException:
                    pass
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not become ready in {BOOT_TIMEOUT} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@pytest.fixture
def servers(
    clerk_issuer: ClerkTestIssuer, redis_client: Any, redis_prefix: str, tmp_path: Path
) -> Iterator[list[Server]]:
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith(("CLERK_", "RATELIMIT_"))},
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(TESTS_DIR / "apps")]),
        "CLERK_JWT_KEY": clerk_issuer.public_pem,
        "CLERK_PUBLISHABLE_KEY": clerk_issuer.publishable_key,
        "CLERK_WEBHOOK_SECRET": clerk_issuer.webhook_secret,
        "CLERK_RATELIMIT_STORAGE_URI": REDIS_URL,
        "CLERK_STORE_KEY_PREFIX": redis_prefix,
        "SCALED_APP_PREFIX": redis_prefix,
    }
    started: list[Server] = []
    try:
        for index in range(2):
            started.append(Server(env, tmp_path / f"gunicorn-{index}.log"))
        deadline = time.monotonic() + BOOT_TIMEOUT
        for server in started:
            server.wait_ready(deadline)
        yield started
    finally:
        for server in started:
            server.stop()


def test_per_user_limit_holds_across_processes(servers: list[Server], clerk_issuer: ClerkTestIssuer) -> None:
    pids = {requests.get(f"{server.url}/health", timeout=5).json()["pid"] for server in servers}
    assert len(pids) == 2, "the two servers must be two processes"
    alice = clerk_issuer.auth_header(user_id="user_alice", lifetime=300)
    answers = [requests.get(f"{servers[index % 2].url}/api/limited", headers=alice, timeout=5) for index in range(10)]
    assert [answer.status_code for answer in answers] == [200] * 5 + [429] * 5
    assert {answer.json()["pid"] for answer in answers[:5]} == pids
    assert all(answer.json() == {"error": "rate_limited"} for answer in answers[5:])
    bob = clerk_issuer.auth_header(user_id="user_bob", lifetime=300)
    assert [requests.get(f"{server.url}/api/limited", headers=bob, timeout=5).status_code for server in servers] == [
        200,
        200,
    ]


def test_webhook_delivered_to_both_processes_runs_once(
    servers: list[Server], clerk_issuer: ClerkTestIssuer, redis_client: Any, redis_prefix: str
) -> None:
    # warm both workers up (svix is imported on the first delivery) so the real delivery races for the claim
    for server in servers:
        body, headers = clerk_issuer.sign_webhook(clerk_event("session.created"))
        assert requests.post(f"{server.url}/api/webhooks/clerk", data=body, headers=headers, timeout=10).json() == {
            "status": "ignored"
        }

    body, headers = clerk_issuer.sign_webhook(clerk_event("user.created", {"id": "user_new"}), msg_id="msg_race")
    barrier = threading.Barrier(2)
    answers: dict[int, requests.Response] = {}

    def deliver(index: int) -> None:
        barrier.wait(10)
        answers[index] = requests.post(
            f"{servers[index].url}/api/webhooks/clerk", data=body, headers=headers, timeout=10
        )

    threads = [threading.Thread(target=deliver, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    outcomes = sorted(
        (answer.status_code, answer.json().get("status") or answer.json().get("error")) for answer in answers.values()
    )
    assert outcomes[0] == (200, "processed")
    assert outcomes[1] in {(200, "duplicate"), (409, "webhook_in_progress")}
    # Svix's retries, to either process, are acknowledged without running the handler again
    for server in servers:
        retry = requests.post(f"{server.url}/api/webhooks/clerk", data=body, headers=headers, timeout=10)
        assert (retry.status_code, retry.json()) == (200, {"status": "duplicate"})
    assert redis_client.get(f"{redis_prefix}handled:msg_race") == b"1"
