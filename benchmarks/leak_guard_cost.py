"""Cost of the secret-leak guard per response: a small JSON body and a 100 KB HTML page, guard on vs off.

    python benchmarks/leak_guard_cost.py

Prints microseconds per response for the whole request through Flask's test client (guard on, guard off,
difference) and for the guard's check alone on a ready response.
"""

from __future__ import annotations

import timeit
from typing import Any

from flask import Flask, Response

from flask_clerk_security import ClerkSecurity
from flask_clerk_security.leakguard import LeakGuard
from flask_clerk_security.testing import ClerkTestIssuer

ISSUER = ClerkTestIssuer()
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
HTML = "<!doctype html><html><body>" + "<p>Lorem ipsum dolor sit amet, consectetur.</p>" * 2200 + "</body></html>"
ROUNDS = 2000


def make_app(guard: bool) -> Flask:
    app = Flask(f"bench_{guard}")
    app.config.update(
        CLERK_SECRET_KEY=ISSUER.secret_key,
        CLERK_JWT_KEY=ISSUER.public_pem,
        CLERK_PUBLISHABLE_KEY=ISSUER.publishable_key,
        CLERK_WEBHOOK_SECRET=WEBHOOK_SECRET,
        CLERK_AUTHORIZED_PARTIES="https://app.example.com",
        CLERK_FORCE_HTTPS=False,
        CLERK_LEAK_GUARD=guard,
    )
    clerk = ClerkSecurity(app)

    @app.get("/json")
    @clerk.public
    def small_json() -> dict[str, Any]:
        return {"user_id": "user_123", "items": [1, 2, 3]}

    @app.get("/html")
    @clerk.public
    def html() -> str:
        return HTML

    return app


def per_call_us(func: Any, rounds: int = ROUNDS) -> float:
    best = min(timeit.repeat(func, number=rounds, repeat=5))
    return best / rounds * 1e6


def main() -> None:
    print(f"HTML body: {len(HTML.encode()) / 1024:.0f} KB; best of 5 x {ROUNDS} rounds")
    clients = {guard: make_app(guard).test_client() for guard in (True, False)}
    for path in ("/json", "/html"):
        on = per_call_us(lambda path=path: clients[True].get(path))
        off = per_call_us(lambda path=path: clients[False].get(path))
        print(f"request {path:<6} guard on {on:8.1f} us   off {off:8.1f} us   difference {on - off:6.1f} us")
    guard = LeakGuard({"CLERK_SECRET_KEY": ISSUER.secret_key, "CLERK_WEBHOOK_SECRET": WEBHOOK_SECRET})
    for name, body, mimetype in (("json", '{"user_id": "user_123"}', "application/json"), ("html", HTML, "text/html")):
        response = Response(body, mimetype=mimetype)
        alone = per_call_us(lambda response=response: guard.find(response), 20000)
        print(f"guard.find alone on {name:<4} {alone:6.2f} us")


if __name__ == "__main__":
    main()
