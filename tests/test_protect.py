"""clerk.protect(...) inside a view answers exactly as require(...) with the same options: status, body, headers,
audit signals, reverification body."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask

from flask_clerk_security import current_auth, signals
from flask_clerk_security.testing import BackendAPIStandIn, ClerkTestIssuer

from .conftest import AppFactory

ORG = {"id": "org_1", "slug": "acme", "role": "admin", "permissions": {"reports": ["read"]}}
OPTIONS: dict[str, dict[str, Any]] = {
    "signed-in": {},
    "permission": {"permission": "org:reports:read"},
    "role": {"role": "admin"},
    "feature-plan": {"feature": "user:ai", "plan": "pro"},
    "strict": {"reverification": "strict"},
    "custom": {"reverification": {"level": "first_factor", "after_minutes": 30}},
    "role-strict-mfa": {"role": "admin", "reverification": "strict_mfa"},
    "api-key-scopes": {"accepts_token": ["session_token", "api_key"], "scopes": ["reports:write"]},
}
SIGNALS = (
    signals.authentication_failed,
    signals.authorization_denied,
    signals.reverification_required,
    signals.csrf_rejected,
)


@pytest.fixture
def twin_app(app_factory: AppFactory, clerk_issuer: ClerkTestIssuer, clerk_backend_api: BackendAPIStandIn) -> Flask:
    """For each case, ``/<prefix>/require/<case>`` decorated and ``/<prefix>/protect/<case>`` calling protect(),
    under a public route prefix (``open``) and a default-deny one (``closed``)."""
    app, clerk = app_factory(
        {"CLERK_API_URL": clerk_backend_api.url, "CLERK_SECRET_KEY": clerk_issuer.secret_key},
        public_routes=["/open(.*)"],
    )
    for prefix in ("open", "closed"):
        for case, options in OPTIONS.items():
            accepts = {"accepts_token": options["accepts_token"]} if "accepts_token" in options else {}

            def protected(options: dict[str, Any] = options) -> dict[str, Any]:
                clerk.protect(**options)
                return {"user": current_auth.user_id or current_auth.subject}

            def required() -> dict[str, Any]:
                return {"user": current_auth.user_id or current_auth.subject}

            # The route accepts what its protect() call will accept, as a route with require() does.
            route_accepts = clerk.require(**accepts) if accepts else (lambda view: view)
            app.add_url_rule(
                f"/{prefix}/protect/{case}",
                f"{prefix}_protect_{case}",
                route_accepts(clerk.public(protected)) if prefix == "open" else route_accepts(protected),
                methods=["GET", "POST"],
            )
            app.add_url_rule(
                f"/{prefix}/require/{case}",
                f"{prefix}_require_{case}",
                clerk.require(**options)(required),
                methods=["GET", "POST"],
            )
    return app


@contextmanager
def recorded(app: Flask) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    seen: list[tuple[str, dict[str, Any]]] = []

    def receivers() -> list[Any]:
        return [lambda sender, signal=signal, **data: seen.append((signal.name, data)) for signal in SIGNALS]

    pairs = list(zip(SIGNALS, receivers(), strict=True))
    for signal, receiver in pairs:
        signal.connect(receiver, app)
    try:
        yield seen
    finally:
        for signal, receiver in pairs:
            signal.disconnect(receiver, app)


def answer(app: Flask, method: str, path: str, headers: dict[str, str]) -> tuple[Any, ...]:
    with recorded(app) as seen:
        response = app.test_client().open(path, method=method, headers=headers)
    kept = ("WWW-Authenticate", "Location", "x-clerk-auth-status", "x-clerk-auth-reason", "Content-Type")
    # The two twins differ only by path; a redirect names it in redirect_url.
    location = (response.headers.get("Location") or "").replace("%2Fprotect%2F", "%2Frequire%2F")
    headers = [(k, location if k == "Location" else response.headers.get(k)) for k in kept]
    return response.status_code, response.get_data(), headers, seen


def credentials(issuer: ClerkTestIssuer, backend: BackendAPIStandIn) -> dict[str, dict[str, str]]:
    key = backend.mint_api_key(subject="user_7", scopes=["reports:write"])
    return {
        "anonymous": {},
        "anonymous page": {"Accept": "text/html", "Sec-Fetch-Dest": "document"},
        "garbage": {"Authorization": "Bearer not-a-token"},
        "member": issuer.auth_header(org={**ORG, "role": "member", "permissions": {}}, fva=[100, 100]),
        "admin, stale": issuer.auth_header(org=ORG, fva=[45, 45]),
        "admin, fresh": issuer.auth_header(org=ORG, fva=[1, 1], features=["u:ai"], plan="u:pro"),
        "api key": {"Authorization": f"Bearer {key}"},
        "api key without scope": {"Authorization": f"Bearer {backend.mint_api_key(subject='user_8')}"},
    }


@pytest.mark.parametrize("case", OPTIONS)
@pytest.mark.parametrize("prefix", ["open", "closed"])
def test_protect_answers_as_require(
    twin_app: Flask, clerk_issuer: ClerkTestIssuer, clerk_backend_api: BackendAPIStandIn, case: str, prefix: str
) -> None:
    statuses = set()
    for who, headers in credentials(clerk_issuer, clerk_backend_api).items():
        for method in ("GET", "POST"):
            via_require = answer(twin_app, method, f"/{prefix}/require/{case}", headers)
            via_protect = answer(twin_app, method, f"/{prefix}/protect/{case}", headers)
            assert via_protect == via_require, (who, method)
            statuses.add(via_require[0])
    assert 200 in statuses and 401 in statuses


def test_protect_sends_clerks_reverification_body(twin_app: Flask, clerk_issuer: ClerkTestIssuer) -> None:
    headers = clerk_issuer.auth_header(fva=[45, -1])
    status, body, _, seen = answer(twin_app, "GET", "/closed/protect/custom", headers)
    assert status == 403
    assert json.loads(body) == {
        "clerk_error": {
            "type": "forbidden",
            "reason": "reverification-error",
            "metadata": {"reverification": {"level": "first_factor", "afterMinutes": 30}},
        }
    }
    assert [name for name, _ in seen] == ["reverification-required"]


@pytest.mark.parametrize(
    "kwargs",
    [{"reverification": "sometimes"}, {"role": ""}, {"permission": 5}, {"scopes": "a"}, {"accepts_token": "jwt"}],
)
def test_protect_misuse_raises(app_factory: AppFactory, clerk_issuer: ClerkTestIssuer, kwargs: dict[str, Any]) -> None:
    app, clerk = app_factory()

    @app.get("/misuse")
    def misuse() -> str:
        with pytest.raises((TypeError, ValueError), match=r"^protect\("):
            clerk.protect(**kwargs)
        return "raised"

    assert app.test_client().get("/misuse", headers=clerk_issuer.auth_header()).get_data() == b"raised"
