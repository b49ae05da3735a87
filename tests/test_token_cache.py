"""The verified-token cache: hits skip the work, yet every decision and reason is the uncached one."""

from __future__ import annotations

import base64
import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, cast
from unittest import mock

import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from hypothesis import example, given, settings
from hypothesis import strategies as st

from flask_clerk_security import TokenVerificationError
from flask_clerk_security import tokens as tokens_module
from flask_clerk_security.extension import get_state
from flask_clerk_security.jwks import PemKeySource, RemoteKeySource
from flask_clerk_security.testing import BackendAPIStandIn, ClerkTestIssuer
from flask_clerk_security.tokens import TokenVerifier, _b64url, _json_object, _reject_constant, decode_unverified

AZP = "http://localhost:5000"
NOW = 1_900_000_000.0


class CountingKey:
    """A real RSA public key that counts signature verifications (how a test sees the RSA work skipped)."""

    def __init__(self, key: RSAPublicKey) -> None:
        self.key = key
        self.verifications = 0

    def verify(self, *args: Any) -> None:
        self.verifications += 1
        self.key.verify(*args)


class CountingSource:
    def __init__(self, issuer: ClerkTestIssuer) -> None:
        self.key = CountingKey(PemKeySource(issuer.public_pem).get_key(None))

    def get_key(self, kid: Any) -> RSAPublicKey:
        return cast(RSAPublicKey, self.key)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """Sets the wall clock token verification reads (``time.time_ns``) to a given Unix time."""

    def set_to(seconds: float) -> None:
        monkeypatch.setattr(time, "time_ns", lambda: int(seconds * 1_000_000_000))

    set_to(NOW)
    return set_to


def verifier_for(issuer: ClerkTestIssuer, *, cache_size: int = 16, **options: Any) -> tuple[TokenVerifier, CountingKey]:
    source = CountingSource(issuer)
    return TokenVerifier(source, cache_size=cache_size, **options), source.key


def token(issuer: ClerkTestIssuer, **options: Any) -> str:
    options.setdefault("issued_at", NOW)
    return issuer.session_token(**options)


def reason_of(call: Callable[[], Any]) -> str:
    with pytest.raises(TokenVerificationError) as caught:
        call()
    return caught.value.reason


def test_repeated_token_is_verified_once(clerk_issuer: ClerkTestIssuer, clock: Callable[[float], None]) -> None:
    verifier, key = verifier_for(clerk_issuer)
    session = token(clerk_issuer)
    first = verifier.verify(session)
    assert verifier.verify(session) is first
    auth = verifier.verify_session(session)
    assert auth.user_id == "user_123"
    assert verifier.verify_session(session) is auth
    assert key.verifications == 1
    assert verifier.cache_len() == 1


def test_expired_while_cached_is_refused_as_token_expired(
    clerk_issuer: ClerkTestIssuer, clock: Callable[[float], None]
) -> None:
    verifier, key = verifier_for(clerk_issuer, clock_skew=5)
    session = token(clerk_issuer, lifetime=60)
    assert verifier.verify_session(session).is_authenticated
    clock(NOW + 64)  # past exp, within the clock skew: Clerk still accepts, so does the cache
    assert verifier.verify_session(session).is_authenticated
    clock(NOW + 65)
    assert reason_of(lambda: verifier.verify_session(session)) == "token-expired"
    assert verifier.cache_len() == 0
    assert reason_of(lambda: verifier.verify(session)) == "token-expired"
    assert key.verifications == 2  # the entry was dropped: the second refusal came from a full verification


def test_time_claims_are_rechecked_when_the_clock_goes_back(
    clerk_issuer: ClerkTestIssuer, clock: Callable[[float], None]
) -> None:
    verifier, _ = verifier_for(clerk_issuer, clock_skew=5)
    session = token(clerk_issuer)
    verifier.verify(session)
    clock(NOW - 6)
    assert reason_of(lambda: verifier.verify(session)) == "token-iat-in-the-future"


def test_authorized_parties_are_checked_on_every_hit(
    clerk_issuer: ClerkTestIssuer, clock: Callable[[float], None]
) -> None:
    verifier, _ = verifier_for(clerk_issuer, authorized_parties=[AZP])
    session = token(clerk_issuer, azp=AZP)
    verifier.verify(session)
    verifier.authorized_parties = ("https://elsewhere.example",)
    assert reason_of(lambda: verifier.verify(session)) == "token-invalid-authorized-parties"
    assert verifier.cache_len() == 0


def test_apps_with_different_authorized_parties_decide_independently(
    app_factory: Any, clerk_issuer: ClerkTestIssuer
) -> None:
    strict, _ = app_factory({"CLERK_AUTHORIZED_PARTIES": "https://app.example.com"})
    open_app, _ = app_factory({"CLERK_AUTHORIZED_PARTIES": AZP})
    headers = clerk_issuer.auth_header(azp=AZP)
    for _ in range(2):
        assert open_app.test_client().get("/api/me", headers=headers).status_code == 200
        refused = strict.test_client().get("/api/me", headers=headers)
        assert refused.status_code == 401
        assert refused.headers["x-clerk-auth-reason"] == "token-invalid-authorized-parties"


def test_expired_cached_token_gets_the_uncached_answer_through_the_app(
    app_factory: Any, clerk_issuer: ClerkTestIssuer, clock: Callable[[float], None]
) -> None:
    app, _ = app_factory({"CLERK_AUTHORIZED_PARTIES": AZP})
    uncached, _ = app_factory({"CLERK_AUTHORIZED_PARTIES": AZP, "CLERK_TOKEN_CACHE_SIZE": 0})
    headers = {"Authorization": f"Bearer {token(clerk_issuer, lifetime=60)}"}
    assert app.test_client().get("/api/me", headers=headers).status_code == 200
    assert get_state(app).authenticator.verifier.cache_len() == 1
    clock(NOW + 120)
    refused = app.test_client().get("/api/me", headers=headers)
    expected = uncached.test_client().get("/api/me", headers=headers)
    assert refused.status_code == expected.status_code == 401
    assert refused.headers["x-clerk-auth-reason"] == expected.headers["x-clerk-auth-reason"]
    assert "expired" in refused.headers["x-clerk-auth-reason"]
    assert get_state(app).authenticator.verifier.cache_len() == 0


def test_bound_is_respected_least_recently_used_first(
    clerk_issuer: ClerkTestIssuer, clock: Callable[[float], None]
) -> None:
    verifier, key = verifier_for(clerk_issuer, cache_size=3)
    tokens = [token(clerk_issuer, session_id=f"sess_{n}") for n in range(5)]
    payloads = [verifier.verify(t) for t in tokens[:3]]
    assert verifier.verify(tokens[0]) is payloads[0]  # token 0 is now the most recently used
    verifier.verify(tokens[3])  # evicts token 1, the least recently used
    verifier.verify(tokens[4])  # evicts token 2
    assert verifier.cache_len() == 3
    assert verifier.verify(tokens[0]) is payloads[0]
    assert verifier.verify(tokens[1]) is not payloads[1]
    assert key.verifications == 6


def test_failures_are_not_cached(clerk_issuer: ClerkTestIssuer, clock: Callable[[float], None]) -> None:
    verifier, key = verifier_for(clerk_issuer, authorized_parties=[AZP])
    forged = ClerkTestIssuer(kid=clerk_issuer.kid).session_token(issued_at=NOW)
    wrong_party = token(clerk_issuer, azp="https://evil.example")
    expired = token(clerk_issuer, issued_at=NOW - 3600)
    bad_org = clerk_issuer.sign({**clerk_issuer.session_claims(issued_at=NOW), "o": {"id": "org_1"}, "fea": 5})
    for _ in range(2):
        assert reason_of(lambda: verifier.verify(forged)) == "token-invalid-signature"
        assert reason_of(lambda: verifier.verify(wrong_party)) == "token-invalid-authorized-parties"
        assert reason_of(lambda: verifier.verify(expired)) == "token-expired"
        assert reason_of(lambda: verifier.verify_session(bad_org)) == "token-invalid"
    assert key.verifications == 8
    assert verifier.cache_len() == 0


def test_entries_dead_past_exp_are_dropped_as_new_tokens_arrive(
    clerk_issuer: ClerkTestIssuer, clock: Callable[[float], None]
) -> None:
    verifier, _ = verifier_for(clerk_issuer, cache_size=100)
    for n in range(3):
        verifier.verify(token(clerk_issuer, session_id=f"sess_{n}", lifetime=60))
    clock(NOW + 100)
    verifier.verify(clerk_issuer.session_token(issued_at=NOW + 100))
    assert verifier.cache_len() == 1


def test_size_zero_turns_the_cache_off(clerk_issuer: ClerkTestIssuer, clock: Callable[[float], None]) -> None:
    verifier, key = verifier_for(clerk_issuer, cache_size=0)
    session = token(clerk_issuer)
    assert verifier.verify(session) is not verifier.verify(session)
    assert key.verifications == 2
    assert verifier.cache_len() == 0


def test_cache_size_comes_from_config(app_factory: Any) -> None:
    default, _ = app_factory()
    off, _ = app_factory({"CLERK_TOKEN_CACHE_SIZE": "0"})
    assert get_state(default).authenticator.verifier.cache_size == 4096
    assert get_state(off).authenticator.verifier.cache_size == 0


def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Poll ``condition`` until it holds (JWKS refreshes past the TTL finish on a background thread)."""
    ends = time.monotonic() + within
    while not condition():
        assert time.monotonic() < ends, "condition not met in time"
        time.sleep(0.01)


def test_rotated_signing_key_is_not_served_from_cache(clerk_issuer: ClerkTestIssuer) -> None:
    with BackendAPIStandIn(clerk_issuer) as stand_in:
        source = RemoteKeySource(stand_in.url, clerk_issuer.secret_key, ttl=0.05, cooldown=0)
        verifier = TokenVerifier(source, cache_size=16)
        session = clerk_issuer.session_token()
        verifier.verify(session)
        rotated = ClerkTestIssuer(kid="ins_rotated")
        stand_in.routes[("GET", "/v1/jwks")] = lambda _: (200, rotated.jwks)
        time.sleep(0.1)
        verifier.verify(session)  # stale keys serve while the background refresh runs
        until(lambda: "ins_rotated" in source._keys)
        assert reason_of(lambda: verifier.verify(session)) == "jwk-kid-mismatch"
        assert verifier.cache_len() == 0


def test_refetched_jwks_means_one_fresh_verification(clerk_issuer: ClerkTestIssuer) -> None:
    with BackendAPIStandIn(clerk_issuer) as stand_in:
        source = RemoteKeySource(stand_in.url, clerk_issuer.secret_key, ttl=0.05, cooldown=0)
        verifier = TokenVerifier(source, cache_size=16)
        session = clerk_issuer.session_token()
        first = verifier.verify(session)
        time.sleep(0.1)  # the JWKS is refetched in the background: same key material, new key object
        assert verifier.verify(session) is first  # stale keys serve meanwhile
        until(lambda: verifier.verify(session) is not first)
        second = verifier.verify(session)
        assert second is not first and second == first
        assert verifier.verify(session) is second


def test_steady_state_makes_no_backend_api_calls(app_factory: Any, clerk_issuer: ClerkTestIssuer) -> None:
    with BackendAPIStandIn(clerk_issuer) as stand_in:
        app, _ = app_factory(
            {"CLERK_JWT_KEY": None, "CLERK_SECRET_KEY": clerk_issuer.secret_key, "CLERK_API_URL": stand_in.url}
        )
        client = app.test_client()
        repeated = clerk_issuer.auth_header()
        for n in range(20):
            assert client.get("/api/me", headers=repeated).status_code == 200
            assert client.get("/api/me", headers=clerk_issuer.auth_header(session_id=f"s{n}")).status_code == 200
        assert len(stand_in.calls) == 1


def test_decoded_tokens_are_remembered_but_never_shared(clerk_issuer: ClerkTestIssuer) -> None:
    session = clerk_issuer.session_token()
    header, payload, signing_input, signature = decode_unverified(session)
    payload["sub"] = "user_mallory"
    header["alg"] = "none"
    again = decode_unverified(session)
    assert again[0]["alg"] == "RS256" and again[1]["sub"] == "user_123"
    assert again[2:] == (signing_input, signature)
    assert session in tokens_module._DECODED


def test_decoding_memory_is_bounded_and_failures_are_not_kept(clerk_issuer: ClerkTestIssuer) -> None:
    garbage = "bm90IGpzb24.e30.c2ln"  # the header is "not json"
    for _ in range(2):
        assert reason_of(lambda: decode_unverified(garbage)) == "token-invalid"
    assert garbage not in tokens_module._DECODED
    claims = clerk_issuer.session_claims()
    header = base64.urlsafe_b64encode(b'{"alg":"RS256","typ":"JWT"}').decode().rstrip("=")
    for n in range(tokens_module._DECODED_KEPT + 10):  # unsigned: decoding does not look at the signature
        payload = base64.urlsafe_b64encode(json.dumps({**claims, "jti": str(n)}).encode()).decode().rstrip("=")
        decode_unverified(f"{header}.{payload}.c2ln")
        assert len(tokens_module._DECODED) <= tokens_module._DECODED_KEPT


def _outcome(verifier: TokenVerifier, session: str) -> str:
    try:
        verifier.verify_session(session)
    except TokenVerificationError as exc:
        return exc.reason
    return "accepted"


_issuer_for_properties = ClerkTestIssuer()
_offsets = st.one_of(st.none(), st.integers(-120, 120))


@settings(max_examples=200, deadline=None)
@example(exp=60, nbf=-10, iat=0, skew=5.0, edge="start", delta_ms=-1)
@example(exp=60, nbf=-10, iat=0, skew=5.0, edge="start", delta_ms=0)
@example(exp=60, nbf=-10, iat=0, skew=5.0, edge="exp", delta_ms=-1)
@example(exp=60, nbf=-10, iat=0, skew=5.0, edge="exp", delta_ms=0)
@given(
    exp=st.integers(-120, 120),
    nbf=_offsets,
    iat=_offsets,
    skew=st.sampled_from([0.0, 0.0005, 1.5, 5.0, 60.0]),
    edge=st.sampled_from(["exp", "start", "anywhere"]),
    delta_ms=st.one_of(st.integers(-2, 2), st.integers(-3000, 3000)),
)
def test_cached_and_uncached_decide_alike_at_every_moment(
    exp: int, nbf: int | None, iat: int | None, skew: float, edge: str, delta_ms: int
) -> None:
    issuer = _issuer_for_properties
    claims = issuer.session_claims(issued_at=NOW, extra_claims={"exp": NOW + exp, "nbf": None, "iat": None})
    for name, offset in (("nbf", nbf), ("iat", iat)):
        if offset is not None:
            claims[name] = NOW + offset
    session = issuer.sign(claims)
    source = PemKeySource(issuer.public_pem)
    cached = TokenVerifier(source, clock_skew=skew, cache_size=4)
    with mock.patch.object(time, "time_ns", lambda: int(NOW * 1e9)):
        first = _outcome(cached, session)
    assert cached.cache_len() == (1 if first == "accepted" else 0)
    # Later: near where the token expires or becomes valid (skew included), or anywhere, to the millisecond.
    start = max((offset for offset in (nbf, iat) if offset is not None), default=0)
    anchor = {"exp": exp * 1000 + skew * 1000, "start": start * 1000 - skew * 1000}.get(edge, 0)
    later_ms = NOW * 1000 + anchor + delta_ms
    with mock.patch.object(time, "time_ns", lambda: int(later_ms) * 1_000_000):
        uncached = _outcome(TokenVerifier(source, clock_skew=skew), session)
        assert _outcome(cached, session) == uncached


ascii_segments = st.text(alphabet=st.characters(max_codepoint=127), max_size=40)
_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _clerk_base64url_parse(segment: str) -> bytes:
    """Clerk's ``base64url.parse(segment, {loose: true})`` (packages/backend/src/util/rfc4648.ts), line by line."""
    end = len(segment)
    while end and segment[end - 1] == "=":
        end -= 1
    out = bytearray()
    bits = buffer = 0
    for char in segment[:end]:
        if char not in _B64URL:
            raise ValueError(f"Invalid character {char}")
        buffer = ((buffer << 6) | _B64URL.index(char)) & 0xFFFFFFFF
        bits += 6
        if bits >= 8:
            bits -= 8
            out.append(0xFF & (buffer >> bits))
    if bits >= 6 or 0xFF & (buffer << (8 - bits)):
        raise ValueError("Unexpected end of data")
    return bytes(out)


@given(ascii_segments | st.binary(max_size=30).map(lambda raw: base64.urlsafe_b64encode(raw).decode()))
def test_b64url_decodes_as_clerk_base64url_parse(segment: str) -> None:
    try:
        expected: bytes | type[Exception] = _clerk_base64url_parse(segment)
    except ValueError:
        expected = ValueError
    try:
        got: bytes | type[Exception] = _b64url(segment)
    except ValueError:
        got = ValueError
    assert got == expected


json_bytes = st.one_of(
    st.binary(max_size=24),
    st.builds(
        lambda value, encoding: json.dumps(value).encode(encoding),
        st.dictionaries(st.text(max_size=4), st.one_of(st.integers(), st.text(max_size=4)), max_size=3),
        st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32-be"]),
    ),
    st.sampled_from([b'{"a": NaN}', b"{\x00}", b"{", b"[1]", b'{"a":1} x', b"\xef\xbb\xbf{}", b'{"a":"\xff"}']),
)


@given(json_bytes)
def test_json_segments_decode_as_clerk_reads_them(data: bytes) -> None:
    # JSON.parse(new TextDecoder().decode(bytes)): UTF-8 only, one leading BOM dropped, bad bytes as U+FFFD;
    # every member of a JSON value that is not an object is undefined, so it reads as {}.
    segment = base64.urlsafe_b64encode(data).decode().rstrip("=")
    text = data.decode("utf-8", "replace")
    try:
        loaded = json.loads(text[1:] if text.startswith("\ufeff") else text, parse_constant=_reject_constant)
        expected: Any = loaded if isinstance(loaded, dict) else {}
    except (ValueError, RecursionError):
        expected = ValueError
    try:
        got: Any = _json_object(segment)
    except (ValueError, RecursionError):
        got = ValueError
    assert got == expected


def test_only_verified_sessions_come_back_from_the_session_fast_path(clerk_issuer: ClerkTestIssuer) -> None:
    verifier, _ = verifier_for(clerk_issuer)
    machine_jwt = clerk_issuer.m2m_jwt(category=None)  # signed by the same key, no cat header: verify() passes it
    verifier.verify(machine_jwt)
    assert verifier.cached_session(machine_jwt) is None, "a token never checked as a session is not a session hit"
    session = clerk_issuer.session_token()
    assert verifier.cached_session(session) is None
    auth = verifier.verify_session(session)
    assert verifier.cached_session(session) is auth


def test_header_path_refuses_a_machine_jwt_even_after_another_path_cached_it(
    app_factory: Any, clerk_issuer: ClerkTestIssuer
) -> None:
    app, _ = app_factory()
    machine_jwt = clerk_issuer.m2m_jwt(category=None)
    get_state(app).authenticator.verifier.verify(machine_jwt)  # as a handshake's session cookie would be verified
    response = app.test_client().get("/api/me", headers={"Authorization": f"Bearer {machine_jwt}"})
    assert response.status_code == 401
    assert response.headers["x-clerk-auth-reason"] == "token-type-mismatch"


def test_hits_running_between_any_two_instructions_of_an_insert(clerk_issuer: ClerkTestIssuer) -> None:
    """gthread workers share one verifier. Free-threaded Python (or a GIL switch at the wrong instruction) can
    run another thread's hit between any two instructions of an insert; this test makes that happen at every
    instruction of one insert (opcode tracing hands over to a hitting thread), with several hot tokens in a
    small, full cache. A hit reorders the cache; the insert walks its cold end: before the fix, the walk raised
    ``OrderedDict mutated during iteration``."""
    verifier = TokenVerifier(PemKeySource(clerk_issuer.public_pem), cache_size=4)
    hot = [clerk_issuer.session_token(user_id=f"user_hot{i}") for i in range(4)]
    for session in hot:
        verifier.verify_session(session)
    hit_wanted, hit_done, stop = threading.Event(), threading.Event(), threading.Event()
    hits: list[str] = []
    errors: list[BaseException] = []

    def hitter() -> None:
        while not stop.is_set():
            if hit_wanted.wait(0.01):
                hit_wanted.clear()
                try:
                    hits.append(verifier.verify_session(hot[len(hits) % len(hot)]).user_id or "")
                except BaseException as exc:  # collected and asserted on below
                    errors.append(exc)
                hit_done.set()

    store = TokenVerifier._store.__code__

    def trace(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code is not store:
            return None
        frame.f_trace_opcodes = True
        if event == "opcode":
            hit_done.clear()
            hit_wanted.set()
            hit_done.wait(0.002)  # a hit blocked by the insert's lock waits until the insert is done
        return trace

    thread = threading.Thread(target=hitter)
    thread.start()
    previous = sys.gettrace()  # coverage's tracer, when the suite runs under coverage: put it back after
    sys.settrace(trace)
    try:
        for i in range(3):
            assert verifier.verify_session(clerk_issuer.session_token(user_id=f"user_new{i}")).user_id
    finally:
        sys.settrace(previous)
        stop.set()
        thread.join(timeout=10)
    assert not errors, errors
    assert hits, "the hitting thread never ran during the inserts"
    assert verifier.cache_len() == 4
