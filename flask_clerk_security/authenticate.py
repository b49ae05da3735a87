"""Request authentication as Clerk's ``authenticateRequest``: where the token is, cookie rules, CSRF origin."""

from __future__ import annotations

import base64
import hashlib
import logging
from typing import Any
from urllib.parse import urlsplit

from flask import Request

from .auth import Auth
from .config import ClerkSettings
from .errors import TokenVerificationError
from .tokens import TokenVerifier, decode_unverified

logger = logging.getLogger("flask_clerk_security")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
CSRF_REASON = "csrf-origin-mismatch"
TOKEN_TYPE_MISMATCH = "token-type-mismatch"
_SESSION_CATEGORIES = frozenset({"cl_B7d4PD111AAA", "cl_I7d4PD111III"})
_OAUTH_JWT_TYPES = frozenset({"at+jwt", "application/at+jwt"})
_SENTINEL = object()
_TIME_REASONS = {
    "token-not-active-yet": "session-token-nbf",
    "token-iat-in-the-future": "session-token-iat-in-the-future",
}


class AuthReason:
    """Clerk's AuthErrorReason values for cookie sessions."""

    SESSION_TOKEN_AND_UAT_MISSING = "session-token-and-uat-missing"
    SESSION_TOKEN_WITHOUT_CLIENT_UAT = "session-token-but-no-client-uat"
    CLIENT_UAT_WITHOUT_SESSION_TOKEN = "client-uat-but-no-session-token"
    SESSION_TOKEN_IAT_BEFORE_CLIENT_UAT = "session-token-iat-before-client-uat"


def request_reason(token_reason: str, method: str) -> str:
    """Clerk's ``convertTokenVerificationErrorReasonToAuthErrorReason`` for a token refused on a request.

    This package never refreshes expired tokens through the ``__refresh`` cookie, so an expired token's reason
    is always one of Clerk's not-eligible-for-refresh variants.
    """
    if token_reason == "token-expired":
        refresh = "non-eligible-non-get" if method != "GET" else "non-eligible-no-refresh-cookie"
        return f"session-token-expired-refresh-{refresh}"
    return _TIME_REASONS.get(token_reason, token_reason)


def cookie_suffix(publishable_key: str) -> str:
    """Clerk's ``getCookieSuffix``: the first 8 characters of base64url(SHA-1(publishable key))."""
    digest = hashlib.sha1(publishable_key.encode(), usedforsecurity=False).digest()
    return base64.b64encode(digest).decode().replace("+", "-").replace("/", "_")[:8]


def token_from_authorization(value: str | None) -> str | None:
    """Clerk's ``parseAuthorizationHeader``: ``Bearer <t>`` (case-sensitive) or a bare value with no space."""
    if not value:
        return None
    pieces = value.split(" ", 2)
    scheme, token = pieces[0], pieces[1] if len(pieces) > 1 else ""
    if not token:
        return scheme or None
    return token if scheme == "Bearer" else None


def is_session_jwt(header: dict[str, Any], payload: dict[str, Any]) -> bool:
    """False for machine JWTs (OAuth ``at+jwt``, M2M ``sub: mch_...``) and non-session ``cat`` categories."""
    sub = payload.get("sub")
    cat = header.get("cat", _SENTINEL)
    return not (
        header.get("typ") in _OAUTH_JWT_TYPES
        or (isinstance(sub, str) and sub.startswith("mch_"))
        or (cat is not _SENTINEL and cat not in _SESSION_CATEGORIES)
    )


def is_page_request(request: Request) -> bool:
    """A browser navigation (Clerk's ``isRequestEligibleForHandshake`` test), as opposed to an API call."""
    if request.method != "GET":
        return False
    dest = request.headers.get("Sec-Fetch-Dest")
    if dest:
        return dest in ("document", "iframe")
    return "text/html" in request.headers.get("Accept", "")


def _client_uat(value: str | None) -> int:
    """``Number.parseInt(value) || 0``: leading digits count, anything else is 0."""
    digits = ""
    for char in (value or "").strip():
        if not char.isdigit() or not char.isascii():
            break
        digits += char
    return int(digits) if digits else 0


class RequestAuthenticator:
    """Turns a Flask request into an :class:`Auth`, for one app's settings."""

    def __init__(self, settings: ClerkSettings, verifier: TokenVerifier) -> None:
        self.settings = settings
        self.verifier = verifier
        self.suffix = cookie_suffix(settings.publishable_key) if settings.publishable_key else None

    def authenticate(self, request: Request) -> Auth:
        header_token = token_from_authorization(request.headers.get("Authorization"))
        if header_token:
            return self._verify(header_token, request.method)
        return self._authenticate_cookie(request)

    def cookie(self, request: Request, name: str) -> str | None:
        """The suffixed cookie when this instance has one, else the plain one."""
        if self.suffix:
            value = request.cookies.get(f"{name}_{self.suffix}")
            if value is not None:
                return value
        return request.cookies.get(name)

    def _authenticate_cookie(self, request: Request) -> Auth:
        session = self.cookie(request, "__session")
        client_uat = _client_uat(self.cookie(request, "__client_uat"))
        if not session:
            if client_uat <= 0:
                return Auth.signed_out(AuthReason.SESSION_TOKEN_AND_UAT_MISSING)
            return Auth.signed_out(AuthReason.CLIENT_UAT_WITHOUT_SESSION_TOKEN)
        if client_uat <= 0:
            return Auth.signed_out(AuthReason.SESSION_TOKEN_WITHOUT_CLIENT_UAT)
        try:
            header, payload, _, _ = decode_unverified(session)
        except TokenVerificationError as exc:
            return Auth.signed_out(exc.reason)
        if not is_session_jwt(header, payload):
            return Auth.signed_out(TOKEN_TYPE_MISMATCH)
        iat = payload.get("iat")
        if isinstance(iat, (int, float)) and not isinstance(iat, bool) and iat < client_uat:
            return Auth.signed_out(AuthReason.SESSION_TOKEN_IAT_BEFORE_CLIENT_UAT)
        auth = self._verify(session, request.method, checked=True)
        if auth.is_authenticated and request.method not in SAFE_METHODS and not self._same_origin(request):
            return Auth.signed_out(CSRF_REASON)
        return auth

    def _verify(self, token: str, method: str, *, checked: bool = False) -> Auth:
        """Verify a session token; ``checked`` when its type was already looked at (cookie path)."""
        try:
            if not checked:
                header, payload, _, _ = decode_unverified(token)
                if not is_session_jwt(header, payload):
                    return Auth.signed_out(TOKEN_TYPE_MISMATCH)
            return Auth.from_claims(self.verifier.verify(token))
        except TokenVerificationError as exc:
            return Auth.signed_out(request_reason(exc.reason, method))

    def _same_origin(self, request: Request) -> bool:
        """Cookie-authenticated writes must come from this origin or an authorized party (CSRF defence)."""
        origin = request.headers.get("Origin")
        if not origin or origin == "null":
            referer = request.headers.get("Referer")
            if not referer:
                return False
            parts = urlsplit(referer)
            origin = f"{parts.scheme}://{parts.netloc}"
        own = f"{request.scheme}://{request.host}"
        return origin == own or origin in self.settings.authorized_parties
