"""Hostile input on the cookie, query and page path: every value gets Clerk's answer, never an exception.

A sibling subdomain can set any cookie for the app's domain, and anyone can put anything in a query string,
so each value here reaches the parsers before any signature check, on public pages too.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from werkzeug.test import EnvironBuilder, run_wsgi_app

from flask_clerk_security import ClerkSecurity, current_auth, jsvalues
from flask_clerk_security import cookies as cookies_module
from flask_clerk_security.cookies import cookie_suffix
from flask_clerk_security.testing import BackendAPIStandIn, ClerkTestIssuer

from .conftest import lines_run

DOC = {"Sec-Fetch-Dest": "document", "Accept": "text/html"}


@pytest.fixture(scope="module")
def issuer() -> ClerkTestIssuer:
    return ClerkTestIssuer(instance="live")


@pytest.fixture(scope="module")
def page_app(issuer: ClerkTestIssuer) -> Flask:
    """One public page; exceptions propagate (TESTING), so a parser that raises fails the test itself."""
    app = Flask("hostile_pages")
    app.config.update(TESTING=True, **issuer.config)
    clerk = ClerkSecurity(app)

    @app.get("/")
    @clerk.public
    def home() -> dict[str, Any]:
        return {"user_id": current_auth.user_id}

    return app


def _get(app: Flask, cookies: dict[str, str], query: dict[str, str] | None = None) -> Any:
    client = app.test_client()
    with warnings.catch_warnings():  # werkzeug warns about cookies browsers would drop; these are hostile
        warnings.simplefilter("ignore")
        for name, value in cookies.items():
            client.set_cookie(name, value)
    return client.get("/", query_string=query, headers=DOC)


def _stale(issuer: ClerkTestIssuer) -> str:
    return issuer.session_token(issued_at=int(time.time()) - 120)


@pytest.mark.parametrize(
    "count",
    ["0x" + "f" * 300, "0b" + "1" * 2000, "0o" + "7" * 700, "1e400", "9" * 5000],
    ids=["hex", "binary", "octal", "exponent", "digits"],
)
def test_a_huge_redirect_count_hand_shakes_as_clerk(page_app: Flask, issuer: ClerkTestIssuer, count: str) -> None:
    """``Number(count) || 0`` is Infinity in JavaScript; float(int(...)) overflowed here (a 500)."""
    response = _get(page_app, {"__session": _stale(issuer), "__client_uat": "1", "__clerk_redirect_count": count})
    assert response.status_code == 307
    assert "__clerk_redirect_count=Infinity; SameSite=Lax; HttpOnly; Max-Age=2" in response.headers.getlist(
        "Set-Cookie"
    )


@pytest.mark.parametrize(
    "uat",
    ["9" * 4400, "-" + "9" * 4400, " 9" + "0" * 5000 + "x", "0x" + "f" * 5000],
    ids=["digits", "negative", "trailing-junk", "hex"],
)
def test_a_huge_client_uat_reads_as_javascript_reads_it(page_app: Flask, issuer: ClerkTestIssuer, uat: str) -> None:
    """``Number.parseInt`` of 4,400 digits is +-Infinity; Python's int() refused it (ValueError, a 500)."""
    fresh = issuer.session_token()
    without_session = _get(page_app, {"__client_uat": uat})
    with_session = _get(page_app, {"__client_uat": uat, "__session": fresh})
    if uat.startswith("-"):  # -Infinity is truthy and below every iat: the fresh token signs in
        assert without_session.headers["x-clerk-auth-reason"] == "client-uat-but-no-session-token"
        assert with_session.status_code == 200 and with_session.get_json()["user_id"] == "user_123"
    else:
        assert without_session.status_code == 307
        assert with_session.headers["x-clerk-auth-reason"] == "session-token-iat-before-client-uat"


@pytest.mark.parametrize("referrer", ["http://[", "http://[::1", "https://a:b/", "http://x:99999/"])
def test_a_referrer_that_is_no_url_is_not_cross_origin(page_app: Flask, issuer: ClerkTestIssuer, referrer: str) -> None:
    """Clerk's ``new URL(referrer)`` throws and its catch answers "not cross-origin"; urlsplit raised here."""
    client = page_app.test_client(use_cookies=False)
    cookie = f"__session={issuer.session_token()}; __client_uat=1"
    response = client.get("/", headers={**DOC, "Referer": referrer, "Cookie": cookie})
    assert response.status_code == 200 and response.get_json() == {"user_id": "user_123"}


@pytest.mark.parametrize("referrer", ["http://[", "http://[::1/x"])
def test_a_cookie_write_whose_referrer_is_no_url_is_refused(issuer: ClerkTestIssuer, referrer: str) -> None:
    """The CSRF check reads the origin from ``Referer`` when there is no ``Origin``: no URL, no trust (403)."""
    app = Flask("csrf_referrer")
    app.config.update(TESTING=True, **issuer.config)
    ClerkSecurity(app)

    @app.post("/api/notes")
    def notes() -> dict[str, Any]:
        return {"user_id": current_auth.user_id}

    cookie = f"__session={issuer.session_token()}; __client_uat=1"
    response = app.test_client(use_cookies=False).post("/api/notes", headers={"Cookie": cookie, "Referer": referrer})
    assert response.status_code == 403


# ----------------------------------------------------------------------------------- close the class
# Requests built from arbitrary headers, cookies (all of Clerk's names, plain and suffixed), ``__clerk_*`` query
# parameters, paths and bodies, against every kind of route of one app. CI runs the "ci" profile (about 10 s);
# ``HYPOTHESIS_PROFILE=long python -m pytest tests/test_hostile_input.py`` runs a long search.
settings.register_profile("ci", max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
settings.register_profile("long", max_examples=20_000, deadline=None, suppress_health_check=list(HealthCheck))
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

COOKIE_NAMES = [
    "__session", "__client_uat", "__refresh", "__clerk_handshake", "__clerk_handshake_nonce", "__clerk_db_jwt",
    "__dev_session", "__clerk_redirect_count",
]  # fmt: skip
QUERY_NAMES = [
    "__clerk_handshake", "__clerk_handshake_nonce", "__clerk_db_jwt", "__dev_session", "__clerk_redirect_url",
    "__clerk_hs_reason", "__clerk_synced", "__clerk_help", "__clerk_api_version", "redirect_url", "format",
]  # fmt: skip
HEADER_NAMES = [
    "Authorization", "Accept", "Sec-Fetch-Dest", "Origin", "Referer", "Content-Type", "X-Forwarded-Proto",
    "X-Forwarded-Host", "X-Forwarded-For", "Host", "svix-id", "svix-timestamp", "svix-signature", "webhook-id",
    "Accept-Encoding", "If-None-Match", "User-Agent",
]  # fmt: skip
PATHS = [
    "/", "/public", "/protected", "/page", "/machine", "/validated", "/api/webhooks/clerk", "/missing",
    "/public%0A", "/%2e%2e/protected", "//protected", "/protected/", "/PUBLIC", "/%C5%BFign-in",
]  # fmt: skip
ODD_NUMBERS = [
    "0", "1", "-1", "0x10", "0x" + "f" * 300, "9" * 4400, "1e400", "Infinity", "NaN", " 3 ", "3", "2.5", "0b1",
    "0o7", "", "+5", "-0", "1_0", ".5",
]  # fmt: skip
URLISH = ["http://[", "https://a:b/", "null", "//", "http://x:99999", "https://accounts.example.test", "a b"]
#: Latin-1 (what a WSGI header can carry), control characters included, except the CR/LF that end a header.
_TEXT = st.text(alphabet=st.characters(min_codepoint=0x01, max_codepoint=0xFF, exclude_characters="\r\n"), max_size=40)


class Hostile:
    """Credentials the strategies draw from; ``signed`` ones carry a valid signature of this instance."""

    def __init__(self, issuer: ClerkTestIssuer, api_key: str) -> None:
        forger = ClerkTestIssuer(kid=issuer.kid, frontend_api=issuer.frontend_api, instance="live")
        now = int(time.time())
        no_iat = issuer.session_claims(user_id="user_signed")
        del no_iat["iat"]
        self.signed = [
            issuer.session_token(user_id="user_signed"),
            issuer.sign(no_iat),
            issuer.session_token(user_id="user_signed", issued_at=now - 3600),
            issuer.sign({"handshake": [f"__session={issuer.session_token(user_id='user_signed')}; Path=/"]}),
            issuer.sign({"handshake": "not a list"}),
            issuer.sign({"handshake": [f"__session={issuer.session_token()}"]}, headers={"cat": ["cl_B7d4PD111AAA"]}),
            api_key,
        ]
        self.unsigned = [
            forger.session_token(user_id="user_forged"),
            forger.sign({"handshake": [f"__session={forger.session_token(user_id='user_forged')}; Path=/"]}),
            forger.sign({"handshake": [f"__session={issuer.session_token(user_id='user_forged')}; Path=/"]}),
            forger.sign({"sub": "user_forged"}, headers={"typ": ["JWT"], "cat": {"a": 1}}),
            "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1c2VyX2ZvcmdlZCJ9.",
            "ak_" + "0" * 32,
            "mt_" + "0" * 32,
            "oat_" + "0" * 32,
        ]
        self.suffix = cookie_suffix(issuer.publishable_key)


def _hostile_app(issuer: ClerkTestIssuer, backend: BackendAPIStandIn) -> Flask:
    app = Flask("hostile")
    app.config.update(
        TESTING=True,  # exceptions propagate: any one fails the example
        CLERK_SECRET_KEY=issuer.secret_key,
        CLERK_PUBLISHABLE_KEY=issuer.publishable_key,
        CLERK_JWT_KEY=issuer.public_pem,
        CLERK_API_URL=backend.url,
        CLERK_WEBHOOK_SECRET=issuer.webhook_secret,
        CLERK_SIGN_IN_URL="/sign-in",
    )
    clerk = ClerkSecurity(app)

    def who() -> dict[str, Any]:
        return {"user": current_auth.user_id or current_auth.subject}

    app.add_url_rule("/public", "public", clerk.public(who), methods=["GET", "POST", "PUT"])
    app.add_url_rule("/", "home", clerk.public(who))
    app.add_url_rule("/protected", "protected", who, methods=["GET", "POST", "PUT"])
    app.add_url_rule("/page", "page", clerk.public(who))
    app.add_url_rule("/machine", "machine", clerk.require(accepts_token="any")(who), methods=["GET", "POST"])

    class Note(BaseModel):
        title: str
        count: int = 0

    @app.post("/validated")
    @clerk.public
    @clerk.validate(body=Note)
    def validated(body: Note) -> dict[str, Any]:
        return {"user": current_auth.user_id, "title": body.title}

    @clerk.webhooks.on("*")
    def any_event(event: Any) -> None:
        raise AssertionError("no random request carries a valid svix signature")

    app.register_blueprint(clerk.webhooks)
    return app


@pytest.fixture(scope="module")
def hostile_setup() -> Iterator[tuple[Flask, Hostile]]:
    issuer = ClerkTestIssuer(instance="live")
    with BackendAPIStandIn(issuer) as backend:
        api_key = backend.mint_api_key(subject="user_signed")
        yield _hostile_app(issuer, backend), Hostile(issuer, api_key)


@st.composite
def hostile_requests(draw: st.DrawFn, hostile: Hostile) -> tuple[dict[str, Any], bool]:
    """One request's parts, and whether any validly signed credential is in it."""
    signed = False

    def value(kind: str) -> str:
        nonlocal signed
        numeric = kind in ("__client_uat", "__clerk_redirect_count")
        kinds = ["number"] * 3 + ["text", "signed"] if numeric else ["signed", "unsigned", "number", "text"]
        choice = draw(st.sampled_from(kinds), label=kind)
        if choice == "signed":
            signed = True
            return draw(st.sampled_from(hostile.signed))
        if choice == "unsigned":
            return draw(st.sampled_from(hostile.unsigned))
        if choice == "number":
            return draw(st.sampled_from(ODD_NUMBERS))
        return draw(_TEXT)

    cookies = []
    for name in draw(st.lists(st.sampled_from(COOKIE_NAMES), max_size=5)):
        spelled = draw(st.sampled_from([name, name, f"{name}_{hostile.suffix}", f"{name}_x"]))
        cookies.append(f"{spelled}={value(name)}".replace(";", ""))
    headers: dict[str, str] = dict(DOC) if draw(st.booleans()) else {}  # half are page navigations
    for name in draw(st.lists(st.sampled_from(HEADER_NAMES), max_size=5, unique=True)):
        if name == "Authorization":
            headers[name] = draw(st.sampled_from(["Bearer ", "", "bearer ", "Basic "])) + value(name)
        elif name in ("Accept", "Sec-Fetch-Dest") and draw(st.booleans()):
            headers[name] = draw(st.sampled_from(["text/html", "document", "iframe", "empty", "application/json"]))
        else:
            headers[name] = draw(_TEXT | st.sampled_from(URLISH))
    if cookies:
        headers["Cookie"] = "; ".join(cookies)
    query = [(name, value(name)) for name in draw(st.lists(st.sampled_from(QUERY_NAMES), max_size=4))]
    body = draw(st.one_of(st.none(), st.binary(max_size=200), _TEXT.map(str.encode), st.just(b'{"title": "t"}')))
    path = draw(st.sampled_from(PATHS)) + draw(st.sampled_from(["", "/x", "%00", "%0a", ";a=b"]))
    method = draw(st.sampled_from(["GET", "GET", "GET", "POST", "PUT", "HEAD", "OPTIONS", "DELETE"]))
    return {"method": method, "path": path, "headers": headers, "query": query, "body": body}, signed


@PROFILE
@given(data=st.data())
def test_no_request_breaks_the_app_or_signs_in_without_a_signature(
    hostile_setup: tuple[Flask, Hostile], caplog: pytest.LogCaptureFixture, data: st.DataObject
) -> None:
    app, hostile = hostile_setup
    spec, signed = data.draw(hostile_requests(hostile))
    caplog.clear()
    environ = EnvironBuilder(
        spec["path"], method=spec["method"], headers=spec["headers"], query_string=spec["query"], data=spec["body"]
    ).get_environ()
    with caplog.at_level(logging.WARNING):
        # Straight to the app, as a server hands it the request: werkzeug's test client itself (3.1.0) cannot
        # build its own URL from some of these Host headers.
        response = app.response_class(*run_wsgi_app(app, environ, buffered=True))
    assert response.status_code < 500, response.data[:300]
    broken = [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info]
    assert not broken, broken[0].getMessage()
    answer = response.get_json(silent=True) if response.status_code == 200 else None
    if isinstance(answer, dict) and answer.get("user"):
        assert signed, f"signed in as {answer['user']} without a validly signed credential"
        assert answer["user"] == "user_signed"
    if spec["path"].startswith("/api/webhooks/clerk") and spec["method"] == "POST":
        assert response.status_code >= 300  # no random request carries a valid svix signature


def _unsigned(claims: str) -> str:
    """A token with these raw JSON claims and no signature: what a sibling subdomain can put in a cookie."""
    encode = lambda text: base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")  # noqa: E731
    return f"{encode(json.dumps({'alg': 'RS256'}))}.{encode(claims)}.AAAA"


@pytest.mark.parametrize(
    "iat",
    ["[" + ",".join(["7"] * 5800) + "]", "[[" + ",".join(["1e-7"] * 2400) + "]]", "[" + ",".join(["[]"] * 3500) + "]"],
    ids=["numbers", "floats", "arrays"],
)
def test_an_iat_of_thousands_of_items_is_compared_without_writing_it_out(
    page_app: Flask, issuer: ClerkTestIssuer, iat: str
) -> None:
    """``iat < __client_uat`` is checked before the signature: JavaScript writes an array out (``String()``) to
    compare it with a number, which for 5,800 numbers took 13 ms a request. An array of two or more items writes
    out with a ``,``, which is never a number: NaN, never less, whatever the items (counted in lines run)."""
    cookies = {"__session": _unsigned(f'{{"iss":"https://{issuer.frontend_api}","iat":{iat}}}'), "__client_uat": "1"}
    assert len(cookies["__session"]) <= 16384
    with lines_run(cookies_module.__file__, jsvalues.__file__) as lines:
        response = _get(page_app, cookies)
    assert response.status_code == 200 and response.headers["x-clerk-auth-reason"] == "token-invalid-signature"
    assert lines[0] <= 5000, lines


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(alphabet=" 0123456789.eE+-xabInfity,\t"),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner, max_size=2),
    max_leaves=10,
)


@given(JSON_VALUES, JSON_VALUES)
def test_comparing_without_writing_arrays_out_answers_as_writing_them(left: Any, right: Any) -> None:
    """``js_less_than`` skips ``String()`` of arrays compared with numbers; the answer is the one the written-out
    strings give (``String()``, then ``Number()``, then ``<``)."""
    from flask_clerk_security.cookies import _as_number, _to_number, _to_primitive, js_less_than

    for value in (left, right):
        written = _to_number(_to_primitive(value))
        assert _as_number(value) == written or (math.isnan(_as_number(value)) and math.isnan(written)), value
    both_strings = all(isinstance(_to_primitive(value), str) for value in (left, right))
    if not both_strings:
        assert js_less_than(left, right) == (_to_number(_to_primitive(left)) < _to_number(_to_primitive(right)))
