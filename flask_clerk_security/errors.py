"""Exceptions: configuration errors, token errors and the HTTP answers the extension gives."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from werkzeug.exceptions import (
    BadRequest,
    Forbidden,
    HTTPException,
    RequestEntityTooLarge,
    Unauthorized,
    UnprocessableEntity,
    UnsupportedMediaType,
)


class ConfigurationError(RuntimeError):
    """Raised by ``init_app`` when configuration is missing or malformed; names the key and the fix."""


class TokenVerificationError(Exception):
    """A token was refused: Clerk's ``TokenVerificationError``. ``reason`` is its TokenVerificationErrorReason
    string, ``message`` and ``action`` its words (never the token)."""

    def __init__(self, reason: str, message: str = "", action: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason
        self.message = message or reason
        self.action = action

    def full_message(self, carrier: str) -> str:
        """Clerk's ``getFullMessage()`` for a token read from ``carrier`` (``header`` or ``cookie``)."""
        text = f"{self.message} {self.action}" if self.action else self.message
        return f"{text} (reason={self.reason}, token-carrier={carrier})"


#: The longest ``x-clerk-auth-message`` sent. Clerk's own texts stay under 400 characters; longer ones only come
#: from claim values a token's author chose (a 10 KB ``typ``), and a response header block of several KB makes
#: proxies fail the response (nginx's default ``proxy_buffer_size`` holds 4-8 KB of headers: a 502).
MAX_AUTH_MESSAGE = 1024
_HTTP_WHITESPACE = " \t\r\n"
#: Anything but printable Latin-1: beyond 0xFF (Clerk's ``headers.set`` throws), NUL/CR/LF (it throws too), and
#: the other control characters (Clerk sends them; a raw control character in a header is never sent here).
_UNSENDABLE = re.compile(r"[^\x20-\x7e\xa0-\xff]")


def auth_message_header(message: str | None) -> str | None:
    """``message`` as the value of ``x-clerk-auth-message``, or None for no header: Clerk's ``withDebugHeaders``
    sends nothing when ``headers.set`` refuses the value, and neither does this (see ``_UNSENDABLE``). Longer
    than :data:`MAX_AUTH_MESSAGE`, the middle is cut (``...``), keeping the ``(reason=..., ...)`` at its end."""
    value = (message or "").strip(_HTTP_WHITESPACE)
    if not value or _UNSENDABLE.search(value):
        return None
    if len(value) <= MAX_AUTH_MESSAGE:
        return value
    tail = value[value.rfind(" (") :] if " (" in value else ""
    tail = tail if len(tail) <= MAX_AUTH_MESSAGE // 4 else ""
    return value[: MAX_AUTH_MESSAGE - len(tail) - 3] + "..." + tail


class _JSONError(HTTPException):
    """An HTTP error whose body is a short JSON document."""

    payload: Mapping[str, Any] = {}

    def get_body(self, environ: Any = None, scope: Any = None) -> str:
        return json.dumps(self.payload, separators=(",", ":"))

    def get_headers(self, environ: Any = None, scope: Any = None) -> list[tuple[str, str]]:
        return [("Content-Type", "application/json"), ("Cache-Control", "no-store")]


class AuthenticationRequired(_JSONError, Unauthorized):
    """401: no valid credentials. The reason is logged, never sent."""

    payload: Mapping[str, Any] = {"error": "unauthorized"}

    def __init__(
        self, reason: str | None = None, resource_metadata: str | None = None, message: str | None = None
    ) -> None:
        super().__init__()
        self.reason = reason
        #: Clerk's ``x-clerk-auth-message``: what was wrong with the token, in Clerk's words (never the token).
        self.message = auth_message_header(message)
        #: RFC 9728 protected resource metadata URL, named in ``WWW-Authenticate`` (routes taking OAuth tokens).
        self.resource_metadata = resource_metadata

    def get_headers(self, environ: Any = None, scope: Any = None) -> list[tuple[str, str]]:
        headers = super().get_headers(environ, scope)
        challenge = f'Bearer resource_metadata="{self.resource_metadata}"' if self.resource_metadata else "Bearer"
        headers.append(("WWW-Authenticate", challenge))
        headers.append(("x-clerk-auth-status", "signed-out"))
        if self.reason:
            headers.append(("x-clerk-auth-reason", self.reason))
        if self.message:
            headers.append(("x-clerk-auth-message", self.message))
        return headers


class SessionRequired(AuthenticationRequired):
    """401 from ``get_token()``: the request has no signed-in session (signed out, or a machine token)."""

    def __init__(self) -> None:
        super().__init__("session-token-required")


class PermissionDenied(_JSONError, Forbidden):
    """403: signed in, but not allowed."""

    payload: Mapping[str, Any] = {"error": "forbidden"}


class CSRFRejected(PermissionDenied):
    """403: a cookie-authenticated unsafe request came from another origin."""


class ReverificationRequired(PermissionDenied):
    """403 with Clerk's ``reverification-error`` body, which Clerk's ``useReverification`` recognises."""

    def __init__(self, config: str | Mapping[str, Any] | None) -> None:
        super().__init__()
        metadata = {} if config is None else {"reverification": config}
        self.payload = {"clerk_error": {"type": "forbidden", "reason": "reverification-error", "metadata": metadata}}


class AuthUnavailable(_JSONError):
    """503: keys could not be loaded (cold start while Clerk's Backend API is down). Fails closed."""

    code = 503
    description = "Authentication is temporarily unavailable."
    payload: Mapping[str, Any] = {"error": "auth_unavailable"}

    def get_headers(self, environ: Any = None, scope: Any = None) -> list[tuple[str, str]]:
        return [*super().get_headers(environ, scope), ("Retry-After", "5")]


class UnsupportedContentType(_JSONError, UnsupportedMediaType):
    """415: a validated body must be ``application/json`` or ``application/*+json``."""

    payload: Mapping[str, Any] = {"error": "unsupported_media_type"}


class MalformedJSON(_JSONError, BadRequest):
    """400: the body is not JSON, or not a JSON object. ``detail`` is fixed text, never the input."""

    def __init__(self, detail: str) -> None:
        super().__init__()
        self.payload = {"error": "malformed_json", "detail": detail}


class BadRequestURL(_JSONError, BadRequest):
    """400: the request's URL cannot be rebuilt (a ``Host`` header whose port is no port, such as ``a:99999``)."""

    payload: Mapping[str, Any] = {"error": "bad_request"}


class BodyTooLarge(_JSONError, RequestEntityTooLarge):
    """413: the body is larger than ``CLERK_MAX_BODY_BYTES`` (or Flask's ``MAX_CONTENT_LENGTH``)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__()
        self.payload = {"error": "payload_too_large", "max_bytes": max_bytes}


class ValidationFailed(_JSONError, UnprocessableEntity):
    """422: the model refused the input. ``errors`` is ``[{loc, msg, type}]`` without the submitted values."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__()
        self.errors = errors
        self.payload = {"error": "validation_failed", "errors": errors}
