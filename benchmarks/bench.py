"""Per-request cost of flask-clerk-security beside the alternatives, in one process and one run.

    python benchmarks/bench.py            # full run: medians, overheads, ratios, PASS/FAIL per target
    python benchmarks/bench.py --smoke    # a few hundred requests, no thresholds (CI keeps it from rotting)

Every request goes through ``app.wsgi_app(environ, start_response)`` with a prepared WSGI environ (no test
client, no sockets) and is timed on its own; the variants are interleaved round by round so that load from
other processes spreads over all of them, and the figures are medians. Each response's status is checked: a
401 served by mistake would look fast.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # measure this checkout, not an installed copy

import jwt  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding  # noqa: E402
from flask import Flask, abort, g, request  # noqa: E402
from werkzeug.test import EnvironBuilder  # noqa: E402

from flask_clerk_security import ClerkSecurity, current_auth, current_user  # noqa: E402
from flask_clerk_security.extension import get_state  # noqa: E402
from flask_clerk_security.testing import BackendAPIStandIn, ClerkTestIssuer  # noqa: E402
from flask_clerk_security.tokens import decode_unverified  # noqa: E402

AZP = "http://localhost:5000"
#: Requests arrive over HTTPS, as in production (security headers would redirect plain HTTP).
BASE_URL = "https://localhost:5000"
SKIPPED_SDK = "skipped: pip install .[bench]"

# Targets from the performance issue (medians, same run).
NEW_TOKEN_MAX_FLOORS = 1.5
REPEATED_TOKEN_MAX_FLOORS = 0.25
PUBLIC_MAX_PLAIN = 1.6
SDK_MIN_SPEEDUP = 2.0
IMPORT_MAX_MS = 150.0
USER_WARM_MAX_US = 5.0


@dataclass
class Variant:
    """One row: a WSGI app, the environs it is fed, and the status every response must have."""

    name: str
    label: str
    run: Callable[[], int]
    samples: list[int] = field(default_factory=list)

    @property
    def median_us(self) -> float:
        return statistics.median(self.samples) / 1000.0


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
    _start_response.status = status  # type: ignore[attr-defined]
    return lambda data: None


def wsgi_runner(app: Flask, environs: Iterator[dict[str, Any]], status: str = "200 OK") -> Callable[[], int]:
    """A callable serving one request (the next environ) and returning its duration in nanoseconds."""
    wsgi = app.wsgi_app

    def run() -> int:
        environ = next(environs)
        start = time.perf_counter_ns()
        response = wsgi(environ, _start_response)
        try:
            b"".join(response)
        finally:
            close = getattr(response, "close", None)
            if close is not None:
                close()
        elapsed = time.perf_counter_ns() - start
        got = _start_response.status  # type: ignore[attr-defined]
        if got != status:
            raise SystemExit(f"{app.name}: expected {status}, got {got}: the timing would be meaningless")
        return elapsed

    return run


def environs(path: str, tokens: Iterable[str | None]) -> Iterator[dict[str, Any]]:
    """A fresh copy of one prepared environ per request, with the next token as a Bearer header."""
    base = EnvironBuilder(path=path, base_url=BASE_URL).get_environ()
    for token in tokens:
        environ = base.copy()
        if token is not None:
            environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        yield environ


def forever(value: str | None) -> Iterator[str | None]:
    while True:
        yield value


def plain_app() -> Flask:
    app = Flask("plain")

    @app.get("/api/me")
    def me() -> dict[str, Any]:
        return {"user_id": "user_123"}

    return app


def clerk_app(issuer: ClerkTestIssuer, api_url: str) -> Flask:
    """The production shape: secret key, JWKS from the Backend API (the stand-in), authorized parties set."""
    app = Flask("clerk_security")
    app.config.update(
        CLERK_SECRET_KEY=issuer.secret_key,
        CLERK_PUBLISHABLE_KEY=issuer.publishable_key,
        CLERK_API_URL=api_url,
        CLERK_AUTHORIZED_PARTIES=AZP,
    )
    clerk = ClerkSecurity(app)

    @app.get("/api/me")
    def me() -> dict[str, Any]:
        return {"user_id": current_auth.user_id}

    @app.get("/api/public")
    @clerk.public
    def public() -> dict[str, Any]:
        return {"user_id": "user_123"}

    return app


USER_ID = "user_123"
REDIS_URL = "redis://127.0.0.1:6379/0"


def user_app(issuer: ClerkTestIssuer, api_url: str, name: str, **config: Any) -> Flask:
    """``clerk_app``'s shape with a route that reads ``current_user`` (the Clerk user, through the SDK)."""
    app = Flask(name)
    app.config.update(
        CLERK_SECRET_KEY=issuer.secret_key,
        CLERK_PUBLISHABLE_KEY=issuer.publishable_key,
        CLERK_API_URL=api_url,
        CLERK_AUTHORIZED_PARTIES=AZP,
        CLERK_USER_CACHE_TTL=3600,
        **config,
    )
    ClerkSecurity(app)

    @app.get("/api/profile")
    def profile() -> dict[str, Any]:
        return {"user_id": current_auth.user_id, "name": current_user.first_name}

    @app.get("/api/profile-baseline")
    def profile_baseline() -> dict[str, Any]:
        return {"user_id": current_auth.user_id, "name": "Ada"}

    return app


def redis_available() -> bool:
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5).ping()
    except Exception:
        return False
    return True


def evicting(app: Flask, items: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """``items``, dropping the cached user before each request (outside its timing): every request is cold."""
    users = get_state(app).users
    assert users is not None
    for item in items:
        users.invalidate(USER_ID)
        yield item


def _delete_redis_keys(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*", count=500))
    if keys:
        client.delete(*keys)


def sdk_app(pem: str) -> Flask | None:
    """``clerk-backend-api``'s ``authenticate_request`` in a ``before_request`` (networkless, with jwt_key)."""
    try:
        from clerk_backend_api.security import authenticate_request
        from clerk_backend_api.security.types import AuthenticateRequestOptions
    except ImportError:
        return None
    options = AuthenticateRequestOptions(jwt_key=pem, authorized_parties=[AZP])
    app = Flask("clerk_backend_api")

    @app.before_request
    def guard() -> None:
        state = authenticate_request(request, options)
        if not state.is_signed_in:
            abort(401)
        g.claims = state.payload

    @app.get("/api/me")
    def me() -> dict[str, Any]:
        return {"user_id": g.claims["sub"]}

    return app


def naive_app(jwks_url: str, secret_key: str) -> Flask:
    """The decorator many apps write by hand: PyJWKClient (caches the JWKS) + ``jwt.decode`` per request."""
    client = jwt.PyJWKClient(jwks_url, headers={"Authorization": f"Bearer {secret_key}"})
    app = Flask("naive_pyjwt")

    def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            header = request.headers.get("Authorization", "")
            if not header.startswith("Bearer "):
                abort(401)
            token = header[7:]
            try:
                key = client.get_signing_key_from_jwt(token)
                g.claims = jwt.decode(token, key.key, algorithms=["RS256"], leeway=5, options={"verify_aud": False})
            except jwt.PyJWTError:
                abort(401)
            return view(*args, **kwargs)

        return wrapper

    @app.get("/api/me")
    @login_required
    def me() -> dict[str, Any]:
        return {"user_id": g.claims["sub"]}

    return app


class _AnySignature:
    """The key of the diagnostic row: its ``verify`` accepts every signature, so the row costs all but RSA."""

    def verify(self, *args: Any) -> None:
        return None


class _UncheckedKeys:
    """A key source handing out :class:`_AnySignature` (diagnostic row only; never in an app)."""

    key = _AnySignature()

    def get_key(self, kid: Any) -> Any:
        return self.key


def timed(func: Callable[[], Any]) -> Callable[[], int]:
    def run() -> int:
        start = time.perf_counter_ns()
        func()
        return time.perf_counter_ns() - start

    return run


def import_ms(statement: str, module: str, runs: int) -> float:
    """Median cumulative ``-X importtime`` of ``module`` in fresh interpreters running ``statement``.

    Measured with bytecode cached, as an installed package has it: an unmeasured first run writes it even where
    ``PYTHONDONTWRITEBYTECODE`` is set (it is on some CI images; compiling every module on every import
    would be timed instead of importing).
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    command = [sys.executable, "-X", "importtime", "-c", statement]
    subprocess.run(command, capture_output=True, env=env, check=True)
    times: list[float] = []
    for _ in range(runs):
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
        for line in done.stderr.splitlines():
            parts = [part.strip() for part in line.split("|")]
            if len(parts) == 3 and parts[2] == module:
                times.append(int(parts[1]) / 1000.0)
    return statistics.median(times)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = "n/a"
    if hasattr(os, "getloadavg"):
        load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs, {cpu}, Python {platform.python_version()}, Flask {version('flask')}, "
        f"cryptography {version('cryptography')}, load average {load}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a few hundred requests, no thresholds")
    parser.add_argument("--rounds", type=int, default=30, help="interleaved rounds (default 30)")
    parser.add_argument("--batch", type=int, default=100, help="requests per variant per round (default 100)")
    args = parser.parse_args(argv)
    rounds, batch, import_runs = (2, 25, 1) if args.smoke else (args.rounds, args.batch, 7)
    per_variant = rounds * batch

    import logging

    logging.getLogger("flask_clerk_security").setLevel(logging.ERROR)
    issuer = ClerkTestIssuer()
    print(f"signing {2 * per_variant + 1} session tokens ...", file=sys.stderr)
    pool = [issuer.session_token(azp=AZP, lifetime=3600) for _ in range(per_variant)]
    unchecked_pool = [issuer.session_token(azp=AZP, lifetime=3600) for _ in range(per_variant)]
    repeated = issuer.session_token(azp=AZP, lifetime=3600)

    with contextlib.ExitStack() as stack:
        stand_in = stack.enter_context(BackendAPIStandIn(issuer))
        clerk = clerk_app(issuer, stand_in.url)
        variants = [
            Variant("plain", "plain Flask route", wsgi_runner(plain_app(), environs("/api/me", forever(None)))),
            Variant(
                "public",
                "public route, ClerkSecurity app",
                wsgi_runner(clerk, environs("/api/public", forever(None))),
            ),
            Variant(
                "repeated",
                "protected route, one repeated token",
                wsgi_runner(clerk, environs("/api/me", forever(repeated))),
            ),
            Variant("new", "protected route, new token each request", wsgi_runner(clerk, environs("/api/me", pool))),
        ]
        # Diagnostic: the new-token row with the signature check stubbed out. The difference between the two is
        # what the RSA verify costs inside a request, where caches are cold (the floor row runs it in a tight loop).
        unchecked = clerk_app(issuer, stand_in.url)
        get_state(unchecked).authenticator.verifier.key_source = _UncheckedKeys()
        variants.append(
            Variant(
                "unchecked",
                "  same, signature check stubbed (diagnostic)",
                wsgi_runner(unchecked, environs("/api/me", iter(unchecked_pool))),
            )
        )
        warm = [wsgi_runner(app, environs("/api/me", forever(repeated))) for app in (clerk, unchecked)]
        sdk = sdk_app(issuer.public_pem)
        if sdk is not None:
            variants.append(
                Variant(
                    "sdk",
                    "clerk-backend-api authenticate_request",
                    wsgi_runner(sdk, environs("/api/me", iter(pool))),
                )
            )
        naive = naive_app(f"{stand_in.url}/v1/jwks", issuer.secret_key)
        warm.append(wsgi_runner(naive, environs("/api/me", forever(repeated))))
        variants.append(
            Variant("naive", "naive PyJWKClient + jwt.decode", wsgi_runner(naive, environs("/api/me", iter(pool))))
        )
        _, _, signing_input, signature = decode_unverified(repeated)
        public_key = issuer.private_key.public_key()
        variants.append(
            Variant(
                "floor",
                "raw RSA-2048 verify (the floor)",
                timed(lambda: public_key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())),
            )
        )
        variants.append(
            Variant(
                "pyjwt",
                "jwt.decode, key loaded (reference)",
                timed(lambda: jwt.decode(repeated, public_key, algorithms=["RS256"], options={"verify_aud": False})),
            )
        )

        user_rows = users_stand_in = None
        try:
            import clerk_backend_api  # noqa: F401
        except ImportError:
            user_rows = SKIPPED_SDK
        if user_rows is None:
            # Rows reading current_user get their own stand-ins: warm rows' calls are counted apart from the cold one.
            users_stand_in = stack.enter_context(BackendAPIStandIn(issuer, secret_key=issuer.secret_key))
            cold_stand_in = stack.enter_context(BackendAPIStandIn(issuer, secret_key=issuer.secret_key))
            for server in (users_stand_in, cold_stand_in):
                server.add_user(user_id=USER_ID, first_name="Ada")
            warm_app = user_app(issuer, users_stand_in.url, "users_memory")
            cold_app = user_app(issuer, cold_stand_in.url, "users_cold")
            variants.append(
                Variant(
                    "user_cold",
                    "current_user, cold (Backend API call)",
                    wsgi_runner(cold_app, evicting(cold_app, environs("/api/profile", forever(repeated)))),
                )
            )
            variants.append(
                Variant(
                    "user_base",
                    "  same shape, constant name (baseline)",
                    wsgi_runner(warm_app, environs("/api/profile-baseline", forever(repeated))),
                )
            )
            variants.append(
                Variant(
                    "user_warm",
                    "current_user, warm memory cache",
                    wsgi_runner(warm_app, environs("/api/profile", forever(repeated))),
                )
            )
            warm.append(wsgi_runner(warm_app, environs("/api/profile", forever(repeated))))
            warm.append(wsgi_runner(cold_app, environs("/api/profile", forever(repeated))))
            if redis_available():
                redis_prefix = f"fcs-bench:{os.getpid()}:"
                redis_app = user_app(
                    issuer,
                    users_stand_in.url,
                    "users_redis",
                    CLERK_USER_CACHE_URI=REDIS_URL,
                    CLERK_STORE_KEY_PREFIX=redis_prefix,
                )
                stack.callback(_delete_redis_keys, redis_prefix)
                variants.append(
                    Variant(
                        "user_redis",
                        "current_user, warm Redis cache",
                        wsgi_runner(redis_app, environs("/api/profile", forever(repeated))),
                    )
                )
                warm.append(wsgi_runner(redis_app, environs("/api/profile", forever(repeated))))

        # Warm-up: first requests load the JWKS, fill caches, import lazily imported modules. The pool is not
        # touched, so every "new token" request below is a cache miss.
        if sdk is not None:
            warm.append(wsgi_runner(sdk, environs("/api/me", forever(repeated))))
        for _ in range(50):
            for run in warm:
                run()
            for variant in variants:
                if variant.name in ("plain", "public", "floor", "pyjwt"):
                    variant.run()
        calls_before = len(stand_in.calls)
        users_calls_before = len(users_stand_in.calls) if users_stand_in is not None else 0
        for round_index in range(rounds):
            shift = round_index % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                run = variant.run
                variant.samples.extend(run() for _ in range(batch))
        backend_calls = len(stand_in.calls) - calls_before
        warm_user_calls = len(users_stand_in.calls) - users_calls_before if users_stand_in is not None else 0
        jwks_fetches = getattr(get_state(clerk).authenticator.verifier.key_source, "fetch_count", 0)

    by_name = {variant.name: variant for variant in variants}
    med = {name: variant.median_us for name, variant in by_name.items()}
    floor = med["floor"]
    print(f"\nflask-clerk-security benchmark: {machine()}")
    print(
        f"{per_variant} requests per row in {rounds} interleaved rounds, each timed alone through app.wsgi_app; "
        "medians in microseconds\n"
    )
    print(f"{'row':<44}{'median µs':>11}{'added µs':>11}{'x floor':>9}  added over")
    baseline = {
        "repeated": "public",
        "new": "public",
        "unchecked": "public",
        "sdk": "plain",
        "naive": "plain",
        "public": "plain",
        "user_cold": "user_base",
        "user_warm": "user_base",
        "user_redis": "user_base",
    }
    for variant in variants:
        name = variant.name
        added = ""
        floors = ""
        over = ""
        if name in baseline:
            extra = med[name] - med[baseline[name]]
            added = f"{extra:.1f}"
            floors = f"{extra / floor:.2f}"
            over = by_name[baseline[name]].label
        print(f"{variant.label:<44}{med[name]:>11.1f}{added:>11}{floors:>9}  {over}")
    if sdk is None:
        print(f"{'clerk-backend-api authenticate_request':<44}{SKIPPED_SDK:>11}")
    if user_rows is not None:
        print(f"{'current_user rows':<44}{user_rows:>11}")
    elif "user_redis" not in med:
        print(f"{'current_user, warm Redis cache':<44}{'skipped: no Redis on 127.0.0.1:6379':>11}")

    import_total = import_ms("import flask_clerk_security", "flask_clerk_security", import_runs)
    import_flask = import_ms("import flask", "flask", import_runs)
    import_own = import_ms("import flask; import flask_clerk_security", "flask_clerk_security", import_runs)
    print(
        f"\nimport flask_clerk_security: {import_total:.1f} ms (import flask alone: {import_flask:.1f} ms; "
        f"flask_clerk_security after flask: {import_own:.1f} ms); median of {import_runs} fresh interpreters"
    )
    in_request_rsa = med["new"] - med["unchecked"]
    print(
        f"RSA verify inside a request (new-token row minus its stubbed twin): {in_request_rsa:.1f} µs, "
        f"{in_request_rsa / floor:.2f} x the floor measured alone"
    )
    print(
        f"Backend API calls during the {sum(len(v.samples) for v in variants if v.name in ('repeated', 'new'))} "
        f"timed protected requests: {backend_calls} (the app fetched the JWKS {jwks_fetches} time(s), at warm-up)"
    )

    new_extra = med["new"] - med["public"]
    repeated_extra = med["repeated"] - med["public"]
    checks: list[tuple[bool, str]] = [
        (
            new_extra <= NEW_TOKEN_MAX_FLOORS * floor,
            f"new token adds {new_extra:.1f} µs <= {NEW_TOKEN_MAX_FLOORS} x floor ({NEW_TOKEN_MAX_FLOORS * floor:.1f})",
        ),
        (
            repeated_extra <= REPEATED_TOKEN_MAX_FLOORS * floor,
            f"repeated token adds {repeated_extra:.1f} µs <= {REPEATED_TOKEN_MAX_FLOORS} x floor "
            f"({REPEATED_TOKEN_MAX_FLOORS * floor:.1f})",
        ),
        (
            med["public"] <= PUBLIC_MAX_PLAIN * med["plain"],
            f"public route {med['public'] / med['plain']:.2f} x plain Flask <= {PUBLIC_MAX_PLAIN}",
        ),
    ]
    if "sdk" in med:
        # Judged on the steady-state protected request: a session's token is reused for ~50 s, and the issue's
        # own figures (public 1.6x a 40 µs route, +0.25x a 20 µs floor, vs 40+97 µs) only meet at that request.
        checks.append(
            (
                med["sdk"] >= SDK_MIN_SPEEDUP * med["repeated"],
                f"protected request (repeated token) {med['sdk'] / med['repeated']:.2f} x faster than "
                f"clerk-backend-api >= {SDK_MIN_SPEEDUP} (new token each request: {med['sdk'] / med['new']:.2f} x)",
            )
        )
    checks.append((backend_calls == 0, f"Backend API calls per request in steady state: {backend_calls} == 0"))
    if "user_warm" in med:
        user_extra = med["user_warm"] - med["user_base"]
        checks.append(
            (
                warm_user_calls == 0 and user_extra <= USER_WARM_MAX_US,
                f"current_user with a warm cache adds {user_extra:.1f} µs <= {USER_WARM_MAX_US} with "
                f"{warm_user_calls} Backend API calls (== 0)",
            )
        )
    checks.append(
        (
            import_total < IMPORT_MAX_MS,
            f"import flask_clerk_security {import_total:.1f} ms < {IMPORT_MAX_MS} (of which import flask "
            f"{import_flask:.1f} ms; the package adds {import_own:.1f} ms)",
        )
    )

    print("\ntargets" + (" (smoke run: figures only, no thresholds)" if args.smoke else ""))
    for ok, text in checks:
        print(f"  {'----' if args.smoke else 'PASS' if ok else 'FAIL'}  {text}")
    if "sdk" not in med:
        print(f"  ----  faster than clerk-backend-api: {SKIPPED_SDK}")
    return 0 if args.smoke or all(ok for ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
