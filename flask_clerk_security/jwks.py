"""Where verification keys come from: a PEM (networkless) or the Backend API's JWKS, cached and rate-bounded."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from functools import lru_cache
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from . import backend_api
from .errors import TokenVerificationError
from .jsvalues import QUOTE_LIMIT, js_string
from .reasons import TokenVerificationErrorAction as Action
from .secret_values import Secret

logger = logging.getLogger("flask_clerk_security")


class KeySource(Protocol):
    """Resolves the RSA public key for a token's ``kid``; raises TokenVerificationError with Clerk's reason."""

    def get_key(self, kid: Any) -> RSAPublicKey: ...


class PemKeySource:
    """``CLERK_JWT_KEY``: one key, parsed once, used for every ``kid`` (as Clerk's ``loadClerkJwkFromPem``)."""

    def __init__(self, pem: str) -> None:
        from cryptography.hazmat.primitives.serialization import load_pem_public_key  # keeps the import light

        key = load_pem_public_key(pem.encode())
        if not isinstance(key, RSAPublicKey):
            raise ValueError("CLERK_JWT_KEY must be an RSA public key")
        self._key = key

    def get_key(self, kid: Any) -> RSAPublicKey:
        return self._key


@lru_cache(maxsize=32)
def pem_key_source(pem: str) -> PemKeySource:
    """A shared source per PEM, so ``verify_token(jwt_key=...)`` parses each key once per process."""
    return PemKeySource(pem)


#: Failed fetches back off: 2 s, 4 s, 8 s, 16 s, then every 30 s.
_BACKOFF_FIRST = 2.0
_BACKOFF_MAX = 30.0
#: Fetches for unknown ``kid``s: a burst of this many, then one more per refill period (per process).
_UNKNOWN_KID_BURST = 5
_UNKNOWN_KID_REFILL = 60.0
#: While the Backend API stays down, one log line this often (the rest are counted).
_STILL_DOWN_EVERY = 300.0


class _OutageLog:
    """One log line per outage transition (down, still down every few minutes, back), not one per request."""

    def __init__(self) -> None:
        self.down_since: float | None = None
        self.failures = 0
        self.refused = 0
        self.stale_ran_out = False
        self._last_line = float("-inf")

    def _reset(self) -> None:
        self.down_since = None
        self.failures = self.refused = 0
        self.stale_ran_out = False

    def failed(self, exc: TokenVerificationError, cached: int, usable_for: float) -> None:
        now = time.monotonic()
        self.failures += 1
        if self.down_since is None:
            self.down_since = now
            self._last_line = now
            if cached and usable_for > 0:
                logger.warning(
                    "JWKS refresh failed (%s: %s); serving %d cached key(s) for up to %.0f s more "
                    "(CLERK_JWKS_MAX_STALE)",
                    exc.reason,
                    exc.message,
                    cached,
                    usable_for,
                )
            else:
                logger.error(
                    "JWKS could not be loaded (%s: %s); requests needing a key get 503 until it loads",
                    exc.reason,
                    exc.message,
                )
        elif now - self._last_line >= _STILL_DOWN_EVERY:
            self._last_line = now
            logger.error(
                "JWKS still unavailable after %.0f s (%s: %s); %d failed fetches, %d requests refused so far",
                now - self.down_since,
                exc.reason,
                exc.message,
                self.failures,
                self.refused,
            )

    def ran_out(self, max_stale: float) -> None:
        if not self.stale_ran_out:
            self.stale_ran_out = True
            logger.error(
                "cached JWKS keys are past CLERK_JWKS_MAX_STALE (%.0f s after their TTL): requests needing a key "
                "get 503 until the Backend API answers",
                max_stale,
            )

    def recovered(self) -> None:
        if self.down_since is not None:
            logger.warning(
                "JWKS loaded again after %.0f s (%d failed fetches, %d requests refused)",
                time.monotonic() - self.down_since,
                self.failures,
                self.refused,
            )
            self._reset()


class RemoteKeySource:
    """JWKS from ``{api_url}/{version}/jwks``, cached by ``kid``: fresh for ``ttl`` seconds, then stale.

    - A request whose ``kid`` is cached never waits for the network: past the TTL it is served from the cache
      while one background thread refreshes (stale-while-revalidate).
    - Only a request that has no usable key (cold start, unknown ``kid``, keys past ``max_stale``) waits for a
      fetch, at most ``timeout``; concurrent ones share that fetch.
    - An unknown ``kid`` triggers a fetch when the last one is older than ``cooldown`` (a rotated key is
      accepted within seconds), within a per-process budget (a burst of 5, then one a minute), so floods of
      forged tokens cost a handful of Backend API calls.
    - Failed fetches back off (2 s doubling to 30 s). Cached keys keep serving through an outage for
      ``max_stale`` seconds past their TTL; then requests fail closed with ``jwk-remote-failed-to-load`` (503).
    - A successful fetch replaces the whole set: a removed ``kid`` stops verifying at once.
    """

    def __init__(
        self,
        api_url: str,
        secret_key: str | Secret,
        *,
        api_version: str = "v1",
        ttl: float = 300.0,
        cooldown: float = 5.0,
        timeout: float = 3.0,
        max_stale: float = 3600.0,
    ) -> None:
        self._url = f"{api_url.rstrip('/')}/{api_version.strip('/')}/jwks"
        self._secret_key = Secret(secret_key)
        self._ttl = ttl
        self._cooldown = cooldown
        self._timeout = timeout
        self._max_stale = max_stale
        self._keys: dict[str, RSAPublicKey] = {}
        self._expires_at = float("-inf")
        self._usable_until = float("-inf")
        self._last_fetch = float("-inf")
        self._next_attempt = float("-inf")
        self._failures = 0
        self._credits = float(_UNKNOWN_KID_BURST)
        self._credits_at = time.monotonic()
        self._last_error: TokenVerificationError | None = None
        self._inflight: threading.Event | None = None
        self._lock = threading.Lock()
        self._outage = _OutageLog()
        self.fetch_count = 0

    def get_key(self, kid: Any) -> RSAPublicKey:
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is not None:
            now = time.monotonic()
            if now < self._expires_at:
                return key
            if now < self._usable_until:
                self._revalidate(now)
                return key
        return self._wait_for_key(kid)

    def _revalidate(self, now: float) -> None:
        """Start a background refresh unless one runs or failures are backing off."""
        if self._inflight is not None or now < self._next_attempt:
            return
        with self._lock:
            if self._inflight is not None or now < self._next_attempt:
                return
            done = self._begin(now)
        threading.Thread(target=self._run, args=(done,), name="clerk-jwks-refresh", daemon=True).start()

    def _wait_for_key(self, kid: Any) -> RSAPublicKey:
        """The key for ``kid`` after fetching (or waiting for the fetch in flight) when allowed."""
        now = time.monotonic()
        usable = now < self._usable_until
        run = False
        with self._lock:
            if self._keys and not usable:
                self._outage.ran_out(self._max_stale)
            done = self._inflight
            if done is None and self._may_fetch(now, usable):
                done = self._begin(now)
                run = True
        if run:
            assert done is not None
            self._run(done)
        elif done is not None:
            done.wait(self._timeout + 0.1)  # that fetch ends within its own deadline
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if time.monotonic() < self._usable_until:
            if key is not None:
                return key
            shown = js_string(kid, QUOTE_LIMIT)
            raise TokenVerificationError(
                "jwk-kid-mismatch",
                f"Unable to find a signing key in JWKS that matches the kid='{shown}' of the provided session "
                "token. Please make sure that the __session cookie or the HTTP authorization header contain a "
                "Clerk-generated session JWT.",
                "Go to your Dashboard and validate your secret and public keys are correct. "
                f"{Action.CONTACT_SUPPORT} if the issue persists.",
            )
        self._outage.refused += 1
        raise self._last_error or TokenVerificationError(
            "jwk-remote-failed-to-load", "Failed to load JWKS from Clerk Backend API.", Action.CONTACT_SUPPORT
        )

    def _may_fetch(self, now: float, usable: bool) -> bool:
        """Called under the lock: may this request fetch now?"""
        if now < self._next_attempt:
            return False
        if not usable:
            return True
        if now - self._last_fetch < self._cooldown:
            return False
        self._credits = min(_UNKNOWN_KID_BURST, self._credits + (now - self._credits_at) / _UNKNOWN_KID_REFILL)
        self._credits_at = now
        if self._credits < 1:
            return False
        self._credits -= 1
        return True

    def _begin(self, now: float) -> threading.Event:
        """Called under the lock: mark a fetch in flight."""
        self._inflight = threading.Event()
        self._last_fetch = now
        return self._inflight

    def _run(self, done: threading.Event) -> None:
        """Fetch, then publish keys or back off; always ends the in-flight mark and wakes the waiters."""
        try:
            keys = self._fetch()
        except TokenVerificationError as exc:
            with self._lock:
                self._last_error = exc
                self._failures += 1
                backoff = min(_BACKOFF_FIRST * 2 ** (self._failures - 1), _BACKOFF_MAX)
                self._next_attempt = time.monotonic() + backoff
            self._outage.failed(exc, len(self._keys), self._usable_until - time.monotonic())
        else:
            now = time.monotonic()
            with self._lock:
                self._keys = keys
                self._expires_at = now + self._ttl
                self._usable_until = now + self._ttl + self._max_stale
                self._last_error = None
                self._failures = 0
                self._next_attempt = float("-inf")
            self._outage.recovered()
        finally:
            with self._lock:
                self._inflight = None
            done.set()

    def _after_fork(self) -> None:
        """In a forked worker: the parent's fetch thread is gone, so forget its in-flight mark and lock."""
        self._lock = threading.Lock()
        self._inflight = None

    def _fetch(self) -> dict[str, RSAPublicKey]:
        from jwt.algorithms import RSAAlgorithm  # PyJWT's JWK parsing, imported only where a JWKS is fetched
        from jwt.exceptions import InvalidKeyError

        self.fetch_count += 1
        try:
            body = backend_api.call("GET", self._url, bearer=self._secret_key, timeout=self._timeout)
        except backend_api.BackendAPIError as exc:
            # Clerk's fetchJWKSFromBAPI: the clerk_key_invalid error's own message, else the URL and status.
            refusal = exc.error_message(self._secret_key.reveal(), code="clerk_key_invalid")
            loading = f"Error loading Clerk JWKS from {self._url} with code={exc.status}" if exc.status else str(exc)
            if exc.status == 401 or refusal is not None:
                raise TokenVerificationError("secret-key-invalid", refusal or loading, Action.CONTACT_SUPPORT) from None
            raise TokenVerificationError("jwk-remote-failed-to-load", loading, Action.CONTACT_SUPPORT) from None
        keys: dict[str, RSAPublicKey] = {}
        for jwk in body.get("keys", []) if isinstance(body, dict) else []:
            if not isinstance(jwk, dict) or jwk.get("kty") != "RSA" or not isinstance(jwk.get("kid"), str):
                continue
            try:
                key = RSAAlgorithm.from_jwk(jwk)
            except (InvalidKeyError, ValueError, TypeError):
                continue
            if isinstance(key, RSAPublicKey):
                keys[jwk["kid"]] = key
        if not keys:
            raise TokenVerificationError(
                "jwk-remote-failed-to-load",
                "The JWKS endpoint did not contain any signing keys. Contact support@clerk.com.",
                Action.CONTACT_SUPPORT,
            )
        return keys


_remote_sources: dict[tuple[str, str, str, float, float, float, float], RemoteKeySource] = {}
_remote_lock = threading.Lock()


def _after_fork_in_child() -> None:
    """Pre-forking servers (gunicorn ``--preload``) fork with whatever fetch the parent had in flight."""
    global _remote_lock
    _remote_lock = threading.Lock()
    for source in _remote_sources.values():
        source._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


def forget_key_sources(api_url: str) -> None:
    """Drop the cached keys of every source for ``api_url``: its server is gone (a test stand-in stopped), and a
    new server on the same address must not be answered from the old one's cache."""
    with _remote_lock:
        for scope in [scope for scope in _remote_sources if scope[0] == api_url.rstrip("/")]:
            del _remote_sources[scope]


def remote_key_source(
    api_url: str,
    secret_key: str | Secret,
    *,
    api_version: str = "v1",
    ttl: float = 300.0,
    cooldown: float = 5.0,
    timeout: float = 3.0,
    max_stale: float = 3600.0,
) -> RemoteKeySource:
    """The process-wide JWKS cache for one (api_url, api_version, secret key), shared by the apps that also agree
    on its settings (an app with its own TTL or timeout gets its own cache, never another app's settings)."""
    digest = hashlib.sha256(Secret(secret_key).reveal().encode()).hexdigest()
    scope = (api_url.rstrip("/"), api_version, digest, ttl, cooldown, timeout, max_stale)
    with _remote_lock:
        source = _remote_sources.get(scope)
        if source is None:
            source = RemoteKeySource(
                api_url,
                secret_key,
                api_version=api_version,
                ttl=ttl,
                cooldown=cooldown,
                timeout=timeout,
                max_stale=max_stale,
            )
            _remote_sources[scope] = source
        return source
