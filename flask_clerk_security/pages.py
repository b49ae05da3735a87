"""Follows ``@clerk/backend`` ``src/tokens/request.ts``: the cookie path of ``authenticateRequest`` for pages.

Which requests are page navigations, Clerk's cookie rules in Clerk's order (dev browser, ``__client_uat``, the
session token), when to hand shake, and the Flask glue that keeps the page state with the request (its
cookies go on the response, its redirect is raised).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote

from flask import Request, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from . import backend_api
from .auth import Auth
from .auth_status import HANDSHAKE_STATUS, SIGNED_IN, PageState, signed_out
from .cookies import (
    DEV_BROWSER,
    HANDSHAKE,
    HANDSHAKE_NONCE,
    REDIRECT_COUNT,
    SESSION,
    SYNCED,
    CookieContext,
    js_less_than,
    js_truthy,
)
from .errors import TokenVerificationError, auth_message_header
from .handshake import (
    REDIRECT_LOOP_LIMIT,
    HandshakeFailed,
    HandshakeService,
    cookie_name,
    cookie_value,
    handshake_url,
    safe_directives,
)
from .jsvalues import UNDEFINED, js_number_string, js_string
from .reasons import (
    HANDSHAKE_REASONS,
    AuthErrorReason,
    RefreshTokenErrorReason,
    TokenVerificationErrorReason,
    request_reason,
)
from .redirects import primary_sync_return_url, satellite_sync_url
from .routes import OrganizationMatcher, request_pathname
from .settings import ClerkSettings
from .state import AUTH_KEY, PAGE_STATE_KEY
from .token_types import is_session_jwt
from .tokens import TokenVerifier, decode_unverified, try_decode

logger = logging.getLogger("flask_clerk_security")

#: A Backend API error code passed on as a refresh reason (it ends up in a header and a URL).
_ERROR_CODE = re.compile(r"[A-Za-z0-9_.-]{1,100}")
#: Clerk's message for the handshake a cross-origin document navigation gets.
_CROSS_ORIGIN = "Cross-origin request from satellite domain requires handshake"


class PageAuthenticator:
    """The cookie path of ``authenticateRequest``, including the handshake, for one app's settings."""

    def __init__(self, settings: ClerkSettings, verifier: TokenVerifier) -> None:
        self.settings = settings
        self.verifier = verifier
        self.handshake = HandshakeService(settings, verifier)
        sync = settings.organization_sync
        self.organizations = OrganizationMatcher(
            sync.get("organization_patterns", ()), sync.get("personal_account_patterns", ())
        )

    def authenticate(self, request: Request) -> PageState:
        ctx = CookieContext(request, self.settings)
        if ctx.handshake_enabled and (ctx.handshake_nonce or ctx.handshake_token):
            try:
                return self.handshake.resolve_handshake(ctx)
            except TokenVerificationError as exc:
                if ctx.is_development:
                    logger.warning("handshake token refused (%s); not handshaking again", exc.reason)
                    return signed_out(AuthErrorReason.HANDSHAKE_TOKEN_INVALID)
                logger.warning("handshake token refused (%s)", exc.reason)
            except HandshakeFailed as exc:
                logger.warning("handshake could not be resolved: %s", exc)
        return self._cookie_rules(ctx)

    def _cookie_rules(self, ctx: CookieContext) -> PageState:
        """``authenticateRequestWithTokenInCookie`` after the handshake return."""
        synced = self._multi_domain_sync(ctx)
        if synced is not None:
            return synced
        if ctx.is_development and DEV_BROWSER in ctx.request.args:
            return self._maybe_handshake(ctx, AuthErrorReason.DEV_BROWSER_SYNC)
        if ctx.is_development and not ctx.dev_browser_token:
            return self._maybe_handshake(ctx, AuthErrorReason.DEV_BROWSER_MISSING)
        session = ctx.session_token
        if not ctx.client_uat and not session:
            return signed_out(AuthErrorReason.SESSION_TOKEN_AND_UAT_MISSING)
        if not ctx.client_uat:
            return self._maybe_handshake(ctx, AuthErrorReason.SESSION_TOKEN_WITHOUT_CLIENT_UAT)
        if not session:
            return self._maybe_handshake(ctx, AuthErrorReason.CLIENT_UAT_WITHOUT_SESSION_TOKEN)
        try:
            header, payload, _, _ = decode_unverified(session)
        except TokenVerificationError as exc:
            return self._token_error(ctx, exc)
        if not is_session_jwt(header, payload):
            return signed_out(AuthErrorReason.TOKEN_TYPE_MISMATCH)
        if js_less_than(payload.get("iat", UNDEFINED), ctx.client_uat):
            return self._maybe_handshake(ctx, AuthErrorReason.SESSION_TOKEN_IAT_BEFORE_CLIENT_UAT)
        try:
            auth = self.verifier.verify_session(session)
        except TokenVerificationError as exc:
            return self._token_error(ctx, exc)
        if (
            not ctx.is_satellite
            and ctx.method == "GET"
            and ctx.sec_fetch_dest == "document"
            and ctx.is_cross_origin_referrer()
            and not ctx.is_known_clerk_referrer()
            and ctx.redirect_count == 0
        ):
            return self._maybe_handshake(ctx, AuthErrorReason.PRIMARY_DOMAIN_CROSS_ORIGIN_SYNC, message=_CROSS_ORIGIN)
        if auth.user_id and self._organization_mismatch(ctx, auth) and ctx.redirect_count < REDIRECT_LOOP_LIMIT:
            state = self._maybe_handshake(ctx, AuthErrorReason.ACTIVE_ORGANIZATION_MISMATCH)
            if state.status == HANDSHAKE_STATUS:
                return state
        return PageState(SIGNED_IN, auth)

    def _organization_target(self, ctx: CookieContext) -> tuple[str, str | None] | None:
        """The organization (or personal account) this URL asks for (``CLERK_ORGANIZATION_SYNC``)."""
        return self.organizations.find_target(request_pathname(ctx.request.environ)) if self.organizations else None

    def _organization_mismatch(self, ctx: CookieContext, auth: Auth) -> bool:
        """``handleMaybeOrganizationSyncHandshake``: the URL's organization is not the session's active one."""
        target = self._organization_target(ctx)
        if target is None:
            return False
        kind, value = target
        if kind == "organization":
            return value != auth.org_id
        if kind == "organization_slug":
            return value != auth.org_slug
        return bool(auth.org_id)

    def _multi_domain_sync(self, ctx: CookieContext) -> PageState | None:
        """Satellite domains: a satellite's document navigation without Clerk's cookies (or back from the
        primary's sign-in with ``__clerk_synced=false``) syncs with the primary: the Frontend API handshake in
        production, the primary's sign-in page in development; a development primary answers the satellite's
        ``__clerk_redirect_url`` (``primary-responds-to-syncing``). None: the usual cookie rules decide."""
        if not ctx.handshake_enabled:
            return None
        synced = ctx.request.args.get(SYNCED)
        if ctx.is_satellite and ctx.sec_fetch_dest == "document" and ctx.method == "GET" and synced != "true":
            has_cookies = bool(ctx.session_token) or bool(ctx.client_uat)
            needs_sync = synced == "false"
            if not self.settings.satellite_auto_sync and not has_cookies and not needs_sync:
                return signed_out(AuthErrorReason.SESSION_TOKEN_AND_UAT_MISSING)
            if not has_cookies or needs_sync:
                if not ctx.is_development:
                    return self._maybe_handshake(ctx, AuthErrorReason.SATELLITE_NEEDS_SYNCING)
                location = satellite_sync_url(self.settings, ctx)
                if location is None:
                    return signed_out(AuthErrorReason.SATELLITE_NEEDS_SYNCING)
                return self._maybe_handshake(ctx, AuthErrorReason.SATELLITE_NEEDS_SYNCING, location)
        if ctx.is_development and not ctx.is_satellite:
            location = primary_sync_return_url(self.settings, ctx)
            if location is not None:
                return self._maybe_handshake(ctx, AuthErrorReason.PRIMARY_RESPONDS_TO_SYNCING, location)
        return None

    def header_token_error(self, request: Request, token: str, exc: TokenVerificationError) -> PageState:
        """``handleSessionTokenError(err, 'header')``: a refused ``Authorization`` token gets the cookie path's
        answer, so an expired one on a GET with ``__refresh_<suffix>`` is refreshed too (Clerk's
        ``authenticateContext.sessionToken`` is the session cookie, else the header's token)."""
        return self._token_error(CookieContext(request, self.settings, header_token=token), exc, "header")

    def _token_error(self, ctx: CookieContext, exc: TokenVerificationError, carrier: str = "cookie") -> PageState:
        """``handleSessionTokenError``: an expired token on a GET with ``__refresh_<suffix>`` is refreshed
        through the Backend API (signed in, with its cookies); else expired / not yet valid tokens hand shake
        with why there was no refresh, anything else signs out."""
        refresh_error = None
        if exc.reason == TokenVerificationErrorReason.TOKEN_EXPIRED and ctx.refresh_token and ctx.method == "GET":
            refreshed, refresh_error = self._refresh(ctx)
            if refreshed is not None:
                return refreshed
        reason = request_reason(exc.reason, ctx.method, refresh_error)
        message = exc.full_message(carrier)
        if exc.reason not in HANDSHAKE_REASONS:
            return signed_out(reason, message=message)
        return self._maybe_handshake(ctx, reason, message=message)

    def _refresh(self, ctx: CookieContext) -> tuple[PageState | None, str]:
        """``refreshToken`` + ``attemptRefresh``: one ``POST /v1/sessions/{sid}/refresh`` within
        ``CLERK_HTTP_TIMEOUT``; the signed-in state with the answer's cookies, or Clerk's reason it failed.

        The exchanges share the handshake nonces' per-client budget (an expired token of one's own and any
        ``__refresh`` value would otherwise buy a Backend API call per request); past it, ``fetch-error``.
        """
        if not self.settings.secret_key:
            return None, RefreshTokenErrorReason.MISSING_API_CLIENT
        expired, refresh_token = ctx.any_session_token, ctx.refresh_token
        assert expired is not None and refresh_token is not None  # the caller's conditions
        decoded = try_decode(expired)
        if decoded is None:
            return None, RefreshTokenErrorReason.EXPIRED_SESSION_TOKEN_DECODE_FAILED
        sid = decoded[1].get("sid", UNDEFINED)
        if not js_truthy(sid):
            return None, RefreshTokenErrorReason.EXPIRED_SESSION_TOKEN_MISSING_SID_CLAIM
        session_id = js_string(sid)  # unverified when it comes from a cookie next to a header token
        if any(_is_dot_segment(segment) for segment in session_id.split("/")):
            return None, RefreshTokenErrorReason.UNEXPECTED_BAPI_ERROR  # Clerk's joinPaths throws: no call
        if not self.handshake.nonce_budget.allow(ctx.request.remote_addr or "unknown"):
            return None, RefreshTokenErrorReason.FETCH_ERROR
        headers = {name.lower(): [value] for name, value in ctx.request.headers.items()}
        try:
            body = backend_api.call(
                "POST",
                f"{self.settings.api_url}/{self.settings.api_version}/sessions/{_path_segment(session_id)}/refresh",
                bearer=self.settings.secret_key,
                timeout=self.settings.http_timeout,
                params={"suffixed_cookies": "true" if ctx.suffixed else "false"},
                json_body={
                    "format": "cookie",
                    "expired_token": expired,
                    "refresh_token": refresh_token,
                    "request_origin": ctx.origin(),
                    "request_headers": headers,
                },
            )
        except backend_api.BackendAPIError as exc:
            logger.warning("session refresh failed: %s", exc)
            return None, _refresh_error_reason(exc)
        cookies = body.get("cookies") if isinstance(body, dict) else None
        if not isinstance(cookies, list) or not cookies:
            return None, RefreshTokenErrorReason.UNEXPECTED_SDK_ERROR
        directives = safe_directives(cookies)
        session = ""
        for directive in directives:
            if cookie_name(directive).startswith(SESSION):
                session = cookie_value(directive)
        try:
            auth = self.verifier.verify_session(session)
        except TokenVerificationError:
            return None, RefreshTokenErrorReason.INVALID_SESSION_TOKEN
        return PageState(SIGNED_IN, auth, None, directives), ""

    def _maybe_handshake(
        self, ctx: CookieContext, reason: str, location: str | None = None, message: str = ""
    ) -> PageState:
        """``handleMaybeHandshakeStatus``: a 307 to ``location`` (default: the Frontend API's handshake), or
        signed out when not eligible/looping; either carries Clerk's ``message``."""
        if not ctx.handshake_enabled or not ctx.is_eligible_for_handshake():
            return signed_out(reason, message=message)
        if ctx.redirect_count == REDIRECT_LOOP_LIMIT:
            logger.warning(
                "Clerk handshake redirect loop stopped (%s): check that CLERK_PUBLISHABLE_KEY and "
                "CLERK_SECRET_KEY belong to the same instance",
                reason,
            )
            return signed_out(reason, message=message)
        return PageState(
            HANDSHAKE_STATUS,
            Auth.signed_out(reason, message=message),
            reason,
            cookies=[f"{REDIRECT_COUNT}={js_number_string(ctx.redirect_count + 1)}; SameSite=Lax; HttpOnly; Max-Age=2"],
            location=location or handshake_url(ctx, reason, self._organization_target(ctx)),
        )


#: How many percent-decodings Clerk's ``joinPaths`` tries on a path segment before it gives up (and throws).
_MAX_DECODES = 10
_MALFORMED_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _is_dot_segment(segment: str) -> bool:
    """Clerk's ``isDotSegment`` (``joinPaths``): ``.`` or ``..`` between ``/`` or ``\\``, as written or after up to
    ten ``decodeURIComponent``; still decoding after ten layers, Clerk throws, which means no call too."""
    candidate = segment
    for _ in range(_MAX_DECODES):
        if any(part in (".", "..") for part in re.split(r"[/\\]", candidate)):
            return True
        if _MALFORMED_ESCAPE.search(candidate):
            return False  # decodeURIComponent throws a URIError: Clerk stops decoding
        try:
            decoded = unquote(candidate, errors="strict")
        except UnicodeDecodeError:
            return False  # not UTF-8: a URIError too
        if decoded == candidate:
            return False
        candidate = decoded
    return True


def _path_segment(text: str) -> str:
    """``text`` percent-encoded as one path segment, a lone surrogate (JSON's ``"\\ud800"``, which UTF-8 cannot
    encode) as U+FFFD, as WHATWG's URL writes it."""
    well_formed = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return quote(well_formed, safe="")


def _refresh_error_reason(exc: backend_api.BackendAPIError) -> str:
    """Clerk's reason for a refresh the Backend API refused: its first error's code (``unexpected_error``, as a
    network failure, is ``fetch-error``); ``unexpected-bapi-error`` for an answer without errors."""
    if exc.status is None:
        return RefreshTokenErrorReason.FETCH_ERROR
    errors = exc.body.get("errors") if isinstance(exc.body, dict) else None
    if not isinstance(errors, list) or not errors:
        return RefreshTokenErrorReason.UNEXPECTED_BAPI_ERROR
    code = errors[0].get("code") if isinstance(errors[0], dict) else None
    if code == "unexpected_error":
        return RefreshTokenErrorReason.FETCH_ERROR
    if not isinstance(code, str) or not _ERROR_CODE.fullmatch(code):
        return RefreshTokenErrorReason.UNEXPECTED_SDK_ERROR
    return code


def remember(request: Request, state: PageState) -> None:
    """Keep the page state with ``request`` (its cookies go on the response, its redirect is raised)."""
    request.environ[PAGE_STATE_KEY] = state


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


def raise_for_redirect(environ: Mapping[str, Any]) -> None:
    """Raise the 307 this request's page state (kept in its ``environ``, passed in) asks for: handshake, or the
    clean URL after one."""
    state: PageState | None = environ.get(PAGE_STATE_KEY)
    if state is None or state.location is None:
        return
    response = Response(status=307, headers={"Location": state.location, "Cache-Control": "no-store"})
    response.autocorrect_location_header = False
    raise HTTPException(response=response)


def apply_response_headers(response: Response) -> Response:
    """``after_request``: the headers Clerk's state asks for: Set-Cookie directives and its debug headers.

    Signed-out and handshake states carry ``x-clerk-auth-status`` / ``x-clerk-auth-reason`` and, when Clerk's
    state has one, ``x-clerk-auth-message``, as Clerk's SDKs copy ``requestState.headers`` onto the response;
    responses that set cookies are never cached.
    """
    environ = request._get_current_object().environ  # type: ignore[attr-defined]  # one proxy lookup
    state: PageState | None = environ.get(PAGE_STATE_KEY)
    if state is None:
        _add_signed_out_headers(response, environ)
        return response
    for directive in state.cookies:
        response.headers.add("Set-Cookie", directive)
    if state.cookies:
        response.headers["Cache-Control"] = "no-store"
    if state.status != SIGNED_IN:
        response.headers["x-clerk-auth-status"] = state.status
        if state.reason:
            response.headers["x-clerk-auth-reason"] = state.reason
        _add_message(response, state.auth.message)
    return response


def _add_signed_out_headers(response: Response, environ: Mapping[str, Any]) -> None:
    """A token the request carried was refused (header or machine token) but the route let it through (public,
    or it asked with ``get_auth()``): Clerk's debug headers still go out, as its middleware sends them."""
    auth: Auth | None = environ.get(AUTH_KEY)
    if auth is None or auth.reason is None or "x-clerk-auth-status" in response.headers:
        return
    response.headers["x-clerk-auth-status"] = "signed-out"
    response.headers["x-clerk-auth-reason"] = auth.reason
    _add_message(response, auth.message)


def _add_message(response: Response, message: str | None) -> None:
    """Clerk's ``x-clerk-auth-message``, unless its value is one Clerk's ``headers.set`` would refuse."""
    value = auth_message_header(message)
    if value is not None:
        response.headers["x-clerk-auth-message"] = value
