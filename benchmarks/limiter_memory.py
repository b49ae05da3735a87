"""Memory and per-request cost of the in-memory rate limiter with many distinct clients, stock and bounded.

    python benchmarks/limiter_memory.py                  # 1k, 10k and 100k distinct clients (about 2 minutes)
    python benchmarks/limiter_memory.py --keys 1000      # a quick look

The in-memory limiter is the default storage and the fallback while Redis is down. Each distinct client (here a
client address on a public route limited to 100 per hour) is one live key. For each count, in a fresh process:
the resident memory the keys add, and the microseconds one limited request costs while they are all live, with
``limits``' stock ``MemoryStorage`` ("stock") and with the extension's ``BoundedMemoryStorage`` ("bounded").
The time is the whole request through the app (Flask, the extension, the limiter), best of 5 rounds of 1,000.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # measure this checkout, not an installed copy

#: Requests per timed round, over the live keys; the best of ``ROUNDS`` rounds is reported.
MEASURED = 1_000
ROUNDS = 5


def _rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(variant: str, keys: int) -> str:
    """One row: fill ``keys`` distinct clients, then time requests over them (run in a fresh process)."""
    from flask import Flask
    from limits.storage import MemoryStorage
    from limits.strategies import FixedWindowRateLimiter
    from werkzeug.test import EnvironBuilder

    from flask_clerk_security import ClerkSecurity
    from flask_clerk_security.testing import ClerkTestIssuer

    app = Flask("limiter_memory")
    app.config.update(
        CLERK_SECURITY_HEADERS=False, CLERK_AUTHORIZED_PARTIES="http://localhost", **ClerkTestIssuer().config
    )
    clerk = ClerkSecurity(app)
    app.get("/limited")(clerk.public(clerk.limiter.limit("100 per hour")(lambda: "ok")))
    limiter: Any = clerk.limiter
    if variant == "stock":
        limiter._storage = MemoryStorage()
        limiter._limiter = FixedWindowRateLimiter(limiter._storage)
    base = EnvironBuilder(path="/limited").get_environ()

    def request(address: str) -> None:
        environ = dict(base, REMOTE_ADDR=address)
        for _ in app.wsgi_app(environ, lambda status, headers: None):
            pass

    addresses = [f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}" for n in range(keys)]
    request(addresses[0])  # imports and first-request work before the baseline
    gc.collect()
    before = _rss_mib()
    for address in addresses:
        request(address)
    gc.collect()
    grown = _rss_mib() - before
    rounds = []
    for round_ in range(ROUNDS):
        start = time.perf_counter()
        for index in range(round_ * MEASURED, (round_ + 1) * MEASURED):
            request(addresses[(index * 7919) % keys])
        rounds.append((time.perf_counter() - start) / MEASURED * 1e6)
    per_request = min(rounds)  # the least disturbed round: the machine is shared
    held = len(limiter._storage.storage)
    return f"{variant:<8} {keys:>8,} {held:>8,} {grown:>9.1f} {grown * 2**20 / keys:>10.0f} {per_request:>10.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, nargs="*", default=[1_000, 10_000, 100_000])
    parser.add_argument("--row", nargs=2, metavar=("VARIANT", "KEYS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:
        print(measure(args.row[0], int(args.row[1])), flush=True)
        return
    print(f"{'storage':<8} {'clients':>8} {'held':>8} {'+MiB':>9} {'bytes/key':>10} {'us/request':>10}")
    for keys in args.keys:
        for variant in ("stock", "bounded"):
            subprocess.run([sys.executable, __file__, "--row", variant, str(keys)], check=True)


if __name__ == "__main__":
    main()
