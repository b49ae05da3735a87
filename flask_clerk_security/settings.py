"""``ClerkSettings``: every setting with its type and default, the one place a ``CLERK_*`` key is defined."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .secret_values import MEMORY_URI, Secret, SecretURI
from .token_types import SESSION_TOKEN, AcceptsToken

DEFAULT_API_URL = "https://api.clerk.com"
DEFAULT_API_VERSION = "v1"


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
