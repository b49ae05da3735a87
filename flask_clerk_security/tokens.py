"""Session token verification with Clerk's rules, order and reason strings (``@clerk/backend`` verifyToken)."""

from __future__ import annotations

import binascii
import json
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from .auth import Auth
from .errors import TokenVerificationError
from .jsvalues import QUOTE_LIMIT, UNDEFINED, js_json, js_utc_string
from .jwks import KeySource, pem_key_source, remote_key_source
from .reasons import TokenVerificationErrorAction as Action
from .reasons import TokenVerificationErrorReason as Reason
from .settings import DEFAULT_API_URL, DEFAULT_API_VERSION

#: Clerk's accepted ``alg`` values. Only RS256 ever verifies: Clerk imports every key as an RS256 key (PEM and
#: JWKS alike), so WebCrypto refuses it for RS384/RS512 and verifyJwt answers token-verification-failed.
ALGORITHMS = frozenset({"RS256", "RS384", "RS512"})
#: ``cat`` header of M2M JWTs signed by the instance key; session verification refuses them.
JWT_CATEGORY_M2M = "cl_B7d4PD333AAA"
#: Longer strings are not tokens; refusing them early bounds the work garbage can cause.
MAX_TOKEN_LENGTH = 16384
_MAX_JS_DATE_MS = 8.64e15
#: The text of the error Node's WebCrypto throws when Clerk verifies RS384/RS512 with a key it imported as RS256.
_ALG_MISMATCH = 'Error: JWK "alg" does not match the requested algorithm'
_PKCS1V15 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()
#: Expired entries dropped from the cold end of the token cache per insert (memory goes back without a sweep).
_EXPIRED_DROPPED_PER_INSERT = 4
_T = TypeVar("_T")
#: A decoded JWT: (header, payload, signing input, signature).
Decoded = tuple[dict[str, Any], dict[str, Any], bytes, bytes]
#: Decoded JWT headers by segment; cleared when full, so headers crafted to churn it cost nothing lasting.
_HEADERS: dict[str, dict[str, Any]] = {}
_HEADERS_KEPT = 64
#: Recently decoded tokens (see decode_unverified); cleared when full, so at most this many are held.
_DECODED: dict[str, Decoded] = {}
_DECODED_KEPT = 256


def _b64url(segment: str) -> bytes:
    """Clerk's ``base64url.parse(segment, {loose: true})``: trailing ``=`` ignored, every other character from
    the base64url alphabet, no lone sixth of a byte, unused trailing bits zero. Anything else raises, so one
    token has one spelling (up to its trailing ``=``, which Clerk ignores too)."""
    body = segment.rstrip("=")
    if "+" in body or "/" in body:
        raise ValueError("not base64url")
    standard = body.replace("-", "+").replace("_", "/")
    data = binascii.a2b_base64(standard + "=" * (-len(body) % 4))  # lenient: skips junk, ignores spare bits
    # The canonical spelling of what was decoded: any skipped character or non-zero spare bit differs from it.
    if binascii.b2a_base64(data, newline=False).rstrip(b"=") != standard.encode():
        raise ValueError("not canonical base64url")
    return data


def _quoted(value: Any) -> str:
    """``JSON.stringify(value)`` as Clerk's messages quote a claim or header, up to :data:`QUOTE_LIMIT` characters
    (then ``...``): a token's author writes what it holds, and only the start of a message is ever sent."""
    return js_json(value, limit=QUOTE_LIMIT)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json_int(digits: str) -> int | float:
    """A JSON integer of 300 digits or more as JavaScript reads it: a double (``inf`` beyond its range), so
    no later ``float()`` overflows and Python's int-string limit never refuses it."""
    return int(digits) if len(digits) < 300 else float(digits)


#: ``json.loads(..., parse_constant=_reject_constant)`` builds this decoder on every call; build it once.
_JSON_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
#: The same for a text with a long run of digits (Python's own int parsing is faster; this one is rarely needed).
_JSON_DECODER_LONG_NUMBERS = json.JSONDecoder(parse_constant=_reject_constant, parse_int=_json_int)
_LONG_DIGITS = re.compile(r"[0-9]{300}")


def _json_object(segment: str) -> dict[str, Any]:
    """A segment as Clerk reads it (``JSON.parse(new TextDecoder().decode(...))``): UTF-8 with a leading BOM
    dropped and bad bytes replaced. Any JSON value decodes; one that is not an object reads as ``{}``, since
    every member Clerk looks up on it is undefined (``null``, where Clerk throws a TypeError, too)."""
    text = _b64url(segment).decode("utf-8", "replace")
    if text[:1] == "\ufeff":
        text = text[1:]
    decoder = _JSON_DECODER_LONG_NUMBERS if _LONG_DIGITS.search(text) else _JSON_DECODER
    value = decoder.decode(text)
    return value if isinstance(value, dict) else {}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _js_date_ms(seconds: float) -> float:
    """``new Date(0).setUTCSeconds(seconds).getTime()``: truncated to whole seconds, NaN out of range."""
    if type(seconds) is int:  # what Clerk signs: whole seconds, nothing to truncate
        ms = seconds * 1000
    else:
        try:
            ms = math.trunc(seconds) * 1000
        except (OverflowError, ValueError):
            return math.nan
    return math.nan if abs(ms) > _MAX_JS_DATE_MS else float(ms)


def _remembered(memo: dict[str, _T], key: str, limit: int, compute: Callable[[str], _T]) -> _T:
    """``compute(key)``, kept in ``memo``; the memo is emptied when it reaches ``limit`` entries (bounded)."""
    value = memo.get(key)
    if value is None:
        value = compute(key)
        if len(memo) >= limit:
            memo.clear()
        memo[key] = value
    return value


def _decode_header(segment: str) -> dict[str, Any]:
    """A JWT header, decoded once per distinct segment (an instance signs every token with the same few)."""
    return _remembered(_HEADERS, segment, _HEADERS_KEPT, _json_object)


def _decode(token: str) -> Decoded:
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenVerificationError(
            Reason.TOKEN_INVALID, "Invalid JWT form. A JWT consists of three parts separated by dots."
        )
    try:
        header = _decode_header(parts[0])
        payload = _json_object(parts[1])
        signature = _b64url(parts[2])
    except (ValueError, RecursionError):
        raise TokenVerificationError(
            Reason.TOKEN_INVALID, "Invalid JWT form. The header, payload, or signature could not be decoded."
        ) from None
    return header, payload, f"{parts[0]}.{parts[1]}".encode(), signature


def decode_token(token: str) -> Decoded:
    """Split and decode a JWT without verifying it: (header, payload, signing input, signature), the dicts
    fresh for the caller. For a token looked at once; :func:`decode_unverified` for several looks."""
    _check_length(token)
    return _decode(token)


def decode_unverified(token: str) -> Decoded:
    """:func:`decode_token`, remembered: one request may look at its token several times (token type, session
    checks, verification). The last few decodings are kept, keyed by the exact string, and each caller gets
    its own copy of the two dicts.
    """
    _check_length(token)
    header, payload, signing_input, signature = _remembered(_DECODED, token, _DECODED_KEPT, _decode)
    return dict(header), dict(payload), signing_input, signature


def _check_length(token: str) -> None:
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise TokenVerificationError(
            Reason.TOKEN_INVALID, f"Invalid JWT form. A JWT is at most {MAX_TOKEN_LENGTH} characters long."
        )


def try_decode(token: str | None) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Clerk's ``decodeJwt`` for a look at a token: (header, payload), or None when it is not a JWT."""
    if not token:
        return None
    try:
        header, payload, _, _ = decode_unverified(token)
    except TokenVerificationError:
        return None
    return header, payload


def _as_list(value: Any) -> list[Any]:
    """JavaScript's ``[value].flat()``: a list's items, else the value alone."""
    return list(value) if isinstance(value, list) else [value]


def check_audience(aud: Any, audience: tuple[str, ...]) -> None:
    """Clerk's ``assertAudienceClaim`` (session and M2M JWTs): checked only when both sides name an audience,
    and a claim that is neither a string nor a list of strings is not checked at all."""
    if not audience or not any(_as_list(aud)):
        return
    if isinstance(aud, str):
        matched = aud in audience
    elif isinstance(aud, list) and aud and all(isinstance(item, str) for item in aud):
        matched = any(item in audience for item in aud)
    else:
        return
    if not matched:
        kind = "claim" if isinstance(aud, str) else "claim array"
        raise TokenVerificationError(
            Reason.TOKEN_VERIFICATION_FAILED,
            f'Invalid JWT audience {kind} (aud) {_quoted(aud)}. Is not included in "{_quoted(list(audience))}".',
            Action.ENSURE_CLERK_JWT,
        )


def check_oauth_audience(aud: Any, audience: tuple[str, ...]) -> None:
    """Clerk's ``assertOAuthAudienceClaim`` (OAuth access tokens, JWT and opaque): with an audience set, the
    token must name one of them; a missing or malformed ``aud`` is refused."""
    if not audience:
        return
    listed = _as_list(aud) if aud and aud is not UNDEFINED else None
    if not listed or not all(isinstance(item, str) and item for item in listed):
        raise TokenVerificationError(
            Reason.TOKEN_VERIFICATION_FAILED,
            f"Invalid OAuth audience claim (aud) {_quoted(aud)}. Expected a non-empty string or a non-empty array "
            "of non-empty strings.",
        )
    if not any(item in audience for item in listed):
        raise TokenVerificationError(
            Reason.TOKEN_VERIFICATION_FAILED,
            f"OAuth audience mismatch. Verification expected audience {_quoted(list(audience))}, but incoming token "
            f"has aud {_quoted(aud)}.",
        )


def check_claims(
    payload: dict[str, Any],
    authorized_parties: Iterable[str],
    skew_ms: float,
    audience: tuple[str, ...] = (),
    issuer: tuple[str, ...] = (),
) -> tuple[float, float]:
    """The payload rules of Clerk's verifyJwt, in its order (run only after the signature verified):
    ``sub``, ``aud``, ``azp``, ``iss``, then the times.

    Returns the token's window as the rules read it: ``exp`` and the later of ``nbf``/``iat``, in ms.
    """
    if not isinstance(payload.get("sub"), str):
        raise TokenVerificationError(
            Reason.TOKEN_VERIFICATION_FAILED,
            f"Subject claim (sub) is required and must be a string. Received {_quoted(payload.get('sub', UNDEFINED))}.",
            Action.ENSURE_CLERK_JWT,
        )
    if audience:
        check_audience(payload.get("aud"), audience)
    parties = authorized_parties if isinstance(authorized_parties, tuple) else tuple(authorized_parties)
    if parties:
        azp = payload.get("azp", UNDEFINED)
        if not azp or azp is UNDEFINED or azp not in parties:
            raise TokenVerificationError(
                Reason.TOKEN_INVALID_AUTHORIZED_PARTIES,
                f'Invalid JWT Authorized party claim (azp) {_quoted(azp)}. Expected "{",".join(parties)}".',
            )
    if issuer and payload.get("iss") not in issuer:
        raise TokenVerificationError(
            Reason.TOKEN_INVALID_ISSUER,
            f'Invalid JWT issuer claim (iss) {_quoted(payload.get("iss", UNDEFINED))}. Expected "{",".join(issuer)}".',
            Action.ENSURE_CLERK_JWT,
        )
    now_ms = time.time_ns() // 1_000_000
    exp: Any = payload.get("exp", UNDEFINED)
    if not _is_number(exp):
        raise TokenVerificationError(
            Reason.TOKEN_VERIFICATION_FAILED,
            f"Invalid JWT expiry date claim (exp) {_quoted(exp)}. Expected number.",
            Action.ENSURE_CLERK_JWT,
        )
    exp_ms = _js_date_ms(exp)
    if exp_ms <= now_ms - skew_ms:
        raise TokenVerificationError(
            Reason.TOKEN_EXPIRED,
            f"JWT is expired. Expiry date: {js_utc_string(exp_ms)}, Current date: {js_utc_string(now_ms)}.",
        )
    start_ms = -math.inf  # NaN never binds, as in the comparisons below
    for claim in ("nbf", "iat"):
        if claim not in payload:
            continue
        value = payload[claim]
        if not _is_number(value):
            raise TokenVerificationError(
                Reason.TOKEN_VERIFICATION_FAILED,
                f"Invalid JWT {_TIME_CLAIMS[claim]} claim ({claim}) {_quoted(value)}. Expected number.",
                Action.ENSURE_CLERK_JWT,
            )
        value_ms = _js_date_ms(value)
        if value_ms > now_ms + skew_ms:
            raise _in_the_future(claim, value_ms, now_ms)
        if value_ms > start_ms:
            start_ms = value_ms
    return exp_ms, start_ms


#: How Clerk's messages name ``nbf`` and ``iat``.
_TIME_CLAIMS = {"nbf": "not before date", "iat": "issued at date"}


def _in_the_future(claim: str, value_ms: float, now_ms: float) -> TokenVerificationError:
    """Clerk's refusal of an ``nbf`` or ``iat`` later than now (plus the skew)."""
    dates = f"{js_utc_string(value_ms)}; Current date: {js_utc_string(now_ms)};"
    if claim == "nbf":
        return TokenVerificationError(
            Reason.TOKEN_NOT_ACTIVE_YET,
            f"JWT cannot be used prior to not before date claim (nbf). Not before date: {dates}",
        )
    return TokenVerificationError(
        Reason.TOKEN_IAT_IN_THE_FUTURE, f"JWT issued at date claim (iat) is in the future. Issued at date: {dates}"
    )


@dataclass(slots=True)
class _Verified:
    """A cache entry: what verification established about one exact token string."""

    payload: dict[str, Any]
    kid: Any
    key: RSAPublicKey
    #: The authorized parties the entry was checked against (the verifier's tuple, compared by identity).
    parties: tuple[str, ...]
    #: ``exp`` and the later of ``nbf``/``iat`` as check_claims reads them (ms), for the per-hit clock check.
    exp_ms: float
    start_ms: float
    auth: Auth | None = None


def verify_signature(
    key: RSAPublicKey,
    header: Mapping[str, Any],
    signing_input: bytes,
    signature: bytes,
    *,
    header_types: tuple[str, ...] | None = None,
    header_check: Callable[[Mapping[str, Any]], None] | None = None,
) -> None:
    """The header and signature half of Clerk's ``verifyJwt``: ``typ``, ``alg``, a caller's own header rule,
    then the signature. ``header_types`` is Clerk's ``headerType`` option: when given, ``typ`` must be one of
    them even when absent; otherwise an absent ``typ`` passes and a present one must be ``JWT``."""
    allowed = header_types or ("JWT",)
    if ("typ" in header or header_types is not None) and header.get("typ") not in allowed:
        raise TokenVerificationError(
            Reason.TOKEN_INVALID,
            f'Invalid JWT type {_quoted(header.get("typ", UNDEFINED))}. Expected "{", ".join(allowed)}".',
            Action.ENSURE_CLERK_JWT,
        )
    alg = header.get("alg", UNDEFINED)
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        raise TokenVerificationError(
            Reason.TOKEN_INVALID_ALGORITHM,
            f"Invalid JWT algorithm {_quoted(alg)}. Supported: {','.join(sorted(ALGORITHMS))}.",
            Action.ENSURE_CLERK_JWT,
        )
    if header_check is not None:
        header_check(header)
    if alg != "RS256":
        raise TokenVerificationError(
            Reason.TOKEN_VERIFICATION_FAILED, f"Error verifying JWT signature. {_ALG_MISMATCH}", Action.ENSURE_CLERK_JWT
        )
    try:
        key.verify(signature, signing_input, _PKCS1V15, _SHA256)
    except InvalidSignature:
        raise TokenVerificationError(Reason.TOKEN_INVALID_SIGNATURE, "JWT signature is invalid.") from None


class TokenVerifier:
    """Verifies session tokens for one configuration (key source, authorized parties, clock skew).

    With ``cache_size > 0`` it remembers up to that many verified tokens (least recently used out first),
    keyed by the exact token string, so a token seen again skips decoding, the RSA verify and claim decoding.
    Decoding, the header rules and the signature depend only on the token and the key; everything else is
    asked again on every hit: the key source must still hand out the very key that verified the token (a
    rotated or refetched JWKS means a fresh verification), and ``exp``/``nbf``/``iat`` are compared with the
    clock and the skew exactly as :func:`check_claims` compares them (outside that window, or when the
    authorized parties were replaced, :func:`check_claims` itself runs and gives the reason). So every
    decision and reason string is the one an uncached verification gives. Failures are never cached.
    """

    def __init__(
        self,
        key_source: KeySource,
        *,
        authorized_parties: Iterable[str] = (),
        clock_skew: float = 5.0,
        cache_size: int = 0,
        audience: Iterable[str] = (),
        issuer: Iterable[str] = (),
    ) -> None:
        self.key_source = key_source
        self.authorized_parties = tuple(authorized_parties)
        #: Clerk's ``audience`` and ``issuer`` options (empty: not checked).
        self.audience = tuple(audience)
        self.issuer = tuple(issuer)
        self.skew_ms = clock_skew * 1000.0
        self.cache_size = cache_size
        self._cache: OrderedDict[str, _Verified] = OrderedDict()
        self._lock = threading.Lock()

    def with_clock_skew(self, clock_skew: float) -> TokenVerifier:
        """A verifier (uncached) with every setting of this one but the clock skew: a lenient retry that still
        checks the key, authorized parties, audience and issuer."""
        return TokenVerifier(
            self.key_source,
            authorized_parties=self.authorized_parties,
            clock_skew=clock_skew,
            audience=self.audience,
            issuer=self.issuer,
        )

    def verify(self, token: str) -> dict[str, Any]:
        """The verified claims, or :class:`TokenVerificationError` with Clerk's reason.

        While the token is cached every call returns the same dict: read it, never change it.
        """
        entry = self._cached(token)
        if entry is None:
            entry = self._verify(token)
            self._store(token, entry)
        return entry.payload

    def verify_session(self, token: str, decoded: Decoded | None = None) -> Auth:
        """:meth:`verify` then :meth:`Auth.from_claims`, both cached: one shared, frozen ``Auth`` per token.

        ``decoded`` is :func:`decode_token` of ``token`` when the caller already has it (it becomes the
        claims). Treat the returned object (its ``claims`` and lists included) as read-only: later requests
        carrying the same token get the same object.
        """
        entry = self._cached(token)
        if entry is None:
            entry = self._verify(token, decoded)
            entry.auth = Auth.from_claims(entry.payload)
            self._store(token, entry)
        elif entry.auth is None:
            entry.auth = Auth.from_claims(entry.payload)
        return entry.auth

    def cached_session(self, token: str) -> Auth | None:
        """The ``Auth`` :meth:`verify_session` gave ``token`` before, if its entry still holds now; else None.

        Only :meth:`verify_session` fills it, and its callers check the token is a session token first, so a
        hit needs no second look at the token. Raises as verification would (``token-expired`` ...).
        """
        entry = self._cached(token)
        return entry.auth if entry is not None else None

    def cache_len(self) -> int:
        """How many verified tokens are remembered now."""
        return len(self._cache)

    def _verify(self, token: str, decoded: Decoded | None = None) -> _Verified:
        header, payload, signing_input, signature = decoded if decoded is not None else decode_unverified(token)
        if header.get("cat") == JWT_CATEGORY_M2M:
            raise TokenVerificationError(
                Reason.TOKEN_INVALID, "Invalid session token category.", Action.ENSURE_CLERK_JWT
            )
        kid = header.get("kid")
        key = self.key_source.get_key(kid)
        verify_signature(key, header, signing_input, signature)
        exp_ms, start_ms = check_claims(payload, self.authorized_parties, self.skew_ms, self.audience, self.issuer)
        return _Verified(payload, kid, key, self.authorized_parties, exp_ms, start_ms)

    def _cached(self, token: str) -> _Verified | None:
        """The entry for ``token`` if it still holds now, None for a miss; raises as verification would."""
        if not self.cache_size:
            return None
        # Every change to the OrderedDict happens under the lock: an insert looks at its cold end with an
        # iterator, which a concurrent reordering breaks (free-threaded Python, or a GIL switch there).
        # acquire/release rather than ``with``: this is the hot path, and ``with`` costs about twice as much.
        lock = self._lock
        lock.acquire()
        try:
            entry = self._cache.get(token)
            if entry is not None:
                self._cache.move_to_end(token)
        finally:
            lock.release()
        if entry is None:
            return None
        try:
            if self.key_source.get_key(entry.kid) is not entry.key:
                self._forget(token)
                return None
            now_ms = time.time_ns() // 1_000_000
            if not (
                entry.parties is self.authorized_parties
                and not entry.exp_ms <= now_ms - self.skew_ms
                and not entry.start_ms > now_ms + self.skew_ms
            ):
                check_claims(entry.payload, self.authorized_parties, self.skew_ms, self.audience, self.issuer)
        except TokenVerificationError:
            self._forget(token)
            raise
        return entry

    def _store(self, token: str, entry: _Verified) -> None:
        if not self.cache_size:
            return
        expired_before = time.time_ns() // 1_000_000 - self.skew_ms
        with self._lock:
            cache = self._cache
            cache[token] = entry
            cache.move_to_end(token)
            while len(cache) > self.cache_size:
                cache.popitem(last=False)
            for _ in range(_EXPIRED_DROPPED_PER_INSERT):
                oldest = next(iter(cache.values()), None)
                if oldest is None or not oldest.exp_ms <= expired_before:
                    break
                cache.popitem(last=False)

    def _forget(self, token: str) -> None:
        with self._lock:
            self._cache.pop(token, None)


def verify_token(
    token: str,
    *,
    jwt_key: str | None = None,
    secret_key: str | None = None,
    authorized_parties: Iterable[str] | None = None,
    clock_skew: float = 5.0,
    api_url: str = DEFAULT_API_URL,
    api_version: str = DEFAULT_API_VERSION,
    audience: str | Iterable[str] | None = None,
    issuer: str | Iterable[str] | None = None,
) -> dict[str, Any]:
    """Verify a Clerk session token as ``@clerk/backend``'s ``verifyToken`` does; usable without Flask.

    ``jwt_key`` (PEM) verifies networkless; otherwise ``secret_key`` loads the instance's JWKS from the
    Backend API (cached per api_url and key). ``audience`` and ``issuer`` (one value or several) are Clerk's
    options of the same names. Raises :class:`TokenVerificationError` whose ``reason`` is
    Clerk's reason string.
    """
    source: KeySource
    if jwt_key:
        source = pem_key_source(jwt_key)
    elif secret_key:
        source = remote_key_source(api_url, secret_key, api_version=api_version)
    else:
        raise TokenVerificationError(
            Reason.JWK_FAILED_TO_RESOLVE, "Failed to resolve JWK during verification.", Action.SET_CLERK_JWT_KEY
        )
    verifier = TokenVerifier(
        source,
        authorized_parties=authorized_parties or (),
        clock_skew=clock_skew,
        audience=_names(audience),
        issuer=_names(issuer),
    )
    return verifier.verify(token)


def _names(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """One name or several as a tuple, empty names dropped (Clerk's ``[value].flat().filter(Boolean)``)."""
    if value is None:
        return ()
    items = (value,) if isinstance(value, str) else tuple(value)
    return tuple(item for item in items if item)
