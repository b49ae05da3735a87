"""Bad input gets a 401 with a short JSON body: never a 5xx, never a stack trace, never the reason."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
#: Where this package answers differently from Clerk's authenticateRequest, and why (see test_conformance.py).
#: Clerk signs a request in whatever the type of these claims; it never issues them with another type, and
#: Auth.from_claims refuses them (token-invalid): stricter than Clerk, never more public.
TYPED_CLAIMS: dict[str, type] = {"sid": str, "sts": str, "fea": str, "pla": str, "act": dict}


def _refused_here(case: str) -> bool:
    claim, _, name = case.partition("=")
    value = VALUES[name]
    if case == "sub=empty":  # Clerk signs in with userId ""; a session without a user is signed out here
        return True
    if claim == "o":  # read only when truthy (as Clerk reads it), then it must be an object
        return bool(value) and not isinstance(value, dict)
    expected = TYPED_CLAIMS.get(claim)
    return expected is not None and value is not None and not isinstance(value, expected)


def _claims_token(issuer: ClerkTestIssuer, case: str) -> str:
    claim, _, name = case.partition("=")
    claims = issuer.session_claims(org={"id": "org_1", "role": "admin", "permissions": {"a": ["b"]}})
    claims[claim] = VALUES[name]
    return issuer.sign(claims)


@pytest.fixture(scope="module")
def clerk_claim_outcomes(clerk_issuer: ClerkTestIssuer) -> dict[str, dict[str, Any]]:
    """Clerk's authenticateRequest on each case's token (Bearer header), in one node process."""
    cases = [
        {"id": case, "token": _claims_token(clerk_issuer, case), "jwtKey": clerk_issuer.public_pem,
         "authorizedParties": None, "clockSkewInMs": 5000, "has": []}
        for case in CLAIM_CASES
    ]  # fmt: skip
    return run_node("clerk_backend.mjs", cases)


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


@pytest.mark.parametrize("payload", [b"[]", b"null", b"42", b'"s"', b"{", b'{"exp": Infinity}', b'{"a": NaN}'])
def test_payloads_that_are_not_objects(client: Any, clerk_issuer: ClerkTestIssuer, payload: bytes) -> None:
    header = base64.urlsafe_b64encode(json.dumps({"alg": "RS256", "kid": clerk_issuer.kid}).encode()).decode()
    body = base64.urlsafe_b64encode(payload).decode()
    response = client.get("/api/me", headers={"Authorization": f"Bearer {header}.{body}.c2ln"})
    assert_clean_401(response)
    assert response.headers["x-clerk-auth-reason"] == "token-invalid"


def test_deeply_nested_json_is_refused(client: Any) -> None:
    nested = b"[" * 100_000 + b"]" * 100_000
    part = base64.urlsafe_b64encode(nested).decode()
    assert_clean_401(client.get("/api/me", headers={"Authorization": f"Bearer {part}.{part}.x"}))
