"""Conformance: CLERK_PUBLIC_ROUTES against Clerk's own createPathMatcher (@clerk/shared, pinned via @clerk/backend).

One run of tests/conformance/route_matcher.mjs answers every pattern/path pair (a listed table and a seeded,
generated set) and every raw request path (``new URL(...).pathname``). Our answer must be Clerk's; the only
differences allowed are listed in INTENDED_DIFFERENCES, and each is "less public than Clerk".

Needs node and npm: the ``conformance_node`` fixture (tests/conftest.py) installs Clerk's packages with
`npm ci` when they are missing. Locally the test skips without node or npm; with CI set it fails.
"""

from __future__ import annotations

import random
import re
from typing import Any
from urllib.parse import unquote_to_bytes

import pytest

from flask_clerk_security.errors import ConfigurationError
from flask_clerk_security.routes import RouteMatcher, normalize_path, request_pathname

from .oracle import run_node_raw

GENERATED_PAIRS = 3000
GENERATED_TARGETS = 500
SEED = 20261201

MATCH, NO_MATCH, INVALID, MALFORMED = "match", "no-match", "invalid-pattern", "malformed-path"
# Clerk's answers ranked by how public they leave the path: ours may only be at or below Clerk's.
OPENNESS = {MATCH: 1, NO_MATCH: 0, INVALID: 0, MALFORMED: 0}

# Where we answer differently from Clerk on purpose, by (clerk, ours). Every one is less public than Clerk.
INTENDED_DIFFERENCES: dict[tuple[str, str], str] = {
    # Clerk's normalizePath throws MalformedURLError (bad %-escape or invalid UTF-8); createRouteMatcher's
    # caller then errors. Here such a path is simply not public: it is authenticated like any protected path.
    (MALFORMED, NO_MATCH): "malformed path: Clerk throws, here the path is not public",
}
# Constructs Clerk accepts in a pattern's regex that are refused here at init, because they have no exact Python
# translation (so an app cannot start with a route more public than Clerk's): construct (a regex) -> reason.
REFUSED_HERE: dict[str, str] = {
    r"\\[1-9]|\\0[0-9]": "backreference or octal escape: JavaScript matches an unset group as empty, Python fails",
    r"\(\?<": "lookbehind (Python's must be fixed-width) or named group",
    r"\\c": "control escape \\cX (and Annex B's literal \\c)",
    r"\[[^\]]*(-\\[sS]|\\[sSdDwW]-)": "class escape as a range end (JavaScript reads it as literals, Python refuses)",
    r"\[[^\]]*\\B": "\\B inside a class (JavaScript's identity escape)",
    # A pattern whose first text is not "/" can never match a request path, which always starts with "/" (the
    # generator feeds bare paths like "7", which no request has).
    r"^(?:[^/\\:({*+?.]|\.(?![:(])|\\[^/])": "literal text other than '/' first: never matches a request path",
}


# --------------------------------------------------------------------------------------------- the cases
LISTED: list[tuple[str, str]] = [
    # issue 13, finding 6: opened by the old translation, closed in Clerk
    ("/health", "/health%0A"),
    ("/", "/%0A"),
    ("/", "/%3F"),
    ("/", "/%23"),
    ("/health", "/health%23"),
    ("/sign-in", "/%C5%BFign-in"),
    ("/sign-in(.*)", "/%C5%BFign-in"),
    ("/sign-in(.*)", "/sign-in%0D"),
    ("/sign-in(.*)", "/sign-in%E2%80%A8"),
    ("/:id", "/%3F"),
    ("/:id", "/a%2Fb"),
    ("/k", "/%E2%84%AA"),  # KELVIN SIGN folds to k in Python, not in JavaScript without /u
    ("/:c(.)", "/%F0%9F%98%80"),  # one astral character is two UTF-16 code units for JavaScript
    ("/:c(..)", "/%F0%9F%98%80"),
    ("/caf\u00e9", "/CAF%C3%89"),
    ("/caf\u00e9", "/caf%C3%A9"),
    # issue 19: optional parameter after a "." prefix, repeated groups, escapes, group modifiers
    ("/files/:name.:ext?", "/files/a"),
    ("/files/:name.:ext?", "/files/a.txt"),
    ("/files/:name.:ext?", "/files/a."),
    ("/a(/b)+", "/a/b"),
    ("/a(/b)*", "/a"),
    ("/a/(b)+", "/a/b/b"),
    ("/a{/b}+", "/a/b/b"),
    ("/a{/b}*", "/a"),
    ("/a{/b}?", "/a/b"),
    ("/a{/:id}?", "/a/7"),
    ("/a{-:id(\\d+)}?", "/a-7"),
    ("/a\\.b", "/a.b"),
    ("/a\\.b", "/axb"),
    ("/a\\(b\\)", "/a(b)"),
    ("/a\\:b", "/a:b"),
    ("/a\\*", "/a*"),
    ("/docs/:path*", "/docs"),
    ("/docs/:path+", "/docs"),
    ("/docs/:path+", "/docs/a/b"),
    ("/:a:b", "/xy"),
    ("/:a-:b", "/x-y"),
    ("/(?:a)", "/a"),
    ("/:x((?:a|b)c)", "/bc"),
    ("/:x(\\d+)", "/\u0663"),
    ("/:x(\\w+)", "/\u017f"),
    ("/:x(\\s)", "/%C2%A0"),
    ("/:x([^a])", "/A"),
    ("/:x(a{,2})", "/a"),
    ("/:x(a*+)", "/a"),
    ("/:x(a$)", "/a"),
    ("/:x([\\s\\S]+)", "/a"),
    ("/:x([])", "/a"),
    ("/:x([^])", "/a"),
    ("/:x(\\1)", "/a"),
    ("/:x((?<=a)b)", "/b"),
    ("/:x((?<n>a))", "/a"),
    ("/:x(\\cA)", "/%01"),
    ("/:x([a-\\s])", "/a"),
    ("/:x([\\S]+)", "/a%C2%A0"),
    ("/:x([^\\S]+)", "/%C2%A0"),
    ("/:x([^a\\S])", "/a"),
    ("/:x(\\a)", "/a"),
    ("/(", "/"),
    ("/:", "/"),
    ("/(?x)", "/"),
    ("/(a(b))", "/ab"),
    ("/a", "//a"),
    ("/a", "/a%zz"),
    ("/a(.*)", "/a%E0%A4"),
    ("/a(.*)", "/a%252F"),
    ("/a(.*)", "/a?x"),
    ("/a(.*)", "/a#x"),
    ("/a", "/a/"),
    ("/a", "/a#"),
    ("", "/"),  # Clerk drops empty patterns (filter(Boolean)); "" would otherwise compile to "/"
    # issue 19, mutation testing of routes.py: each pair tells a survivor from Clerk
    ("/aX:id?", "/a"),  # "X" is no prefix: it stays required text
    ("/:a_b", "/x"),  # "_" is part of a parameter name
    ("/aX", "/aX"),  # "X" is no modifier
    ("/(a(", "/a"),  # an unclosed group at the very end is refused, never an IndexError
    ("/:x(\\x41)", "/A"),
    ("/:x(\\x41b)", "/Ab"),
    ("/:x(\\xzz)", "/xzz"),
    ("/:x(\\x4g)", "/x4g"),
    ("/:x(\\u0041b)", "/Ab"),
    ("/:x(\\uzz)", "/uzz"),
    ("/:x(\\u004g)", "/u004g"),
    ("/:x(\\Wa)", "/-a"),
    ("/:x(\\Sa)", "/ba"),
    ("/:x(\\ta)", "/%09a"),
    ("/:x(\\ba)", "/a"),
    ("/:x([\\b])", "/%08"),
    ("/:x([\\w])", "/a"),
    ("/:x([\\x01-\\s])", "/%05"),  # JavaScript reads \s as a range end as literals; Python's range is wider
    ("/:x([\\s-\\uffff])", "/%EF%BF%B0"),
    ("/(.*)", "/%80"),  # a lone continuation byte is malformed
    ("/:x(\\d+)-:y", "/1-a-b"),  # text without a delimiter before a parameter keeps it out of the parameter
    ("/:x(\\ud83d\\ude00)", "/%F0%9F%98%80"),  # an astral character is its UTF-16 surrogates
    ("/:x(\\0)", "/%00"),
    ("/:x(\\01)", "/%01"),  # an octal escape: refused here, never read as \0 then "1"
    ("/:x([\\t-\\S\\r])", "/%0A"),  # "-" before \S is a literal for JavaScript, never a range
    ("/:x(a{2})", "/aa"),
    ("/:x([\\t\\S])", "/%09"),
    ("/a%2Fb", "/a%2Fb"),  # a reserved character's escape stays as it was
]

# Each pattern piece with path fragments that could fit it, so a third of the generated paths follow their pattern.
PATTERN_PIECES: dict[str, list[str]] = {
    "/a": ["/a", "/A", "/%61"], "/b": ["/b", "/B"], "/files": ["/files", "/FILES"], "/A": ["/a", "/A"],
    "/x.y": ["/x.y", "/x%2Ey", "/xzy"], "/caf\u00e9": ["/caf\u00e9", "/CAF%C3%89", "/caf%C3%A9"],
    "/sign-in": ["/sign-in", "/%C5%BFign-in", "/SIGN-IN"], "/:p": ["/a", "/x.y", "/%3F", "/%C5%BF", "/\U0001f600"],
    "/:p?": ["", "/a"], "/:p*": ["", "/a/b", "/a%2Fb"], "/:p+": ["/a", "/a/b"], "/:q(\\d+)": ["/42", "/\u0663"],
    "/:q([a-z]+)": ["/abc", "/ABC", "/\u017f"], "/:q(.*)": ["/", "/a%0A", "/a%0D"],
    "(.*)": ["", "/x", "%0A", "%E2%80%A8"],
    "/(.*)": ["/", "/x/y"], "(/b)+": ["/b"], "(/b)*": [""], "(/b)?": ["/b"], "/(b)+": ["/b", "/b/b"],
    "{/b}?": ["", "/b"], "{/b}+": ["/b/b"], "{/:p}*": ["", "/a/b"], "{-:p}?": ["-a", ""], "\\.": [".", "%2E"],
    "\\(": ["("], "\\:": [":"], ".:ext?": [".txt", ""], "-:n": ["-7"], ":n": ["7"], "/": ["/", "//"],
    "(\\w+)": ["abc", "\u017f"], "(\\s)": [" ", "%C2%A0", "%0A"], "(.)": ["x", "\U0001f600", "%0A"],
    "(a|b)": ["a", "B"], "*": ["*"], "?": [""], "{": ["{"], "}": ["}"], "(": ["("], "\\": [""],
}
PATH_PIECES = [
    "/a", "/b", "/A", "/B", "/files", "/x.y", "/sign-in", "/caf\u00e9", "/CAF%C3%89", "/", "//", ".", "-", "7",
    "42", "%0A", "%0D", "%3F", "%23", "%2F", "%2f", "%25", "%C5%BF", "\u017f", "%E2%84%AA", "\u00e9", "\U0001f600",
    "%F0%9F%98%80", "\n", "?", "#", "%zz", "%E0%A4", "%C0%AF", " ", "%20", "(", "b", ".txt",
]
URL_TARGETS = [
    "/a", "/a/../b", "/a/./b", "/a/%2e%2E/b", "/a/.%2e", "/%2e/a", "/a/b/..", "/a\\b", "//a//b", "/caf\u00e9",
    "/a b", '/a"<>`{}^|', "/a%zz", "/\x7f", "/a/..?x", "/a?b#c", "/%2e%2e/x", "/x/%2E", "/a;b", "/\x01", "/X", "/a\tb",
]


def _generated_targets(count: int, seed: int) -> list[str]:
    """Raw request paths (what a client puts on the request line) from path pieces and dot segments."""
    rng = random.Random(seed)
    pieces = [p for p in PATH_PIECES if p not in ("\n", "?", "#", " ")] + ["/..", "/.", "/%2e", "/.%2E", "\\"]
    return ["/" + "".join(rng.choices(pieces, k=rng.randint(1, 5))) for _ in range(count)]


def _generated_pairs(count: int, seed: int) -> list[tuple[str, str]]:
    """Patterns and paths built from pieces; a rare piece (one Clerk refuses alone) is drawn less often."""
    rng = random.Random(seed)
    pieces = list(PATTERN_PIECES)
    weights = [1 if len(piece) == 1 else 4 for piece in pieces]
    pairs = []
    for _ in range(count):
        chosen = rng.choices(pieces, weights, k=rng.randint(1, 3))
        if rng.random() < 1 / 3:
            path = "".join(rng.choice(PATTERN_PIECES[piece]) for piece in chosen)
        else:
            path = "".join(rng.choices(PATH_PIECES, k=rng.randint(1, 3)))
        pairs.append(("".join(chosen), path))
    return pairs


GENERATED = _generated_pairs(GENERATED_PAIRS, SEED)
TARGETS = URL_TARGETS + _generated_targets(GENERATED_TARGETS, SEED)


def _ours(pattern: str, path: str) -> str:
    try:
        matcher = RouteMatcher([pattern])
    except ConfigurationError:
        return INVALID
    return MATCH if matcher(path) else NO_MATCH


@pytest.fixture(scope="module")
def clerk(conformance_node: str) -> dict[str, Any]:
    pairs = LISTED + GENERATED
    answers = run_node_raw(conformance_node, "route_matcher.mjs", {"pairs": pairs, "urls": TARGETS})
    return {
        "pairs": dict(zip(pairs, answers["pairs"], strict=True)),
        "urls": dict(zip(TARGETS, answers["urls"], strict=True)),
    }


def _judge(pattern: str, path: str, clerk_answer: str) -> str | None:
    """None when we agree with Clerk or differ as listed; otherwise what is wrong."""
    if clerk_answer != INVALID and (clerk_answer == MALFORMED) != (normalize_path(path) is None):
        return f"malformed for one side only: {pattern!r} {path!r}: clerk {clerk_answer}"
    ours = _ours(pattern, path)
    if ours == clerk_answer:
        return None
    if OPENNESS[ours] > OPENNESS[clerk_answer]:
        return f"MORE PUBLIC than Clerk: {pattern!r} {path!r}: clerk {clerk_answer}, ours {ours}"
    if (clerk_answer, ours) in INTENDED_DIFFERENCES:
        return None
    if ours == INVALID and any(re.search(construct, pattern) for construct in REFUSED_HERE):
        return None
    return f"unlisted difference: {pattern!r} {path!r}: clerk {clerk_answer}, ours {ours}"


@pytest.mark.parametrize(("pattern", "path"), LISTED, ids=[f"{p} {q}" for p, q in LISTED])
def test_listed_pair_matches_clerk(clerk: dict[str, Any], pattern: str, path: str) -> None:
    assert _judge(pattern, path, clerk["pairs"][(pattern, path)]) is None


def test_generated_pairs_match_clerk(clerk: dict[str, Any]) -> None:
    problems = [p for pair in GENERATED if (p := _judge(*pair, clerk["pairs"][pair]))]
    outcomes = {a: list(clerk["pairs"][pair] for pair in GENERATED).count(a) for a in OPENNESS}
    # The generator must exercise every outcome, or the comparison says little.
    assert all(outcomes[a] >= 50 for a in OPENNESS), outcomes
    assert problems == [], f"{len(problems)} of {len(GENERATED)} differ:\n" + "\n".join(problems[:40])


def _environ(target: str) -> dict[str, str]:
    """A WSGI environ as a server builds it for this raw target (strings hold the raw bytes as latin-1)."""
    raw = target.encode("utf-8").decode("latin-1")
    path_info = unquote_to_bytes(raw.split("?", 1)[0].encode("latin-1")).decode("latin-1")
    return {"REQUEST_URI": raw, "SCRIPT_NAME": "", "PATH_INFO": path_info}


@pytest.mark.parametrize("target", URL_TARGETS)
def test_request_pathname_is_whatwg_pathname(clerk: dict[str, Any], target: str) -> None:
    assert request_pathname(_environ(target)) == clerk["urls"][target]


def test_generated_request_pathnames_are_whatwg_pathnames(clerk: dict[str, Any]) -> None:
    wrong = [(t, request_pathname(_environ(t)), clerk["urls"][t]) for t in TARGETS if t not in URL_TARGETS]
    assert [w for w in wrong if w[1] != w[2]] == []
