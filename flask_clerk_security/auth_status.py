"""Follows ``@clerk/backend`` ``src/tokens/authStatus.ts``: the state a page request ends in.

A signed-in, signed-out or handshake status, with the auth, the reason and the headers (``Set-Cookie``, a
redirect) Clerk asks the response to carry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .auth import Auth

SIGNED_IN = "signed-in"
SIGNED_OUT = "signed-out"
HANDSHAKE_STATUS = "handshake"


@dataclass
class PageState:
    """Clerk's RequestState for one request: status, auth, reason and the response headers it asks for."""

    status: str
    auth: Auth
    reason: str | None = None
    cookies: list[str] = field(default_factory=list)
    location: str | None = None


def signed_out(
    reason: str, cookies: list[str] | None = None, location: str | None = None, message: str = ""
) -> PageState:
    """A signed-out state for ``reason`` (and Clerk's ``message``), with the cookies and redirect it asks for."""
    return PageState(SIGNED_OUT, Auth.signed_out(reason, message=message), reason, cookies or [], location)
