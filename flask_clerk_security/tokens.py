"""Session token verification with Clerk's rules, order and reason strings (``@clerk/backend`` verifyToken)."""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
from collections.abc import Iterable
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from .config import DEFAULT_API_URL, DEFAULT_API_VERSION
from .errors import TokenVerificationError
from .jwks import KeySource, pem_key_source, remote_key_source


class Reason:
    """Clerk's TokenVerificationErrorReason values."""

    TOKEN_EXPIRED = "token-expired"
    TOKEN_INVALID = "token-invalid"
    TOKEN_INVALID_ALGORITHM = "token-invalid-algorithm"
    TOKEN_INVALID_AUTHORIZED_PARTIES = "token-invalid-authorized-parties"
    TOKEN_INVALID_SIGNATURE = "token-invalid-signature"
    TOKEN_NOT_ACTIVE_YET = "token-not-active-yet"
    TOKEN_IAT_IN_THE_FUTURE = "token-iat-in-the-future"
    TOKEN_VERIFICATION_FAILED = "token-verification-failed"
    SECRET_KEY_INVALID = "secret-key-invalid"
    JWK_FAILED_TO_RESOLVE = "jwk-failed-to-resolve"
    JWK_REMOTE_FAILED_TO_LOAD = "jwk-remote-failed-to-load"
    JWK_KID_MISMATCH = "jwk-kid-mismatch"


_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "RS256": hashes.SHA256,
    "RS384": hashes.SHA384,
    "RS512": hashes.SHA512,
}
#: ``cat`` header of M2M JWTs signed by the instance key; session verification refuses them.
JWT_CATEGORY_M2M = "cl_B7d4PD333AAA"
#: Longer strings are not tokens; refusing them early bounds the work garbage can cause.
MAX_TOKEN_LENGTH = 16384
_MAX_JS_DATE_MS = 8.64e15


def _b64url(segment: str) -> bytes:
    if not segment.isascii():
        raise ValueError("non-ASCII segment")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json_object(segment: str) -> dict[str, Any]:
    value = json.loads(_b64url(segment), parse_constant=_reject_constant)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _js_date_ms(seconds: float) -> float:
    """``new Date(0).setUTCSeconds(seconds).getTime()``: truncated to whole seconds, NaN out of range."""
    try:
        ms = math.trunc(seconds) * 1000
    except (OverflowError, ValueError):
        return math.nan
    return math.nan if abs(ms) > _MAX_JS_DATE_MS else float(ms)


def decode_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """Split and decode a JWT without verifying it: (header, payload, signing input, signature)."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise TokenVerificationError(Reason.TOKEN_INVALID, "Token is not a string of acceptable length.")
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenVerificationError(
            Reason.TOKEN_INVALID, "Invalid JWT form. A JWT consists of three parts separated by dots."
        )
    try:
        header = _json_object(parts[0])
        payload = _json_object(parts[1])
        signature = _b64url(parts[2])
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise TokenVerificationError(Reason.TOKEN_INVALID, "Invalid JWT encoding.") from None
    return header, payload, f"{parts[0]}.{parts[1]}".encode(), signature


def check_claims(payload: dict[str, Any], authorized_parties: Iterable[str], skew_ms: float) -> None:
    """The payload rules of Clerk's verifyJwt, in its order (run only after the signature verified)."""
    if not isinstance(payload.get("sub"), str):
        raise TokenVerificationError(Reason.TOKEN_VERIFICATION_FAILED, "Subject claim (sub) must be a string.")
    parties = tuple(authorized_parties)
    if parties:
        azp = payload.get("azp")
        if not azp or azp not in parties:
            raise TokenVerificationError(
                Reason.TOKEN_INVALID_AUTHORIZED_PARTIES, "Invalid JWT Authorized party claim (azp)."
            )
    now_ms = time.time_ns() // 1_000_000
    exp = payload.get("exp")
    if not isinstance(exp, (int, float)) or isinstance(exp, bool):
        raise TokenVerificationError(Reason.TOKEN_VERIFICATION_FAILED, "Invalid JWT expiry date claim (exp).")
    if _js_date_ms(exp) <= now_ms - skew_ms:
        raise TokenVerificationError(Reason.TOKEN_EXPIRED, "JWT is expired.")
    for claim, reason in (("nbf", Reason.TOKEN_NOT_ACTIVE_YET), ("iat", Reason.TOKEN_IAT_IN_THE_FUTURE)):
        if claim not in payload:
            continue
        value = payload[claim]
        if not _is_number(value):
            raise TokenVerificationError(Reason.TOKEN_VERIFICATION_FAILED, f"Invalid JWT {claim} claim.")
        if _js_date_ms(value) > now_ms + skew_ms:
            raise TokenVerificationError(reason, f"JWT {claim} is in the future.")


class TokenVerifier:
    """Verifies session tokens for one configuration (key source, authorized parties, clock skew)."""

    def __init__(
        self,
        key_source: KeySource,
        *,
        authorized_parties: Iterable[str] = (),
        clock_skew: float = 5.0,
    ) -> None:
        self.key_source = key_source
        self.authorized_parties = tuple(authorized_parties)
        self.skew_ms = clock_skew * 1000.0

    def verify(self, token: str) -> dict[str, Any]:
        """The verified claims, or :class:`TokenVerificationError` with Clerk's reason."""
        header, payload, signing_input, signature = decode_unverified(token)
        if header.get("cat") == JWT_CATEGORY_M2M:
            raise TokenVerificationError(Reason.TOKEN_INVALID, "Invalid session token category.")
        key = self.key_source.get_key(header.get("kid"))
        if "typ" in header and header["typ"] != "JWT":
            raise TokenVerificationError(Reason.TOKEN_INVALID, "Invalid JWT type. Expected JWT.")
        alg = header.get("alg")
        hash_type = _HASHES.get(alg) if isinstance(alg, str) else None
        if hash_type is None:
            raise TokenVerificationError(Reason.TOKEN_INVALID_ALGORITHM, "Invalid JWT algorithm.")
        if alg != "RS256":
            # Clerk imports every key as an RS256 key (PEM and JWKS alike), so WebCrypto refuses it for
            # RS384/RS512 and verifyJwt answers token-verification-failed. Same decision here.
            raise TokenVerificationError(Reason.TOKEN_VERIFICATION_FAILED, f"Error verifying JWT signature ({alg}).")
        try:
            key.verify(signature, signing_input, padding.PKCS1v15(), hash_type())
        except InvalidSignature:
            raise TokenVerificationError(Reason.TOKEN_INVALID_SIGNATURE, "JWT signature is invalid.") from None
        check_claims(payload, self.authorized_parties, self.skew_ms)
        return payload


def verify_token(
    token: str,
    *,
    jwt_key: str | None = None,
    secret_key: str | None = None,
    authorized_parties: Iterable[str] | None = None,
    clock_skew: float = 5.0,
    api_url: str = DEFAULT_API_URL,
    api_version: str = DEFAULT_API_VERSION,
) -> dict[str, Any]:
    """Verify a Clerk session token as ``@clerk/backend``'s ``verifyToken`` does; usable without Flask.

    ``jwt_key`` (PEM) verifies networkless; otherwise ``secret_key`` loads the instance's JWKS from the
    Backend API (cached per api_url and key). Raises :class:`TokenVerificationError` whose ``reason`` is
    Clerk's reason string.
    """
    source: KeySource
    if jwt_key:
        source = pem_key_source(jwt_key)
    elif secret_key:
        source = remote_key_source(api_url, secret_key, api_version=api_version)
    else:
        raise TokenVerificationError(Reason.JWK_FAILED_TO_RESOLVE, "Failed to resolve JWK during verification.")
    verifier = TokenVerifier(source, authorized_parties=authorized_parties or (), clock_skew=clock_skew)
    return verifier.verify(token)
