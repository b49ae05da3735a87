"""Clerk's key formats: the Frontend API host in a publishable key, test or live, and the checks of each key."""

from __future__ import annotations

import base64
import binascii
import re

from .errors import ConfigurationError
from .secret_values import mask_secret

_PK_RE = re.compile(r"pk_(test|live)_([A-Za-z0-9+/=_-]+)")
_SK_RE = re.compile(r"(?:sk_)?(test|live)_([A-Za-z0-9]+)")
_WHSEC_RE = re.compile(r"whsec_([A-Za-z0-9+/=]+)")


def frontend_api_from_publishable_key(key: str) -> str:
    """The Frontend API host a publishable key encodes (``pk_test_`` + base64 of ``host$``)."""
    match = _PK_RE.fullmatch(key) if isinstance(key, str) else None
    if not match:
        raise ValueError("must look like pk_test_... or pk_live_...")
    encoded = match.group(2)
    try:
        decoded = base64.b64decode(encoded + "=" * (-len(encoded) % 4), altchars=b"-_", validate=False)
        text = decoded.decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError("is not base64 of '<frontend-api-host>$'") from exc
    if not text.endswith("$") or text.endswith("$$") or "." not in text:
        raise ValueError("does not decode to '<frontend-api-host>$'")
    host = text[:-1]
    if not re.fullmatch(r"[A-Za-z0-9.-]+(:[0-9]+)?", host):
        raise ValueError("does not decode to a host name")
    return host


def instance_type(key: str) -> str:
    """``test`` or ``live`` for a secret or publishable key."""
    return "live" if "live_" in key[:8] else "test"


def check_secret_key(value: str) -> str:
    """``CLERK_SECRET_KEY`` as given, or a :class:`ConfigurationError` that shows it masked."""
    if not isinstance(value, str) or not _SK_RE.fullmatch(value):
        raise ConfigurationError(
            f"CLERK_SECRET_KEY is malformed ({mask_secret(str(value))}). Fix: copy the secret key "
            "(sk_test_... or sk_live_...) from the API keys page of the Clerk Dashboard."
        )
    return value


def check_jwt_key(value: str) -> str:
    """``CLERK_JWT_KEY`` as a PEM (literal ``\\n`` turned into newlines: one-line env values), if an RSA key."""
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    pem = value.replace("\\n", "\n").strip() if isinstance(value, str) else ""  # not a string: not a PEM
    try:
        key = load_pem_public_key(pem.encode())
    except (ValueError, TypeError):
        raise ConfigurationError(
            "CLERK_JWT_KEY is not a PEM public key. Fix: paste the 'PEM Public Key' from the API keys page "
            "of the Clerk Dashboard, including the BEGIN/END PUBLIC KEY lines."
        ) from None
    if not isinstance(key, RSAPublicKey):
        raise ConfigurationError("CLERK_JWT_KEY must be an RSA public key. Fix: use Clerk's PEM public key.")
    return pem


def check_webhook_secret(value: str, key: str = "CLERK_WEBHOOK_SIGNING_SECRET") -> str:
    """A webhook signing secret (``whsec_`` + base64) as given, or a refusal naming ``key``, the secret masked."""
    match = _WHSEC_RE.fullmatch(value) if isinstance(value, str) else None
    valid = False
    if match:
        try:
            base64.b64decode(match.group(1), validate=True)
            valid = True
        except (binascii.Error, ValueError):
            valid = False
    if not valid:
        raise ConfigurationError(
            f"{key} is malformed ({mask_secret(str(value))}). Fix: copy the signing secret "
            "(whsec_...) of your endpoint from the Webhooks page of the Clerk Dashboard."
        )
    return value
