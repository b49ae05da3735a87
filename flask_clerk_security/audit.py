"""The default audit handler: one structured log record per audit signal, on ``flask_clerk_security.audit``.

Records carry the event, user id, session id, method, route and reason (plus a few event-specific fields
from an allowlist), never a token or a secret. Formatters find the fields in ``record.clerk_audit``.
Connect your own receivers to :mod:`flask_clerk_security.signals` to feed a SIEM or metrics.
"""

from __future__ import annotations

import functools
import logging
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


def write_record(event: str, level: int, data: dict[str, Any]) -> None:
    """Log one audit record: ``clerk audit <event> key=value ...`` with the fields on ``record.clerk_audit``."""
    fields: dict[str, Any] = {"event": event}
    if has_request_context():
        fields["method"] = request.method
        fields["route"] = request.path
    fields.update((name, data[name]) for name in FIELDS if data.get(name) is not None)
    text = " ".join(f"{name}={value}" for name, value in fields.items() if name != "event")
    audit_logger.log(level, "clerk audit %s %s", event, text, extra={"clerk_audit": fields})


def _receiver(event: str, log_level: int, sender: Any, /, **data: Any) -> None:
    write_record(event, log_level, data)


_RECEIVERS = {signal: functools.partial(_receiver, signal.name, level) for signal, level in LEVELS.items()}


def connect_default_handler(app: Flask) -> None:
    """Log the audit signals ``app`` sends (idempotent; other apps in the process are unaffected)."""
    for signal, receiver in _RECEIVERS.items():
        signal.connect(receiver, sender=app, weak=False)
