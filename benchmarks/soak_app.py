"""The app ``benchmarks/soak.py`` serves under gunicorn (``benchmarks.soak_app:app``), built like a real one.

Configured from the environment as in production (``CLERK_SECRET_KEY``, ``CLERK_API_URL``,
``CLERK_RATELIMIT_STORAGE_URI``, ...), behind ProxyFix, with logging configured so the extension's log lines
reach gunicorn's stderr. ``SOAK_RUNS_FILE`` is where the webhook handler appends one line per run.
Every answer carries ``X-Soak-Pid`` (the worker that made it). ``GET /_soak/memory`` answers this worker's
memory figures (:func:`memory_figures`); with ``SOAK_TRACEMALLOC=FRAMES`` it traces Python allocations from
the first time it is asked.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import re
import threading
import tracemalloc
from pathlib import Path
from typing import Any

from flask import Flask, Response, request
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_clerk_security import ClerkSecurity, current_auth, current_user
from flask_clerk_security.webhooks import WebhookEvent

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
logging.getLogger("flask_clerk_security").setLevel(logging.WARNING)

OURS = "*/flask_clerk_security/*"


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()
    ]


def malloc_figures() -> dict[str, int]:
    """glibc's view (2.33+; empty elsewhere): bytes in use and free in its heaps, and how many arenas it has."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallinfo2.restype = _MallInfo2
        info = libc.mallinfo2()
        buffer, size = ctypes.c_char_p(), ctypes.c_size_t()
        libc.open_memstream.restype = ctypes.c_void_p
        stream = libc.open_memstream(ctypes.byref(buffer), ctypes.byref(size))
        libc.malloc_info(0, ctypes.c_void_p(stream))
        libc.fclose(ctypes.c_void_p(stream))
        xml = (buffer.value or b"").decode()
        libc.free(buffer)
    except (AttributeError, OSError):
        return {}
    return {
        "malloc_in_use": info.uordblks + info.hblkhd,
        "malloc_free": info.fordblks,
        "arenas": len(re.findall(r'<heap nr="\d+">', xml)),
    }


def memory_figures(frames: int, baseline: dict[str, tuple[int, int]], snapshot: str) -> dict[str, Any]:
    """RSS, threads and malloc figures after a full garbage collection (what is left is reachable). With
    ``frames``, the first call starts tracemalloc (what the worker allocates from then on is traced, its start-up
    is not) and every call adds the Python memory traced. ``snapshot`` ``"base"`` or ``"diff"`` also takes a
    snapshot (its garbage ratchets RSS up a little: the soak takes few) and adds the part allocated with this
    package on the stack; ``"base"`` keeps its file:line sizes as ``baseline``, ``"diff"`` adds the lines that
    grew most since."""
    gc.collect()
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    figures: dict[str, Any] = {
        "pid": os.getpid(),
        "rss": int(status["VmRSS"].split()[0]) * 1024,
        "rss_anon": int(status["RssAnon"].split()[0]) * 1024,  # the rest: mapped files (code), shared memory
        "threads": int(status["Threads"]),
        **malloc_figures(),
    }
    if not frames:
        return figures
    if not tracemalloc.is_tracing():
        tracemalloc.start(frames)
    figures.update(traced=tracemalloc.get_traced_memory()[0], tracemalloc_overhead=tracemalloc.get_tracemalloc_memory())
    if not snapshot:
        return figures
    taken = tracemalloc.take_snapshot().filter_traces(  # without this probe's own figures
        [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__)]
    )
    ours = taken.filter_traces([tracemalloc.Filter(True, OURS, all_frames=True)])
    figures["ours"] = sum(stat.size for stat in ours.statistics("filename"))
    lines = {
        f"{stat.traceback[0].filename}:{stat.traceback[0].lineno}": (stat.size, stat.count)
        for stat in taken.statistics("lineno")
    }
    if snapshot == "base":
        baseline.clear()
        baseline.update(lines)
        return figures
    growth = [
        (where, size - baseline.get(where, (0, 0))[0], count - baseline.get(where, (0, 0))[1])
        for where, (size, count) in lines.items()
    ]
    growth.sort(key=lambda row: row[1], reverse=True)
    figures["top_growth"] = growth[:10]
    figures["top_growth_ours"] = [row for row in growth if "/flask_clerk_security/" in row[0]][:5]
    return figures


def add_memory_probe(app: Flask, clerk: ClerkSecurity) -> None:
    """``GET /_soak/memory?round=R[&snapshot=base|diff]``: :func:`memory_figures` once per round (the soak asks
    until every worker has answered a round, so a worker asked twice answers the same figures)."""
    frames = int(os.environ.get("SOAK_TRACEMALLOC", "0"))
    baseline: dict[str, tuple[int, int]] = {}
    answered: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()

    @app.get("/_soak/memory")
    @clerk.public
    def memory() -> dict[str, Any]:
        label = request.args.get("round", "")
        with lock:
            if label not in answered:
                answered.clear()
                answered[label] = memory_figures(frames, baseline, request.args.get("snapshot", ""))
            return answered[label]


def create_app() -> Flask:
    app = Flask("soak")
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)  # type: ignore[method-assign]
    clerk = ClerkSecurity(app)
    runs_file = os.environ["SOAK_RUNS_FILE"]

    @app.get("/public")
    @clerk.public
    def public() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/api/me")
    def me() -> dict[str, Any]:
        return {"user_id": current_auth.user_id}

    @app.get("/api/profile")
    def profile() -> dict[str, Any]:
        user = current_user._get_current_object()  # cached across requests (Redis), fetched from the Backend API
        return {"user_id": user.id if user else None}

    @app.get("/api/limited")
    @clerk.limiter.limit("3 per minute")
    def limited() -> dict[str, Any]:
        return {"user_id": current_auth.user_id}

    @app.get("/api/machine")
    @clerk.require(accepts_token="api_key")
    def machine() -> dict[str, Any]:
        return {"user_id": current_auth.user_id}

    @clerk.webhooks.on("user.created")
    def user_created(event: WebhookEvent) -> None:
        # One write() of a short line with O_APPEND: lines from several workers never interleave.
        fd = os.open(runs_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{event.id} {os.getpid()}\n".encode())
        finally:
            os.close(fd)

    app.register_blueprint(clerk.webhooks)
    add_memory_probe(app, clerk)

    @app.after_request
    def tag_worker(response: Response) -> Response:
        response.headers["X-Soak-Pid"] = str(os.getpid())
        return response

    return app


app = create_app()
