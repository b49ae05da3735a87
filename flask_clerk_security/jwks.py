"""Where verification keys come from: a PEM (networkless) or the Backend API's JWKS, cached and rate-bounded."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from functools import lru_cache
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from . import backend_api
from .config import Secret
from .errors import TokenVerificationError

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


class RemoteKeySource:
    """JWKS from ``{api_url}/{version}/jwks``, cached by ``kid`` for ``ttl`` seconds.

    - One fetch at a time across threads; waiters reuse its result.
    - A ``kid`` not in a fresh cache triggers at most one fetch per ``cooldown`` window, so floods of forged
      tokens cost a handful of Backend API calls, not one each.
    - When the Backend API is down, keys already cached keep serving past their TTL; a cold start fails
      closed with ``jwk-remote-failed-to-load`` within ``timeout``.
    """

    def __init__(
        self,
        api_url: str,
        secret_key: str | Secret,
        *,
        api_version: str = "v1",
        ttl: float = 300.0,
        cooldown: float = 30.0,
        timeout: float = 3.0,
    ) -> None:
        self._url = f"{api_url.rstrip('/')}/{api_version.strip('/')}/jwks"
        self._secret_key = Secret(secret_key)
        self._ttl = ttl
        self._cooldown = cooldown
        self._timeout = timeout
        self._keys: dict[str, RSAPublicKey] = {}
        self._expires_at = float("-inf")
        self._next_attempt = float("-inf")
        self._last_error: TokenVerificationError | None = None
        self._lock = threading.Lock()
        self.fetch_count = 0

    def get_key(self, kid: Any) -> RSAPublicKey:
        key = self._keys.get(kid) if isinstance(kid, str) else None
        now = time.monotonic()
        if key is not None and now < self._expires_at:
            return key
        if now >= self._next_attempt:
            self._refresh()
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is not None:
            return key
        if not self._keys:
            raise self._last_error or TokenVerificationError(
                "jwk-remote-failed-to-load", "Failed to load JWKS from Clerk Backend API."
            )
        raise TokenVerificationError(
            "jwk-kid-mismatch", "Unable to find a signing key in JWKS that matches the kid of the token."
        )

    def _refresh(self) -> None:
        with self._lock:
            if time.monotonic() < self._next_attempt:
                return  # another thread fetched (or failed) while this one waited
            try:
                keys = self._fetch()
            except TokenVerificationError as exc:
                self._last_error = exc
                self._next_attempt = time.monotonic() + min(self._cooldown, 2.0)
                if self._keys:
                    logger.warning("JWKS refresh failed (%s); serving %d cached key(s)", exc.reason, len(self._keys))
                else:
                    logger.error("JWKS could not be loaded (%s): %s", exc.reason, exc.message)
                return
            now = time.monotonic()
            self._keys = keys
            self._last_error = None
            self._expires_at = now + self._ttl
            self._next_attempt = now + self._cooldown

    def _fetch(self) -> dict[str, RSAPublicKey]:
        from jwt.algorithms import RSAAlgorithm  # PyJWT's JWK parsing, imported only where a JWKS is fetched
        from jwt.exceptions import InvalidKeyError

        self.fetch_count += 1
        try:
            body = backend_api.call("GET", self._url, bearer=self._secret_key, timeout=self._timeout)
        except backend_api.BackendAPIError as exc:
            errors = exc.body.get("errors") if isinstance(exc.body, dict) else None
            codes = {e.get("code") for e in errors if isinstance(e, dict)} if isinstance(errors, list) else set()
            if exc.status == 401 or "clerk_key_invalid" in codes:
                raise TokenVerificationError("secret-key-invalid", "The Backend API refused the secret key.") from None
            raise TokenVerificationError("jwk-remote-failed-to-load", str(exc)) from None
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
            raise TokenVerificationError("jwk-remote-failed-to-load", "The JWKS endpoint held no RSA signing keys.")
        return keys


_remote_sources: dict[tuple[str, str, str], RemoteKeySource] = {}
_remote_lock = threading.Lock()


def remote_key_source(
    api_url: str,
    secret_key: str | Secret,
    *,
    api_version: str = "v1",
    ttl: float = 300.0,
    cooldown: float = 30.0,
    timeout: float = 3.0,
) -> RemoteKeySource:
    """The process-wide JWKS cache for one (api_url, api_version, secret key)."""
    scope = (api_url.rstrip("/"), api_version, hashlib.sha256(Secret(secret_key).reveal().encode()).hexdigest())
    with _remote_lock:
        source = _remote_sources.get(scope)
        if source is None:
            source = RemoteKeySource(
                api_url, secret_key, api_version=api_version, ttl=ttl, cooldown=cooldown, timeout=timeout
            )
            _remote_sources[scope] = source
        return source
