"""Request authentication as Clerk's ``authenticateRequest``: where the token is, cookie rules, CSRF origin."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Request

from .auth import Auth
from .auth_status import SIGNED_OUT
from .cookies import cookie_suffix
from .errors import TokenVerificationError
from .pages import PageAuthenticator, is_page_request, remember
from .reasons import CSRF_ORIGIN_MISMATCH, AuthErrorReason
from .settings import ClerkSettings
from .token_types import is_session_jwt
from .tokens import TokenVerifier, decode_token

logger = logging.getLogger("flask_clerk_security")

__all__ = ["RequestAuthenticator", "cookie_suffix", "is_page_request", "token_from_authorization"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
CSRF_REASON = CSRF_ORIGIN_MISMATCH


def token_from_authorization(value: str | None) -> str | None:
    """Clerk's ``parseAuthorizationHeader``: ``Bearer <t>`` (case-sensitive) or a bare value with no space.

    As ``header.split(' ', 2)`` in JavaScript: only the first two space-separated pieces count, and an empty
    second piece (``"Bearer  t"``) leaves the scheme itself as the token.
    """
    if not value:
        return None
    scheme, space, rest = value.partition(" ")
    if not space:
        return scheme or None
    token = rest.partition(" ")[0]
    if not token:
        return scheme or None
    return token if scheme == "Bearer" else None


class RequestAuthenticator:
    """Turns a Flask request into an :class:`Auth`, for one app's settings."""

    def __init__(self, settings: ClerkSettings, verifier: TokenVerifier) -> None:
        self.settings = settings
        self.verifier = verifier
        self.pages = PageAuthenticator(settings, verifier)

    def authenticate(self, request: Request, header_token: str | None) -> Auth:
        """The session path: the ``Authorization`` header's token (see :func:`token_from_authorization`) when
        there is one, else Clerk's cookies. In the header, machine JWTs and other categories are no sessions;
        refusals carry the reasons Clerk's requests give."""
        if not header_token:
            return self._authenticate_cookie(request)
        return self._header(request, header_token).treating_pending(self.settings.treat_pending_as_signed_out)

    def _header(self, request: Request, header_token: str) -> Auth:
        try:
            cached = self.verifier.cached_session(header_token)
            if cached is not None:
                return cached
            decoded = decode_token(header_token)  # looked at once: the type, then verification
            if not is_session_jwt(decoded[0], decoded[1]):
                return Auth.signed_out(AuthErrorReason.TOKEN_TYPE_MISMATCH)
            return self.verifier.verify_session(header_token, decoded)
        except TokenVerificationError as exc:
            state = self.pages.header_token_error(request, header_token, exc)
            if state.status != SIGNED_OUT:  # refreshed (its cookies) or a handshake (its redirect)
                remember(request, state)
            return state.auth

    def _authenticate_cookie(self, request: Request) -> Auth:
        """Clerk's cookie path (suffixed cookies, client_uat rules, handshake); then the CSRF origin check."""
        state = self.pages.authenticate(request)
        remember(request, state)
        auth = state.auth.treating_pending(self.settings.treat_pending_as_signed_out)
        # A pending session counts as a session here, signed out or not: a route that accepts pending sessions
        # must not sign in a cross-origin write.
        if (
            auth.treating_pending(False).is_authenticated
            and request.method not in SAFE_METHODS
            and not self._same_origin(request)
        ):
            return Auth.signed_out(CSRF_REASON)
        return auth

    def _same_origin(self, request: Request) -> bool:
        """Cookie-authenticated writes must come from this origin or an authorized party (CSRF defence)."""
        origin = request.headers.get("Origin")
        if not origin or origin == "null":
            referer = request.headers.get("Referer")
            if not referer:
                return False
            try:
                parts = urlsplit(referer)
            except ValueError:  # "http://[": not a URL, so no origin to trust
                return False
            origin = f"{parts.scheme}://{parts.netloc}"
        own = f"{request.scheme}://{request.host}"
        return origin == own or origin in self.settings.authorized_parties
