"""Rate limiting: a real ``flask_limiter.Limiter`` keyed by Clerk user id, with JSON 429s and Redis storage.

The key is resolved lazily from :func:`get_auth`, so it does not matter whether the limiter's ``before_request``
hook runs before or after the extension's protection hook: the first one to ask computes the auth, the request keeps it.
"""

from __future__ import annotations

import functools
import json
import logging
import time
import weakref
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, current_app, has_request_context, request

from .errors import ConfigurationError
from .private_hooks import attribute_problems, hook_problems, warn_fallback
from .settings import ClerkSettings
from .signals import rate_limit_exceeded
from .state import EXTENSION_KEY, get_auth
from .stores import instance_namespace

if TYPE_CHECKING:
    from flask_limiter import Limiter, RequestLimit
    from flask_limiter._extension import LimiterContext

logger = logging.getLogger("flask_clerk_security")

_REDIS_SCHEMES = ("redis://", "rediss://", "redis+unix://", "redis+sentinel://", "redis+cluster://")
#: Seconds a Redis call may take before the limiter treats the storage as down and falls back to memory.
REDIS_TIMEOUT = 1.0
#: The storage URI each limiter we created was initialised with (flask-limiter keeps one storage per Limiter).
#: Set in the request's environ once the limiter touches the request's state (a limit was checked).
_LIMITER_USED_KEY = "flask_clerk_security.limiter_used"
_storage_uris: weakref.WeakKeyDictionary[Limiter, str] = weakref.WeakKeyDictionary()


def client_address_key() -> str:
    """``ip:<address>`` from ``request.remote_addr`` (behind a proxy, install werkzeug's ``ProxyFix``)."""
    return f"ip:{request.remote_addr or 'unknown'}"


def rate_limit_key() -> str:
    """``user:<id>`` for a signed-in user, ``machine:<id>`` for a machine token, else the client address."""
    if has_request_context() and EXTENSION_KEY in current_app.extensions:
        auth = get_auth()
        if auth.is_authenticated:
            if auth.user_id:
                return f"user:{auth.user_id}"
            return f"machine:{auth.subject or auth.id}"
    return client_address_key()


def rate_limited_response(limit: RequestLimit) -> Response:
    """The 429 for a breached limit: ``{"error": "rate_limited"}`` with ``Retry-After`` in seconds."""
    rate_limit_exceeded.send(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        key=limit.key,
        limit=str(limit.limit),
        route=request.path,
    )
    retry_after = max(1, int(limit.reset_at - time.time()))
    return Response(
        json.dumps({"error": "rate_limited"}),
        status=429,
        mimetype="application/json",
        headers={"Retry-After": str(retry_after), "Cache-Control": "no-store"},
    )


def _limiter_used() -> bool:
    """Whether the limiter touched this request's state (the request resolved once, not through the proxy)."""
    try:
        environ = request._get_current_object().environ  # type: ignore[attr-defined]
    except RuntimeError:  # no request
        return False
    return _LIMITER_USED_KEY in environ


#: The private ``flask_limiter.Limiter`` methods ClerkLimiter overrides, with the parameters they take (3.5 to 4.x).
LIMITER_HOOKS = {
    "_Limiter__check_conditional_deductions": ("self", "response"),
    "_Limiter__release_context": ("self", "_"),
    "_check_request_limit": ("self", "callable_name", "in_middleware"),
}
#: The private attributes ClerkLimiter reads, on the limiter's ``limit_manager`` and on the limiter itself.
LIMIT_MANAGER_ATTRIBUTES = ("_application_limits", "_default_limits", "_blueprint_limits", "_endpoint_hints")
LIMITER_ATTRIBUTES = ("_meta_limits", "_in_memory_fallback")


def limiter_hook_problems(limiter: Limiter) -> list[str]:
    """What ClerkLimiter relies on that this flask-limiter lacks (empty when it can be used)."""
    from flask_limiter import Limiter

    return [
        *hook_problems(Limiter, LIMITER_HOOKS),
        *attribute_problems(limiter.limit_manager, LIMIT_MANAGER_ATTRIBUTES),
        *attribute_problems(limiter, LIMITER_ATTRIBUTES),
    ]


@functools.cache
def limiter_class() -> type[Limiter]:
    """:class:`ClerkLimiter`, defined on first use so that importing this package does not import flask-limiter."""
    from flask_limiter import Limiter, RateLimitExceeded

    class ClerkLimiter(Limiter):
        """A ``flask_limiter.Limiter`` whose hooks return at once on requests it has nothing to do for.

        Limits from ``@limiter.limit`` are checked by their decorator; the ``before_request`` hook only serves
        application, default, blueprint and meta limits (and limits hinted for an endpoint). While none of
        those exist, running the hook costs every request about 0.1 ms for no decision, so it is skipped;
        the moment any is configured, every request goes through flask-limiter's own check again.
        Its ``after_request`` and ``teardown_request`` hooks only read and reset the state a limit check left
        for the request; on a request no limit was checked for there is none, so they skip straight past it.
        """

        @property
        def context(self) -> LimiterContext:
            if has_request_context():
                request.environ[_LIMITER_USED_KEY] = True
            return super().context

        @property
        def current_limit(self) -> RequestLimit | None:
            if not _limiter_used():
                return None
            limit = super().current_limit
            if limit is not None and self._in_memory_fallback_enabled:
                try:
                    limit.window  # noqa: B018 (fetched and cached now, for the rate-limit headers)
                except Exception:
                    # flask-limiter falls back here only if no other thread declared the storage dead while this
                    # one waited on it (else a 500 after the view ran): fall back either way; the window is then
                    # read from memory.
                    if not self._storage_dead:
                        self.logger.warning("Rate limit storage unreachable - falling back to in-memory storage")
                        self._storage_dead = True
            return limit

        def _Limiter__check_conditional_deductions(self, response: Response) -> None:
            if _limiter_used():
                super()._Limiter__check_conditional_deductions(response)  # type: ignore[misc]

        def _Limiter__release_context(self, exc: BaseException | None = None) -> None:
            if _limiter_used():
                super()._Limiter__release_context(exc)  # type: ignore[misc]

        def _check_request_limit(self, callable_name: str | None = None, in_middleware: bool = True) -> None:
            if in_middleware and not self._has_middleware_limits():
                return
            try:
                super()._check_request_limit(callable_name=callable_name, in_middleware=in_middleware)
            except RateLimitExceeded:
                raise
            except Exception:
                # flask-limiter falls back only on the call that finds the storage alive; requests already
                # waiting on it when another thread declared it dead would raise (a 500): they fall back too.
                if not (self._in_memory_fallback_enabled and self._storage_dead):
                    raise
                self.context.seen_limits.clear()
                super()._check_request_limit(callable_name=callable_name, in_middleware=in_middleware)

        def _has_middleware_limits(self) -> bool:
            manager = self.limit_manager
            return bool(
                manager._application_limits
                or manager._default_limits
                or manager._blueprint_limits
                or manager._endpoint_hints
                or self._meta_limits
                or self._in_memory_fallback
            )

    return ClerkLimiter


def create_limiter() -> Limiter:
    """The extension's own limiter: Clerk-keyed, rate-limit headers on, JSON 429s, in-memory fallback.

    When the storage (Redis) fails, flask-limiter logs a warning and keeps enforcing the same limits in this
    process's memory until the storage answers again (it re-checks with a growing back-off, at most ~32 s).
    A ``ClerkLimiter`` when this flask-limiter has the private hooks it overrides, else a plain ``Limiter``.
    """
    from flask_limiter import Limiter

    options: dict[str, Any] = {
        "headers_enabled": True,
        "retry_after": "delta-seconds",
        "on_breach": rate_limited_response,
        "in_memory_fallback_enabled": True,
    }
    limiter = limiter_class()(rate_limit_key, **options)
    problems = limiter_hook_problems(limiter)
    if not problems:
        return limiter
    warn_fallback("flask-limiter", "ClerkLimiter", problems)
    return Limiter(rate_limit_key, **options)


def init_limiter(limiter: Limiter, app: Flask, settings: ClerkSettings, *, owned: bool) -> None:
    """Install ``limiter`` on ``app``; for the extension's own limiter, storage comes from our settings.

    flask-limiter keeps the storage on the Limiter instance, so every app sharing one ClerkSecurity shares one
    storage: a second app asking for a different ``CLERK_RATELIMIT_STORAGE_URI`` is a configuration error.
    An app's own limiter (``ClerkSecurity(app, limiter=...)``) keeps its own ``RATELIMIT_*`` configuration.
    """
    if owned:
        uri = settings.ratelimit_storage_uri.reveal()
        configured = app.config.setdefault("RATELIMIT_STORAGE_URI", uri)
        if configured != uri:
            raise ConfigurationError(
                "RATELIMIT_STORAGE_URI and CLERK_RATELIMIT_STORAGE_URI disagree. Fix: set only "
                "CLERK_RATELIMIT_STORAGE_URI."
            )
        uri = str(configured)
        previous = _storage_uris.get(limiter)
        if previous is not None and previous != uri:
            raise ConfigurationError(
                "CLERK_RATELIMIT_STORAGE_URI differs between apps sharing one ClerkSecurity, but its limiter has "
                "one storage. Fix: use the same storage URI, or one ClerkSecurity per app."
            )
        # Two instances on one Redis would otherwise share counters of same-named endpoints and addresses.
        app.config.setdefault(
            "RATELIMIT_KEY_PREFIX", f"{settings.store_key_prefix}ratelimit:{instance_namespace(settings)}"
        )
        if uri.startswith(_REDIS_SCHEMES):
            app.config.setdefault(
                "RATELIMIT_STORAGE_OPTIONS",
                {"socket_connect_timeout": REDIS_TIMEOUT, "socket_timeout": REDIS_TIMEOUT},
            )
        _storage_uris[limiter] = uri
    if limiter in app.extensions.get("limiter", set()):
        return
    from limits.errors import ConfigurationError as LimitsConfigurationError

    try:
        limiter.init_app(app)
    except LimitsConfigurationError:
        scheme = str(app.config.get("RATELIMIT_STORAGE_URI", "")).split("://", 1)[0]
        raise ConfigurationError(
            f"CLERK_RATELIMIT_STORAGE_URI: the {scheme!r} storage is unknown or its driver is missing. Fix: use "
            "memory:// or redis://host:6379/0 (pip install 'flask-clerk-security[redis]')."
        ) from None
    if owned:
        from .limiter_memory import bound_memory_storages

        bound_memory_storages(limiter)
