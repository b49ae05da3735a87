"""Public-route patterns as Clerk's createRouteMatcher (path-to-regexp) reads them."""

from __future__ import annotations

import re

import pytest

from flask_clerk_security.routes import RouteMatcher


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
    ],
)
def test_patterns(pattern: str, path: str, expected: bool) -> None:
    assert RouteMatcher([pattern])(path) is expected


def test_regexes_and_callables() -> None:
    matcher = RouteMatcher([re.compile(r"^/public/"), lambda path: path.endswith(".txt")])
    assert matcher("/public/a") and matcher("/robots.txt") and not matcher("/private")
    assert not RouteMatcher([])
    assert RouteMatcher(["/x"])


def test_bad_pattern_types_fail_loudly() -> None:
    with pytest.raises(TypeError):
        RouteMatcher([42])
