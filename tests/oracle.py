"""Clerk's own packages under node (tests/conformance/*.mjs): one process per batch of cases.

``node`` comes from the ``conformance_node`` fixture (tests/conftest.py), which installs the packages first and
skips (fails under CI) where node or npm is missing.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest

from .conftest import CONFORMANCE_DIR

NODE_TIMEOUT_S = 300


def run_node_raw(node: str, script: str, payload: Any) -> Any:
    """What ``tests/conformance/<script>`` prints (JSON) for ``payload`` (JSON on its standard input)."""
    proc = subprocess.run(
        [node, str(CONFORMANCE_DIR / script)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT_S,
        cwd=CONFORMANCE_DIR,
        env={**os.environ, "CLERK_TELEMETRY_DISABLED": "1"},
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"{script} exited {proc.returncode}:\n{proc.stderr}", pytrace=False)
    return json.loads(proc.stdout)


def run_node(node: str, script: str, cases: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Clerk's answers to ``cases`` (each with an ``id``) from ``tests/conformance/<script>``, by case id."""
    return {result["id"]: result for result in run_node_raw(node, script, cases)}
