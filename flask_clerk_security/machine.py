"""Machine tokens (API keys, M2M tokens, OAuth access tokens): detection, verification and their ``Auth``.

Mirrors ``@clerk/backend``: ``tokens/machine.ts`` (detection), ``verifyMachineAuthToken`` (opaque tokens through
the Backend API, JWT forms locally), ``authenticatedMachineObject`` and the ``acceptsToken`` routing of
``authenticateRequest``. Machine tokens are read from the ``Authorization`` header only, never from cookies.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import backend_api
from .auth import Auth
from .errors import TokenVerificationError
from .jsvalues import QUOTE_LIMIT, UNDEFINED, js_string
from .jwks import KeySource
from .reasons import KEY_UNAVAILABLE as _UNAVAILABLE_KEY_REASONS
from .reasons import MachineReason as Reason
from .secret_values import Secret
from .settings import ClerkSettings
from .stores import StoreError, TTLStore
from .token_types import (
    ANY,
    API_KEY,
    M2M_TOKEN,
    MACHINE_TOKEN_TYPES,
    OAUTH_ACCESS_TOKEN_TYPES,
    OAUTH_TOKEN,
    SESSION_TOKEN,
    AcceptsToken,
    is_accepted,
    is_oauth_type,
)
from .tokens import (
    JWT_CATEGORY_M2M,
    MAX_TOKEN_LENGTH,
    check_claims,
    check_oauth_audience,
    decode_unverified,
    try_decode,
    verify_signature,
)

logger = logging.getLogger("flask_clerk_security")

M2M_TOKEN_PREFIX = "mt_"
M2M_SUBJECT_PREFIX = "mch_"
OAUTH_TOKEN_PREFIX = "oat_"
API_KEY_PREFIX = "ak_"
_JWT_FORMAT = re.compile(r"[a-zA-Z0-9\-_]+\.[a-zA-Z0-9\-_]+\.[a-zA-Z0-9\-_]+")
#: Claims Clerk's machine-token service adds to M2M JWTs; everything else is a custom claim.
_M2M_RESERVED_CLAIMS = frozenset({"iss", "sub", "exp", "nbf", "iat", "jti"})
#: Backend API verify endpoints (no ``/v1`` prefix, as Clerk's SDK calls them) and the JSON field of the token.
ENDPOINTS: dict[str, tuple[str, str]] = {
    API_KEY: ("/api_keys/verify", "secret"),
    M2M_TOKEN: ("/m2m_tokens/verify", "token"),
    OAUTH_TOKEN: ("/oauth_applications/access_tokens/verify", "access_token"),
}
_ATTEMPTS = 3
_BACKOFF = 0.05
#: What Clerk's messages call each opaque token type (``handleClerkAPIError``'s "... not found").
_NAMES = {API_KEY: "API key", M2M_TOKEN: "Machine token", OAUTH_TOKEN: "OAuth token"}
_UNEXPECTED = "Unexpected error"


# -- detection (tokens/machine.ts) -------------------------------------------------------------------------------


def is_jwt_format(token: str) -> bool:
    return _JWT_FORMAT.fullmatch(token) is not None


def _decoded(token: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    return try_decode(token) if is_jwt_format(token) else None


def _is_m2m_payload(payload: Mapping[str, Any]) -> bool:
    sub = payload.get("sub")
    return isinstance(sub, str) and sub.startswith(M2M_SUBJECT_PREFIX)


def _jwt_machine_type(token: str) -> str | None:
    """The machine type of a JWT from one decode: M2M (``sub`` ``mch_...``) before OAuth (``typ: at+jwt``)."""
    decoded = _decoded(token)
    if decoded is None:
        return None
    if _is_m2m_payload(decoded[1]):
        return M2M_TOKEN
    return OAUTH_TOKEN if is_oauth_type(decoded[0].get("typ")) else None


def is_machine_token(token: str) -> bool:
    """Clerk's ``isMachineToken``: a machine prefix, or an OAuth / M2M JWT."""
    return machine_token_type(token) is not None


def machine_token_type(token: str) -> str | None:
    """Clerk's ``getMachineTokenType`` (M2M first, then OAuth, then API key); ``None`` for other tokens."""
    if token.startswith(M2M_TOKEN_PREFIX):
        return M2M_TOKEN
    from_jwt = _jwt_machine_type(token)
    if from_jwt is not None:
        return from_jwt
    if token.startswith(OAUTH_TOKEN_PREFIX):
        return OAUTH_TOKEN
    if token.startswith(API_KEY_PREFIX):
        return API_KEY
    return None


# -- verification ------------------------------------------------------------------------------------------------


class _Refused(TokenVerificationError):
    """A Backend API refusal: Clerk's ``MachineTokenVerificationError`` with the answer's HTTP ``status``."""

    def __init__(self, code: str, message: str, status: int | None) -> None:
        super().__init__(code, message)
        self.status = status


def _full_message(exc: TokenVerificationError) -> str:
    """Clerk's ``MachineTokenVerificationError.getFullMessage()``: the message, its code and the Backend API's
    HTTP status (``n/a`` where no answer decided)."""
    status = exc.status if isinstance(exc, _Refused) else None
    return f"{exc.message} (code={exc.reason}, status={status or 'n/a'})"


@dataclass(frozen=True)
class _Verified:
    """A verified machine token: its ``Auth`` fields and when it expires (Unix seconds, ``None`` = never)."""

    fields: dict[str, Any]
    expires_at: float | None

    def auth(self) -> Auth:
        return Auth(**self.fields)


def _string_list(value: Any) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    return None


def _expiration_seconds(value: Any) -> float | None:
    """Backend API ``expiration``: milliseconds for API keys and M2M tokens; OAuth resources have been
    documented in seconds. Values above 1e11 (year 5138 in seconds, 1973 in milliseconds) are milliseconds."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    return value / 1000.0 if value > 1e11 else float(value)


def _machine_fields(token_type: str, data: Mapping[str, Any], claims: Any) -> dict[str, Any]:
    """Clerk's ``authenticatedMachineObject`` for one token type, as ``Auth`` keyword arguments."""
    subject = data["subject"]
    fields: dict[str, Any] = {
        "token_type": token_type,
        "id": data["id"],
        "subject": subject,
        "scopes": data["scopes"],
    }
    if token_type == API_KEY:
        fields.update(
            name=data.get("name"),
            claims=claims,
            user_id=subject if subject.startswith("user_") else None,
            org_id=subject if subject.startswith("org_") else None,
        )
    elif token_type == M2M_TOKEN:
        fields.update(claims=claims, machine_id=subject)
    else:
        fields.update(user_id=subject, client_id=data.get("client_id"))
    return fields


def _from_backend_api(token_type: str, body: Any, skew: float) -> _Verified:
    """Check a verify endpoint's answer: revoked, expired or malformed answers are refusals."""
    if not isinstance(body, Mapping):
        raise TokenVerificationError(Reason.UNEXPECTED_ERROR, "Backend API answered with a non-object body.")
    if body.get("revoked") is True:
        raise TokenVerificationError(Reason.TOKEN_INVALID, "Machine token has been revoked.")
    expires_at = _expiration_seconds(body.get("expiration"))
    if body.get("expired") is True or (expires_at is not None and expires_at <= time.time() - skew):
        raise TokenVerificationError(Reason.TOKEN_EXPIRED, "Machine token has expired.")
    scopes = _string_list(body.get("scopes") if body.get("scopes") is not None else [])
    claims = body.get("claims")
    client_id = body.get("client_id")
    name = body.get("name")
    if (
        not isinstance(body.get("id"), str)
        or not isinstance(body.get("subject"), str)
        or scopes is None
        or not (claims is None or isinstance(claims, Mapping))
        or not (client_id is None or isinstance(client_id, str))
        or not (name is None or isinstance(name, str))
    ):
        logger.error("Backend API verify answer for a %s has unexpected field types; refusing it", token_type)
        raise TokenVerificationError(Reason.UNEXPECTED_ERROR, "Backend API answer has unexpected field types.")
    data = {**body, "scopes": scopes}
    return _Verified(_machine_fields(token_type, data, dict(claims) if claims else claims), expires_at)


def _jwt_scopes(token_type: str, payload: Mapping[str, Any]) -> list[str]:
    """``M2MToken.fromJwtPayload`` / ``IdPOAuthAccessToken.fromJwtPayload`` scope rules."""
    if token_type == M2M_TOKEN:
        scopes, fallback = payload.get("scopes"), payload.get("aud")
        if scopes is not None:
            if not isinstance(scopes, str):
                raise TokenVerificationError(Reason.TOKEN_VERIFICATION_FAILED, "scopes claim must be a string.")
            return scopes.split(" ")
        if isinstance(fallback, str):
            return [fallback]
        return _string_list(fallback) or []
    scp, scope = payload.get("scp"), payload.get("scope")
    if scp is not None:
        listed = _string_list(scp)
        if listed is None:
            raise TokenVerificationError(Reason.TOKEN_VERIFICATION_FAILED, "scp claim must be a list of strings.")
        return listed
    if scope is not None:
        if not isinstance(scope, str):
            raise TokenVerificationError(Reason.TOKEN_VERIFICATION_FAILED, "scope claim must be a string.")
        return scope.split(" ")
    return []


class MachineVerifier:
    """Verifies machine tokens for one app: Backend API for opaque tokens (optionally cached), local keys for
    JWT forms."""

    def __init__(self, settings: ClerkSettings, key_source: KeySource, cache: TTLStore | None = None) -> None:
        self.settings = settings
        self.key_source = key_source
        self.cache = cache if settings.machine_token_cache_ttl > 0 else None
        self._skew = settings.clock_skew
        self._outage = backend_api.OutageLog(
            "machine-token verification", "machine-token requests get 503 until the Backend API answers"
        )

    def verify(self, token: str) -> Auth:
        """The ``Auth`` of a machine token; a signed-out ``Auth`` carrying Clerk's reason when refused."""
        token_type = machine_token_type(token)
        if token_type is None:
            return _mismatch(SESSION_TOKEN)
        try:
            if is_jwt_format(token):
                return self._verify_jwt(token)
            if len(token) > MAX_TOKEN_LENGTH:
                raise TokenVerificationError(Reason.TOKEN_INVALID, "Token is too long.")
            return self._verify_opaque(token, token_type)
        except TokenVerificationError as exc:
            return Auth.signed_out(exc.reason, token_type=token_type, message=_full_message(exc))

    # JWT forms (jwt/verifyMachineJwt.ts) ---------------------------------------------------------------------

    def _verify_jwt(self, token: str) -> Auth:
        try:
            header, payload, signing_input, signature = decode_unverified(token)
        except TokenVerificationError as exc:
            raise TokenVerificationError(Reason.TOKEN_INVALID, exc.message) from None
        header_types: tuple[str, ...] | None
        if _is_m2m_payload(payload):
            token_type, header_types = M2M_TOKEN, None
            if "cat" in header and header["cat"] != JWT_CATEGORY_M2M:
                raise TokenVerificationError(Reason.TOKEN_INVALID, "Invalid M2M JWT category.")
        elif is_oauth_type(header.get("typ")):
            token_type, header_types = OAUTH_TOKEN, tuple(OAUTH_ACCESS_TOKEN_TYPES)
        else:
            typ = header.get("typ", UNDEFINED)
            shown = "missing" if typ is None or typ is UNDEFINED else js_string(typ, QUOTE_LIMIT)
            raise TokenVerificationError(
                Reason.TOKEN_VERIFICATION_FAILED,
                f"Invalid JWT type: {shown}. Expected one "
                f"of: {', '.join(OAUTH_ACCESS_TOKEN_TYPES)} for OAuth, or sub starting with '{M2M_SUBJECT_PREFIX}' "
                "for M2M",
            )
        try:
            key = self.key_source.get_key(header.get("kid"))
            verify_signature(key, header, signing_input, signature, header_types=header_types)
            # Clerk checks an M2M JWT's audience as a session token's, an OAuth JWT's with the OAuth rule.
            audience = self.settings.audience
            check_claims(payload, (), self._skew * 1000.0, audience if token_type == M2M_TOKEN else ())
            if token_type == OAUTH_TOKEN:
                check_oauth_audience(payload.get("aud", UNDEFINED), audience)
        except TokenVerificationError as exc:
            # Clerk's machine verifier reports every JWT failure as token-verification-failed.
            if exc.reason in _UNAVAILABLE_KEY_REASONS:
                raise
            raise TokenVerificationError(Reason.TOKEN_VERIFICATION_FAILED, exc.message) from None
        jti = payload.get("jti")
        data = {
            "id": jti if isinstance(jti, str) else "",
            "subject": payload["sub"],
            "scopes": _jwt_scopes(token_type, payload),
            "client_id": payload.get("client_id") if isinstance(payload.get("client_id"), str) else "",
        }
        custom = {key: value for key, value in payload.items() if key not in _M2M_RESERVED_CLAIMS}
        return Auth(**_machine_fields(token_type, data, (custom or None) if token_type == M2M_TOKEN else None))

    # Opaque tokens through the Backend API (tokens/verify.ts) -------------------------------------------------

    def _verify_opaque(self, token: str, token_type: str) -> Auth:
        cache_key = hashlib.sha256(token.encode()).hexdigest() if self.cache is not None else ""
        cached = self._cache_get(cache_key)
        if cached is not None:
            return cached
        body = self._call(token, token_type)
        if token_type == OAUTH_TOKEN and isinstance(body, Mapping):
            # Clerk's idPOAuthAccessToken.verify checks the answer's aud before anything else looks at it.
            check_oauth_audience(body.get("aud", UNDEFINED), self.settings.audience)
        verified = _from_backend_api(token_type, body, self._skew)
        self._cache_put(cache_key, verified)
        return verified.auth()

    def _call(self, token: str, token_type: str) -> Any:
        """POST the token to its verify endpoint; retries with backoff on connection errors and 5xx only, all
        within ``CLERK_HTTP_TIMEOUT`` seconds."""
        path, field = ENDPOINTS[token_type]
        settings = self.settings
        bearer = settings.secret_key
        if token_type == M2M_TOKEN and settings.machine_secret_key:
            bearer = settings.machine_secret_key
        if not bearer:
            logger.error(
                "a %s cannot be verified: CLERK_SECRET_KEY is not set (CLERK_MACHINE_SECRET_KEY also works for "
                "M2M tokens). Fix: set it from the API keys page of the Clerk Dashboard.",
                token_type,
            )
            raise TokenVerificationError(Reason.SECRET_KEY_INVALID, "No secret key to call the Backend API with.")
        deadline = time.monotonic() + settings.http_timeout
        for attempt in range(_ATTEMPTS):
            try:
                answer = backend_api.call(
                    "POST",
                    settings.api_url + path,
                    bearer=bearer,
                    timeout=max(deadline - time.monotonic(), 0.001),
                    json_body={field: token},
                )
            except backend_api.BackendAPIError as exc:
                self._refuse_unless_retryable(exc, token, token_type, bearer)
                pause = _BACKOFF * (2**attempt) * (1 + random.random())  # noqa: S311 (jitter, not a secret)
                if attempt == _ATTEMPTS - 1 or time.monotonic() + pause >= deadline - 0.05:
                    self._outage.failed(f"Backend API could not verify a {token_type} ({exc})")
                    raise _Refused(Reason.UNEXPECTED_ERROR, _UNEXPECTED, exc.status) from None
                logger.debug("Backend API %s failed (%s); retrying", path, exc)
                time.sleep(pause)
            else:
                self._outage.answered()
                return answer
        raise AssertionError("unreachable")  # pragma: no cover

    def _refuse_unless_retryable(
        self, exc: backend_api.BackendAPIError, token: str, token_type: str, bearer: Secret
    ) -> None:
        """Clerk's ``handleClerkAPIError`` for an answer no retry changes (5xx and no answer return)."""
        status = exc.status
        if status is None or status >= 500:
            return
        if status == 401:
            which = "CLERK_MACHINE_SECRET_KEY" if bearer.reveal().startswith(API_KEY_PREFIX) else "CLERK_SECRET_KEY"
            self._outage.failed(
                f"Clerk Backend API refused {which} ({bearer.masked()}) while verifying a {token_type}. Fix: copy "
                "the key from the Clerk Dashboard"
            )
            message = exc.error_message(bearer.reveal(), token) or "Invalid secret key"
            raise _Refused(Reason.SECRET_KEY_INVALID, message, status)
        if status in (400, 404, 422):
            self._outage.answered()
            refused = "not found" if status == 404 else "refused as malformed"  # Clerk: 400/422 "Unexpected error"
            raise _Refused(Reason.TOKEN_INVALID, f"{_NAMES[token_type]} {refused}", status)
        self._outage.failed(f"Backend API answered {status} while verifying a {token_type}")
        raise _Refused(Reason.UNEXPECTED_ERROR, _UNEXPECTED, status)

    # Cache of successful verifications ---------------------------------------------------------------------------

    def _cache_get(self, key: str) -> Auth | None:
        if self.cache is None:
            return None
        try:
            raw = self.cache.get(key)
        except StoreError as exc:  # the store's circuit breaker logs the outage once
            logger.debug("machine-token cache unavailable (%s); verifying with the Backend API", exc)
            return None
        if raw is None:
            return None
        try:
            entry = json.loads(raw)
            verified = _Verified(dict(entry["fields"]), entry["expires_at"])
        except (ValueError, KeyError, TypeError):
            return None
        if verified.expires_at is not None and verified.expires_at <= time.time():
            return None
        return verified.auth()

    def _cache_put(self, key: str, verified: _Verified) -> None:
        if self.cache is None:
            return
        ttl = self.settings.machine_token_cache_ttl
        if verified.expires_at is not None:
            ttl = min(ttl, verified.expires_at - time.time())
        if ttl <= 0:
            return
        entry = json.dumps({"fields": verified.fields, "expires_at": verified.expires_at}, separators=(",", ":"))
        try:
            self.cache.set(key, entry, ttl)
        except StoreError as exc:
            logger.debug("machine-token cache unavailable (%s); not caching", exc)


# -- acceptsToken routing (tokens/request.ts) --------------------------------------------------------------------


def _mismatch(token_type: str) -> Auth:
    return Auth.signed_out(Reason.TOKEN_TYPE_MISMATCH, token_type=token_type)


def authenticate(
    token: str | None,
    accepts: AcceptsToken,
    session: Callable[[str | None], Auth],
    verifier: MachineVerifier,
) -> Auth:
    """Clerk's ``authenticateRequest`` for ``accepts``, given the ``Authorization`` header's token (or None).

    ``session(token)`` is the session-token path (that token, else the cookies) and runs unchanged whenever
    the request carries no machine token."""
    if isinstance(accepts, frozenset):
        parsed = (machine_token_type(token) or SESSION_TOKEN) if token else SESSION_TOKEN
        if not is_accepted(parsed, accepts):
            return _mismatch(parsed)
    if token:
        if accepts == SESSION_TOKEN:
            # The session path itself refuses machine JWTs signed by the same key (token-type-mismatch).
            return session(token)
        kind = machine_token_type(token)
        if kind is None:
            return session(token) if accepts == ANY or isinstance(accepts, frozenset) else _mismatch(str(accepts))
        if not is_accepted(kind, accepts):
            return _mismatch(accepts if isinstance(accepts, str) and accepts != ANY else kind)
        return verifier.verify(token)
    if isinstance(accepts, str) and accepts in MACHINE_TOKEN_TYPES:
        return Auth.signed_out(Reason.NO_TOKEN_IN_HEADER, token_type=accepts)
    return session(None)
