"""Jinja globals, as Flask-Login injects ``current_user``: ``current_auth``, the publishable key, the Frontend API
URL, the sign-in and sign-up URLs and ``clerk_script()``, a ``<script>`` tag loading ClerkJS as Clerk's
``loadClerkJsScript`` does."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, has_request_context, request
from markupsafe import Markup

from .headers import frontend_api_source
from .settings import ClerkSettings
from .state import current_auth, get_state

#: The ClerkJS major version ``clerk_script()`` loads (Clerk's SDKs pin the major, the CDN serves its latest).
CLERK_JS_MAJOR = "5"

_SCRIPT = Markup(
    '<script async crossorigin="anonymous" src="{src}" data-clerk-publishable-key="{key}"{extra}></script>'
)


def script_host(settings: ClerkSettings) -> str:
    """Clerk's ``clerkJsScriptUrl`` host: the proxy (made absolute), a satellite's ``clerk.`` domain, or the
    Frontend API of the publishable key; without a scheme (the script is always loaded over https)."""
    proxy = settings.proxy_url
    if proxy:
        if proxy.startswith("/"):
            origin = request.host if has_request_context() else ""
            return f"{origin}{proxy}" if origin else (settings.frontend_api or "")
        return proxy.split("://", 1)[-1]
    return (frontend_api_source(settings) or "").removeprefix("https://")


def clerk_script(*, version: str = CLERK_JS_MAJOR) -> Markup:
    """The ``<script>`` tag loading ClerkJS for this app, with ``data-clerk-*`` attributes and, under strict CSP,
    the request's CSP nonce (``'strict-dynamic'`` ignores host allowlists). Attribute values are escaped."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    settings = get_state(app).settings
    src = f"https://{script_host(settings)}/npm/@clerk/clerk-js@{version}/dist/clerk.browser.js"
    extra = Markup("")
    if settings.proxy_url:
        extra += Markup(' data-clerk-proxy-url="{}"').format(settings.proxy_url)
    if settings.domain:
        extra += Markup(' data-clerk-domain="{}"').format(settings.domain)
    nonce_of = app.jinja_env.globals.get("csp_nonce")
    if settings.csp_strict and settings.security_headers and callable(nonce_of):
        nonce = nonce_of()
        if nonce:
            extra += Markup(' nonce="{}"').format(nonce)
    return _SCRIPT.format(src=src, key=settings.publishable_key or "", extra=extra)


def install_template_globals(app: Flask, settings: ClerkSettings) -> None:
    """Give every template of ``app`` ``current_auth``, ``clerk_publishable_key``, ``clerk_frontend_api_url``,
    ``clerk_sign_in_url``, ``clerk_sign_up_url`` (the settings, for ClerkJS's ``signInUrl``/``signUpUrl``) and
    ``clerk_script()``."""

    def clerk_context() -> dict[str, Any]:
        host = script_host(settings)
        return {
            "current_auth": current_auth,
            "clerk_publishable_key": settings.publishable_key,
            "clerk_frontend_api_url": f"https://{host}" if host else None,
            "clerk_sign_in_url": settings.sign_in_url,
            "clerk_sign_up_url": settings.sign_up_url,
            "clerk_script": clerk_script,
        }

    app.context_processor(clerk_context)
