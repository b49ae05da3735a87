"""The CSP and framing protections in real headless Chromium (Debian's /usr/bin/chromium, no downloads)."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, render_template_string

from flask_clerk_security.testing import ClerkTestIssuer, serve_app

pytestmark = pytest.mark.browser

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "csp_app.py"


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("csp_app_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module




@pytest.fixture
def example_app() -> Flask:
    # A production instance: a signed-out page visit with no Clerk cookies needs no handshake, so the page is
    # served here instead of being redirected to the (unreachable) Frontend API of the test key.
    clerk_issuer = ClerkTestIssuer(instance="live")
    """The example app (strict CSP, report endpoint) plus a page carrying an injected inline script."""
    example = load_example()
    app: Flask = example.create_app(
        {**clerk_issuer.config, "CLERK_FORCE_HTTPS": False, "CLERK_PUBLIC_ROUTES": ["/", "/csp-report", "/injected"]}
    )
    page = example.PAGE.replace("{% block extra %}{% endblock %}", "<script>window.injectedScriptRan = true;</script>")
    app.add_url_rule("/injected", "injected", lambda: render_template_string(page))
    return app


@pytest.fixture
def app_url(example_app: Flask) -> Iterator[str]:
    with serve_app(example_app) as url:
        yield url


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_nonce_script_runs_injected_script_is_blocked_and_reported(
    browser: Any, example_app: Flask, app_url: str
) -> None:
    page = browser.new_page()
    try:
        page.goto(f"{app_url}/")
        assert page.evaluate("window.nonceScriptRan") is True  # the nonce'd inline script ran
        assert page.evaluate("window.cspViolations") == []

        page.goto(f"{app_url}/injected")
        assert page.evaluate("window.nonceScriptRan") is True
        assert page.evaluate("window.injectedScriptRan === undefined")  # no nonce: blocked
        page.wait_for_function("window.cspViolations.length > 0", timeout=5000)
        violations = page.evaluate("window.cspViolations")
        assert violations[0]["directive"] == "script-src-elem" and violations[0]["blocked"] == "inline"
    finally:
        page.close()
    reports = example_app.extensions["csp_reports"]
    assert wait_for(lambda: len(reports) > 0), "Chromium sent no report to CLERK_CSP_REPORT_URI"
    report = reports[0]["csp-report"]
    assert report["document-uri"] == f"{app_url}/injected"
    assert report["effective-directive"] == "script-src-elem"


def test_page_refuses_to_render_in_a_cross_origin_iframe(browser: Any, app_url: str) -> None:
    """A page from another origin (second loopback server) frames the app: frame-ancestors 'none' + DENY."""
    framer = Flask("framer")

    @framer.get("/")
    def frames() -> str:
        return f"""<!doctype html><script>
          window.messages = [];
          addEventListener("message", (event) => window.messages.push([event.origin, event.data]));
        </script>
        <iframe id="control" src="/control"></iframe>
        <iframe id="victim" src="{app_url}/"></iframe>"""

    @framer.get("/control")
    def control() -> str:  # proves the harness: an unprotected frame does render and post
        return '<script>parent.postMessage("control-rendered", "*")</script>'

    console: list[str] = []
    page = browser.new_page()
    page.on("console", lambda message: console.append(message.text))
    try:
        with serve_app(framer) as framer_url:
            page.goto(framer_url)
            page.wait_for_function("window.messages.some(m => m[1] === 'control-rendered')", timeout=5000)
            page.wait_for_timeout(500)  # bounded: give the victim frame time to render if it could
            messages = page.evaluate("window.messages")
            assert ["control-rendered"] == [data for _, data in messages]
            victim = page.query_selector("#victim").content_frame()
            assert victim.url.startswith("chrome-error://")  # Chromium's blocked-frame page, not the app
            assert "Signed-out home page" not in victim.content()
    finally:
        page.close()
    assert any("frame-ancestors" in text or "X-Frame-Options" in text for text in console), console
