"""Secrets held masked: ``repr``/``str`` show ``sk_live_****abcd``, only ``reveal()`` gives the value."""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from typing import Any


def mask_secret(value: str | None) -> str:
    """``sk_live_abcdef1234`` -> ``sk_live_****1234``: enough to recognise a key, never enough to use it."""
    if not value:
        return "<unset>"
    prefix_match = re.match(r"(sk_test_|sk_live_|test_|live_|whsec_|ak_|pk_test_|pk_live_)", value)
    prefix = prefix_match.group(1) if prefix_match else ""
    tail = value[-4:] if len(value) - len(prefix) >= 12 else ""
    return f"{prefix}****{tail}"


class Secret:
    """A secret held so that ``repr``/``str``/f-strings show it masked (``sk_live_****abcd``); only
    :meth:`reveal` gives the value. Error reporters that capture frame locals (Sentry, the werkzeug debugger)
    then store the mask, never the secret.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str | Secret) -> None:
        self._value = value.reveal() if isinstance(value, Secret) else str(value)

    def reveal(self) -> str:
        """The secret itself: call it where the value is sent (an ``Authorization`` header), nowhere else."""
        return self._value

    def masked(self) -> str:
        return mask_secret(self._value)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.masked()!r})"

    def __str__(self) -> str:
        return self.masked()

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))


class SecretURI(Secret):
    """A storage URI (``redis://:password@host/0``) shown with its password masked: ``redis://:****@host/0``."""

    __slots__ = ()

    def masked(self) -> str:
        return mask_uri(self._value)


def mask_uri(uri: str) -> str:
    """``scheme://user:password@host/...`` -> ``scheme://user:****@host/...``; a ``password=`` query value too."""
    masked = re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/@:?#]*):[^/?#]*@", r"\1:****@", uri)
    return re.sub(r"(?i)([?&](?:password|pass|pwd)=)[^&#]*", r"\1****", masked)


#: The default of every storage URI setting: this process's memory.
MEMORY_URI = SecretURI("memory://")


def reveal(value: str | Secret | None) -> str | None:
    """The plain value of a :class:`Secret` (or of a plain string, as callers of the public API pass)."""
    return value.reveal() if isinstance(value, Secret) else value


#: ``ClerkSecurity(**options)`` names whose values are secrets (held as :class:`Secret` from the start).
SECRET_OPTIONS = frozenset(
    {
        "secret_key",
        "webhook_secret",
        "webhook_signing_secret",
        "machine_secret_key",
        "ratelimit_storage_uri",
        "machine_token_cache_uri",
        "webhook_store_uri",
        "user_cache_uri",
    }
)


def hold_secrets(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with every secret string (keys, storage URIs) wrapped in a :class:`Secret`/:class:`SecretURI`."""
    held: dict[str, Any] = {}
    for name, value in options.items():
        if name in SECRET_OPTIONS and isinstance(value, str) and not isinstance(value, Secret):
            value = SecretURI(value) if name.endswith("_uri") else Secret(value)
        held[name] = value
    return held
