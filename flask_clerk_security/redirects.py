"""Follows ``@clerk/backend`` ``src/createRedirect.ts``: where a page that stays signed out goes.

Also the WHATWG ``URLSearchParams`` serialisation the redirect and handshake URLs are built with.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, quote_plus, urlsplit, urlunsplit

from flask import Request

from .config import ClerkSettings
from .cookies import DEV_BROWSER, CookieContext, accounts_base_url, request_url


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


def sign_in_url(settings: ClerkSettings, request: Request) -> str | None:
    """Where a page that stays signed out goes: ``CLERK_SIGN_IN_URL``, else this instance's Account Portal.

    As Clerk's ``createRedirect``: ``redirect_url`` is the current URL; a development instance passes its
    dev-browser token along when the sign-in page is on another origin. None when neither is known. A path
    (``/sign-in``) is the app's own page, as ``url_for`` makes it: under a URL prefix (``SCRIPT_NAME``) it
    gets the prefix, unless it already starts with it.
    """
    target = settings.sign_in_url
    if not target:
        if not settings.frontend_api:
            return None
        target = f"{accounts_base_url(settings.frontend_api)}/sign-in"
    parts = urlsplit(target)
    root = request.script_root
    if root and not parts.netloc and target.startswith("/") and not (target + "/").startswith(root + "/"):
        parts = parts._replace(path=root + parts.path)
    pairs = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "redirect_url"]
    url = request_url(request)
    pairs.append(("redirect_url", url))
    cross_origin = bool(parts.netloc) and _host_and_port(parts.geturl()) != _host_and_port(url)
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
