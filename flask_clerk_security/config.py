"""Settings from ``ClerkSecurity(**options)``, ``app.config`` and the environment, checked once at init_app."""

from __future__ import annotations

import base64
import binascii
import difflib
import hmac
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigurationError
from .header_options import check_talisman_options, parse_csp_directives
from .token_types import SESSION_TOKEN, AcceptsToken, parse_accepts_token

DEFAULT_API_URL = "https://api.clerk.com"
DEFAULT_API_VERSION = "v1"

_PK_RE = re.compile(r"pk_(test|live)_([A-Za-z0-9+/=_-]+)")
_SK_RE = re.compile(r"(?:sk_)?(test|live)_([A-Za-z0-9]+)")
_WHSEC_RE = re.compile(r"whsec_([A-Za-z0-9+/=]+)")

logger = logging.getLogger("flask_clerk_security")


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


def frontend_api_from_publishable_key(key: str) -> str:
    """The Frontend API host a publishable key encodes (``pk_test_`` + base64 of ``host$``)."""
    match = _PK_RE.fullmatch(key)
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


@dataclass(frozen=True)
class ClerkSettings:
    """Every setting the extension reads, resolved and validated once per app."""

    secret_key: Secret | None = None
    publishable_key: str | None = None
    jwt_key: str | None = None
    authorized_parties: tuple[str, ...] = ()
    #: Clerk's ``audience`` (session, M2M and OAuth tokens) and ``issuer`` (session tokens) options.
    audience: tuple[str, ...] = ()
    issuer: tuple[str, ...] = ()
    api_url: str = DEFAULT_API_URL
    api_version: str = DEFAULT_API_VERSION
    clock_skew: float = 5.0
    public_routes: tuple[Any, ...] = ()
    sign_in_url: str | None = None
    #: Clerk's ``signUpUrl``: where ``redirect_to_sign_up()`` goes (else the Account Portal's ``/sign-up``).
    sign_up_url: str | None = None
    #: The webhook endpoint's signing secret: ``CLERK_WEBHOOK_SIGNING_SECRET`` (Clerk's name) or its alias
    #: ``CLERK_WEBHOOK_SECRET``; both fields hold the one resolved value.
    webhook_secret: Secret | None = None
    webhook_signing_secret: Secret | None = None
    machine_secret_key: Secret | None = None
    ratelimit_storage_uri: SecretURI = MEMORY_URI
    frontend_api: str | None = field(default=None, metadata={"derived": True})  # from the publishable key
    http_timeout: float = 3.0
    jwks_cache_ttl: float = 300.0
    jwks_refetch_cooldown: float = 5.0
    jwks_max_stale: float = 3600.0
    token_cache_size: int = 4096
    max_body_bytes: int = 1024 * 1024
    # Proxy/satellite hosts (CSP, handshake); security headers, leak guard and audit log.
    proxy_url: str | None = None
    domain: str | None = None
    #: Clerk's ``isSatellite`` / ``satelliteAutoSync``: this app is a satellite domain of another (primary) app.
    is_satellite: bool = False
    satellite_auto_sync: bool = False
    #: Clerk's ``organizationSyncOptions``: ``organization_patterns`` / ``personal_account_patterns`` -> patterns.
    organization_sync: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    csp_directives: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    csp_strict: bool = False
    csp_report_only: bool = False
    csp_report_uri: str | None = None
    #: Where browsers send CSP reports with the Reporting API (``report-to`` + ``Reporting-Endpoints``).
    csp_report_to: str | None = None
    force_https: bool | None = None
    security_headers: bool = True
    talisman_options: Mapping[str, Any] = field(default_factory=dict)
    leak_guard: bool = True
    audit_log: bool = True
    #: Log Clerk's ``debugRequestState`` fields for every authenticated request (INFO, never a token).
    debug: bool = False
    accepts_token: AcceptsToken = SESSION_TOKEN
    #: Clerk's ``treatPendingAsSignedOut``: a pending session (``sts: "pending"``) is signed out unless False.
    treat_pending_as_signed_out: bool = True
    machine_token_cache_ttl: float = 0.0
    machine_token_cache_uri: SecretURI = MEMORY_URI
    webhook_max_bytes: int = 1_048_576
    webhook_replay_ttl: float = 86_400.0
    webhook_processing_ttl: float = 60.0
    webhook_store_uri: SecretURI = MEMORY_URI
    webhook_rate_limit: str = "600 per minute"
    #: Backend API calls that ``?__clerk_handshake_nonce=`` values may drive, per client address and in all.
    handshake_nonce_rate: str = "10 per minute"
    handshake_nonce_rate_total: str = "600 per minute"
    store_key_prefix: str = "clerk:"
    # current_user: the Backend API user cache (see docs/users.md).
    user_cache_ttl: float = 60.0
    user_cache_max_stale: float = 300.0
    user_cache_size: int = 10_000
    user_cache_uri: SecretURI = MEMORY_URI

    @property
    def secrets(self) -> dict[str, str]:
        """Configured secrets by config key, revealed for the leak guard's search (never store the result)."""
        named = {
            "CLERK_SECRET_KEY": self.secret_key,
            "CLERK_WEBHOOK_SECRET": self.webhook_secret,
            "CLERK_MACHINE_SECRET_KEY": self.machine_secret_key,
        }
        return {key: value.reveal() for key, value in named.items() if value}


#: Keys read by tools (``flask clerk check``) rather than by the extension.
TOOL_KEYS = frozenset({"CLERK_CHECK_IGNORE"})


#: The :class:`ClerkSettings` fields read from configuration: ``ClerkSecurity(**options)`` names. The dataclass
#: is the one place a setting is defined: a new field is a new option and a new known ``CLERK_*`` key.
OPTION_NAMES = frozenset(item.name for item in fields(ClerkSettings) if not item.metadata.get("derived"))
KNOWN_KEYS = frozenset(f"CLERK_{name.upper()}" for name in OPTION_NAMES) | TOOL_KEYS

_warned_keys: set[str] = set()
_warned_lock = threading.Lock()


def warn_once(key: str, message: str, *args: Any) -> None:
    """Log a configuration warning once per ``key`` per process (tests build hundreds of apps)."""
    with _warned_lock:
        if key in _warned_keys:
            return
        _warned_keys.add(key)
    logger.warning(message, *args)


def _did_you_mean(key: str) -> str | None:
    """The known key ``key`` is most likely a misspelling of, compared without the ``CLERK_`` prefix."""
    known = {name[len("CLERK_") :]: name for name in KNOWN_KEYS}
    close = difflib.get_close_matches(key[len("CLERK_") :], list(known), n=1, cutoff=0.75)
    return known[close[0]] if close else None


def warn_unknown_keys(config: Mapping[str, Any]) -> None:
    """Warn (once per key) about ``CLERK_*`` keys nothing reads: misspelled keys are otherwise silently ignored.

    Every unknown key in ``app.config`` warns; in the environment, which also holds other tools' ``CLERK_*``
    variables (Clerk's JavaScript SDKs, CI), only a near miss of a known key does.
    """
    for source, names in (("app.config", config), ("the environment", os.environ)):
        for key in names:
            if not isinstance(key, str) or not re.fullmatch(r"CLERK_[A-Za-z0-9_]+", key) or key in KNOWN_KEYS:
                continue
            guess = _did_you_mean(key)
            if guess is None and source == "the environment":
                continue
            hint = f" Did you mean {guess}?" if guess else ""
            warn_once(key, "%s in %s is not a flask-clerk-security setting and is ignored.%s", key, source, hint)


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


class _Reader:
    """Reads ``CLERK_*`` values: constructor options, then app.config, then the environment."""

    def __init__(self, config: Mapping[str, Any], options: Mapping[str, Any]) -> None:
        self._config = config
        self._options = {f"CLERK_{name.upper()}": value for name, value in options.items()}

    def get(self, key: str, default: Any = None) -> Any:
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
        raw = self.get(key)
        if raw is None:
            return default
        try:
            return convert(raw)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"{key} {exc}. Fix: {fix}") from None


def _positive_float(value: Any) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError("must be a positive number")
    return number


def _non_negative_float(value: Any) -> float:
    number = float(value)
    if not number >= 0:
        raise ValueError("must be zero or a positive number")
    return number


def _non_negative_int(value: Any) -> int:
    number = int(value)
    if number < 0:
        raise ValueError("must be zero or a positive whole number")
    return number


def _origins(value: Any) -> tuple[str, ...]:
    origins = split_list(value)
    for origin in origins:
        if not re.fullmatch(r"[a-z][a-z0-9+.-]*://[^\s/?#]+", origin):
            raise ValueError(f"has {origin!r}, which is not an origin (scheme://host[:port], no path)")
    return origins


def _positive_int(value: Any) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError("must be a positive whole number")
    return number


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _check_secret_key(value: str) -> str:
    if not isinstance(value, str) or not _SK_RE.fullmatch(value):
        raise ConfigurationError(
            f"CLERK_SECRET_KEY is malformed ({mask_secret(str(value))}). Fix: copy the secret key "
            "(sk_test_... or sk_live_...) from the API keys page of the Clerk Dashboard."
        )
    return value


def _check_jwt_key(value: str) -> str:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    pem = value.replace("\\n", "\n").strip()
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


def _check_webhook_secret(value: str, key: str = "CLERK_WEBHOOK_SIGNING_SECRET") -> str:
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


def _page_url(read: _Reader, key: str, example: str) -> str | None:
    """A sign-in or sign-up page setting: a path (the app's own page) or an absolute http(s) URL."""
    url = read.get(key)
    if url is not None and not (isinstance(url, str) and (url.startswith("/") or url.startswith("http"))):
        raise ConfigurationError(f"{key} must be a path ('{example}') or an absolute http(s) URL.")
    return url


def _webhook_signing_secret(read: _Reader) -> str | None:
    """``CLERK_WEBHOOK_SIGNING_SECRET`` (the name Clerk's SDKs read), or its alias ``CLERK_WEBHOOK_SECRET``;
    both set to different values is refused rather than one silently winning."""
    found = {}
    for key in ("CLERK_WEBHOOK_SIGNING_SECRET", "CLERK_WEBHOOK_SECRET"):
        value = read.get(key)
        if value:
            found[key] = _check_webhook_secret(value, key)
    if len(set(found.values())) > 1:
        raise ConfigurationError(
            "CLERK_WEBHOOK_SIGNING_SECRET and CLERK_WEBHOOK_SECRET are both set, to different secrets "
            f"({mask_secret(found['CLERK_WEBHOOK_SIGNING_SECRET'])} and {mask_secret(found['CLERK_WEBHOOK_SECRET'])}). "
            "Fix: keep CLERK_WEBHOOK_SIGNING_SECRET (Clerk's name) and remove CLERK_WEBHOOK_SECRET."
        )
    return next(iter(found.values()), None)


_STORE_SCHEMES = ("memory://", "redis://", "rediss://", "unix://")
_REDIS_FIX = (
    "Fix: use redis://[[user]:password@]host[:port][/db] (rediss:// for TLS), e.g. redis://127.0.0.1:6379/0, "
    "with special characters in the password percent-encoded."
)


def check_redis_uri(key: str, uri: str) -> None:
    """Refuse a ``redis://``/``rediss://`` URI the redis client would fail on with a bare ``ValueError``, naming
    ``key`` (never the URI: it may hold a password, and a malformed one cannot be masked reliably)."""
    if not uri.startswith(("redis://", "rediss://")):
        return
    parts = urlsplit(uri)
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


def _replay_ttl(value: Any) -> float:
    number = float(value)
    if not number >= 600:
        # svix accepts timestamps up to 5 minutes old *or* 5 minutes ahead: a signature stays replayable for
        # up to 10 minutes after its first delivery, so the replay memory must outlive that.
        raise ValueError("must be at least 600 seconds (a signed delivery stays valid for up to 10 minutes)")
    return number


def _rate_limit(value: Any) -> str:
    from limits import parse_many

    text = str(value).strip()
    if text.lower() in ("off", "none", "0"):
        return ""
    parse_many(text)  # raises ValueError on a malformed limit string
    return text


def _webhook_store_uri(read: _Reader, ratelimit_uri: str, webhook_secret: str | None) -> str:
    """``CLERK_WEBHOOK_STORE_URI``, else the rate-limit storage when it is a store we speak (one Redis for both)."""
    explicit = read.get("CLERK_WEBHOOK_STORE_URI")
    if explicit is not None:
        if not str(explicit).startswith(_STORE_SCHEMES):
            raise ConfigurationError(
                "CLERK_WEBHOOK_STORE_URI must start with memory://, redis://, rediss:// or unix://. "
                "Fix: e.g. redis://localhost:6379/0"
            )
        return str(explicit)
    if ratelimit_uri.startswith(_STORE_SCHEMES):
        return ratelimit_uri
    if webhook_secret:
        raise ConfigurationError(
            "CLERK_RATELIMIT_STORAGE_URI uses a scheme webhook replay protection cannot share. Fix: set "
            "CLERK_WEBHOOK_STORE_URI to memory:// or redis://..."
        )
    return "memory://"


def _user_cache_uri(read: _Reader, ratelimit_uri: str) -> str:
    """``CLERK_USER_CACHE_URI``, else the rate-limit storage when it is a Redis (so a webhook's invalidation reaches
    every process), else this process's memory."""
    explicit = read.get("CLERK_USER_CACHE_URI")
    if explicit is not None:
        if not str(explicit).startswith(_STORE_SCHEMES):
            raise ConfigurationError(
                "CLERK_USER_CACHE_URI must start with memory://, redis://, rediss:// or unix://. "
                "Fix: e.g. redis://localhost:6379/0"
            )
        return str(explicit)
    return ratelimit_uri if ratelimit_uri.startswith(_STORE_SCHEMES) else "memory://"


def _check_url(key: str, value: str) -> str:
    if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
        raise ConfigurationError(f"{key} must be an http(s) URL, got {value!r}. Fix: set it to e.g. https://...")
    return value.rstrip("/")


def _header_settings(read: _Reader) -> dict[str, Any]:
    """The ``ClerkSettings`` fields of :mod:`.headers`, :mod:`.leakguard` and :mod:`.audit`."""
    proxy_url = read.get("CLERK_PROXY_URL")
    if proxy_url is not None and not (
        isinstance(proxy_url, str) and re.fullmatch(r"/\S*|https?://[^\s/?#]+(/\S*)?", proxy_url)
    ):
        raise ConfigurationError(
            f"CLERK_PROXY_URL must be an absolute http(s) URL or a path, got {proxy_url!r}. "
            "Fix: set it to your Frontend API proxy, e.g. https://app.example.com/__clerk."
        )
    domain = read.get("CLERK_DOMAIN")
    if domain is not None:
        host = re.sub(r"^https?://", "", str(domain)).rstrip("/")
        if not re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+(:[0-9]+)?", host):
            raise ConfigurationError(
                f"CLERK_DOMAIN must be a host name, got {domain!r}. Fix: set it to your satellite's domain, "
                "e.g. satellite.example.com."
            )
        domain = host
    report_uri = read.get("CLERK_CSP_REPORT_URI")
    if report_uri is not None and not (
        isinstance(report_uri, str) and re.fullmatch(r"(/|https?://)[^\s;,]*", report_uri)
    ):
        raise ConfigurationError(
            f"CLERK_CSP_REPORT_URI must be a path or an http(s) URL, got {report_uri!r}. Fix: e.g. /csp-report."
        )
    report_to = read.get("CLERK_CSP_REPORT_TO")
    if report_to is not None and not (
        isinstance(report_to, str) and re.fullmatch(r"(/|https://)[^\s;,\"]*", report_to)
    ):
        raise ConfigurationError(
            f"CLERK_CSP_REPORT_TO must be a path or an https URL, got {report_to!r}. Fix: e.g. /csp-reports."
        )
    report_only = read.parse("CLERK_CSP_REPORT_ONLY", _boolean, False, "use true or false")
    if report_only and not (report_uri or report_to):
        raise ConfigurationError(
            "CLERK_CSP_REPORT_ONLY is on but CLERK_CSP_REPORT_URI and CLERK_CSP_REPORT_TO are unset, so violations "
            "would go nowhere. Fix: set CLERK_CSP_REPORT_URI or CLERK_CSP_REPORT_TO to an endpoint that accepts "
            "CSP reports."
        )
    return {
        "proxy_url": proxy_url.rstrip("/") if isinstance(proxy_url, str) else None,
        "domain": domain,
        "csp_directives": parse_csp_directives(read.get("CLERK_CSP_DIRECTIVES")),
        "csp_strict": read.parse("CLERK_CSP_STRICT", _boolean, False, "use true or false"),
        "csp_report_only": report_only,
        "csp_report_uri": report_uri,
        "csp_report_to": report_to,
        "force_https": read.parse("CLERK_FORCE_HTTPS", _boolean, None, "use true or false"),
        "security_headers": read.parse("CLERK_SECURITY_HEADERS", _boolean, True, "use true or false"),
        "talisman_options": check_talisman_options(read.get("CLERK_TALISMAN_OPTIONS")),
        "leak_guard": read.parse("CLERK_LEAK_GUARD", _boolean, True, "use true or false"),
        "audit_log": read.parse("CLERK_AUDIT_LOG", _boolean, True, "use true or false"),
        "debug": read.parse("CLERK_DEBUG", _boolean, False, "use true or false"),
    }


_ORGANIZATION_SYNC_KEYS = {
    "organization_patterns": "organization_patterns",
    "organizationPatterns": "organization_patterns",
    "personal_account_patterns": "personal_account_patterns",
    "personalAccountPatterns": "personal_account_patterns",
}


def _organization_sync(value: Any) -> dict[str, tuple[str, ...]]:
    """``CLERK_ORGANIZATION_SYNC``: a mapping (or its JSON) of Clerk's two pattern lists, snake or camel case."""
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else {}
    if not isinstance(value, Mapping):
        raise ValueError("must be a mapping")
    unknown = [key for key in value if key not in _ORGANIZATION_SYNC_KEYS]
    if unknown:
        raise ValueError(f"unknown keys {unknown}")
    return {_ORGANIZATION_SYNC_KEYS[key]: split_list(patterns) for key, patterns in value.items()}


def _check_satellite(settings: ClerkSettings) -> None:
    """What Clerk's ``authenticateRequest`` asserts for a satellite (it throws per request; we refuse at init)."""
    if not settings.is_satellite:
        return
    if not (settings.proxy_url or settings.domain):
        raise ConfigurationError(
            "CLERK_IS_SATELLITE needs CLERK_DOMAIN (this satellite's domain, e.g. 'satellite.example.com') or "
            "CLERK_PROXY_URL, as Clerk's SDKs do."
        )
    key = settings.secret_key.reveal() if settings.secret_key else settings.publishable_key
    if not settings.sign_in_url and key and instance_type(key) == "test":
        raise ConfigurationError(
            "CLERK_IS_SATELLITE on a development instance needs CLERK_SIGN_IN_URL: the primary app's sign-in page "
            "(an absolute URL on the primary's origin)."
        )
    if settings.sign_in_url and not settings.sign_in_url.startswith("http"):
        raise ConfigurationError(
            "CLERK_SIGN_IN_URL must be an absolute URL on the primary's origin when CLERK_IS_SATELLITE is set "
            "(the sign-in page is the primary app's)."
        )
    if settings.sign_in_url and settings.domain and _same_origin_as_domain(settings.sign_in_url, settings.domain):
        raise ConfigurationError(
            f"CLERK_SIGN_IN_URL ({settings.sign_in_url}) is on this satellite's own origin (CLERK_DOMAIN="
            f"{settings.domain}); Clerk requires it on a different origin. Fix: set it to the primary app's "
            "sign-in page."
        )


def _same_origin_as_domain(url: str, domain: str) -> bool:
    """Whether the absolute ``url`` is on ``domain`` (``host[:port]``, the port defaulting to the URL scheme's)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    default = 443 if parts.scheme.lower() == "https" else 80
    host, _, domain_port = domain.lower().partition(":")
    return parts.hostname == host and (port or default) == (int(domain_port) if domain_port else default)


def clerk_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``CLERK_*`` keys of ``config`` (list, dict and set values copied, so later in-place edits show)."""
    return {
        key: type(value)(value) if isinstance(value, (list, dict, set)) else value
        for key, value in config.items()
        if isinstance(key, str) and key.startswith("CLERK_")
    }


def warn_if_config_changed(config: Mapping[str, Any], at_init: Mapping[str, Any]) -> None:
    """Warn, naming the keys (never their values), when ``CLERK_*`` keys changed after ``init_app`` read them:
    the extension reads its settings once, so such a change does nothing."""
    now = clerk_config(config)
    changed = sorted(key for key in at_init.keys() | now.keys() if at_init.get(key) != now.get(key))
    if changed:
        logger.warning(
            "%s changed in app.config after ClerkSecurity.init_app read it, so the change has no effect. Fix: set "
            "CLERK_* keys before ClerkSecurity(app) / clerk.init_app(app) (in the app factory, before init_app)",
            ", ".join(changed),
        )


def load_settings(config: Mapping[str, Any], options: Mapping[str, Any]) -> ClerkSettings:
    """Resolve and validate every setting; raises :class:`ConfigurationError` naming the key and the fix."""
    warn_unknown_keys(config)
    read = _Reader(config, options)

    secret_key = read.get("CLERK_SECRET_KEY")
    jwt_key = read.get("CLERK_JWT_KEY")
    if not secret_key and not jwt_key:
        raise ConfigurationError(
            "Neither CLERK_SECRET_KEY nor CLERK_JWT_KEY is set, so no token can be verified. Fix: set "
            "CLERK_SECRET_KEY (sk_test_... / sk_live_...) from the Clerk Dashboard's API keys page, or "
            "CLERK_JWT_KEY (its PEM public key) for networkless verification."
        )
    if secret_key:
        secret_key = _check_secret_key(secret_key)
    if jwt_key:
        jwt_key = _check_jwt_key(jwt_key)

    publishable_key = read.get("CLERK_PUBLISHABLE_KEY")
    frontend_api = None
    if publishable_key:
        try:
            frontend_api = frontend_api_from_publishable_key(publishable_key)
        except ValueError as exc:
            raise ConfigurationError(
                f"CLERK_PUBLISHABLE_KEY {exc}. Fix: copy the publishable key (pk_test_... / pk_live_...) "
                "from the API keys page of the Clerk Dashboard."
            ) from None
        if secret_key and instance_type(secret_key) != instance_type(publishable_key):
            raise ConfigurationError(
                f"CLERK_PUBLISHABLE_KEY is a {instance_type(publishable_key)} key but CLERK_SECRET_KEY "
                f"({mask_secret(secret_key)}) is a {instance_type(secret_key)} key. Fix: take both keys "
                "from the same Clerk instance."
            )

    webhook_secret = _webhook_signing_secret(read)

    sign_in_url = _page_url(read, "CLERK_SIGN_IN_URL", "/sign-in")
    sign_up_url = _page_url(read, "CLERK_SIGN_UP_URL", "/sign-up")

    public_routes = read.get("CLERK_PUBLIC_ROUTES", ())
    if isinstance(public_routes, str):
        public_routes = read.parse(
            "CLERK_PUBLIC_ROUTES", split_list, (), "use a comma-separated list like '/,/sign-in(.*)'"
        )

    # flask-limiter's own key counts too, so the webhook replay store follows whichever one the app set.
    own_ratelimit_uri = read.get("CLERK_RATELIMIT_STORAGE_URI")
    ratelimit_storage_uri = str(own_ratelimit_uri or config.get("RATELIMIT_STORAGE_URI") or "memory://")
    check_redis_uri(
        "CLERK_RATELIMIT_STORAGE_URI" if own_ratelimit_uri else "RATELIMIT_STORAGE_URI", ratelimit_storage_uri
    )
    webhook_store_uri = _webhook_store_uri(read, ratelimit_storage_uri, webhook_secret)
    machine_secret_key = read.get("CLERK_MACHINE_SECRET_KEY")

    settings = ClerkSettings(
        secret_key=Secret(secret_key) if secret_key else None,
        publishable_key=publishable_key,
        jwt_key=jwt_key,
        authorized_parties=read.parse(
            "CLERK_AUTHORIZED_PARTIES",
            _origins,
            (),
            "use a comma-separated list of origins like 'https://app.example.com,http://localhost:3000'",
        ),
        audience=read.parse("CLERK_AUDIENCE", split_list, (), "use one audience or a comma-separated list"),
        issuer=read.parse("CLERK_ISSUER", split_list, (), "use one issuer URL or a comma-separated list"),
        api_url=_check_url("CLERK_API_URL", str(read.get("CLERK_API_URL", DEFAULT_API_URL))),
        api_version=str(read.get("CLERK_API_VERSION", DEFAULT_API_VERSION)),
        clock_skew=read.parse("CLERK_CLOCK_SKEW", _non_negative_float, 5.0, "use seconds, e.g. 5"),
        public_routes=tuple(public_routes),
        sign_in_url=sign_in_url,
        sign_up_url=sign_up_url,
        webhook_secret=Secret(webhook_secret) if webhook_secret else None,
        webhook_signing_secret=Secret(webhook_secret) if webhook_secret else None,
        machine_secret_key=Secret(machine_secret_key) if machine_secret_key else None,
        ratelimit_storage_uri=SecretURI(ratelimit_storage_uri),
        frontend_api=frontend_api,
        http_timeout=read.parse("CLERK_HTTP_TIMEOUT", _positive_float, 3.0, "use seconds, e.g. 3"),
        jwks_cache_ttl=read.parse("CLERK_JWKS_CACHE_TTL", _positive_float, 300.0, "use seconds, e.g. 300"),
        jwks_refetch_cooldown=read.parse(
            "CLERK_JWKS_REFETCH_COOLDOWN", _non_negative_float, 5.0, "use seconds, e.g. 5"
        ),
        jwks_max_stale=read.parse("CLERK_JWKS_MAX_STALE", _non_negative_float, 3600.0, "use seconds, e.g. 3600"),
        token_cache_size=read.parse(
            "CLERK_TOKEN_CACHE_SIZE", _non_negative_int, 4096, "use a whole number; 0 turns the cache off"
        ),
        max_body_bytes=read.parse(
            "CLERK_MAX_BODY_BYTES", _positive_int, 1024 * 1024, "use a byte count, e.g. 1048576 for 1 MiB"
        ),
        **_header_settings(read),
        accepts_token=read.parse(
            "CLERK_ACCEPTS_TOKEN",
            parse_accepts_token,
            SESSION_TOKEN,
            "use 'session_token', 'api_key', 'm2m_token', 'oauth_token', a comma-separated list of them, or 'any'",
        ),
        is_satellite=read.parse("CLERK_IS_SATELLITE", _boolean, False, "use true or false"),
        organization_sync=read.parse(
            "CLERK_ORGANIZATION_SYNC",
            _organization_sync,
            {},
            "use {'organization_patterns': ['/orgs/:slug', '/orgs/:slug/(.*)'], 'personal_account_patterns': "
            "['/me', '/me/(.*)']}",
        ),
        satellite_auto_sync=read.parse("CLERK_SATELLITE_AUTO_SYNC", _boolean, False, "use true or false"),
        treat_pending_as_signed_out=read.parse(
            "CLERK_TREAT_PENDING_AS_SIGNED_OUT", _boolean, True, "use true or false"
        ),
        machine_token_cache_ttl=read.parse(
            "CLERK_MACHINE_TOKEN_CACHE_TTL", _non_negative_float, 0.0, "use seconds, e.g. 30; 0 turns the cache off"
        ),
        machine_token_cache_uri=SecretURI(str(read.get("CLERK_MACHINE_TOKEN_CACHE_URI", "memory://"))),
        webhook_max_bytes=read.parse(
            "CLERK_WEBHOOK_MAX_BYTES", _positive_int, 1_048_576, "use a number of bytes, e.g. 1048576"
        ),
        webhook_replay_ttl=read.parse(
            "CLERK_WEBHOOK_REPLAY_TTL", _replay_ttl, 86_400.0, "use seconds, e.g. 86400 (24 hours)"
        ),
        webhook_processing_ttl=read.parse(
            "CLERK_WEBHOOK_PROCESSING_TTL", _positive_float, 60.0, "use seconds above your slowest handler, e.g. 300"
        ),
        webhook_store_uri=SecretURI(webhook_store_uri),
        webhook_rate_limit=read.parse(
            "CLERK_WEBHOOK_RATE_LIMIT", _rate_limit, "600 per minute", "use e.g. '600 per minute', or 'off'"
        ),
        handshake_nonce_rate=read.parse(
            "CLERK_HANDSHAKE_NONCE_RATE", _rate_limit, "10 per minute", "use e.g. '10 per minute', or 'off'"
        ),
        handshake_nonce_rate_total=read.parse(
            "CLERK_HANDSHAKE_NONCE_RATE_TOTAL", _rate_limit, "600 per minute", "use e.g. '600 per minute', or 'off'"
        ),
        store_key_prefix=str(read.get("CLERK_STORE_KEY_PREFIX", "clerk:")),
        user_cache_ttl=read.parse(
            "CLERK_USER_CACHE_TTL", _non_negative_float, 60.0, "use seconds, e.g. 60; 0 fetches on every request"
        ),
        user_cache_max_stale=read.parse(
            "CLERK_USER_CACHE_MAX_STALE", _non_negative_float, 300.0, "use seconds, e.g. 300; 0 never serves stale"
        ),
        user_cache_size=read.parse("CLERK_USER_CACHE_SIZE", _positive_int, 10_000, "use a whole number, e.g. 10000"),
        user_cache_uri=SecretURI(_user_cache_uri(read, ratelimit_storage_uri)),
    )
    _check_satellite(settings)
    for item in fields(settings):
        value = getattr(settings, item.name)
        if isinstance(value, SecretURI):
            check_redis_uri(f"CLERK_{item.name.upper()}", value.reveal())
    if not settings.authorized_parties:
        warn_once(
            "CLERK_AUTHORIZED_PARTIES",
            "CLERK_AUTHORIZED_PARTIES is not set: tokens minted for any origin of this Clerk instance are accepted. "
            "Set it to your frontend origins in production.",
        )
    return settings
