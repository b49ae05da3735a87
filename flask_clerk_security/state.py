"""Where state lives: per app in ``app.extensions["clerk_security"]``, per request in the request's WSGI environ.

Per-request data (the request's :class:`Auth`, Clerk's page state) is kept in ``request.environ``, never on
``flask.g``: ``g`` belongs to the app context, which outlives a request when an app pushes one at import time,
so one user's auth (and handshake ``Set-Cookie``) would answer the next request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from flask import Flask, Request, current_app, has_request_context, request
from werkzeug.local import LocalProxy

if TYPE_CHECKING:
    from .auth import Auth
    from .authenticate import RequestAuthenticator
    from .machine import MachineVerifier
    from .routes import RouteMatcher
    from .settings import ClerkSettings
    from .users import UserService
    from .webhooks import WebhookState

F = TypeVar("F", bound=Callable[..., Any])
EXTENSION_KEY = "clerk_security"
#: ``request.environ`` keys of this request's :class:`Auth` and Clerk page state (a private namespace).
AUTH_KEY = "flask_clerk_security.auth"
PAGE_STATE_KEY = "flask_clerk_security.page_state"
#: View attributes: opted out of the default-deny protection; the token types ``require()`` accepts.
PUBLIC_ATTR = "_clerk_public"
ACCEPTS_ATTR = "_clerk_accepts_token"
#: On a ``require()`` wrapper: the options of each ``require(...)`` it carries, innermost first (for ``clerk routes``).
REQUIREMENTS_ATTR = "_clerk_requirements"
#: On a function ``require()`` wrapped (and what it wraps): the wrappers, to spot ``require`` above ``@app.route``.
WRAPPERS_ATTR = "_clerk_require_wrappers"


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
    #: ``current_user``, ``clerk.backend`` and ``get_token()`` (set by the extension).
    users: UserService | None = None
    #: Authenticates a request (for the token types its endpoint accepts) and stores the answer in the request.
    authenticate: Callable[[Request, ClerkState], Auth] | None = None
    #: The ``CLERK_*`` keys of ``app.config`` as ``init_app`` read them; compared on the first request, then dropped.
    config_at_init: dict[str, Any] | None = None


def get_state(app: Flask | None = None) -> ClerkState:
    """The extension state of ``app`` (default: the current app); fails loudly when init_app was not called."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        return cast(ClerkState, app.extensions[EXTENSION_KEY])
    except KeyError:
        raise RuntimeError(
            "ClerkSecurity is not set up on this app: call ClerkSecurity(app) or clerk.init_app(app) first."
        ) from None


def mark_public(view: F) -> F:
    """Opt ``view`` out of the default-deny protection (what ``ClerkSecurity.public`` does)."""
    setattr(view, PUBLIC_ATTR, True)
    return view


def get_auth(*, treat_pending_as_signed_out: bool | None = None) -> Auth:
    """The :class:`Auth` of the current request, computed on first use and kept in the request's environ.

    ``treat_pending_as_signed_out`` overrides ``CLERK_TREAT_PENDING_AS_SIGNED_OUT`` for this call (Clerk's
    ``auth({treatPendingAsSignedOut})``): False signs a pending session in, True signs it out.
    """
    if not has_request_context():
        raise RuntimeError("get_auth() and current_auth need an active request (app.test_request_context()).")
    req = request._get_current_object()  # type: ignore[attr-defined]
    auth: Auth | None = req.environ.get(AUTH_KEY)
    if auth is None:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        state = get_state(app)
        assert state.authenticate is not None  # set by ClerkSecurity.init_app
        auth = state.authenticate(req, state)
    if treat_pending_as_signed_out is not None:
        return auth.treating_pending(treat_pending_as_signed_out)
    return auth


current_auth: Auth = cast("Auth", LocalProxy(get_auth))
