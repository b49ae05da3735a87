"""Test kit: a Clerk-shaped token issuer and a Backend API stand-in on 127.0.0.1, so apps test without Clerk.

The pytest fixtures that use them live in :mod:`flask_clerk_security.pytest_plugin`. A test tool: it ships in the
wheel for your tests to import; production code never should.
"""

from __future__ import annotations

from .backend_api import BackendAPIStandIn, MachineTokenRecord
from .frontend_api import FrontendAPIStandIn
from .issuer import M2M_JWT_CATEGORY, ClerkTestIssuer, SessionOptions
from .server import Handler, StandInRequest, serve_app
from .webhooks import clerk_event, generate_webhook_secret, sign_webhook

__all__ = [
    "M2M_JWT_CATEGORY",
    "BackendAPIStandIn",
    "ClerkTestIssuer",
    "FrontendAPIStandIn",
    "Handler",
    "MachineTokenRecord",
    "SessionOptions",
    "StandInRequest",
    "clerk_event",
    "generate_webhook_secret",
    "serve_app",
    "sign_webhook",
]
