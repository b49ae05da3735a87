"""``ClerkSecurity``: per-app state, default-deny protection, ``require()`` and ``public``."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast, overload
from urllib.parse import urlencode

from flask import Flask, current_app, g, has_request_context, redirect, request
from werkzeug.exceptions import HTTPException
from werkzeug.local import LocalProxy

from .auth import Auth, reverification_config
from .authenticate import CSRF_REASON, RequestAuthenticator, is_page_request
from .config import ClerkSettings, load_settings
from .errors import (
    AuthenticationRequired,
    AuthUnavailable,
    CSRFRejected,
    PermissionDenied,
    ReverificationRequired,
)
from .jwks import KeySource, PemKeySource, remote_key_source
from .routes import RouteMatcher
from .tokens import TokenVerifier

logger = logging.getLogger("flask_clerk_security")

F = TypeVar("F", bound=Callable[..., Any])
EXTENSION_KEY = "clerk_security"
_G_AUTH = "_clerk_security_auth"
_PUBLIC_ATTR = "_clerk_public"
_UNAVAILABLE_REASONS = frozenset({"jwk-remote-failed-to-load", "secret-key-invalid", "jwk-failed-to-resolve"})


@dataclass
class ClerkState:
    """What one app needs at request time; lives in ``app.extensions["clerk_security"]``."""

    settings: ClerkSettings
    authenticator: RequestAuthenticator
    public_routes: RouteMatcher


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
    if not has_request_context():
        raise RuntimeError("get_auth() and current_auth need an active request (app.test_request_context()).")
    auth: Auth | None = g.get(_G_AUTH)
    if auth is None:
        auth = get_state().authenticator.authenticate(request)
        setattr(g, _G_AUTH, auth)
        if auth.reason:
            logger.info("signed out: %s (%s %s)", auth.reason, request.method, request.path)
    return auth


current_auth: Auth = cast(Auth, LocalProxy(get_auth))


def _signed_out_error(auth: Auth, settings: ClerkSettings) -> HTTPException:
    """401 for APIs, a sign-in redirect for pages, 403 for CSRF, 503 when keys cannot be loaded."""
    if auth.reason == CSRF_REASON:
        return CSRFRejected()
    if auth.reason in _UNAVAILABLE_REASONS:
        logger.error("authentication unavailable: %s", auth.reason)
        return AuthUnavailable()
    if settings.sign_in_url and is_page_request(request):
        separator = "&" if "?" in settings.sign_in_url else "?"
        target = f"{settings.sign_in_url}{separator}{urlencode({'redirect_url': request.url})}"
        return HTTPException(response=redirect(target, code=307))
    return AuthenticationRequired(auth.reason)


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
    return ClerkState(
        settings=settings,
        authenticator=RequestAuthenticator(settings, verifier),
        public_routes=RouteMatcher(settings.public_routes),
    )


class ClerkSecurity:
    """Clerk authentication and the security basics around it, for one or many Flask apps.

    ``ClerkSecurity(app, **options)`` or ``clerk = ClerkSecurity(**options)`` then ``clerk.init_app(app)``.
    Options are the ``CLERK_*`` settings in lower case without the prefix (``public_routes=[...]``) and win
    over ``app.config``, which wins over the environment.
    """

    def __init__(self, app: Flask | None = None, **options: Any) -> None:
        self._options: Mapping[str, Any] = options
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Validate configuration (raising :class:`ConfigurationError`) and install protection on ``app``."""
        settings = load_settings(app.config, self._options)
        app.extensions[EXTENSION_KEY] = _build_state(settings)
        app.before_request(self._protect)
        if not settings.authorized_parties:
            logger.warning(
                "CLERK_AUTHORIZED_PARTIES is not set: tokens minted for any origin of this Clerk instance "
                "are accepted. Set it to your frontend origins in production."
            )

    def _protect(self) -> None:
        """Default deny: every endpoint needs a signed-in request unless it is public."""
        req = request._get_current_object()  # type: ignore[attr-defined]  # one context lookup, not one per use
        endpoint = req.endpoint
        if req.method == "OPTIONS" or endpoint is None:
            return
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        state = get_state(app)
        view = app.view_functions.get(endpoint)
        if endpoint == "static" or getattr(view, _PUBLIC_ATTR, False) or state.public_routes(req.path):
            return
        auth = get_auth()
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
        if accepts_token not in (None, "session_token") or scopes is not None:
            raise ValueError("require(accepts_token=..., scopes=...) needs machine-token support")
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
            if authorization and not auth.has(**authorization):
                logger.info("forbidden: %s lacks %s (%s)", auth.user_id, authorization, request.path)
                raise PermissionDenied()
            if reverification is not None and not auth.has(reverification=reverification):
                logger.info("reverification required for %s (%s)", auth.user_id, request.path)
                raise ReverificationRequired(reverification_body)

        def decorator(func: F) -> F:
            if inspect.iscoroutinefunction(func):

                @functools.wraps(func)
                async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                    check()
                    return await func(*args, **kwargs)

                return cast(F, async_wrapper)

            @functools.wraps(func)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                check()
                return func(*args, **kwargs)

            return cast(F, wrapper)

        return decorator
