"""Request authentication as Clerk's ``authenticateRequest``: where the token is, cookie rules, CSRF origin."""

from __future__ import annotations

import base64
import hashlib
import logging
from urllib.parse import urlsplit

from flask import Request

from .auth import Auth
from .config import ClerkSettings
from .errors import TokenVerificationError
from .tokens import TokenVerifier, decode_unverified

logger = logging.getLogger("flask_clerk_security")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
CSRF_REASON = "csrf-origin-mismatch"


class AuthReason:
    """Clerk's AuthErrorReason values for cookie sessions."""

    SESSION_TOKEN_AND_UAT_MISSING = "session-token-and-uat-missing"
    SESSION_TOKEN_WITHOUT_CLIENT_UAT = "session-token-but-no-client-uat"
    CLIENT_UAT_WITHOUT_SESSION_TOKEN = "client-uat-but-no-session-token"
    SESSION_TOKEN_IAT_BEFORE_CLIENT_UAT = "session-token-iat-before-client-uat"


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
            return self._verify(header_token)
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
            _, payload, _, _ = decode_unverified(session)
        except TokenVerificationError as exc:
            return Auth.signed_out(exc.reason)
        iat = payload.get("iat")
        if isinstance(iat, (int, float)) and not isinstance(iat, bool) and iat < client_uat:
            return Auth.signed_out(AuthReason.SESSION_TOKEN_IAT_BEFORE_CLIENT_UAT)
        auth = self._verify(session)
        if auth.is_authenticated and request.method not in SAFE_METHODS and not self._same_origin(request):
            return Auth.signed_out(CSRF_REASON)
        return auth

    def _verify(self, token: str) -> Auth:
        try:
            return self.verifier.verify_session(token)
        except TokenVerificationError as exc:
            return Auth.signed_out(exc.reason)

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
