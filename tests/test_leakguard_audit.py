"""Secret-leak guard and audit events (signals and the default structured-log handler)."""

from __future__ import annotations

import gzip
import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import brotli
import pytest
from blinker import NamedSignal
from flask import Flask, Response, redirect, send_file, stream_with_context
from flask_compress import Compress
from werkzeug.test import EnvironBuilder

from flask_clerk_security import ClerkSecurity, signals
from flask_clerk_security.leakguard import MAX_DECODED_BYTES, SecretLeakError, UnscannableBodyError
from flask_clerk_security.testing import ClerkTestIssuer

from .conftest import AppFactory

WEBHOOK_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MACHINE_SECRET = "ak_" + "machinesecret0123456789abcdef"


@contextmanager
def captured(signal: NamedSignal) -> Iterator[list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []

    def receiver(sender: Any, **data: Any) -> None:
        events.append({"sender": sender, **data})

    with signal.connected_to(receiver):
        yield events


def leaky_app(app_factory: AppFactory, clerk_issuer: ClerkTestIssuer, **config: Any) -> tuple[Flask, dict[str, str]]:
    secrets = {
        "CLERK_SECRET_KEY": clerk_issuer.secret_key,
        "CLERK_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "CLERK_MACHINE_SECRET_KEY": MACHINE_SECRET,
    }
    app, clerk = app_factory({**secrets, **config})
    app.config["PROPAGATE_EXCEPTIONS"] = True

    @app.get("/leak/<key>")
    @clerk.public
    def leak(key: str) -> dict[str, str]:
        return {"value": secrets[key]}

    @app.get("/leak-header")
    @clerk.public
    def leak_header() -> Response:
        return redirect(f"/next?key={clerk_issuer.secret_key}")

    @app.get("/leak-unprefixed")
    @clerk.public
    def leak_unprefixed() -> str:
        return f"<p>{clerk_issuer.secret_key.removeprefix('sk_test_')}</p>"

    @app.get("/stream")
    @clerk.public
    def stream() -> Response:
        return Response(stream_with_context(iter([secrets["CLERK_SECRET_KEY"]])))

    @app.get("/file")
    @clerk.public
    def file() -> Response:
        return send_file(__file__)

    @app.get("/clean")
    @clerk.public
    def clean() -> dict[str, str]:
        return {"masked": "sk_test_****" + clerk_issuer.secret_key[-4:]}

    return app, secrets


@pytest.mark.parametrize("key", ["CLERK_SECRET_KEY", "CLERK_WEBHOOK_SECRET", "CLERK_MACHINE_SECRET_KEY"])
def test_testing_mode_raises_naming_the_key(app_factory: AppFactory, clerk_issuer: ClerkTestIssuer, key: str) -> None:
    app, secrets = leaky_app(app_factory, clerk_issuer)
    with captured(signals.secret_leak_blocked) as events, pytest.raises(SecretLeakError) as info:
        app.test_client().get(f"/leak/{key}")
    assert info.value.key == key
    assert key in str(info.value) and secrets[key] not in str(info.value)
    assert events == [{"sender": app, "key": key, "route": f"/leak/{key}", "method": "GET"}]


def test_header_and_unprefixed_leaks(app_factory: AppFactory, clerk_issuer: ClerkTestIssuer) -> None:
    app, _ = leaky_app(app_factory, clerk_issuer)
    with pytest.raises(SecretLeakError, match="header Location contains the value of CLERK_SECRET_KEY"):
        app.test_client().get("/leak-header")
    with pytest.raises(SecretLeakError, match="body contains the value of CLERK_SECRET_KEY"):
        app.test_client().get("/leak-unprefixed")


def test_production_replaces_the_response(
    app_factory: AppFactory, clerk_issuer: ClerkTestIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    app, secrets = leaky_app(app_factory, clerk_issuer, TESTING=False)
    with caplog.at_level(logging.INFO, logger="flask_clerk_security"):
        response = app.test_client().get("/leak/CLERK_WEBHOOK_SECRET", base_url="https://localhost")
    assert response.status_code == 500
    assert response.get_json() == {"error": "internal_error"}
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Frame-Options"] == "DENY"  # headers still applied to the replacement
    assert WEBHOOK_SECRET[6:] not in response.get_data(as_text=True)
    [record] = [r for r in caplog.records if r.name == "flask_clerk_security.audit"]
    assert record.levelno == logging.CRITICAL
    assert record.clerk_audit["key"] == "CLERK_WEBHOOK_SECRET"  # type: ignore[attr-defined]
    assert record.clerk_audit["event"] == "secret-leak-blocked"  # type: ignore[attr-defined]
    for value in secrets.values():
        assert value[6:] not in caplog.text


def test_clean_streamed_and_passthrough_responses_pass(app_factory: AppFactory, clerk_issuer: ClerkTestIssuer) -> None:
    app, secrets = leaky_app(app_factory, clerk_issuer)
    client = app.test_client()
    assert client.get("/clean").status_code == 200
    # Documented limitation: streamed and send_file responses are not buffered, so not checked.
    assert client.get("/stream").get_data(as_text=True) == secrets["CLERK_SECRET_KEY"]
    assert client.get("/file").status_code == 200


def test_guard_can_be_turned_off(app_factory: AppFactory, clerk_issuer: ClerkTestIssuer) -> None:
    app, _ = leaky_app(app_factory, clerk_issuer, CLERK_LEAK_GUARD="false")
    assert app.test_client().get("/leak/CLERK_SECRET_KEY").status_code == 200


# Compressed bodies (a compression extension registered after ClerkSecurity runs before the guard)

CODINGS = ["gzip", "deflate", "br", "zstd"]


@pytest.mark.parametrize("coding", CODINGS)
def test_compressed_leak_is_caught(app_factory: AppFactory, clerk_issuer: ClerkTestIssuer, coding: str) -> None:
    app, _ = leaky_app(app_factory, clerk_issuer, COMPRESS_MIN_SIZE=0, COMPRESS_ALGORITHM=coding)
    Compress(app)
    client = app.test_client()
    with pytest.raises(SecretLeakError, match="body contains the value of CLERK_SECRET_KEY"):
        client.get("/leak/CLERK_SECRET_KEY", headers={"Accept-Encoding": coding})
    with pytest.raises(SecretLeakError, match="body contains the value of CLERK_SECRET_KEY"):
        client.get("/leak-unprefixed", headers={"Accept-Encoding": coding})
    clean = client.get("/clean", headers={"Accept-Encoding": coding})
    assert clean.status_code == 200 and clean.headers["Content-Encoding"] == coding  # compressed, and let through


@pytest.mark.parametrize("coding", CODINGS)
def test_compressed_leak_is_refused_in_production(
    app_factory: AppFactory, clerk_issuer: ClerkTestIssuer, coding: str
) -> None:
    app, _ = leaky_app(app_factory, clerk_issuer, TESTING=False, COMPRESS_MIN_SIZE=0, COMPRESS_ALGORITHM=coding)
    Compress(app)
    response = app.test_client().get(
        "/leak/CLERK_WEBHOOK_SECRET", base_url="https://localhost", headers={"Accept-Encoding": coding}
    )
    assert response.status_code == 500
    assert "Content-Encoding" not in response.headers
    assert response.get_json() == {"error": "internal_error"}


def refused_body_app(app_factory: AppFactory, clerk_issuer: ClerkTestIssuer, **config: Any) -> Flask:
    """Views that compress by hand: stacked codings, junk, an unknown coding, a body too large once decoded."""
    app, secrets = leaky_app(app_factory, clerk_issuer, **config)
    bodies = {
        "stacked": (brotli.compress(gzip.compress(secrets["CLERK_SECRET_KEY"].encode())), "gzip, br"),
        "junk": (b"\x1f\x8b not gzip at all", "gzip"),
        "truncated": (gzip.compress(secrets["CLERK_SECRET_KEY"].encode())[:-12], "gzip"),
        "unknown": (b"opaque", "x-custom"),
        "bomb": (gzip.compress(b"\0" * (MAX_DECODED_BYTES + 1), compresslevel=1), "gzip"),
        "two-members": (gzip.compress(b"ok") + gzip.compress(secrets["CLERK_SECRET_KEY"].encode()), "gzip"),
    }

    @app.get("/encoded/<name>")
    @ClerkSecurity.public
    def encoded(name: str) -> Response:
        body, coding = bodies[name]
        return Response(body, headers={"Content-Encoding": coding})

    return app


def test_undecodable_or_oversized_bodies_are_refused(app_factory: AppFactory, clerk_issuer: ClerkTestIssuer) -> None:
    app = refused_body_app(app_factory, clerk_issuer)
    client = app.test_client()
    for name in ("stacked", "two-members"):
        with pytest.raises(SecretLeakError, match="CLERK_SECRET_KEY"):
            client.get(f"/encoded/{name}")
    for name, reason in (
        ("junk", "invalid gzip data"),
        ("truncated", "truncated"),
        ("unknown", "unknown Content-Encoding 'x-custom'"),
        ("bomb", "once decoded"),
    ):
        with pytest.raises(UnscannableBodyError, match=reason):
            client.get(f"/encoded/{name}")
    production = refused_body_app(app_factory, clerk_issuer, TESTING=False)
    for name in ("stacked", "junk", "unknown", "bomb"):
        response = production.test_client().get(f"/encoded/{name}", base_url="https://localhost")
        assert (response.status_code, response.get_json()) == (500, {"error": "internal_error"}), name


# A leak inside an error handler's response (Flask swallows after_request errors while handling an error)


def error_handler_app(app_factory: AppFactory, clerk_issuer: ClerkTestIssuer) -> Flask:
    app, secrets = leaky_app(app_factory, clerk_issuer)
    app.config["PROPAGATE_EXCEPTIONS"] = False  # the 500 handler runs under testing too

    @app.get("/boom")
    @ClerkSecurity.public
    def boom() -> str:
        raise RuntimeError("boom")

    @app.errorhandler(500)
    def server_error(error: Exception) -> tuple[dict[str, str], int]:
        return {"error": "internal", "debug": secrets["CLERK_SECRET_KEY"]}, 500

    return app


def test_leak_in_an_error_handler_is_caught(app_factory: AppFactory, clerk_issuer: ClerkTestIssuer) -> None:
    app = error_handler_app(app_factory, clerk_issuer)
    with pytest.raises(SecretLeakError, match="body contains the value of CLERK_SECRET_KEY"):
        app.test_client().get("/boom")
    # What a WSGI server gets: a clean 500 status and headers, then the error again when it reads the body.
    started: list[Any] = []
    environ = EnvironBuilder("/boom").get_environ()
    body = app.wsgi_app(environ, lambda status, headers, exc_info=None: started.append((status, headers)))
    [(status, headers)] = started
    assert status.startswith("500") and clerk_issuer.secret_key[8:] not in str(headers)
    with pytest.raises(SecretLeakError):
        b"".join(body)


# Audit signals and the default handler


def audit_records(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [r.clerk_audit for r in caplog.records if r.name == "flask_clerk_security.audit"]  # type: ignore[attr-defined]


def test_authentication_failed(
    app_factory: AppFactory, clerk_issuer: ClerkTestIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    app, _ = app_factory()
    token = clerk_issuer.session_token(lifetime=-60)
    with captured(signals.authentication_failed) as events, caplog.at_level(logging.INFO):
        response = app.test_client().get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    reason = "session-token-expired-refresh-non-eligible-no-refresh-cookie"  # Clerk's request-level reason
    assert events == [{"sender": app, "reason": reason}]
    assert audit_records(caplog) == [
        {"event": "authentication-failed", "method": "GET", "route": "/api/me", "reason": reason}
    ]
    assert token not in caplog.text and token.split(".")[2] not in caplog.text


def test_authorization_denied_and_reverification(
    app_factory: AppFactory, clerk_issuer: ClerkTestIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    app, clerk = app_factory()

    @app.get("/admin")
    @clerk.require(role="admin")
    def admin() -> str:
        return "ok"

    @app.post("/transfer")
    @clerk.require(reverification="strict")
    def transfer() -> str:
        return "ok"

    client = app.test_client()
    with (
        captured(signals.authorization_denied) as denied,
        captured(signals.reverification_required) as stale,
        caplog.at_level(logging.INFO),
    ):
        assert client.get("/admin", headers=clerk_issuer.auth_header()).status_code == 403
        assert client.post("/transfer", headers=clerk_issuer.auth_header(fva=[5, 45])).status_code == 403
    who = {"sender": app, "user_id": "user_123", "session_id": "sess_123"}
    assert denied == [{**who, "requirement": {"role": "admin"}}]
    assert stale == [{**who, "level": "strict"}]
    records = audit_records(caplog)
    assert records[0]["event"] == "authorization-denied" and records[0]["user_id"] == "user_123"
    assert records[0]["route"] == "/admin" and records[0]["session_id"] == "sess_123"
    assert records[1] == {
        "event": "reverification-required", "method": "POST", "route": "/transfer",
        "user_id": "user_123", "session_id": "sess_123", "level": "strict",
    }  # fmt: skip


def test_csrf_rejected(app_factory: AppFactory, clerk_issuer: ClerkTestIssuer) -> None:
    app, _ = app_factory()
    client = app.test_client()
    for name, value in clerk_issuer.session_cookies().items():
        client.set_cookie(name, value)
    with captured(signals.csrf_rejected) as events, captured(signals.authentication_failed) as failures:
        assert client.post("/api/me", headers={"Origin": "https://evil.example"}).status_code == 403
    assert events == [{"sender": app, "origin": "https://evil.example", "reason": "csrf-origin-mismatch"}]
    assert failures == []


def test_default_handler_per_app_and_off_switch(app_factory: AppFactory, caplog: pytest.LogCaptureFixture) -> None:
    quiet, _ = app_factory({"CLERK_AUDIT_LOG": "false"})
    loud, _ = app_factory()
    with caplog.at_level(logging.INFO):
        quiet.test_client().get("/api/me")
        assert audit_records(caplog) == []
        loud.test_client().get("/api/me")
    assert [r["reason"] for r in audit_records(caplog)] == ["dev-browser-missing"]  # pk_test_: Clerk's dev flow


def test_handler_drops_fields_outside_the_allowlist(app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO), app.test_request_context("/x"):
        signals.authentication_failed.send(app, reason="token-invalid", token="eyJ.secret.sig")
    assert audit_records(caplog) == [
        {"event": "authentication-failed", "method": "GET", "route": "/x", "reason": "token-invalid"}
    ]
    assert "eyJ.secret.sig" not in caplog.text


# Log forging: request-derived values are escaped in every log line and audit record

FORGED = (
    "\n2026-12-01 CRITICAL flask_clerk_security.audit clerk audit secret-leak-blocked key=CLERK_SECRET_KEY"
    "\r\x1b[2J\u2028"
)


@contextmanager
def text_log() -> Iterator[tuple[io.StringIO, list[logging.LogRecord]]]:
    """The package's log as a plain text handler writes it, and the records behind it."""
    stream = io.StringIO()
    records: list[logging.LogRecord] = []
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    handler.addFilter(lambda record: records.append(record) or True)
    package_logger = logging.getLogger("flask_clerk_security")
    level = package_logger.level
    package_logger.addHandler(handler)
    package_logger.setLevel(logging.DEBUG)
    try:
        yield stream, records
    finally:
        package_logger.removeHandler(handler)
        package_logger.setLevel(level)


def test_request_data_cannot_forge_log_lines(app_factory: AppFactory, clerk_issuer: ClerkTestIssuer) -> None:
    app, clerk = app_factory({"CLERK_WEBHOOK_SECRET": clerk_issuer.webhook_secret})
    app.register_blueprint(clerk.webhooks)

    @app.get("/api/files/<path:name>")
    def files(name: str) -> str:
        return name

    client = app.test_client()
    with text_log() as (stream, records):
        assert client.get("/api/files/" + quote(FORGED, safe="")).status_code == 401
        signed_in = app.test_client()
        for name, value in clerk_issuer.session_cookies().items():
            signed_in.set_cookie(name, value)
        origin = "https://evil.example" + FORGED
        assert signed_in.post("/api/me", environ_overrides={"HTTP_ORIGIN": origin}).status_code == 403
        svix = {"HTTP_SVIX_ID": "msg_1" + FORGED, "HTTP_SVIX_TIMESTAMP": "1", "HTTP_SVIX_SIGNATURE": "v1,x"}
        assert client.post("/api/webhooks/clerk", data=b"{}", environ_overrides=svix).status_code in (400, 401)
    text = stream.getvalue()
    lines = text.splitlines()
    assert len(records) >= 4 and len(lines) == len(records), text  # one line per record, none started by a request
    assert all(line.split(" ", 2)[1].startswith("flask_clerk_security") for line in lines), text
    assert "\x1b" not in text and "\r" not in text and "\u2028" not in text
    assert "\\n2026-12-01 CRITICAL" in text and "\\x1b[2J" in text  # shown, escaped
    audit = [record.clerk_audit for record in records if hasattr(record, "clerk_audit")]
    assert audit and all("\n" not in str(value) for fields in audit for value in fields.values())
