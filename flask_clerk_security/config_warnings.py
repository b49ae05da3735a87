"""Configuration warnings, once each: ``CLERK_*`` keys nothing reads, and keys changed after ``init_app``."""

from __future__ import annotations

import difflib
import logging
import os
import re
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .settings import KNOWN_KEYS

logger = logging.getLogger("flask_clerk_security")

_warned_keys: set[str] = set()
_warned_lock = threading.Lock()


def warn_once(key: str, message: str, *args: Any) -> None:
    """A configuration warning, once per ``key`` per process (tests build hundreds of apps): logged where logging
    is configured, else a :class:`UserWarning`, which Python prints (a ``flask run`` without logging set up would
    otherwise show nothing: the package logger has only a ``NullHandler``)."""
    with _warned_lock:
        if key in _warned_keys:
            return
        _warned_keys.add(key)
    if _logging_configured():
        logger.warning(message, *args)
    else:
        warnings.warn(f"flask-clerk-security: {message % args if args else message}", UserWarning, stacklevel=2)


def _logging_configured() -> bool:
    """Whether a record of the package logger reaches a handler other than a ``NullHandler``."""
    current: logging.Logger | None = logger
    while current is not None:
        if any(not isinstance(handler, logging.NullHandler) for handler in current.handlers):
            return True
        if not current.propagate:
            return False
        current = current.parent
    return False


def _did_you_mean(key: str) -> str | None:
    """The known key ``key`` is most likely a misspelling of, compared without the ``CLERK_`` prefix."""
    known = {name[len("CLERK_") :]: name for name in KNOWN_KEYS}
    close = difflib.get_close_matches(key[len("CLERK_") :], list(known), n=1, cutoff=0.75)
    return known[close[0]] if close else None


@dataclass(frozen=True)
class ConfigWarning:
    """A configuration mistake that is no error (the app works, the setting does nothing): the key it is about,
    what is wrong and the fix. Logged once at init; ``flask clerk check`` reports it as a finding."""

    key: str
    message: str
    fix: str


def unknown_keys(config: Mapping[str, Any]) -> list[ConfigWarning]:
    """``CLERK_*`` keys nothing reads: misspelled keys are otherwise silently ignored.

    Every unknown key in ``app.config`` counts; in the environment, which also holds other tools' ``CLERK_*``
    variables (Clerk's JavaScript SDKs, CI), only a near miss of a known key does.
    """
    found = []
    for source, names in (("app.config", config), ("the environment", os.environ)):
        for key in names:
            if not isinstance(key, str) or not re.fullmatch(r"CLERK_[A-Za-z0-9_]+", key) or key in KNOWN_KEYS:
                continue
            guess = _did_you_mean(key)
            if guess is None and source == "the environment":
                continue
            message = f"{key} in {source} is not a flask-clerk-security setting and is ignored."
            found.append(ConfigWarning(key, message, f"rename it to {guess}" if guess else "remove it"))
    return found


def warn_unknown_keys(config: Mapping[str, Any]) -> None:
    """Warn (once per key) about the keys :func:`unknown_keys` finds, with the key each most likely meant."""
    for problem in unknown_keys(config):
        hint = f" Did you mean {problem.fix.removeprefix('rename it to ')}?" if problem.fix != "remove it" else ""
        warn_once(problem.key, "%s%s", problem.message, hint)


def clerk_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``CLERK_*`` keys of ``config`` (list, dict and set values copied, so later in-place edits show)."""
    return {
        key: type(value)(value) if isinstance(value, (list, dict, set)) else value
        for key, value in config.items()
        if isinstance(key, str) and key.startswith("CLERK_")
    }


#: The fix for a ``CLERK_*`` key changed after ``init_app`` read it.
CHANGED_AFTER_INIT_FIX = (
    "set CLERK_* keys before ClerkSecurity(app) / clerk.init_app(app) (in the app factory, before init_app)"
)


def changed_keys(config: Mapping[str, Any], at_init: Mapping[str, Any]) -> list[str]:
    """The ``CLERK_*`` keys of ``config`` that differ from what ``init_app`` read (``at_init``), sorted."""
    now = clerk_config(config)
    return sorted(key for key in at_init.keys() | now.keys() if at_init.get(key) != now.get(key))


def warn_if_config_changed(config: Mapping[str, Any], at_init: Mapping[str, Any]) -> None:
    """Warn, naming the keys (never their values), when ``CLERK_*`` keys changed after ``init_app`` read them:
    the extension reads its settings once, so such a change does nothing."""
    changed = changed_keys(config, at_init)
    if changed:
        logger.warning(
            "%s changed in app.config after ClerkSecurity.init_app read it, so the change has no effect. Fix: %s",
            ", ".join(changed),
            CHANGED_AFTER_INIT_FIX,
        )
