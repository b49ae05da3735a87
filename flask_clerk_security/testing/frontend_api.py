"""A stand-in for Clerk's Frontend API handshake endpoint on 127.0.0.1 (``GET /v1/client/handshake``)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..cookies import cookie_suffix
from .backend_api import BackendAPIStandIn
from .issuer import ClerkTestIssuer
from .server import _LoopbackServer


class FrontendAPIStandIn(_LoopbackServer):
    """Clerk's Frontend API handshake endpoint on 127.0.0.1 over real HTTP: ``GET /v1/client/handshake``.

    It plays the browser's Clerk client: ``signed_in_as`` (options of :meth:`ClerkTestIssuer.session_claims`,
    or None for a signed-out client) decides the cookies it hands back. It redirects to ``redirect_url`` with a
    ``__clerk_handshake_nonce`` (stored in ``backend_api.handshake_payloads`` for the Backend API's
    ``/v1/clients/handshake_payload``) when asked for ``format=nonce`` and a Backend API stand-in is attached,
    else with a ``__clerk_handshake`` token signed by the issuer. On a development instance (``pk_test_``) it
    also issues the dev-browser token (``__clerk_db_jwt``), as Clerk's does. A handshake's ``organization_id``
    (organization sync) activates one of ``memberships``. Point an app at it with ``CLERK_PROXY_URL=stand_in.url``.
    ``calls`` records the query of every handshake request.
    """

    def __init__(self, issuer: ClerkTestIssuer, *, backend_api: BackendAPIStandIn | None = None) -> None:
        self.issuer = issuer
        self.backend_api = backend_api
        self.signed_in_as: Mapping[str, Any] | None = {}
        #: Organizations the signed-in user belongs to (``org`` options of the issuer: ``{"id", "slug", "role",
        #: "permissions"}``). A handshake's ``organization_id`` (organization sync) activates the one it names by
        #: id or slug; an empty one the personal account; one not listed changes nothing, as in Clerk.
        self.memberships: list[Mapping[str, Any]] = []
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

    def _activate(self, organization: str) -> None:
        """Make the organization a handshake names (id or slug; ``""``: the personal account) the active one."""
        if organization == "":
            self.signed_in_as = {**(self.signed_in_as or {}), "org": None}
            return
        for membership in self.memberships:
            if organization in (membership.get("id"), membership.get("slug")):
                self.signed_in_as = {**(self.signed_in_as or {}), "org": membership}
                return

    def _answer(self, query: dict[str, str]) -> tuple[int, dict[str, str]]:
        self.calls.append(query)
        redirect_url = query.get("redirect_url", "")
        parts = urlsplit(redirect_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return 400, {}
        if query.get("__clerk_db_jwt"):
            self.dev_browser_token = query["__clerk_db_jwt"]
        if "organization_id" in query and self.signed_in_as is not None:
            self._activate(query["organization_id"])
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
