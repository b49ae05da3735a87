"""Clerk webhook deliveries for tests: a Svix secret, Clerk-shaped events, deliveries signed by ``svix``."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Mapping
from typing import Any


def generate_webhook_secret() -> str:
    """A fresh Svix signing secret (``whsec_`` + base64 of 24 random bytes), as Clerk's Dashboard shows one."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def clerk_event(event_type: str, data: Mapping[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A Clerk-shaped webhook payload: ``clerk_event("user.created", {"id": "user_123"})``."""
    return {
        "data": dict(data or {}),
        "object": "event",
        "type": event_type,
        "timestamp": int(time.time() * 1000),
        "instance_id": "ins_test",
        **extra,
    }


def sign_webhook(
    secret: str,
    payload: Mapping[str, Any] | str | bytes,
    *,
    msg_id: str | None = None,
    timestamp: float | None = None,
) -> tuple[bytes, dict[str, str]]:
    """Sign a webhook delivery with the real ``svix`` library; returns ``(body, headers)`` for a test client.

    ``client.post("/api/webhooks/clerk", data=body, headers=headers)``. ``msg_id`` defaults to a fresh
    ``msg_...`` id (reuse one to test replays); ``timestamp`` (Unix seconds) defaults to now.
    """
    from datetime import datetime, timezone

    from svix.webhooks import Webhook

    if isinstance(payload, bytes):
        body = payload
    elif isinstance(payload, str):
        body = payload.encode()
    else:
        body = json.dumps(payload, separators=(",", ":")).encode()
    msg_id = msg_id or f"msg_{secrets.token_hex(12)}"
    when = datetime.fromtimestamp(int(time.time() if timestamp is None else timestamp), tz=timezone.utc)
    signature = Webhook(secret).sign(msg_id, when, body.decode())
    headers = {
        "svix-id": msg_id,
        "svix-timestamp": str(int(when.timestamp())),
        "svix-signature": signature,
        "Content-Type": "application/json",
    }
    return body, headers
