"""``ClerkSecurity``: per-app state, default-deny protection, ``require()``, ``public`` and ``validate()``."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

from flask import Flask, Request, current_app, g, has_request_context, redirect, request
from werkzeug.exceptions import HTTPException
from werkzeug.local import LocalProxy

from . import handshake, signals
from .audit import connect_default_handler
from .auth import Auth, reverification_config
from .authenticate import CSRF_REASON, RequestAuthenticator, is_page_request, token_from_authorization
from .config import ClerkSettings, load_settings
from .errors import (
    AuthenticationRequired,
    AuthUnavailable,
    ConfigurationError,
    CSRFRejected,
    PermissionDenied,
    ReverificationRequired,
)
from .headers import install_talisman
from .jwks import KeySource, PemKeySource, remote_key_source
from .leakguard import LeakGuard
from .machine import MachineVerifier
from .machine import authenticate as authenticate_request
from .ratelimit import create_limiter, init_limiter
from .routes import RouteMatcher
from .stores import store_from_uri
from .token_types import (
    API_KEY,
    OAUTH_TOKEN,
    SESSION_TOKEN,
    AcceptsToken,
    accepts_machine_tokens,
    is_accepted,
    parse_accepts_token,
)
from .tokens import TokenVerifier
from .webhooks import WebhookBlueprint, WebhookState, warn_if_unconfigured

if TYPE_CHECKING:
    from flask_limiter import Limiter
    from pydantic import BaseModel

logger = logging.getLogger("flask_clerk_security")

F = TypeVar("F", bound=Callable[..., Any])
EXTENSION_KEY = "clerk_security"
_G_AUTH = "_clerk_security_auth"
_PUBLIC_ATTR = "_clerk_public"
_ACCEPTS_ATTR = "_clerk_accepts_token"
_UNAVAILABLE_REASONS = frozenset(
    {"jwk-remote-failed-to-load", "secret-key-invalid", "jwk-failed-to-resolve", "unexpected-error"}
)


@dataclass
class ClerkState:
    """What one app needs at request time; lives in ``app.extensions["clerk_security"]``."""

    settings: ClerkSettings
    authenticator: RequestAuthenticator
    #: ``CLERK_PUBLIC_ROUTES`` compiled; ``None`` when there are none (most apps use ``@clerk.public``).
    public_routes: RouteMatcher | None
    machine: MachineVerifier
    #: This app's own Talisman and the CSP it sends (nonce left out); ``None``/"" with CLERK_SECURITY_HEADERS off.
    talisman: Any = None
    content_security_policy: str = ""
    webhooks: WebhookState | None = None


def get_state(app: Flask | None = None) -> ClerkState:
    """The extension state of ``app`` (default: the current app); fails loudly when init_app was not called."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        return cast(ClerkState, app.extensions[EXTENSION_KEY])
    except KeyError:
        raise RuntimeError(
            "ClerkSecurity is not set up on this app: call ClerkSecurity(app) or clerk.init_app(app) first."
        ) from None


def get_auth() -> Auth:
    """The :class:`Auth` of the current request, computed on first use and cached on ``g``."""
    try:
        auth: Auth | None = g._get_current_object().get(_G_AUTH)  # g.get costs 4x
    except RuntimeError:  # no app context, so no request either
        auth = None
    if auth is None:
        if not has_request_context():
            raise RuntimeError("get_auth() and current_auth need an active request (app.test_request_context()).")
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        req = request._get_current_object()  # type: ignore[attr-defined]
        auth = _authenticate(req, get_state(app), g._get_current_object(), _view(app, req))
    return auth


current_auth: Auth = cast(Auth, LocalProxy(get_auth))


def _authenticate(req: Request, state: ClerkState, request_globals: Any, view: Any) -> Auth:
    """Authenticate ``req`` (Clerk's ``authenticateRequest`` for the token types ``view`` accepts) and
    remember the answer on ``g`` (``request_globals``) for the rest of the request."""
    token = token_from_authorization(req.environ.get("HTTP_AUTHORIZATION"))
    accepts: AcceptsToken = getattr(view, _ACCEPTS_ATTR, state.settings.accepts_token)
    if token and accepts == SESSION_TOKEN:  # the default, and the common request: no machine-token routing
        auth = state.authenticator.authenticate(req, token)
    else:
        session = functools.partial(state.authenticator.authenticate, req)
        auth = authenticate_request(token, accepts, session, state.machine)
    setattr(request_globals, _G_AUTH, auth)
    if auth.reason:
        logger.info("signed out: %s (%s %s)", auth.reason, req.method, req.path)
    return auth


def _view(app: Flask, req: Request) -> Any:
    """The view function the request was routed to (None when unrouted)."""
    endpoint = req.endpoint
    return app.view_functions.get(endpoint) if endpoint else None


def _signed_out_error(auth: Auth, settings: ClerkSettings) -> HTTPException:
    """401 for APIs, a sign-in redirect for pages (CLERK_SIGN_IN_URL or the Account Portal), 403 for CSRF,
    503 when keys cannot be loaded."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if auth.reason == CSRF_REASON:
        signals.csrf_rejected.send(app, origin=request.headers.get("Origin"), reason=auth.reason)
        return CSRFRejected()
    signals.authentication_failed.send(app, reason=auth.reason)
    if auth.reason in _UNAVAILABLE_REASONS:
        logger.error("authentication unavailable: %s", auth.reason)
        return AuthUnavailable()
    target = handshake.sign_in_url(settings, request) if is_page_request(request) and _accepts_sessions() else None
    if target:
        return HTTPException(response=redirect(target, code=307))
    return AuthenticationRequired(auth.reason)


def _accepts_sessions() -> bool:
    """Whether this endpoint takes session tokens (a sign-in redirect is pointless on machine-only routes)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    view = _view(app, request._get_current_object())  # type: ignore[attr-defined]
    return is_accepted(SESSION_TOKEN, getattr(view, _ACCEPTS_ATTR, get_state(app).settings.accepts_token))


def _check_machine_keys(settings: ClerkSettings) -> None:
    """Opaque machine tokens are verified with the Backend API, which needs a secret key."""
    accepts = settings.accepts_token
    if not accepts_machine_tokens(accepts) or settings.secret_key:
        return
    needs_secret_key = [kind for kind in (API_KEY, OAUTH_TOKEN) if accepts == "any" or is_accepted(kind, accepts)]
    if settings.machine_secret_key and not needs_secret_key:
        return
    raise ConfigurationError(
        f"CLERK_ACCEPTS_TOKEN={accepts!r} accepts machine tokens, which are verified with the Backend API, but "
        "CLERK_SECRET_KEY is not set. Fix: set CLERK_SECRET_KEY (or CLERK_MACHINE_SECRET_KEY when only "
        "m2m_token is accepted)."
    )


def _build_state(settings: ClerkSettings) -> ClerkState:
    source: KeySource
    if settings.jwt_key:
        source = PemKeySource(settings.jwt_key)
    else:
        assert settings.secret_key is not None  # load_settings guarantees one of the two
        source = remote_key_source(
            settings.api_url,
            settings.secret_key,
            api_version=settings.api_version,
            ttl=settings.jwks_cache_ttl,
            cooldown=settings.jwks_refetch_cooldown,
            timeout=settings.http_timeout,
        )
    verifier = TokenVerifier(
        source,
        authorized_parties=settings.authorized_parties,
        clock_skew=settings.clock_skew,
        cache_size=settings.token_cache_size,
    )
    _check_machine_keys(settings)
    cache = None
    if settings.machine_token_cache_ttl > 0:
        try:
            prefix = f"{settings.store_key_prefix}machine-token:"
            cache = store_from_uri(settings.machine_token_cache_uri, prefix=prefix)
        except ConfigurationError as exc:
            raise ConfigurationError(f"CLERK_MACHINE_TOKEN_CACHE_URI: {exc}") from None
    return ClerkState(
        settings=settings,
        authenticator=RequestAuthenticator(settings, verifier),
        public_routes=RouteMatcher(settings.public_routes) if settings.public_routes else None,
        machine=MachineVerifier(settings, source, cache),
    )


def _parse_require_accepts(accepts_token: Any, scopes: Any) -> AcceptsToken | None:
    """Validate ``require(accepts_token=..., scopes=...)`` at decoration time."""
    accepts = None
    if accepts_token is not None:
        try:
            accepts = parse_accepts_token(accepts_token)
        except ValueError as exc:
            raise ValueError(f"require(accepts_token={accepts_token!r}): {exc}") from None
    if scopes is not None:
        if isinstance(scopes, str) or not isinstance(scopes, (list, tuple, set, frozenset)):
            raise TypeError(f"require(scopes=...) takes a list of scope names, got {scopes!r}")
        if not scopes or not all(isinstance(scope, str) and scope for scope in scopes):
            raise TypeError(f"require(scopes=...) takes a non-empty list of non-empty strings, got {scopes!r}")
        if accepts is not None and not accepts_machine_tokens(accepts):
            raise ValueError(
                "require(scopes=...) needs accepts_token to include a machine token type: sessions have no scopes"
            )
    return accepts


class ClerkSecurity:
    """Clerk authentication and the security basics around it, for one or many Flask apps.

    ``ClerkSecurity(app, **options)`` or ``clerk = ClerkSecurity(**options)`` then ``clerk.init_app(app)``.
    Options are the ``CLERK_*`` settings in lower case without the prefix (``public_routes=[...]``) and win
    over ``app.config``, which wins over the environment.

    ``clerk.limiter`` is a ``flask_limiter.Limiter`` keyed by Clerk user id (pass ``limiter=`` to use your own);
    ``clerk.webhooks`` is the Blueprint serving Clerk's signed webhooks.
    """

    def __init__(self, app: Flask | None = None, *, limiter: Limiter | None = None, **options: Any) -> None:
        self._options: Mapping[str, Any] = options
        self._owns_limiter = limiter is None
        self.limiter: Limiter = limiter or create_limiter()
        self.webhooks = WebhookBlueprint(self.limiter)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Validate configuration (raising :class:`ConfigurationError`) and install protection on ``app``."""
        settings = load_settings(app.config, self._options)
        state = _build_state(settings)
        state.webhooks = WebhookState(settings)
        init_limiter(self.limiter, app, settings, owned=self._owns_limiter)
        app.extensions[EXTENSION_KEY] = state
        if settings.security_headers:  # before _protect, so plain-HTTP requests are redirected first
            state.talisman, state.content_security_policy = install_talisman(app, settings)
        app.before_request(self._protect)
        app.after_request(handshake.apply_response_headers)
        if settings.leak_guard:
            LeakGuard(settings.secrets).install(app)
        if settings.audit_log:
            connect_default_handler(app)
        if app.blueprints.get(self.webhooks.name) is self.webhooks:
            warn_if_unconfigured(app)
        if not settings.authorized_parties:
            logger.warning(
                "CLERK_AUTHORIZED_PARTIES is not set: tokens minted for any origin of this Clerk instance "
                "are accepted. Set it to your frontend origins in production."
            )

    def _protect(self) -> None:
        """Default deny: every endpoint needs a signed-in request unless it is public."""
        req = request._get_current_object()  # type: ignore[attr-defined]  # one context lookup, not one per use
        endpoint = req.endpoint
        if endpoint is None or endpoint == "static" or req.method == "OPTIONS":
            return
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        state: ClerkState = app.extensions[EXTENSION_KEY]
        request_globals = g._get_current_object()
        view = app.view_functions.get(endpoint)
        routes = state.public_routes
        if getattr(view, _PUBLIC_ATTR, False) or (routes and routes(req.path)):
            # Page navigations and handshake returns are authenticated even here: the handshake may redirect.
            if handshake.needs_early_auth(req):
                if request_globals.get(_G_AUTH) is None:
                    _authenticate(req, state, request_globals, view)
                handshake.raise_for_redirect(request_globals)
            return
        auth: Auth = request_globals.get(_G_AUTH) or _authenticate(req, state, request_globals, view)
        handshake.raise_for_redirect(request_globals)
        if not auth.is_authenticated:
            raise _signed_out_error(auth, state.settings)

    @staticmethod
    def public(view: F) -> F:
        """Opt one view out of the default-deny protection (signed-in users still get ``current_auth``)."""
        setattr(view, _PUBLIC_ATTR, True)
        return view

    @overload
    def require(self, view: F) -> F: ...

    @overload
    def require(
        self,
        *,
        permission: str | None = None,
        role: str | None = None,
        feature: str | None = None,
        plan: str | None = None,
        reverification: str | Mapping[str, Any] | None = None,
        accepts_token: str | list[str] | None = None,
        scopes: list[str] | None = None,
    ) -> Callable[[F], F]: ...

    def require(
        self,
        view: Callable[..., Any] | None = None,
        *,
        permission: str | None = None,
        role: str | None = None,
        feature: str | None = None,
        plan: str | None = None,
        reverification: str | Mapping[str, Any] | None = None,
        accepts_token: str | list[str] | None = None,
        scopes: list[str] | None = None,
    ) -> Any:
        """Require a signed-in request and, optionally, Clerk authorization (``has()``) and fresh factors.

        401 when signed out, 403 ``{"error": "forbidden"}`` when ``has()`` says no, 403 with Clerk's
        ``reverification-error`` body when ``reverification`` is asked and the session's ``fva`` is too old.
        Misuse (unknown preset, non-string role) raises at decoration time.
        """
        if view is not None:
            return self.require()(view)
        for name, value in (("permission", permission), ("role", role), ("feature", feature), ("plan", plan)):
            if value is not None and (not isinstance(value, str) or not value):
                raise TypeError(f"require({name}=...) takes a non-empty string, got {value!r}")
        if reverification is not None and reverification_config(reverification) is None:
            raise ValueError(
                f"require(reverification={reverification!r}): use 'strict_mfa', 'strict', 'moderate', 'lax' "
                "or {'level': 'first_factor'|'second_factor'|'multi_factor', 'after_minutes': int > 0}"
            )
        accepts = _parse_require_accepts(accepts_token, scopes)
        reverification_body: str | dict[str, Any] | None = (
            reverification if isinstance(reverification, str) else reverification_config(reverification)
        )
        authorization = {
            key: value
            for key, value in (("permission", permission), ("role", role), ("feature", feature), ("plan", plan))
            if value is not None
        }

        def check() -> None:
            auth = get_auth()
            if not auth.is_authenticated:
                raise _signed_out_error(auth, get_state().settings)
            app = current_app._get_current_object()  # type: ignore[attr-defined]
            if authorization and not auth.has(**authorization):
                signals.authorization_denied.send(
                    app, user_id=auth.user_id, session_id=auth.session_id, requirement=authorization
                )
                raise PermissionDenied()
            if scopes is not None and not set(scopes) <= set(auth.scopes or ()):
                signals.authorization_denied.send(app, user_id=auth.subject, requirement={"scopes": list(scopes)})
                raise PermissionDenied()
            if reverification is not None and not auth.has(reverification=reverification):
                signals.reverification_required.send(
                    app, user_id=auth.user_id, session_id=auth.session_id, level=reverification_body
                )
                raise ReverificationRequired(reverification_body)

        def decorator(func: F) -> F:
            if inspect.iscoroutinefunction(func):

                @functools.wraps(func)
                async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                    check()
                    return await func(*args, **kwargs)

                if accepts is not None:
                    setattr(async_wrapper, _ACCEPTS_ATTR, accepts)
                return cast(F, async_wrapper)

            @functools.wraps(func)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                check()
                return func(*args, **kwargs)

            if accepts is not None:
                setattr(wrapper, _ACCEPTS_ATTR, accepts)
            return cast(F, wrapper)

        return decorator

    @staticmethod
    def validate(*, body: type[BaseModel] | None = None, query: type[BaseModel] | None = None) -> Callable[[F], F]:
        """Parse the JSON body and/or query string into pydantic models passed to the view as ``body=``/``query=``.

        415 not JSON, 413 over ``CLERK_MAX_BODY_BYTES``, 400 not a JSON object, 422 ``[{loc, msg, type}]``.
        See :mod:`flask_clerk_security.validation`.
        """
        from .validation import validate  # validation reads this module's state: import it when used

        return validate(body=body, query=query)
