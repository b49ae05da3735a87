"""Clerk authentication and the security basics around it, for Flask, in one extension."""

from __future__ import annotations

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
from .validation import get_validated_body, get_validated_query

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
