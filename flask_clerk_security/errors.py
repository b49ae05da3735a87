"""Exceptions: configuration errors, token errors and the HTTP answers the extension gives."""

from __future__ import annotations

import json
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
    """A token was refused. ``reason`` is Clerk's TokenVerificationErrorReason string."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason
        self.message = message or reason


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
        #: Clerk's ``x-clerk-auth-message``: what was wrong with the token, in words (never the token).
        self.message = message
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
