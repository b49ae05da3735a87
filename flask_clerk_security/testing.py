"""Test kit: a Clerk-shaped token issuer and a Backend API stand-in on 127.0.0.1, so apps test without Clerk.

The pytest fixtures that use them live in :mod:`flask_clerk_security.pytest_plugin`.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from werkzeug.serving import WSGIRequestHandler, make_server

from .cookies import cookie_suffix

__all__ = [
    "BackendAPIStandIn",
    "ClerkTestIssuer",
    "FrontendAPIStandIn",
    "Handler",
    "MachineTokenRecord",
    "StandInRequest",
    "clerk_event",
    "generate_webhook_secret",
    "serve_app",
    "sign_webhook",
]

#: ``cat`` header Clerk stamps on M2M JWTs.
M2M_JWT_CATEGORY = "cl_B7d4PD333AAA"


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

    def session_cookies(self, *, suffixed: bool = False, **options: Any) -> dict[str, str]:
        """The cookies of a signed-in browser: ``__session``, ``__client_uat`` and, on a development instance
        (``pk_test_``), the dev-browser token ``__clerk_db_jwt`` that Clerk requires there.

        ``suffixed`` names them ``__session_<suffix>`` etc.; takes the options of :meth:`session_claims`.
        """
        claims = self.session_claims(**options)
        cookies = {"__session": self.sign(claims), "__client_uat": str(int(claims["iat"]) - 30)}
        if self.publishable_key.startswith("pk_test_"):
            cookies["__clerk_db_jwt"] = "dvb_test_kit"
        if suffixed:
            suffix = cookie_suffix(self.publishable_key)
            cookies = {f"{name}_{suffix}": value for name, value in cookies.items()}
        return cookies

    def auth_header(self, **options: Any) -> dict[str, str]:
        """``{"Authorization": "Bearer <session token>"}`` for a test client."""
        return {"Authorization": f"Bearer {self.session_token(**options)}"}

    def m2m_jwt(
        self,
        *,
        machine_id: str = "mch_test",
        scopes: Iterable[str] = (),
        claims: Mapping[str, Any] | None = None,
        lifetime: int = 3600,
        category: str | None = M2M_JWT_CATEGORY,
        **extra: Any,
    ) -> str:
        """An M2M token in JWT form (``sub`` = ``machine_id``, which Clerk detects by its ``mch_`` prefix).

        ``scopes`` go in the space-separated ``scopes`` claim, ``claims`` are custom claims; ``category=None``
        drops the ``cat`` header (tokens minted before Clerk's category rollout); ``extra`` overrides claims.
        """
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "sub": machine_id,
            "jti": f"mt_{secrets.token_hex(16)}",
            "iat": now,
            "nbf": now - 5,
            "exp": now + lifetime,
            **(claims or {}),
        }
        if scopes:
            payload["scopes"] = " ".join(scopes)
        payload.update(extra)
        headers = {"typ": "JWT", **({"cat": category} if category else {})}
        return self.sign({k: v for k, v in payload.items() if v is not None}, headers=headers)

    def oauth_jwt(
        self,
        *,
        user_id: str = "user_123",
        client_id: str = "client_test",
        scopes: Iterable[str] = (),
        lifetime: int = 3600,
        typ: str = "at+jwt",
        **extra: Any,
    ) -> str:
        """An OAuth access token in JWT form (RFC 9068 header ``typ: at+jwt``), as Clerk's OAuth server issues."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "sub": user_id,
            "client_id": client_id,
            "jti": f"oat_{secrets.token_hex(16)}",
            "iat": now,
            "nbf": now - 5,
            "exp": now + lifetime,
            "scope": " ".join(scopes) or None,
        }
        payload.update(extra)
        return self.sign({k: v for k, v in payload.items() if v is not None}, headers={"typ": typ})

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


class MachineTokenRecord:
    """A machine token minted by the stand-in: the JSON its verify endpoint answers, and its state."""

    def __init__(self, token_type: str, resource: dict[str, Any], expires_at: float | None) -> None:
        self.token_type = token_type
        self.resource = resource
        self.expires_at = expires_at
        self.revoked = False

    def to_json(self) -> dict[str, Any]:
        expired = self.expires_at is not None and self.expires_at <= time.time()
        return {**self.resource, "revoked": self.revoked, "expired": expired}


#: Verify route, JSON field holding the token, and the token prefix, per machine token type.
_MACHINE_ROUTES = {
    "api_key": ("/api_keys/verify", "secret", "ak_"),
    "m2m_token": ("/m2m_tokens/verify", "token", "mt_"),
    "oauth_token": ("/oauth_applications/access_tokens/verify", "access_token", "oat_"),
}


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Serve a WSGI app on a free port of 127.0.0.1 (werkzeug, threaded, quiet) for real-HTTP and browser tests.

    ``with serve_app(app) as base_url: requests.get(base_url + "/api/me")``; the server stops on exit.
    """
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietRequestHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class _QuietRequestHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


_Server = TypeVar("_Server", bound="_LoopbackServer")


class _LoopbackServer:
    """A stand-in's HTTP server on a free port of 127.0.0.1, served from a daemon thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self: _Server) -> _Server:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self: _Server) -> _Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class BackendAPIStandIn(_LoopbackServer):
    """Clerk's Backend API on 127.0.0.1 over real HTTP: ``GET /v1/jwks`` for the issuer, plus added routes.

    Knobs for failure tests: ``delay`` (seconds before answering), ``fail_status`` (answer every call with
    it), ``hang`` (accept, then never answer until stopped). ``calls`` records every request.

    Machine tokens: ``mint_api_key``, ``mint_m2m_token`` and ``mint_oauth_token`` register opaque tokens that the
    verify endpoints (``POST /api_keys/verify`` ...) then answer for, as Clerk's Backend API does; unknown
    tokens get 404. ``revoke(token)`` marks one revoked. ``machine_secret_key`` (when set) is also accepted
    as the bearer of ``/m2m_tokens/verify``.
    """

    def __init__(self, issuer: ClerkTestIssuer, *, secret_key: str | None = None) -> None:
        self.issuer = issuer
        self.secret_key = secret_key or issuer.secret_key
        self.delay = 0.0
        self.fail_status: int | None = None
        self.hang = False
        self.calls: list[StandInRequest] = []
        #: Handshake payloads by nonce, filled by :class:`FrontendAPIStandIn`; each nonce answers once.
        self.handshake_payloads: dict[str, list[str]] = {}
        self.routes: dict[tuple[str, str], Handler] = {
            ("GET", "/v1/jwks"): lambda _: (200, self.issuer.jwks),
            ("GET", "/v1/clients/handshake_payload"): self._handshake_payload,
        }
        self.machine_secret_key: str | None = None
        self.machine_tokens: dict[str, MachineTokenRecord] = {}
        for token_type, (path, field, _) in _MACHINE_ROUTES.items():
            self.routes[("POST", path)] = self._machine_verify_handler(token_type, field)
        self._stopped = threading.Event()
        super().__init__(self._handler_class())

    def count(self, method: str, path: str) -> int:
        return sum(1 for call in self.calls if call.method == method and call.path == path)

    def stop(self) -> None:
        self._stopped.set()  # releases requests held by ``hang``
        super().stop()

    def _handshake_payload(self, request: StandInRequest) -> tuple[int, Any]:
        nonce = (request.query.get("nonce") or [""])[0]
        directives = self.handshake_payloads.pop(nonce, None)
        if directives is None:
            return 404, {"errors": [{"code": "resource_not_found", "message": "unknown handshake nonce"}]}
        return 200, {"object": "handshake_payload", "directives": directives}

    def _answer(self, request: StandInRequest) -> tuple[int, Any]:
        self.calls.append(request)
        if self.hang:
            self._stopped.wait(30)
            return 503, {"errors": [{"code": "stopped"}]}
        if self.delay:
            time.sleep(self.delay)
        if self.fail_status is not None:
            return self.fail_status, {"errors": [{"code": "internal_error", "message": "stand-in failure"}]}
        authorization = next((v for k, v in request.headers.items() if k.lower() == "authorization"), None)
        bearers = {f"Bearer {self.secret_key}"}
        if self.machine_secret_key and request.path.startswith("/m2m_tokens/"):
            bearers.add(f"Bearer {self.machine_secret_key}")
        if authorization not in bearers:
            return 401, {"errors": [{"code": "clerk_key_invalid", "message": "The secret key is invalid."}]}
        handler = self.routes.get((request.method, request.path))
        if handler is None:
            return 404, {"errors": [{"code": "resource_not_found", "message": "not found"}]}
        return handler(request)

    def mint_api_key(
        self,
        *,
        subject: str = "user_123",
        scopes: Iterable[str] = (),
        name: str = "test key",
        claims: Mapping[str, Any] | None = None,
        expires_in: float | None = None,
    ) -> str:
        """An API key (``ak_...``) for ``subject`` (``user_...`` or ``org_...``); ``expires_in`` seconds or never."""
        return self._mint(
            "api_key",
            {
                "object": "api_key",
                "type": "api_key",
                "name": name,
                "subject": subject,
                "claims": dict(claims or {}) or None,
                "created_by": None,
                "description": None,
                "last_used_at": None,
            },
            scopes,
            expires_in,
            milliseconds=True,
        )

    def mint_m2m_token(
        self,
        *,
        machine_id: str = "mch_test",
        scopes: Iterable[str] = (),
        claims: Mapping[str, Any] | None = None,
        expires_in: float | None = 3600,
    ) -> str:
        """An opaque M2M token (``mt_...``) of machine ``machine_id``; ``scopes`` are the machines it may reach."""
        return self._mint(
            "m2m_token",
            {"object": "machine_to_machine_token", "subject": machine_id, "claims": dict(claims or {}) or None},
            scopes,
            expires_in,
            milliseconds=True,
        )

    def mint_oauth_token(
        self,
        *,
        user_id: str = "user_123",
        client_id: str = "client_test",
        scopes: Iterable[str] = (),
        expires_in: float | None = 3600,
    ) -> str:
        """An opaque OAuth access token (``oat_...``) granted to ``client_id`` by ``user_id``."""
        return self._mint(
            "oauth_token",
            {
                "object": "clerk_idp_oauth_access_token",
                "type": "oauth_token",
                "subject": user_id,
                "client_id": client_id,
            },
            scopes,
            expires_in,
            milliseconds=False,
        )

    def revoke(self, token: str, reason: str | None = "revoked in test") -> None:
        """Mark a minted token revoked: its verify answer then says ``"revoked": true``."""
        record = self.machine_tokens[token]
        record.revoked = True
        record.resource["revocation_reason"] = reason

    def _mint(
        self,
        token_type: str,
        resource: dict[str, Any],
        scopes: Iterable[str],
        expires_in: float | None,
        *,
        milliseconds: bool,
    ) -> str:
        prefix = _MACHINE_ROUTES[token_type][2]
        token = f"{prefix}{secrets.token_urlsafe(32)}"
        now = time.time()
        expires_at = None if expires_in is None else now + expires_in
        scale = 1000 if milliseconds else 1
        resource.update(
            id=f"{prefix}id_{secrets.token_hex(8)}",
            scopes=list(scopes),
            revocation_reason=None,
            expiration=None if expires_at is None else int(expires_at * scale),
            created_at=int(now * scale),
            updated_at=int(now * scale),
        )
        self.machine_tokens[token] = MachineTokenRecord(token_type, resource, expires_at)
        return token

    def _machine_verify_handler(self, token_type: str, field: str) -> Handler:
        def verify(request: StandInRequest) -> tuple[int, Any]:
            token = request.json.get(field) if isinstance(request.json, dict) else None
            if not isinstance(token, str):
                return 422, {"errors": [{"code": "form_param_missing", "message": f"{field} is missing"}]}
            record = self.machine_tokens.get(token)
            if record is None or record.token_type != token_type:
                return 404, {"errors": [{"code": "resource_not_found", "message": "not found"}]}
            return 200, record.to_json()

        return verify

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


class FrontendAPIStandIn(_LoopbackServer):
    """Clerk's Frontend API handshake endpoint on 127.0.0.1 over real HTTP: ``GET /v1/client/handshake``.

    It plays the browser's Clerk client: ``signed_in_as`` (options of :meth:`ClerkTestIssuer.session_claims`,
    or None for a signed-out client) decides the cookies it hands back. It redirects to ``redirect_url`` with a
    ``__clerk_handshake_nonce`` (stored in ``backend_api.handshake_payloads`` for the Backend API's
    ``/v1/clients/handshake_payload``) when asked for ``format=nonce`` and a Backend API stand-in is attached,
    else with a ``__clerk_handshake`` token signed by the issuer. On a development instance (``pk_test_``) it
    also issues the dev-browser token (``__clerk_db_jwt``), as Clerk's does. Point an app at it with
    ``CLERK_PROXY_URL=stand_in.url``. ``calls`` records the query of every handshake request.
    """

    def __init__(self, issuer: ClerkTestIssuer, *, backend_api: BackendAPIStandIn | None = None) -> None:
        self.issuer = issuer
        self.backend_api = backend_api
        self.signed_in_as: Mapping[str, Any] | None = {}
        self.use_nonce = True
        self.dev_browser_token = f"dvb_{secrets.token_hex(12)}"
        self.calls: list[dict[str, str]] = []
        super().__init__(self._handler_class())

    @property
    def development(self) -> bool:
        return self.issuer.publishable_key.startswith("pk_test_")

    def directives(self, *, suffixed: bool) -> list[str]:
        """The Set-Cookie directives a handshake answers with for the current client state."""
        names = ["__session", "__client_uat"]
        if self.development:
            names.append("__clerk_db_jwt")
        suffix = cookie_suffix(self.issuer.publishable_key)
        values: dict[str, str] = {"__clerk_db_jwt": self.dev_browser_token}
        attributes: dict[str, str] = {}
        if self.signed_in_as is None:
            values.update(__session="", __client_uat="0")
            attributes["__session"] = "; Max-Age=0"
        else:
            claims = self.issuer.session_claims(**self.signed_in_as)
            values.update(__session=self.issuer.sign(claims), __client_uat=str(claims["iat"]))
        out: list[str] = []
        for name in names:
            for cookie in ([f"{name}_{suffix}"] if suffixed else []) + [name]:
                out.append(f"{cookie}={values[name]}; Path=/; SameSite=Lax{attributes.get(name, '')}")
        return out

    def _answer(self, query: dict[str, str]) -> tuple[int, dict[str, str]]:
        self.calls.append(query)
        redirect_url = query.get("redirect_url", "")
        parts = urlsplit(redirect_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return 400, {}
        if query.get("__clerk_db_jwt"):
            self.dev_browser_token = query["__clerk_db_jwt"]
        directives = self.directives(suffixed=query.get("suffixed_cookies") == "true")
        params = parse_qsl(parts.query, keep_blank_values=True)
        if self.use_nonce and query.get("format") == "nonce" and self.backend_api is not None:
            nonce = secrets.token_urlsafe(24)
            self.backend_api.handshake_payloads[nonce] = directives
            params.append(("__clerk_handshake_nonce", nonce))
        else:
            now = int(time.time())
            token = self.issuer.sign({"handshake": directives, "iat": now, "exp": now + 60, "nbf": now - 10})
            params.append(("__clerk_handshake", token))
        if self.development:
            params.append(("__clerk_db_jwt", self.dev_browser_token))
        location = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(params), ""))
        return 307, {"Location": location, "Cache-Control": "no-store"}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class _Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                headers: dict[str, str] = {}
                status = 404
                if parts.path == "/v1/client/handshake":
                    status, headers = stand_in._answer(dict(parse_qsl(parts.query, keep_blank_values=True)))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return _Handler
