"""What protects an endpoint: ``require()``/``protect()`` requirements, ``public`` marks, accepted token types.

A mark sits on a Blueprint, a View class, a view function or a View class's method. An endpoint's marks are
read from all of them, outermost first (every blueprint the request went through, nested ones too, then the
view), so a mark covers endpoints added after it and blueprints registered under several names. The nearest
``public`` opts out of the default deny and of the requirements of the levels around it; requirements at its
own level and inside it still apply. A View class's ``public`` mark covers that class only, not its subclasses;
its requirements are inherited. Requirements of functions and methods are checked by their ``require()``
wrapper; those of blueprints and View classes before the view runs.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from types import CodeType
from typing import Any, NamedTuple

from flask import Blueprint, Flask, Request, current_app, redirect, request
from flask.views import View
from werkzeug.exceptions import HTTPException

from . import signals
from .auth import Auth, reverification_config
from .authenticate import CSRF_REASON, is_page_request
from .config_warnings import warn_once
from .errors import AuthenticationRequired, AuthUnavailable, CSRFRejected, PermissionDenied, ReverificationRequired
from .oauth_resource import protected_resource_metadata_url
from .reasons import UNAVAILABLE as UNAVAILABLE_REASONS
from .reasons import AuthErrorReason
from .redirects import sign_in_url
from .state import (
    ACCEPTS_ATTR,
    PUBLIC_ATTR,
    REQUIREMENTS_ATTR,
    WRAPPERS_ATTR,
    get_state,
)
from .token_types import (
    OAUTH_TOKEN,
    SESSION_TOKEN,
    AcceptsToken,
    accepts_machine_tokens,
    is_accepted,
    parse_accepts_token,
)

logger = logging.getLogger("flask_clerk_security")

_AUTHORIZATION = ("permission", "role", "feature", "plan")


@dataclass(frozen=True)
class Requirement:
    """One ``require(...)``/``protect(...)``: validated once, checked against a request's :class:`Auth`."""

    authorization: Mapping[str, str]
    scopes: tuple[str, ...] | None
    reverification: str | Mapping[str, Any] | None
    accepts: AcceptsToken | None
    #: The options as given (``flask clerk routes`` shows them).
    options: Mapping[str, Any]
    #: Clerk's ``treatPendingAsSignedOut`` for this route (None: ``CLERK_TREAT_PENDING_AS_SIGNED_OUT``).
    treat_pending_as_signed_out: bool | None = None
    #: Where signed-out / unauthorized page navigations go instead of the sign-in redirect / 403 (Clerk's
    #: ``auth.protect({unauthenticatedUrl, unauthorizedUrl})``).
    unauthenticated_url: str | None = None
    unauthorized_url: str | None = None

    @classmethod
    def build(
        cls,
        caller: str,
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
    ) -> Requirement:
        """Validate the options of ``caller`` (``require``/``protect``); misuse raises TypeError/ValueError."""
        authorization = {
            name: value
            for name, value in zip(_AUTHORIZATION, (permission, role, feature, plan), strict=True)
            if value is not None
        }
        for name, value in authorization.items():
            if not isinstance(value, str) or not value:
                raise TypeError(f"{caller}({name}=...) takes a non-empty string, got {value!r}")
        if reverification is not None and reverification_config(reverification) is None:
            raise ValueError(
                f"{caller}(reverification={reverification!r}): use 'strict_mfa', 'strict', 'moderate', 'lax' "
                "or {'level': 'first_factor'|'second_factor'|'multi_factor', 'after_minutes': int > 0}"
            )
        accepts = _parse_accepts(caller, accepts_token, scopes)
        if treat_pending_as_signed_out is not None and not isinstance(treat_pending_as_signed_out, bool):
            raise TypeError(f"{caller}(treat_pending_as_signed_out=...) takes True or False")
        urls = {"unauthenticated_url": unauthenticated_url, "unauthorized_url": unauthorized_url}
        for name, url in urls.items():
            if url is not None and not (isinstance(url, str) and url.startswith(("/", "https://", "http://"))):
                raise TypeError(f"{caller}({name}=...) takes a path ('/sign-in') or an http(s) URL, got {url!r}")
        given = {
            "reverification": reverification,
            "accepts_token": accepts_token,
            "scopes": scopes,
            "treat_pending_as_signed_out": treat_pending_as_signed_out,
            **urls,
        }
        return cls(
            authorization=authorization,
            scopes=tuple(scopes) if scopes is not None else None,
            reverification=reverification,
            accepts=accepts,
            options={**authorization, **{name: value for name, value in given.items() if value is not None}},
            treat_pending_as_signed_out=treat_pending_as_signed_out,
            unauthenticated_url=unauthenticated_url,
            unauthorized_url=unauthorized_url,
        )

    def check(self, auth: Auth) -> None:
        """Raise what the request gets when ``auth`` does not meet this requirement (and send its signal)."""
        if self.treat_pending_as_signed_out is not None:
            auth = auth.treating_pending(self.treat_pending_as_signed_out)
        if not auth.is_authenticated:
            raise signed_out_error(auth, self.unauthenticated_url)
        if self.accepts is not None and not is_accepted(auth.token_type, self.accepts):
            raise signed_out_error(Auth.signed_out(AuthErrorReason.TOKEN_TYPE_MISMATCH, auth.token_type))
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        if self.authorization and not auth.has(**self.authorization):
            signals.authorization_denied.send(
                app, user_id=auth.user_id, session_id=auth.session_id, requirement=dict(self.authorization)
            )
            if self.unauthorized_url and auth.token_type == SESSION_TOKEN and is_page_request(request):
                raise HTTPException(response=redirect(self.unauthorized_url, code=307))
            raise PermissionDenied()
        if self.scopes is not None and not set(self.scopes) <= set(auth.scopes or ()):
            signals.authorization_denied.send(app, user_id=auth.subject, requirement={"scopes": list(self.scopes)})
            raise PermissionDenied()
        if self.reverification is not None and not auth.has(reverification=self.reverification):
            level = (
                self.reverification
                if isinstance(self.reverification, str)
                else reverification_config(self.reverification)
            )
            signals.reverification_required.send(app, user_id=auth.user_id, session_id=auth.session_id, level=level)
            raise ReverificationRequired(level)


def _parse_accepts(caller: str, accepts_token: Any, scopes: Any) -> AcceptsToken | None:
    """Validate ``accepts_token=`` and ``scopes=`` at decoration time."""
    accepts = None
    if accepts_token is not None:
        try:
            accepts = parse_accepts_token(accepts_token)
        except ValueError as exc:
            raise ValueError(f"{caller}(accepts_token={accepts_token!r}): {exc}") from None
    if scopes is not None:
        if isinstance(scopes, str) or not isinstance(scopes, (list, tuple, set, frozenset)):
            raise TypeError(f"{caller}(scopes=...) takes a list of scope names, got {scopes!r}")
        if not scopes or not all(isinstance(scope, str) and scope for scope in scopes):
            raise TypeError(f"{caller}(scopes=...) takes a non-empty list of non-empty strings, got {scopes!r}")
        if accepts is not None and not accepts_machine_tokens(accepts):
            raise ValueError(
                f"{caller}(scopes=...) needs accepts_token to include a machine token type: sessions have no scopes"
            )
    return accepts


def is_markable(target: Any) -> bool:
    """Whether ``require``/``public`` mark ``target`` itself (a Blueprint or a View class) instead of wrapping it."""
    return isinstance(target, Blueprint) or (inspect.isclass(target) and issubclass(target, View))


def check_view_callable(decorator: str, target: Any) -> None:
    """Refuse, at decoration time, what ``decorator`` cannot protect (an instance, a module, a plain class...)."""
    if inspect.isroutine(target) or isinstance(target, functools.partial):
        return
    raise TypeError(
        f"{decorator} protects a view function, a flask.views.View class (MethodView) or a Blueprint, "
        f"not {type(target).__name__} {target!r}"
    )


def mark_required(target: Any, requirement: Requirement) -> None:
    """Record ``requirement`` on a Blueprint or View class (checked before its views run)."""
    setattr(target, REQUIREMENTS_ATTR, (*getattr(target, REQUIREMENTS_ATTR, ()), requirement))
    if requirement.accepts is not None:
        setattr(target, ACCEPTS_ATTR, requirement.accepts)


def mark_wrapped(func: Any, wrapper: Any) -> None:
    """Record on ``func`` (and what it wraps) that ``require()`` wrapped it in ``wrapper``."""
    while func is not None:
        try:
            setattr(func, WRAPPERS_ATTR, (*getattr(func, WRAPPERS_ATTR, ()), wrapper))
        except AttributeError:  # a bound method takes no attributes
            return
        func = getattr(func, "__wrapped__", None)


#: (app id, endpoint) pairs whose view was already looked at by :func:`_warn_if_require_is_above_route`.
_looked_at: set[tuple[int, str]] = set()


def _warn_if_require_is_above_route(app: Flask, endpoint: str, view: Any) -> None:
    """Warn when the registered view was wrapped by ``require()`` but no wrapper of it is served by ``app``:
    ``@clerk.require`` sits above ``@app.route``, which registered the undecorated function, so the
    requirement is never checked (Flask-Login's ``login_required`` has the same trap)."""
    if (id(app), endpoint) in _looked_at:
        return
    _looked_at.add((id(app), endpoint))
    wrappers = {id(wrapper) for wrapper in getattr(view, WRAPPERS_ATTR, ())}
    for function in app.view_functions.values():
        served: Any = function
        while served is not None:
            if id(served) in wrappers:
                return
            served = getattr(served, "__wrapped__", None)
    warn_once(
        f"require-above-route:{id(app)}:{endpoint}",
        "view %r: @clerk.require(...) is above the route decorator, so the route serves the function without it "
        "and its requirements are NOT checked: put @clerk.require(...) below @app.route",
        endpoint,
    )


class Policy(NamedTuple):
    """How one request to an endpoint is protected."""

    #: Out of the default deny (``public`` mark, nearest wins); ``CLERK_PUBLIC_ROUTES`` is decided apart.
    public: bool
    #: Blueprint and View-class requirements, checked before the view.
    checks: tuple[Requirement, ...]
    #: The innermost ``accepts_token`` (None: the app's ``CLERK_ACCEPTS_TOKEN``).
    accepts: AcceptsToken | None
    #: Every requirement the endpoint carries for this method, outermost first (wrappers' included).
    requirements: tuple[Requirement, ...]


def _levels(app: Flask, endpoint: str, view: Any, method: str | None) -> list[tuple[Any, bool]]:
    """The marked objects of an endpoint, outermost first, each with whether its requirements are checked
    before the view (blueprints and View classes) rather than by a ``require()`` wrapper."""
    levels: list[tuple[Any, bool]] = []
    if "." in endpoint:
        names = endpoint.rpartition(".")[0].split(".")
        levels.extend((app.blueprints.get(".".join(names[: i + 1])), True) for i in range(len(names)))
    levels.append((view, False))
    view_class = getattr(view, "view_class", None)
    if view_class is not None:
        levels.append((view_class, True))
        levels.append((getattr(view_class, "dispatch_request", None), False))  # a plain View's one handler
        if method is not None:
            handler = getattr(view_class, method.lower(), None)
            if handler is None and method == "HEAD":  # as MethodView.dispatch_request
                handler = getattr(view_class, "get", None)
            levels.append((handler, False))
    return levels


def _marked_public(target: Any) -> bool:
    """Whether ``target`` carries a ``public`` mark. A class's own mark only: a subclass that inherited it could add
    methods its base never had (``delete``), and they would be public unseen. Requirements are inherited."""
    if inspect.isclass(target):
        return bool(vars(target).get(PUBLIC_ATTR, False))
    return bool(getattr(target, PUBLIC_ATTR, False))


def policy_of(app: Flask, endpoint: str, view: Any, method: str | None) -> Policy:
    """The protection of ``endpoint`` for a request with ``method`` (None: the endpoint's own levels only)."""
    if hasattr(view, WRAPPERS_ATTR):
        _warn_if_require_is_above_route(app, endpoint, view)
    if "." not in endpoint and getattr(view, "view_class", None) is None:  # a plain view function: the hot path
        own = getattr(view, REQUIREMENTS_ATTR, ())
        return Policy(getattr(view, PUBLIC_ATTR, False), (), getattr(view, ACCEPTS_ATTR, None), own)
    public = False
    checks: tuple[Requirement, ...] = ()
    requirements: tuple[Requirement, ...] = ()
    accepts = None
    for target, before_view in _levels(app, endpoint, view, method):
        if target is None:
            continue
        if _marked_public(target):
            public, checks, requirements = True, (), ()
        own = getattr(target, REQUIREMENTS_ATTR, ())
        requirements += own
        if before_view:
            checks += own
        accepts = getattr(target, ACCEPTS_ATTR, accepts)
    return Policy(public, checks, accepts, requirements)


def request_accepts(app: Flask, req: Request) -> AcceptsToken:
    """The token types the request's endpoint accepts (the app's ``CLERK_ACCEPTS_TOKEN`` unless it says)."""
    endpoint = req.endpoint
    accepts = None
    if endpoint:
        accepts = policy_of(app, endpoint, app.view_functions.get(endpoint), req.method).accepts
    return accepts if accepts is not None else get_state(app).settings.accepts_token


def signed_out_error(auth: Auth, unauthenticated_url: str | None = None) -> HTTPException:
    """401 for APIs (naming the protected resource metadata where OAuth tokens are accepted), a sign-in redirect
    for pages (``unauthenticated_url``, else CLERK_SIGN_IN_URL or the Account Portal; its ``/tasks`` page for a
    pending session, as Clerk's ``redirectToSignIn``), 403 for CSRF, 503 when keys cannot be loaded."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    req = request._get_current_object()  # type: ignore[attr-defined]
    if auth.reason == CSRF_REASON:
        signals.csrf_rejected.send(app, origin=req.headers.get("Origin"), reason=auth.reason)
        return CSRFRejected()
    signals.authentication_failed.send(app, reason=auth.reason)
    if auth.reason in UNAVAILABLE_REASONS:
        # Where it comes from (the key source, the machine-token verifier) logs each outage once, not per request.
        logger.debug("authentication unavailable: %s", auth.reason)
        return AuthUnavailable()
    accepts = request_accepts(app, req)
    if is_page_request(req) and is_accepted(SESSION_TOKEN, accepts):
        pending = auth.session_status == "pending"
        target = unauthenticated_url or sign_in_url(get_state(app).settings, req, pending=pending)
        if target:
            return HTTPException(response=redirect(target, code=307))
    metadata = protected_resource_metadata_url(req) if is_accepted(OAUTH_TOKEN, accepts) else None
    return AuthenticationRequired(auth.reason, resource_metadata=metadata, message=auth.message)


def view_never_runs(req: Request, view: Any) -> bool:
    """Whether an OPTIONS request is answered without the view's code: Flask's automatic OPTIONS answer, or
    flask-cors's ``@cross_origin`` answering it (its ``automatic_options``)."""
    if getattr(req.url_rule, "provide_automatic_options", False):
        return True
    code = _cross_origin_code()
    if code is None or getattr(view, "__code__", None) is not code:
        return False
    from flask_cors.core import get_cors_options

    options = inspect.getclosurevars(view).nonlocals.get("_options")
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if not isinstance(options, dict):
        return False
    # A dict up to flask-cors 6.0.2, an object with attributes from 6.0.5; anything unreadable: protected.
    computed: Any = get_cors_options(app, options)
    automatic = computed.get("automatic_options") if isinstance(computed, Mapping) else None
    return bool(automatic if automatic is not None else getattr(computed, "automatic_options", False))


@functools.cache
def _cross_origin_code() -> CodeType | None:
    """The code object of flask-cors's ``@cross_origin`` wrapper (None without flask-cors)."""
    try:
        from flask_cors import cross_origin
    except ImportError:
        return None
    code: CodeType = cross_origin()(lambda: None).__code__
    return code
