"""The examples run as documented, against the test kit."""

from __future__ import annotations

from examples.api_app import create_app
from flask_clerk_security.testing import ClerkTestIssuer


def test_api_example(clerk_issuer: ClerkTestIssuer) -> None:
    client = create_app({"TESTING": True, **clerk_issuer.config}).test_client()
    assert client.get("/health").status_code == 200
    assert client.get("/api/me").status_code == 401
    assert client.get("/api/me", headers=clerk_issuer.auth_header()).get_json()["user_id"] == "user_123"
    assert client.get("/api/reports", headers=clerk_issuer.auth_header()).status_code == 403
    org = {"id": "org_1", "slug": "acme", "role": "member", "permissions": {"reports": ["read"]}}
    assert client.get("/api/reports", headers=clerk_issuer.auth_header(org=org)).status_code == 200
    stale = client.post("/api/transfer", headers=clerk_issuer.auth_header(fva=[30, 30]))
    assert stale.get_json()["clerk_error"]["reason"] == "reverification-error"
