"""Clerk's token types and the ``accepts_token`` option (``acceptsToken`` in ``@clerk/backend``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

SESSION_TOKEN = "session_token"
API_KEY = "api_key"
M2M_TOKEN = "m2m_token"
OAUTH_TOKEN = "oauth_token"
ANY = "any"

MACHINE_TOKEN_TYPES = frozenset({API_KEY, M2M_TOKEN, OAUTH_TOKEN})
TOKEN_TYPES = frozenset({SESSION_TOKEN, *MACHINE_TOKEN_TYPES})
#: ``cat`` header values of session tokens and handshake tokens (Clerk's ``jwtCategories.ts``).
_SESSION_CATEGORIES = frozenset({"cl_B7d4PD111AAA", "cl_I7d4PD111III"})
#: JWT ``typ`` values of OAuth access tokens (RFC 9068).
OAUTH_ACCESS_TOKEN_TYPES = ("at+jwt", "application/at+jwt")

#: One type name (or ``"any"``) kept as a string, or a list of types kept as a frozenset. Clerk treats the two
#: forms slightly differently (which reason a refusal carries), so the distinction is preserved.
AcceptsToken = str | frozenset[str]


def parse_accepts_token(value: Any) -> AcceptsToken:
    """Validate ``accepts_token``: a type name, ``"any"``, or a non-empty list of type names.

    A string with commas (``"session_token,api_key"``) or a JSON array, as an environment variable holds them,
    is a list. Raises :class:`ValueError` naming the allowed values, so misuse fails at decoration or init time.
    """
    if isinstance(value, str) and value.strip().startswith("["):
        value = json.loads(value)
    elif isinstance(value, str) and "," in value:
        value = [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, str):
        if value == ANY or value in TOKEN_TYPES:
            return value
        raise ValueError(f"unknown token type {value!r}; use 'any' or one of {sorted(TOKEN_TYPES)}")
    if isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
        unknown = [item for item in items if not isinstance(item, str) or item not in TOKEN_TYPES]
        if unknown or not items:
            raise ValueError(
                f"unknown token type(s) {unknown!r} in {items!r}; use a non-empty list of {sorted(TOKEN_TYPES)}"
            )
        return frozenset(items)
    raise ValueError(f"must be a token type name or a list of them, got {type(value).__name__}")


def is_accepted(token_type: str | None, accepts: AcceptsToken) -> bool:
    """Clerk's ``isTokenTypeAccepted``."""
    if token_type is None:
        return False
    if accepts == ANY:
        return True
    return token_type == accepts if isinstance(accepts, str) else token_type in accepts


def accepts_machine_tokens(accepts: AcceptsToken) -> bool:
    """Whether any machine token type can pass (so the Backend API may be called)."""
    if accepts == ANY:
        return True
    return bool((frozenset({accepts}) if isinstance(accepts, str) else accepts) & MACHINE_TOKEN_TYPES)


def is_session_jwt(header: Mapping[str, Any], payload: Mapping[str, Any]) -> bool:
    """False for machine JWTs (OAuth ``at+jwt``, M2M ``sub: mch_...``) and non-session ``cat`` categories."""
    sub, typ, cat = payload.get("sub"), header.get("typ"), header.get("cat")
    return not (
        is_oauth_type(typ)
        or (isinstance(sub, str) and sub.startswith("mch_"))
        or ("cat" in header and not (isinstance(cat, str) and cat in _SESSION_CATEGORIES))
    )


def is_oauth_type(typ: Any) -> bool:
    """Whether a JWT ``typ`` (any JSON value) is one of OAuth's access token types."""
    return isinstance(typ, str) and typ in OAUTH_ACCESS_TOKEN_TYPES
