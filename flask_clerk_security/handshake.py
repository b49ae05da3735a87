"""Clerk's handshake for server-rendered pages: the cookie path of ``@clerk/backend``'s ``authenticateRequest``.

Clerk session tokens live 60 seconds and only ClerkJS in the browser refreshes them. When a page navigation
arrives with a stale or missing ``__session`` cookie while ``__client_uat`` says a client is signed in, Clerk's
server SDKs answer with a 307 to the Frontend API's ``/v1/client/handshake``, which sends the browser back with
fresh cookies (a ``__clerk_handshake`` token, or a ``__clerk_handshake_nonce`` exchanged through the Backend
API). This module makes the same decisions in the same order as ``request.ts``, ``handshake.ts`` and
``authenticateContext.ts`` of ``@clerk/backend``; the Flask wiring lives in :mod:`.extension`.

Deliberate differences (see docs/server-rendered-pages.md): directives that set cookies outside Clerk's
namespace are dropped; the post-handshake redirect is same-origin and relative; a handshake token that fails
verification on a development instance signs the request out instead of raising; satellite domains,
organization sync and the ``__refresh`` cookie exchange are not implemented.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urljoin, urlsplit, urlunsplit

from flask import Request, g
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from . import backend_api
from .auth import Auth
from .config import CLERK_API_VERSION_HEADER, ClerkSettings
from .errors import TokenVerificationError
from .tokens import Reason, TokenVerifier, decode_unverified, try_decode, verify_signature

logger = logging.getLogger("flask_clerk_security")

SESSION = "__session"
CLIENT_UAT = "__client_uat"
REFRESH = "__refresh"
HANDSHAKE = "__clerk_handshake"
HANDSHAKE_NONCE = "__clerk_handshake_nonce"
DEV_BROWSER = "__clerk_db_jwt"
LEGACY_DEV_BROWSER = "__dev_session"
REDIRECT_COUNT = "__clerk_redirect_count"
HANDSHAKE_HELP = "__clerk_help"
#: Clerk stops handshaking when ``__clerk_redirect_count`` reaches this value (``checkAndTrackRedirectLoop``).
REDIRECT_LOOP_LIMIT = 3
#: Cookie names a handshake directive may set; anything else is dropped (never reaches ``Set-Cookie``).
CLERK_COOKIE_PREFIXES = (SESSION, CLIENT_UAT, "__clerk", REFRESH)
MAX_DIRECTIVES = 32
MAX_DIRECTIVE_LENGTH = 8192
#: Clerk's development clock-skew allowance for the session token a handshake delivers (24 h).
DEV_HANDSHAKE_SKEW = 86_400.0

SIGNED_IN = "signed-in"
SIGNED_OUT = "signed-out"
HANDSHAKE_STATUS = "handshake"

_G_STATE = "_clerk_security_page_state"
_SESSION_CATEGORIES = frozenset({"cl_B7d4PD111AAA", "cl_I7d4PD111III"})
_OAUTH_JWT_TYPES = frozenset({"at+jwt", "application/at+jwt"})
_COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_LEGACY_DEV_SUFFIXES = (".lcl.dev", ".lclstage.dev", ".lclclerk.com")
_CURRENT_DEV_SUFFIXES = (".accounts.dev", ".accountsstage.dev", ".accounts.lclclerk.com")
_HANDSHAKE_REASONS = {
    Reason.TOKEN_EXPIRED: "session-token-expired",
    Reason.TOKEN_NOT_ACTIVE_YET: "session-token-nbf",
    Reason.TOKEN_IAT_IN_THE_FUTURE: "session-token-iat-in-the-future",
}


class PageReason:
    """Clerk's AuthErrorReason values of the cookie path (``authStatus.ts``)."""

    CLIENT_UAT_WITHOUT_SESSION_TOKEN = "client-uat-but-no-session-token"
    DEV_BROWSER_MISSING = "dev-browser-missing"
    DEV_BROWSER_SYNC = "dev-browser-sync"
    PRIMARY_DOMAIN_CROSS_ORIGIN_SYNC = "primary-domain-cross-origin-sync"
    SESSION_TOKEN_AND_UAT_MISSING = "session-token-and-uat-missing"
    SESSION_TOKEN_MISSING = "session-token-missing"
    SESSION_TOKEN_IAT_BEFORE_CLIENT_UAT = "session-token-iat-before-client-uat"
    SESSION_TOKEN_WITHOUT_CLIENT_UAT = "session-token-but-no-client-uat"
    TOKEN_TYPE_MISMATCH = "token-type-mismatch"
    #: Ours: Clerk throws here (a 500 in its Express SDK); we sign the request out and stop handshaking.
    HANDSHAKE_TOKEN_INVALID = "handshake-token-invalid"


class HandshakeFailed(Exception):
    """Resolving a handshake return failed; Clerk then continues with the ordinary cookie rules."""


@dataclass
class PageState:
    """Clerk's RequestState for one request: status, auth, reason and the response headers it asks for."""

    status: str
    auth: Auth
    reason: str | None = None
    cookies: list[str] = field(default_factory=list)
    location: str | None = None


# --------------------------------------------------------------------------------------------- JS helpers
def request_reason(token_reason: str, method: str) -> str:
    """Clerk's ``convertTokenVerificationErrorReasonToAuthErrorReason`` for a session token refused on a request.

    The ``__refresh`` cookie exchange is not implemented, so an expired token's reason is always one of Clerk's
    not-eligible-for-refresh variants.
    """
    reason = _HANDSHAKE_REASONS.get(token_reason, token_reason)
    if token_reason == Reason.TOKEN_EXPIRED:
        refresh = "non-eligible-non-get" if method != "GET" else "non-eligible-no-refresh-cookie"
        reason = f"{reason}-refresh-{refresh}"
    return reason


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


def _form_encode(pairs: Iterable[tuple[str, str]]) -> str:
    """WHATWG ``URLSearchParams`` serialisation (``*`` kept, ``~`` escaped, spaces as ``+``)."""
    return "&".join(
        f"{quote_plus(k, safe='*').replace('~', '%7E')}={quote_plus(v, safe='*').replace('~', '%7E')}" for k, v in pairs
    )


def _without_params(url: str, names: Iterable[str]) -> str:
    """``url`` with query parameters removed, re-serialised as ``URLSearchParams.delete`` does."""
    parts = urlsplit(url)
    drop = set(names)
    pairs = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in drop]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, _form_encode(pairs), parts.fragment))


def is_session_jwt(header: Mapping[str, Any], payload: Mapping[str, Any]) -> bool:
    """False for machine JWTs (OAuth ``at+jwt``, M2M ``sub: mch_...``) and non-session ``cat`` categories."""
    sub, typ, cat = payload.get("sub"), header.get("typ"), header.get("cat")
    return not (
        (isinstance(typ, str) and typ in _OAUTH_JWT_TYPES)
        or (isinstance(sub, str) and sub.startswith("mch_"))
        or ("cat" in header and not (isinstance(cat, str) and cat in _SESSION_CATEGORIES))
    )


def cookie_name(directive: str) -> str:
    """Clerk's ``getCookieName``: the text before the first ``=`` of the first ``;`` part."""
    return directive.split(";")[0].split("=")[0]


def cookie_value(directive: str) -> str:
    """Clerk's ``getCookieValue``: the text between the first and second ``=`` of the first part."""
    pieces = directive.split(";")[0].split("=")
    return pieces[1] if len(pieces) > 1 else ""


def safe_directives(directives: Any) -> list[str]:
    """The directives that may become ``Set-Cookie`` headers: strings naming a Clerk cookie, no control bytes.

    A handshake payload is signed by Clerk, but a directive outside Clerk's cookie namespace would let whoever
    controls it set any cookie on this site, so such directives are dropped (and logged by name only).
    """
    if not isinstance(directives, list):
        return []
    accepted: list[str] = []
    for directive in directives[:MAX_DIRECTIVES]:
        if not isinstance(directive, str) or len(directive) > MAX_DIRECTIVE_LENGTH:
            continue
        name = cookie_name(directive).strip()
        if (
            any(ord(char) < 0x20 or ord(char) == 0x7F for char in directive)
            or not directive.isascii()
            or not _COOKIE_NAME.fullmatch(name)
            or not name.startswith(CLERK_COOKIE_PREFIXES)
        ):
            logger.warning("handshake directive refused (cookie %r is outside Clerk's namespace)", name[:40])
            continue
        accepted.append(directive)
    return accepted


# --------------------------------------------------------------------------------------------- context
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


# --------------------------------------------------------------------------------------------- decisions
class PageAuthenticator:
    """The cookie path of ``authenticateRequest``, including the handshake, for one app's settings."""

    def __init__(self, settings: ClerkSettings, verifier: TokenVerifier) -> None:
        self.settings = settings
        self.verifier = verifier

    def authenticate(self, request: Request) -> PageState:
        ctx = CookieContext(request, self.settings)
        if ctx.handshake_enabled and (ctx.handshake_nonce or ctx.handshake_token):
            try:
                return self.resolve_handshake(ctx)
            except TokenVerificationError as exc:
                if ctx.is_development:
                    logger.warning("handshake token refused (%s); not handshaking again", exc.reason)
                    return self._signed_out(PageReason.HANDSHAKE_TOKEN_INVALID)
                logger.warning("handshake token refused (%s)", exc.reason)
            except HandshakeFailed as exc:
                logger.warning("handshake could not be resolved: %s", exc)
        return self._cookie_rules(ctx)

    def _cookie_rules(self, ctx: CookieContext) -> PageState:
        """``authenticateRequestWithTokenInCookie`` after the handshake return (no satellite/org sync)."""
        if ctx.is_development and DEV_BROWSER in ctx.request.args:
            return self._maybe_handshake(ctx, PageReason.DEV_BROWSER_SYNC)
        if ctx.is_development and not ctx.dev_browser_token:
            return self._maybe_handshake(ctx, PageReason.DEV_BROWSER_MISSING)
        session = ctx.session_token
        if not ctx.client_uat and not session:
            return self._signed_out(PageReason.SESSION_TOKEN_AND_UAT_MISSING)
        if not ctx.client_uat:
            return self._maybe_handshake(ctx, PageReason.SESSION_TOKEN_WITHOUT_CLIENT_UAT)
        if not session:
            return self._maybe_handshake(ctx, PageReason.CLIENT_UAT_WITHOUT_SESSION_TOKEN)
        try:
            header, payload, _, _ = decode_unverified(session)
        except TokenVerificationError as exc:
            return self._token_error(ctx, exc)
        if not is_session_jwt(header, payload):
            return self._signed_out(PageReason.TOKEN_TYPE_MISMATCH)
        if _numeric(payload.get("iat")) < ctx.client_uat:
            return self._maybe_handshake(ctx, PageReason.SESSION_TOKEN_IAT_BEFORE_CLIENT_UAT)
        try:
            auth = self.verifier.verify_session(session)
        except TokenVerificationError as exc:
            return self._token_error(ctx, exc)
        if (
            ctx.method == "GET"
            and ctx.sec_fetch_dest == "document"
            and ctx.is_cross_origin_referrer()
            and not ctx.is_known_clerk_referrer()
            and ctx.redirect_count == 0
        ):
            return self._maybe_handshake(ctx, PageReason.PRIMARY_DOMAIN_CROSS_ORIGIN_SYNC)
        return PageState(SIGNED_IN, auth)

    def _token_error(self, ctx: CookieContext, exc: TokenVerificationError) -> PageState:
        """``handleSessionTokenError``: expired / not yet valid tokens hand shake, anything else signs out."""
        reason = request_reason(exc.reason, ctx.method)
        if exc.reason not in _HANDSHAKE_REASONS:
            return self._signed_out(reason)
        return self._maybe_handshake(ctx, reason)

    def _maybe_handshake(self, ctx: CookieContext, reason: str) -> PageState:
        """``handleMaybeHandshakeStatus``: a 307 to the Frontend API, or signed out when not eligible/looping."""
        if not ctx.handshake_enabled or not ctx.is_eligible_for_handshake():
            return self._signed_out(reason)
        if ctx.redirect_count == REDIRECT_LOOP_LIMIT:
            logger.warning(
                "Clerk handshake redirect loop stopped (%s): check that CLERK_PUBLISHABLE_KEY and "
                "CLERK_SECRET_KEY belong to the same instance",
                reason,
            )
            return self._signed_out(reason)
        count = int(ctx.redirect_count) + 1 if ctx.redirect_count.is_integer() else ctx.redirect_count + 1
        return PageState(
            HANDSHAKE_STATUS,
            Auth.signed_out(reason),
            reason,
            cookies=[f"{REDIRECT_COUNT}={count}; SameSite=Lax; HttpOnly; Max-Age=2"],
            location=handshake_url(ctx, reason),
        )

    def _signed_out(self, reason: str, cookies: list[str] | None = None, location: str | None = None) -> PageState:
        return PageState(SIGNED_OUT, Auth.signed_out(reason), reason, cookies or [], location)

    # ----------------------------------------------------------------------------------------- the return
    def resolve_handshake(self, ctx: CookieContext) -> PageState:
        """``resolveHandshake``: directives -> Set-Cookie, then the new session token decides the state."""
        cookies = safe_directives(self._directives(ctx))
        session_token = ""
        for directive in cookies:
            if cookie_name(directive).startswith(SESSION):
                session_token = cookie_value(directive)
        location = None
        if ctx.is_development:
            location = _same_origin_target(
                _without_params(ctx.clerk_url, (HANDSHAKE, HANDSHAKE_HELP, DEV_BROWSER, HANDSHAKE_NONCE))
            )
        if not session_token:
            return self._signed_out(PageReason.SESSION_TOKEN_MISSING, cookies, location)
        try:
            claims = self.verifier.verify(session_token)
        except TokenVerificationError as exc:
            if not (ctx.is_development and exc.reason in _HANDSHAKE_REASONS):
                raise HandshakeFailed(f"session token from the handshake refused ({exc.reason})") from None
            logger.error("Clerk: clock skew detected; retrying the handshake session token with a 24 h skew")
            lenient = TokenVerifier(
                self.verifier.key_source,
                authorized_parties=self.verifier.authorized_parties,
                clock_skew=DEV_HANDSHAKE_SKEW,
            )
            try:
                claims = lenient.verify(session_token)
            except TokenVerificationError as retry:
                raise HandshakeFailed(f"handshake retry failed ({retry.reason})") from None
        try:
            auth = Auth.from_claims(claims)
        except TokenVerificationError as exc:
            raise HandshakeFailed(f"session claims refused ({exc.reason})") from None
        return PageState(SIGNED_IN, auth, None, cookies, location)

    def _directives(self, ctx: CookieContext) -> Any:
        """``getCookiesFromHandshake``: the nonce through the Backend API, else the verified token's claim."""
        if ctx.handshake_nonce:
            if not self.settings.secret_key:
                logger.error("handshake nonce received but CLERK_SECRET_KEY is not set; it cannot be exchanged")
                return []
            try:
                body = backend_api.call(
                    "GET",
                    f"{self.settings.api_url}/{self.settings.api_version}/clients/handshake_payload",
                    bearer=self.settings.secret_key,
                    timeout=self.settings.http_timeout,
                    params={"nonce": ctx.handshake_nonce},
                )
            except backend_api.BackendAPIError as exc:
                logger.error("handshake payload could not be fetched: %s", exc)
                return []
            return body.get("directives") if isinstance(body, dict) else []
        assert ctx.handshake_token is not None  # the caller checked one of the two
        payload = verify_handshake_token(ctx.handshake_token, self.verifier)
        return payload.get("handshake")


def verify_handshake_token(token: str, verifier: TokenVerifier) -> dict[str, Any]:
    """Clerk's ``verifyHandshakeToken``: header checks, session category, signature; no claim checks."""
    header, payload, signing_input, signature = decode_unverified(token)
    key = verifier.key_source.get_key(header.get("kid"))
    verify_signature(key, header, signing_input, signature, header_check=_check_handshake_category)
    return payload


def _check_handshake_category(header: Mapping[str, Any]) -> None:
    cat = header.get("cat")
    if "cat" in header and not (isinstance(cat, str) and cat in _SESSION_CATEGORIES):
        raise TokenVerificationError(Reason.TOKEN_INVALID, "Invalid handshake token category.")


def handshake_url(ctx: CookieContext, reason: str) -> str:
    """``buildRedirectToHandshake``: ``<frontend api>/v1/client/handshake`` with Clerk's query parameters."""
    assert ctx.frontend_api is not None
    base = ctx.frontend_api if ctx.frontend_api.startswith("http") else f"https://{ctx.frontend_api}"
    url = urljoin(base.rstrip("/") + "/", "v1/client/handshake")
    params = [
        ("redirect_url", _without_params(ctx.clerk_url, (DEV_BROWSER, LEGACY_DEV_BROWSER))),
        ("__clerk_api_version", CLERK_API_VERSION_HEADER),
        ("suffixed_cookies", "true" if ctx.suffixed else "false"),
        ("__clerk_hs_reason", reason),
        ("format", "nonce"),
    ]
    if ctx.session_token:
        params.append((SESSION, ctx.session_token))
    if ctx.is_development and ctx.dev_browser_token:
        params.append((DEV_BROWSER, ctx.dev_browser_token))
    return f"{url}?{_form_encode(params)}"


def _same_origin_target(url: str) -> str:
    """The path and query of ``url`` as a relative Location that cannot leave this origin (no ``//host``)."""
    parts = urlsplit(url)
    path = "/" + parts.path.lstrip("/\\")
    return urlunsplit(("", "", path, parts.query, ""))


def sign_in_url(settings: ClerkSettings, request: Request) -> str | None:
    """Where a page that stays signed out goes: ``CLERK_SIGN_IN_URL``, else this instance's Account Portal.

    As Clerk's ``createRedirect``: ``redirect_url`` is the current URL; a development instance passes its
    dev-browser token along when the sign-in page is on another origin. None when neither is known.
    """
    target = settings.sign_in_url
    if not target:
        if not settings.frontend_api:
            return None
        target = f"{accounts_base_url(settings.frontend_api)}/sign-in"
    here = urlsplit(request.url)
    parts = urlsplit(target)
    pairs = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "redirect_url"]
    pairs.append(("redirect_url", request.url))
    cross_origin = bool(parts.netloc) and (parts.hostname, parts.port) != (here.hostname, here.port)
    development = bool(settings.publishable_key and settings.publishable_key.startswith("pk_test_"))
    if cross_origin and development:
        dev_browser = request.args.get(DEV_BROWSER) or _dev_browser_cookie(settings, request)
        if dev_browser:
            pairs = [(k, v) for k, v in pairs if k != DEV_BROWSER] + [(DEV_BROWSER, dev_browser)]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, _form_encode(pairs), parts.fragment))


def _dev_browser_cookie(settings: ClerkSettings, request: Request) -> str | None:
    ctx = CookieContext(request, settings)
    return ctx.dev_browser_token


# --------------------------------------------------------------------------------------------- Flask glue
def remember(state: PageState) -> None:
    """Keep the page state of this request on ``g`` (its cookies go on the response, its redirect is raised)."""
    setattr(g, _G_STATE, state)


def is_page_request(request: Request) -> bool:
    """A browser navigation (Clerk's ``isRequestEligibleForHandshake`` test), as opposed to an API call."""
    if request.method != "GET":
        return False
    environ = request.environ  # the headers as they came, without building the Headers view
    dest = environ.get("HTTP_SEC_FETCH_DEST")
    if dest:
        return dest in ("document", "iframe")
    return bool(environ.get("HTTP_ACCEPT", "").startswith("text/html"))


def needs_early_auth(request: Request) -> bool:
    """Page navigations and handshake returns are authenticated before the view, even on public routes."""
    if is_page_request(request):
        return True
    # HANDSHAKE is a prefix of HANDSHAKE_NONCE: one look at the raw query and Cookie header covers both, and
    # the parsed forms are only built when it is there.
    environ = request.environ
    if HANDSHAKE not in environ.get("QUERY_STRING", "") and HANDSHAKE not in environ.get("HTTP_COOKIE", ""):
        return False
    return any(name in request.args or name in request.cookies for name in (HANDSHAKE, HANDSHAKE_NONCE))


def raise_for_redirect(request_globals: Any) -> None:
    """Raise the 307 this request's page state (kept on ``g``, passed in) asks for: handshake, or the clean
    URL after one."""
    state: PageState | None = request_globals.get(_G_STATE)
    if state is None or state.location is None:
        return
    response = Response(status=307, headers={"Location": state.location, "Cache-Control": "no-store"})
    response.autocorrect_location_header = False
    raise HTTPException(response=response)


def apply_response_headers(response: Response) -> Response:
    """``after_request``: the headers Clerk's state asks for: Set-Cookie directives and its debug headers.

    Signed-out and handshake states carry ``x-clerk-auth-status`` / ``x-clerk-auth-reason``, as Clerk's SDKs
    copy ``requestState.headers`` onto the response; responses that set cookies are never cached.
    """
    state: PageState | None = g._get_current_object().get(_G_STATE)  # one proxy lookup
    if state is None:
        return response
    for directive in state.cookies:
        response.headers.add("Set-Cookie", directive)
    if state.cookies:
        response.headers["Cache-Control"] = "no-store"
    if state.status != SIGNED_IN:
        response.headers["x-clerk-auth-status"] = state.status
        if state.reason:
            response.headers["x-clerk-auth-reason"] = state.reason
    return response
