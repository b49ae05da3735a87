"""Parsing of the header settings ``config`` validates: ``CLERK_CSP_DIRECTIVES`` and ``CLERK_TALISMAN_OPTIONS``.

A base-layer module so that :mod:`.config` does not import :mod:`.headers` (which builds the headers from the
settings).
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from flask_talisman import Talisman

from .errors import ConfigurationError

#: Directive names a policy may carry (CSP Level 3 plus the reporting and Trusted Types directives).
KNOWN_DIRECTIVES = frozenset(
    {
        "default-src", "script-src", "script-src-elem", "script-src-attr", "style-src", "style-src-elem",
        "style-src-attr", "img-src", "font-src", "connect-src", "media-src", "object-src", "frame-src",
        "child-src", "worker-src", "manifest-src", "fenced-frame-src", "base-uri", "form-action",
        "frame-ancestors", "sandbox", "report-uri", "report-to", "upgrade-insecure-requests",
        "block-all-mixed-content", "require-trusted-types-for", "trusted-types",
    }
)  # fmt: skip
#: Keywords that must be single-quoted in a policy; users may write them bare.
KEYWORDS = frozenset(
    {
        "self", "none", "unsafe-inline", "unsafe-eval", "strict-dynamic", "unsafe-hashes", "report-sample",
        "wasm-unsafe-eval", "unsafe-allow-redirects", "inline-speculation-rules", "script",
    }
)  # fmt: skip
_HASH_OR_NONCE = re.compile(r"(nonce-[A-Za-z0-9+/_=-]+|sha(256|384|512)-[A-Za-z0-9+/_=-]+)")
_BARE_SOURCE = re.compile(r"[^\s;,'\"]+")


def _source(directive: str, token: str) -> str:
    """One source expression, keywords quoted; raises ``ValueError`` on anything malformed."""
    bare = token[1:-1] if len(token) > 2 and token[0] == token[-1] == "'" else token
    if bare in KEYWORDS or _HASH_OR_NONCE.fullmatch(bare):
        return f"'{bare}'"
    if bare == token and _BARE_SOURCE.fullmatch(token):
        return token
    raise ValueError(f"{directive} has a malformed source {token!r}")


def parse_csp_directives(raw: Any) -> dict[str, tuple[str, ...]]:
    """``CLERK_CSP_DIRECTIVES`` (a mapping or a JSON object) as directive -> sources, keywords quoted.

    A value is a space-separated string or a list of strings; an empty value adds a valueless directive
    (``upgrade-insecure-requests``). Unknown names and malformed sources raise :class:`ConfigurationError`.
    """
    if raw is None or raw == "":
        return {}
    fix = "Fix: use a mapping like {'img-src': ['https://cdn.example.com'], 'connect-src': 'https://api.example.com'}."
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise ConfigurationError(f"CLERK_CSP_DIRECTIVES is not valid JSON. {fix}") from None
    if not isinstance(raw, Mapping):
        raise ConfigurationError(f"CLERK_CSP_DIRECTIVES must be a mapping of directive to sources. {fix}")
    parsed: dict[str, tuple[str, ...]] = {}
    for name, value in raw.items():
        directive = str(name).strip().lower()
        if directive not in KNOWN_DIRECTIVES:
            raise ConfigurationError(f"CLERK_CSP_DIRECTIVES has an unknown directive {name!r}. {fix}")
        if isinstance(value, str):
            tokens: Iterable[Any] = value.split()
        elif isinstance(value, (list, tuple)):
            tokens = value
        else:
            raise ConfigurationError(f"CLERK_CSP_DIRECTIVES[{name!r}] must be a string or a list of strings. {fix}")
        try:
            parsed[directive] = tuple(_source(directive, _as_token(directive, token)) for token in tokens)
        except ValueError as exc:
            raise ConfigurationError(f"CLERK_CSP_DIRECTIVES {exc}. {fix}") from None
    return parsed


def _as_token(directive: str, token: Any) -> str:
    if not isinstance(token, str) or not token.strip() or len(token.split()) != 1:
        raise ValueError(f"{directive} has a malformed source {token!r}")
    return token.strip()


_TALISMAN_OPTIONS = frozenset(inspect.signature(Talisman.init_app).parameters) - {"self", "app"}


def check_talisman_options(raw: Any) -> dict[str, Any]:
    """``talisman_options=`` / ``CLERK_TALISMAN_OPTIONS``: keyword arguments of ``Talisman.init_app``."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raw = None
    if not isinstance(raw, Mapping):
        raise ConfigurationError(
            "CLERK_TALISMAN_OPTIONS must be a mapping of Talisman options. Fix: pass "
            "ClerkSecurity(app, talisman_options={'frame_options': 'SAMEORIGIN'})."
        )
    unknown = sorted(set(raw) - _TALISMAN_OPTIONS)
    if unknown:
        raise ConfigurationError(
            f"CLERK_TALISMAN_OPTIONS has unknown option(s) {', '.join(map(repr, unknown))}. "
            f"Fix: use Talisman.init_app's keyword arguments ({', '.join(sorted(_TALISMAN_OPTIONS))})."
        )
    return dict(raw)
