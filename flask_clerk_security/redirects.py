"""Follows ``@clerk/backend`` ``src/createRedirect.ts``: where a page that stays signed out goes, and
``redirect_to_sign_in()`` / ``redirect_to_sign_up()``.

Also the WHATWG ``URLSearchParams`` serialisation the redirect and handshake URLs are built with.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from urllib.parse import parse_qsl, quote_plus, urljoin, urlsplit, urlunsplit

from flask import Request, redirect
from flask import request as flask_request
from werkzeug.wrappers import Response

from .config_warnings import warn_once
from .cookies import DEV_BROWSER, REDIRECT_URL, SYNCED, CookieContext, accounts_base_url, request_url
from .errors import ConfigurationError
from .settings import ClerkSettings
from .state import get_state


def _form_encode(pairs: Iterable[tuple[str, str]]) -> str:
    """WHATWG ``URLSearchParams`` serialisation (``*`` kept, ``~`` escaped, spaces as ``+``)."""
    return "&".join(
        f"{quote_plus(k, safe='*').replace('~', '%7E')}={quote_plus(v, safe='*').replace('~', '%7E')}" for k, v in pairs
    )


def _without_params(url: str, names: Iterable[str]) -> str:
    """``url`` with query parameters removed, re-serialised as ``URLSearchParams.delete`` does."""
    parts = urlsplit(url)
    drop = set(names)
    pairs = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in drop]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, _form_encode(pairs), parts.fragment))


def sign_in_url(
    settings: ClerkSettings, request: Request, *, pending: bool = False, return_back_url: str | None = None
) -> str | None:
    """Where a page that stays signed out goes: ``CLERK_SIGN_IN_URL``, else this instance's Account Portal;
    for a ``pending`` session, its ``/tasks`` page (``redirectToTasks``: ``/sign-in/tasks``).

    As Clerk's ``createRedirect``: ``redirect_url`` is the current URL (or ``return_back_url``, resolved against
    it; a satellite's with ``__clerk_synced=false`` when the sign-in page is on another origin); a development
    instance passes its dev-browser token along when the sign-in page is on another origin. None when neither is
    known. A path (``/sign-in``) is the app's own page, as ``url_for`` makes it: under a URL prefix
    (``SCRIPT_NAME``) it gets the prefix, unless it already starts with it.
    """
    target = settings.sign_in_url
    if not target:
        if not settings.frontend_api:
            return None
        target = f"{accounts_base_url(settings.frontend_api)}/sign-in"
    if pending:
        target = f"{target}/tasks"
    return _page_url(settings, request, target, return_back_url)


def sign_up_url(settings: ClerkSettings, request: Request, *, return_back_url: str | None = None) -> str | None:
    """``redirectToSignUp``'s URL: ``CLERK_SIGN_UP_URL``, else the Account Portal's ``/sign-up``, built as
    :func:`sign_in_url` builds the sign-in one. None when neither is known."""
    target = settings.sign_up_url
    if not target:
        if not settings.frontend_api:
            return None
        target = f"{accounts_base_url(settings.frontend_api)}/sign-up"
    return _page_url(settings, request, target, return_back_url)


def redirect_to_sign_in(return_back_url: str | None = None) -> Response:
    """A 307 to the sign-in page, as Clerk's ``auth().redirectToSignIn()``: see :func:`sign_in_url`."""
    return _redirect(sign_in_url, return_back_url, "CLERK_SIGN_IN_URL")


def redirect_to_sign_up(return_back_url: str | None = None) -> Response:
    """A 307 to the sign-up page, as Clerk's ``redirectToSignUp()``: see :func:`sign_up_url`."""
    return _redirect(sign_up_url, return_back_url, "CLERK_SIGN_UP_URL")


def _redirect(build: Callable[..., str | None], return_back_url: str | None, key: str) -> Response:
    req = flask_request._get_current_object()  # type: ignore[attr-defined]
    target = build(get_state().settings, req, return_back_url=return_back_url)
    if target is None:
        raise ConfigurationError(
            f"No page to redirect to: set {key}, or CLERK_PUBLISHABLE_KEY for the Account Portal's page."
        )
    return redirect(target, code=307)


def _page_url(settings: ClerkSettings, request: Request, target: str, return_back_url: str | None) -> str:
    """``target`` with ``redirect_url`` (and the dev-browser token across origins), as ``buildUrl`` does."""
    parts = urlsplit(target)
    root = request.script_root
    if root and not parts.netloc and target.startswith("/") and not (target + "/").startswith(root + "/"):
        parts = parts._replace(path=root + parts.path)
    pairs = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "redirect_url"]
    url = request_url(request)
    cross_origin = bool(parts.netloc) and _host_and_port(parts.geturl()) != _host_and_port(url)
    return_url = url if return_back_url is None else urljoin(url, return_back_url)
    if cross_origin and settings.is_satellite:  # back from the primary's sign-in, the satellite syncs
        return_url = _with_param(return_url, SYNCED, "false", replace=True)
    pairs.append(("redirect_url", return_url))
    development = bool(settings.publishable_key and settings.publishable_key.startswith("pk_test_"))
    if cross_origin and development:
        dev_browser = request.args.get(DEV_BROWSER) or _dev_browser_cookie(settings, request)
        if dev_browser:
            pairs = [(k, v) for k, v in pairs if k != DEV_BROWSER] + [(DEV_BROWSER, dev_browser)]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, _form_encode(pairs), parts.fragment))


def _host_and_port(url: str) -> tuple[str | None, int | None] | None:
    """The host and port of ``url``; None when they do not parse (a ``Host`` header of ``a:b`` or ``[::1``)."""
    try:
        parts = urlsplit(url)
        return parts.hostname, parts.port
    except ValueError:
        return None


def _dev_browser_cookie(settings: ClerkSettings, request: Request) -> str | None:
    ctx = CookieContext(request, settings)
    return ctx.dev_browser_token


def _with_param(url: str, name: str, value: str, *, replace: bool) -> str:
    """``url`` after ``searchParams.set`` (``replace``) or ``.append`` of ``name=value``, re-serialised as
    ``URLSearchParams`` does."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if replace and any(k == name for k, _ in pairs):
        first = next(i for i, (k, _) in enumerate(pairs) if k == name)
        pairs = [(k, v) for i, (k, v) in enumerate(pairs) if k != name or i == first]
        pairs[first] = (name, value)
    else:
        pairs.append((name, value))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, _form_encode(pairs), parts.fragment))


def satellite_sync_url(settings: ClerkSettings, ctx: CookieContext) -> str | None:
    """A development satellite's way to sync (``request.ts``): the primary's sign-in page with
    ``__clerk_redirect_url=<this URL>`` (``CLERK_SIGN_IN_URL``, absolute on satellites: checked at init).

    None when the sign-in page is on this request's own origin: the satellite would sync with itself, page after
    page. Clerk throws there (``assertSignInUrlFormatAndOrigin``, on the ``Origin`` header); the request stays
    signed out, and the log says why once.
    """
    assert settings.sign_in_url is not None
    if _origin(settings.sign_in_url) == _origin(ctx.clerk_url):
        warn_once(
            "satellite-sign-in-own-origin",
            "A satellite request came in on CLERK_SIGN_IN_URL's own origin, so it is not synced (it would redirect "
            "to itself). CLERK_SIGN_IN_URL must be the primary app's sign-in page, on another origin.",
        )
        return None
    return _with_param(settings.sign_in_url, REDIRECT_URL, ctx.clerk_url, replace=False)


def primary_sync_return_url(settings: ClerkSettings, ctx: CookieContext) -> str | None:
    """A development primary's answer to ``__clerk_redirect_url`` (``primary-responds-to-syncing``): back to
    the satellite with the dev-browser token and ``__clerk_synced=true``.

    Clerk sends the browser (and its dev-browser token) to any URL there. We go only to this origin or one in
    ``CLERK_AUTHORIZED_PARTIES`` (a satellite's origin is one: its tokens carry it in ``azp``); None otherwise,
    and for anything that is not an absolute http(s) URL, and the parameter is then ignored.
    """
    target = ctx.request.args.get(REDIRECT_URL)
    if not target:
        return None
    origin = _origin(target)
    allowed = {_origin(party) for party in settings.authorized_parties} | {_origin(ctx.clerk_url)}
    if origin is None:
        return None
    if origin not in allowed:
        # Silent, a satellite whose origin is not listed would never sync; anyone can send the parameter, so the
        # log says it once per process.
        warn_once(
            "primary-sync-unlisted-origin",
            "A __clerk_redirect_url to %r was ignored: a primary answers a satellite's sync only for an origin in "
            "CLERK_AUTHORIZED_PARTIES. Fix: if it is your satellite, add %r to CLERK_AUTHORIZED_PARTIES "
            "(this message is logged once per process).",
            origin,
            origin,
        )
        return None
    if ctx.dev_browser_token:
        target = _with_param(target, DEV_BROWSER, ctx.dev_browser_token, replace=False)
    return _with_param(target, SYNCED, "true", replace=True)


def _origin(url: str) -> str | None:
    """The WHATWG ``origin`` of an absolute http(s) URL (lower-cased, default port dropped, an IPv6 host in
    brackets and compressed); None for anything else (userinfo too)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if parts.scheme.lower() not in ("http", "https") or not host or "@" in parts.netloc:
        return None
    if ":" in host:  # only an IPv6 literal has one
        try:
            host = f"[{ipaddress.IPv6Address(host).compressed}]"
        except ValueError:
            return None
    default = {"http": 80, "https": 443}[parts.scheme.lower()]
    suffix = f":{port}" if port is not None and port != default else ""
    return f"{parts.scheme.lower()}://{host.lower()}{suffix}"
