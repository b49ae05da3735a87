"""The test suite itself: one variable names its Redis server, and it deletes only the keys it created."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_redis_url_comes_from_clerk_test_redis_url() -> None:
    env = {**os.environ, "CLERK_TEST_REDIS_URL": "redis://127.0.0.1:6390/7"}
    done = subprocess.run(
        [sys.executable, "-c", "from tests.conftest import REDIS_URL; print(REDIS_URL)"],
        cwd=TESTS.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "redis://127.0.0.1:6390/7"


def test_tests_never_flush_or_scan_keys_they_did_not_create() -> None:
    sources = {path.name: path.read_text() for path in TESTS.glob("*.py") if path.name != Path(__file__).name}
    assert not [name for name, text in sources.items() if re.search(r"\.flush(db|all)\(", text, re.I)]
    # Every scan for keys (whose results a test may delete) is confined to the test's own unique prefix.
    scans = [(name, m.group(1)) for name, text in sources.items() for m in re.finditer(r"scan_iter\(([^)]*)\)", text)]
    assert scans and all("prefix" in arguments for _, arguments in scans), scans
    # No test connects to a Redis URL of its own: the server is CLERK_TEST_REDIS_URL (tests/conftest.py), or one
    # the test module starts itself (a redis-server on a free port, to stall and kill).
    assert not [
        name
        for name, text in sources.items()
        if "Redis.from_url(" in text and name != "conftest.py" and "redis-server" not in text
    ]
