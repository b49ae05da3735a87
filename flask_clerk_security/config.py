"""Settings from ``ClerkSecurity(**options)``, ``app.config`` and the environment, checked once at init_app."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import fields
from typing import Any
from urllib.parse import urlsplit

from .clerk_keys import (
    check_jwt_key,
    check_secret_key,
    check_webhook_secret,
    frontend_api_from_publishable_key,
    instance_type,
)
from .config_values import (
    ConfigReader,
    boolean,
    check_redis_uri,
    check_url,
    issuers,
    non_negative_float,
    non_negative_int,
    organization_sync,
    origins,
    positive_float,
    positive_int,
    rate_limit,
    replay_ttl,
    split_list,
)
from .config_warnings import ConfigWarning, warn_once, warn_unknown_keys
from .errors import ConfigurationError
from .header_options import check_talisman_options, parse_csp_directives
from .secret_values import Secret, SecretURI, mask_secret
from .settings import DEFAULT_API_URL, DEFAULT_API_VERSION, ClerkSettings
from .token_types import SESSION_TOKEN, parse_accepts_token

#: The storage URIs :mod:`.stores` speaks (the webhook replay store and the user cache).
_STORE_SCHEMES = ("memory://", "redis://", "rediss://", "unix://")


def _page_url(read: ConfigReader, key: str, example: str) -> str | None:
    """A sign-in or sign-up page setting: a path (the app's own page) or an absolute http(s) URL."""
    url = read.get(key)
    if url is not None and not (
        isinstance(url, str)
        and (url.startswith("/") or (re.fullmatch(r"https?://[^\s/?#]+([/?#]\S*)?", url) and _parses_as_url(url)))
    ):
        raise ConfigurationError(
            f"{key} must be a path ('{example}') or an absolute http(s) URL, got {url!r}. Fix: e.g. '{example}' "
            f"or 'https://accounts.example.com{example}'."
        )
    return url


def _webhook_signing_secret(read: ConfigReader) -> str | None:
    """``CLERK_WEBHOOK_SIGNING_SECRET`` (the name Clerk's SDKs read), or its alias ``CLERK_WEBHOOK_SECRET``;
    both set to different values is refused rather than one silently winning."""
    found = {}
    for key in ("CLERK_WEBHOOK_SIGNING_SECRET", "CLERK_WEBHOOK_SECRET"):
        value = read.get(key)
        if value:
            found[key] = check_webhook_secret(value, key)
    if len(set(found.values())) > 1:
        raise ConfigurationError(
            "CLERK_WEBHOOK_SIGNING_SECRET and CLERK_WEBHOOK_SECRET are both set, to different secrets "
            f"({mask_secret(found['CLERK_WEBHOOK_SIGNING_SECRET'])} and {mask_secret(found['CLERK_WEBHOOK_SECRET'])}). "
            "Fix: keep CLERK_WEBHOOK_SIGNING_SECRET (Clerk's name) and remove CLERK_WEBHOOK_SECRET."
        )
    return next(iter(found.values()), None)


def _webhook_store_uri(read: ConfigReader, ratelimit_uri: str, webhook_secret: str | None) -> str:
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


def _user_cache_uri(read: ConfigReader, ratelimit_uri: str) -> str:
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


def _api_url(read: ConfigReader) -> tuple[str, str]:
    """``CLERK_API_URL`` (its trailing slash removed) and ``CLERK_API_VERSION``, which every call's path starts
    with: a URL already ending in the version would call ``/v1/v1/jwks``."""
    api_url = check_url("CLERK_API_URL", str(read.get("CLERK_API_URL", DEFAULT_API_URL)))
    api_version = str(read.get("CLERK_API_VERSION", DEFAULT_API_VERSION))
    base, _, last = api_url.rpartition("/")
    if last == api_version and urlsplit(api_url).path not in ("", "/"):
        raise ConfigurationError(
            f"CLERK_API_URL ends with the API version ({api_url}), which is added to every call ({api_url}/"
            f"{api_version}/jwks). Fix: set it to {base}."
        )
    return api_url, api_version


def _parses_as_url(url: str) -> bool:
    """Whether ``url``'s host and port parse (``http://[::1`` and ``http://a:99999`` do not)."""
    try:
        urlsplit(url).port  # noqa: B018 - parsing the port is the check
    except ValueError:
        return False
    return True


def _header_settings(read: ConfigReader) -> dict[str, Any]:
    """The ``ClerkSettings`` fields of :mod:`.headers`, :mod:`.leakguard` and :mod:`.audit`."""
    proxy_url = read.get("CLERK_PROXY_URL")
    if proxy_url is not None and not (
        isinstance(proxy_url, str)
        and re.fullmatch(r"/\S*|https?://[^\s/?#]+(/\S*)?", proxy_url)
        and _parses_as_url(proxy_url)
    ):
        raise ConfigurationError(
            f"CLERK_PROXY_URL must be an absolute http(s) URL or a path, got {proxy_url!r}. "
            "Fix: set it to your Frontend API proxy, e.g. https://app.example.com/__clerk."
        )
    domain = read.get("CLERK_DOMAIN")
    if domain is not None:
        host = re.sub(r"^https?://", "", str(domain)).rstrip("/")
        # One label is a host too: Clerk's satellite guide develops on localhost:3001.
        if not (
            re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:[0-9]{1,5})?", host) and _parses_as_url(f"http://{host}")
        ):
            raise ConfigurationError(
                f"CLERK_DOMAIN must be a host name, got {domain!r}. Fix: set it to your satellite's domain, "
                "e.g. satellite.example.com (localhost:3001 in development)."
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
    report_only = read.parse("CLERK_CSP_REPORT_ONLY", boolean, False, "use true or false")
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
        "csp_strict": read.parse("CLERK_CSP_STRICT", boolean, False, "use true or false"),
        "csp_report_only": report_only,
        "csp_report_uri": report_uri,
        "csp_report_to": report_to,
        "force_https": read.parse("CLERK_FORCE_HTTPS", boolean, None, "use true or false"),
        "security_headers": read.parse("CLERK_SECURITY_HEADERS", boolean, True, "use true or false"),
        "talisman_options": check_talisman_options(read.get("CLERK_TALISMAN_OPTIONS")),
        "leak_guard": read.parse("CLERK_LEAK_GUARD", boolean, True, "use true or false"),
        "audit_log": read.parse("CLERK_AUDIT_LOG", boolean, True, "use true or false"),
        "debug": read.parse("CLERK_DEBUG", boolean, False, "use true or false"),
    }


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


def settings_warnings(settings: ClerkSettings) -> list[ConfigWarning]:
    """Settings that are valid but do nothing in this combination (logged at init, findings of the check)."""
    found = []
    if settings.satellite_auto_sync and not settings.is_satellite:
        found.append(
            ConfigWarning(
                "CLERK_SATELLITE_AUTO_SYNC",
                "CLERK_SATELLITE_AUTO_SYNC is on but CLERK_IS_SATELLITE is not: it has no effect.",
                "set CLERK_IS_SATELLITE=true on a satellite app, or remove CLERK_SATELLITE_AUTO_SYNC",
            )
        )
    return found


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


def load_settings(config: Mapping[str, Any], options: Mapping[str, Any]) -> ClerkSettings:
    """Resolve and validate every setting; raises :class:`ConfigurationError` naming the key and the fix."""
    warn_unknown_keys(config)
    read = ConfigReader(config, options)

    secret_key = read.get("CLERK_SECRET_KEY")
    jwt_key = read.get("CLERK_JWT_KEY")
    if not secret_key and not jwt_key:
        raise ConfigurationError(
            "Neither CLERK_SECRET_KEY nor CLERK_JWT_KEY is set, so no token can be verified. Fix: set "
            "CLERK_SECRET_KEY (sk_test_... / sk_live_...) from the Clerk Dashboard's API keys page, or "
            "CLERK_JWT_KEY (its PEM public key) for networkless verification."
        )
    if secret_key:
        secret_key = check_secret_key(secret_key)
    if jwt_key:
        jwt_key = check_jwt_key(jwt_key)

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
    elif not isinstance(public_routes, (list, tuple, set, frozenset)):
        raise ConfigurationError(
            f"CLERK_PUBLIC_ROUTES must be a list of patterns, got {type(public_routes).__name__}. Fix: use a list "
            "like ['/', '/sign-in(.*)'] or a comma-separated string."
        )

    # flask-limiter's own key counts too, so the webhook replay store follows whichever one the app set.
    own_ratelimit_uri = read.get("CLERK_RATELIMIT_STORAGE_URI")
    ratelimit_storage_uri = str(own_ratelimit_uri or config.get("RATELIMIT_STORAGE_URI") or "memory://")
    check_redis_uri(
        "CLERK_RATELIMIT_STORAGE_URI" if own_ratelimit_uri else "RATELIMIT_STORAGE_URI", ratelimit_storage_uri
    )
    webhook_store_uri = _webhook_store_uri(read, ratelimit_storage_uri, webhook_secret)
    machine_secret_key = read.get("CLERK_MACHINE_SECRET_KEY")
    api_url, api_version = _api_url(read)

    settings = ClerkSettings(
        secret_key=Secret(secret_key) if secret_key else None,
        publishable_key=publishable_key,
        jwt_key=jwt_key,
        authorized_parties=read.parse(
            "CLERK_AUTHORIZED_PARTIES",
            origins,
            (),
            "use a comma-separated list of origins like 'https://app.example.com,http://localhost:3000'",
        ),
        audience=read.parse("CLERK_AUDIENCE", split_list, (), "use one audience or a comma-separated list"),
        issuer=read.parse(
            "CLERK_ISSUER",
            issuers,
            (),
            "use the Frontend API URL tokens carry in iss, e.g. https://clerk.example.com (or a comma-separated list)",
        ),
        api_url=api_url,
        api_version=api_version,
        clock_skew=read.parse("CLERK_CLOCK_SKEW", non_negative_float, 5.0, "use seconds, e.g. 5"),
        public_routes=tuple(public_routes),
        sign_in_url=sign_in_url,
        sign_up_url=sign_up_url,
        webhook_secret=Secret(webhook_secret) if webhook_secret else None,
        webhook_signing_secret=Secret(webhook_secret) if webhook_secret else None,
        machine_secret_key=Secret(machine_secret_key) if machine_secret_key else None,
        ratelimit_storage_uri=SecretURI(ratelimit_storage_uri),
        frontend_api=frontend_api,
        http_timeout=read.parse("CLERK_HTTP_TIMEOUT", positive_float, 3.0, "use seconds, e.g. 3"),
        jwks_cache_ttl=read.parse("CLERK_JWKS_CACHE_TTL", positive_float, 300.0, "use seconds, e.g. 300"),
        jwks_refetch_cooldown=read.parse(
            "CLERK_JWKS_REFETCH_COOLDOWN", non_negative_float, 5.0, "use seconds, e.g. 5"
        ),
        jwks_max_stale=read.parse("CLERK_JWKS_MAX_STALE", non_negative_float, 3600.0, "use seconds, e.g. 3600"),
        token_cache_size=read.parse(
            "CLERK_TOKEN_CACHE_SIZE", non_negative_int, 4096, "use a whole number; 0 turns the cache off"
        ),
        max_body_bytes=read.parse(
            "CLERK_MAX_BODY_BYTES", positive_int, 1024 * 1024, "use a byte count, e.g. 1048576 for 1 MiB"
        ),
        **_header_settings(read),
        accepts_token=read.parse(
            "CLERK_ACCEPTS_TOKEN",
            parse_accepts_token,
            SESSION_TOKEN,
            "use 'session_token', 'api_key', 'm2m_token', 'oauth_token', a comma-separated list of them, or 'any'",
        ),
        is_satellite=read.parse("CLERK_IS_SATELLITE", boolean, False, "use true or false"),
        organization_sync=read.parse(
            "CLERK_ORGANIZATION_SYNC",
            organization_sync,
            {},
            "use {'organization_patterns': ['/orgs/:slug', '/orgs/:slug/(.*)'], 'personal_account_patterns': "
            "['/me', '/me/(.*)']}",
        ),
        satellite_auto_sync=read.parse("CLERK_SATELLITE_AUTO_SYNC", boolean, False, "use true or false"),
        treat_pending_as_signed_out=read.parse(
            "CLERK_TREAT_PENDING_AS_SIGNED_OUT", boolean, True, "use true or false"
        ),
        machine_token_cache_ttl=read.parse(
            "CLERK_MACHINE_TOKEN_CACHE_TTL", non_negative_float, 0.0, "use seconds, e.g. 30; 0 turns the cache off"
        ),
        machine_token_cache_uri=SecretURI(str(read.get("CLERK_MACHINE_TOKEN_CACHE_URI", "memory://"))),
        webhook_max_bytes=read.parse(
            "CLERK_WEBHOOK_MAX_BYTES", positive_int, 1_048_576, "use a number of bytes, e.g. 1048576"
        ),
        webhook_replay_ttl=read.parse(
            "CLERK_WEBHOOK_REPLAY_TTL", replay_ttl, 86_400.0, "use seconds, e.g. 86400 (24 hours)"
        ),
        webhook_processing_ttl=read.parse(
            "CLERK_WEBHOOK_PROCESSING_TTL", positive_float, 60.0, "use seconds above your slowest handler, e.g. 300"
        ),
        webhook_store_uri=SecretURI(webhook_store_uri),
        webhook_rate_limit=read.parse(
            "CLERK_WEBHOOK_RATE_LIMIT", rate_limit, "600 per minute", "use e.g. '600 per minute', or 'off'"
        ),
        handshake_nonce_rate=read.parse(
            "CLERK_HANDSHAKE_NONCE_RATE", rate_limit, "10 per minute", "use e.g. '10 per minute', or 'off'"
        ),
        handshake_nonce_rate_total=read.parse(
            "CLERK_HANDSHAKE_NONCE_RATE_TOTAL", rate_limit, "600 per minute", "use e.g. '600 per minute', or 'off'"
        ),
        store_key_prefix=str(read.get("CLERK_STORE_KEY_PREFIX", "clerk:")),
        user_cache_ttl=read.parse(
            "CLERK_USER_CACHE_TTL", non_negative_float, 60.0, "use seconds, e.g. 60; 0 fetches on every request"
        ),
        user_cache_max_stale=read.parse(
            "CLERK_USER_CACHE_MAX_STALE", non_negative_float, 300.0, "use seconds, e.g. 300; 0 never serves stale"
        ),
        user_cache_size=read.parse("CLERK_USER_CACHE_SIZE", positive_int, 10_000, "use a whole number, e.g. 10000"),
        user_cache_uri=SecretURI(_user_cache_uri(read, ratelimit_storage_uri)),
    )
    _check_satellite(settings)
    for problem in settings_warnings(settings):
        warn_once(problem.key, "%s Fix: %s.", problem.message, problem.fix)
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
