"""Test kit: a Clerk-shaped token issuer and a Backend API stand-in on 127.0.0.1, so apps test without Clerk.

The pytest fixtures that use them live in :mod:`flask_clerk_security.pytest_plugin`.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

__all__ = [
    "BackendAPIStandIn",
    "ClerkTestIssuer",
    "Handler",
    "StandInRequest",
    "clerk_event",
    "generate_webhook_secret",
    "sign_webhook",
]


def _publishable_key(frontend_api: str, instance: str) -> str:
    encoded = base64.b64encode(f"{frontend_api}$".encode()).decode().rstrip("=")
    return f"pk_{instance}_{encoded}"


class ClerkTestIssuer:
    """Signs Clerk-shaped session tokens (v1 and v2) with its own RSA key.

    ``session_token(org={"id": "org_1", "slug": "acme", "role": "admin",
    "permissions": {"memberships": ["read", "manage"]}})`` encodes the organization the way Clerk does
    (v2: ``o.rol``, ``o.per``, ``o.fpm`` bitmasks over the ``fea`` org features; v1: ``org_*`` claims).
    """

    def __init__(
        self,
        *,
        kid: str = "ins_test",
        frontend_api: str = "clerk.example.test",
        instance: str = "test",
        private_key: rsa.RSAPrivateKey | None = None,
    ) -> None:
        self.kid = kid
        self.private_key = private_key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_pem = (
            self.private_key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )
        self.frontend_api = frontend_api
        self.issuer = f"https://{frontend_api}"
        self.publishable_key = _publishable_key(frontend_api, instance)
        self.secret_key = f"sk_{instance}_{secrets.token_hex(20)}"
        #: A signing secret for webhook tests: put it in ``CLERK_WEBHOOK_SECRET``, sign with :meth:`sign_webhook`.
        self.webhook_secret = generate_webhook_secret()

    @property
    def jwk(self) -> dict[str, Any]:
        """The public key as a JWK, as the Backend API's ``/v1/jwks`` lists it."""
        key = json.loads(RSAAlgorithm.to_jwk(self.private_key.public_key()))
        return {**key, "kid": self.kid, "alg": "RS256", "use": "sig"}

    @property
    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.jwk]}

    @property
    def config(self) -> dict[str, str]:
        """App config for networkless verification against this issuer."""
        return {"CLERK_JWT_KEY": self.public_pem, "CLERK_PUBLISHABLE_KEY": self.publishable_key}

    def sign(
        self,
        claims: Mapping[str, Any],
        *,
        headers: Mapping[str, Any] | None = None,
        algorithm: str = "RS256",
        key: Any = None,
    ) -> str:
        """Sign raw claims. The header carries ``kid`` and ``typ: JWT``; ``headers={"typ": None}`` drops typ."""
        return jwt.encode(
            dict(claims),
            key if key is not None else self.private_key,
            algorithm=algorithm,
            headers={"kid": self.kid, **(headers or {})},
        )

    def session_claims(
        self,
        *,
        user_id: str = "user_123",
        session_id: str = "sess_123",
        org: Mapping[str, Any] | None = None,
        features: Iterable[str] = (),
        plan: str | None = None,
        fva: tuple[int, int] | list[int] | None = (0, -1),
        version: int = 2,
        azp: str | None = "http://localhost:5000",
        status: str | None = "active",
        lifetime: int = 60,
        issued_at: float | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """The claims of a Clerk session token; ``extra`` adds or overrides claims (``None`` removes one)."""
        now = int(time.time() if issued_at is None else issued_at)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": user_id,
            "sid": session_id,
            "iat": now,
            "nbf": now - 10,
            "exp": now + lifetime,
            "azp": azp,
            "fva": list(fva) if fva is not None else None,
            "sts": status,
        }
        feature_list = list(features)
        if version == 2:
            claims["v"] = 2
            claims["jti"] = secrets.token_hex(10)
            if org:
                org_features, per, fpm = _encode_permissions(org.get("permissions", {}))
                feature_list = [f"o:{name}" for name in org_features] + feature_list
                encoded = {"id": org["id"], "slg": org.get("slug"), "rol": _strip_org(org.get("role", "member"))}
                if per:
                    encoded.update(per=per, fpm=fpm)
                claims["o"] = {key: value for key, value in encoded.items() if value is not None}
            if feature_list:
                claims["fea"] = ",".join(feature_list)
            if plan:
                claims["pla"] = plan
        elif org:
            claims["org_id"] = org["id"]
            claims["org_slug"] = org.get("slug")
            claims["org_role"] = f"org:{_strip_org(org.get('role', 'member'))}"
            claims["org_permissions"] = [
                f"org:{feature}:{name}" for feature, names in org.get("permissions", {}).items() for name in names
            ]
        claims.update(extra)
        return {key: value for key, value in claims.items() if value is not None}

    def session_token(self, **options: Any) -> str:
        """A signed session token; takes the options of :meth:`session_claims`."""
        return self.sign(self.session_claims(**options))

    def auth_header(self, **options: Any) -> dict[str, str]:
        """``{"Authorization": "Bearer <session token>"}`` for a test client."""
        return {"Authorization": f"Bearer {self.session_token(**options)}"}

    def sign_webhook(
        self, payload: Mapping[str, Any] | str | bytes, *, msg_id: str | None = None, timestamp: float | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """:func:`sign_webhook` with this issuer's :attr:`webhook_secret`."""
        return sign_webhook(self.webhook_secret, payload, msg_id=msg_id, timestamp=timestamp)


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


def _strip_org(role: str) -> str:
    return role[4:] if role.startswith("org:") else role


def _encode_permissions(permissions: Mapping[str, Iterable[str]]) -> tuple[list[str], str, str]:
    """Clerk's v2 encoding: features, the ``per`` name list and one ``fpm`` bitmask per feature."""
    names: list[str] = []
    for granted in permissions.values():
        for name in granted:
            if name not in names:
                names.append(name)
    masks = [sum(1 << names.index(name) for name in set(granted)) for granted in permissions.values()]
    return list(permissions), ",".join(names), ",".join(str(mask) for mask in masks)


class StandInRequest:
    """One request the stand-in received."""

    def __init__(self, method: str, path: str, query: dict[str, list[str]], headers: Mapping[str, str], body: Any):
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.json = body


Handler = Callable[[StandInRequest], tuple[int, Any]]


class BackendAPIStandIn:
    """Clerk's Backend API on 127.0.0.1 over real HTTP: ``GET /v1/jwks`` for the issuer, plus added routes.

    Knobs for failure tests: ``delay`` (seconds before answering), ``fail_status`` (answer every call with
    it), ``hang`` (accept, then never answer until stopped). ``calls`` records every request.
    """

    def __init__(self, issuer: ClerkTestIssuer, *, secret_key: str | None = None) -> None:
        self.issuer = issuer
        self.secret_key = secret_key or issuer.secret_key
        self.delay = 0.0
        self.fail_status: int | None = None
        self.hang = False
        self.calls: list[StandInRequest] = []
        self.routes: dict[tuple[str, str], Handler] = {("GET", "/v1/jwks"): lambda _: (200, self.issuer.jwks)}
        self._stopped = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def count(self, method: str, path: str) -> int:
        return sum(1 for call in self.calls if call.method == method and call.path == path)

    def start(self) -> BackendAPIStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> BackendAPIStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _answer(self, request: StandInRequest) -> tuple[int, Any]:
        self.calls.append(request)
        if self.hang:
            self._stopped.wait(30)
            return 503, {"errors": [{"code": "stopped"}]}
        if self.delay:
            time.sleep(self.delay)
        if self.fail_status is not None:
            return self.fail_status, {"errors": [{"code": "internal_error", "message": "stand-in failure"}]}
        if request.headers.get("Authorization") != f"Bearer {self.secret_key}":
            return 401, {"errors": [{"code": "clerk_key_invalid", "message": "The secret key is invalid."}]}
        handler = self.routes.get((request.method, request.path))
        if handler is None:
            return 404, {"errors": [{"code": "resource_not_found", "message": "not found"}]}
        return handler(request)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class _Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                parts = urlsplit(self.path)
                request = StandInRequest(
                    self.command, parts.path, parse_qs(parts.query), dict(self.headers.items()), body
                )
                status, payload = stand_in._answer(request)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PATCH = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return _Handler
