"""Configuration warnings, logged once: ``CLERK_*`` keys nothing reads, and keys changed after ``init_app``."""

from __future__ import annotations

import difflib
import logging
import os
import re
import threading
from collections.abc import Mapping
from typing import Any

from .settings import KNOWN_KEYS

logger = logging.getLogger("flask_clerk_security")

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
