"""Every Jinja template gets current_auth, the publishable key, the Frontend API URL and clerk_script()."""

from __future__ import annotations

import re
from typing import Any

from flask import render_template_string

from flask_clerk_security.testing import ClerkTestIssuer

from .conftest import AppFactory

PAGE = (
    "{{ current_auth.user_id or 'guest' }}|{{ clerk_publishable_key }}|{{ clerk_frontend_api_url }}|"
    "{{ clerk_script() }}"
)
PK = "pk_test_Y2xlcmsuZXhhbXBsZS50ZXN0JA"
SRC = "https://clerk.example.test/npm/@clerk/clerk-js@5/dist/clerk.browser.js"


def render(app_factory: AppFactory, headers: dict[str, str] | None = None, **config: Any) -> tuple[str, Any]:
    app, clerk = app_factory(config)

    @app.get("/page")
    @clerk.public
    def page() -> str:
        return render_template_string(PAGE)

    response = app.test_client().get("/page", headers=headers or {}, base_url="https://localhost")
    assert response.status_code == 200
    return response.get_data(as_text=True), response


def test_template_globals(app_factory: AppFactory, clerk_issuer: ClerkTestIssuer) -> None:
    body, _ = render(app_factory)
    assert body == (
        f"guest|{PK}|https://clerk.example.test|"
        f'<script async crossorigin="anonymous" src="{SRC}" data-clerk-publishable-key="{PK}"></script>'
    )
    signed_in, _ = render(app_factory, clerk_issuer.auth_header(user_id="user_5"))
    assert signed_in.startswith("user_5|")


def test_strict_csp_puts_the_responses_nonce_on_the_script(app_factory: AppFactory) -> None:
    body, response = render(app_factory, CLERK_CSP_STRICT=True)
    nonce = re.search(r' nonce="([^"]+)"></script>$', body)
    assert nonce is not None
    assert f"'nonce-{nonce.group(1)}'" in response.headers["Content-Security-Policy"]
    plain, _ = render(app_factory)
    assert "nonce=" not in plain


def test_proxy_and_satellite_domain_follow_clerks_script_url(app_factory: AppFactory) -> None:
    """As ``clerkJsScriptUrl``; attribute values are escaped (``&`` becomes ``&amp;``)."""
    body, _ = render(app_factory, CLERK_PROXY_URL="https://app.example/__clerk?a=1&b=2")
    assert 'src="https://app.example/__clerk?a=1&amp;b=2/npm/@clerk/clerk-js@5/dist/clerk.browser.js"' in body
    assert 'data-clerk-proxy-url="https://app.example/__clerk?a=1&amp;b=2"' in body
    relative, _ = render(app_factory, CLERK_PROXY_URL="/__clerk")
    assert 'src="https://localhost/__clerk/npm/@clerk/clerk-js@5/dist/clerk.browser.js"' in relative
    satellite, _ = render(app_factory, CLERK_DOMAIN="satellite.example")
    assert "|https://clerk.satellite.example|" in satellite
    assert 'data-clerk-domain="satellite.example"' in satellite


def test_sign_in_and_sign_up_urls_in_templates(app_factory: AppFactory) -> None:
    app, clerk = app_factory({"CLERK_SIGN_IN_URL": "/sign-in", "CLERK_SIGN_UP_URL": "/sign-up"})

    @app.get("/page")
    @clerk.public
    def page() -> str:
        return render_template_string("{{ clerk_sign_in_url }}|{{ clerk_sign_up_url }}")

    assert app.test_client().get("/page").get_data(as_text=True) == "/sign-in|/sign-up"
