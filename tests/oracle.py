"""Clerk's own packages under node (tests/conformance/*.mjs): one process per batch of cases.

``node`` comes from the ``conformance_node`` fixture (tests/conftest.py), which installs the packages first and
skips (fails under CI) where node or npm is missing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from email.utils import parsedate_to_datetime
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


#: The one clock-dependent part of Clerk's messages (``JWT is expired. ... Current date: <toUTCString>.``).
_CURRENT_DATE = re.compile(r"Current date: ([A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT)")
CLOCK_TOLERANCE_S = 2


def same_clock(ours: str | None, theirs: str | None, our_clock: float, their_clock: float) -> tuple[Any, Any]:
    """Two messages with ``Current date: ...`` replaced by ``Current date: <now>`` where it is the clock of its
    side (``our_clock`` and ``their_clock``, Unix seconds read just before that side verified) to within
    :data:`CLOCK_TOLERANCE_S` seconds: node and Python verify at different moments. Everything else, and a date
    that is not its side's clock, is left as it is for the comparison."""
    return _now_replaced(ours, our_clock), _now_replaced(theirs, their_clock)


def _now_replaced(message: str | None, clock: float) -> str | None:
    found = _CURRENT_DATE.search(message or "")
    if message is None or found is None:
        return message
    if abs(parsedate_to_datetime(found.group(1)).timestamp() - clock) > CLOCK_TOLERANCE_S:
        return message
    return _CURRENT_DATE.sub("Current date: <now>", message)
