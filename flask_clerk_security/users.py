"""``current_user``, ``clerk.backend``, ``@clerk.user_loader`` and ``get_token()``: Clerk's Backend API in the app.

The Clerk user of a request is fetched through Clerk's official SDK on first use, kept with the request (its WSGI
environ, never ``flask.g``) and cached across requests: parsed objects in this process's memory, or the SDK's
JSON in Redis when ``CLERK_USER_CACHE_URI`` (or the rate-limit storage) is one, so a webhook's invalidation reaches
every process. During a Backend API outage a cached user is served up to ``CLERK_USER_CACHE_MAX_STALE`` seconds
past its TTL; with nothing cached the request gets 503 with ``Retry-After``.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from flask import has_request_context, request
from werkzeug.local import LocalProxy

from . import backend_api
from .audit import log_safe
from .errors import AuthUnavailable, ConfigurationError, SessionRequired
from .secret_values import reveal
from .settings import ClerkSettings
from .state import AUTH_KEY, get_auth, get_state
from .stores import MemoryStore, StoreError, TTLStore, store_from_uri
from .token_types import SESSION_TOKEN

if TYPE_CHECKING:
    from clerk_backend_api import Clerk
    from clerk_backend_api.models import User

    from .auth import Auth
    from .webhooks import WebhookEvent

logger = logging.getLogger("flask_clerk_security")

#: ``request.environ`` key of this request's user (the app's object with a user loader), ``None`` included.
USER_KEY = "flask_clerk_security.user"
#: A template token is fetched anew this many seconds before it expires.
TOKEN_REFRESH_MARGIN = 10.0
_TOKEN_CACHE_SIZE = 10_000

UserLoader = Callable[..., Any]


class UserCache(Protocol):
    """Users by id, each with the wall-clock time its fetch started.

    ``invalidate`` leaves a tombstone: a fetch that started before it (and so may carry the old data) is not
    cached when it ends, which a plain delete could not prevent.
    """

    def get(self, user_id: str) -> tuple[User, float] | None: ...

    def set(self, user_id: str, user: User, fetched_at: float) -> None: ...

    def invalidate(self, user_id: str, at: float) -> None: ...


class MemoryUserCache:
    """Parsed users in this process, least recently fetched evicted first: a warm hit costs a dict lookup."""

    def __init__(self, max_entries: int, lifetime: float) -> None:
        #: ``(user, fetched_at)``, or ``(None, invalidated_at)`` for a tombstone.
        self._data: OrderedDict[str, tuple[User | None, float]] = OrderedDict()
        self._max = max_entries
        self._lifetime = lifetime
        self._lock = threading.Lock()

    def get(self, user_id: str) -> tuple[User, float] | None:
        item = self._data.get(user_id)
        if item is None or item[0] is None:
            return None
        if item[1] + self._lifetime <= time.time():
            with self._lock:
                self._data.pop(user_id, None)
            return None
        return item[0], item[1]

    def set(self, user_id: str, user: User, fetched_at: float) -> None:
        with self._lock:
            current = self._data.get(user_id)
            if current is not None and current[0] is None and current[1] >= fetched_at:
                return
            self._put(user_id, (user, fetched_at))

    def invalidate(self, user_id: str, at: float) -> None:
        with self._lock:
            self._put(user_id, (None, at))

    def _put(self, user_id: str, item: tuple[User | None, float]) -> None:
        self._data[user_id] = item
        self._data.move_to_end(user_id)
        while len(self._data) > self._max:
            self._data.popitem(last=False)


_TOMBSTONE = "invalidated "


class StoreUserCache:
    """The SDK's JSON of each user in a shared :class:`TTLStore` (Redis), under a per-Clerk-instance namespace."""

    def __init__(self, store: TTLStore, namespace: str, lifetime: float) -> None:
        self._store = store
        self._namespace = namespace
        self._lifetime = lifetime

    def get(self, user_id: str) -> tuple[User, float] | None:
        from clerk_backend_api.models import User

        raw = self._store.get(self._namespace + user_id)
        if raw is None or raw.startswith(_TOMBSTONE):
            return None
        fetched_at, _, body = raw.partition(" ")
        try:
            return User.model_validate_json(body), float(fetched_at)
        except ValueError:  # written by another SDK version or corrupted: fetch it anew
            return None

    def set(self, user_id: str, user: User, fetched_at: float) -> None:
        key = self._namespace + user_id
        current = self._store.get(key)
        if current is not None and current.startswith(_TOMBSTONE):
            try:
                if float(current.removeprefix(_TOMBSTONE)) >= fetched_at:
                    return
            except ValueError:
                pass
        self._store.set(key, f"{fetched_at!r} {user.model_dump_json(by_alias=True)}", self._lifetime)

    def invalidate(self, user_id: str, at: float) -> None:
        self._store.set(self._namespace + user_id, f"{_TOMBSTONE}{at!r}", self._lifetime)


def _unavailable(exc: Exception) -> str | None:
    """Why the SDK's call gave no usable answer, for the outage log; ``None`` for a 404 or an error of ours.

    Transport errors, timeouts, 429 and 5xx mean Clerk could not answer now; 401/403 mean Clerk refused our secret
    key (rotated or revoked); any other error status is no answer the request can use either. All of them are a 503
    for the request: Clerk's error body is never passed on.
    """
    import httpx
    from clerk_backend_api.models import ClerkBaseError, NoResponseError

    if isinstance(exc, (httpx.HTTPError, NoResponseError)):
        return f"Backend API unavailable ({type(exc).__name__})"
    if not isinstance(exc, ClerkBaseError) or exc.status_code == 404:
        return None
    status = exc.status_code
    if status == 429 or status >= 500:
        return f"Backend API unavailable ({type(exc).__name__} {status})"
    if status in (401, 403):
        return f"Backend API refused CLERK_SECRET_KEY ({status}: rotated or revoked? Fix: set the current key)"
    return f"Backend API answered {status} ({type(exc).__name__})"


def _not_found(exc: Exception) -> bool:
    from clerk_backend_api.models import ClerkBaseError

    return isinstance(exc, ClerkBaseError) and exc.status_code == 404


def _token_expiry(token: str) -> float | None:
    """The ``exp`` of a JWT Clerk just minted for us (read, not verified: it is ours to pass on, not to trust)."""
    try:
        segment = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
        exp = claims.get("exp") if isinstance(claims, dict) else None
    except (IndexError, ValueError):
        return None
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


class UserService:
    """One app's SDK client, user cache and template-token cache (in ``ClerkState.users``)."""

    def __init__(self, settings: ClerkSettings, loader: Callable[[], tuple[UserLoader, bool] | None]) -> None:
        self._settings = settings
        self._loader = loader
        self._backend: Clerk | None = None
        self._lock = threading.Lock()
        self.ttl = settings.user_cache_ttl
        self.max_stale = settings.user_cache_max_stale
        self._outage = backend_api.OutageLog(
            "current_user",
            "users cached within CLERK_USER_CACHE_MAX_STALE are served, others get 503 until the Backend API answers",
        )
        self._token_outage = backend_api.OutageLog(
            "get_token", "template tokens cannot be made (503) until the Backend API answers"
        )
        lifetime = max(settings.user_cache_ttl + settings.user_cache_max_stale, 0.001)
        uri = reveal(settings.user_cache_uri) or "memory://"
        self.cache: UserCache
        if uri.startswith("memory://"):
            self.cache = MemoryUserCache(settings.user_cache_size, lifetime)
        else:
            try:
                store = store_from_uri(settings.user_cache_uri, prefix=settings.store_key_prefix, purpose="user cache")
            except ConfigurationError as exc:
                raise ConfigurationError(f"CLERK_USER_CACHE_URI: {exc}") from None
            # Two Clerk instances (staging, production) sharing one Redis never see each other's users.
            digest = hashlib.sha256((reveal(settings.secret_key) or "").encode()).hexdigest()[:16]
            self.cache = StoreUserCache(store, f"user:{digest}:", lifetime)
        self._tokens: MemoryStore = MemoryStore(_TOKEN_CACHE_SIZE)

    @property
    def backend(self) -> Clerk:
        """This app's ``clerk_backend_api.Clerk``, created on first use."""
        if self._backend is None:
            with self._lock:
                if self._backend is None:
                    settings = self._settings
                    if not settings.secret_key:
                        raise ConfigurationError(
                            "clerk.backend needs CLERK_SECRET_KEY (the Backend API's bearer). Fix: set it from the "
                            "API keys page of the Clerk Dashboard."
                        )
                    self._backend = backend_api.sdk_client(
                        settings.api_url, settings.api_version, settings.secret_key, settings.http_timeout
                    )
        return self._backend

    def user_for(self, auth: Auth) -> Any:
        """The app's object (user loader) or the Clerk ``User`` of a signed-in session; ``None`` otherwise."""
        user_id = auth.user_id
        if not auth.is_authenticated or auth.token_type != SESSION_TOKEN or not user_id:
            return None
        loader = self._loader()
        if loader is not None:
            func, takes_claims = loader
            return func(user_id, auth.claims) if takes_claims else func(user_id)
        return self.clerk_user(user_id)

    def clerk_user(self, user_id: str) -> User | None:
        """The cached user when fresh, else the Backend API's answer (a stale one during an outage)."""
        try:
            cached = self.cache.get(user_id)
        except StoreError as exc:
            # The store's circuit breaker logs the outage once ("user cache: Redis unavailable"), not per request.
            logger.debug("user cache unavailable (%s): fetching from the Backend API", exc)
            cached = None
        fetched_at = time.time()
        if cached is not None and fetched_at - cached[1] < self.ttl:
            return cached[0]
        try:
            user = self.backend.users.get(user_id=user_id)
        except Exception as exc:
            if _not_found(exc):  # deleted in Clerk: signed in a moment longer, but no user to show
                self._outage.answered()
                try:
                    self.invalidate(user_id)
                except StoreError as store_exc:
                    logger.warning("user cache unavailable (%s): deleted user not dropped", store_exc)
                return None
            detail = _unavailable(exc)
            if detail is None:
                raise
            self._outage.failed(detail)
            if cached is not None and fetched_at - cached[1] < self.ttl + self.max_stale:
                return cached[0]
            raise AuthUnavailable() from None
        self._outage.answered()
        try:
            self.cache.set(user_id, user, fetched_at)
        except StoreError as exc:
            logger.debug("user cache unavailable (%s): user not cached", exc)
        return user

    def invalidate(self, user_id: str) -> None:
        """Forget a cached user, and any fetch of it under way (raises :class:`StoreError` when Redis is down)."""
        self.cache.invalidate(user_id, time.time())

    def invalidate_event(self, event: WebhookEvent) -> None:
        """``user.updated`` / ``user.deleted``: drop the user from the cache before the app's handlers run."""
        user_id = event.data.get("id")
        if isinstance(user_id, str) and user_id:
            self.invalidate(user_id)
            logger.info("user cache: %s invalidated by %s", log_safe(user_id), log_safe(event.type))

    def template_token(self, session_id: str, template: str) -> str:
        """A JWT from JWT template ``template`` for ``session_id``, reused until shortly before it expires."""
        key = f"{session_id}\0{template}"
        token = self._tokens.get(key)
        if token is not None:
            return token
        try:
            answer = self.backend.sessions.create_token_from_template(session_id=session_id, template_name=template)
        except Exception as exc:
            failure = self._token_not_found(session_id, template) if _not_found(exc) else self._token_unavailable(exc)
            if failure is None:
                raise
            raise failure from None
        self._token_outage.answered()
        token = answer.jwt
        if not isinstance(token, str) or not token:
            raise AuthUnavailable()
        expires_at = _token_expiry(token)
        if expires_at is not None and expires_at - time.time() > TOKEN_REFRESH_MARGIN:
            self._tokens.set(key, token, expires_at - time.time() - TOKEN_REFRESH_MARGIN)
        return token

    def _token_not_found(self, session_id: str, template: str) -> Exception | None:
        """What a 404 for a template token means: the session ended in Clerk (revoked or signed out while its
        token is still valid) or the instance has no template of that name. The session's status tells which."""
        try:
            session = self.backend.sessions.get(session_id=session_id)
        except Exception as exc:
            failure = SessionRequired() if _not_found(exc) else self._token_unavailable(exc)
            if failure is None:
                raise
            return failure
        self._token_outage.answered()
        if session.status.value != "active":
            return SessionRequired()
        return ConfigurationError(
            f"get_token(template={log_safe(template)!r}): this Clerk instance has no JWT template of that name. "
            "Fix: create it under JWT templates in the Clerk Dashboard, or correct the name."
        )

    def _token_unavailable(self, exc: Exception) -> AuthUnavailable | None:
        """:class:`AuthUnavailable` (logged once per outage) for an SDK error; ``None`` for an error of ours."""
        detail = _unavailable(exc)
        if detail is None:
            return None
        self._token_outage.failed(detail)
        return AuthUnavailable()


def loader_entry(func: UserLoader) -> tuple[UserLoader, bool]:
    """``func`` and whether it takes the claims too (``load(user_id, claims)``) or only the id (Flask-Login's form)."""
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return func, True
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    takes_claims = len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in parameters)
    return func, takes_claims


def _service() -> UserService:
    users = get_state().users
    assert users is not None  # set by ClerkSecurity.init_app
    return users


def get_current_user() -> Any:
    """The current request's user: fetched on first use, then kept with the request."""
    if not has_request_context():
        raise RuntimeError("current_user needs an active request (app.test_request_context()).")
    environ = request._get_current_object().environ  # type: ignore[attr-defined]  # one context lookup
    try:
        return environ[USER_KEY]
    except KeyError:
        pass
    user = _service().user_for(environ.get(AUTH_KEY) or get_auth())
    environ[USER_KEY] = user
    return user


current_user: Any = LocalProxy(get_current_user)


#: What cannot be in a JWT template name that goes into a URL path segment.
_UNSAFE_TEMPLATE = re.compile(r"[/?#%\\\x00-\x1f\x7f]")


def get_token(template: str) -> str:
    """A JWT from the JWT template named ``template`` for the current session (Clerk's
    ``POST /v1/sessions/{session_id}/tokens/{template_name}`` through the SDK), cached until shortly before it
    expires. Raises :class:`SessionRequired` (401) when signed out, authenticated by a machine token, or the
    session ended in Clerk; :class:`AuthUnavailable` (503) when the Backend API cannot answer or refuses the secret
    key; :class:`ConfigurationError` when the instance has no template of that name."""
    if not isinstance(template, str) or not template:
        raise TypeError(f"get_token(template=...) takes a JWT template name, got {template!r}")
    if _UNSAFE_TEMPLATE.search(template) or not template.strip("."):
        # The SDK puts the name in the URL path unescaped: "../../../users/u/ban" would be another Backend API call.
        raise ValueError(f"get_token(template=...): {log_safe(template)!r} is no JWT template name (/?#%\\, dots)")
    auth = get_auth()
    if not auth.is_authenticated or auth.token_type != SESSION_TOKEN or not auth.session_id:
        raise SessionRequired()
    return _service().template_token(auth.session_id, template)


def template_context() -> dict[str, Any]:
    """``current_user`` in every Jinja template (a proxy: a template that never reads it costs nothing)."""
    return {"current_user": current_user}
