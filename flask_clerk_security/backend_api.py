"""Clerk Backend API clients, each call within one total deadline: a pooled ``requests`` session for the
extension's own calls, and Clerk's official SDK (``clerk-backend-api``) for the app (``clerk.backend``)."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError
from .secret_values import Secret, reveal

if TYPE_CHECKING:  # imported when the first call is made: most apps verify with a cached JWKS or a PEM
    import httpx
    import requests
    from clerk_backend_api import Clerk
    from requests.adapters import HTTPAdapter

logger = logging.getLogger("flask_clerk_security")

#: The Backend API version Clerk's own SDK sends as ``Clerk-API-Version``.
CLERK_API_VERSION_HEADER = "2026-05-12"

_MAX_BODY = 1 << 20
_session: requests.Session | None = None


class _Deadline:
    """The end of one call: a timer cuts the call's socket at that moment, whatever phase it is in.

    Socket timeouts bound each ``recv``, not their sum, so a server that drips its headers or body a byte at a
    time would otherwise hold the caller for as long as it likes.
    """

    def __init__(self, at: float) -> None:
        self.at = at
        self._timer: threading.Timer | None = None

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def watch(self, sock: socket.socket) -> None:
        """Arm the timer for ``sock`` (called once the request is sent, before the answer is read)."""
        self.cancel()
        self._timer = threading.Timer(max(self.remaining(), 0.0), _cut, (sock,))
        self._timer.daemon = True
        self._timer.start()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _cut(sock: socket.socket) -> None:
    """Unblock a read in progress on ``sock``; urllib3 then drops the connection instead of reusing it."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain socket's, under any TLS layer
    except OSError:
        pass  # already closed


_current_deadline: ContextVar[_Deadline | None] = ContextVar("clerk_backend_api_deadline", default=None)


def _deadline_adapter() -> HTTPAdapter:
    """An adapter whose connections arm the current call's deadline when they start reading an answer."""
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
    from urllib3.response import HTTPResponse

    def arm(sock: socket.socket | None) -> None:
        deadline = _current_deadline.get()
        if deadline is not None and sock is not None:
            deadline.watch(sock)

    class DeadlineHTTPConnection(HTTPConnection):
        def getresponse(self) -> HTTPResponse:  # type: ignore[override]  # as urllib3's own
            arm(self.sock)
            return super().getresponse()

    class DeadlineHTTPSConnection(HTTPSConnection):
        def getresponse(self) -> HTTPResponse:  # type: ignore[override]  # as urllib3's own
            arm(self.sock)
            return super().getresponse()

    class DeadlineHTTPPool(HTTPConnectionPool):
        ConnectionCls = DeadlineHTTPConnection

    class DeadlineHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = DeadlineHTTPSConnection

    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=0)
    adapter.poolmanager.pool_classes_by_scheme = {"http": DeadlineHTTPPool, "https": DeadlineHTTPSPool}
    return adapter


def http_session() -> requests.Session:
    """The process-wide pooled session (connections are reused across requests and apps)."""
    global _session
    if _session is None:
        import requests

        session = requests.Session()
        adapter = _deadline_adapter()
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.headers["User-Agent"] = "flask-clerk-security"
        _session = session
    return _session


def _forget_session_in_child() -> None:
    """A forked worker opens its own connections instead of sharing the parent's pooled sockets."""
    global _session
    _session = None


os.register_at_fork(after_in_child=_forget_session_in_child)


#: While the Backend API stays down for one caller, one log line this often (the requests in between are counted).
STILL_DOWN_EVERY = 300.0


class OutageLog:
    """One log line per Backend API outage as one caller sees it (down, still down every few minutes, back), not
    one per request: during an outage every request that needs the API fails the same way.

    ``failed(detail)`` per refused request, ``answered()`` when the API answers again; ``name`` and
    ``consequence`` say who is affected and how (``"machine-token requests get 503 ..."``).
    """

    def __init__(self, name: str, consequence: str) -> None:
        self.name = name
        self.consequence = consequence
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._affected = 0
        self._last_line = 0.0

    def failed(self, detail: str) -> None:
        with self._lock:
            now = time.monotonic()
            self._affected += 1
            if self._down_since is None:
                self._down_since = self._last_line = now
                logger.error("%s: %s; %s", self.name, detail, self.consequence)
            elif now - self._last_line >= STILL_DOWN_EVERY:
                self._last_line = now
                logger.error(
                    "%s still failing after %.0f s (%s); %d requests affected so far",
                    self.name,
                    now - self._down_since,
                    detail,
                    self._affected,
                )

    def answered(self) -> None:
        if self._down_since is None:
            return
        with self._lock:
            if self._down_since is not None:
                logger.warning(
                    "%s: Backend API answers again after %.0f s (%d requests affected)",
                    self.name,
                    time.monotonic() - self._down_since,
                    self._affected,
                )
            self._down_since = None
            self._affected = 0


class BackendAPIError(Exception):
    """The Backend API could not be reached, timed out, or answered with an error status."""

    def __init__(self, message: str, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body

    def error_message(self, *secrets: str, code: str | None = None) -> str | None:
        """The ``message`` of the answer's first error (with ``code``, when given), as Clerk quotes it; None when
        there is none, it is not a string, or it repeats one of ``secrets`` (the key the call was made with, the
        token it asked about)."""
        errors = self.body.get("errors") if isinstance(self.body, dict) else None
        found = errors if isinstance(errors, list) else []
        if code is not None:
            found = [e for e in found if isinstance(e, dict) and e.get("code") == code]
        message = found[0].get("message") if found and isinstance(found[0], dict) else None
        if not isinstance(message, str) or any(secret and secret in message for secret in secrets):
            return None
        return message


def call(
    method: str,
    url: str,
    *,
    bearer: str | Secret,
    timeout: float,
    json_body: Any = None,
    params: dict[str, str] | None = None,
) -> Any:
    """One Backend API call whose connect, headers and body together stay within ``timeout`` seconds.

    Returns the decoded JSON body of a 2xx answer; raises :class:`BackendAPIError` otherwise.
    """
    import requests

    deadline = _Deadline(time.monotonic() + timeout)
    headers = {"Authorization": f"Bearer {reveal(bearer)}", "Clerk-API-Version": CLERK_API_VERSION_HEADER}
    token = _current_deadline.set(deadline)
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
                if size > _MAX_BODY:
                    raise BackendAPIError("Backend API answer too large", response.status_code)
                chunks.append(chunk)
            status = response.status_code
            deadline.cancel()
            if deadline.remaining() <= 0:  # cut at the deadline after headers without a length: a truncated body
                raise requests.Timeout()
    except requests.RequestException as exc:
        if deadline.remaining() <= 0:
            raise BackendAPIError(f"Backend API did not answer within {timeout:g} s") from None
        raise BackendAPIError(f"Backend API unreachable: {type(exc).__name__}") from None
    finally:
        deadline.cancel()
        _current_deadline.reset(token)
    try:
        body = json.loads(b"".join(chunks) or b"null")
    except ValueError:
        body = None
    if not 200 <= status < 300:
        raise BackendAPIError(f"Backend API answered {status}", status, body)
    if body is None:
        raise BackendAPIError("Backend API answered without a JSON body", status)
    return body


def sdk_client(api_url: str, api_version: str, secret_key: str | Secret, timeout: float) -> Clerk:
    """Clerk's official SDK aimed at ``{api_url}/{api_version}`` (so a stand-in can serve it), with no retries
    and an HTTP client that holds every call to ``timeout`` seconds in all, as :func:`call` does.

    Raises :class:`ConfigurationError` naming the install command when the ``backend`` extra is missing.
    """
    try:
        from clerk_backend_api import Clerk
    except ImportError:
        raise ConfigurationError(
            "clerk.backend, current_user and get_token() need Clerk's Python SDK. "
            "Fix: pip install 'flask-clerk-security[backend]'"
        ) from None
    return Clerk(
        bearer_auth=reveal(secret_key),
        server_url=f"{api_url.rstrip('/')}/{api_version.strip('/')}",
        client=deadline_http_client(timeout),
        retry_config=None,
    )


def deadline_http_client(timeout: float) -> httpx.Client:
    """An ``httpx.Client`` whose every ``send`` (connect, wait and read together) ends within ``timeout`` seconds
    with at most 1 MiB read: httpx's own timeouts bound each phase, not the whole call. Redirects are not followed
    (the bearer secret stays with Clerk's host)."""
    import httpx

    timeouts = httpx.Timeout(timeout, connect=min(timeout, 1.0))

    class DeadlineClient(httpx.Client):
        def send(self, request: httpx.Request, *, stream: bool = False, **kwargs: Any) -> httpx.Response:
            deadline = time.monotonic() + timeout
            # Some SDK versions set no timeout on the request (httpx then waits forever): ours always applies.
            request.extensions["timeout"] = timeouts.as_dict()
            response = super().send(request, stream=True, **kwargs)
            if stream:
                return response
            chunks: list[bytes] = []
            size = 0
            try:
                for chunk in response.iter_bytes(16384):
                    size += len(chunk)
                    if size > _MAX_BODY or time.monotonic() > deadline:
                        raise httpx.ReadTimeout("Backend API answer too large or too slow", request=request)
                    chunks.append(chunk)
            finally:
                response.close()
            headers = [(k, v) for k, v in response.headers.items() if k.lower() not in _DECODED_HEADERS]
            return httpx.Response(
                response.status_code, headers=headers, content=b"".join(chunks), request=request
            )

    return DeadlineClient(
        timeout=timeouts,
        follow_redirects=False,
        headers={"User-Agent": "flask-clerk-security"},
    )


#: Headers that describe the body as sent, not as decoded by ``iter_bytes``.
_DECODED_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})
