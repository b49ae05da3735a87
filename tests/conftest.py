"""Shared fixtures: app factories over the test kit's issuer (the kit's own fixtures come from its plugin), the
Redis server, and node with the conformance suite's packages."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

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
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget which keys this process already warned about, so each test sees its own first warning."""
    from flask_clerk_security import config_warnings

    monkeypatch.setattr(config_warnings, "_warned_keys", set())


@pytest.fixture
def app(app_factory: AppFactory) -> Flask:
    return app_factory()[0]


@pytest.fixture
def client(app: Flask) -> Any:
    return app.test_client()


#: The Redis server the tests use (one variable for all of them); tests only touch keys they create.
REDIS_URL = os.environ.get("CLERK_TEST_REDIS_URL") or "redis://127.0.0.1:6379/0"


def skip_or_fail(reason: str) -> NoReturn:
    """Skip a test whose outside dependency is missing, or fail it under CI, where everything must run."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this test must run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def redis_client() -> Any:
    """A client for the Redis server at ``CLERK_TEST_REDIS_URL``; skips (outside CI) or fails (in CI) when none
    answers."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        skip_or_fail(f"no Redis server answers at CLERK_TEST_REDIS_URL ({type(exc).__name__}); .ci/run starts one")
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


CONFORMANCE_DIR = Path(__file__).resolve().parent / "conformance"
NPM_TIMEOUT_S = 300


def _installed_as_locked(directory: Path) -> bool:
    """Whether ``node_modules`` holds exactly the packages of ``package-lock.json`` (npm's own record of what it
    installed, ``node_modules/.package-lock.json``, against the lock)."""
    try:
        locked = json.loads((directory / "package-lock.json").read_text())["packages"]
        installed = json.loads((directory / "node_modules" / ".package-lock.json").read_text())["packages"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    wanted = {path: entry.get("version") for path, entry in locked.items() if path}
    have = {path: entry.get("version") for path, entry in installed.items()}
    return wanted == have and all((directory / path).is_dir() for path in wanted)


def install_node_packages(directory: Path, npm: str) -> None:
    """``npm ci`` in ``directory``, once and quietly, when its ``node_modules`` is missing or differs from its
    ``package-lock.json``; under a file lock, so parallel workers (xdist) install once. Skips (fails under CI)
    when npm fails."""
    import fcntl

    tag = hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"fcs-npm-ci-{tag}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed_as_locked(directory):
            return
        done = subprocess.run(
            [npm, "ci", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0 or not _installed_as_locked(directory):
            tail = " ".join(done.stderr.split()[-40:])
            skip_or_fail(f"`npm ci` in {directory} failed (exit {done.returncode}): {tail}")


@pytest.fixture(scope="session")
def conformance_node() -> str:
    """``node``, with Clerk's packages installed in tests/conformance (see :func:`install_node_packages`), so the
    README's ``python -m pytest`` runs the conformance suite. Skips where node or npm is missing (fails under CI)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        skip_or_fail("node and npm are not installed; the conformance suite runs Clerk's own packages under node")
    install_node_packages(CONFORMANCE_DIR, npm)
    return node


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium through Playwright (no browser download); skips (fails under CI) without it.

    Module-scoped: Playwright's sync API keeps an event loop running in this thread while it is open, and
    asgiref (async views) refuses to run there, so it must be closed before later test modules run."""
    if not (os.path.exists(CHROMIUM) and shutil.which("chromium")):
        skip_or_fail(f"{CHROMIUM} is not installed (apt-get install chromium); the browser tests need it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield instance
        finally:
            instance.close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released): a server that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def lines_run(*filenames: str) -> Iterator[list[int]]:
    """Counts the lines of ``filenames`` Python runs inside the block (in this thread): work a test can bound
    without a clock, which would make it as flaky as the machine it runs on."""
    count = [0]

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        count[0] += event == "line"
        return local

    def calls(frame: FrameType, event: str, arg: Any) -> Any:
        return local if frame.f_code.co_filename in filenames else None

    previous = sys.gettrace()  # coverage's tracer, when it runs: put back, not dropped
    sys.settrace(calls)
    try:
        yield count
    finally:
        sys.settrace(previous)
