"""Public-route patterns as Clerk's createRouteMatcher (path-to-regexp) reads them."""

from __future__ import annotations

import http.client
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.routing import PathConverter

from flask_clerk_security import ConfigurationError
from flask_clerk_security.routes import OrganizationMatcher, RouteMatcher, request_pathname, routed_pathname
from flask_clerk_security.testing import serve_app
from tests.conftest import AppFactory


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("/sign-in(.*)", "/sign-in", True),
        ("/sign-in(.*)", "/sign-in/factor-one", True),
        ("/sign-in(.*)", "/SIGN-IN", True),
        ("/sign-in(.*)", "/sign-up", False),
        ("/sign-in(.*)", "/api/sign-in", False),
        ("/api/webhooks/:provider", "/api/webhooks/clerk", True),
        ("/api/webhooks/:provider", "/api/webhooks/clerk/", True),
        ("/api/webhooks/:provider", "/api/webhooks/clerk/x", False),
        ("/api/webhooks/:provider", "/api/webhooks/", False),
        ("/docs/:path*", "/docs", True),
        ("/docs/:path*", "/docs/a/b/c", True),
        ("/docs/:path+", "/docs", False),
        ("/docs/:path+", "/docs/a/b", True),
        ("/blog/:slug?", "/blog", True),
        ("/blog/:slug?", "/blog/hello", True),
        ("/", "/", True),
        ("/", "/x", False),
        ("/files/:id(\\d+)", "/files/42", True),
        ("/files/:id(\\d+)", "/files/abc", False),
        ("/a.b", "/a.b", True),
        ("/a.b", "/axb", False),
        # Clerk matches the pathname as the request has it (%3F, %23, %2F stay escaped), decodes the rest with
        # decodeURI, ends at the end of input, folds case as JavaScript does, and counts UTF-16 code units.
        ("/health", "/health%0A", False),
        ("/", "/%0A", False),
        ("/", "/%3F", False),
        ("/", "/%23", False),
        ("/health", "/health%23", False),
        ("/sign-in", "/%C5%BFign-in", False),
        ("/sign-in(.*)", "/sign-in%0D", False),
        ("/k", "/%E2%84%AA", False),
        ("/:id", "/a%2Fb", True),
        ("/api/:id", "/api%2Fx", False),
        ("/caf\u00e9", "/CAF%C3%89", True),
        ("/:c(.)", "/%F0%9F%98%80", False),
        ("/:c(..)", "/%F0%9F%98%80", True),
        ("/health", "//health", True),
        ("/health", "/health%zz", False),
        ("/files/:name.:ext?", "/files/a", True),
        ("/files/:name.:ext?", "/files/a.txt", True),
        ("/a\\.b", "/a.b", True),
        ("/a\\.b", "/axb", False),
        ("/a\\(b\\)", "/a(b)", True),
        ("/a{/b}+", "/a/b/b", True),
        ("/a{/b}?", "/a", True),
        ("/a/(b)+", "/a/b/b", True),
        ("/a{-:id(\\d+)}?", "/a-7", True),
        ("/a{-:id(\\d+)}?", "/a-x", False),
    ],
)
def test_patterns(pattern: str, path: str, expected: bool) -> None:
    assert RouteMatcher([pattern])(path) is expected


def test_regexes_and_callables() -> None:
    matcher = RouteMatcher([re.compile(r"^/public/"), lambda path: path.endswith(".txt")])
    assert matcher("/public/a") and matcher("/robots.txt") and not matcher("/private")
    assert not RouteMatcher([])
    assert not RouteMatcher([""]) and not RouteMatcher([""])("/")
    assert RouteMatcher(["/x"])


def test_bad_pattern_types_fail_loudly() -> None:
    with pytest.raises(TypeError):
        RouteMatcher([42])


@pytest.mark.parametrize("pattern", ["/a(/b)+", "/a(/b)*", "/:a:b", "/(", "/:", "/:x((?<n>a))", "/:x(\\1)"])
def test_patterns_clerk_refuses_are_refused_at_init(app_factory: AppFactory, pattern: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        app_factory(public_routes=["/ok", pattern])
    assert "CLERK_PUBLIC_ROUTES" in str(caught.value) and repr(pattern) in str(caught.value)
    assert "path-to-regexp 6.x" in str(caught.value)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("/health/*", "/health/(.*)"),
        ("/sign-in*", "/sign-in(.*)"),
        ("health", "/health"),
        ("api/(.*)", "/api/(.*)"),
        ("/a/**", "/a/(.*)"),
        ("/docs/:path*/files/*", "/docs/:path*/files/(.*)"),
    ],
)
def test_patterns_that_can_never_match_are_refused_with_clerks_spelling(
    app_factory: AppFactory, pattern: str, expected: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        app_factory({"CLERK_PUBLIC_ROUTES": f"/ok,{pattern}"})
    message = str(caught.value)
    assert message.startswith(f"CLERK_PUBLIC_ROUTES pattern {pattern!r} ")
    assert f"Fix: write {expected!r}" in message
    app_factory({"CLERK_PUBLIC_ROUTES": f"/ok,{expected}"})  # the suggestion itself is accepted


@pytest.mark.parametrize("pattern", ["(.*)", ".:ext?", "{/b}?", "/:id"])
def test_patterns_that_start_with_a_parameter_or_group_are_kept(pattern: str) -> None:
    assert RouteMatcher([pattern])


class _AnyPath(PathConverter):
    regex = r"[\s\S]*?"  # the path converter's "." stops at a newline
    part_isolating = False


def _catch_all_app(app_factory: AppFactory, public_routes: list[Any]) -> Flask:
    """An app where every path reaches a view, so only the public-route decision tells 200 from 401."""
    app, _ = app_factory(public_routes=public_routes)
    app.url_map.converters["any_path"] = _AnyPath

    @app.get("/")
    @app.get("/<any_path:rest>")
    def anything(rest: str = "") -> str:
        return "ok"

    return app


# The six paths of issue 13 (finding 6), each with the public pattern the old matcher wrongly opened it for.
CLOSED_IN_CLERK = [
    ("/status", "/status%0A"),
    ("/", "/%0A"),
    ("/", "/%3F"),
    ("/", "/%23"),
    ("/status", "/status%23"),
    ("/sign-in(.*)", "/%C5%BFign-in"),
]


@pytest.mark.parametrize(("pattern", "path"), CLOSED_IN_CLERK)
def test_paths_clerk_keeps_closed_are_protected(app_factory: AppFactory, pattern: str, path: str) -> None:
    app = _catch_all_app(app_factory, [pattern])
    client = app.test_client()
    assert client.get(path).status_code == 401
    open_path = {"/status": "/status", "/": "/", "/sign-in(.*)": "/sign-in/x"}[pattern]
    assert client.get(open_path).status_code == 200


def _raw_get(base_url: str, raw_path: str) -> int:
    """GET with the request target sent byte for byte (no client-side normalisation)."""
    conn = http.client.HTTPConnection(urlsplit(base_url).netloc, timeout=5)
    try:
        conn.putrequest("GET", raw_path, skip_accept_encoding=True)
        conn.endheaders()
        return conn.getresponse().status
    finally:
        conn.close()


def test_paths_clerk_keeps_closed_are_protected_over_real_http(app_factory: AppFactory) -> None:
    app = _catch_all_app(app_factory, ["/", "/status", "/sign-in(.*)"])
    with serve_app(app) as base_url:
        assert [_raw_get(base_url, path) for _, path in CLOSED_IN_CLERK] == [401] * len(CLOSED_IN_CLERK)
        assert [_raw_get(base_url, p) for p in ("/", "/status", "/sign-in/x", "//status", "/st%61tus")] == [200] * 5
        # Clerk reads /x/../status/ as /status/, but Flask routes it to the catch-all view as x/../status/
        assert [_raw_get(base_url, p) for p in ("/status%zz", "/x/../status/", "/status/..")] == [401, 401, 401]


def test_a_path_public_to_clerk_but_routed_elsewhere_by_flask_is_protected(app_factory: AppFactory) -> None:
    """Clerk resolves dot segments and keeps %2F; Flask's router does neither. /admin/x/../../health was /health
    (public) to the matcher while Flask served it to /admin/<path:rest> anonymously."""
    app, _ = app_factory(public_routes=["/health", "/files/:name", "/pub(.*)"])
    app.add_url_rule("/admin/<path:rest>", "admin", lambda rest: "admin")
    app.add_url_rule("/files/<path:name>", "files", lambda name: "file")
    app.add_url_rule("/pub/<path:rest>", "pub", lambda rest: "pub")
    app.add_url_rule("/health", "healthz", lambda: "ok")
    closed = ["/admin/x/../../health", "/admin/x/%2e%2E/.%2e/pub/y", "/admin/x/..\\..\\health", "/files/a%2Fb"]
    with serve_app(app) as base_url:
        assert [_raw_get(base_url, path) for path in closed] == [401] * len(closed)
        assert [_raw_get(base_url, p) for p in ("/health", "/files/a", "/pub/a/b", "/pub/../pub/x")] == [200] * 4


def test_under_a_url_prefix_patterns_are_relative_to_the_app(app_factory: AppFactory) -> None:
    app = _catch_all_app(app_factory, ["/status"])
    client = app.test_client()
    assert client.get("/status", base_url="http://localhost/mount").status_code == 200
    assert client.get("/status%0A", base_url="http://localhost/mount").status_code == 401
    mounted = DispatcherMiddleware(Flask("root"), {"/mount": app})
    with serve_app(mounted) as base_url:
        assert _raw_get(base_url, "/mount/status") == 200
        assert _raw_get(base_url, "/m%6Funt/status") == 200
        assert _raw_get(base_url, "/mount/status%0A") == 401
        assert _raw_get(base_url, "/mount/mount/status") == 401


def test_regexes_and_callables_through_an_app(app_factory: AppFactory) -> None:
    app = _catch_all_app(app_factory, [re.compile(r"^/public/"), lambda path: path.endswith(".txt")])
    client = app.test_client()
    assert client.get("/public/a").status_code == 200
    assert client.get("/robots.txt").status_code == 200
    assert client.get("/robots%2Etxt").status_code == 200
    assert client.get("/private").status_code == 401
    assert client.get("/robots.txt%0A").status_code == 401
    assert client.get("/public%2Fa").status_code == 401  # Clerk's path keeps %2F: not under /public/
    assert client.get("/public/%zz").status_code == 401  # malformed for Clerk: public for nothing


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"PATH_INFO": "/a?b#c%d", "SCRIPT_NAME": ""}, "/a%3Fb%23c%25d"),
        ({"PATH_INFO": "/caf\u00c3\u00a9", "SCRIPT_NAME": ""}, "/caf%C3%A9"),
        ({"PATH_INFO": "/a/../b", "SCRIPT_NAME": ""}, "/b"),
        ({"PATH_INFO": "", "SCRIPT_NAME": "/mount"}, "/"),
        # A raw path that does not decode to SCRIPT_NAME + PATH_INFO (a middleware rewrote it) is not used.
        ({"REQUEST_URI": "/other", "PATH_INFO": "/status\n", "SCRIPT_NAME": ""}, "/status%0A"),
        ({"REQUEST_URI": "/m/a%2Fb?q", "PATH_INFO": "/a/b", "SCRIPT_NAME": "/m"}, "/a%2Fb"),
        ({"RAW_URI": "http://h/m%20n/x", "PATH_INFO": "/x", "SCRIPT_NAME": "/m n"}, "/x"),
        # Exactly SCRIPT_NAME is dropped from the raw path, not one character more.
        ({"REQUEST_URI": "/m//x", "PATH_INFO": "//x", "SCRIPT_NAME": "/m"}, "//x"),
    ],
)
def test_request_pathname(environ: dict[str, str], expected: str) -> None:
    assert request_pathname(environ) == expected


@pytest.mark.parametrize(
    ("path_info", "expected"),
    [
        ("/!~", "/!~"),  # printable ASCII is kept as the client sent it
        ("/\x7f", "/%7F"),
        ("/\ud800", "/%ED%A0%80"),  # a lone surrogate from a non-conforming server is escaped, never an error
    ],
)
def test_routed_pathname(path_info: str, expected: str) -> None:
    assert routed_pathname({"PATH_INFO": path_info}) == expected


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        ("health", "can never match (a request path always starts with '/')"),
        ("health\\.txt", "Fix: write '/health\\\\.txt'"),
        ("/a/*/b", "Fix: write '/a/(.*)/b'"),
        ("health/(x)/y", "Fix: write '/health/(x)/y'"),
        ("{/a}/*", "Fix: write '{/a}/(.*)'"),
        ("/(", "CLERK_PUBLIC_ROUTES pattern '/(' is not a valid Clerk route pattern (Unbalanced pattern at 1)"),
        # Unnamed groups are numbered 0, 1, ... as Clerk's path-to-regexp names them.
        ("/{(a)}{(b)}:c", 'missing text after "1"'),
    ],
)
def test_configuration_error_text(pattern: str, text: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        RouteMatcher([pattern])
    assert text in str(caught.value)


def test_organization_matcher_targets() -> None:
    matcher = OrganizationMatcher(["/orgs/:id", "/o/:slug"], ["/me"])
    assert OrganizationMatcher(["/orgs/:id"], []) and OrganizationMatcher([], ["/me"])
    assert not OrganizationMatcher([], [])
    assert matcher.find_target("/orgs/org_1") == ("organization", "org_1")
    assert matcher.find_target("/o/acme") == ("organization_slug", "acme")
    assert matcher.find_target("/me") == ("personal_account", None)
    assert matcher.find_target("/other") is None


@pytest.mark.parametrize(
    ("organization", "personal", "kind"), [(["/("], [], "organization"), ([], ["/("], "personal account")]
)
def test_organization_pattern_errors_name_the_setting(organization: list[str], personal: list[str], kind: str) -> None:
    with pytest.raises(ConfigurationError, match=f"^CLERK_ORGANIZATION_SYNC {kind} pattern '/\\(' is not a valid"):
        OrganizationMatcher(organization, personal)


def test_an_empty_pattern_is_dropped_and_the_rest_kept() -> None:
    assert RouteMatcher(["", "/a"])("/a")


def test_a_raw_path_that_is_not_a_string_is_ignored() -> None:
    """A non-conforming server's bytes REQUEST_URI is not read (never an error): PATH_INFO is used."""
    assert request_pathname({"REQUEST_URI": b"/other", "PATH_INFO": "/x", "SCRIPT_NAME": ""}) == "/x"
