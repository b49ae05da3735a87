"""Security headers: one Talisman per app and a Content-Security-Policy that lets Clerk's frontend work.

The policy is built once at ``init_app`` from the publishable key (its Frontend API host), ``CLERK_PROXY_URL``
or ``CLERK_DOMAIN``, Clerk's documented hosts and the user's ``CLERK_CSP_DIRECTIVES``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import flask
import flask_talisman.talisman as talisman_module
from flask import Flask, Response
from flask_talisman import Talisman
from werkzeug.datastructures import Headers

from .cookies import request_url
from .errors import ConfigurationError
from .header_options import KEYWORDS as KEYWORDS
from .header_options import KNOWN_DIRECTIVES as KNOWN_DIRECTIVES
from .header_options import check_talisman_options as check_talisman_options
from .header_options import parse_csp_directives as parse_csp_directives
from .private_hooks import attribute_problems, hook_problems, warn_fallback
from .secret_values import reveal

if TYPE_CHECKING:
    from .settings import ClerkSettings

#: Development and staging Frontend API hosts; Clerk ignores ``domain`` for them (``isDevOrStagingUrl``).
_DEV_SUFFIXES = (
    ".lcl.dev", ".lclstage.dev", ".stg.dev", ".stgstage.dev", ".dev.lclclerk.com", ".stg.lclclerk.com",
    ".accounts.lclclerk.com", ".accountsstage.dev", ".accounts.dev",
)  # fmt: skip

CLERK_CHALLENGES = "https://challenges.cloudflare.com"
CLERK_PROTECT = "https://*.protect.clerk.com"
CLERK_IMAGES = "https://img.clerk.com"
#: Hosts Clerk's own CSP helper (``@clerk/nextjs`` ``content-security-policy.ts``, ``DEFAULT_DIRECTIVES``) allows
#: beyond the Frontend API: its telemetry, Stripe (Clerk Billing's payment elements) and Google Maps.
CLERK_TELEMETRY = ("https://clerk-telemetry.com", "https://*.clerk-telemetry.com")
STRIPE_API = "https://api.stripe.com"
STRIPE_SCRIPTS = ("https://*.js.stripe.com", "https://js.stripe.com")
STRIPE_HOOKS = "https://hooks.stripe.com"
GOOGLE_MAPS = "https://maps.googleapis.com"
#: The endpoint name ``report-to`` and ``Reporting-Endpoints`` use, as Clerk's helper names it.
REPORT_TO_GROUP = "csp-endpoint"


def frontend_api_source(settings: ClerkSettings) -> str | None:
    """Where the browser loads Clerk from: the proxy, the satellite's ``clerk.`` host, or the key's host.

    ``None`` when nothing is configured or the proxy is same-origin (a path, covered by ``'self'``).
    Mirrors ``clerkJsScriptUrl`` in Clerk's ``@clerk/shared``.
    """
    if settings.proxy_url:
        if settings.proxy_url.startswith("/"):
            return None
        parts = urlsplit(settings.proxy_url)
        return f"{parts.scheme}://{parts.netloc}"
    frontend_api = settings.frontend_api
    if settings.domain and not (frontend_api or "").endswith(_DEV_SUFFIXES):
        host = settings.domain if settings.domain.startswith("clerk.") else f"clerk.{settings.domain}"
        return f"https://{host}"
    return f"https://{frontend_api}" if frontend_api else None


def build_csp(settings: ClerkSettings) -> dict[str, list[str]]:
    """Clerk's documented directives plus the hardening defaults, merged with ``CLERK_CSP_DIRECTIVES``."""
    fapi = [source] if (source := frontend_api_source(settings)) else []
    script_src = ["'self'", *fapi, CLERK_CHALLENGES, CLERK_PROTECT, *STRIPE_SCRIPTS, GOOGLE_MAPS]
    if settings.csp_strict:
        script_src.insert(0, "'strict-dynamic'")
    policy: dict[str, list[str]] = {
        "default-src": ["'self'"],
        "script-src": script_src,
        "connect-src": ["'self'", *fapi, f"{CLERK_PROTECT}:*", *CLERK_TELEMETRY, STRIPE_API, GOOGLE_MAPS],
        "img-src": ["'self'", CLERK_IMAGES],
        "worker-src": ["'self'", "blob:"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "frame-src": ["'self'", CLERK_CHALLENGES, CLERK_PROTECT, *STRIPE_SCRIPTS, STRIPE_HOOKS],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
    }
    if settings.csp_report_to:
        policy["report-to"] = [REPORT_TO_GROUP]
    for directive, sources in settings.csp_directives.items():
        merged = policy.setdefault(directive, [])
        if sources and merged == ["'none'"]:
            merged.clear()  # 'none' next to other sources would be ignored; the user's sources win
        merged.extend(source for source in sources if source not in merged)
    return policy


def render_csp(policy: Mapping[str, Iterable[str]]) -> str:
    """``default-src 'self'; script-src ...``: the header value without the per-request nonce."""
    return "; ".join(" ".join([directive, *sources]) for directive, sources in policy.items())


#: The options Talisman reads per view (its ``_get_local_options``), falling back to the app-wide ones.
VIEW_OPTIONS = frozenset(
    {
        "force_https", "frame_options", "frame_options_allow_from", "content_security_policy",
        "content_security_policy_nonce_in", "permissions_policy", "document_policy", "feature_policy",
    }
)  # fmt: skip

_View = TypeVar("_View", bound=Callable[..., Any])


def security_headers(**options: Any) -> Callable[[_View], _View]:
    """Per-view Talisman options, no app needed: ``@security_headers(frame_options="SAMEORIGIN")``.

    Put it below ``@app.get(...)`` (or ``@bp.get``), like any view decorator. Unknown names raise ``TypeError``
    at decoration time. A ``frame_options`` without its own ``content_security_policy`` also sets the Clerk
    policy's ``frame-ancestors`` to match, since browsers obey the CSP over ``X-Frame-Options``.
    """
    unknown = sorted(set(options) - VIEW_OPTIONS)
    if unknown:
        raise TypeError(f"security_headers() got unknown option(s) {', '.join(unknown)}; use {sorted(VIEW_OPTIONS)}")

    def decorate(view: _View) -> _View:
        view.talisman_view_options = dict(options)  # type: ignore[attr-defined]  # the attribute Talisman reads
        return view

    return decorate


def frame_ancestors(frame_options: str | None, allow_from: str | None) -> list[str] | None:
    """The ``frame-ancestors`` sources that say what ``X-Frame-Options`` says; ``None``: framing allowed anywhere."""
    value = (frame_options or "").upper()
    if value == "DENY":
        return ["'none'"]
    if value == "SAMEORIGIN":
        return ["'self'"]
    if value == "ALLOW-FROM" and allow_from:
        return [allow_from]
    return None


def _with_frame_ancestors(policy: Mapping[str, list[str]], sources: list[str] | None) -> dict[str, list[str]]:
    """``policy`` with ``frame-ancestors`` set to ``sources`` in its place (dropped when ``None``)."""
    framed = {name: sources if name == "frame-ancestors" else list(values) for name, values in policy.items()}
    if sources is None:
        framed.pop("frame-ancestors", None)
    elif "frame-ancestors" not in framed:
        framed["frame-ancestors"] = sources
    return {name: values for name, values in framed.items() if values is not None}


class ClerkTalisman(Talisman):  # type: ignore[misc]  # flask-talisman ships no type hints
    """Talisman, with its per-request work done once: the same headers for a fraction of the cost.

    Talisman resolves each view's options four times per request, re-parses the policy and sets every header
    one by one on every response. All of that depends only on the view (its ``@talisman(...)`` options are set
    before the first request), on whether the request came over HTTPS (HSTS) and on the nonce. So the headers
    of a response without a nonce are rendered by Talisman itself once per endpoint and scheme, then added in
    one pass; a response carrying a nonce goes through Talisman's own path, with the policy parsed once.
    The nonce itself is made when a template first calls ``csp_nonce()``: a response that uses none (a JSON
    API answer, a page without inline scripts) carries none, and costs no random string.
    """

    #: The redirect follows the app (no ``CLERK_FORCE_HTTPS`` given): off while ``app.debug`` or ``app.testing`` is
    #: set, read per request so a config change after ``init_app`` counts.
    follows_app = False
    #: A development instance (``pk_test_``): a plain-HTTP loopback host is served, not redirected.
    serves_loopback = False

    #: The Clerk policy as a mapping, when it is the one sent: a view's ``frame_options`` adjusts its copy.
    clerk_policy: Mapping[str, list[str]] | None = None
    #: ``Reporting-Endpoints`` sent next to the CSP (``CLERK_CSP_REPORT_TO``), else None.
    reporting_endpoints: str | None = None

    def init_app(self, app: Flask, **options: Any) -> None:
        self._view_options: dict[str | None, dict[str, Any]] = {}
        self._policy_parts: dict[tuple[int, tuple[str, ...]], tuple[Any, list[tuple[str, bool]]]] = {}
        self._rendered: dict[tuple[str | None, bool], _RenderedHeaders] = {}
        super().init_app(app, **options)

    def _get_local_options(self) -> dict[str, Any]:
        endpoint = flask.request.endpoint
        options = self._view_options.get(endpoint)
        if options is None:
            options = self._view_options[endpoint] = self._view_options_of(endpoint)
        return options

    def _view_options_of(self, endpoint: str | None) -> dict[str, Any]:
        """Talisman's per-view options (without writing its defaults into the view's own dict, which another
        app's Talisman would then read), with ``frame-ancestors`` following a view's ``frame_options``."""
        view = flask.current_app.view_functions.get(endpoint) if endpoint else None
        own = dict(getattr(view, "talisman_view_options", None) or {})
        if "frame_options" in own and "content_security_policy" not in own and self.clerk_policy is not None:
            sources = frame_ancestors(own["frame_options"], own.get("frame_options_allow_from"))
            own["content_security_policy"] = render_csp(_with_frame_ancestors(self.clerk_policy, sources))
        return {**{name: getattr(self, name) for name in VIEW_OPTIONS}, **own}

    def _force_https(self) -> Response | None:
        """Talisman's redirect of plain-HTTP requests; HTTPS requests (nearly all) return after one look."""
        if self.session_cookie_secure and not self.app.debug:
            self.app.config["SESSION_COOKIE_SECURE"] = True
        request = flask.request
        if self.app.debug or _is_https(request) or not self._get_local_options()["force_https"]:
            return None
        if self.follows_app and (self.app.testing or (self.serves_loopback and _is_loopback(request))):
            return None
        request_url(request)  # Talisman's redirect reads request.url: a Host it cannot rebuild gets 400, not 500
        redirect: Response | None = super()._force_https()
        return redirect

    def _set_response_headers(self, response: Response) -> Response:
        """Talisman's headers: rendered by Talisman once per endpoint and scheme, or per response with a nonce."""
        request = flask.request._get_current_object()  # type: ignore[attr-defined]
        if getattr(request, "csp_nonce", None) is not None:
            super()._set_response_headers(response)
            self._add_reporting_endpoints(response.headers)
            return response
        key = (request.endpoint, _is_https(request))
        rendered = self._rendered.get(key)
        if rendered is None:
            sink = _HeaderSink()
            super()._set_response_headers(sink)
            self._add_reporting_endpoints(sink.headers)
            rendered = self._rendered[key] = _RenderedHeaders(sink.headers)
        rendered.apply(response.headers)
        return response

    def _add_reporting_endpoints(self, headers: Headers) -> None:
        if self.reporting_endpoints is not None:
            _set_reporting_endpoints(headers, self.reporting_endpoints)

    def _make_nonce(self) -> None:
        """Talisman makes a nonce before every request; here :meth:`_get_nonce` makes it when asked."""

    def _get_nonce(self) -> str:
        options = self._get_local_options()
        if not (options["content_security_policy"] and options["content_security_policy_nonce_in"]):
            return ""
        nonce: str | None = getattr(flask.request, "csp_nonce", None)
        if nonce is None:
            nonce = talisman_module.get_random_string(talisman_module.NONCE_LENGTH)
            flask.request.csp_nonce = nonce  # type: ignore[attr-defined]
        return nonce

    def _parse_policy(self, policy: Any) -> str:
        nonce_in = tuple(self._get_local_options()["content_security_policy_nonce_in"] or ())
        key = (id(policy), nonce_in)
        cached = self._policy_parts.get(key)
        if cached is None or cached[0] is not policy:
            cached = self._policy_parts[key] = (policy, _policy_parts(policy, nonce_in))
        nonce = getattr(flask.request, "csp_nonce", None)
        if nonce is None:
            return "; ".join(text for text, _ in cached[1])
        return "; ".join(f"{text} 'nonce-{nonce}'" if wants else text for text, wants in cached[1])


#: The private Talisman methods ClerkTalisman overrides, with the parameters they take (flask-talisman 1.x).
TALISMAN_HOOKS = {
    "_get_local_options": ("self",),
    "_force_https": ("self",),
    "_set_response_headers": ("self", "response"),
    "_make_nonce": ("self",),
    "_get_nonce": ("self",),
    "_parse_policy": ("self", "policy"),
}
#: What ClerkTalisman uses of ``flask_talisman.talisman`` besides the class, to make a nonce as Talisman does.
TALISMAN_MODULE_NAMES = {"get_random_string": ("length",)}


#: The attributes of a Talisman, set by its ``init_app``, that ClerkTalisman reads.
TALISMAN_ATTRIBUTES = ("app", "session_cookie_secure", *sorted(VIEW_OPTIONS))


def talisman_hook_problems() -> list[str]:
    """What ClerkTalisman relies on that this flask-talisman lacks (empty when it can be used).

    The attributes are looked for on a Talisman set up on a throwaway app (about 0.4 ms, once per ``init_app``).
    """
    problems = hook_problems(Talisman, TALISMAN_HOOKS) + hook_problems(talisman_module, TALISMAN_MODULE_NAMES)
    if not isinstance(getattr(talisman_module, "NONCE_LENGTH", None), int):
        problems.append("NONCE_LENGTH is missing")
    return problems + attribute_problems(Talisman(Flask("talisman_probe")), TALISMAN_ATTRIBUTES)


class _HttpsRedirect:
    """A ``force_https`` value for plain Talisman that is true per request as :meth:`ClerkTalisman._force_https`
    decides: off while the app is in testing mode, and off for loopback on a development instance."""

    def __init__(self, app: Flask, serves_loopback: bool) -> None:
        self.app = app
        self.serves_loopback = serves_loopback

    def __bool__(self) -> bool:
        if not flask.has_request_context():
            return True
        request = flask.request
        return not (self.app.testing or (self.serves_loopback and _is_loopback(request)))


def _own_view_options(app: Flask, clerk_policy: Mapping[str, list[str]] | None) -> None:
    """For plain Talisman: give each view carrying ``talisman_view_options`` a copy of its own for ``app``.

    Plain Talisman reads the options from the view function and writes its defaults into them, so one view on
    two apps would carry the first app's policy to the second; and it knows nothing of the Clerk policy's
    ``frame-ancestors`` following a view's ``frame_options``. Registered before Talisman's hooks, this swaps in,
    on the first request to each endpoint, a wrapper of the view with this app's options.
    """
    wrapped: set[str] = set()

    @app.before_request
    def own_options() -> None:
        endpoint = flask.request.endpoint
        if endpoint is None or endpoint in wrapped:
            return
        wrapped.add(endpoint)
        view = app.view_functions.get(endpoint)
        own = getattr(view, "talisman_view_options", None)
        if view is None or own is None:
            return
        options = dict(own)
        if "frame_options" in options and "content_security_policy" not in options and clerk_policy is not None:
            sources = frame_ancestors(options["frame_options"], options.get("frame_options_allow_from"))
            options["content_security_policy"] = render_csp(_with_frame_ancestors(clerk_policy, sources))

        @functools.wraps(view)
        def with_own_options(*args: Any, **kwargs: Any) -> Any:
            return view(*args, **kwargs)

        with_own_options.talisman_view_options = options  # type: ignore[attr-defined]
        app.view_functions[endpoint] = with_own_options


#: A loopback ``Host`` (127.0.0.0/8, ``[::1]``, ``localhost``), with or without a port.
_LOOPBACK_HOST = re.compile(r"(?i:localhost|127(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}|\[::1\])(?::\d{1,5})?")
#: A loopback client address (IPv4, IPv6, or IPv4 mapped into IPv6).
_LOOPBACK_ADDR = re.compile(r"(?i:(?:::ffff:)?127(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}|::1)")


def _is_loopback(request: flask.Request) -> bool:
    """Both ends on this machine: a loopback ``Host`` (the URL typed) and a loopback client address, so a
    ``Host: localhost`` header sent from elsewhere to a development server still gets the redirect."""
    return bool(_LOOPBACK_HOST.fullmatch(request.host) and _LOOPBACK_ADDR.fullmatch(request.remote_addr or ""))


def _set_reporting_endpoints(headers: Headers, value: str) -> None:
    """``Reporting-Endpoints`` where a policy naming the endpoint is sent (``report-to`` needs it)."""
    policy = headers.get("Content-Security-Policy") or headers.get("Content-Security-Policy-Report-Only")
    if policy and f"report-to {REPORT_TO_GROUP}" in policy:
        headers["Reporting-Endpoints"] = value


def _add_reporting_endpoints(value: str, response: Response) -> Response:
    """``after_request`` (plain Talisman, which sends no ``Reporting-Endpoints`` itself)."""
    _set_reporting_endpoints(response.headers, value)
    return response


def _is_https(request: flask.Request) -> bool:
    """Talisman's test for HTTPS (HSTS and the redirect): the WSGI scheme or ``X-Forwarded-Proto``."""
    return request.is_secure or request.environ.get("HTTP_X_FORWARDED_PROTO") == "https"


class _HeaderSink:
    """Stands in for a response while Talisman renders its headers: Talisman only touches ``.headers``."""

    def __init__(self) -> None:
        self.headers = Headers()


#: werkzeug's ``Headers`` keeps its items in a plain list (true since werkzeug 0.x). Appending there items that
#: were validated once, at rendering, saves ``Headers.add`` re-validating every value of every response (about
#: 1 µs per header); without that list, :meth:`_RenderedHeaders.apply` uses the public ``extend``.
HEADERS_KEEP_A_LIST = isinstance(getattr(Headers(), "_list", None), list)


class _RenderedHeaders:
    """One endpoint's security headers as Talisman set them, ready to be added to a response in one pass."""

    def __init__(self, headers: Headers) -> None:
        self.items = list(headers.items())
        self.names = frozenset(name.lower() for name, _ in self.items)

    def apply(self, headers: Headers) -> None:
        """Add the headers; where the view already set one of them, Talisman's rule (replace it) applies."""
        if not self.names.isdisjoint([name.lower() for name, _ in headers]):
            for name, value in self.items:
                headers[name] = value
        elif HEADERS_KEEP_A_LIST:
            headers._list.extend(self.items)  # validated when Talisman set them: skip Headers.add's second check
        else:
            headers.extend(self.items)


def _policy_parts(policy: Any, nonce_in: tuple[str, ...]) -> list[tuple[str, bool]]:
    """Talisman's policy rendering, split into ``(directive text, takes the nonce)`` parts."""
    if isinstance(policy, str):
        sections = [part.strip().split(" ") for part in policy.split(";")]
        policy = {section[0]: " ".join(section[1:]) for section in sections}
    parts = []
    for section, content in policy.items():
        text = content if isinstance(content, str) else " ".join(content)
        parts.append((f"{section} {text}", section in nonce_in))
    return parts


def install_talisman(app: Flask, settings: ClerkSettings) -> tuple[Talisman, str]:
    """A Talisman for ``app`` alone (it keeps state on itself) and the CSP it sends, built once.

    The nonce goes into ``script-src`` in every mode, so templates can always use ``csp_nonce()``.
    HTTPS redirects follow ``CLERK_FORCE_HTTPS`` when it is set; otherwise they are decided per request: off
    while the app runs debug/testing, and off for loopback hosts on a development instance (``pk_test_``).
    """
    clerk_policy = build_csp(settings)
    frame_options = settings.talisman_options.get("frame_options", "DENY")
    if "frame-ancestors" not in settings.csp_directives:  # the user's own frame-ancestors wins
        allow_from = settings.talisman_options.get("frame_options_allow_from")
        clerk_policy = _with_frame_ancestors(clerk_policy, frame_ancestors(frame_options, allow_from))
    policy = render_csp(clerk_policy)
    options: dict[str, Any] = {
        "force_https": True if settings.force_https is None else settings.force_https,
        "frame_options": "DENY",
        "referrer_policy": "strict-origin-when-cross-origin",
        "content_security_policy": policy,
        "content_security_policy_nonce_in": ["script-src"],
        "content_security_policy_report_uri": settings.csp_report_uri,
        # Talisman insists on a report-uri for report-only mode; report-to alone is enough (set below).
        "content_security_policy_report_only": settings.csp_report_only and bool(settings.csp_report_uri),
        # Talisman overwrites this config key; keep a stricter value the app already chose.
        "session_cookie_samesite": app.config.get("SESSION_COOKIE_SAMESITE") or "Lax",
    }
    options.update(settings.talisman_options)
    sent_policy = clerk_policy if "content_security_policy" not in settings.talisman_options else None
    follows_app = settings.force_https is None and "force_https" not in settings.talisman_options
    key = settings.publishable_key or reveal(settings.secret_key) or ""
    serves_loopback = key.startswith(("pk_test_", "sk_test_"))
    # Talisman itself refuses report-only without a report-uri at init; with report-to alone it is set after.
    report_only = settings.csp_report_only and "content_security_policy_report_only" not in settings.talisman_options
    reporting_endpoints = f'{REPORT_TO_GROUP}="{settings.csp_report_to}"' if settings.csp_report_to else None
    problems = talisman_hook_problems()
    if problems:
        warn_fallback("flask-talisman", "ClerkTalisman", problems)
        _own_view_options(app, sent_policy)
        if reporting_endpoints:  # registered first, so it runs after Talisman's own after_request hook
            app.after_request(functools.partial(_add_reporting_endpoints, reporting_endpoints))
        talisman_options = {**options, "force_https": _HttpsRedirect(app, serves_loopback)} if follows_app else options
        plain = _talisman(Talisman, app, talisman_options)
        plain.content_security_policy_report_only = plain.content_security_policy_report_only or report_only
        return plain, policy_text(options["content_security_policy"])
    talisman = _talisman(ClerkTalisman, app, options)
    talisman.content_security_policy_report_only = talisman.content_security_policy_report_only or report_only
    talisman.clerk_policy = sent_policy
    talisman.follows_app = follows_app
    talisman.serves_loopback = serves_loopback
    talisman.reporting_endpoints = reporting_endpoints
    return talisman, policy_text(options["content_security_policy"])


_T = TypeVar("_T", bound=Talisman)


def _talisman(cls: type[_T], app: Flask, options: dict[str, Any]) -> _T:
    """``cls(app, **options)``, a refusal of the options reported as a configuration error."""
    try:
        talisman: _T = cls(app, **options)
    except ValueError as exc:
        raise ConfigurationError(f"CLERK_TALISMAN_OPTIONS were refused by Talisman: {exc}") from None
    return talisman


def policy_text(policy: Any) -> str:
    """A Talisman ``content_security_policy`` (string, mapping or nothing) as header text, nonce left out."""
    if not policy:
        return ""
    if isinstance(policy, str):
        return policy
    return render_csp(
        {name: [value] if isinstance(value, str) else list(value) for name, value in dict(policy).items()}
    )
