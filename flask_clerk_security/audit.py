"""The default audit handler: one structured log record per audit signal, on ``flask_clerk_security.audit``.

Records carry the event, user id, session id, method, route (the request path, for every event) and reason
(plus a few event-specific fields from an allowlist), never a token or a secret. Formatters find the fields in
``record.clerk_audit``. Every string in a record is passed through :func:`log_safe`, so a request path or header
cannot start a forged line. The records go where the app's logging sends them: the package only installs a
``NullHandler``, so nothing reaches stderr unless logging is configured.
Connect your own receivers to :mod:`flask_clerk_security.signals` to feed a SIEM or metrics.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

from blinker import NamedSignal
from flask import Flask, has_request_context, request

from . import signals

audit_logger = logging.getLogger("flask_clerk_security.audit")

#: Signal -> log level of its record. ``secret_leak_blocked`` is written by the leak guard itself, always.
LEVELS: dict[NamedSignal, int] = {
    signals.authentication_failed: logging.INFO,
    signals.authorization_denied: logging.WARNING,
    signals.reverification_required: logging.INFO,
    signals.csrf_rejected: logging.WARNING,
    signals.webhook_received: logging.INFO,
    signals.webhook_rejected: logging.WARNING,
    signals.webhook_replayed: logging.INFO,
    signals.rate_limit_exceeded: logging.WARNING,
}
#: The only keyword fields copied into a record; anything else a sender passes is dropped.
FIELDS = (
    "user_id", "session_id", "method", "route", "reason", "requirement", "level", "origin", "key",
    "event_id", "event_type", "limit",
)  # fmt: skip


#: Control characters (C0, DEL, C1), Unicode line/paragraph separators and the backslash that escapes them.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\\]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def log_safe(value: Any) -> str:
    """``str(value)`` with control characters written as escapes (``\\n``, ``\\x1b``), as ``repr`` shows them.

    For every request-derived value in a log line: a path with ``%0A`` cannot start a second, forged line,
    and ANSI escapes cannot rewrite a terminal.
    """
    text = value if isinstance(value, str) else str(value)
    return _UNSAFE.sub(_escape, text)


def _field_text(value: Any) -> str:
    """A ``key=value`` value for the text line: escaped, and quoted when a space, quote or ``=`` could forge a
    field."""
    text = log_safe(value)
    if text and not any(char in text for char in ' "='):
        return text
    return '"' + text.replace('"', '\\"') + '"'


def _safe_field(value: Any) -> Any:
    """A ``record.clerk_audit`` value: strings escaped (a plain ``%(clerk_audit)s`` formatter must not forge
    lines either), other values as they are."""
    return log_safe(value) if isinstance(value, str) else value


def write_record(event: str, level: int, data: dict[str, Any]) -> None:
    """Log one audit record: ``clerk audit <event> key=value ...`` with the fields on ``record.clerk_audit``."""
    fields: dict[str, Any] = {"event": event}
    in_request = has_request_context()
    if in_request:  # one meaning for every event, whatever a sender passed: the request's method and path
        fields["method"] = log_safe(request.method)
        fields["route"] = log_safe(request.path)
    fields.update(
        (name, _safe_field(data[name]))
        for name in FIELDS
        if data.get(name) is not None and not (in_request and name in ("method", "route"))
    )
    text = " ".join(f"{name}={_field_text(value)}" for name, value in fields.items() if name != "event")
    audit_logger.log(level, "clerk audit %s %s", event, text, extra={"clerk_audit": fields})


def _receiver(event: str, log_level: int, sender: Any, /, **data: Any) -> None:
    write_record(event, log_level, data)


_RECEIVERS = {signal: functools.partial(_receiver, signal.name, level) for signal, level in LEVELS.items()}


def connect_default_handler(app: Flask) -> None:
    """Log the audit signals ``app`` sends (idempotent; other apps in the process are unaffected)."""
    for signal, receiver in _RECEIVERS.items():
        signal.connect(receiver, sender=app, weak=False)
