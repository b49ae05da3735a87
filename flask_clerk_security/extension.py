"""``ClerkSecurity``: per-app state, default-deny protection, ``require()``/``protect()``, ``public``, ``validate``."""

from __future__ import annotations

import difflib
import functools
import inspect
import json
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

from flask import Blueprint, Flask, Request, current_app, request

from . import pages
from .audit import connect_default_handler, log_safe
from .auth import Auth
from .authenticate import RequestAuthenticator, token_from_authorization
from .config import load_settings
from .config_warnings import clerk_config, warn_if_config_changed
from .errors import ConfigurationError
from .headers import install_talisman
from .jwks import KeySource, PemKeySource, remote_key_source
from .leakguard import LeakGuard
from .machine import MachineVerifier
from .machine import authenticate as authenticate_request
from .oauth_resource import check_registered_metadata, metadata_blueprint
from .protection import (
    Requirement,
    check_view_callable,
    is_markable,
    mark_required,
    mark_wrapped,
    policy_of,
    request_accepts,
    signed_out_error,
    view_never_runs,
)
from .ratelimit import create_limiter, init_limiter
from .routes import RouteMatcher
from .secret_values import hold_secrets
from .settings import OPTION_NAMES, ClerkSettings
from .state import ACCEPTS_ATTR as _ACCEPTS_ATTR
from .state import AUTH_KEY, EXTENSION_KEY, REQUIREMENTS_ATTR, ClerkState, current_auth, get_auth, get_state
from .state import PUBLIC_ATTR as _PUBLIC_ATTR
from .stores import instance_namespace, namespace, store_from_uri
from .templates import install_template_globals
from .token_types import API_KEY, OAUTH_TOKEN, SESSION_TOKEN, AcceptsToken, accepts_machine_tokens, is_accepted
from .tokens import TokenVerifier
from .users import UserLoader, UserService, loader_entry, template_context
from .webhooks import WebhookBlueprint, WebhookState, warn_if_unconfigured

if TYPE_CHECKING:
    from clerk_backend_api import Clerk
    from flask_limiter import Limiter
    from pydantic import BaseModel

#: Webhook events after which a cached Clerk user is stale.
_USER_CHANGED_EVENTS = ("user.updated", "user.deleted")

logger = logging.getLogger("flask_clerk_security")

__all__ = ["EXTENSION_KEY", "ClerkSecurity", "ClerkState", "current_auth", "get_auth", "get_state"]

F = TypeVar("F", bound=Callable[..., Any])
L = TypeVar("L", bound=Callable[..., Any])


def _authenticate(req: Request, state: ClerkState, accepts: AcceptsToken | None = None) -> Auth:
    """Authenticate ``req`` (Clerk's ``authenticateRequest`` for the token types its endpoint accepts) and
    remember the answer in the request's environ for the rest of the request."""
    token = token_from_authorization(req.environ.get("HTTP_AUTHORIZATION"))
    if accepts is None:
        accepts = request_accepts(current_app._get_current_object(), req)  # type: ignore[attr-defined]
    if token and accepts == SESSION_TOKEN:  # the default, and the common request: no machine-token routing
        auth = state.authenticator.authenticate(req, token)
    else:
        session = functools.partial(state.authenticator.authenticate, req)
        auth = authenticate_request(token, accepts, session, state.machine)
    req.environ[AUTH_KEY] = auth
    if auth.reason:
        logger.info("signed out: %s (%s %s)", log_safe(auth.reason), log_safe(req.method), log_safe(req.path))
    if state.settings.debug:
        _log_debug_state(req, state.settings, auth)
    return auth


def _log_debug_state(req: Request, settings: ClerkSettings, auth: Auth) -> None:
    """``CLERK_DEBUG``: the fields of Clerk's ``debugRequestState`` for this request (no token, no secret)."""
    fields = {
        "isSignedIn": auth.is_authenticated,
        "isAuthenticated": auth.is_authenticated,
        "tokenType": auth.token_type,
        "proxyUrl": settings.proxy_url or "",
        "reason": auth.reason,
        "message": auth.message,
        "publishableKey": settings.publishable_key or "",
        "domain": settings.domain or "",
    }
    logger.info(
        "Clerk debug request state for %s %s: %s", log_safe(req.method), log_safe(req.path), json.dumps(fields)
    )


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
            max_stale=settings.jwks_max_stale,
        )
    verifier = TokenVerifier(
        source,
        authorized_parties=settings.authorized_parties,
        clock_skew=settings.clock_skew,
        cache_size=settings.token_cache_size,
        audience=settings.audience,
        issuer=settings.issuer,
    )
    _check_machine_keys(settings)
    cache = None
    if settings.machine_token_cache_ttl > 0:
        try:
            cache = store_from_uri(
                settings.machine_token_cache_uri,
                # CLERK_AUDIENCE decides what an OAuth token verifies to as much as the instance does: two
                # resource servers sharing a Redis never answer from each other's verifications.
                prefix=(
                    f"{settings.store_key_prefix}machine-token:{instance_namespace(settings)}:"
                    f"{namespace(*sorted(settings.audience))}:"
                ),
                purpose="machine-token cache",
            )
        except ConfigurationError as exc:
            raise ConfigurationError(f"CLERK_MACHINE_TOKEN_CACHE_URI: {exc}") from None
    return ClerkState(
        settings=settings,
        authenticator=RequestAuthenticator(settings, verifier),
        public_routes=RouteMatcher(settings.public_routes) if settings.public_routes else None,
        machine=MachineVerifier(settings, source, cache),
    )


#: Settings computed from others, not options of their own.


def _check_option_names(options: Mapping[str, Any]) -> None:
    """Refuse an option that is no ``CLERK_*`` setting (``public_route=``), naming the closest one."""
    known = sorted(OPTION_NAMES)
    for name in options:
        if name not in known:
            close = difflib.get_close_matches(name.lower(), known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise TypeError(
                f"ClerkSecurity() got an unknown option {name!r}.{hint} Options are the CLERK_* settings in lower "
                f"case without the prefix: {', '.join(known)}."
            )


class ClerkSecurity:
    """Clerk authentication and the security basics around it, for one or many Flask apps.

    ``ClerkSecurity(app, **options)`` or ``clerk = ClerkSecurity(**options)`` then ``clerk.init_app(app)``.
    Options are the ``CLERK_*`` settings in lower case without the prefix (``public_routes=[...]``) and win
    over ``app.config``, which wins over the environment.

    ``clerk.limiter`` is a ``flask_limiter.Limiter`` keyed by Clerk user id (pass ``limiter=`` to use your own);
    ``clerk.webhooks`` is the Blueprint serving Clerk's signed webhooks.
    """

    def __init__(self, app: Flask | None = None, *, limiter: Limiter | None = None, **options: Any) -> None:
        _check_option_names(options)
        self._options: Mapping[str, Any] = hold_secrets(options)
        self._owns_limiter = limiter is None
        self.limiter: Limiter = limiter or create_limiter()
        self.webhooks = WebhookBlueprint(self.limiter)
        self._user_loader: tuple[UserLoader, bool] | None = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Validate configuration (raising :class:`ConfigurationError`) and install protection on ``app``."""
        if EXTENSION_KEY in app.extensions:
            # A second init would install every hook twice and silently replace the first one's settings.
            raise ConfigurationError(
                "ClerkSecurity is already set up on this app. Fix: call ClerkSecurity(app) or clerk.init_app(app) "
                "once per app (share one ClerkSecurity instance between modules)."
            )
        settings = load_settings(app.config, self._options)
        check_registered_metadata(app, settings.frontend_api)
        state = _build_state(settings)
        state.authenticate = _authenticate
        state.webhooks = WebhookState(settings)
        state.users = UserService(settings, lambda: self._user_loader)
        for event_type in _USER_CHANGED_EVENTS:
            state.webhooks.before_handlers.setdefault(event_type, []).append(state.users.invalidate_event)
        app.context_processor(template_context)
        init_limiter(self.limiter, app, settings, owned=self._owns_limiter)
        app.extensions[EXTENSION_KEY] = state
        state.config_at_init = clerk_config(app.config)
        if settings.security_headers:  # before _protect, so plain-HTTP requests are redirected first
            state.talisman, state.content_security_policy = install_talisman(app, settings)
        app.before_request(self._protect)
        app.after_request(pages.apply_response_headers)
        install_template_globals(app, settings)
        if settings.leak_guard:
            LeakGuard(settings.secrets).install(app)
        if settings.audit_log:
            connect_default_handler(app)
        if app.blueprints.get(self.webhooks.name) is self.webhooks:
            warn_if_unconfigured(app)

    def _protect(self) -> None:
        """Default deny: every endpoint needs a signed-in request unless it is public; blueprint and View-class
        requirements are checked here (those of view functions and methods by their ``require()`` wrapper)."""
        req = request._get_current_object()  # type: ignore[attr-defined]  # one context lookup, not one per use
        endpoint = req.endpoint
        if endpoint is None or endpoint == "static":
            return
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        view = app.view_functions.get(endpoint)
        if req.method == "OPTIONS" and view_never_runs(req, view):
            return
        state: ClerkState = app.extensions[EXTENSION_KEY]
        if state.config_at_init is not None:
            at_init, state.config_at_init = state.config_at_init, None
            warn_if_config_changed(app.config, at_init)
        environ = req.environ
        policy = policy_of(app, endpoint, view, req.method)
        accepts = policy.accepts or state.settings.accepts_token
        routes = state.public_routes
        if not policy.checks and (policy.public or (routes and routes.matches_request(environ))):
            # Page navigations and handshake returns are authenticated even here: the handshake may redirect.
            if pages.needs_early_auth(req):
                if environ.get(AUTH_KEY) is None:
                    _authenticate(req, state, accepts)
                pages.raise_for_redirect(environ)
            return
        auth: Auth = environ.get(AUTH_KEY) or _authenticate(req, state, accepts)
        pages.raise_for_redirect(environ)
        for requirement in policy.checks:
            requirement.check(auth)
        options = (r.treat_pending_as_signed_out for r in policy.requirements)
        pending = [option for option in options if option is not None]
        if pending:  # the innermost require(treat_pending_as_signed_out=...) decides for the default deny
            auth = auth.treating_pending(pending[-1])
        if not auth.is_authenticated:
            # The innermost require(unauthenticated_url=...) decides where a signed-out page goes.
            urls = [r.unauthenticated_url for r in policy.requirements if r.unauthenticated_url]
            raise signed_out_error(auth, urls[-1] if urls else None)

    @property
    def backend(self) -> Clerk:
        """The current app's ``clerk_backend_api.Clerk`` (Clerk's official SDK; extra ``[backend]``), created on
        first use from ``CLERK_SECRET_KEY`` and ``CLERK_API_URL``, every call within ``CLERK_HTTP_TIMEOUT``."""
        users = get_state().users
        assert users is not None  # set by init_app
        return users.backend

    def user_loader(self, loader: L) -> L:
        """Register ``loader(user_id, claims)`` (or ``loader(user_id)``, as Flask-Login's): ``current_user`` then
        returns what it returns for the signed-in session (``None`` for no such user) instead of Clerk's user."""
        if not callable(loader):
            raise TypeError(f"user_loader takes a function, got {loader!r}")
        self._user_loader = loader_entry(loader)
        return loader

    @staticmethod
    def public(view: F) -> F:
        """Opt a view function, a View class (every method), a View method or a whole Blueprint (every endpoint,
        also those added later) out of the default-deny protection; a ``require()`` inside still applies.
        Signed-in users still get ``current_auth``. Anything else raises ``TypeError``."""
        if not is_markable(view):
            check_view_callable("clerk.public", view)
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
        treat_pending_as_signed_out: bool | None = None,
        unauthenticated_url: str | None = None,
        unauthorized_url: str | None = None,
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
        treat_pending_as_signed_out: bool | None = None,
        unauthenticated_url: str | None = None,
        unauthorized_url: str | None = None,
    ) -> Any:
        """Require a signed-in request and, optionally, Clerk authorization (``has()``) and fresh factors.

        Decorates a view function (sync or async), a View class or one of its methods, or a whole Blueprint
        (every endpoint, also those added later, under every name it is registered with); anything else raises
        ``TypeError``. 401 when signed out, 403 ``{"error": "forbidden"}`` when ``has()`` says no, 403 with
        Clerk's ``reverification-error`` body when ``reverification`` is asked and the session's ``fva`` is too
        old. ``treat_pending_as_signed_out=False`` lets a pending session (``sts: "pending"``) in, True keeps it
        out (default: ``CLERK_TREAT_PENDING_AS_SIGNED_OUT``). Misuse (unknown preset, non-string role) raises at
        decoration time. A signed-out page navigation goes to ``unauthenticated_url`` instead of the sign-in page,
        and one that ``has()`` refuses to ``unauthorized_url`` instead of the 403 (Clerk's ``auth.protect``
        options of those names).
        """
        if view is not None:
            return self.require()(view)
        requirement = Requirement.build(
            "require",
            permission=permission,
            role=role,
            feature=feature,
            plan=plan,
            reverification=reverification,
            accepts_token=accepts_token,
            scopes=scopes,
            treat_pending_as_signed_out=treat_pending_as_signed_out,
            unauthenticated_url=unauthenticated_url,
            unauthorized_url=unauthorized_url,
        )

        def decorator(func: F) -> F:
            if is_markable(func):
                mark_required(func, requirement)
                return func
            check_view_callable("clerk.require(...)", func)
            wrapper: Callable[..., Any]
            if inspect.iscoroutinefunction(func):

                @functools.wraps(func)
                async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                    requirement.check(get_auth())
                    return await func(*args, **kwargs)

                wrapper = async_wrapper
            else:

                @functools.wraps(func)
                def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                    requirement.check(get_auth())
                    return func(*args, **kwargs)

                wrapper = sync_wrapper
            if requirement.accepts is not None:
                setattr(wrapper, _ACCEPTS_ATTR, requirement.accepts)
            setattr(wrapper, REQUIREMENTS_ATTR, (*getattr(func, REQUIREMENTS_ATTR, ()), requirement))
            mark_wrapped(func, wrapper)
            return cast(F, wrapper)

        return decorator

    def protect(
        self,
        *,
        permission: str | None = None,
        role: str | None = None,
        feature: str | None = None,
        plan: str | None = None,
        reverification: str | Mapping[str, Any] | None = None,
        accepts_token: str | list[str] | None = None,
        scopes: list[str] | None = None,
        treat_pending_as_signed_out: bool | None = None,
        unauthenticated_url: str | None = None,
        unauthorized_url: str | None = None,
    ) -> None:
        """Inside a view, raise exactly what ``require(...)`` with the same options would (same answers, same
        signals, same reverification body); return when the request passes."""
        Requirement.build(
            "protect",
            permission=permission,
            role=role,
            feature=feature,
            plan=plan,
            reverification=reverification,
            accepts_token=accepts_token,
            scopes=scopes,
            treat_pending_as_signed_out=treat_pending_as_signed_out,
            unauthenticated_url=unauthenticated_url,
            unauthorized_url=unauthorized_url,
        ).check(get_auth())

    @staticmethod
    def oauth_protected_resource(*, scopes_supported: list[str] | None = None, **properties: Any) -> Blueprint:
        """A Blueprint serving the RFC 9728 metadata MCP clients read to find Clerk as the authorization server
        (``@clerk/mcp-tools``'s ``protectedResourceHandlerClerk``): ``app.register_blueprint(
        clerk.oauth_protected_resource(scopes_supported=["profile", "email"]))``. ``properties`` are added to
        the document. Needs ``CLERK_PUBLISHABLE_KEY``."""
        return metadata_blueprint(scopes_supported=scopes_supported, **properties)

    @staticmethod
    def validate(*, body: type[BaseModel] | None = None, query: type[BaseModel] | None = None) -> Callable[[F], F]:
        """Parse the JSON body and/or query string into pydantic models passed to the view as ``body=``/``query=``.

        415 not JSON, 413 over ``CLERK_MAX_BODY_BYTES``, 400 not a JSON object, 422 ``[{loc, msg, type}]``.
        See :mod:`flask_clerk_security.validation`.
        """
        from .validation import validate  # pydantic is imported only by apps that validate

        return validate(body=body, query=query)
