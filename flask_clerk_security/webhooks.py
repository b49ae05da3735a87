"""Clerk webhooks: a Blueprint that verifies Svix signatures, refuses replays and dispatches events to handlers.

``app.register_blueprint(clerk.webhooks)`` mounts ``POST /api/webhooks/clerk``. The view is public (the
signature is the authentication) and reads the app's settings at request time, so one blueprint serves many apps.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar, cast

import flask
from flask import Blueprint, Flask, Request, current_app, request
from flask.blueprints import BlueprintSetupState
from werkzeug.exceptions import BadRequest, Conflict, InternalServerError, RequestEntityTooLarge, ServiceUnavailable

from .audit import log_safe
from .errors import _JSONError
from .secret_values import Secret, reveal
from .settings import ClerkSettings
from .signals import webhook_received, webhook_rejected, webhook_replayed
from .state import EXTENSION_KEY, get_state, mark_public
from .stores import RedisStore, StoreError, TTLStore, namespace, store_from_uri
from .webhook_payloads import WebhookPayload

if TYPE_CHECKING:
    from flask_limiter import Limiter

logger = logging.getLogger("flask_clerk_security")

WebhookHandler = Callable[["WebhookEvent"], Any]
H = TypeVar("H", bound=WebhookHandler)

SVIX_HEADERS = ("svix-id", "svix-timestamp", "svix-signature")
_PROCESSING, _DONE = "processing", "done"
#: Redis stores whose persistence was checked in this process (each warns at most once).
_persistence_checked: set[str] = set()
_persistence_lock = threading.Lock()


@dataclass(frozen=True)
class WebhookEvent:
    """One verified Clerk event. ``id`` is the ``svix-id`` (the same on every retry of a delivery)."""

    id: str
    type: str
    data: dict[str, Any]
    #: When Svix signed the delivery (``svix-timestamp``, checked to be within 5 minutes of now).
    timestamp: datetime
    #: The whole JSON payload (``data``, ``type``, ``object``, ``timestamp`` in ms, ``instance_id``, ...).
    payload: dict[str, Any]
    #: The body exactly as signed.
    raw: bytes

    @property
    def typed_payload(self) -> WebhookPayload:
        """:attr:`payload` typed as Clerk's common events (tagged by ``type``; see ``webhook_payloads``)."""
        return cast(WebhookPayload, self.payload)


class WebhookRejected(_JSONError, BadRequest):
    """400: missing Svix headers, a bad signature or timestamp (never says which), or a non-object payload."""

    def __init__(self, error: str = "invalid_webhook") -> None:
        super().__init__()
        self.payload = {"error": error}


class WebhookTooLarge(_JSONError, RequestEntityTooLarge):
    """413: the body is over ``CLERK_WEBHOOK_MAX_BYTES``; refused before any verification work."""

    payload: Mapping[str, Any] = {"error": "payload_too_large"}


class WebhookInProgress(_JSONError, Conflict):
    """409: another worker is processing this delivery right now; Svix retries later and then gets a 2xx."""

    payload: Mapping[str, Any] = {"error": "webhook_in_progress"}

    def get_headers(self, environ: Any = None, scope: Any = None) -> list[tuple[str, str]]:
        return [*super().get_headers(environ, scope), ("Retry-After", "5")]


class WebhookStoreUnavailable(_JSONError, ServiceUnavailable):
    """503: the replay store (Redis) is down; handlers do not run unguarded, Svix retries later."""

    payload: Mapping[str, Any] = {"error": "webhook_store_unavailable"}

    def get_headers(self, environ: Any = None, scope: Any = None) -> list[tuple[str, str]]:
        return [*super().get_headers(environ, scope), ("Retry-After", "30")]


class WebhookFailed(_JSONError, InternalServerError):
    """500 with a generic body: the endpoint is misconfigured or a handler raised (details go to the log)."""

    payload: Mapping[str, Any] = {"error": "internal_error"}


class _Verifier:
    """``svix.Webhook`` for one secret, created on first use: importing svix costs a noticeable fraction of a second."""

    def __init__(self, secret: Secret) -> None:
        self._secret = secret
        self._webhook: Any = None
        self._lock = threading.Lock()

    def verify(self, body: bytes, headers: dict[str, str]) -> str | None:
        """None when the signature and timestamp are good, else svix's reason (for the log only)."""
        from svix.webhooks import Webhook, WebhookVerificationError

        if self._webhook is None:
            with self._lock:
                self._webhook = self._webhook or Webhook(self._secret.reveal())
        try:
            # svix 2.x returns None here; the caller parses the body itself.
            self._webhook.verify(body, headers)
        except WebhookVerificationError as exc:
            return str(exc) or "verification failed"
        except ValueError:
            # svix raises bare ValueErrors for malformed signature lists, bad base64 and non-UTF-8 bodies.
            return "malformed signature header or body"
        return None


class WebhookState:
    """One app's webhook settings, verifier and replay store (in ``ClerkState.webhooks``)."""

    def __init__(self, settings: ClerkSettings) -> None:
        self.secret = settings.webhook_secret
        self.max_bytes = settings.webhook_max_bytes
        self.replay_ttl = settings.webhook_replay_ttl
        #: How long a delivery's claim holds while its handlers run; a crashed worker's claim expires after this.
        self.processing_ttl = settings.webhook_processing_ttl
        self.rate_limit = settings.webhook_rate_limit
        self.verifier = _Verifier(self.secret) if self.secret else None
        self.store: TTLStore = store_from_uri(
            settings.webhook_store_uri, prefix=settings.store_key_prefix, purpose="webhook replay store"
        )
        if self.secret and isinstance(self.store, RedisStore):
            _warn_if_not_persistent(self.store, settings.webhook_store_uri)
        # Svix sends one message id to every endpoint subscribed to it: namespacing claims by the endpoint's
        # secret keeps two apps sharing a Redis from swallowing each other's deliveries.
        digest = hashlib.sha256((reveal(self.secret) or "").encode()).hexdigest()[:16]
        self.namespace = f"webhook:{digest}:"
        #: The extension's own handlers by event type (cache invalidation): they run on every verified delivery,
        #: replays included (they are idempotent), before any claim and before the app's handlers.
        self.before_handlers: dict[str, list[Callable[[WebhookEvent], None]]] = {}


def _warn_if_not_persistent(store: RedisStore, uri: Secret) -> None:
    """Warn once per store URI when a Redis restart would forget every delivery id (replays would run again)."""
    key = namespace(uri.reveal())  # a digest: the URI may carry a password
    with _persistence_lock:
        if key in _persistence_checked:
            return
        _persistence_checked.add(key)
    problem = store.persistence_problem()
    if problem:
        logger.warning(
            "webhook replay store: %s, and a redelivered webhook would run its handlers again. Fix: turn on "
            "persistence on that Redis (appendonly yes, or save 60 1000), or make handlers idempotent "
            "(docs/webhooks.md).",
            problem,
        )


def _reject(reason: str, error: Exception) -> Exception:
    webhook_rejected.send(current_app._get_current_object(), reason=reason)  # type: ignore[attr-defined]
    return error


def _read_body(limit: int, req: Request | None = None) -> bytes:
    """The body, at most ``limit`` bytes, also when it comes chunked (no Content-Length to check up front)."""
    req = req if req is not None else request
    app_max = current_app.config.get("MAX_CONTENT_LENGTH")
    limit = limit if app_max is None else min(limit, app_max)
    # werkzeug stops a bounded read at the bound without complaint: read one byte more to see an oversize body.
    req.max_content_length = limit + 1
    try:
        body = req.get_data(cache=True)
    except RequestEntityTooLarge:
        raise _reject("too_large", WebhookTooLarge()) from None
    if len(body) > limit:
        raise _reject("too_large", WebhookTooLarge())
    return body


def _parse_event(body: bytes, headers: dict[str, str]) -> WebhookEvent:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        payload = None
    if not isinstance(payload, dict):
        raise _reject("invalid_payload", WebhookRejected("invalid_payload"))
    event_type, data = payload.get("type"), payload.get("data", {})
    if not isinstance(event_type, str) or not event_type or not isinstance(data, dict):
        raise _reject("invalid_payload", WebhookRejected("invalid_payload"))
    return WebhookEvent(
        id=headers["svix-id"],
        type=event_type,
        data=data,
        timestamp=datetime.fromtimestamp(int(float(headers["svix-timestamp"])), tz=timezone.utc),
        payload=payload,
        raw=body,
    )


#: The body limit of :func:`verify_webhook` on an app without the extension (``CLERK_WEBHOOK_MAX_BYTES``'s default).
_DEFAULT_MAX_BYTES = 1_048_576


def verify_webhook(request: Request | None = None, *, signing_secret: str | None = None) -> WebhookEvent:
    """Clerk's ``verifyWebhook(request, {signingSecret})``: the verified :class:`WebhookEvent` of a Svix-signed
    request (the current one by default), for a view of your own instead of the ``clerk.webhooks`` blueprint.

    The secret is ``signing_secret``, else the app's ``CLERK_WEBHOOK_SIGNING_SECRET`` (or its alias
    ``CLERK_WEBHOOK_SECRET``), else that environment variable. Missing headers, a bad signature or timestamp
    and a non-object payload raise :class:`WebhookRejected` (400); a body over ``CLERK_WEBHOOK_MAX_BYTES``
    :class:`WebhookTooLarge` (413); no secret :class:`WebhookFailed` (500, logged). Unlike the blueprint it
    keeps no record of delivery ids: a replayed delivery verifies again, as with Clerk's function.
    """
    req = request if request is not None else flask.request
    state = current_app.extensions.get(EXTENSION_KEY)
    webhooks = getattr(state, "webhooks", None)
    secret = signing_secret or reveal(webhooks.secret if webhooks is not None else None)
    if not secret:
        secret = os.environ.get("CLERK_WEBHOOK_SIGNING_SECRET") or os.environ.get("CLERK_WEBHOOK_SECRET")
    if not secret:
        logger.error("verify_webhook: no signing secret. Fix: set CLERK_WEBHOOK_SIGNING_SECRET (whsec_...)")
        raise _reject("not_configured", WebhookFailed())
    max_bytes = webhooks.max_bytes if webhooks is not None else _DEFAULT_MAX_BYTES
    if req.content_length is not None and req.content_length > max_bytes:
        raise _reject("too_large", WebhookTooLarge())
    headers = {name: req.headers.get(name, "").strip() for name in SVIX_HEADERS}
    if not all(headers.values()):
        raise _reject("missing_headers", WebhookRejected("missing_svix_headers"))
    body = _read_body(max_bytes, req)
    verifier = webhooks.verifier if webhooks is not None and signing_secret is None else None
    problem = (verifier or _Verifier(Secret(secret))).verify(body, headers)
    if problem is not None:
        logger.info("webhook refused: %s (svix-id %s)", log_safe(problem), log_safe(headers["svix-id"][:64]))
        raise _reject("invalid_signature", WebhookRejected())
    return _parse_event(body, headers)


class WebhookBlueprint(Blueprint):
    """The webhook endpoint plus its handler registry; ``ClerkSecurity`` creates one as ``clerk.webhooks``.

    ``app.register_blueprint(clerk.webhooks, url_prefix="/hooks/clerk")`` mounts it elsewhere (the prefix is
    the whole path). The endpoint is rate limited per client address by ``CLERK_WEBHOOK_RATE_LIMIT``.
    """

    def __init__(
        self,
        limiter: Limiter | None = None,
        *,
        name: str = "clerk_webhooks",
        url_prefix: str = "/api/webhooks/clerk",
    ) -> None:
        super().__init__(name, __name__, url_prefix=url_prefix)
        self._handlers: dict[str, list[WebhookHandler]] = {}

        def receive() -> tuple[dict[str, str], int]:
            return self._receive()

        view: Callable[..., Any] = receive
        if limiter is not None:
            from .ratelimit import client_address_key

            view = limiter.limit(_webhook_rate_limit, key_func=client_address_key)(view)
        self.add_url_rule("", "receive", mark_public(view), methods=["POST"])
        self.record(self._check_configured)

    def on(self, event_type: str) -> Callable[[H], H]:
        """Register a handler for ``event_type`` (``"user.created"``) or ``"*"`` for every event.

        Handlers run in registration order, type-specific ones before ``"*"``; async handlers are supported.
        A handler that raises makes the delivery answer 500, so Svix retries it.
        """
        if not isinstance(event_type, str) or not event_type:
            raise TypeError(f"webhooks.on() takes an event type such as 'user.created' or '*', got {event_type!r}")

        def register(handler: H) -> H:
            self._handlers.setdefault(event_type, []).append(handler)
            return handler

        return register

    def handlers_for(self, event_type: str) -> list[WebhookHandler]:
        return [*self._handlers.get(event_type, ()), *self._handlers.get("*", ())]

    @staticmethod
    def _check_configured(setup: BlueprintSetupState) -> None:
        warn_if_unconfigured(cast(Flask, setup.app))

    def _receive(self) -> tuple[dict[str, str], int]:
        state = get_state().webhooks
        if state is None or state.verifier is None:
            logger.error(
                "webhook delivery refused: CLERK_WEBHOOK_SIGNING_SECRET (or its alias CLERK_WEBHOOK_SECRET) is not set"
            )
            raise _reject("not_configured", WebhookFailed())
        if request.content_length is not None and request.content_length > state.max_bytes:
            raise _reject("too_large", WebhookTooLarge())
        headers = {name: request.headers.get(name, "") for name in SVIX_HEADERS}
        if not all(headers.values()):
            raise _reject("missing_headers", WebhookRejected("missing_svix_headers"))
        body = _read_body(state.max_bytes)
        problem = state.verifier.verify(body, headers)
        if problem is not None:
            logger.info("webhook refused: %s (svix-id %s)", log_safe(problem), log_safe(headers["svix-id"][:64]))
            raise _reject("invalid_signature", WebhookRejected())
        event = _parse_event(body, headers)
        for before in state.before_handlers.get(event.type, ()):
            try:
                before(event)
            except StoreError as exc:  # the store's circuit breaker logs the outage once, not per delivery
                logger.debug("webhook %s not processed: cache store unavailable (%s)", log_safe(event.id), exc)
                raise WebhookStoreUnavailable() from None
        handlers = self.handlers_for(event.type)
        if not handlers:
            return {"status": "ignored"}, 200
        return _dispatch(state, event, handlers)


def _dispatch(state: WebhookState, event: WebhookEvent, handlers: list[WebhookHandler]) -> tuple[dict[str, str], int]:
    """Claim the svix-id atomically, run the handlers, then remember it (or release it when a handler fails)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    key = state.namespace + event.id
    # A claim of our own (never another worker's) is what a failed handler releases.
    claim = f"{_PROCESSING}:{secrets.token_hex(8)}"
    try:
        claimed = state.store.add(key, claim, state.processing_ttl)
        status = None if claimed else state.store.get(key)
    except StoreError as exc:  # the store's circuit breaker logs the outage once, not per delivery
        logger.debug("webhook %s not processed: replay store unavailable (%s)", log_safe(event.id), exc)
        raise WebhookStoreUnavailable() from None
    if not claimed:
        if status == _DONE:
            webhook_replayed.send(app, event_id=event.id)
            return {"status": "duplicate"}, 200
        raise WebhookInProgress()
    webhook_received.send(app, event_id=event.id, event_type=event.type)
    try:
        for handler in handlers:
            current_app.ensure_sync(handler)(event)
    except Exception:
        logger.exception(
            "webhook handler failed for %s (%s); Svix will retry", log_safe(event.type), log_safe(event.id)
        )
        try:
            state.store.delete_if(key, claim)
        except StoreError as exc:
            logger.error(
                "could not release webhook claim %s (%s); it expires in %.0f s",
                log_safe(event.id),
                exc,
                state.processing_ttl,
            )
        raise WebhookFailed() from None
    try:
        state.store.set(key, _DONE, state.replay_ttl)
    except StoreError as exc:
        logger.error("webhook %s processed but not remembered (%s): a replay may run it again", log_safe(event.id), exc)
    return {"status": "processed"}, 200


def _webhook_rate_limit() -> str:
    """The app's ``CLERK_WEBHOOK_RATE_LIMIT`` at request time ('' turns the limit off)."""
    state = get_state().webhooks
    return state.rate_limit if state is not None else ""


def warn_if_unconfigured(app: Flask) -> None:
    """Warn once the blueprint is on an initialised app whose ``CLERK_WEBHOOK_SIGNING_SECRET`` is missing."""
    state = app.extensions.get(EXTENSION_KEY)
    if state is not None and getattr(state, "webhooks", None) is not None and state.webhooks.verifier is None:
        logger.warning(
            "clerk.webhooks is registered on %r but CLERK_WEBHOOK_SIGNING_SECRET is not set: every delivery will get a "
            "500. Fix: set it to the endpoint's signing secret (whsec_...) from the Clerk Dashboard.",
            app.name,
        )
