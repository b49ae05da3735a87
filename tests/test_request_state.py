"""Per-request state lives with the request: an app context pushed at import time (shared by every request of
a sync worker) must not carry one request's auth or handshake cookies into the next."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask

from flask_clerk_security import ClerkSecurity, current_auth, get_auth
from flask_clerk_security.testing import ClerkTestIssuer

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
BOOT_TIMEOUT = 60.0
PAGE = {"Sec-Fetch-Dest": "document", "Accept": "text/html"}


@pytest.fixture(scope="module")
def issuer() -> ClerkTestIssuer:
    """A production instance: a handshake return sets its cookies and serves the page (no clean-up redirect)."""
    return ClerkTestIssuer(instance="live")


def _app(issuer: ClerkTestIssuer) -> Flask:
    app = Flask("request_state_test")
    app.config.update(TESTING=True, **issuer.config)
    clerk = ClerkSecurity(app)

    @app.get("/health")
    @clerk.public
    def health() -> dict[str, str | None]:
        return {"user_id": get_auth().user_id}

    @app.get("/page")
    @clerk.public
    def page() -> str:
        return f"<p>{current_auth.user_id or 'guest'}</p>"

    @app.get("/api/me")
    def me() -> dict[str, str | None]:
        return {"user_id": current_auth.user_id}

    return app


@pytest.fixture
def pushed_app(issuer: ClerkTestIssuer) -> Iterator[Flask]:
    app = _app(issuer)
    ctx = app.app_context()
    ctx.push()
    try:
        yield app
    finally:
        ctx.pop()


def _handshake_return(issuer: ClerkTestIssuer) -> str:
    directives = [f"__session={issuer.session_token(user_id='user_a')}; Path=/", f"__client_uat={int(time.time())}"]
    return f"/page?__clerk_handshake={issuer.sign({'handshake': directives})}"


def test_auth_does_not_outlive_its_request_under_a_pushed_app_context(
    pushed_app: Flask, issuer: ClerkTestIssuer
) -> None:
    alice = issuer.auth_header(user_id="user_a")
    assert pushed_app.test_client().get("/api/me", headers=alice).json == {"user_id": "user_a"}
    anonymous = pushed_app.test_client().get("/api/me")
    assert anonymous.status_code == 401
    assert pushed_app.test_client().get("/health").json == {"user_id": None}
    bob = issuer.auth_header(user_id="user_b")
    assert pushed_app.test_client().get("/api/me", headers=bob).json == {"user_id": "user_b"}


def test_handshake_cookies_reach_only_their_own_client(pushed_app: Flask, issuer: ClerkTestIssuer) -> None:
    first = pushed_app.test_client().get(_handshake_return(issuer), headers=PAGE)
    assert first.text == "<p>user_a</p>"
    assert any(c.startswith("__session=") for c in first.headers.getlist("Set-Cookie"))
    following = pushed_app.test_client().get("/health")
    assert following.headers.getlist("Set-Cookie") == []
    assert following.json == {"user_id": None}


@pytest.mark.slow
def test_gunicorn_sync_worker_with_an_app_context_pushed_at_import(issuer: ClerkTestIssuer, tmp_path: Path) -> None:
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith(("CLERK_", "RATELIMIT_"))},
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(TESTS_DIR / "apps")]),
        "CLERK_JWT_KEY": issuer.public_pem,
        "CLERK_PUBLISHABLE_KEY": issuer.publishable_key,
        "CLERK_FORCE_HTTPS": "false",
    }
    log = tmp_path / "gunicorn.log"
    command = [sys.executable, "-m", "gunicorn", "--workers", "1", "--bind", "127.0.0.1:0", "--timeout", "30"]
    process = subprocess.Popen(
        [*command, "--error-logfile", str(log), "pushed_context_app:app"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = _wait_ready(process, log)
        alice = issuer.auth_header(user_id="user_a")
        assert requests.get(f"{url}/api/me", headers=alice, timeout=5).json() == {"user_id": "user_a"}
        assert requests.get(f"{url}/api/me", timeout=5).status_code == 401
        assert requests.get(f"{url}/health", timeout=5).json() == {"user_id": None}
        first = requests.get(f"{url}{_handshake_return(issuer)}", headers=PAGE, timeout=5, allow_redirects=False)
        assert first.text == "<p>user_a</p>" and "__session=" in first.headers.get("Set-Cookie", "")
        following = requests.get(f"{url}/health", timeout=5)
        assert "Set-Cookie" not in following.headers
        assert following.json() == {"user_id": None}
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _wait_ready(process: subprocess.Popen[Any], log: Path) -> str:
    deadline = time.monotonic() + BOOT_TIMEOUT
    url = ""
    while time.monotonic() < deadline:
        text = log.read_text() if log.exists() else ""
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{text}")
        if not url:
            match = re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", text)
            url = match.group(1) if match else ""
        if url:
            try:
                requests.get(f"{url}/health", timeout=2)
                return url
            except requests.RequestException:
                pass
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn did not become ready in {BOOT_TIMEOUT} s")
