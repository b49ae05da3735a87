"""Bad input gets a 401 with a short JSON body: never a 5xx, never a stack trace, never the reason."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_clerk_security.testing import ClerkTestIssuer


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


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    claim=st.sampled_from(["sub", "sid", "exp", "nbf", "iat", "azp", "v", "o", "fea", "pla", "org_permissions", "act"]),
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
    assert response.status_code in (200, 401)
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
