"""Security headers: per-app Talisman, the Clerk-aware CSP, strict and report-only modes, proxies."""

from __future__ import annotations

import importlib.metadata
import json
import re
from typing import Any

import flask
import pytest
import requests
from flask import Blueprint, Flask, render_template_string
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_clerk_security import ClerkSecurity, ConfigurationError
from flask_clerk_security.extension import get_state
from flask_clerk_security.headers import TALISMAN_HOOKS, security_headers
from flask_clerk_security.testing import ClerkTestIssuer, serve_app

from .conftest import AppFactory


@pytest.fixture(autouse=True, params=["ClerkTalisman", "Talisman"])
def talisman_class(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs with ClerkTalisman, and again as if flask-talisman had changed a private hook ClerkTalisman
    overrides (``_parse_policy`` takes other parameters): the extension then uses plain Talisman, and every
    header must still be right."""
    if request.param == "Talisman":
        from flask_talisman import Talisman

        parse_policy = Talisman._parse_policy
        monkeypatch.setattr(Talisman, "_parse_policy", lambda self, *args: parse_policy(self, *args))
    return str(request.param)


#: For the tests of ClerkTalisman's own rendering, which exist only while it is used.
clerk_talisman_only = pytest.mark.parametrize("talisman_class", ["ClerkTalisman"], indirect=True)


def directives(header: str) -> dict[str, list[str]]:
    return {part.split()[0]: part.split()[1:] for part in header.split("; ") if part.strip()}


def test_default_headers(app_factory: AppFactory, clerk_issuer: ClerkTestIssuer) -> None:
    app, _ = app_factory()
    response = app.test_client().get("/health")
    assert response.status_code == 200
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert "Strict-Transport-Security" not in response.headers  # plain HTTP: HSTS means nothing there
    csp = directives(response.headers["Content-Security-Policy"])
    fapi = f"https://{clerk_issuer.frontend_api}"
    assert csp["script-src"][:4] == ["'self'", fapi, "https://challenges.cloudflare.com", "https://*.protect.clerk.com"]
    assert csp["connect-src"] == [
        "'self'",
        fapi,
        "https://*.protect.clerk.com:*",
        "https://clerk-telemetry.com",
        "https://*.clerk-telemetry.com",
        "https://api.stripe.com",
        "https://maps.googleapis.com",
    ]
    assert csp["img-src"] == ["'self'", "https://img.clerk.com"]
    assert csp["worker-src"] == ["'self'", "blob:"]
    assert csp["style-src"] == ["'self'", "'unsafe-inline'"]
    assert csp["frame-src"] == [
        "'self'",
        "https://challenges.cloudflare.com",
        "https://*.protect.clerk.com",
        "https://*.js.stripe.com",
        "https://js.stripe.com",
        "https://hooks.stripe.com",
    ]
    hosts = [source for source in csp["script-src"][4:] if not source.startswith("'nonce-")]  # plain Talisman: one
    assert hosts == ["https://*.js.stripe.com", "https://js.stripe.com", "https://maps.googleapis.com"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["form-action"] == ["'self'"]
    assert csp["default-src"] == ["'self'"]
    assert csp["object-src"] == ["'none'"]
    assert csp["base-uri"] == ["'self'"]
    assert "'strict-dynamic'" not in csp["script-src"]
    assert get_state(app).content_security_policy.startswith("default-src 'self'; script-src 'self' https://")


@clerk_talisman_only
def test_no_nonce_unless_a_template_asks(app_factory: AppFactory) -> None:
    """ClerkTalisman makes the nonce lazily (plain Talisman makes one for every request, harmlessly)."""
    app, _ = app_factory()
    csp = directives(app.test_client().get("/health").headers["Content-Security-Policy"])
    assert not any(source.startswith("'nonce-") for source in csp["script-src"]), "no template asked for one"


def test_headers_on_error_responses(app_factory: AppFactory) -> None:
    response = app_factory()[0].test_client().get("/api/me")
    assert response.status_code == 401
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "Content-Security-Policy" in response.headers


def test_nonce_is_per_request_and_matches_template(app_factory: AppFactory) -> None:
    app, clerk = app_factory()

    @app.get("/page")
    @clerk.public
    def page() -> str:
        return render_template_string('<script nonce="{{ csp_nonce() }}">1</script>')

    client = app.test_client()
    nonces = []
    for _ in range(2):
        response = client.get("/page")
        nonce = re.search(r'nonce="([^"]+)"', response.text).group(1)  # type: ignore[union-attr]
        assert f"'nonce-{nonce}'" in directives(response.headers["Content-Security-Policy"])["script-src"]
        nonces.append(nonce)
    assert nonces[0] != nonces[1]


def test_strict_mode_and_report_uri(app_factory: AppFactory) -> None:
    app, _ = app_factory({"CLERK_CSP_STRICT": "true", "CLERK_CSP_REPORT_URI": "/csp-report"})
    response = app.test_client().get("/health")
    csp = directives(response.headers["Content-Security-Policy"])
    assert csp["script-src"][0] == "'strict-dynamic'"
    assert csp["report-uri"] == ["/csp-report"]


def test_report_only_mode(app_factory: AppFactory) -> None:
    app, _ = app_factory({"CLERK_CSP_REPORT_ONLY": True, "CLERK_CSP_REPORT_URI": "https://r.example/csp"})
    response = app.test_client().get("/health")
    assert "Content-Security-Policy" not in response.headers
    csp = directives(response.headers["Content-Security-Policy-Report-Only"])
    assert csp["report-uri"] == ["https://r.example/csp"]
    assert csp["frame-ancestors"] == ["'none'"]


#: ``DEFAULT_DIRECTIVES`` of Clerk's CSP helper (``@clerk/nextjs`` 7.8 ``src/server/content-security-policy.ts``),
#: host sources only: its ``https:``/``http:``/``'unsafe-inline'`` script fallbacks are left out on purpose (see
#: docs/security-headers.md), and ``connect-src`` gets the Frontend API host on top.
CLERK_HELPER_HOSTS = {
    "connect-src": [
        "https://clerk-telemetry.com",
        "https://*.clerk-telemetry.com",
        "https://api.stripe.com",
        "https://maps.googleapis.com",
    ],
    "frame-src": [
        "https://challenges.cloudflare.com",
        "https://*.js.stripe.com",
        "https://js.stripe.com",
        "https://hooks.stripe.com",
    ],
    "img-src": ["https://img.clerk.com"],
    "script-src": ["https://*.js.stripe.com", "https://js.stripe.com", "https://maps.googleapis.com"],
    "worker-src": ["blob:"],
}


@pytest.mark.parametrize("strict", [False, True])
def test_every_host_clerks_helper_allows_is_allowed(
    app_factory: AppFactory, clerk_issuer: ClerkTestIssuer, strict: bool
) -> None:
    """Clerk Billing (Stripe), telemetry and Google Maps load under the default policy, as with Clerk's helper."""
    app, _ = app_factory({"CLERK_CSP_STRICT": strict})
    csp = directives(app.test_client().get("/health").headers["Content-Security-Policy"])
    for directive, hosts in CLERK_HELPER_HOSTS.items():
        assert [host for host in hosts if host not in csp[directive]] == [], directive
    assert f"https://{clerk_issuer.frontend_api}" in csp["connect-src"]


def test_report_to_sends_reporting_endpoints(app_factory: AppFactory) -> None:
    """Clerk's ``reportTo``: ``report-to csp-endpoint`` in the policy and ``Reporting-Endpoints`` naming it."""
    app, clerk = app_factory({"CLERK_CSP_REPORT_TO": "https://r.example/reports"})

    @app.get("/page")
    @clerk.public
    def page() -> str:
        return render_template_string('<script nonce="{{ csp_nonce() }}">1</script>')

    client = app.test_client()
    for path in ("/health", "/page", "/health"):  # rendered once, with a nonce, then from the rendered headers
        response = client.get(path)
        assert directives(response.headers["Content-Security-Policy"])["report-to"] == ["csp-endpoint"]
        assert response.headers["Reporting-Endpoints"] == 'csp-endpoint="https://r.example/reports"'
    plain = app_factory()[0].test_client().get("/health")
    assert "Reporting-Endpoints" not in plain.headers
    assert "report-to" not in directives(plain.headers["Content-Security-Policy"])


def test_report_only_with_report_to_alone(app_factory: AppFactory) -> None:
    app, _ = app_factory({"CLERK_CSP_REPORT_ONLY": "true", "CLERK_CSP_REPORT_TO": "/csp-reports"})
    response = app.test_client().get("/health")
    assert "Content-Security-Policy" not in response.headers
    csp = directives(response.headers["Content-Security-Policy-Report-Only"])
    assert csp["report-to"] == ["csp-endpoint"] and "report-uri" not in csp
    assert response.headers["Reporting-Endpoints"] == 'csp-endpoint="/csp-reports"'


def test_report_only_needs_a_report_uri(app_factory: AppFactory) -> None:
    with pytest.raises(ConfigurationError, match="CLERK_CSP_REPORT_URI"):
        app_factory({"CLERK_CSP_REPORT_ONLY": "true"})


def test_user_directives_merge_deduplicate_and_quote(app_factory: AppFactory, clerk_issuer: ClerkTestIssuer) -> None:
    fapi = f"https://{clerk_issuer.frontend_api}"
    app, _ = app_factory({
        "CLERK_CSP_DIRECTIVES": json.dumps({
            "script-src": [fapi, "https://cdn.example.com", "unsafe-eval"],
            "img-src": "data: https://img.clerk.com",
            "frame-ancestors": "https://partner.example",
            "upgrade-insecure-requests": [],
        })
    })  # fmt: skip
    csp = directives(app.test_client().get("/health").headers["Content-Security-Policy"])
    assert csp["script-src"].count(fapi) == 1
    assert "https://cdn.example.com" in csp["script-src"]
    assert "'unsafe-eval'" in csp["script-src"]
    assert csp["img-src"] == ["'self'", "https://img.clerk.com", "data:"]
    assert csp["frame-ancestors"] == ["https://partner.example"]  # 'none' would contradict the user's source
    assert csp["upgrade-insecure-requests"] == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"scrpt-src": "'self'"}, "unknown directive 'scrpt-src'"),
        ({"img-src": "'self"}, "malformed source"),
        ({"img-src": ["https://a.example; script-src *"]}, "malformed source"),
        ({"img-src": ["two words"]}, "malformed source"),
        ({"img-src": 5}, "must be a string or a list"),
        ({"img-src": ["'unsafe-everything'"]}, "malformed source"),
        ("{not json", "not valid JSON"),
        ('["img-src"]', "must be a mapping"),
    ],
)
def test_malformed_directives_fail_at_init(app_factory: AppFactory, value: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match="CLERK_CSP_DIRECTIVES") as info:
        app_factory({"CLERK_CSP_DIRECTIVES": value})
    assert message in str(info.value)


def test_proxy_url_and_domain_change_the_host(clerk_issuer: ClerkTestIssuer, app_factory: AppFactory) -> None:
    live = ClerkTestIssuer(frontend_api="clerk.primary.example", instance="live", private_key=clerk_issuer.private_key)
    cases = [
        ({"CLERK_PROXY_URL": "https://app.example.com/__clerk"}, "https://app.example.com"),
        ({"CLERK_DOMAIN": "satellite.example"}, "https://clerk.satellite.example"),
        ({"CLERK_DOMAIN": "https://clerk.satellite.example/"}, "https://clerk.satellite.example"),
    ]
    for config, host in cases:
        app, _ = app_factory({**live.config, **config, "CLERK_AUTHORIZED_PARTIES": "https://app.example.com"})
        csp = directives(app.test_client().get("/health").headers["Content-Security-Policy"])
        assert host in csp["script-src"] and host in csp["connect-src"], config
        assert "https://clerk.primary.example" not in csp["script-src"]
    # A same-origin proxy path is covered by 'self'; development instances ignore CLERK_DOMAIN, as Clerk does.
    app, _ = app_factory({"CLERK_PROXY_URL": "/__clerk"})
    csp = directives(get_state(app).content_security_policy)
    assert csp["connect-src"][:3] == ["'self'", "https://*.protect.clerk.com:*", "https://clerk-telemetry.com"]
    assert not any(clerk_issuer.frontend_api in source for source in csp["connect-src"] + csp["script-src"])
    dev = ClerkTestIssuer(frontend_api="happy-cat-1.clerk.accounts.dev", private_key=clerk_issuer.private_key)
    app, _ = app_factory({**dev.config, "CLERK_DOMAIN": "satellite.example"})
    assert "https://happy-cat-1.clerk.accounts.dev" in get_state(app).content_security_policy


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"CLERK_PROXY_URL": "ftp://x"}, "CLERK_PROXY_URL"),
        ({"CLERK_DOMAIN": "not a host"}, "CLERK_DOMAIN"),
        ({"CLERK_CSP_REPORT_URI": "javascript:alert(1)"}, "CLERK_CSP_REPORT_URI"),
        ({"CLERK_FORCE_HTTPS": "maybe"}, "CLERK_FORCE_HTTPS"),
        ({"CLERK_TALISMAN_OPTIONS": {"frame_option": "DENY"}}, "CLERK_TALISMAN_OPTIONS"),
        ({"CLERK_TALISMAN_OPTIONS": "[1]"}, "CLERK_TALISMAN_OPTIONS"),
    ],
)
def test_bad_header_settings_name_the_key(app_factory: AppFactory, config: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigurationError, match=key):
        app_factory(config)


def test_talisman_options_pass_through(app_factory: AppFactory) -> None:
    app, _ = app_factory(
        talisman_options={"frame_options": "SAMEORIGIN", "content_security_policy": {"default-src": "'self'"}}
    )
    response = app.test_client().get("/health")
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert response.headers["Content-Security-Policy"] == "default-src 'self'"
    assert get_state(app).content_security_policy == "default-src 'self'"


def test_security_headers_can_be_turned_off(app_factory: AppFactory) -> None:
    app, _ = app_factory({"CLERK_SECURITY_HEADERS": "false"})
    response = app.test_client().get("/health")
    assert "Content-Security-Policy" not in response.headers and "X-Frame-Options" not in response.headers
    assert get_state(app).talisman is None


def test_one_talisman_per_app(clerk_issuer: ClerkTestIssuer) -> None:
    clerk = ClerkSecurity()
    apps = []
    for policy in ("https://one.example", "https://two.example"):
        app = Flask(f"app_{policy[8:11]}")
        app.config.update(TESTING=True, CLERK_CSP_DIRECTIVES={"img-src": [policy]}, **clerk_issuer.config)
        clerk.init_app(app)
        app.get("/")(clerk.public(lambda: "ok"))
        apps.append(app)
    states = [get_state(app) for app in apps]
    assert states[0].talisman is not states[1].talisman
    assert states[0].talisman.app is apps[0] and states[1].talisman.app is apps[1]
    first, second = (app.test_client().get("/").headers["Content-Security-Policy"] for app in apps)
    assert "https://one.example" in first and "https://two.example" not in first
    assert "https://two.example" in second and "https://one.example" not in second


def test_session_cookie_samesite_kept(app_factory: AppFactory) -> None:
    app, _ = app_factory({"SESSION_COOKIE_SAMESITE": "Strict"})
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Strict"
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app_factory()[0].config["SESSION_COOKIE_SAMESITE"] == "Lax"


# HTTPS redirect and proxies


def production_app(clerk_issuer: ClerkTestIssuer, **config: Any) -> Flask:
    """An app neither debug nor testing, so the HTTPS redirect is on by default."""
    app = Flask("clerk_prod_app")
    app.config.update(CLERK_AUTHORIZED_PARTIES="https://app.example.com", **clerk_issuer.config, **config)
    clerk = ClerkSecurity(app)
    app.get("/health")(clerk.public(lambda: "ok"))
    return app


@pytest.fixture(scope="module")
def live_issuer() -> ClerkTestIssuer:
    """A production instance's keys (``pk_live_``/``sk_live_``)."""
    return ClerkTestIssuer(instance="live")


def test_https_redirect_is_on_in_production_off_in_testing(
    app_factory: AppFactory, clerk_issuer: ClerkTestIssuer, live_issuer: ClerkTestIssuer
) -> None:
    response = production_app(live_issuer).test_client().get("/health?x=1")
    assert response.status_code == 302
    assert response.headers["Location"] == "https://localhost/health?x=1"
    # Redirect comes before authentication: a protected route is redirected too, not answered 401.
    assert production_app(live_issuer).test_client().get("/api/anything").status_code == 302
    # A development instance is redirected too, away from loopback.
    dev = production_app(clerk_issuer).test_client().get("/health", base_url="http://app.example.com")
    assert dev.status_code == 302
    assert app_factory()[0].test_client().get("/health").status_code == 200
    assert production_app(clerk_issuer, CLERK_FORCE_HTTPS=False).test_client().get("/health").status_code == 200
    forced, _ = app_factory({"CLERK_FORCE_HTTPS": "true"})
    assert forced.test_client().get("/health").status_code == 302


def test_https_redirect_follows_config_changed_after_init(live_issuer: ClerkTestIssuer) -> None:
    """``TESTING``/``DEBUG`` set after the app is built turn the redirect off, and back on when unset."""
    app = production_app(live_issuer)
    client = app.test_client()
    assert client.get("/health").status_code == 302
    app.config.update(TESTING=True)
    assert client.get("/health").status_code == 200
    app.config.update(TESTING=False, DEBUG=True)
    assert client.get("/health").status_code == 200
    app.config.update(DEBUG=False)
    assert client.get("/health").status_code == 302


@pytest.mark.parametrize("host", ["127.0.0.1:5000", "127.3.2.1", "localhost:8000", "LOCALHOST", "[::1]:5000"])
def test_development_instance_serves_loopback_over_http(clerk_issuer: ClerkTestIssuer, host: str) -> None:
    """``flask run`` without ``--debug`` on a ``pk_test_`` instance: loopback is served, not sent to https://."""
    response = production_app(clerk_issuer).test_client().get("/health", base_url=f"http://{host}")
    assert response.status_code == 200


@pytest.mark.parametrize("host", ["127.0.0.1.example.com", "127.0.0.256", "localhost.example.com", "[::2]", "10.0.0.1"])
def test_development_instance_redirects_other_hosts(clerk_issuer: ClerkTestIssuer, host: str) -> None:
    response = production_app(clerk_issuer).test_client().get("/health", base_url=f"http://{host}")
    assert response.status_code == 302


@pytest.mark.parametrize("remote_addr", ["203.0.113.9", "10.0.0.1", "::2", "127.0.0.1.example"])
def test_development_instance_redirects_loopback_host_from_elsewhere(
    clerk_issuer: ClerkTestIssuer, remote_addr: str
) -> None:
    """``Host: localhost`` sent from another machine is no local request: it is redirected."""
    client = production_app(clerk_issuer).test_client()
    response = client.get("/health", base_url="http://localhost:5000", environ_base={"REMOTE_ADDR": remote_addr})
    assert response.status_code == 302


@pytest.mark.parametrize("remote_addr", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_development_instance_serves_loopback_clients(clerk_issuer: ClerkTestIssuer, remote_addr: str) -> None:
    client = production_app(clerk_issuer).test_client()
    response = client.get("/health", base_url="http://localhost:5000", environ_base={"REMOTE_ADDR": remote_addr})
    assert response.status_code == 200


def test_development_instance_real_request_on_loopback(clerk_issuer: ClerkTestIssuer) -> None:
    """A real HTTP request to 127.0.0.1 (the test kit's server): 200 for pk_test_, still 302 for pk_live_."""
    with serve_app(production_app(clerk_issuer)) as base_url:
        response = requests.get(base_url + "/health", allow_redirects=False, timeout=5)
        assert response.status_code == 200
        assert response.text == "ok"
    with serve_app(production_app(ClerkTestIssuer(instance="live"))) as base_url:
        response = requests.get(base_url + "/health", allow_redirects=False, timeout=5)
        assert response.status_code == 302
        assert response.headers["Location"] == base_url.replace("http://", "https://") + "/health"


def test_explicit_force_https_is_strict_on_loopback(clerk_issuer: ClerkTestIssuer) -> None:
    """``CLERK_FORCE_HTTPS=true`` redirects loopback too, on any instance."""
    app = production_app(clerk_issuer, CLERK_FORCE_HTTPS=True)
    assert app.test_client().get("/health", base_url="http://127.0.0.1:5000").status_code == 302


def test_https_request_gets_hsts(clerk_issuer: ClerkTestIssuer) -> None:
    response = production_app(clerk_issuer).test_client().get("/health", base_url="https://app.example.com")
    assert response.status_code == 200
    assert response.headers["Strict-Transport-Security"] == "max-age=31556926; includeSubDomains"


def test_behind_proxyfix(clerk_issuer: ClerkTestIssuer) -> None:
    """Behind a TLS-terminating proxy: ProxyFix makes the redirect point at the public host, HSTS is sent."""
    app = production_app(clerk_issuer)
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]
    client = app.test_client()
    public = {"X-Forwarded-Host": "app.example.com", "X-Forwarded-For": "203.0.113.9"}

    secure = client.get("/health", headers={**public, "X-Forwarded-Proto": "https"})
    assert secure.status_code == 200
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=31556926")

    plain = client.get("/health?next=1", headers={**public, "X-Forwarded-Proto": "http"})
    assert plain.status_code == 302
    assert plain.headers["Location"] == "https://app.example.com/health?next=1"
    assert "Strict-Transport-Security" not in plain.headers


def test_without_proxyfix_the_redirect_uses_the_internal_host(clerk_issuer: ClerkTestIssuer) -> None:
    """Why the docs ask for ProxyFix: without it the redirect goes to the proxy's upstream host name."""
    app = production_app(clerk_issuer)
    response = app.test_client().get(
        "/health", base_url="http://internal:8000", headers={"X-Forwarded-Host": "app.example.com"}
    )
    assert response.headers["Location"] == "https://internal:8000/health"


@clerk_talisman_only
def test_clerk_talisman_renders_exactly_what_talisman_renders(app_factory: AppFactory) -> None:
    """The cached rendering of ClerkTalisman gives Talisman's own header text, nonce included."""
    from flask_talisman import Talisman

    from flask_clerk_security.headers import ClerkTalisman

    app, _ = app_factory({"CLERK_CSP_STRICT": True})
    talisman = app.extensions["clerk_security"].talisman
    assert isinstance(talisman, ClerkTalisman)
    policies: list[Any] = [
        talisman.content_security_policy,
        {"default-src": "'self'", "script-src": ["'self'", "https://a.example"], "img-src": "*"},
        "default-src 'self'; script-src 'self' https://b.example; style-src 'unsafe-inline'",
    ]
    for nonce in (None, "n0nce"):
        with app.test_request_context("/api/me"):
            if nonce:
                flask.request.csp_nonce = nonce  # type: ignore[attr-defined]
            for policy in policies:
                for _ in range(2):  # the second call is served from the cache
                    assert talisman._parse_policy(policy) == Talisman._parse_policy(talisman, policy)


@clerk_talisman_only
def test_clerk_talisman_sets_exactly_the_headers_talisman_sets(app_factory: AppFactory) -> None:
    """Headers rendered once per endpoint and scheme, then added in one pass, equal Talisman's own, in order:
    per-view options, HSTS by scheme, a header the view set itself (replaced), and a nonce. One app serves
    every case twice, so a rendering kept for one case would show up in another."""
    from flask_talisman import Talisman

    app, _ = app_factory()
    talisman = get_state(app).talisman

    @app.get("/framed")
    @talisman(frame_options="SAMEORIGIN", content_security_policy={"default-src": "'none'"})
    def framed() -> str:
        return "framed"

    @app.get("/nonce")
    def nonce() -> str:
        return render_template_string("<script nonce='{{ csp_nonce() }}'></script>")

    cases: list[tuple[str, str, dict[str, str], dict[str, str]]] = [
        ("/health", "http://localhost", {}, {}),
        ("/health", "https://localhost", {}, {}),
        ("/health", "http://localhost", {"X-Forwarded-Proto": "https"}, {}),
        ("/nowhere", "wss://localhost", {}, {}),  # secure to Talisman as well (request.is_secure)
        ("/nowhere", "http://localhost", {}, {}),
        ("/framed", "https://localhost", {}, {}),
        ("/health", "https://localhost", {}, {"X-Frame-Options": "SAMEORIGIN", "X-Other": "kept"}),
        ("/nonce", "https://localhost", {}, {}),
    ]
    for path, base_url, headers, preset in cases * 2:
        with app.test_request_context(path, base_url=base_url, headers=headers):
            if path == "/nonce":
                talisman._get_nonce()
            ours, theirs = flask.Response(headers=preset), flask.Response(headers=preset)
            talisman._set_response_headers(ours)
            Talisman._set_response_headers(talisman, theirs)
            assert list(ours.headers) == list(theirs.headers), (path, base_url, headers, preset)


@clerk_talisman_only
def test_rendered_headers_skip_werkzeug_revalidation_on_this_werkzeug() -> None:
    """The fast path of ClerkTalisman relies on werkzeug's Headers list; if a werkzeug release drops it, the
    public ``extend`` takes over (still correct, slower) and this test says so."""
    from flask_clerk_security.headers import HEADERS_KEEP_A_LIST

    assert HEADERS_KEEP_A_LIST


# Framing: X-Frame-Options and the CSP's frame-ancestors say the same thing


@pytest.mark.parametrize(
    ("talisman_options", "ancestors"),
    [
        ({}, ["'none'"]),
        ({"frame_options": "SAMEORIGIN"}, ["'self'"]),
        (
            {"frame_options": "ALLOW-FROM", "frame_options_allow_from": "https://partner.example"},
            ["https://partner.example"],
        ),
        ({"frame_options": None}, None),
    ],
)
def test_app_wide_frame_options_set_frame_ancestors(
    app_factory: AppFactory, talisman_options: dict[str, Any], ancestors: list[str] | None
) -> None:
    app, _ = app_factory(talisman_options=talisman_options)
    csp = directives(app.test_client().get("/health").headers["Content-Security-Policy"])
    assert csp.get("frame-ancestors") == ancestors
    assert list(csp).index("form-action") == list(csp).index("object-src") - 1  # the policy's order is kept
    assert get_state(app).content_security_policy.count("frame-ancestors") == (ancestors is not None)


def test_users_frame_ancestors_win_over_frame_options(app_factory: AppFactory) -> None:
    app, _ = app_factory(
        {"CLERK_CSP_DIRECTIVES": {"frame-ancestors": "https://partner.example"}},
        talisman_options={"frame_options": "SAMEORIGIN"},
    )
    csp = directives(app.test_client().get("/health").headers["Content-Security-Policy"])
    assert csp["frame-ancestors"] == ["https://partner.example"]


def test_per_view_framing_without_the_app(app_factory: AppFactory) -> None:
    """``security_headers`` needs no app (a blueprint's module); the view's CSP follows its frame_options, the
    other views keep DENY and 'none', and a view's own policy is left as given."""
    bp = Blueprint("pages", __name__)

    @bp.get("/embed")
    @security_headers(frame_options="SAMEORIGIN")
    def embed() -> str:
        return "embed"

    @bp.get("/anywhere")
    @security_headers(frame_options=None)
    def anywhere() -> str:
        return "anywhere"

    @bp.get("/own")
    @security_headers(frame_options="SAMEORIGIN", content_security_policy={"default-src": "'self'"})
    def own() -> str:
        return "own"

    app, _ = app_factory(public_routes=["/embed", "/anywhere", "/own", "/health"])
    app.register_blueprint(bp)
    client = app.test_client()
    embedded = client.get("/embed")
    assert embedded.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert directives(embedded.headers["Content-Security-Policy"])["frame-ancestors"] == ["'self'"]
    anywhere_response = client.get("/anywhere")
    assert "X-Frame-Options" not in anywhere_response.headers
    assert "frame-ancestors" not in directives(anywhere_response.headers["Content-Security-Policy"])
    assert client.get("/own").headers["Content-Security-Policy"] == "default-src 'self'"
    health = client.get("/health")
    assert health.headers["X-Frame-Options"] == "DENY"
    assert directives(health.headers["Content-Security-Policy"])["frame-ancestors"] == ["'none'"]


def test_view_options_are_not_shared_between_apps(app_factory: AppFactory) -> None:
    """One view function on two apps: the first app's policy is not written into the view for the second."""

    @security_headers(frame_options="SAMEORIGIN")
    def embed() -> str:
        return "embed"

    first, _ = app_factory(public_routes=["/embed"])
    second, _ = app_factory({"CLERK_CSP_DIRECTIVES": {"img-src": "https://cdn.example.com"}}, public_routes=["/embed"])
    for app in (first, second):
        app.add_url_rule("/embed", view_func=embed)
    assert "https://cdn.example.com" not in first.test_client().get("/embed").headers["Content-Security-Policy"]
    assert "https://cdn.example.com" in second.test_client().get("/embed").headers["Content-Security-Policy"]


def test_security_headers_refuses_unknown_options() -> None:
    with pytest.raises(TypeError, match="frame_option"):
        security_headers(frame_option="SAMEORIGIN")


def test_a_changed_private_hook_falls_back_to_plain_talisman_with_one_warning(
    app_factory: AppFactory, talisman_class: str, caplog: pytest.LogCaptureFixture
) -> None:
    from flask_talisman import Talisman

    from flask_clerk_security import private_hooks
    from flask_clerk_security.headers import ClerkTalisman

    private_hooks._warn_once.cache_clear()  # once per process: an earlier test may have said it
    for _ in range(2):
        app, _ = app_factory()
        assert isinstance(get_state(app).talisman, ClerkTalisman) is (talisman_class == "ClerkTalisman")
        assert isinstance(get_state(app).talisman, Talisman)
    warnings = [record.getMessage() for record in caplog.records if "flask-talisman" in record.getMessage()]
    if talisman_class == "ClerkTalisman":
        assert warnings == []
    else:
        assert len(warnings) == 1
        assert f"flask-talisman {importlib.metadata.version('flask-talisman')} " in warnings[0]
        assert "_parse_policy" in warnings[0]


@clerk_talisman_only
@pytest.mark.parametrize("hook", sorted(TALISMAN_HOOKS))
def test_each_changed_talisman_hook_gives_a_plain_talisman_with_the_same_headers(
    app_factory: AppFactory, hook: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flask_talisman import Talisman

    from flask_clerk_security.headers import ClerkTalisman

    clerk_app, _ = app_factory()
    expected = clerk_app.test_client().get("/health", base_url="https://localhost").headers
    original = getattr(Talisman, hook)
    monkeypatch.setattr(Talisman, hook, lambda self, *args, **kwargs: original(self, *args, **kwargs))
    app, _ = app_factory()
    talisman = get_state(app).talisman
    assert type(talisman) is Talisman and not isinstance(talisman, ClerkTalisman)
    headers = app.test_client().get("/health", base_url="https://localhost").headers
    names = ["Content-Security-Policy", "X-Frame-Options", "Strict-Transport-Security", "Referrer-Policy"]
    assert all(name in expected for name in names)
    for name in names:
        expected_value = re.sub(r" 'nonce-[^']+'", "", expected[name])  # plain Talisman makes a nonce every time
        assert re.sub(r" 'nonce-[^']+'", "", headers[name]) == expected_value, name


@clerk_talisman_only
def test_a_missing_talisman_attribute_gives_a_plain_talisman(
    app_factory: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As if a flask-talisman release had renamed one of the attributes ClerkTalisman reads."""
    from flask_talisman import Talisman

    from flask_clerk_security import headers

    monkeypatch.setattr(headers, "TALISMAN_ATTRIBUTES", (*headers.TALISMAN_ATTRIBUTES, "frame_options_renamed"))
    app, _ = app_factory()
    assert type(get_state(app).talisman) is Talisman
    assert app.test_client().get("/health").headers["X-Frame-Options"] == "DENY"
