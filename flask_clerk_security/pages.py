"""Follows ``@clerk/backend`` ``src/tokens/request.ts``: the cookie path of ``authenticateRequest`` for pages.

Which requests are page navigations, Clerk's cookie rules in Clerk's order (dev browser, ``__client_uat``, the
session token), when to hand shake, and the Flask glue that keeps the page state with the request (its
cookies go on the response, its redirect is raised).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Request, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from .auth import Auth
from .auth_status import HANDSHAKE_STATUS, SIGNED_IN, PageState, signed_out
from .config import ClerkSettings
from .cookies import (
    DEV_BROWSER,
    HANDSHAKE,
    HANDSHAKE_NONCE,
    REDIRECT_COUNT,
    UNDEFINED,
    CookieContext,
    js_less_than,
    js_number_string,
)
from .errors import TokenVerificationError
from .handshake import REDIRECT_LOOP_LIMIT, HandshakeFailed, HandshakeService, handshake_url
from .reasons import HANDSHAKE_REASONS, AuthErrorReason, request_reason
from .state import AUTH_KEY, AUTH_MESSAGE_KEY, PAGE_STATE_KEY
from .token_types import is_session_jwt
from .tokens import TokenVerifier, decode_unverified

logger = logging.getLogger("flask_clerk_security")


class PageAuthenticator:
    """The cookie path of ``authenticateRequest``, including the handshake, for one app's settings."""

    def __init__(self, settings: ClerkSettings, verifier: TokenVerifier) -> None:
        self.settings = settings
        self.verifier = verifier
        self.handshake = HandshakeService(settings, verifier)

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
        """``authenticateRequestWithTokenInCookie`` after the handshake return (no satellite/org sync)."""
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
            ctx.method == "GET"
            and ctx.sec_fetch_dest == "document"
            and ctx.is_cross_origin_referrer()
            and not ctx.is_known_clerk_referrer()
            and ctx.redirect_count == 0
        ):
            return self._maybe_handshake(ctx, AuthErrorReason.PRIMARY_DOMAIN_CROSS_ORIGIN_SYNC)
        return PageState(SIGNED_IN, auth)

    def _token_error(self, ctx: CookieContext, exc: TokenVerificationError) -> PageState:
        """``handleSessionTokenError``: expired / not yet valid tokens hand shake, anything else signs out."""
        reason = request_reason(exc.reason, ctx.method)
        if exc.reason not in HANDSHAKE_REASONS:
            return signed_out(reason)
        return self._maybe_handshake(ctx, reason)

    def _maybe_handshake(self, ctx: CookieContext, reason: str) -> PageState:
        """``handleMaybeHandshakeStatus``: a 307 to the Frontend API, or signed out when not eligible/looping."""
        if not ctx.handshake_enabled or not ctx.is_eligible_for_handshake():
            return signed_out(reason)
        if ctx.redirect_count == REDIRECT_LOOP_LIMIT:
            logger.warning(
                "Clerk handshake redirect loop stopped (%s): check that CLERK_PUBLISHABLE_KEY and "
                "CLERK_SECRET_KEY belong to the same instance",
                reason,
            )
            return signed_out(reason)
        return PageState(
            HANDSHAKE_STATUS,
            Auth.signed_out(reason),
            reason,
            cookies=[f"{REDIRECT_COUNT}={js_number_string(ctx.redirect_count + 1)}; SameSite=Lax; HttpOnly; Max-Age=2"],
            location=handshake_url(ctx, reason),
        )


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

    Signed-out and handshake states carry ``x-clerk-auth-status`` / ``x-clerk-auth-reason``, as Clerk's SDKs
    copy ``requestState.headers`` onto the response; responses that set cookies are never cached.
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
    return response


def _add_signed_out_headers(response: Response, environ: Mapping[str, Any]) -> None:
    """A token the request carried was refused (header or machine token) but the route let it through (public,
    or it asked with ``get_auth()``): Clerk's debug headers still go out, as its middleware sends them."""
    auth: Auth | None = environ.get(AUTH_KEY)
    if auth is None or auth.reason is None or "x-clerk-auth-status" in response.headers:
        return
    response.headers["x-clerk-auth-status"] = "signed-out"
    response.headers["x-clerk-auth-reason"] = auth.reason
    message = environ.get(AUTH_MESSAGE_KEY)
    if message:
        response.headers["x-clerk-auth-message"] = message
