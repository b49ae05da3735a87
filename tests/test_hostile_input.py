"""Hostile input on the cookie, query and page path: every value gets Clerk's answer, never an exception.

A sibling subdomain can set any cookie for the app's domain, and anyone can put anything in a query string,
so each value here reaches the parsers before any signature check, on public pages too.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import pytest
from flask import Flask

from flask_clerk_security import ClerkSecurity, current_auth
from flask_clerk_security.testing import ClerkTestIssuer

DOC = {"Sec-Fetch-Dest": "document", "Accept": "text/html"}


@pytest.fixture(scope="module")
def issuer() -> ClerkTestIssuer:
    return ClerkTestIssuer(instance="live")


@pytest.fixture(scope="module")
def page_app(issuer: ClerkTestIssuer) -> Flask:
    """One public page; exceptions propagate (TESTING), so a parser that raises fails the test itself."""
    app = Flask("hostile_pages")
    app.config.update(TESTING=True, **issuer.config)
    clerk = ClerkSecurity(app)

    @app.get("/")
    @clerk.public
    def home() -> dict[str, Any]:
        return {"user_id": current_auth.user_id}

    return app


def _get(app: Flask, cookies: dict[str, str], query: dict[str, str] | None = None) -> Any:
    client = app.test_client()
    with warnings.catch_warnings():  # werkzeug warns about cookies browsers would drop; these are hostile
        warnings.simplefilter("ignore")
        for name, value in cookies.items():
            client.set_cookie(name, value)
    return client.get("/", query_string=query, headers=DOC)


def _stale(issuer: ClerkTestIssuer) -> str:
    return issuer.session_token(issued_at=int(time.time()) - 120)


@pytest.mark.parametrize(
    "count",
    ["0x" + "f" * 300, "0b" + "1" * 2000, "0o" + "7" * 700, "1e400", "9" * 5000],
    ids=["hex", "binary", "octal", "exponent", "digits"],
)
def test_a_huge_redirect_count_hand_shakes_as_clerk(page_app: Flask, issuer: ClerkTestIssuer, count: str) -> None:
    """``Number(count) || 0`` is Infinity in JavaScript; float(int(...)) overflowed here (a 500)."""
    response = _get(page_app, {"__session": _stale(issuer), "__client_uat": "1", "__clerk_redirect_count": count})
    assert response.status_code == 307
    assert "__clerk_redirect_count=Infinity; SameSite=Lax; HttpOnly; Max-Age=2" in response.headers.getlist(
        "Set-Cookie"
    )


@pytest.mark.parametrize(
    "uat",
    ["9" * 4400, "-" + "9" * 4400, " 9" + "0" * 5000 + "x", "0x" + "f" * 5000],
    ids=["digits", "negative", "trailing-junk", "hex"],
)
def test_a_huge_client_uat_reads_as_javascript_reads_it(page_app: Flask, issuer: ClerkTestIssuer, uat: str) -> None:
    """``Number.parseInt`` of 4,400 digits is +-Infinity; Python's int() refused it (ValueError, a 500)."""
    fresh = issuer.session_token()
    without_session = _get(page_app, {"__client_uat": uat})
    with_session = _get(page_app, {"__client_uat": uat, "__session": fresh})
    if uat.startswith("-"):  # -Infinity is truthy and below every iat: the fresh token signs in
        assert without_session.headers["x-clerk-auth-reason"] == "client-uat-but-no-session-token"
        assert with_session.status_code == 200 and with_session.get_json()["user_id"] == "user_123"
    else:
        assert without_session.status_code == 307
        assert with_session.headers["x-clerk-auth-reason"] == "session-token-iat-before-client-uat"
