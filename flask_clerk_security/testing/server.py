"""Serving over real HTTP on 127.0.0.1: ``serve_app`` for an app, the loopback server the stand-ins share."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

from werkzeug.serving import WSGIRequestHandler, make_server


class StandInRequest:
    """One request the stand-in received."""

    def __init__(self, method: str, path: str, query: dict[str, list[str]], headers: Mapping[str, str], body: Any):
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.json = body


Handler = Callable[[StandInRequest], tuple[int, Any]]


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Serve a WSGI app on a free port of 127.0.0.1 (werkzeug, threaded, quiet) for real-HTTP and browser tests.

    ``with serve_app(app) as base_url: requests.get(base_url + "/api/me")``; the server stops on exit.
    """
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietRequestHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class _QuietRequestHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


_Server = TypeVar("_Server", bound="_LoopbackServer")


class _LoopbackHTTPServer(ThreadingHTTPServer):
    """Quiet about clients that hang up mid-answer (an app that gave up at its deadline): not a stand-in error."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _LoopbackServer:
    """A stand-in's HTTP server on a free port of 127.0.0.1, served from a daemon thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = _LoopbackHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self: _Server) -> _Server:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self: _Server) -> _Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
