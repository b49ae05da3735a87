"""Offline demo: ``python -m flask_clerk_security.demo`` serves an example app on 127.0.0.1 and walks through
its protections with real HTTP, one line per step. Exits 1 if any step misbehaves.

Nothing here talks to Clerk: tokens come from the test kit's issuer and the Backend API is its stand-in.
A demo tool, not for production code.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import requests
from flask import Flask, render_template_string
from pydantic import BaseModel, StringConstraints

from . import ClerkSecurity, current_auth
from .testing import (
    BackendAPIStandIn,
    ClerkTestIssuer,
    FrontendAPIStandIn,
    clerk_event,
    generate_webhook_secret,
    serve_app,
    sign_webhook,
)

ORIGIN = "http://localhost:5000"


class NoteIn(BaseModel):
    """The demo's validated request body."""

    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    visibility: Literal["private", "team"] = "private"


class DemoFailure(Exception):
    """A step saw something other than what the protection promises."""


@dataclass
class Demo:
    """What a step needs: the running app's URL, the issuer, the Backend API stand-in and an HTTP session."""

    base_url: str
    issuer: ClerkTestIssuer
    backend_api: BackendAPIStandIn
    frontend_api: FrontendAPIStandIn
    http: requests.Session = field(default_factory=requests.Session)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.get(self.base_url + path, allow_redirects=False, timeout=10, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.post(self.base_url + path, allow_redirects=False, timeout=10, **kwargs)


Step = Callable[[Demo], str]
STEPS: list[tuple[str, Step]] = []


def step(title: str) -> Callable[[Step], Step]:
    """Register a demo step; it returns a short detail or raises :class:`DemoFailure`."""

    def register(func: Step) -> Step:
        STEPS.append((title, func))
        return func

    return register


def expect(response: requests.Response, status: int) -> requests.Response:
    if response.status_code != status:
        raise DemoFailure(f"expected {status}, got {response.status_code}: {response.text[:120]}")
    return response


def create_demo_app(
    issuer: ClerkTestIssuer, backend_api: BackendAPIStandIn, frontend_api_url: str | None = None
) -> Flask:
    """The example app the demo drives: JWKS from the stand-in over HTTP, as in production; handshakes go to
    ``frontend_api_url`` (a :class:`FrontendAPIStandIn`) when given."""
    app = Flask("clerk_demo")
    app.config.update(
        CLERK_SECRET_KEY=issuer.secret_key,
        CLERK_PUBLISHABLE_KEY=issuer.publishable_key,
        CLERK_API_URL=backend_api.url,
        CLERK_AUTHORIZED_PARTIES=[ORIGIN],
        CLERK_SIGN_IN_URL="/sign-in",
        CLERK_PUBLIC_ROUTES=["/sign-in(.*)"],
        CLERK_FORCE_HTTPS=False,  # served on plain-HTTP loopback; production keeps the HTTPS redirect
        CLERK_WEBHOOK_SECRET=issuer.webhook_secret,
    )
    if frontend_api_url:
        app.config["CLERK_PROXY_URL"] = frontend_api_url
    clerk = ClerkSecurity(app)

    @app.get("/health")
    @clerk.public
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/sign-in")
    def sign_in() -> str:
        return "<h1>Sign in</h1>"

    @app.get("/api/me")
    def me() -> dict[str, Any]:
        return {"user_id": current_auth.user_id}

    @app.post("/api/notes")
    def add_note() -> dict[str, Any]:
        return {"saved_by": current_auth.user_id}

    @app.get("/dashboard")
    def dashboard() -> str:
        return f"<h1>Hello {current_auth.user_id}</h1>"

    @app.get("/profile")
    def profile() -> str:
        # current_user is in every template: the Clerk user, fetched through the official SDK and cached.
        return render_template_string("<h1>Hello {{ current_user.first_name }} {{ current_user.last_name }}</h1>")

    @app.get("/api/reports")
    @clerk.require(permission="org:reports:read")
    def reports() -> dict[str, Any]:
        return {"org_id": current_auth.org_id}

    @app.post("/api/transfer")
    @clerk.require(reverification="strict")
    def transfer() -> dict[str, bool]:
        return {"transferred": True}

    @app.post("/api/validated-notes")
    @clerk.validate(body=NoteIn)
    def add_validated_note(body: NoteIn) -> dict[str, Any]:
        return {"title": body.title, "visibility": body.visibility}

    # Security headers and leak guard (docs/security-headers.md).
    @app.get("/api/debug-config")
    def leaky_debug_config() -> dict[str, Any]:
        return {"secret_key": app.config["CLERK_SECRET_KEY"]}  # the mistake the leak guard catches

    @app.get("/api/machine/reports")
    @clerk.require(accepts_token="api_key", scopes=["reports:read"])
    def machine_reports() -> dict[str, Any]:
        return {"token_type": current_auth.token_type, "subject": current_auth.subject}

    handled: list[str] = []

    @clerk.webhooks.on("user.created")
    def user_created(event: Any) -> None:
        handled.append(event.id)

    app.register_blueprint(clerk.webhooks)

    @app.get("/demo/handled-webhooks")
    @clerk.public
    def handled_webhooks() -> dict[str, list[str]]:
        return {"handled": handled}

    @app.post("/api/export")
    @clerk.limiter.limit("3 per minute")
    def export() -> dict[str, str]:
        return {"export": "started"}

    return app


@step("public route answers without a token")
def _public(demo: Demo) -> str:
    expect(demo.get("/health"), 200)
    return "GET /health -> 200"


@step("protected route refuses a request without a token")
def _no_token(demo: Demo) -> str:
    response = expect(demo.get("/api/me"), 401)
    if response.headers.get("WWW-Authenticate") != "Bearer" or response.json() != {"error": "unauthorized"}:
        raise DemoFailure("401 without WWW-Authenticate: Bearer or with a revealing body")
    return 'GET /api/me -> 401 {"error": "unauthorized"}'


@step("valid session token is accepted (JWKS fetched once over HTTP)")
def _valid(demo: Demo) -> str:
    for _ in range(3):
        response = expect(demo.get("/api/me", headers=demo.issuer.auth_header(azp=ORIGIN)), 200)
    if response.json() != {"user_id": "user_123"}:
        raise DemoFailure(f"unexpected body {response.json()}")
    fetches = demo.backend_api.count("GET", "/v1/jwks")
    if fetches != 1:
        raise DemoFailure(f"expected one JWKS fetch, saw {fetches}")
    return "3 requests -> 200, 1 JWKS fetch"


@step("expired, forged and foreign-origin tokens are refused")
def _refused(demo: Demo) -> str:
    forged = ClerkTestIssuer(kid=demo.issuer.kid)
    cases = {
        "expired": demo.issuer.session_token(azp=ORIGIN, lifetime=-60),
        "forged": forged.session_token(azp=ORIGIN),
        "foreign azp": demo.issuer.session_token(azp="https://evil.example"),
        "garbage": "not-a-token",
    }
    reasons = []
    for name, token in cases.items():
        response = expect(demo.get("/api/me", headers={"Authorization": f"Bearer {token}"}), 401)
        reasons.append(f"{name}: {response.headers.get('x-clerk-auth-reason')}")
    return "401 each; " + ", ".join(reasons)


@step("missing permission is 403, granted permission is 200")
def _permission(demo: Demo) -> str:
    expect(demo.get("/api/reports", headers=demo.issuer.auth_header(azp=ORIGIN)), 403)
    org = {"id": "org_1", "slug": "acme", "role": "member", "permissions": {"reports": ["read"]}}
    expect(demo.get("/api/reports", headers=demo.issuer.auth_header(azp=ORIGIN, org=org)), 200)
    return "has(permission='org:reports:read'): no -> 403, yes -> 200"


@step("stale second factor gets Clerk's reverification error; fresh passes")
def _reverification(demo: Demo) -> str:
    stale = expect(demo.post("/api/transfer", headers=demo.issuer.auth_header(azp=ORIGIN, fva=[5, 45])), 403)
    reason = stale.json().get("clerk_error", {}).get("reason")
    if reason != "reverification-error":
        raise DemoFailure(f"expected Clerk's reverification-error body, got {stale.text[:120]}")
    expect(demo.post("/api/transfer", headers=demo.issuer.auth_header(azp=ORIGIN, fva=[5, 2])), 200)
    return "fva=[5,45] -> 403 reverification-error, fva=[5,2] -> 200"


@step("cookie session write from another site is refused (CSRF)")
def _csrf(demo: Demo) -> str:
    cookies = demo.issuer.session_cookies(azp=ORIGIN)
    expect(demo.post("/api/notes", cookies=cookies, headers={"Origin": "https://evil.example"}), 403)
    expect(demo.post("/api/notes", cookies=cookies, headers={"Origin": ORIGIN}), 200)
    return "Origin evil.example -> 403, own origin -> 200"


@step("signed-out page request redirects to sign-in")
def _page(demo: Demo) -> str:
    dev_browser = {"__clerk_db_jwt": demo.frontend_api.dev_browser_token}
    response = expect(demo.get("/dashboard", headers=PAGE, cookies=dev_browser), 307)
    location = response.headers["Location"]
    if not location.startswith("/sign-in?redirect_url="):
        raise DemoFailure(f"unexpected Location {location}")
    return f"GET /dashboard -> 307 {location[:60]}"


@step("malformed input refused before the view (415, 400, 422, 413)")
def _malformed_input(demo: Demo) -> str:
    headers = demo.issuer.auth_header(azp=ORIGIN)
    json_headers = {**headers, "Content-Type": "application/json"}
    expect(demo.post("/api/validated-notes", headers=headers, data="title=hi"), 415)
    expect(demo.post("/api/validated-notes", headers=json_headers, data='{"title": '), 400)
    markup = "<script>alert(1)</script>"
    refused = expect(demo.post("/api/validated-notes", headers=headers, json={"title": "", "visibility": markup}), 422)
    if "script" in refused.text:
        raise DemoFailure("the 422 echoed the submitted value")
    fields = [".".join(map(str, error["loc"])) for error in refused.json()["errors"]]
    expect(demo.post("/api/validated-notes", headers=json_headers, data=b'{"title": "' + b"x" * (1 << 20) + b'"}'), 413)
    saved = expect(demo.post("/api/validated-notes", headers=headers, json={"title": "  Hello  "}), 200)
    if saved.json() != {"title": "Hello", "visibility": "private"}:
        raise DemoFailure(f"unexpected body {saved.json()}")
    return f"form -> 415, broken JSON -> 400, 422 on {', '.join(fields)} (value not echoed), 1 MiB -> 413, valid -> 200"


# Security headers and leak guard (docs/security-headers.md).
@step("responses carry the security headers and a CSP that allows Clerk's Frontend API")
def _headers(demo: Demo) -> str:
    # X-Forwarded-Proto as a TLS-terminating proxy sends it: HSTS is only sent on HTTPS.
    response = expect(demo.get("/health", headers={"X-Forwarded-Proto": "https"}), 200)
    wanted = {
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "strict-origin-when-cross-origin",
    }
    for name, value in wanted.items():
        if response.headers.get(name) != value:
            raise DemoFailure(f"{name}: expected {value!r}, got {response.headers.get(name)!r}")
    csp = response.headers.get("Content-Security-Policy", "")
    hsts = response.headers.get("Strict-Transport-Security", "")
    fapi = demo.frontend_api.url  # the app reaches its Frontend API through CLERK_PROXY_URL (the stand-in)
    directives = {part.split()[0]: part.split()[1:] for part in csp.split("; ") if part}
    if fapi not in directives.get("script-src", []) or fapi not in directives.get("connect-src", []):
        raise DemoFailure(f"CSP lacks the Frontend API host {fapi}: {csp}")
    if directives.get("frame-ancestors") != ["'none'"] or not hsts.startswith("max-age="):
        raise DemoFailure(f"frame-ancestors or HSTS missing: {csp} / {hsts!r}")
    for name in (*wanted, "Strict-Transport-Security"):
        print(f"        {name}: {response.headers[name]}")
    for part in csp.split("; "):
        print(f"        CSP {part[:100]}")
    return f"X-Frame-Options DENY, nosniff, HSTS, CSP script-src/connect-src include {fapi}"


@step("a response that would leak the secret key becomes a generic 500")
def _leak_guard(demo: Demo) -> str:
    response = expect(demo.get("/api/debug-config", headers=demo.issuer.auth_header(azp=ORIGIN)), 500)
    if demo.issuer.secret_key[8:] in response.text or response.json() != {"error": "internal_error"}:
        raise DemoFailure(f"the secret or a revealing body went out: {response.text[:60]}")
    return 'GET /api/debug-config -> 500 {"error": "internal_error"}; critical audit record names CLERK_SECRET_KEY'


PAGE = {"Accept": "text/html", "Sec-Fetch-Dest": "document"}


@step("stale cookie session goes through Clerk's handshake and the page shows the user")
def _handshake(demo: Demo) -> str:
    now = int(time.time())
    stale = demo.issuer.session_token(azp=ORIGIN, issued_at=now - 120)
    browser = requests.Session()
    for name, value in (
        ("__session", stale),
        ("__client_uat", str(now - 600)),
        ("__clerk_db_jwt", demo.frontend_api.dev_browser_token),
    ):
        browser.cookies.set(name, value, domain="127.0.0.1", path="/")
    response = browser.get(f"{demo.base_url}/dashboard", headers=PAGE, timeout=10)
    hops = [r.headers["Location"].split("?")[0] for r in response.history]
    if response.status_code != 200 or "Hello user_123" not in response.text:
        raise DemoFailure(f"expected the page after the handshake, got {response.status_code} via {hops}")
    if len(response.history) != 3 or not hops[0].endswith("/v1/client/handshake"):
        raise DemoFailure(f"unexpected redirect chain {hops}")
    return "GET /dashboard -> 307 Frontend API -> 307 back with handshake -> 307 clean URL -> 200"


@step("API key accepted where api_key is, refused on session-only routes and without its scope")
def _machine_token(demo: Demo) -> str:
    key = demo.backend_api.mint_api_key(subject="org_1", scopes=["reports:read"], name="nightly export")
    body = expect(demo.get("/api/machine/reports", headers={"Authorization": f"Bearer {key}"}), 200).json()
    if body != {"token_type": "api_key", "subject": "org_1"}:
        raise DemoFailure(f"unexpected body {body}")
    refused = expect(demo.get("/api/me", headers={"Authorization": f"Bearer {key}"}), 401)
    unscoped = demo.backend_api.mint_api_key(subject="org_1", scopes=["reports:write"])
    expect(demo.get("/api/machine/reports", headers={"Authorization": f"Bearer {unscoped}"}), 403)
    expect(demo.get("/api/machine/reports", headers=demo.issuer.auth_header(azp=ORIGIN)), 401)
    return (
        "ak_ on api_key route -> 200 (POST /api_keys/verify), on session route -> 401 "
        f"({refused.headers.get('x-clerk-auth-reason')}), missing scope -> 403, session on api_key route -> 401"
    )


@step("svix-signed webhook is verified and dispatched to its handler")
def _webhook(demo: Demo) -> str:
    body, headers = demo.issuer.sign_webhook(clerk_event("user.created", {"id": "user_new"}), msg_id="msg_demo")
    response = expect(demo.post("/api/webhooks/clerk", data=body, headers=headers), 200)
    handled = demo.get("/demo/handled-webhooks").json()["handled"]
    if response.json() != {"status": "processed"} or handled != ["msg_demo"]:
        raise DemoFailure(f"unexpected body {response.text[:120]} or handler runs {handled}")
    return "POST /api/webhooks/clerk (user.created) -> 200 processed, handler ran once"


@step("forged webhook is rejected with a generic 400")
def _forged_webhook(demo: Demo) -> str:
    body, headers = sign_webhook(generate_webhook_secret(), clerk_event("user.created"))
    response = expect(demo.post("/api/webhooks/clerk", data=body, headers=headers), 400)
    if response.json() != {"error": "invalid_webhook"}:
        raise DemoFailure(f"revealing body {response.text[:120]}")
    return 'signed with another secret -> 400 {"error": "invalid_webhook"}'


@step("replayed webhook is acknowledged without running the handler again")
def _replayed_webhook(demo: Demo) -> str:
    body, headers = demo.issuer.sign_webhook(clerk_event("user.created", {"id": "user_new"}), msg_id="msg_demo")
    response = expect(demo.post("/api/webhooks/clerk", data=body, headers=headers), 200)
    handled = demo.get("/demo/handled-webhooks").json()["handled"]
    if response.json() != {"status": "duplicate"} or handled != ["msg_demo"]:
        raise DemoFailure(f"replay was not recognised: {response.text[:120]}, handler runs {handled}")
    return "same svix-id again -> 200 duplicate, handler not run"


@step("per-user rate limit answers 429 with Retry-After")
def _rate_limited(demo: Demo) -> str:
    headers = demo.issuer.auth_header(azp=ORIGIN, user_id="user_busy")
    codes = [demo.post("/api/export", headers=headers).status_code for _ in range(3)]
    if codes != [200, 200, 200]:
        raise DemoFailure(f"expected three 200s, got {codes}")
    response = expect(demo.post("/api/export", headers=headers), 429)
    if response.json() != {"error": "rate_limited"} or not response.headers.get("Retry-After"):
        raise DemoFailure(f"429 without JSON body or Retry-After: {response.text[:120]}")
    expect(demo.post("/api/export", headers=demo.issuer.auth_header(azp=ORIGIN, user_id="user_idle")), 200)
    return f"3 per minute: 4th -> 429 Retry-After {response.headers['Retry-After']}, another user -> 200"


@step("a page shows the signed-in user's name from the Backend API (current_user), cached")
def _current_user(demo: Demo) -> str:
    if importlib.util.find_spec("clerk_backend_api") is None:
        return "skipped: needs Clerk's SDK (pip install 'flask-clerk-security[backend]')"
    demo.backend_api.add_user(user_id="user_123", first_name="Ada", last_name="Lovelace")
    headers = {**PAGE, **demo.issuer.auth_header(azp=ORIGIN)}
    pages = [expect(demo.get("/profile", headers=headers), 200).text for _ in range(2)]
    calls = demo.backend_api.count("GET", "/v1/users/user_123")
    if pages != ["<h1>Hello Ada Lovelace</h1>"] * 2 or calls != 1:
        raise DemoFailure(f"pages {pages}, {calls} Backend API call(s) for the user")
    return "GET /profile twice -> 'Hello Ada Lovelace', one Backend API call (then cached)"


@contextmanager
def running_demo() -> Iterator[Demo]:
    """Start the stand-in and the demo app on 127.0.0.1 (free ports), stop both afterwards."""
    issuer = ClerkTestIssuer()
    with BackendAPIStandIn(issuer) as backend_api, FrontendAPIStandIn(issuer, backend_api=backend_api) as fapi:
        app = create_demo_app(issuer, backend_api, fapi.url)
        with serve_app(app) as base_url:
            yield Demo(base_url, issuer, backend_api, fapi)


def main() -> int:
    """Run every step; print one line each (and the audit records it caused, indented); 1 if any failed."""
    audit = logging.StreamHandler(sys.stdout)
    audit.setFormatter(logging.Formatter("        audit: %(message)s"))
    audit_logger = logging.getLogger("flask_clerk_security.audit")
    audit_logger.addHandler(audit)
    audit_logger.propagate = False
    try:
        failures = _run_steps()
    finally:
        audit_logger.removeHandler(audit)
        audit_logger.propagate = True
    print(f"{len(STEPS) - failures} passed, {failures} failed")
    return 1 if failures else 0


def _run_steps() -> int:
    failures = 0
    with running_demo() as demo:
        print(f"flask-clerk-security demo: app on {demo.base_url}, Backend API stand-in on {demo.backend_api.url}")
        for title, func in STEPS:
            try:
                detail = func(demo)
            except (DemoFailure, requests.RequestException) as exc:
                failures += 1
                print(f"FAIL  {title}: {exc}")
            else:
                print(f"ok    {title}: {detail}")
    return failures


if __name__ == "__main__":
    sys.exit(main())
