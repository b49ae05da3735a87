"""clerk_script() under the strict CSP in headless Chromium: the tag loads and the CSP allows it."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, render_template_string

from flask_clerk_security import ClerkSecurity
from flask_clerk_security.testing import ClerkTestIssuer, serve_app

pytestmark = pytest.mark.browser

PAGE = """<!doctype html><html><head>
<script nonce="{{ csp_nonce() }}">
  window.cspViolations = [];
  document.addEventListener("securitypolicyviolation", (e) => window.cspViolations.push(e.violatedDirective));
</script>
{{ clerk_script() }}
</head><body>page</body></html>"""




@pytest.mark.parametrize("strict", [True, False])
def test_clerk_script_is_allowed_by_the_csp(browser: Any, strict: bool) -> None:
    issuer = ClerkTestIssuer(instance="live")  # no handshake for a signed-out page visit
    app = Flask("template_browser_app")
    app.config.update(**issuer.config, CLERK_FORCE_HTTPS=False, CLERK_CSP_STRICT=strict, CLERK_PUBLIC_ROUTES=["/"])
    ClerkSecurity(app)
    app.add_url_rule("/", "page", lambda: render_template_string(PAGE))
    script_urls: list[str] = []
    console: list[str] = []
    page = browser.new_page()
    page.on("console", lambda message: console.append(message.text))

    def serve_clerk_js(route: Any) -> None:  # ClerkJS from the Frontend API, answered here (no network)
        script_urls.append(route.request.url)
        route.fulfill(status=200, content_type="application/javascript", body="window.clerkJsRan = true;")

    page.route("https://clerk.example.test/npm/**", serve_clerk_js)
    try:
        with serve_app(app) as url:
            page.goto(f"{url}/")
            page.wait_for_function("window.clerkJsRan === true", timeout=5000)
            assert page.evaluate("window.cspViolations") == []
    finally:
        page.close()
    assert script_urls == ["https://clerk.example.test/npm/@clerk/clerk-js@5/dist/clerk.browser.js"]
    assert not [text for text in console if "Content Security Policy" in text], console
