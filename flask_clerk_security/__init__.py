"""Clerk authentication and the security basics around it, for Flask, in one extension."""

from __future__ import annotations

import logging
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
    SessionRequired,
    TokenVerificationError,
    UnsupportedContentType,
    ValidationFailed,
)
from .extension import ClerkSecurity, current_auth, get_auth
from .redirects import redirect_to_sign_in, redirect_to_sign_up
from .tokens import verify_token
from .users import current_user, get_token
from .webhook_payloads import WebhookPayload
from .webhooks import verify_webhook

if TYPE_CHECKING:
    from .validation import get_validated_body, get_validated_query

#: The release; pyproject.toml reads it from here, and ``flask clerk --version`` shows it.
__version__ = "0.2.0"

# Records go where the app's logging sends them: without this, Python's last-resort handler would print audit
# records and outage lines when the app has not configured logging. Configuration warnings are the exception:
# then they are Python warnings (config_warnings.warn_once), so a newcomer sees them.
logging.getLogger(__name__).addHandler(logging.NullHandler())


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
    "SessionRequired",
    "TokenVerificationError",
    "UnsupportedContentType",
    "ValidationFailed",
    "WebhookPayload",
    "current_auth",
    "current_user",
    "get_auth",
    "get_token",
    "get_validated_body",
    "get_validated_query",
    "redirect_to_sign_in",
    "redirect_to_sign_up",
    "verify_token",
    "verify_webhook",
]
