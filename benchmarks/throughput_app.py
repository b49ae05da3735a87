"""WSGI apps for ``benchmarks/throughput.sh`` (gunicorn ``benchmarks.throughput_app:<name>``).

The verification key comes from the PEM file named by ``BENCH_JWT_KEY_FILE``; ``CLERK_TOKEN_CACHE_SIZE`` in the
environment sets the token cache like in any app.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask, abort, g, request

from flask_clerk_security import ClerkSecurity, current_auth

AZP = "http://localhost:5000"
PEM = Path(os.environ["BENCH_JWT_KEY_FILE"]).read_text()

plain = Flask("plain")


@plain.get("/api/me")
def plain_me() -> dict[str, Any]:
    return {"user_id": "user_123"}


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


def _sdk_app() -> Flask | None:
    try:
        from clerk_backend_api.security import authenticate_request
        from clerk_backend_api.security.types import AuthenticateRequestOptions
    except ImportError:
        return None
    options = AuthenticateRequestOptions(jwt_key=PEM, authorized_parties=[AZP])
    app = Flask("clerk_backend_api")

    @app.before_request
    def guard() -> None:
        state = authenticate_request(request, options)
        if not state.is_signed_in:
            abort(401)
        g.claims = state.payload

    @app.get("/api/me")
    def me() -> dict[str, Any]:
        return {"user_id": g.claims["sub"]}

    return app


sdk = _sdk_app()
