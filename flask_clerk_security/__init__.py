"""Clerk authentication and the security basics around it, for Flask, in one extension."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .auth import Auth
from .errors import (
    AuthenticationRequired,
    AuthUnavailable,
    BodyTooLarge,
    ConfigurationError,
    CSRFRejected,
    MalformedJSON,
    PermissionDenied,
    ReverificationRequired,
    TokenVerificationError,
    UnsupportedContentType,
    ValidationFailed,
)
from .extension import ClerkSecurity, current_auth, get_auth
from .tokens import verify_token

if TYPE_CHECKING:
    from .validation import get_validated_body, get_validated_query

#: The release; pyproject.toml reads it from here, and ``flask clerk --version`` shows it.
__version__ = "0.2.0"


def __getattr__(name: str) -> Any:
    """Import pydantic (via :mod:`.validation`, ~0.15 s) only when its accessors are first used."""
    if name in ("get_validated_body", "get_validated_query"):
        from . import validation

        return getattr(validation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Auth",
    "AuthUnavailable",
    "AuthenticationRequired",
    "BodyTooLarge",
    "CSRFRejected",
    "ClerkSecurity",
    "ConfigurationError",
    "MalformedJSON",
    "PermissionDenied",
    "ReverificationRequired",
    "TokenVerificationError",
    "UnsupportedContentType",
    "ValidationFailed",
    "current_auth",
    "get_auth",
    "get_validated_body",
    "get_validated_query",
    "verify_token",
]
