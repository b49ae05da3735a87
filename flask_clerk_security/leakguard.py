"""Secret-leak guard: no response body or header may carry the secret key, webhook secret or machine secret.

Runs as an ``after_request`` hook. Under debug/testing a leak raises :class:`SecretLeakError` naming the
config key, so it fails loudly in development; in production the response is replaced by a generic 500 and a
critical audit record names the key (never the value). Streamed and ``direct_passthrough`` responses
(``send_file``, generators) are not checked: reading them would buffer the whole stream.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

from flask import Flask, Response, current_app, request

from . import signals
from .audit import write_record

#: Well-known prefixes; the rest of a secret is what must never appear, with or without its prefix.
_PREFIXES = ("sk_test_", "sk_live_", "whsec_", "ak_", "test_", "live_")
_MIN_CORE = 16


class SecretLeakError(RuntimeError):
    """A response carried a configured secret (raised under debug/testing; the message names the key only)."""

    def __init__(self, key: str, where: str) -> None:
        super().__init__(
            f"The response {where} contains the value of {key}. Fix: never render or return secrets; "
            "take them out of templates, JSON dumps and error messages."
        )
        self.key = key


def _needle(secret: str) -> str:
    """The part of a secret to search for: without its public prefix when the rest is long enough."""
    for prefix in _PREFIXES:
        if secret.startswith(prefix) and len(secret) - len(prefix) >= _MIN_CORE:
            return secret[len(prefix) :]
    return secret


class LeakGuard:
    """The ``after_request`` hook for one app's configured secrets (``ClerkSettings.secrets``)."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        self._needles = [(key, _needle(value)) for key, value in secrets.items()]
        self._byte_needles = [(key, needle.encode()) for key, needle in self._needles]

    def install(self, app: Flask) -> None:
        if self._needles:
            app.after_request(self)

    def find(self, response: Response) -> tuple[str, str] | None:
        """``(config key, "body"|"header <name>")`` of the first leak, or ``None``."""
        for name, value in response.headers:
            for key, needle in self._needles:
                if needle in value:
                    return key, f"header {name}"
        if response.is_streamed or response.direct_passthrough:
            return None
        body = response.get_data()
        for key, byte_needle in self._byte_needles:
            if byte_needle in body:
                return key, "body"
        return None

    def __call__(self, response: Response) -> Response:
        leak = self.find(response)
        if leak is None:
            return response
        key, where = leak
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        signals.secret_leak_blocked.send(app, key=key, route=request.path, method=request.method)
        if app.debug or app.testing:
            raise SecretLeakError(key, where)
        write_record(signals.secret_leak_blocked.name, logging.CRITICAL, {"key": key, "reason": f"in {where}"})
        blocked: Response = app.response_class(
            json.dumps({"error": "internal_error"}), status=500, mimetype="application/json"
        )
        blocked.headers["Cache-Control"] = "no-store"
        return blocked
