"""WSGI apps for ``benchmarks/throughput.sh`` (gunicorn ``benchmarks.throughput_app:<name>``).

The verification key comes from the PEM file named by ``BENCH_JWT_KEY_FILE``; ``CLERK_TOKEN_CACHE_SIZE`` in the
environment sets the token cache like in any app.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask

from benchmarks.bench import AZP, plain_app, sdk_app
from flask_clerk_security import ClerkSecurity, current_auth

PEM = Path(os.environ["BENCH_JWT_KEY_FILE"]).read_text()

plain = plain_app()

clerk = Flask("clerk_security")
clerk.config.update(CLERK_JWT_KEY=PEM, CLERK_AUTHORIZED_PARTIES=AZP)
_extension = ClerkSecurity(clerk)


@clerk.get("/api/me")
def clerk_me() -> dict[str, Any]:
    return {"user_id": current_auth.user_id}


@clerk.get("/api/public")
@_extension.public
def clerk_public() -> dict[str, Any]:
    return {"user_id": "user_123"}


sdk = sdk_app(PEM)
