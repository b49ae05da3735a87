"""Clerk authentication and the security basics around it, for Flask, in one extension."""

from __future__ import annotations

from .auth import Auth
from .errors import (
    AuthenticationRequired,
    AuthUnavailable,
    ConfigurationError,
    CSRFRejected,
    PermissionDenied,
    ReverificationRequired,
    TokenVerificationError,
)
from .extension import ClerkSecurity, current_auth, get_auth
from .tokens import verify_token

__all__ = [
    "Auth",
    "AuthUnavailable",
    "AuthenticationRequired",
    "CSRFRejected",
    "ClerkSecurity",
    "ConfigurationError",
    "PermissionDenied",
    "ReverificationRequired",
    "TokenVerificationError",
    "current_auth",
    "get_auth",
    "verify_token",
]
