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


def test_iat_in_the_future_is_refused_without_nbf(clerk_issuer: ClerkTestIssuer) -> None:
    # The claim loop must go on to iat when nbf is absent: Clerk checks each claim that is present.
    now = int(time.time())
    claims = clerk_issuer.session_claims(extra_claims={"iat": now + 600, "exp": now + 1200})
    del claims["nbf"]
    assert reason(clerk_issuer.sign(claims), clerk_issuer) == "token-iat-in-the-future"


def test_fractional_exp_is_truncated_to_whole_seconds(clerk_issuer: ClerkTestIssuer) -> None:
    # new Date(0).setUTCSeconds(x) truncates x, then counts milliseconds: an exp 30.9 s ago is expired.
    now = time.time()
    expired = clerk_issuer.sign(clerk_issuer.session_claims(extra_claims={"exp": now - 30.9}))
    assert reason(expired, clerk_issuer) == "token-expired"
    assert reason(expired, clerk_issuer, clock_skew=29.5) == "token-expired"
    assert verify_token(expired, jwt_key=clerk_issuer.public_pem, clock_skew=33)
    live = clerk_issuer.sign(clerk_issuer.session_claims(extra_claims={"exp": now + 60.5}))
    assert verify_token(live, jwt_key=clerk_issuer.public_pem)["exp"] == pytest.approx(now + 60.5)


def test_fractional_iat_in_the_future_is_compared_in_milliseconds(clerk_issuer: ClerkTestIssuer) -> None:
    now = time.time()
    claims = clerk_issuer.session_claims(extra_claims={"exp": now + 600})
    claims.update(nbf=now - 10.5, iat=now + 30.5)
    assert reason(clerk_issuer.sign(claims), clerk_issuer) == "token-iat-in-the-future"


def _early_in_a_second() -> int:
    """The current whole second, waiting for the next one when this one is half gone (no rollover mid-test)."""
    if time.time() % 1 > 0.5:
        time.sleep(1.01 - time.time() % 1)
    return int(time.time())


def test_default_clock_skew_is_five_seconds(clerk_issuer: ClerkTestIssuer) -> None:
    # Clerk's verifyJwt: expired when exp <= now - 5000 ms, not yet active when nbf/iat > now + 5000 ms.
    now = _early_in_a_second()
    assert verify_token(
        clerk_issuer.sign(clerk_issuer.session_claims(extra_claims={"exp": now - 4})), jwt_key=clerk_issuer.public_pem
    )
    assert (
        reason(clerk_issuer.sign(clerk_issuer.session_claims(extra_claims={"exp": now - 5})), clerk_issuer)
        == "token-expired"
    )
    assert verify_token(
        clerk_issuer.sign(clerk_issuer.session_claims(extra_claims={"nbf": now + 5})), jwt_key=clerk_issuer.public_pem
    )
    assert (
        reason(clerk_issuer.sign(clerk_issuer.session_claims(extra_claims={"nbf": now + 6})), clerk_issuer)
        == "token-not-active-yet"
    )


def test_fractional_exp_is_truncated_before_the_skew_applies(clerk_issuer: ClerkTestIssuer) -> None:
    # exp = now - 9.1 s read as a whole second is now - 10 s (setUTCSeconds truncates): expired under a
    # 9.95 s skew, though the untruncated time would still be inside it.
    now = _early_in_a_second()
    token = clerk_issuer.sign(clerk_issuer.session_claims(extra_claims={"exp": now - 10 + 0.9}))
    assert reason(token, clerk_issuer, clock_skew=9.95) == "token-expired"
    assert verify_token(token, jwt_key=clerk_issuer.public_pem, clock_skew=10.9)


def test_dates_beyond_javascripts_range_never_bind(clerk_issuer: ClerkTestIssuer) -> None:
    # JavaScript dates end at 8.64e15 ms: iat at that second is in the future; one second later it is an
    # Invalid Date (NaN), which no comparison binds, so Clerk lets it pass.
    last = 8_640_000_000_000
    claims = clerk_issuer.session_claims(extra_claims={"iat": last})
    del claims["nbf"]
    assert reason(clerk_issuer.sign(claims), clerk_issuer) == "token-iat-in-the-future"
    assert verify_token(clerk_issuer.sign({**claims, "iat": last + 1}), jwt_key=clerk_issuer.public_pem)
    assert verify_token(clerk_issuer.sign({**claims, "iat": float(last + 1)}), jwt_key=clerk_issuer.public_pem)


def test_clock_skew_is_applied_in_seconds(clerk_issuer: ClerkTestIssuer) -> None:
    now = int(time.time())
    token = clerk_issuer.sign(clerk_issuer.session_claims(extra_claims={"exp": now - 60}))
    assert verify_token(token, jwt_key=clerk_issuer.public_pem, clock_skew=62)
    assert reason(token, clerk_issuer, clock_skew=58) == "token-expired"


def _token_of_length(issuer: ClerkTestIssuer, length: int) -> str:
    """A validly signed session token exactly ``length`` characters long (padded with a claim and a header)."""
    base = len(issuer.sign(issuer.session_claims(extra_claims={"pad": ""})))
    for header_pad in range(4):
        headers = {"x": "y" * header_pad}
        for pad in range(max((length - base) * 3 // 4 - 8, 0), length):
            token = issuer.sign(issuer.session_claims(extra_claims={"pad": "p" * pad}), headers=headers)
            if len(token) == length:
                return token
            if len(token) > length:
                break
    raise AssertionError(f"no token of length {length}")


def test_token_length_limit_is_16384_characters(clerk_issuer: ClerkTestIssuer) -> None:
    at_limit = _token_of_length(clerk_issuer, 16384)
    assert verify_token(at_limit, jwt_key=clerk_issuer.public_pem)["sub"] == "user_123"
    over = _token_of_length(clerk_issuer, 16385)
    with pytest.raises(TokenVerificationError) as info:
        verify_token(over, jwt_key=clerk_issuer.public_pem)
    assert info.value.reason == "token-invalid"
    assert info.value.message == "Invalid JWT form. A JWT is at most 16384 characters long."


def test_secret_key_fetches_the_keys_from_the_backend_api(clerk_issuer: ClerkTestIssuer) -> None:
    from flask_clerk_security.testing import BackendAPIStandIn

    with BackendAPIStandIn(clerk_issuer) as api:
        claims = verify_token(
            clerk_issuer.session_token(user_id="user_remote"), secret_key=clerk_issuer.secret_key, api_url=api.url
        )
        assert claims["sub"] == "user_remote"
        assert api.count("GET", "/v1/jwks") == 1
        with pytest.raises(TokenVerificationError) as info:
            verify_token(clerk_issuer.session_token(), secret_key="sk_test_wrong", api_url=api.url)
        assert info.value.reason == "secret-key-invalid"


def test_token_verifier_defaults_are_clerks_skew_and_no_cache(clerk_issuer: ClerkTestIssuer) -> None:
    from flask_clerk_security.jwks import pem_key_source
    from flask_clerk_security.tokens import TokenVerifier

    verifier = TokenVerifier(pem_key_source(clerk_issuer.public_pem))
    now = _early_in_a_second()
    assert (
        verifier.verify(clerk_issuer.sign(clerk_issuer.session_claims(extra_claims={"exp": now - 4})))["sub"]
        == "user_123"
    )
    with pytest.raises(TokenVerificationError) as info:
        verifier.verify(clerk_issuer.sign(clerk_issuer.session_claims(extra_claims={"exp": now - 5})))
    assert info.value.reason == "token-expired"
    assert verifier.cache_len() == 0  # remembering tokens is opt-in (cache_size)
