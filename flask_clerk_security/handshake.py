"""Follows ``@clerk/backend`` ``src/tokens/handshake.ts``: the handshake URL, its return, the directives.

Clerk session tokens live 60 seconds and only ClerkJS in the browser refreshes them. When a page navigation
arrives with a stale or missing ``__session`` cookie while ``__client_uat`` says a client is signed in, Clerk's
server SDKs answer with a 307 to the Frontend API's ``/v1/client/handshake``, which sends the browser back with
fresh cookies (a ``__clerk_handshake`` token, or a ``__clerk_handshake_nonce`` exchanged through the Backend
API). The decision to hand shake is :mod:`.pages`' (``request.ts``); this module builds the URL and resolves the
return.

Deliberate differences (see docs/server-rendered-pages.md): directives that set cookies outside Clerk's
namespace are dropped; the post-handshake redirect is same-origin and relative; a handshake token that fails
verification on a development instance signs the request out instead of raising. Satellite domains,
organization sync and the ``__refresh`` cookie exchange are :mod:`.pages`' and :mod:`.redirects`'.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

from . import backend_api
from .auth import Auth
from .auth_status import SIGNED_IN, PageState, signed_out
from .cookies import (
    CLIENT_UAT,
    DEV_BROWSER,
    HANDSHAKE,
    HANDSHAKE_HELP,
    HANDSHAKE_NONCE,
    LEGACY_DEV_BROWSER,
    REFRESH,
    SESSION,
    CookieContext,
)
from .errors import TokenVerificationError
from .reasons import HANDSHAKE_REASONS, AuthErrorReason, TokenVerificationErrorReason
from .redirects import _form_encode, _without_params
from .settings import ClerkSettings
from .token_types import _SESSION_CATEGORIES
from .tokens import TokenVerifier, decode_unverified, verify_signature

logger = logging.getLogger("flask_clerk_security")

#: Clerk stops handshaking when ``__clerk_redirect_count`` reaches this value (``checkAndTrackRedirectLoop``).
REDIRECT_LOOP_LIMIT = 3
#: Cookie names a handshake directive may set; anything else is dropped (never reaches ``Set-Cookie``).
CLERK_COOKIE_PREFIXES = (SESSION, CLIENT_UAT, "__clerk", REFRESH)
MAX_DIRECTIVES = 32
MAX_DIRECTIVE_LENGTH = 8192
#: Clerk's development clock-skew allowance for the session token a handshake delivers (24 h).
DEV_HANDSHAKE_SKEW = 86_400.0

_COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class HandshakeFailed(Exception):
    """Resolving a handshake return failed; Clerk then continues with the ordinary cookie rules."""


def _bucket_shape(rate: str) -> tuple[float, float] | None:
    """A ``limits`` rate string (``"10 per minute"``) as (capacity, tokens per second); None when off."""
    if not rate:
        return None
    from limits import parse

    item = parse(rate)
    return float(item.amount), item.amount / item.get_expiry()


class NonceBudget:
    """Token buckets bounding the Backend API calls anonymous handshake nonces drive, per client and in all.

    Anyone can put ``?__clerk_handshake_nonce=`` on any URL, and each value costs one Backend API call (Clerk
    makes it unconditionally). A real browser brings one nonce per handshake, so a client that needs more than
    the per-client rate is not a browser returning from Clerk. In-process and per app: each worker process
    bounds its own calls. Refusals are logged once per minute, with their count.
    """

    #: Client addresses remembered (least recently seen forgotten first): bounded memory under spoofing.
    MAX_CLIENTS = 10_000
    LOG_WINDOW = 60.0

    def __init__(self, per_client: str, total: str) -> None:
        self._per_client = _bucket_shape(per_client)
        self._total = _bucket_shape(total)
        self._clients: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._overall = (self._total[0], time.monotonic()) if self._total else (0.0, 0.0)
        self._lock = threading.Lock()
        self._refused = 0
        self._last_log = -self.LOG_WINDOW

    @staticmethod
    def _take(shape: tuple[float, float], bucket: tuple[float, float], now: float) -> tuple[bool, tuple[float, float]]:
        capacity, refill = shape
        tokens = min(capacity, bucket[0] + (now - bucket[1]) * refill)
        return (True, (tokens - 1.0, now)) if tokens >= 1.0 else (False, (tokens, now))

    def allow(self, client: str) -> bool:
        """Whether one more nonce from ``client`` may be exchanged now (takes a token from both buckets)."""
        now = time.monotonic()
        with self._lock:
            ok = True
            if self._per_client is not None:
                bucket = self._clients.pop(client, (self._per_client[0], now))
                ok, bucket = self._take(self._per_client, bucket, now)
                self._clients[client] = bucket
                if len(self._clients) > self.MAX_CLIENTS:
                    self._clients.popitem(last=False)
            if ok and self._total is not None:
                ok, self._overall = self._take(self._total, self._overall, now)
            if ok:
                return True
            self._refused += 1
            if now - self._last_log >= self.LOG_WINDOW:
                logger.warning(
                    "Clerk handshake nonces over CLERK_HANDSHAKE_NONCE_RATE(_TOTAL): %d not exchanged "
                    "(signed out instead) in the last minute",
                    self._refused,
                )
                self._refused, self._last_log = 0, now
            return False


class HandshakeService:
    """Clerk's ``HandshakeService``: resolves a handshake return into cookies and a page state."""

    def __init__(self, settings: ClerkSettings, verifier: TokenVerifier) -> None:
        self.settings = settings
        self.verifier = verifier
        self.nonce_budget = NonceBudget(settings.handshake_nonce_rate, settings.handshake_nonce_rate_total)

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
            return signed_out(AuthErrorReason.SESSION_TOKEN_MISSING, cookies, location)
        try:
            claims = self.verifier.verify(session_token)
        except TokenVerificationError as exc:
            if not (ctx.is_development and exc.reason in HANDSHAKE_REASONS):
                raise HandshakeFailed(f"session token from the handshake refused ({exc.reason})") from None
            logger.error("Clerk: clock skew detected; retrying the handshake session token with a 24 h skew")
            try:
                claims = self.verifier.with_clock_skew(DEV_HANDSHAKE_SKEW).verify(session_token)
            except TokenVerificationError as retry:
                raise HandshakeFailed(f"handshake retry failed ({retry.reason})") from None
        try:
            auth = Auth.from_claims(claims)
        except TokenVerificationError as exc:
            raise HandshakeFailed(f"session claims refused ({exc.reason})") from None
        return PageState(SIGNED_IN, auth, None, cookies, location)

    def _directives(self, ctx: CookieContext) -> Any:
        """``getCookiesFromHandshake``: the nonce through the Backend API, else the verified token's claim.

        Unlike Clerk, a nonce is exchanged only on a page navigation (a browser returning from the handshake
        is one) and within :class:`NonceBudget`; otherwise it is treated as a failed exchange (no directives:
        signed out), as Clerk treats a nonce the Backend API refuses.
        """
        if ctx.handshake_nonce:
            if not ctx.is_eligible_for_handshake():
                return []
            if not self.nonce_budget.allow(ctx.request.remote_addr or "unknown"):
                return []
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
        raise TokenVerificationError(TokenVerificationErrorReason.TOKEN_INVALID, "Invalid handshake token category.")


def handshake_url(ctx: CookieContext, reason: str, organization: tuple[str, str | None] | None = None) -> str:
    """``buildRedirectToHandshake``: ``<frontend api>/v1/client/handshake`` with Clerk's query parameters;
    ``organization_id`` when the URL names an organization (or the personal account: empty) to activate."""
    assert ctx.frontend_api is not None
    base = ctx.frontend_api if ctx.frontend_api.startswith("http") else f"https://{ctx.frontend_api}"
    url = urljoin(base.rstrip("/") + "/", "v1/client/handshake")
    params = [
        ("redirect_url", _without_params(ctx.clerk_url, (DEV_BROWSER, LEGACY_DEV_BROWSER))),
        ("__clerk_api_version", backend_api.CLERK_API_VERSION_HEADER),
        ("suffixed_cookies", "true" if ctx.suffixed else "false"),
        ("__clerk_hs_reason", reason),
        ("format", "nonce"),
    ]
    if ctx.any_session_token:
        params.append((SESSION, ctx.any_session_token))
    if ctx.is_development and ctx.dev_browser_token:
        params.append((DEV_BROWSER, ctx.dev_browser_token))
    if organization is not None:
        params.append(("organization_id", organization[1] or ""))
    return f"{url}?{_form_encode(params)}"


def _same_origin_target(url: str) -> str:
    """The path and query of ``url`` as a relative Location that cannot leave this origin (no ``//host``)."""
    parts = urlsplit(url)
    path = "/" + parts.path.lstrip("/\\")
    return urlunsplit(("", "", path, parts.query, ""))


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
