"""Responses Clerk's SDKs give that MCP clients and pages rely on (issue 17 #6): the OAuth 401's
``resource_metadata``, the protected resource metadata document, ``unauthenticated_url``/``unauthorized_url``,
and ``CLERK_DEBUG``'s request-state log."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from flask import Flask

from flask_clerk_security import ClerkSecurity, ConfigurationError
from flask_clerk_security.testing import BackendAPIStandIn, ClerkTestIssuer

DOC = {"sec-fetch-dest": "document", "accept": "text/html"}


def _app(issuer: ClerkTestIssuer, **config: Any) -> tuple[Flask, ClerkSecurity]:
    app = Flask("responses")
    app.config.update(TESTING=True, **issuer.config, **config)
    return app, ClerkSecurity(app)


def test_oauth_routes_name_their_resource_metadata(
    clerk_issuer: ClerkTestIssuer, clerk_backend_api: BackendAPIStandIn
) -> None:
    """MCP clients find the authorization server from the 401 (RFC 9728 section 5.1)."""
    app, clerk = _app(clerk_issuer, CLERK_SECRET_KEY=clerk_issuer.secret_key, CLERK_API_URL=clerk_backend_api.url)

    @app.post("/mcp")
    @clerk.require(accepts_token="oauth_token")
    def mcp() -> dict[str, str]:
        return {}

    @app.get("/api/mixed")
    @clerk.require(accepts_token=["session_token", "oauth_token"])
    def mixed() -> dict[str, str]:
        return {}

    @app.get("/api/me")
    def me() -> dict[str, str]:
        return {}

    client = app.test_client()
    expected = 'Bearer resource_metadata="http://app.test/.well-known/oauth-protected-resource/mcp"'
    for headers in ({}, {"Authorization": "Bearer oat_unknown"}):
        response = client.post("/mcp", headers=headers, base_url="http://app.test")
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == expected
    mixed_401 = client.get("/api/mixed", base_url="http://app.test")
    assert mixed_401.headers["WWW-Authenticate"].endswith('oauth-protected-resource/api/mixed"')
    assert client.get("/api/me").headers["WWW-Authenticate"] == "Bearer"  # sessions only: no OAuth metadata


def test_resource_metadata_url_keeps_the_path_encoded(clerk_issuer: ClerkTestIssuer) -> None:
    """A ``%22`` in the path stays encoded: decoded, it closed the quoted ``resource_metadata`` and let the URL
    add its own parameters to the challenge (and a non-latin-1 character reached a header)."""
    app, clerk = _app(clerk_issuer)
    app.register_blueprint(clerk.oauth_protected_resource())

    @app.get("/mcp/<path:rest>")
    @clerk.require(accepts_token="oauth_token")
    def mcp(rest: str) -> dict[str, str]:
        return {}

    client = app.test_client()
    response = client.get("/mcp/a%22,%20error=%22forged/%E2%80%A8", base_url="http://app.test")
    challenge = response.headers["WWW-Authenticate"]
    assert challenge == (
        'Bearer resource_metadata="http://app.test/.well-known/oauth-protected-resource/mcp/a%22,%20error=%22forged/%E2%80%A8"'
    )
    assert challenge.count('"') == 2 and challenge.isascii()
    document = client.get(challenge.split('"')[1].removeprefix("http://app.test")).get_json()
    assert document["resource"] == "http://localhost/mcp/a%22,%20error=%22forged/%E2%80%A8"


def test_protected_resource_metadata_document(clerk_issuer: ClerkTestIssuer) -> None:
    """What ``@clerk/mcp-tools``'s ``generateClerkProtectedResourceMetadata`` serves, for the resource asked."""
    app, clerk = _app(clerk_issuer)
    app.register_blueprint(clerk.oauth_protected_resource(scopes_supported=["profile", "email"], resource_name="X"))
    client = app.test_client()
    fapi = f"https://{clerk_issuer.frontend_api}"
    response = client.get("/.well-known/oauth-protected-resource/mcp", base_url="https://app.test")
    assert response.status_code == 200
    assert response.get_json() == {
        "resource": "https://app.test/mcp",
        "authorization_servers": [fapi],
        "token_types_supported": ["urn:ietf:params:oauth:token-type:access_token"],
        "token_introspection_endpoint": f"{fapi}/oauth/token",
        "token_introspection_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "jwks_uri": f"{fapi}/.well-known/jwks.json",
        "authorization_data_types_supported": ["oauth_scope"],
        "authorization_data_locations_supported": ["header", "body"],
        "key_challenges_supported": [
            {"challenge_type": "urn:ietf:params:oauth:pkce:code_challenge", "challenge_algs": ["S256"]}
        ],
        "service_documentation": "https://clerk.com/docs",
        "scopes_supported": ["profile", "email"],
        "resource_name": "X",
    }
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    root = client.get("/.well-known/oauth-protected-resource", base_url="https://app.test").get_json()
    assert root["resource"] == "https://app.test/" and "scopes_supported" in root
    preflight = client.options("/.well-known/oauth-protected-resource/mcp")
    assert preflight.status_code == 204 and preflight.headers["Access-Control-Allow-Methods"] == "GET, OPTIONS"


def test_protected_resource_metadata_needs_the_publishable_key(clerk_issuer: ClerkTestIssuer) -> None:
    app = Flask("no_pk")
    app.config.update(TESTING=True, CLERK_JWT_KEY=clerk_issuer.public_pem)
    clerk = ClerkSecurity(app)
    with pytest.raises(ConfigurationError, match="CLERK_PUBLISHABLE_KEY"):
        app.register_blueprint(clerk.oauth_protected_resource())


def test_protected_resource_metadata_registered_before_init_needs_the_key_too(clerk_issuer: ClerkTestIssuer) -> None:
    """An app factory registers its blueprints before ``clerk.init_app(app)`` as often as after: the missing key is
    refused at init then, never a 500 on the first MCP client's request."""
    clerk = ClerkSecurity()
    app = Flask("no_pk_factory")
    app.config.update(TESTING=True, CLERK_JWT_KEY=clerk_issuer.public_pem)
    app.register_blueprint(clerk.oauth_protected_resource(), name="metadata")
    with pytest.raises(ConfigurationError, match="CLERK_PUBLISHABLE_KEY"):
        clerk.init_app(app)


def test_unauthenticated_and_unauthorized_urls_for_pages() -> None:
    """Clerk's ``auth.protect({unauthenticatedUrl, unauthorizedUrl})``, for page navigations."""
    issuer = ClerkTestIssuer(instance="live")  # no dev-browser handshake in the way
    app, clerk = _app(issuer, CLERK_SIGN_IN_URL="/sign-in")

    @app.get("/billing")
    @clerk.require(permission="org:billing:manage", unauthenticated_url="/welcome", unauthorized_url="/no-access")
    def billing() -> str:
        return "billing"

    client = app.test_client()
    signed_out = client.get("/billing", headers=DOC)
    assert (signed_out.status_code, signed_out.headers["Location"]) == (307, "/welcome")
    member = issuer.auth_header(org={"id": "org_1", "slug": "a", "role": "member", "permissions": {}})
    refused = client.get("/billing", headers={**DOC, **member})
    assert (refused.status_code, refused.headers["Location"]) == (307, "/no-access")
    # API calls keep their JSON answers.
    assert client.get("/billing").status_code == 401
    assert client.get("/billing", headers=member).status_code == 403
    with pytest.raises(TypeError, match="unauthorized_url"):
        clerk.require(unauthorized_url="no-access")


def test_debug_logs_the_request_state_without_the_token(
    clerk_issuer: ClerkTestIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    app, _ = _app(clerk_issuer, CLERK_DEBUG="true")

    @app.get("/api/me")
    def me() -> dict[str, str]:
        return {}

    headers = clerk_issuer.auth_header()
    token = headers["Authorization"].split()[1]
    with caplog.at_level(logging.INFO, logger="flask_clerk_security"):
        app.test_client().get("/api/me", headers=headers)
        app.test_client().get("/api/me", headers={"Authorization": "Bearer " + token[:-4] + "AAAA"})
    lines = [r.getMessage() for r in caplog.records if "debug request state" in r.getMessage()]
    states = [json.loads(line.split(": ", 1)[1]) for line in lines]
    assert [state["isSignedIn"] for state in states] == [True, False]
    assert states[1]["reason"] == "token-invalid-signature"
    assert states[1]["message"] == "JWT signature is invalid. (reason=token-invalid-signature, token-carrier=header)"
    assert set(states[0]) == {
        "isSignedIn", "isAuthenticated", "tokenType", "proxyUrl", "reason", "message", "publishableKey", "domain"
    }  # fmt: skip
    assert token[:40] not in caplog.text and clerk_issuer.secret_key not in caplog.text
    caplog.clear()
    quiet, _ = _app(clerk_issuer)
    quiet.get("/api/me")(lambda: {})
    with caplog.at_level(logging.INFO, logger="flask_clerk_security"):
        quiet.test_client().get("/api/me", headers=headers)
    assert "debug request state" not in caplog.text


def test_auth_message_and_debug_headers_where_clerk_sends_them(clerk_issuer: ClerkTestIssuer) -> None:
    """Clerk's withDebugHeaders: a refused token's status, reason and message, on protected and public routes."""
    app, clerk = _app(clerk_issuer)

    @app.get("/api/me")
    def me() -> dict[str, str]:
        return {}

    @app.get("/public")
    @clerk.public
    def public() -> dict[str, Any]:
        from flask_clerk_security import get_auth

        return {"signed_in": get_auth().is_authenticated}

    expired = clerk_issuer.auth_header(lifetime=-120)
    client = app.test_client()
    refused = client.get("/api/me", headers=expired)
    assert refused.status_code == 401
    assert refused.headers["x-clerk-auth-reason"] == "session-token-expired-refresh-non-eligible-no-refresh-cookie"
    message = refused.headers["x-clerk-auth-message"]
    assert message.endswith("(reason=token-expired, token-carrier=header)")
    assert expired["Authorization"].split()[1][:20] not in message
    public_answer = client.get("/public", headers=expired)
    assert public_answer.get_json() == {"signed_in": False}
    assert public_answer.headers["x-clerk-auth-status"] == "signed-out"
    assert public_answer.headers["x-clerk-auth-message"] == message
    fine = client.get("/public", headers=clerk_issuer.auth_header())
    assert "x-clerk-auth-status" not in fine.headers and "x-clerk-auth-message" not in fine.headers
