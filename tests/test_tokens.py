"""verify_token: Clerk's rules, order and reason strings, without Flask."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from flask_clerk_security import TokenVerificationError, verify_token
from flask_clerk_security.testing import ClerkTestIssuer


def reason(token: str, issuer: ClerkTestIssuer, **options: object) -> str:
    with pytest.raises(TokenVerificationError) as info:
        verify_token(token, jwt_key=issuer.public_pem, **options)  # type: ignore[arg-type]
    return info.value.reason


def b64(data: dict[str, object] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_valid_token_returns_its_claims(clerk_issuer: ClerkTestIssuer) -> None:
    claims = verify_token(clerk_issuer.session_token(user_id="user_abc"), jwt_key=clerk_issuer.public_pem)
    assert claims["sub"] == "user_abc"
    assert claims["v"] == 2


@pytest.mark.parametrize("algorithm", ["RS384", "RS512"])
def test_rs384_and_rs512_fail_like_clerk(clerk_issuer: ClerkTestIssuer, algorithm: str) -> None:
    # They pass the algorithm check, but Clerk imports keys as RS256-only, so verification fails.
    token = clerk_issuer.sign(clerk_issuer.session_claims(), algorithm=algorithm)
    assert reason(token, clerk_issuer) == "token-verification-failed"


def test_hs256_with_the_public_key_as_secret_is_refused(clerk_issuer: ClerkTestIssuer) -> None:
    header = b64({"alg": "HS256", "typ": "JWT", "kid": clerk_issuer.kid})
    payload = b64(clerk_issuer.session_claims())
    assert reason(f"{header}.{payload}.{b64(b'x' * 32)}", clerk_issuer) == "token-invalid-algorithm"


def test_alg_none_and_ecdsa_are_refused(clerk_issuer: ClerkTestIssuer) -> None:
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(clerk_issuer.session_claims())}."
    assert reason(unsigned, clerk_issuer) == "token-invalid-algorithm"
    ec_token = clerk_issuer.sign(
        clerk_issuer.session_claims(), algorithm="ES256", key=ec.generate_private_key(ec.SECP256R1())
    )
    assert reason(ec_token, clerk_issuer) == "token-invalid-algorithm"


def test_typ_must_be_jwt_when_present(clerk_issuer: ClerkTestIssuer) -> None:
    claims = clerk_issuer.session_claims()
    assert verify_token(clerk_issuer.sign(claims, headers={"typ": None}), jwt_key=clerk_issuer.public_pem)
    assert reason(clerk_issuer.sign(claims, headers={"typ": "at+jwt"}), clerk_issuer) == "token-invalid"


def test_signature_is_checked_before_claims(clerk_issuer: ClerkTestIssuer) -> None:
    other = ClerkTestIssuer()
    expired_and_forged = other.session_token(lifetime=-3600)
    assert reason(expired_and_forged, clerk_issuer) == "token-invalid-signature"


def test_tampered_payload_fails_the_signature(clerk_issuer: ClerkTestIssuer) -> None:
    header, _, signature = clerk_issuer.session_token().split(".")
    forged_payload = b64(clerk_issuer.session_claims(user_id="user_admin"))
    assert reason(f"{header}.{forged_payload}.{signature}", clerk_issuer) == "token-invalid-signature"


@pytest.mark.parametrize("sub", [None, 42, ["user_1"]])
def test_sub_must_be_a_string(clerk_issuer: ClerkTestIssuer, sub: object) -> None:
    claims = clerk_issuer.session_claims()
    claims.pop("sub")
    if sub is not None:
        claims["sub"] = sub
    assert reason(clerk_issuer.sign(claims), clerk_issuer) == "token-verification-failed"


def test_authorized_parties(clerk_issuer: ClerkTestIssuer) -> None:
    parties = ["https://app.example.com"]
    good = clerk_issuer.session_token(azp="https://app.example.com")
    assert verify_token(good, jwt_key=clerk_issuer.public_pem, authorized_parties=parties)
    wrong = clerk_issuer.session_token(azp="https://evil.example.com")
    assert reason(wrong, clerk_issuer, authorized_parties=parties) == "token-invalid-authorized-parties"
    missing = clerk_issuer.session_token(azp=None)
    assert reason(missing, clerk_issuer, authorized_parties=parties) == "token-invalid-authorized-parties"
    assert verify_token(missing, jwt_key=clerk_issuer.public_pem, authorized_parties=[])


def test_expiry_with_clock_skew(clerk_issuer: ClerkTestIssuer) -> None:
    now = int(time.time())
    within_skew = clerk_issuer.sign(clerk_issuer.session_claims(extra_claims={"exp": now - 2}))
    assert verify_token(within_skew, jwt_key=clerk_issuer.public_pem)
    assert reason(within_skew, clerk_issuer, clock_skew=0) == "token-expired"
    expired = clerk_issuer.sign(clerk_issuer.session_claims(extra_claims={"exp": now - 10}))
    assert reason(expired, clerk_issuer) == "token-expired"


def test_exp_is_required_and_numeric(clerk_issuer: ClerkTestIssuer) -> None:
    claims = clerk_issuer.session_claims()
    del claims["exp"]
    assert reason(clerk_issuer.sign(claims), clerk_issuer) == "token-verification-failed"
    assert reason(clerk_issuer.sign({**claims, "exp": "soon"}), clerk_issuer) == "token-verification-failed"
    assert reason(clerk_issuer.sign({**claims, "exp": True}), clerk_issuer) == "token-verification-failed"


def test_not_before_and_issued_at_in_the_future(clerk_issuer: ClerkTestIssuer) -> None:
    now = int(time.time())
    not_yet = clerk_issuer.sign(clerk_issuer.session_claims(extra_claims={"nbf": now + 60}))
    assert reason(not_yet, clerk_issuer) == "token-not-active-yet"
    future_iat = clerk_issuer.session_claims(extra_claims={"iat": now + 60, "exp": now + 120})
    assert reason(clerk_issuer.sign(future_iat), clerk_issuer) == "token-iat-in-the-future"
    within_skew = clerk_issuer.sign(clerk_issuer.session_claims(extra_claims={"nbf": now + 3}))
    assert verify_token(within_skew, jwt_key=clerk_issuer.public_pem)


def test_m2m_category_is_refused_for_sessions(clerk_issuer: ClerkTestIssuer) -> None:
    claims = clerk_issuer.session_claims()
    assert reason(clerk_issuer.sign(claims, headers={"cat": "cl_B7d4PD333AAA"}), clerk_issuer) == "token-invalid"
    for category in ("cl_B7d4PD111AAA", "cl_B7d4PD222AAA"):
        assert verify_token(clerk_issuer.sign(claims, headers={"cat": category}), jwt_key=clerk_issuer.public_pem)


@pytest.mark.parametrize(
    "token",
    ["", "a.b", "a.b.c.d", "!!!.!!!.!!!", "é.é.é"],
)
def test_malformed_tokens_are_token_invalid(clerk_issuer: ClerkTestIssuer, token: str) -> None:
    assert reason(token, clerk_issuer) == "token-invalid"


@pytest.mark.parametrize("token", [f"{b64(b'[1]')}.{b64(b'{}')}.", f"{b64(b'{}')}.{b64(b'null')}."])
def test_json_that_is_not_an_object_decodes_as_with_clerk(clerk_issuer: ClerkTestIssuer, token: str) -> None:
    # JSON.parse takes any value; a header without members has no alg (conformance case header_is_array).
    assert reason(token, clerk_issuer) == "token-invalid-algorithm"


def test_no_key_at_all_is_jwk_failed_to_resolve(clerk_issuer: ClerkTestIssuer) -> None:
    with pytest.raises(TokenVerificationError) as info:
        verify_token(clerk_issuer.session_token())
    assert info.value.reason == "jwk-failed-to-resolve"


def test_pyjwt_agrees_on_a_valid_token(clerk_issuer: ClerkTestIssuer) -> None:
    token = clerk_issuer.session_token()
    ours = verify_token(token, jwt_key=clerk_issuer.public_pem)
    theirs = jwt.decode(token, clerk_issuer.public_pem, algorithms=["RS256"], options={"verify_aud": False})
    assert ours == theirs


def _spellable_token(issuer: ClerkTestIssuer) -> str:
    """A real token whose signature has a ``-`` and a ``_`` (standard base64 writes them ``+`` and ``/``)."""
    for i in range(1000):
        token = issuer.sign(issuer.session_claims(extra_claims={"jti": f"spell-{i}"}))
        if "-" in token.split(".")[2] and "_" in token.split(".")[2]:
            return token
    raise AssertionError("no token with both characters in its signature")


@pytest.mark.parametrize(
    "respell",
    [
        pytest.param(lambda s: s.replace("-", "+", 1), id="plus-for-dash"),
        pytest.param(lambda s: s.replace("_", "/", 1), id="slash-for-underscore"),
        pytest.param(lambda s: f"{s[:100]}!{s[100:]}", id="bang"),
        pytest.param(lambda s: f"{s[:100]}%{s[100:]}", id="percent"),
        pytest.param(lambda s: f"{s[:100]} {s[100:]}", id="space"),
        pytest.param(lambda s: f"{s[:100]}\n{s[100:]}", id="newline"),
        pytest.param(lambda s: f"{s[:100]}={s[100:]}", id="padding-inside"),
        pytest.param(lambda s: f"{s[:100]}\u00e9{s[100:]}", id="non-ascii"),
        pytest.param(lambda s: s + "AAA", id="lone-sixth-of-a-byte"),
        # 342 characters: the last one carries 4 unused bits, which must be zero.
        pytest.param(lambda s: s[:-1] + _B64URL[_B64URL.index(s[-1]) | 1], id="non-canonical-tail"),
    ],
)
def test_one_signature_has_one_spelling(clerk_issuer: ClerkTestIssuer, respell: object) -> None:
    # Clerk's base64url.parse (loose) takes only the base64url alphabet and zero trailing bits: token-invalid.
    header, payload, signature = _spellable_token(clerk_issuer).split(".")
    other = respell(signature)  # type: ignore[operator]
    assert other != signature
    assert reason(f"{header}.{payload}.{other}", clerk_issuer) == "token-invalid"


def test_trailing_padding_is_ignored_as_clerk_ignores_it(clerk_issuer: ClerkTestIssuer) -> None:
    token = clerk_issuer.session_token()
    assert verify_token(f"{token}==", jwt_key=clerk_issuer.public_pem)["sub"] == "user_123"


_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
