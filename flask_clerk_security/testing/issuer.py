"""A Clerk-shaped token issuer: session tokens and cookies, M2M and OAuth JWTs, the JWKS, webhook signing."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypedDict

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from ..cookies import cookie_suffix
from .webhooks import generate_webhook_secret, sign_webhook

if TYPE_CHECKING:
    from flask.testing import FlaskClient
    from typing_extensions import Unpack

#: ``cat`` header Clerk stamps on M2M JWTs.
M2M_JWT_CATEGORY = "cl_B7d4PD333AAA"


def _publishable_key(frontend_api: str, instance: str) -> str:
    encoded = base64.b64encode(f"{frontend_api}$".encode()).decode().rstrip("=")
    return f"pk_{instance}_{encoded}"


class SessionOptions(TypedDict, total=False):
    """The keyword options of :meth:`ClerkTestIssuer.session_claims` (and of every method that signs a session).

    Anything else is a ``TypeError`` (``userid=`` is a typo, not a claim); arbitrary claims go in
    ``extra_claims``, which adds or overrides claims (``None`` removes one).
    """

    user_id: str
    session_id: str
    org: Mapping[str, Any] | None
    features: Iterable[str]
    plan: str | None
    fva: tuple[int, int] | list[int] | None
    version: int
    azp: str | None
    status: str | None
    lifetime: int
    issued_at: float | None
    extra_claims: Mapping[str, Any] | None


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
        extra_claims: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The claims of a Clerk session token; ``extra_claims`` adds or overrides claims (``None`` removes one)."""
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
        claims.update(extra_claims or {})
        return {key: value for key, value in claims.items() if value is not None}

    def session_token(self, **options: Unpack[SessionOptions]) -> str:
        """A signed session token; takes the options of :meth:`session_claims`."""
        return self.sign(self.session_claims(**options))

    def session_cookies(self, *, suffixed: bool = False, **options: Unpack[SessionOptions]) -> dict[str, str]:
        """The cookies of a signed-in browser: ``__session``, ``__client_uat`` and, on a development instance
        (``pk_test_``), the dev-browser token ``__clerk_db_jwt`` that Clerk requires there.

        ``suffixed`` names them ``__session_<suffix>`` etc.; takes the options of :meth:`session_claims`.
        """
        return self._cookies(self.session_claims(**options), self.publishable_key, suffixed=suffixed)

    def sign_in(
        self,
        client: FlaskClient,
        *,
        refresh_token: str | None = None,
        domain: str = "localhost",
        **options: Unpack[SessionOptions],
    ) -> dict[str, Any]:
        """Sign a Flask test client in with one session's cookies, plain and suffixed with the app's publishable
        key, as ClerkJS sets them. Takes the options of :meth:`session_claims`; returns the session's claims.

        ``refresh_token`` also sets Clerk's ``__refresh_<suffix>`` cookie (register it with the Backend API
        stand-in's ``add_refresh_token``); ``domain`` is the host the cookies are for (Flask's default
        ``localhost``; a satellite's or a primary's own host in multi-domain tests).
        """
        claims = self.session_claims(**options)
        publishable_key = self._app_publishable_key(client)
        for suffixed in (False, True):
            for name, value in self._cookies(claims, publishable_key, suffixed=suffixed).items():
                client.set_cookie(name, value, domain=domain)
        if refresh_token is not None:
            client.set_cookie(f"__refresh_{cookie_suffix(publishable_key)}", refresh_token, domain=domain)
        return claims

    def sign_out(self, client: FlaskClient, *, domain: str = "localhost") -> None:
        """Remove the cookies :meth:`sign_in` set (for ``domain``) from a Flask test client."""
        suffix = cookie_suffix(self._app_publishable_key(client))
        for name in ("__session", "__client_uat", "__clerk_db_jwt"):
            client.delete_cookie(name, domain=domain)
            client.delete_cookie(f"{name}_{suffix}", domain=domain)
        client.delete_cookie(f"__refresh_{suffix}", domain=domain)

    def _app_publishable_key(self, client: FlaskClient) -> str:
        from ..state import get_state

        return get_state(client.application).settings.publishable_key or self.publishable_key

    def _cookies(self, claims: Mapping[str, Any], publishable_key: str, *, suffixed: bool) -> dict[str, str]:
        cookies = {"__session": self.sign(claims), "__client_uat": str(int(claims["iat"]) - 30)}
        if publishable_key.startswith("pk_test_"):
            cookies["__clerk_db_jwt"] = "dvb_test_kit"
        if suffixed:
            suffix = cookie_suffix(publishable_key)
            cookies = {f"{name}_{suffix}": value for name, value in cookies.items()}
        return cookies

    def auth_header(self, **options: Unpack[SessionOptions]) -> dict[str, str]:
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
