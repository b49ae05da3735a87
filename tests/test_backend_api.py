"""The Backend API client's one total deadline, against real misbehaving servers on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from flask_clerk_security import backend_api

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n"


class DripServer:
    """Answers each connection by sending ``head`` at once, then ``drip`` one byte per ``pause`` seconds.

    Bounded: it stops dripping (and hangs up) after ``limit`` seconds, or when stopped.
    """

    def __init__(self, head: bytes, drip: bytes, pause: float = 0.05, limit: float = 10.0) -> None:
        self.head, self.drip, self.pause, self.limit = head, drip, pause, limit
        self._stopped = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(self.head)
                ends = time.monotonic() + self.limit
                for byte in self.drip:
                    if self._stopped.wait(self.pause) or time.monotonic() > ends:
                        return
                    conn.sendall(bytes([byte]))
                self._stopped.wait(max(ends - time.monotonic(), 0.0))  # then hold the connection open
            except OSError:
                return  # the client hung up: what the deadline is for

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(2)
        self._listener.close()


@pytest.fixture
def drip_server(request: pytest.FixtureRequest) -> Iterator[DripServer]:
    head, drip = request.param
    server = DripServer(head, drip)
    yield server
    server.stop()


DRIPS = {
    "body": (HEAD, b"[" + b" " * 398 + b"]"),
    "headers": (b"", HEAD + b"[" + b" " * 398 + b"]"),
    "silent": (b"", b""),
}


@pytest.mark.parametrize("drip_server", list(DRIPS.values()), ids=list(DRIPS), indirect=True)
def test_a_call_ends_within_its_deadline_however_the_server_drips(drip_server: DripServer) -> None:
    started = time.monotonic()
    with pytest.raises(backend_api.BackendAPIError, match=r"within 0\.5 s"):
        backend_api.call("GET", drip_server.url + "/v1/jwks", bearer="sk_test_x", timeout=0.5)
    elapsed = time.monotonic() - started
    assert elapsed < 0.5 + 0.25, f"took {elapsed:.2f} s with a 0.5 s deadline"
