"""Example: a page under the strict Clerk CSP, with a nonce'd inline script and a CSP report endpoint.

Run it with your keys in the environment (``CLERK_SECRET_KEY``, ``CLERK_PUBLISHABLE_KEY``)::

    flask --app examples/csp_app.py run
    flask --app examples/csp_app.py clerk check
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, render_template_string, request

from flask_clerk_security import ClerkSecurity

logger = logging.getLogger("csp_app")

PAGE = """<!doctype html>
<html>
<head><title>CSP example</title></head>
<body>
<h1>Signed-out home page</h1>
<script nonce="{{ csp_nonce() }}">
  window.cspViolations = [];
  document.addEventListener("securitypolicyviolation", (event) => {
    window.cspViolations.push({directive: event.effectiveDirective, blocked: event.blockedURI});
  });
  window.nonceScriptRan = true;
  if (window.parent !== window) window.parent.postMessage("csp-app-rendered", "*");
</script>
{% block extra %}{% endblock %}
</body>
</html>
"""


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The example app; ``config`` overrides the environment (the tests pass test keys here)."""
    app = Flask(__name__)
    app.config.from_prefixed_env()
    app.config.update(
        CLERK_CSP_STRICT=True,  # per-request nonce + 'strict-dynamic'
        CLERK_CSP_REPORT_URI="/csp-report",
        CLERK_PUBLIC_ROUTES=["/", "/csp-report"],
    )
    app.config.update(config or {})
    reports: list[dict[str, Any]] = []
    app.extensions["csp_reports"] = reports
    ClerkSecurity(app)

    @app.get("/")
    def home() -> str:
        return render_template_string(PAGE)

    @app.post("/csp-report")
    def csp_report() -> tuple[str, int]:
        # Browsers send application/csp-report (report-uri) or application/reports+json (report-to).
        report = request.get_json(force=True, silent=True)
        if isinstance(report, dict):
            reports.append(report)
            logger.warning("CSP violation: %s", report.get("csp-report", report))
        return "", 204

    return app
