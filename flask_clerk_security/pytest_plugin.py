"""pytest fixtures for apps protected by flask-clerk-security (registered through the ``pytest11`` entry point)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .testing import BackendAPIStandIn, ClerkTestIssuer, FrontendAPIStandIn


@pytest.fixture(scope="session")
def clerk_issuer() -> ClerkTestIssuer:
    """A token issuer with an RSA key made once per test session."""
    return ClerkTestIssuer()


@pytest.fixture
def clerk_backend_api(clerk_issuer: ClerkTestIssuer) -> Iterator[BackendAPIStandIn]:
    """A Backend API stand-in serving the issuer's JWKS on 127.0.0.1, fresh for each test."""
    with BackendAPIStandIn(clerk_issuer) as stand_in:
        yield stand_in


@pytest.fixture
def clerk_frontend_api(
    clerk_issuer: ClerkTestIssuer, clerk_backend_api: BackendAPIStandIn
) -> Iterator[FrontendAPIStandIn]:
    """A Frontend API handshake stand-in on 127.0.0.1 (nonces go through ``clerk_backend_api``).

    Point the app at both: ``CLERK_PROXY_URL=clerk_frontend_api.url``, ``CLERK_API_URL=clerk_backend_api.url``.
    """
    with FrontendAPIStandIn(clerk_issuer, backend_api=clerk_backend_api) as stand_in:
        yield stand_in
