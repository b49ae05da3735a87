"""The test kit's own contract: typed session options, one-call sign-in for a Flask test client, ``__all__``."""

from __future__ import annotations

import inspect
import time
from typing import Any, get_type_hints

import pytest
import requests
from flask import Flask

import flask_clerk_security.testing as kit
from flask_clerk_security import ClerkSecurity, current_auth
from flask_clerk_security.cookies import cookie_suffix
from flask_clerk_security.testing import ClerkTestIssuer, SessionOptions


@pytest.mark.parametrize("method", ["session_claims", "session_token", "auth_header", "session_cookies"])
def test_a_misspelled_option_is_a_type_error_not_a_claim(clerk_issuer: ClerkTestIssuer, method: str) -> None:
    with pytest.raises(TypeError, match="userid"):
        getattr(clerk_issuer, method)(userid="user_1")


def test_arbitrary_claims_go_in_extra_claims(clerk_issuer: ClerkTestIssuer) -> None:
    claims = clerk_issuer.session_claims(user_id="user_1", extra_claims={"email": "a@example.com", "azp": None})
    assert claims["sub"] == "user_1" and claims["email"] == "a@example.com" and "azp" not in claims


def test_session_options_are_the_parameters_of_session_claims() -> None:
    parameters = inspect.signature(ClerkTestIssuer.session_claims).parameters
    assert set(get_type_hints(SessionOptions)) == set(parameters) - {"self"}


def _app(issuer: ClerkTestIssuer, publishable_key: str | None = None) -> Flask:
    app = Flask("kit_app")
    app.config.update(TESTING=True, **issuer.config)
    if publishable_key:
        app.config["CLERK_PUBLISHABLE_KEY"] = publishable_key
    ClerkSecurity(app)

    @app.get("/api/me")
    def me() -> dict[str, Any]:
        return {"user_id": current_auth.user_id, "org_role": current_auth.org_role}

    return app


def test_sign_in_signs_a_test_client_in_with_cookies(clerk_issuer: ClerkTestIssuer) -> None:
    client = _app(clerk_issuer).test_client()
    assert client.get("/api/me").status_code == 401
    claims = clerk_issuer.sign_in(client, user_id="user_7", org={"id": "org_1", "role": "admin"})
    assert claims["sub"] == "user_7"
    assert client.get("/api/me").json == {"user_id": "user_7", "org_role": "org:admin"}
    suffix = cookie_suffix(clerk_issuer.publishable_key)
    for name in ("__session", "__client_uat", "__clerk_db_jwt"):
        assert client.get_cookie(name) is not None and client.get_cookie(f"{name}_{suffix}") is not None
    clerk_issuer.sign_out(client)
    assert client.get("/api/me").status_code == 401


def test_sign_in_suffixes_cookies_with_the_apps_publishable_key() -> None:
    issuer = ClerkTestIssuer()
    other = ClerkTestIssuer(frontend_api="clerk.other.test")  # the app's key differs from the issuer's
    client = _app(issuer, publishable_key=other.publishable_key).test_client()
    issuer.sign_in(client, user_id="user_8")
    assert client.get_cookie(f"__session_{cookie_suffix(other.publishable_key)}") is not None
    assert client.get_cookie(f"__session_{cookie_suffix(issuer.publishable_key)}") is None


def test_sign_in_rejects_a_misspelled_option(clerk_issuer: ClerkTestIssuer) -> None:
    client = _app(clerk_issuer).test_client()
    with pytest.raises(TypeError):
        clerk_issuer.sign_in(client, userid="user_1")  # type: ignore[call-arg]


def test_all_lists_every_public_name() -> None:
    public = {
        name
        for name, value in vars(kit).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
    }
    assert sorted(kit.__all__) == sorted(public)
    assert "SessionOptions" in kit.__all__ and "ClerkTestIssuer" in kit.__all__


def test_a_client_hanging_up_on_the_stand_in_prints_no_traceback(
    clerk_backend_api: kit.BackendAPIStandIn, capfd: pytest.CaptureFixture[str]
) -> None:
    """An app that gives up at its deadline is normal in outage tests (the soak did it thousands of times): the
    stand-in must not print a BrokenPipeError traceback for each."""
    clerk_backend_api.delay = 0.3
    with pytest.raises(requests.Timeout):
        requests.get(clerk_backend_api.url + "/v1/jwks", timeout=0.05)
    time.sleep(0.6)  # the stand-in answers into the closed connection
    assert "Traceback" not in capfd.readouterr().err


# -- the flows of this round's features, tested offline with the kit alone (no internal imports) -----------------
def _pages_app(issuer: ClerkTestIssuer, **config: Any) -> Flask:
    app = Flask("kit_pages_app")
    app.config.update(TESTING=True, CLERK_SECRET_KEY=issuer.secret_key, CLERK_PUBLISHABLE_KEY=issuer.publishable_key)
    app.config.update(config)
    ClerkSecurity(app)

    @app.get("/orgs/<slug>")
    def org(slug: str) -> dict[str, Any]:
        return {"user_id": current_auth.user_id, "org_slug": current_auth.org_slug}

    @app.get("/me")
    def personal() -> dict[str, Any]:
        return {"user_id": current_auth.user_id, "org_slug": current_auth.org_slug}

    @app.get("/api/me")
    def me() -> dict[str, Any]:
        return {"user_id": current_auth.user_id, "org_role": current_auth.org_role}

    return app


def test_sign_in_with_a_refresh_token_sets_the_refresh_cookie(
    clerk_issuer: ClerkTestIssuer, clerk_backend_api: kit.BackendAPIStandIn
) -> None:
    """An expired session with Clerk's ``__refresh_<suffix>`` cookie is refreshed through the Backend API stand-in;
    ``sign_out`` removes the refresh cookie with the others."""
    client = _pages_app(clerk_issuer, CLERK_API_URL=clerk_backend_api.url).test_client()
    clerk_backend_api.add_refresh_token("rt_1", "sess_123")
    clerk_issuer.sign_in(client, lifetime=-120, refresh_token="rt_1")
    response = client.get("/api/me")
    assert response.status_code == 200 and response.json == {"user_id": "user_123", "org_role": None}
    assert clerk_backend_api.count("POST", "/v1/sessions/sess_123/refresh") == 1
    clerk_issuer.sign_out(client)
    assert client.get_cookie(f"__refresh_{cookie_suffix(clerk_issuer.publishable_key)}") is None
    assert client.get("/api/me").status_code == 401


def test_sign_in_on_another_domain(clerk_issuer: ClerkTestIssuer) -> None:
    """A satellite and its primary are on their own hosts: cookies for ``localhost`` never reach them."""
    client = _app(clerk_issuer).test_client()
    clerk_issuer.sign_in(client, user_id="user_9", domain="primary.example.com")
    assert client.get("/api/me", base_url="https://primary.example.com").json["user_id"] == "user_9"
    assert client.get("/api/me").status_code == 401
    clerk_issuer.sign_out(client, domain="primary.example.com")
    assert client.get("/api/me", base_url="https://primary.example.com").status_code == 401


def test_the_frontend_api_stand_in_activates_the_organization_a_handshake_asks_for(
    clerk_issuer: ClerkTestIssuer, clerk_backend_api: kit.BackendAPIStandIn, clerk_frontend_api: kit.FrontendAPIStandIn
) -> None:
    """Organization sync end to end: the app hands shake with ``organization_id``, the stand-in activates that
    organization when the signed-in user is a member of it (``memberships``), and the page is served with it."""
    sync = {"organization_patterns": ["/orgs/:slug"], "personal_account_patterns": ["/me"]}
    app = _pages_app(
        clerk_issuer,
        CLERK_API_URL=clerk_backend_api.url,
        CLERK_PROXY_URL=clerk_frontend_api.url,
        CLERK_ORGANIZATION_SYNC=sync,
    )
    acme = {"id": "org_1", "slug": "acme", "role": "admin"}
    globex = {"id": "org_2", "slug": "globex", "role": "member"}
    clerk_frontend_api.signed_in_as = {"org": acme}
    clerk_frontend_api.memberships = [acme, globex]
    client = app.test_client()
    clerk_issuer.sign_in(client, org=acme)

    def follow(path: str) -> Any:
        response = client.get(path, headers={"Sec-Fetch-Dest": "document"})
        for _ in range(12):  # a handshake is two redirects; an organization not joined hands shake 3 times
            if response.status_code != 307:
                break
            location = response.headers["Location"]
            if location.startswith(clerk_frontend_api.url):
                location = requests.get(location, allow_redirects=False, timeout=5).headers["Location"]
            response = client.get(location, headers={"Sec-Fetch-Dest": "document"})
        return response

    assert follow("/orgs/globex").json == {"user_id": "user_123", "org_slug": "globex"}
    assert clerk_frontend_api.calls[-1]["organization_id"] == "globex"
    assert follow("/orgs/acme").json["org_slug"] == "acme"
    assert follow("/orgs/initech").json["org_slug"] == "acme"  # not a member: Clerk keeps the active organization
    assert follow("/me").json == {"user_id": "user_123", "org_slug": None}  # the personal account
    assert clerk_frontend_api.calls[-1]["organization_id"] == ""
