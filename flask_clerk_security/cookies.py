"""Follows ``@clerk/backend`` ``src/tokens/authenticateContext.ts``: what a request's cookies and query say.

Clerk's cookie names, the per-instance cookie suffix (``__session_<suffix>``), which of the suffixed and plain
cookies belong to this app, ``__client_uat``, the development browser token, and the JavaScript number parsing
these values go through.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import time
from typing import Any
from urllib.parse import urlsplit

from flask import Request

from .config import ClerkSettings
from .tokens import try_decode

SESSION = "__session"
CLIENT_UAT = "__client_uat"
REFRESH = "__refresh"
HANDSHAKE = "__clerk_handshake"
HANDSHAKE_NONCE = "__clerk_handshake_nonce"
DEV_BROWSER = "__clerk_db_jwt"
LEGACY_DEV_BROWSER = "__dev_session"
REDIRECT_COUNT = "__clerk_redirect_count"
HANDSHAKE_HELP = "__clerk_help"

_LEGACY_DEV_SUFFIXES = (".lcl.dev", ".lclstage.dev", ".lclclerk.com")
_CURRENT_DEV_SUFFIXES = (".accounts.dev", ".accountsstage.dev", ".accounts.lclclerk.com")


def cookie_suffix(publishable_key: str) -> str:
    """Clerk's ``getCookieSuffix``: the first 8 characters of base64url(SHA-1(publishable key))."""
    digest = hashlib.sha1(publishable_key.encode(), usedforsecurity=False).digest()
    return base64.b64encode(digest).decode().replace("+", "-").replace("/", "_")[:8]


def _parse_int(value: str | None) -> int:
    """``Number.parseInt(value) || 0``: optional sign and leading digits after whitespace, else 0."""
    match = re.match(r"\s*([+-]?)([0-9]+)", value or "")
    if not match:
        return 0
    number = int(match.group(2))
    return -number if match.group(1) == "-" else number


def _js_number(value: str | None) -> float:
    """``Number(value) || 0`` for a cookie string (decimal, hex, or 0)."""
    text = (value or "").strip()
    if not text:
        return 0.0
    try:
        number = float(int(text[2:], 16)) if text.lower().startswith("0x") else float(text)
    except ValueError:
        return 0.0
    return 0.0 if math.isnan(number) or text.lower() in ("inf", "+inf", "-inf", "nan", "infinity") else number


def _numeric(value: Any) -> float:
    """A claim as JS's ``value || 0`` sees it in a numeric comparison (non-numbers compare false)."""
    if not value:
        return 0.0
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return math.nan


class CookieContext:
    """Clerk's ``AuthenticateContext`` for a request without an ``Authorization`` token."""

    def __init__(self, request: Request, settings: ClerkSettings) -> None:
        self.request = request
        self.settings = settings
        self.method = request.method
        self.sec_fetch_dest = request.headers.get("Sec-Fetch-Dest") or None
        self.accept = request.headers.get("Accept") or None
        self.referrer = request.headers.get("Referer") or None
        self.clerk_url = request.url
        self.instance_type = "development"
        self.frontend_api: str | None = None
        self.original_frontend_api = ""
        if settings.publishable_key and settings.frontend_api:
            self.instance_type = "production" if settings.publishable_key.startswith("pk_live_") else "development"
            self.original_frontend_api = settings.frontend_api
            self.frontend_api = _proxy_url(settings.proxy_url, request) or settings.frontend_api
        self.suffix = cookie_suffix(settings.publishable_key) if settings.publishable_key else None
        self.suffixed = self.uses_suffixed_cookies()
        self.session_token = self._suffixed_or_plain(SESSION)
        self.client_uat = _parse_int(self._suffixed_or_plain(CLIENT_UAT))
        self.dev_browser_token = self._query(DEV_BROWSER) or self._suffixed_or_plain(DEV_BROWSER)
        self.handshake_token = self._query(HANDSHAKE) or self._cookie(HANDSHAKE)
        self.handshake_nonce = self._query(HANDSHAKE_NONCE) or self._cookie(HANDSHAKE_NONCE)
        self.redirect_count = _js_number(self._cookie(REDIRECT_COUNT))

    @property
    def handshake_enabled(self) -> bool:
        """Only with a publishable key does this app know its Frontend API (and its cookie suffix)."""
        return self.frontend_api is not None

    @property
    def is_development(self) -> bool:
        return self.handshake_enabled and self.instance_type == "development"

    def _query(self, name: str) -> str | None:
        return self.request.args.get(name) or None

    def _cookie(self, name: str) -> str | None:
        return self.request.cookies.get(name) or None

    def _suffixed(self, name: str) -> str | None:
        return self._cookie(f"{name}_{self.suffix}") if self.suffix else None

    def _suffixed_or_plain(self, name: str) -> str | None:
        return self._suffixed(name) if self.suffixed else self._cookie(name)

    def uses_suffixed_cookies(self) -> bool:
        """Clerk's ``usesSuffixedCookies``: whether ``__session_<suffix>`` or ``__session`` is this app's."""
        suffixed_uat = self._suffixed(CLIENT_UAT)
        plain_uat = self._cookie(CLIENT_UAT)
        suffixed_session = self._suffixed(SESSION) or ""
        session = self._cookie(SESSION) or ""
        decoded = try_decode(session)
        if session and not (decoded and decoded[1].get("iss")):
            return False
        if session and not self._belongs_to_instance(decoded):
            return True
        if not suffixed_uat and not suffixed_session:
            return False
        session_iat = _numeric(decoded[1].get("iat")) if decoded else 0.0
        suffixed_decoded = try_decode(suffixed_session)
        suffixed_iat = _numeric(suffixed_decoded[1].get("iat")) if suffixed_decoded else 0.0
        if suffixed_uat != "0" and plain_uat != "0" and session_iat > suffixed_iat:
            return False
        if suffixed_uat == "0" and plain_uat != "0":
            return False
        if self.instance_type != "production":
            exp = suffixed_decoded[1].get("exp") if suffixed_decoded else None
            expired = isinstance(exp, (int, float)) and not isinstance(exp, bool) and exp <= int(time.time())
            if suffixed_uat != "0" and plain_uat == "0" and expired:
                return False
        return not (not suffixed_uat and suffixed_session)

    def _belongs_to_instance(self, decoded: tuple[dict[str, Any], dict[str, Any]] | None) -> bool:
        if decoded is None or not isinstance(decoded[1].get("iss"), str):
            return False
        issuer = re.sub(r"https?://", "", decoded[1]["iss"], flags=re.IGNORECASE)
        return bool(self.original_frontend_api) and issuer == self.original_frontend_api

    def is_eligible_for_handshake(self) -> bool:
        """Clerk's ``isRequestEligibleForHandshake``: a GET document/iframe navigation."""
        if self.method != "GET":
            return False
        if self.sec_fetch_dest in ("document", "iframe"):
            return True
        return not self.sec_fetch_dest and bool(self.accept and self.accept.startswith("text/html"))

    def origin(self) -> str:
        parts = urlsplit(self.clerk_url)
        return f"{parts.scheme}://{parts.netloc}"

    def is_cross_origin_referrer(self) -> bool:
        if not self.referrer:
            return False
        parts = urlsplit(self.referrer)
        if not parts.scheme or not parts.netloc:
            return False
        return f"{parts.scheme}://{parts.netloc}".lower() != self.origin().lower()

    def is_known_clerk_referrer(self) -> bool:
        """Clerk's ``isKnownClerkReferrer``: the Frontend API, this instance's Account Portal, dev portals."""
        if not self.referrer:
            return False
        parts = urlsplit(self.referrer)
        host = (parts.hostname or "").lower()
        if not parts.scheme or not host:
            return False
        fapi = self.frontend_api or ""
        fapi_host = (urlsplit(fapi).hostname or "") if fapi.startswith("http") else fapi
        if fapi and host == fapi_host:
            return True
        if self.instance_type != "production" and (
            (host.startswith("accounts.") and host.endswith(_LEGACY_DEV_SUFFIXES)) or _is_current_dev_portal(host)
        ):
            return True
        accounts = accounts_base_url(fapi)
        return bool(accounts) and f"{parts.scheme}://{parts.netloc}".lower() == accounts.lower()


def _is_current_dev_portal(host: str) -> bool:
    return any(host.endswith(suffix) and not host.endswith(".clerk" + suffix) for suffix in _CURRENT_DEV_SUFFIXES)


def _proxy_url(proxy_url: str | None, request: Request) -> str | None:
    """``CLERK_PROXY_URL``; a relative one (``/__clerk``) resolves against the request's origin, as Clerk does."""
    if proxy_url and proxy_url.startswith("/"):
        return f"{request.scheme}://{request.host}{proxy_url}"
    return proxy_url


def accounts_base_url(frontend_api: str | None) -> str:
    """Clerk's ``buildAccountsBaseUrl``: ``clerk.example.com`` -> ``https://accounts.example.com``."""
    if not frontend_api:
        return ""
    host = frontend_api.replace("clerk.accountsstage.", "accountsstage.", 1)
    host = re.sub(r"clerk\.accounts\.|clerk\.", "accounts.", host, count=1)
    return f"https://{host}"
