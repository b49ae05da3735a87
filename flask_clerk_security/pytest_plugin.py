"""pytest fixtures for apps protected by flask-clerk-security (registered through the ``pytest11`` entry point)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .testing import BackendAPIStandIn, ClerkTestIssuer


@pytest.fixture(scope="session")
def clerk_issuer() -> ClerkTestIssuer:
    """A token issuer with an RSA key made once per test session."""
    return ClerkTestIssuer()


@pytest.fixture
def clerk_backend_api(clerk_issuer: ClerkTestIssuer) -> Iterator[BackendAPIStandIn]:
    """A Backend API stand-in serving the issuer's JWKS on 127.0.0.1, fresh for each test."""
    with BackendAPIStandIn(clerk_issuer) as stand_in:
        yield stand_in
