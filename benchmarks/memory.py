"""Resident memory while a million distinct, valid session tokens go through a protected route.

    python benchmarks/memory.py                    # 1,000,000 tokens (about 5 minutes on 2 cores)
    python benchmarks/memory.py --tokens 50000     # a quicker look

Every token is a distinct string that verifies: each request is a cache miss that adds an entry, so the
verified-token cache (``CLERK_TOKEN_CACHE_SIZE``, default 4096) fills up and then evicts on every request.
The resident set size is printed at checkpoints; past the bound it must stay flat.

Signing a million RSA-2048 tokens takes a quarter of an hour on its own, so the tokens are signed with a
1024-bit key (``--key-bits 2048`` for the real size) in a second process while this one serves them, and each
carries a filler claim that makes it exactly as long as a token signed with a 2048-bit key: every cache entry
holds the same bytes a real one would. Tokens are made in batches and dropped once served.
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing
import os
import sys
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # measure this checkout, not an installed copy

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding, rsa  # noqa: E402
from flask import Flask  # noqa: E402
from werkzeug.test import EnvironBuilder  # noqa: E402

from flask_clerk_security import ClerkSecurity, current_auth  # noqa: E402
from flask_clerk_security.extension import get_state  # noqa: E402

AZP = "http://localhost:5000"
#: Requests arrive over HTTPS, as in production (security headers would redirect plain HTTP).
BASE_URL = "https://localhost:5000"
BATCH = 500
IN_FLIGHT = 3
REAL_SIGNATURE_CHARS = 342  # base64url of a 2048-bit RSA signature
_signer: dict[str, Any] = {}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _init_signer(private_pem: bytes, filler: int) -> None:
    _signer["key"] = serialization.load_pem_private_key(private_pem, password=None)
    _signer["filler"] = filler


def _claims(n: int, now: int, filler: int) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "azp": AZP,
        "exp": now + 3600,
        "fva": [0, -1],
        "iat": now,
        "iss": "https://clerk.example.test",
        "jti": f"{n:020x}",
        "nbf": now - 10,
        "sid": f"sess_{n:024d}",
        "sts": "active",
        "sub": "user_2memorybenchmark0000000",
        "v": 2,
    }
    if filler:
        claims["pad"] = "x" * filler
    return claims


def _signing_input(n: int, now: int, filler: int) -> str:
    header = {"alg": "RS256", "kid": "ins_memory", "typ": "JWT"}
    parts = (json.dumps(part, separators=(",", ":")).encode() for part in (header, _claims(n, now, filler)))
    return ".".join(_b64(part) for part in parts)


def filler_for(key_bits: int) -> int:
    """Filler characters that make a token signed with ``key_bits`` as long as one signed with RSA-2048."""
    signature_chars = len(_b64(bytes(key_bits // 8)))
    now = int(time.time())
    target = len(_signing_input(0, now, 0)) + REAL_SIGNATURE_CHARS - signature_chars
    filler = 0
    while len(_signing_input(0, now, filler)) + signature_chars < target:
        filler += 1
    return filler


def sign_batch(start: int) -> list[str]:
    """Tokens ``start`` .. ``start + BATCH - 1``: Clerk-shaped v2 claims, distinct ``sid``/``jti``."""
    key = _signer["key"]
    now = int(time.time())
    tokens = []
    for n in range(start, start + BATCH):
        signing_input = _signing_input(n, now, _signer["filler"])
        signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        tokens.append(f"{signing_input}.{_b64(signature)}")
    return tokens


def signed_batches(pool: Any, total: int) -> Iterator[list[str]]:
    """Batches from the signing process, at most a few ahead: tokens waiting in a queue would be growth too."""
    pending: deque[Any] = deque()
    starts = iter(range(0, total, BATCH))
    for start in starts:
        pending.append(pool.apply_async(sign_batch, (start,)))
        if len(pending) == IN_FLIGHT:
            break
    while pending:
        batch = pending.popleft().get()
        start = next(starts, None)
        if start is not None:
            pending.append(pool.apply_async(sign_batch, (start,)))
        yield batch


def rss_mb() -> float:
    """Resident set size now (Linux /proc), in MiB."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


def checkpoints(total: int, bound: int) -> list[int]:
    marks = {bound // 2, bound, 2 * bound, 4 * bound, total}
    marks.update(total * share // 10 for share in range(1, 10))
    marks.update(step for step in (10_000, 25_000, 50_000, 100_000) if step < total)
    return sorted(mark for mark in marks if 0 < mark <= total)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=1_000_000)
    parser.add_argument("--key-bits", type=int, default=1024, choices=(1024, 2048))
    parser.add_argument("--cache-size", type=int, default=4096, help="CLERK_TOKEN_CACHE_SIZE (default 4096)")
    args = parser.parse_args(argv)
    total = -(-args.tokens // BATCH) * BATCH

    private_key = rsa.generate_private_key(public_exponent=65537, key_size=args.key_bits)
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    filler = filler_for(args.key_bits)

    app = Flask("memory")
    app.config.update(
        CLERK_JWT_KEY=public_pem.decode(), CLERK_AUTHORIZED_PARTIES=AZP, CLERK_TOKEN_CACHE_SIZE=args.cache_size
    )
    ClerkSecurity(app)

    @app.get("/api/me")
    def me() -> dict[str, Any]:
        return {"user_id": current_auth.user_id}

    verifier = get_state(app).authenticator.verifier
    base = EnvironBuilder(path="/api/me", base_url=BASE_URL).get_environ()
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        statuses.append(status)
        return None

    marks = checkpoints(total, args.cache_size)
    print(
        f"{total:,} distinct tokens through GET /api/me (RSA-{args.key_bits}, "
        f"{len(_signing_input(0, 0, filler)) + REAL_SIGNATURE_CHARS} characters each, as with RSA-2048), "
        f"CLERK_TOKEN_CACHE_SIZE={args.cache_size}"
    )
    print(f"{'tokens':>10} {'RSS MiB':>9} {'cache entries':>14} {'elapsed s':>10}")
    print(f"{0:>10,} {rss_mb():>9.1f} {verifier.cache_len():>14,} {0:>10.0f}")
    started = time.monotonic()
    served = 0
    rows: list[tuple[int, float]] = []
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1, initializer=_init_signer, initargs=(private_pem, filler)) as pool:
        for batch in signed_batches(pool, total):
            for token in batch:
                environ = base.copy()
                environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
                b"".join(app.wsgi_app(environ, start_response))
                if statuses.pop() != "200 OK":
                    raise SystemExit(f"token {served} was refused: the figures would be meaningless")
                served += 1
                if served in marks:
                    rows.append((served, rss_mb()))
                    print(
                        f"{served:>10,} {rows[-1][1]:>9.1f} {verifier.cache_len():>14,} "
                        f"{time.monotonic() - started:>10.0f}",
                        flush=True,
                    )
            del batch
    past_bound = [rss for count, rss in rows if count >= 2 * args.cache_size]
    if len(past_bound) >= 2:
        growth = past_bound[-1] - past_bound[0]
        print(
            f"\nRSS from {2 * args.cache_size:,} tokens (twice the bound) to {total:,}: "
            f"{past_bound[0]:.1f} -> {past_bound[-1]:.1f} MiB ({growth:+.1f} MiB); "
            f"cache entries never above {args.cache_size:,}: {verifier.cache_len() <= args.cache_size}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
