"""Clerk's own @clerk/backend under node (tests/conformance/clerk_backend.mjs): one process per batch of cases."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

CONFORMANCE_DIR = Path(__file__).resolve().parent / "conformance"
NODE_TIMEOUT_S = 120


def skip_or_fail(reason: str) -> None:
    """Skip locally; fail when CI is set (the conformance suite must run there)."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so the conformance suite must run)", pytrace=False)
    pytest.skip(reason)


def run_node(script: str, cases: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Clerk's answers to ``cases`` from ``tests/conformance/<script>``, by case id."""
    node = shutil.which("node")
    if node is None:
        skip_or_fail("node is not installed; the conformance suite runs Clerk's @clerk/backend under node")
    if not (CONFORMANCE_DIR / "node_modules" / "@clerk" / "backend").is_dir():
        skip_or_fail("tests/conformance/node_modules is missing; run `npm ci --prefix tests/conformance`")
    proc = subprocess.run(
        [str(node), str(CONFORMANCE_DIR / script)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT_S,
        cwd=CONFORMANCE_DIR,
        env={**os.environ, "CLERK_TELEMETRY_DISABLED": "1"},
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"{script} exited {proc.returncode}:\n{proc.stderr}", pytrace=False)
    return {result["id"]: result for result in json.loads(proc.stdout)}
