"""``x-clerk-auth-message``: Clerk's words for a refused token, on every refusal Clerk sends it for, and never a
value that could hurt: no token, no secret key, no raw control character, nothing a header cannot carry, and no
exception whatever a token's author writes into its header or claims.

(Agreement with Clerk's own wording is tests/test_conformance.py and tests/test_conformance_pages.py.)
"""

from __future__ import annotations

import base64
import json
import re
import time
import warnings
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_clerk_security import ClerkSecurity, TokenVerificationError, current_auth, jsvalues, tokens, verify_token
from flask_clerk_security.backend_api import BackendAPIError
from flask_clerk_security.errors import MAX_AUTH_MESSAGE, auth_message_header
from flask_clerk_security.testing import BackendAPIStandIn, ClerkTestIssuer

from .conftest import lines_run

DOC = {"Sec-Fetch-Dest": "document", "Accept": "text/html"}
#: What a sent x-clerk-auth-message may hold: printable Latin-1 only, at most MAX_AUTH_MESSAGE characters.
SENDABLE = re.compile(rf"[\x20-\x7e\xa0-\xff]{{1,{MAX_AUTH_MESSAGE}}}")


# ------------------------------------------------------------------------------------------ the header value
@pytest.mark.parametrize(
    ("message", "header"),
    [
        (None, None),
        ("", None),
        (" \t JWT is expired. (reason=token-expired)\r\n", "JWT is expired. (reason=token-expired)"),
        ('Invalid JWT type "caf\u00e9 \u00ff".', 'Invalid JWT type "caf\u00e9 \u00ff".'),
        ('Invalid JWT type "\u0100".', None),  # beyond Latin-1: Clerk's headers.set throws, no header
        ('Invalid JWT type "\U0001f600".', None),
        ("a\x00b", None),
        ("a\nb", None),
        ("a\rb", None),
        ("a\tb", None),  # Clerk sends these three; a raw control character is never sent here
        ("a\x7fb", None),
        ("a\x85b", None),
    ],
)  # fmt: skip
def test_header_value_is_the_message_or_nothing(message: str | None, header: str | None) -> None:
    assert auth_message_header(message) == header


def test_a_long_message_is_cut_in_the_middle_keeping_its_reason() -> None:
    suffix = " (reason=token-invalid, token-carrier=header)"
    header = auth_message_header(f'Invalid JWT type "{"x" * 5000}". Make sure.{suffix}')
    assert header is not None and len(header) == MAX_AUTH_MESSAGE
    assert header.startswith('Invalid JWT type "xxx') and header.endswith(f"x...{suffix}")
    assert auth_message_header("y" * 5000) == "y" * (MAX_AUTH_MESSAGE - 3) + "..."


def test_full_message_is_clerks_get_full_message() -> None:
    plain = TokenVerificationError("token-invalid-signature", "JWT signature is invalid.")
    assert plain.full_message("cookie") == (
        "JWT signature is invalid. (reason=token-invalid-signature, token-carrier=cookie)"
    )
    with_action = TokenVerificationError("token-invalid", "Invalid session token category.", "Make sure.")
    assert with_action.full_message("header") == (
        "Invalid session token category. Make sure. (reason=token-invalid, token-carrier=header)"
    )


# ------------------------------------------------------------------------------------- where it is sent
def _app(issuer: ClerkTestIssuer, **config: Any) -> tuple[Flask, ClerkSecurity]:
    app = Flask("auth_message")
    app.config.update(TESTING=True, **issuer.config, **config)
    clerk = ClerkSecurity(app)

    @app.route("/api/me", methods=["GET", "POST"])
    def me() -> dict[str, Any]:
        return {"user_id": current_auth.user_id}

    @app.get("/public")
    @clerk.public
    def public() -> dict[str, Any]:
        return {"user_id": current_auth.user_id}

    return app, clerk


@pytest.fixture(scope="module")
def live_issuer() -> ClerkTestIssuer:
    """A production instance's issuer (a development one needs the dev-browser cookie first)."""
    return ClerkTestIssuer(instance="live")


def _stale_cookies(issuer: ClerkTestIssuer) -> dict[str, str]:
    return {"__session": issuer.session_token(issued_at=int(time.time()) - 120), "__client_uat": "1"}


def test_cookie_refusals_carry_the_message_with_token_carrier_cookie(live_issuer: ClerkTestIssuer) -> None:
    """An API call with an expired session cookie: 401 with Clerk's message; a page: the handshake carries it."""
    app, _ = _app(live_issuer)
    client = app.test_client()
    for name, value in _stale_cookies(live_issuer).items():
        client.set_cookie(name, value)
    refused = client.get("/api/me", headers={"Sec-Fetch-Dest": "empty"})
    assert refused.status_code == 401
    message = refused.headers["x-clerk-auth-message"]
    assert re.fullmatch(
        r"JWT is expired\. Expiry date: .* GMT, Current date: .* GMT\. \(reason=token-expired, token-carrier=cookie\)",
        message,
    )
    handshake = client.get("/public", headers=DOC)
    assert handshake.status_code == 307 and handshake.headers["x-clerk-auth-status"] == "handshake"
    assert handshake.headers["x-clerk-auth-message"].endswith("(reason=token-expired, token-carrier=cookie)")
    public = client.get("/public", headers={"Sec-Fetch-Dest": "empty"})
    assert public.status_code == 200 and public.headers["x-clerk-auth-message"].endswith("token-carrier=cookie)")


def test_no_message_where_clerk_has_none(live_issuer: ClerkTestIssuer) -> None:
    """No cookies, a signed-in session, a machine JWT on a session route: Clerk's state has no message."""
    app, _ = _app(live_issuer)
    client = app.test_client()
    assert client.get("/api/me").headers["x-clerk-auth-reason"] == "session-token-and-uat-missing"
    assert "x-clerk-auth-message" not in client.get("/api/me").headers
    assert "x-clerk-auth-message" not in client.get("/public", headers=live_issuer.auth_header()).headers
    mismatch = client.get("/api/me", headers={"Authorization": f"Bearer {live_issuer.m2m_jwt()}"})
    assert mismatch.headers["x-clerk-auth-reason"] == "token-type-mismatch"
    assert "x-clerk-auth-message" not in mismatch.headers


def test_machine_token_refusals_carry_clerks_machine_message(
    clerk_issuer: ClerkTestIssuer, clerk_backend_api: BackendAPIStandIn
) -> None:
    app, _ = _app(
        clerk_issuer,
        CLERK_SECRET_KEY=clerk_issuer.secret_key,
        CLERK_API_URL=clerk_backend_api.url,
        CLERK_ACCEPTS_TOKEN="any",
    )
    refused = app.test_client().get("/api/me", headers={"Authorization": "Bearer ak_unknown"})
    assert refused.status_code == 401
    assert refused.headers["x-clerk-auth-message"] == "API key not found (code=token-invalid, status=404)"


def test_a_backend_api_message_repeating_a_secret_is_not_passed_on(
    clerk_issuer: ClerkTestIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clerk quotes the Backend API's own 401 message; one that repeats the secret key (or the token) is replaced
    by Clerk's default text."""
    secret = clerk_issuer.secret_key

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise BackendAPIError("Backend API answered 401", 401, {"errors": [{"message": f"bad key {secret}"}]})

    monkeypatch.setattr("flask_clerk_security.backend_api.call", refuse)
    app, _ = _app(clerk_issuer, CLERK_SECRET_KEY=secret, CLERK_API_URL="http://127.0.0.1:9", CLERK_ACCEPTS_TOKEN="any")
    public = app.test_client().get("/public", headers={"Authorization": "Bearer ak_unknown"})
    assert public.headers["x-clerk-auth-message"] == "Invalid secret key (code=secret-key-invalid, status=401)"
    assert BackendAPIError("", 401, {"errors": [{"message": "fine"}]}).error_message(secret) == "fine"


def test_an_unrecognised_machine_jwt_is_refused_in_clerks_words(clerk_issuer: ClerkTestIssuer) -> None:
    """verifyMachineAuthToken's refusal of a JWT that is neither an M2M nor an OAuth token."""
    from flask_clerk_security.state import get_state

    app, _ = _app(clerk_issuer)
    with app.app_context():
        with pytest.raises(TokenVerificationError) as refused:
            get_state(app).machine._verify_jwt(clerk_issuer.session_token())
    assert refused.value.message == (
        "Invalid JWT type: JWT. Expected one of: at+jwt, application/at+jwt for OAuth, or sub starting with 'mch_' "
        "for M2M"
    )


# ----------------------------------------------------------------------------------------- hostile tokens
def _segment(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return base64.urlsafe_b64encode(text.encode("utf-8", "surrogatepass")).decode().rstrip("=")


def _token(issuer: ClerkTestIssuer, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """A token signed by the issuer's key over exactly these (hostile) header and claims, as raw UTF-8 (a lone
    surrogate as the bytes no decoder accepts)."""
    signing_input = f"{_segment(header)}.{_segment(claims)}"
    signature = issuer.private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).decode().rstrip('=')}"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**40), max_value=10**40) | st.floats(allow_nan=False)
    | st.text(max_size=40) | st.sampled_from(['"', "\\", "\x7f", "\x85", "\u0100", "\ud800", "\u2028", "x" * 2000]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip
HEADER_NAMES = st.sampled_from(["typ", "alg", "kid", "cat"])
CLAIM_NAMES = st.sampled_from(["sub", "azp", "iss", "aud", "exp", "nbf", "iat"])


@pytest.fixture(scope="module")
def hostile_app() -> tuple[Flask, ClerkTestIssuer]:
    issuer = ClerkTestIssuer(instance="live")
    app, clerk = _app(
        issuer,
        CLERK_AUTHORIZED_PARTIES=["http://localhost"],
        CLERK_ISSUER=[f"https://{issuer.frontend_api}"],
        CLERK_AUDIENCE=["https://api.example.com"],
        CLERK_SECRET_KEY=issuer.secret_key,
    )

    @app.get("/any")
    @clerk.require(accepts_token="any")
    def any_token() -> dict[str, Any]:
        return {"subject": current_auth.subject}

    return app, issuer


def _sent_safely(response: Any, token: str, issuer: ClerkTestIssuer) -> None:
    assert response.status_code < 500
    message = response.headers.get("x-clerk-auth-message")
    if message is not None:
        assert SENDABLE.fullmatch(message), message
        assert token not in message and token.split(".")[2] not in message and issuer.secret_key not in message


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header_name=HEADER_NAMES, header_value=JSON_VALUES, claim_name=CLAIM_NAMES, claim_value=JSON_VALUES)
def test_hostile_header_and_claims_never_raise_nor_leak(
    hostile_app: tuple[Flask, ClerkTestIssuer], header_name: str, header_value: Any, claim_name: str, claim_value: Any
) -> None:
    """Any JSON in ``typ``/``alg``/``kid``/``cat`` and in the claims Clerk's messages quote, signed with the real
    key: in the Authorization header (401) and in the session cookie (page and API): an answer, and a message that
    is sendable, bounded and holds neither the token nor the secret key."""
    app, issuer = hostile_app
    claims = {**issuer.session_claims(), claim_name: claim_value}
    token = _token(issuer, {"alg": "RS256", "typ": "JWT", "kid": issuer.kid, header_name: header_value}, claims)
    client = app.test_client()
    _sent_safely(client.get("/api/me", headers={"Authorization": f"Bearer {token}"}), token, issuer)
    with warnings.catch_warnings():  # werkzeug warns of a cookie browsers would drop; this one is hostile
        warnings.simplefilter("ignore")
        client.set_cookie("__session", token)
    client.set_cookie("__client_uat", "1")
    _sent_safely(client.get("/public", headers=DOC), token, issuer)
    _sent_safely(client.post("/api/me", headers={"Sec-Fetch-Dest": "empty"}), token, issuer)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["oauth", "m2m"]), claim_name=CLAIM_NAMES, claim_value=JSON_VALUES)
def test_hostile_machine_jwts_never_raise_nor_leak(
    hostile_app: tuple[Flask, ClerkTestIssuer], kind: str, claim_name: str, claim_value: Any
) -> None:
    """OAuth and M2M JWTs with any JSON in the claims Clerk's machine messages quote (``aud`` under
    ``CLERK_AUDIENCE`` too), on a route accepting every token type."""
    app, issuer = hostile_app
    now = int(time.time())
    claims = {"sub": "mch_1" if kind == "m2m" else "user_1", "iat": now, "exp": now + 60, claim_name: claim_value}
    header = {"alg": "RS256", "kid": issuer.kid, "typ": "at+jwt" if kind == "oauth" else "JWT"}
    token = _token(issuer, header, claims)
    _sent_safely(app.test_client().get("/any", headers={"Authorization": f"Bearer {token}"}), token, issuer)


# ----------------------------------------------------------------------------------------- cost of quoting
def _unsigned(header: str, claims: str = "{}") -> str:
    """A token whose header and claims are these raw JSON texts, with no signature (none is checked first)."""
    encode = lambda text: base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")  # noqa: E731
    return f"{encode(header)}.{encode(claims)}.AAAA"


@pytest.mark.parametrize(
    "header",
    [
        '{"alg":[' + ",".join(["7"] * 5900) + "]}",  # 5,900 numbers: each written as JavaScript writes it
        '{"alg":"RS256","typ":[' + ",".join(["1e-7"] * 2400) + "]}",
        '{"alg":[' + ",".join(["[]"] * 4000) + "]}",  # 4,000 arrays
        '{"alg":{' + ",".join(f'"{i}":0' for i in range(1200)) + "}}",  # 1,200 keys, array indices sorted first
        '{"alg":"' + "\\u0001" * 2000 + '"}',  # 2,000 characters escaped
    ],
    ids=["numbers", "floats", "arrays", "keys", "escapes"],
)
def test_quoting_a_huge_value_costs_what_the_header_can_show(
    live_issuer: ClerkTestIssuer, header: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 16 KB token needs no key to have its ``alg``/``typ`` quoted: written whole, one refusal cost 10 to 30 ms
    of CPU (a garbage token: 0.5 ms). Only the first MAX_AUTH_MESSAGE characters can ever be sent, so quoting
    stops a little past them (the message says ``...``): the header sent is the same, the work bounded (counted
    as the lines of jsvalues.py run: a clock would make the test as flaky as the machine it runs on)."""
    token = _unsigned(header)
    assert len(token) <= 16384
    app, _ = _app(live_issuer)
    client = app.test_client()
    with lines_run(jsvalues.__file__) as lines:
        response = client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    message = response.headers["x-clerk-auth-message"]
    assert response.status_code == 401 and SENDABLE.fullmatch(message) and "..." in message
    assert message.startswith("Invalid JWT ") and message.endswith("token-carrier=header)")
    with pytest.raises(TokenVerificationError) as refused:
        verify_token(token, jwt_key=live_issuer.public_pem)
    assert len(refused.value.message) <= 2 * MAX_AUTH_MESSAGE
    # The header is the one the whole message gives: what is cut is never sent.
    monkeypatch.setattr(tokens, "QUOTE_LIMIT", None)
    with pytest.raises(TokenVerificationError) as whole:
        verify_token(token, jwt_key=live_issuer.public_pem)
    assert len(whole.value.message) > 3 * MAX_AUTH_MESSAGE
    assert auth_message_header(whole.value.full_message("header")) == message
    assert lines[0] <= 40 * MAX_AUTH_MESSAGE, lines  # written whole: 53,000 to 153,000 lines
