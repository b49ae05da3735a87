"""A stand-in for Clerk's Backend API on 127.0.0.1: the JWKS, machine-token verification, handshake payloads,
session refreshes, users, organizations, memberships and JWT-template session tokens."""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..cookies import cookie_suffix
from ..jwks import forget_key_sources
from .issuer import ClerkTestIssuer
from .records import membership_record, organization_record, session_record, user_record
from .server import Handler, StandInRequest, _LoopbackServer

#: A handler of a route with path parameters: gets the request and the path's named groups.
PatternHandler = Callable[[StandInRequest, dict[str, str]], tuple[int, Any]]


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


_NOT_FOUND: tuple[int, Any] = (
    404,
    {"errors": [{"code": "resource_not_found", "message": "not found", "long_message": "Resource not found"}]},
)


class BackendAPIStandIn(_LoopbackServer):
    """Clerk's Backend API on 127.0.0.1 over real HTTP: ``GET /v1/jwks`` for the issuer, plus added routes.

    Knobs for failure tests: ``delay`` (seconds before answering), ``fail_status`` (answer every call with
    it), ``hang`` (accept, then never answer until stopped). ``calls`` records every request.

    Machine tokens: ``mint_api_key``, ``mint_m2m_token`` and ``mint_oauth_token`` register opaque tokens that the
    verify endpoints (``POST /api_keys/verify`` ...) then answer for, as Clerk's Backend API does; unknown
    tokens get 404. ``revoke(token)`` marks one revoked. ``machine_secret_key`` (when set) is also accepted
    as the bearer of ``/m2m_tokens/verify``.

    Users and organizations: ``add_user``, ``update_user``, ``delete_user``, ``add_organization`` and
    ``add_membership`` create records shaped as Clerk's (the SDK's ``models.User`` ... parse them), served at
    ``GET /v1/users/{id}``, ``GET /v1/users``, ``GET /v1/organizations/{id or slug}``,
    ``GET /v1/organizations/{id}/memberships`` and ``GET /v1/users/{id}/organization_memberships``.
    ``add_jwt_template(name, claims)`` makes ``POST /v1/sessions/{sid}/tokens/{name}`` answer a JWT signed by
    the issuer; ``end_session(sid)`` revokes a session (its template tokens then get 404, and
    ``GET /v1/sessions/{sid}`` says ``revoked``). ``count(method, path)`` counts calls.

    Session refreshes: ``add_refresh_token(refresh_token, session_id)`` makes ``POST /v1/sessions/{sid}/refresh``
    (the ``__refresh`` cookie exchange) answer that session's new ``__session``/``__client_uat`` cookies, suffixed
    when asked, or the ``cookies`` given; any other refresh token or session gets 400 ``refresh_token_invalid``.
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
        self.users: dict[str, dict[str, Any]] = {}
        self.organizations: dict[str, dict[str, Any]] = {}
        self.memberships: list[dict[str, Any]] = []
        self.jwt_templates: dict[str, tuple[dict[str, Any], int]] = {}
        #: Session id -> user id, for the ``sub`` of template tokens (filled by :meth:`add_session`).
        self.sessions: dict[str, str] = {}
        #: Sessions ended by :meth:`end_session` (revoked, signed out): no template tokens, status ``revoked``.
        self.ended_sessions: set[str] = set()
        #: Refresh token -> (session id, the cookies to answer or None), filled by :meth:`add_refresh_token`.
        self.refresh_tokens: dict[str, tuple[str, list[str] | None]] = {}
        self.pattern_routes: list[tuple[str, re.Pattern[str], PatternHandler]] = [
            ("GET", re.compile(r"/v1/users/(?P<user_id>[^/]+)"), self._get_user),
            ("GET", re.compile(r"/v1/users/(?P<user_id>[^/]+)/organization_memberships"), self._user_memberships),
            ("GET", re.compile(r"/v1/organizations/(?P<org>[^/]+)"), self._get_organization),
            ("GET", re.compile(r"/v1/organizations/(?P<org>[^/]+)/memberships"), self._org_memberships),
            ("POST", re.compile(r"/v1/sessions/(?P<sid>[^/]+)/tokens/(?P<template>[^/]+)"), self._template_token),
            ("GET", re.compile(r"/v1/sessions/(?P<sid>[^/]+)"), self._get_session),
            ("POST", re.compile(r"/v1/sessions/(?P<sid>[^/]+)/refresh"), self._refresh_session),
        ]
        self.routes[("GET", "/v1/users")] = self._list_users
        self._stopped = threading.Event()
        super().__init__(self._handler_class())

    def count(self, method: str, path: str) -> int:
        return sum(1 for call in self.calls if call.method == method and call.path == path)

    def stop(self) -> None:
        self._stopped.set()  # releases requests held by ``hang``
        super().stop()
        forget_key_sources(self.url)  # the next stand-in may get this port: it must not inherit these keys

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
        if handler is not None:
            return handler(request)
        for method, pattern, pattern_handler in self.pattern_routes:
            match = pattern.fullmatch(request.path)
            if match and method == request.method:
                return pattern_handler(request, match.groupdict())
        return _NOT_FOUND

    def add_user(
        self,
        *,
        user_id: str | None = None,
        first_name: str | None = "Ada",
        last_name: str | None = "Lovelace",
        email: str | None = "ada@example.com",
        username: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """A user as ``GET /v1/users/{id}`` answers it (``fields`` set any other field, e.g.
        ``public_metadata={...}``); returns the record, which later changes through :meth:`update_user`."""
        record = user_record(
            user_id or f"user_{secrets.token_hex(12)}", first_name, last_name, email, username, fields
        )
        self.users[record["id"]] = record
        return record

    def update_user(self, user_id: str, **fields: Any) -> dict[str, Any]:
        """Change fields of a user, as an edit in Clerk's Dashboard does; ``updated_at`` moves on."""
        record = self.users[user_id]
        record.update(fields, updated_at=int(time.time() * 1000))
        return record

    def delete_user(self, user_id: str) -> None:
        """Remove a user: ``GET /v1/users/{id}`` then answers 404, as Clerk does."""
        del self.users[user_id]

    def add_organization(
        self, *, org_id: str | None = None, name: str = "Acme", slug: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        """An organization as ``GET /v1/organizations/{id}`` answers it; returns the record."""
        record = organization_record(org_id or f"org_{secrets.token_hex(12)}", name, slug, fields)
        self.organizations[record["id"]] = record
        return record

    def add_membership(
        self, org_id: str, user_id: str, *, role: str = "org:member", permissions: Iterable[str] = ()
    ) -> dict[str, Any]:
        """``user_id`` joins organization ``org_id`` with ``role``; returns the membership record."""
        user = self.users.get(user_id) or {"id": user_id}
        record = membership_record(self.organizations[org_id], user, role, list(permissions))
        self.memberships.append(record)
        return record

    def add_jwt_template(self, name: str, claims: Mapping[str, Any] | None = None, *, lifetime: int = 60) -> None:
        """A JWT template: tokens for it carry ``claims`` plus ``sid``/``sub``/``iat``/``exp`` (``lifetime`` s)."""
        self.jwt_templates[name] = (dict(claims or {}), lifetime)

    def add_session(self, session_id: str, user_id: str) -> None:
        """Tell the stand-in whose session ``session_id`` is (the ``sub`` of its template tokens)."""
        self.sessions[session_id] = user_id

    def end_session(self, session_id: str) -> None:
        """Revoke ``session_id`` in Clerk: its template tokens get 404 and ``GET /v1/sessions/{id}`` says
        ``revoked``, while the session tokens already issued stay valid until they expire (up to 60 s)."""
        self.ended_sessions.add(session_id)

    def _get_session(self, _: StandInRequest, params: dict[str, str]) -> tuple[int, Any]:
        sid = params["sid"]
        status = "revoked" if sid in self.ended_sessions else "active"
        return 200, session_record(sid, self.sessions.get(sid, "user_123"), status)

    def add_refresh_token(self, refresh_token: str, session_id: str, *, cookies: Iterable[str] | None = None) -> None:
        """Accept ``refresh_token`` for ``session_id`` at the refresh endpoint (reusable, as a ``__refresh`` cookie
        is); it answers ``cookies`` when given, else a new session token for the session's user."""
        self.refresh_tokens[refresh_token] = (session_id, list(cookies) if cookies is not None else None)

    def _refresh_session(self, request: StandInRequest, params: dict[str, str]) -> tuple[int, Any]:
        body = request.json if isinstance(request.json, dict) else {}
        record = self.refresh_tokens.get(str(body.get("refresh_token")))
        if record is None or record[0] != params["sid"]:
            return 400, {"errors": [{"code": "refresh_token_invalid", "message": "unknown refresh token"}]}
        session_id, cookies = record
        if cookies is None:
            suffixed = (request.query.get("suffixed_cookies") or [""])[0] == "true"
            suffix = f"_{cookie_suffix(self.issuer.publishable_key)}" if suffixed else ""
            user_id = self.sessions.get(session_id, "user_123")
            claims = self.issuer.session_claims(user_id=user_id, session_id=session_id)
            cookies = [
                f"__session{suffix}={self.issuer.sign(claims)}; Path=/; SameSite=Lax",
                f"__client_uat{suffix}={claims['iat']}; Path=/; SameSite=Lax; Max-Age=31536000",
            ]
        return 200, {"object": "cookies", "cookies": cookies}

    def _get_user(self, _: StandInRequest, params: dict[str, str]) -> tuple[int, Any]:
        record = self.users.get(params["user_id"])
        return (200, record) if record is not None else _NOT_FOUND

    def _list_users(self, request: StandInRequest) -> tuple[int, Any]:
        wanted = set(request.query.get("user_id", ()))
        return 200, [record for user_id, record in self.users.items() if not wanted or user_id in wanted]

    def _get_organization(self, _: StandInRequest, params: dict[str, str]) -> tuple[int, Any]:
        key = params["org"]
        record = self.organizations.get(key) or next(
            (org for org in self.organizations.values() if org["slug"] == key), None
        )
        return (200, record) if record is not None else _NOT_FOUND

    def _org_memberships(self, _: StandInRequest, params: dict[str, str]) -> tuple[int, Any]:
        if params["org"] not in self.organizations:
            return _NOT_FOUND
        found = [m for m in self.memberships if m["organization"]["id"] == params["org"]]
        return 200, {"data": found, "total_count": len(found)}

    def _user_memberships(self, _: StandInRequest, params: dict[str, str]) -> tuple[int, Any]:
        found = [m for m in self.memberships if m["public_user_data"]["user_id"] == params["user_id"]]
        return 200, {"data": found, "total_count": len(found)}

    def _template_token(self, _: StandInRequest, params: dict[str, str]) -> tuple[int, Any]:
        template = self.jwt_templates.get(params["template"])
        if template is None or params["sid"] in self.ended_sessions:
            return _NOT_FOUND
        claims, lifetime = template
        now = int(time.time())
        token_claims = {"iss": self.issuer.issuer, "sid": params["sid"], "iat": now, "nbf": now - 10}
        if params["sid"] in self.sessions:
            token_claims["sub"] = self.sessions[params["sid"]]
        token = self.issuer.sign({**token_claims, **claims, "exp": now + lifetime})
        return 200, {"object": "token", "jwt": token}

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
        aud: str | list[str] | None = None,
    ) -> str:
        """An opaque OAuth access token (``oat_...``) granted to ``client_id`` by ``user_id``; ``aud`` is the
        audience the verify endpoint reports (left out when None)."""
        fields: dict[str, Any] = {
            "object": "clerk_idp_oauth_access_token",
            "type": "oauth_token",
            "subject": user_id,
            "client_id": client_id,
        }
        if aud is not None:
            fields["aud"] = aud
        return self._mint(
            "oauth_token",
            fields,
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
