"""Bad input gets a 401 with a short JSON body: never a 5xx, never a stack trace, never the reason."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import EnvironBuilder, run_wsgi_app

from flask_clerk_security import ClerkSecurity, TokenVerificationError, verify_token
from flask_clerk_security.testing import ClerkTestIssuer

from .oracle import run_node


def assert_clean_401(response: Any) -> None:
    assert response.status_code == 401
    assert response.get_json() == {"error": "unauthorized"}
    assert b"Traceback" not in response.data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=400))
def test_random_authorization_headers(client: Any, value: str) -> None:
    assert_clean_401(client.get("/api/me", headers={"Authorization": value}))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    parts=st.lists(st.binary(max_size=60), min_size=3, max_size=3),
    uat=st.text(alphabet="0123456789abc-", max_size=12),
)
def test_random_jwt_shaped_cookies(client: Any, parts: list[bytes], uat: str) -> None:
    token = ".".join(base64.urlsafe_b64encode(part).decode().rstrip("=") for part in parts)
    client.set_cookie("__session", token)
    client.set_cookie("__client_uat", uat)
    assert_clean_401(client.get("/api/me"))


CLAIMS = ["sub", "sid", "exp", "nbf", "iat", "azp", "v", "o", "fea", "pla", "org_permissions", "act", "sts", "fva"]
VALUES: dict[str, Any] = {
    "null": None, "true": True, "false": False, "zero": 0, "seven": 7, "minus": -1, "half": 1.5, "huge": 1e20,
    "empty": "", "text": "x", "scoped": "o:x", "two-colons": "u:a:b", "ints": [1, 2], "strs": ["org:a:b"],
    "nothing": [], "object": {"a": 1}, "empty-object": {}, "org": {"id": "org_2", "rol": "admin"},
}  # fmt: skip
CLAIM_CASES = [f"{claim}={name}" for claim in CLAIMS for name in VALUES]
def _refused_here(case: str) -> bool:
    """Where this package answers differently from Clerk's authenticateRequest, and why: Clerk signs a request in
    with userId "" (an empty ``sub``); a session without a user is signed out here. Every other claim of any type
    gets Clerk's answer (oddly typed optional claims read as absent: see test_conformance.UNTYPED_FIELDS)."""
    return case == "sub=empty"


def _claims_token(issuer: ClerkTestIssuer, case: str) -> str:
    claim, _, name = case.partition("=")
    claims = issuer.session_claims(org={"id": "org_1", "role": "admin", "permissions": {"a": ["b"]}})
    claims[claim] = VALUES[name]
    return issuer.sign(claims)


@pytest.fixture(scope="module")
def clerk_claim_outcomes(clerk_issuer: ClerkTestIssuer, conformance_node: str) -> dict[str, dict[str, Any]]:
    """Clerk's authenticateRequest on each case's token (Bearer header), in one node process."""
    cases = [
        {"id": case, "token": _claims_token(clerk_issuer, case), "jwtKey": clerk_issuer.public_pem,
         "authorizedParties": None, "clockSkewInMs": 5000, "has": []}
        for case in CLAIM_CASES
    ]  # fmt: skip
    return run_node(conformance_node, "clerk_backend.mjs", cases)


@pytest.mark.parametrize("case", CLAIM_CASES)
def test_signed_claims_of_any_type_get_clerks_answer(
    client: Any, clerk_issuer: ClerkTestIssuer, clerk_claim_outcomes: dict[str, dict[str, Any]], case: str
) -> None:
    # A signed token whose claims have any JSON type: signed in exactly when Clerk signs the request in and can
    # build its auth object (a signed-out or unbuildable one is a 401 here), never a 5xx.
    clerk = clerk_claim_outcomes[case]
    clerk_signs_in = (
        clerk["request"]["status"] == "signed-in" and "authError" not in clerk and clerk["auth"]["isAuthenticated"]
    )
    response = client.get("/api/me", headers={"Authorization": f"Bearer {_claims_token(clerk_issuer, case)}"})
    if clerk_signs_in and not _refused_here(case):
        assert response.status_code == 200, clerk
        return
    assert response.status_code == 401, clerk
    assert response.get_json() == {"error": "unauthorized"}
    if clerk_signs_in and case != "sub=empty":
        assert response.headers["x-clerk-auth-reason"] == "token-invalid"
    elif not clerk_signs_in and clerk["request"]["status"] == "signed-out":
        assert response.headers["x-clerk-auth-reason"] == clerk["request"]["reason"]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    claim=st.sampled_from(CLAIMS),
    value=st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False),
        st.text(max_size=20),
        st.lists(st.integers(), max_size=3),
        st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    ),
)
def test_signed_claims_of_any_type_never_break_the_app(
    client: Any, clerk_issuer: ClerkTestIssuer, claim: str, value: Any
) -> None:
    claims = clerk_issuer.session_claims(org={"id": "org_1", "role": "admin", "permissions": {"a": ["b"]}})
    claims[claim] = value
    response = client.get("/api/me", headers={"Authorization": f"Bearer {clerk_issuer.sign(claims)}"})
    assert response.status_code in (200, 401)  # which one, per claim shape, is pinned against Clerk above
    assert b"Traceback" not in response.data


def test_huge_header_is_refused_cheaply(client: Any) -> None:
    assert_clean_401(client.get("/api/me", headers={"Authorization": "Bearer " + "a" * 200_000}))


def test_non_utf8_bytes(client: Any) -> None:
    latin = "Bearer \xff\xfe.\xe9\xe8.\x80"
    assert_clean_401(client.get("/api/me", headers={"Authorization": latin}))
    client.set_cookie("__session", "\xff\xfe")
    client.set_cookie("__client_uat", "1")
    assert_clean_401(client.get("/api/me"))


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        # Clerk's decodeJwt takes any JSON value (JSON.parse), so the signature is what fails.
        (b"[]", "token-invalid-signature"),
        (b"null", "token-invalid-signature"),
        (b"42", "token-invalid-signature"),
        (b'"s"', "token-invalid-signature"),
        (b"{", "token-invalid"),
        (b'{"exp": Infinity}', "token-invalid"),
        (b'{"a": NaN}', "token-invalid"),
    ],
)
def test_payloads_that_are_not_objects(client: Any, clerk_issuer: ClerkTestIssuer, payload: bytes, reason: str) -> None:
    header = base64.urlsafe_b64encode(json.dumps({"alg": "RS256", "kid": clerk_issuer.kid}).encode()).decode()
    body = base64.urlsafe_b64encode(payload).decode()
    response = client.get("/api/me", headers={"Authorization": f"Bearer {header}.{body}.c2ln"})
    assert_clean_401(response)
    assert response.headers["x-clerk-auth-reason"] == reason


def test_deeply_nested_json_is_refused(client: Any) -> None:
    nested = b"[" * 100_000 + b"]" * 100_000
    part = base64.urlsafe_b64encode(nested).decode()
    assert_clean_401(client.get("/api/me", headers={"Authorization": f"Bearer {part}.{part}.x"}))


_MEMBERS = [
    *("typ", "cat", "alg", "kid"),
    *("sub", "sid", "sts", "exp", "nbf", "iat", "azp", "v", "o", "fea", "pla", "fva", "act", "jti"),
    *("org_id", "org_role", "org_slug", "org_permissions", "id", "rol", "slg", "per", "fpm", "scp", "client_id"),
]
_ATOMS = [
    *("null", "true", "false", "0", "-1", "1.5", "1e400", "-1e400", "9" * 400, "-" + "9" * 400, "9" * 5000),
    *('"JWT"', '"RS256"', '"at+jwt"', '"cl_B7d4PD111AAA"', '"cl_B7d4PD333AAA"', '"mch_1"', '"user_1"', '"pending"'),
]
#: Any JSON text, with the values that broke parsers before: huge numbers, lists and objects where strings go.
_JSON = st.recursive(
    st.sampled_from(_ATOMS) | st.integers().map(str) | st.text(max_size=8).map(json.dumps),
    lambda inner: st.lists(inner, max_size=3).map(lambda items: "[" + ",".join(items) + "]")
    | st.dictionaries(st.sampled_from(_MEMBERS) | st.text(max_size=4), inner, max_size=4).map(
        lambda members: "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in members.items()) + "}"
    ),
    max_leaves=12,
)


def _members(base: dict[str, Any]) -> st.SearchStrategy[str]:
    """A JSON object: ``base``, then generated members (which win, as in JSON.parse), or any JSON text."""
    plain = json.dumps(base)[1:-1]
    overrides = st.dictionaries(st.sampled_from(_MEMBERS), _JSON, max_size=4)
    objects = overrides.map(lambda o: "{" + ",".join([plain, *(f"{json.dumps(k)}:{v}" for k, v in o.items())]) + "}")
    return objects | _JSON


def _segment(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), signed=st.booleans())
def test_any_json_header_and_payload_get_a_clerk_answer(
    app_factory: Any, clerk_issuer: ClerkTestIssuer, data: st.DataObject, signed: bool
) -> None:
    """Signed with the issuer's real key or not: TokenVerificationError or claims, and never a 5xx."""
    header = data.draw(_members({"alg": "RS256", "typ": "JWT", "kid": clerk_issuer.kid}), label="header")
    payload = data.draw(_members(clerk_issuer.session_claims()), label="payload")
    signing_input = f"{_segment(header)}.{_segment(payload)}"
    signature = (
        clerk_issuer.private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        if signed
        else data.draw(st.binary(max_size=300), label="signature")
    )
    token = f"{signing_input}.{base64.urlsafe_b64encode(signature).decode().rstrip('=')}"
    try:
        verify_token(token, jwt_key=clerk_issuer.public_pem)
    except TokenVerificationError:
        pass
    # "any" routes M2M (sub mch_...) and OAuth (typ at+jwt) JWTs to the machine verifier; JWTs never reach
    # the Backend API, so the secret key is never used.
    for accepts in ("session_token", "any"):
        app, _ = app_factory({"CLERK_ACCEPTS_TOKEN": accepts, "CLERK_SECRET_KEY": "sk_test_" + "0" * 40})
        response = app.test_client().get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code in (200, 401), response.data


@pytest.mark.parametrize("iat", ["9" * 400, "-" + "9" * 400, "9" * 5000, "1e400"])
def test_cookie_token_with_a_huge_iat_gets_an_answer(iat: str) -> None:
    """A sibling subdomain can set ``__session``: its ``iat`` is compared with ``__client_uat`` before any
    signature check. JavaScript reads a 400-digit number as Infinity; a float() of it must not overflow."""
    issuer = ClerkTestIssuer(instance="live")
    app = Flask("huge_iat")
    app.config.update(TESTING=True, **issuer.config)
    ClerkSecurity(app)

    @app.get("/dashboard")
    def dashboard() -> str:
        return "page"

    claims = json.dumps(issuer.session_claims()).replace('"iat": ', f'"iat": {iat}, "was": ', 1)
    header = json.dumps({"alg": "RS256", "typ": "JWT", "kid": issuer.kid})
    signing_input = f"{_segment(header)}.{_segment(claims)}"
    signature = issuer.private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    client = app.test_client()
    client.set_cookie("__session", f"{signing_input}.{base64.urlsafe_b64encode(signature).decode().rstrip('=')}")
    client.set_cookie("__client_uat", "1")
    response = client.get("/dashboard", headers={"Sec-Fetch-Dest": "document", "Accept": "text/html"})
    assert response.status_code < 500


@pytest.mark.parametrize("category", ["[]", '["cl_B7d4PD111AAA"]', '{"a":1}', "1", "null"])
@pytest.mark.parametrize("where", ["header", "cookie", "handshake"])
def test_a_header_category_of_any_json_type_gets_an_answer(where: str, category: str) -> None:
    """``cat`` (and ``typ``) are looked up in sets of strings; a list there raised TypeError on public pages."""
    issuer = ClerkTestIssuer(instance="live")
    app = Flask("odd_category")
    app.config.update(TESTING=True, **issuer.config)
    clerk = ClerkSecurity(app)

    @app.get("/")
    @clerk.public
    def home() -> str:
        return "page"

    header = f'{{"alg":"RS256","typ":"JWT","kid":"{issuer.kid}","cat":{category}}}'
    signing_input = f"{_segment(header)}.{_segment(json.dumps(issuer.session_claims()))}"
    signature = issuer.private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    token = f"{signing_input}.{base64.urlsafe_b64encode(signature).decode().rstrip('=')}"
    client = app.test_client()
    headers = {"Sec-Fetch-Dest": "document", "Accept": "text/html"}
    if where == "header":
        headers["Authorization"] = f"Bearer {token}"
    elif where == "cookie":
        client.set_cookie("__session", token)
        client.set_cookie("__client_uat", "1")
    query = {"__clerk_handshake": token} if where == "handshake" else None
    response = client.get("/", query_string=query, headers=headers)
    assert response.status_code < 500


@pytest.mark.parametrize("testing", [False, True])
@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/api/me", {"Accept": "text/html", "Sec-Fetch-Dest": "document"}),
        ("/api/me", {"Cookie": "__session=x; __client_uat=1"}),
        ("/api/me", {"Authorization": "Bearer x", "Accept": "text/html", "Sec-Fetch-Dest": "document"}),
    ],
)
def test_a_host_whose_port_is_no_port_gets_400(
    clerk_issuer: ClerkTestIssuer, testing: bool, path: str, headers: dict[str, str]
) -> None:
    """Werkzeug cannot rebuild request.url for ``Host: a:99999999999``: the HTTPS redirect, the cookie path and
    the sign-in redirect read it, so the untrusted header raised ValueError (a 500)."""
    app = Flask(__name__)
    app.config.update(clerk_issuer.config, TESTING=testing, CLERK_SIGN_IN_URL="/sign-in")
    ClerkSecurity(app)
    app.add_url_rule("/api/me", "me", lambda: {"ok": True})
    environ = EnvironBuilder(path, headers=headers).get_environ()
    environ["HTTP_HOST"] = "example.com:99999999999999999999"  # the test client itself cannot build this URL
    body, status, _ = run_wsgi_app(app, environ, buffered=True)
    assert status == "400 BAD REQUEST"
    assert json.loads(b"".join(body)) == {"error": "bad_request"}
