"""Clerk Backend API client: one pooled ``requests`` session per process, bounded time per call."""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from .config import CLERK_API_VERSION_HEADER, Secret, reveal

if TYPE_CHECKING:  # imported when the first call is made: most apps verify with a cached JWKS or a PEM
    import requests

logger = logging.getLogger("flask_clerk_security")

_MAX_BODY = 1 << 20
_session: requests.Session | None = None


def http_session() -> requests.Session:
    """The process-wide pooled session (connections are reused across requests and apps)."""
    global _session
    if _session is None:
        import requests
        from requests.adapters import HTTPAdapter

        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.headers["User-Agent"] = "flask-clerk-security"
        _session = session
    return _session


class BackendAPIError(Exception):
    """The Backend API could not be reached, timed out, or answered with an error status."""

    def __init__(self, message: str, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


def call(
    method: str,
    url: str,
    *,
    bearer: str | Secret,
    timeout: float,
    json_body: Any = None,
    params: dict[str, str] | None = None,
) -> Any:
    """One Backend API call whose connect, wait and read together stay within ``timeout`` seconds.

    Returns the decoded JSON body of a 2xx answer; raises :class:`BackendAPIError` otherwise.
    """
    import requests

    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {reveal(bearer)}", "Clerk-API-Version": CLERK_API_VERSION_HEADER}
    try:
        with http_session().request(
            method,
            url,
            headers=headers,
            json=json_body,
            params=params,
            timeout=(min(timeout, 1.0), timeout),
            stream=True,
            allow_redirects=False,
        ) as response:
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_content(16384):
                size += len(chunk)
                if size > _MAX_BODY or time.monotonic() > deadline:
                    raise BackendAPIError("Backend API answer too large or too slow", response.status_code)
                chunks.append(chunk)
            status = response.status_code
    except requests.RequestException as exc:
        raise BackendAPIError(f"Backend API unreachable: {type(exc).__name__}") from None
    try:
        body = json.loads(b"".join(chunks) or b"null")
    except ValueError:
        body = None
    if not 200 <= status < 300:
        raise BackendAPIError(f"Backend API answered {status}", status, body)
    if body is None:
        raise BackendAPIError("Backend API answered without a JSON body", status)
    return body
