"""Reading ``CLERK_*`` values (options, then ``app.config``, then the environment) and converting each one.

A converter raises ``ValueError`` saying what is wrong; :meth:`ConfigReader.parse` turns that into a
:class:`ConfigurationError` naming the key and the fix.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigurationError
from .secret_values import Secret

#: Keys whose value is used verbatim (keys, secrets, URLs): a stray space, newline or quote breaks them.
_VERBATIM_KEY = re.compile(r"_KEY$|_SECRET$|_URI$|_URL$")
_QUOTES = ('"', "'")
_SPACE_NAMES = {"\n": "newline", "\r": "carriage return", "\t": "tab", " ": "space"}


def _check_surroundings(key: str, value: str) -> None:
    """Refuse a value wrapped in quotes or whitespace, saying which (never the value: it may be a secret)."""
    for side, char in (("start", value[:1]), ("end", value[-1:])):
        if char in _QUOTES:
            raise ConfigurationError(
                f"{key} has a quote ({char}) at its {side}. Fix: remove the quotes (a .env file read by "
                "docker --env-file or a Procfile keeps them as part of the value)."
            )
    if key == "CLERK_JWT_KEY":  # a PEM ends with a newline and may be pasted indented: only quotes are a mistake
        return
    for side, char in (("leading", value[:1]), ("trailing", value[-1:])):
        if char.isspace():
            name = _SPACE_NAMES.get(char, "whitespace character")
            raise ConfigurationError(
                f"{key} has a {side} {name}. Fix: remove it (for example strip the value read from a file or "
                "secret store, or use `printf %s` instead of `echo` when writing it)."
            )


class ConfigReader:
    """Reads ``CLERK_*`` values: constructor options, then app.config, then the environment."""

    def __init__(self, config: Mapping[str, Any], options: Mapping[str, Any]) -> None:
        self._config = config
        self._options = {f"CLERK_{name.upper()}": value for name, value in options.items()}

    def get(self, key: str, default: Any = None) -> Any:
        """The first value set (``None`` and ``""`` count as unset), a :class:`Secret` revealed; else ``default``."""
        for source in (self._options, self._config, os.environ):
            value = source.get(key)
            if isinstance(value, Secret):  # a Secret passed as an option or in app.config
                value = value.reveal()
            if value is not None and value != "":
                if isinstance(value, str) and _VERBATIM_KEY.search(key):
                    _check_surroundings(key, value)
                return value
        return default

    def parse(self, key: str, convert: Callable[[Any], Any], default: Any, fix: str) -> Any:
        """``convert`` applied to the value of ``key`` (``default`` when unset); a refusal names ``key`` and ``fix``."""
        raw = self.get(key)
        if raw is None:
            return default
        try:
            return convert(raw)
        except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: int(float("inf"))
            raise ConfigurationError(f"{key} {exc}. Fix: {fix}") from None


def split_list(value: Any) -> tuple[str, ...]:
    """A list from a Python sequence, a JSON array string or a comma-separated string."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            loaded = json.loads(text)
            if not isinstance(loaded, list):
                raise ValueError("must be a JSON list")
            value = loaded
        else:
            return tuple(part.strip() for part in text.split(",") if part.strip())
    if isinstance(value, (list, tuple, set, frozenset)):
        items = tuple(value)
        if not all(isinstance(item, str) for item in items):
            raise ValueError("must be a list of strings")
        return items
    raise ValueError("must be a list of strings or a comma-separated string")


def positive_float(value: Any) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError("must be a positive number")
    return number


def non_negative_float(value: Any) -> float:
    number = float(value)
    if not number >= 0:
        raise ValueError("must be zero or a positive number")
    return number


def non_negative_int(value: Any) -> int:
    number = int(value)
    if number < 0:
        raise ValueError("must be zero or a positive whole number")
    return number


def origins(value: Any) -> tuple[str, ...]:
    """A list of origins (``scheme://host[:port]``): ``azp`` claims are compared with them exactly."""
    listed = split_list(value)
    for origin in listed:
        if not re.fullmatch(r"[a-z][a-z0-9+.-]*://[^\s/?#]+", origin):
            raise ValueError(f"has {origin!r}, which is not an origin (scheme://host[:port], no path)")
    return listed


def issuers(value: Any) -> tuple[str, ...]:
    """``CLERK_ISSUER``: a session token's ``iss`` is its Frontend API URL (``https://clerk.example.com``), compared
    exactly, so a bare host or a trailing slash would refuse every token."""
    listed = split_list(value)
    for issuer in listed:
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", issuer):
            raise ValueError(f"has {issuer!r}, which is not an http(s) URL")
        if issuer.endswith("/"):
            raise ValueError(f"has {issuer!r}, which ends with '/' (a token's iss never does)")
    return listed


def positive_int(value: Any) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError("must be a positive whole number")
    return number


def boolean(value: Any) -> bool:
    """A bool, or its spelling in a string (``1/true/yes/on``, ``0/false/no/off``) as environment values are."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


_REDIS_FIX = (
    "Fix: use redis://[[user]:password@]host[:port][/db] (rediss:// for TLS), e.g. redis://127.0.0.1:6379/0, "
    "with special characters in the password percent-encoded."
)


def check_redis_uri(key: str, uri: str) -> None:
    """Refuse a ``redis://``/``rediss://`` URI the redis client would fail on with a bare ``ValueError``, naming
    ``key`` (never the URI: it may hold a password, and a malformed one cannot be masked reliably)."""
    if not uri.startswith(("redis://", "rediss://")):
        return
    try:
        parts = urlsplit(uri)
    except ValueError:  # "Invalid IPv6 URL": a bracket left open
        raise ConfigurationError(f"{key} is not a valid Redis URI: its host is not a host. {_REDIS_FIX}") from None
    problem = None
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        problem = "its port is not a number from 0 to 65535"
    db = parts.path.lstrip("/")
    if problem is None and not parts.hostname:
        problem = "it has no host"
    elif problem is None and db and not db.isdigit():
        problem = "its database (the path after the host) is not a number"
    if problem:
        raise ConfigurationError(f"{key} is not a valid Redis URI: {problem}. {_REDIS_FIX}")


def replay_ttl(value: Any) -> float:
    """Seconds a webhook message id is remembered against replays: at least a signature's lifetime."""
    number = float(value)
    if not number >= 600:
        # svix accepts timestamps up to 5 minutes old *or* 5 minutes ahead: a signature stays replayable for
        # up to 10 minutes after its first delivery, so the replay memory must outlive that.
        raise ValueError("must be at least 600 seconds (a signed delivery stays valid for up to 10 minutes)")
    return number


def rate_limit(value: Any) -> str:
    """A flask-limiter limit string (``600 per minute``), or ``""`` for ``off``."""
    from limits import parse_many

    text = str(value).strip()
    if text.lower() in ("off", "none", "0"):
        return ""
    parse_many(text)  # raises ValueError on a malformed limit string
    return text


def check_url(key: str, value: str) -> str:
    """An http(s) URL, its trailing slash removed (paths are appended to it)."""
    try:
        netloc = urlsplit(value).netloc if re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value) else None
    except ValueError:  # "Invalid IPv6 URL"
        netloc = None
    if netloc is None:
        raise ConfigurationError(f"{key} must be an http(s) URL, got {value!r}. Fix: set it to e.g. https://...")
    if "@" in netloc:  # never shown: a password
        raise ConfigurationError(
            f"{key} must not hold a user name or password (they would replace the secret key's Bearer, and be "
            "quoted in Clerk's JWKS error messages). Fix: remove the 'user:password@' part."
        )
    return value.rstrip("/")


_ORGANIZATION_SYNC_KEYS = {
    "organization_patterns": "organization_patterns",
    "organizationPatterns": "organization_patterns",
    "personal_account_patterns": "personal_account_patterns",
    "personalAccountPatterns": "personal_account_patterns",
}


def organization_sync(value: Any) -> dict[str, tuple[str, ...]]:
    """``CLERK_ORGANIZATION_SYNC``: a mapping (or its JSON) of Clerk's two pattern lists, snake or camel case."""
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else {}
    if not isinstance(value, Mapping):
        raise ValueError("must be a mapping")
    unknown = [key for key in value if key not in _ORGANIZATION_SYNC_KEYS]
    if unknown:
        raise ValueError(f"unknown keys {unknown}")
    return {_ORGANIZATION_SYNC_KEYS[key]: split_list(patterns) for key, patterns in value.items()}

