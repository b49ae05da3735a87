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

from .errors import BadRequestURL
from .jsvalues import UNDEFINED, js_double, js_string
from .settings import ClerkSettings
from .tokens import try_decode

SESSION = "__session"
CLIENT_UAT = "__client_uat"
REFRESH = "__refresh"
HANDSHAKE = "__clerk_handshake"
HANDSHAKE_NONCE = "__clerk_handshake_nonce"
DEV_BROWSER = "__clerk_db_jwt"
LEGACY_DEV_BROWSER = "__dev_session"
REDIRECT_COUNT = "__clerk_redirect_count"
SYNCED = "__clerk_synced"
REDIRECT_URL = "__clerk_redirect_url"
HANDSHAKE_HELP = "__clerk_help"

_LEGACY_DEV_SUFFIXES = (".lcl.dev", ".lclstage.dev", ".lclclerk.com")
_CURRENT_DEV_SUFFIXES = (".accounts.dev", ".accountsstage.dev", ".accounts.lclclerk.com")


def request_url(request: Request) -> str:
    """``request.url``, or 400 when the untrusted ``Host`` header makes it unbuildable (werkzeug raises
    ``ValueError`` for a port out of range; Clerk's ``new URL`` throws on it too)."""
    try:
        return request.url
    except ValueError:
        raise BadRequestURL() from None


def cookie_suffix(publishable_key: str) -> str:
    """Clerk's ``getCookieSuffix``: the first 8 characters of base64url(SHA-1(publishable key))."""
    digest = hashlib.sha1(publishable_key.encode(), usedforsecurity=False).digest()
    return base64.b64encode(digest).decode().replace("+", "-").replace("/", "_")[:8]


#: JavaScript's ``StrWhiteSpaceChar``: what ``Number()`` and ``parseInt`` skip (not Python's ``str.strip`` set).
_JS_SPACE = "\t\n\v\f\r \xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000\ufeff"
_DECIMAL_LITERAL = re.compile(r"[+-]?(?:Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)")
_RADIX_PREFIXES = {"0x": 16, "0o": 8, "0b": 2}
_RADIX_DIGITS = {16: re.compile(r"[0-9a-fA-F]+"), 8: re.compile(r"[0-7]+"), 2: re.compile(r"[01]+")}
_LEADING_DECIMAL = re.compile(r"[0-9]+")


def _power_of_two_radix(digits: str, radix: int) -> float:
    """Digits in base 2/8/16 as a double; ``inf`` past its range (no int-string limit for these bases)."""
    try:
        return float(int(digits, radix))
    except OverflowError:
        return math.inf


def js_parse_int(value: str | None) -> float:
    """``Number.parseInt(value) || 0``: leading whitespace, a sign, ``0x`` (hex) or decimal digits, the rest
    ignored; a double, ``inf`` past its range (a 4,400-digit value is ``inf``, not Python's ``ValueError``)."""
    text = (value or "").lstrip(_JS_SPACE)
    negative = text[:1] == "-"
    if text[:1] in ("+", "-"):
        text = text[1:]
    if text[:2] in ("0x", "0X"):
        match = _RADIX_DIGITS[16].match(text, 2)
        number = _power_of_two_radix(match.group(), 16) if match else 0.0
    else:
        match = _LEADING_DECIMAL.match(text)
        number = float(match.group()) if match else 0.0  # float() of digits has no length limit
    return (-number if negative else number) or 0.0


def _string_to_number(text: str) -> float:
    """JavaScript's ``StringToNumber``: the whole trimmed string as a numeric literal (decimal, ``Infinity``,
    ``0x``/``0o``/``0b``), empty is 0, anything else NaN; ``inf`` past a double's range, never an error."""
    text = text.strip(_JS_SPACE)
    if not text:
        return 0.0
    radix = _RADIX_PREFIXES.get(text[:2].lower())
    if radix is not None:
        digits = _RADIX_DIGITS[radix].fullmatch(text, 2)
        return _power_of_two_radix(digits.group(), radix) if digits else math.nan
    if _DECIMAL_LITERAL.fullmatch(text):
        return float(text.replace("Infinity", "inf"))
    return math.nan


def js_number(value: str | None) -> float:
    """``Number(value) || 0`` for a cookie string."""
    number = _string_to_number(value or "")
    return 0.0 if math.isnan(number) else number or 0.0


def _to_primitive(value: Any) -> Any:
    """A JSON value as JavaScript's ``ToPrimitive`` gives it to ``<``: arrays join, objects stringify."""
    return js_string(value) if isinstance(value, (list, dict)) else value


def _to_number(value: Any) -> float:
    """JavaScript's ``ToNumber`` of a primitive."""
    if value is UNDEFINED:
        return math.nan
    if value is None:
        return 0.0
    if isinstance(value, str):
        return _string_to_number(value)
    return js_double(value)


def _as_number(value: Any) -> float:
    """``ToNumber(ToPrimitive(value))`` for a JSON value, an array never written out: ``String()`` of two or more
    items holds a ``,`` (never a number: NaN), of none is ``""`` (0), of one is that item's."""
    if not isinstance(value, list):
        return _to_number(_to_primitive(value))
    while len(value) == 1 and isinstance(value[0], list):
        value = value[0]
    if len(value) != 1:
        return math.nan if value else 0.0
    return _string_to_number(js_string(value))  # one item that is no array: a short String()


def js_less_than(left: Any, right: Any) -> bool:
    """JavaScript's ``left < right`` for JSON values (``UNDEFINED`` for a missing one): two strings compare by
    UTF-16 code units, anything else as numbers, and NaN (``undefined``, ``{}``, ``"abc"``) is never less."""
    if isinstance(left, (str, list, dict)) and isinstance(right, (str, list, dict)):  # both primitives strings
        texts = [js_string(value) for value in (left, right)]
        return texts[0].encode("utf-16-be", "surrogatepass") < texts[1].encode("utf-16-be", "surrogatepass")
    return _as_number(left) < _as_number(right)


def js_truthy(value: Any) -> bool:
    """JavaScript truthiness of a JSON value (``UNDEFINED`` for a missing one): ``[]`` and ``{}`` are true."""
    if value is UNDEFINED or value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return not (value == 0 or math.isnan(value))
    return bool(value != "")


def js_or_zero(value: Any) -> Any:
    """JavaScript's ``value || 0`` for a JSON value (``UNDEFINED`` for a missing one)."""
    return value if js_truthy(value) else 0


class CookieContext:
    """Clerk's ``AuthenticateContext`` for the cookie path, or for a refused ``Authorization`` token
    (``header_token``) that gets the cookie path's refresh and handshake."""

    def __init__(self, request: Request, settings: ClerkSettings, header_token: str | None = None) -> None:
        self.request = request
        self.settings = settings
        self.method = request.method
        self.sec_fetch_dest = request.headers.get("Sec-Fetch-Dest") or None
        self.accept = request.headers.get("Accept") or None
        self.referrer = request.headers.get("Referer") or None
        self.clerk_url = request_url(request)
        self.instance_type = "development"
        self.frontend_api: str | None = None
        self.original_frontend_api = ""
        if settings.publishable_key and settings.frontend_api:
            self.instance_type = "production" if settings.publishable_key.startswith("pk_live_") else "development"
            # parsePublishableKey: a production satellite's Frontend API is clerk.<its domain>.
            own = settings.frontend_api
            if self.instance_type == "production" and settings.is_satellite and settings.domain:
                own = f"clerk.{settings.domain}"
            self.original_frontend_api = own
            self.frontend_api = _proxy_url(settings.proxy_url, request) or own
        self.suffix = cookie_suffix(settings.publishable_key) if settings.publishable_key else None
        self.suffixed = self.uses_suffixed_cookies()
        self.session_token = self._suffixed_or_plain(SESSION)
        self.client_uat = js_parse_int(self._suffixed_or_plain(CLIENT_UAT))
        self.dev_browser_token = self._query(DEV_BROWSER) or self._suffixed_or_plain(DEV_BROWSER)
        self.handshake_token = self._query(HANDSHAKE) or self._cookie(HANDSHAKE)
        self.handshake_nonce = self._query(HANDSHAKE_NONCE) or self._cookie(HANDSHAKE_NONCE)
        self.redirect_count = js_number(self._cookie(REDIRECT_COUNT))
        self.is_satellite = settings.is_satellite
        #: Clerk reads only the suffixed ``__refresh_<suffix>`` (``getSuffixedCookie``), never a plain one.
        self.refresh_token = self._suffixed(REFRESH)
        #: Clerk's ``sessionToken``: the one a refresh exchanges and a handshake carries (cookie, else header).
        self.any_session_token = self.session_token or header_token

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
        if session and not (decoded and js_truthy(decoded[1].get("iss", UNDEFINED))):
            return False
        if session and not self._belongs_to_instance(decoded):
            return True
        if not suffixed_uat and not suffixed_session:
            return False
        session_iat = js_or_zero(decoded[1].get("iat", UNDEFINED)) if decoded else 0
        suffixed_decoded = try_decode(suffixed_session)
        suffixed_iat = js_or_zero(suffixed_decoded[1].get("iat", UNDEFINED)) if suffixed_decoded else 0
        if suffixed_uat != "0" and plain_uat != "0" and js_less_than(suffixed_iat, session_iat):
            return False
        if suffixed_uat == "0" and plain_uat != "0":
            return False
        if self.instance_type != "production":
            exp = suffixed_decoded[1].get("exp", UNDEFINED) if suffixed_decoded else None
            expired = suffixed_decoded is not None and _as_number(exp) <= int(time.time())
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
        """Clerk's ``isCrossOriginReferrer``; a referrer ``new URL`` refuses (``http://[``) is not cross-origin."""
        if not self.referrer:
            return False
        try:
            parts = urlsplit(self.referrer)
            parts.port  # noqa: B018  # raises on a port new URL refuses too (``http://a:b/``)
        except ValueError:
            return False
        if not parts.scheme or not parts.netloc:
            return False
        return f"{parts.scheme}://{parts.netloc}".lower() != self.origin().lower()

    def is_known_clerk_referrer(self) -> bool:
        """Clerk's ``isKnownClerkReferrer``: the Frontend API, this instance's Account Portal, dev portals."""
        if not self.referrer:
            return False
        try:
            parts = urlsplit(self.referrer)
            host = (parts.hostname or "").lower()
            parts.port  # noqa: B018  # raises on a port new URL refuses too
        except ValueError:  # Clerk's ``new URL`` throws there, and its catch answers false
            return False
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
