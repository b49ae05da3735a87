"""Webhooks: svix verification with the real library, answers, dispatch, replay protection (memory and Redis)."""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

import pytest
import svix.webhooks
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.serving import make_server

from flask_clerk_security import ClerkSecurity, ConfigurationError, WebhookPayload, verify_webhook
from flask_clerk_security.signals import webhook_received, webhook_rejected, webhook_replayed
from flask_clerk_security.state import get_state
from flask_clerk_security.testing import ClerkTestIssuer, clerk_event, generate_webhook_secret, sign_webhook
from flask_clerk_security.webhooks import WebhookEvent

from .conftest import REDIS_URL, closed_port

URL = "/api/webhooks/clerk"


@pytest.fixture
def hook_app(
    app_factory: Callable[..., tuple[Flask, ClerkSecurity]], clerk_issuer: ClerkTestIssuer
) -> Callable[..., Any]:
    """An app with the webhook blueprint registered and the issuer's webhook secret configured."""

    def build(config: dict[str, Any] | None = None, **options: Any) -> tuple[Flask, ClerkSecurity]:
        app, clerk = app_factory({"CLERK_WEBHOOK_SECRET": clerk_issuer.webhook_secret, **(config or {})}, **options)
        app.register_blueprint(clerk.webhooks)
        return app, clerk

    return build


@contextmanager
def recording(signal: Any) -> Iterator[list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []

    def receiver(sender: Any, **data: Any) -> None:
        seen.append(data)

    signal.connect(receiver)
    try:
        yield seen
    finally:
        signal.disconnect(receiver)


def post(client: Any, signed: tuple[bytes, dict[str, str]], path: str = URL, **kwargs: Any) -> Any:
    body, headers = signed
    return client.post(path, data=body, headers=headers, **kwargs)


def test_verified_delivery_reaches_its_handler(hook_app: Any, clerk_issuer: ClerkTestIssuer) -> None:
    app, clerk = hook_app()
    events: list[WebhookEvent] = []
    clerk.webhooks.on("user.created")(events.append)
    payload = clerk_event("user.created", {"id": "user_42", "email_addresses": []})
    signed = clerk_issuer.sign_webhook(payload, msg_id="msg_abc")
    with recording(webhook_received) as received:
        response = post(app.test_client(), signed)
    assert response.status_code == 200
    assert response.get_json() == {"status": "processed"}
    [event] = events
    assert (event.id, event.type, event.data) == ("msg_abc", "user.created", {"id": "user_42", "email_addresses": []})
    assert event.payload == payload and event.raw == signed[0]
    assert event.timestamp == datetime.fromtimestamp(int(signed[1]["svix-timestamp"]), tz=timezone.utc)
    assert received == [{"event_id": "msg_abc", "event_type": "user.created"}]


def test_handlers_run_in_order_and_wildcard_sees_every_type(hook_app: Any, clerk_issuer: ClerkTestIssuer) -> None:
    app, clerk = hook_app()
    calls: list[str] = []
    clerk.webhooks.on("*")(lambda event: calls.append(f"any:{event.type}"))
    clerk.webhooks.on("user.created")(lambda event: calls.append("first"))
    clerk.webhooks.on("user.created")(lambda event: calls.append("second"))
    client = app.test_client()
    assert post(client, clerk_issuer.sign_webhook(clerk_event("user.created"))).status_code == 200
    assert post(client, clerk_issuer.sign_webhook(clerk_event("session.ended"))).status_code == 200
    assert calls == ["first", "second", "any:user.created", "any:session.ended"]


def test_async_handlers_are_awaited(hook_app: Any, clerk_issuer: ClerkTestIssuer) -> None:
    app, clerk = hook_app()
    seen: list[str] = []

    @clerk.webhooks.on("user.deleted")
    async def deleted(event: WebhookEvent) -> None:
        seen.append(event.data["id"])

    assert (
        post(app.test_client(), clerk_issuer.sign_webhook(clerk_event("user.deleted", {"id": "u1"}))).status_code == 200
    )
    assert seen == ["u1"]


def test_unknown_event_types_are_acknowledged_and_ignored(hook_app: Any, clerk_issuer: ClerkTestIssuer) -> None:
    app, clerk = hook_app()
    calls: list[WebhookEvent] = []
    clerk.webhooks.on("user.created")(calls.append)
    response = post(app.test_client(), clerk_issuer.sign_webhook(clerk_event("organization.created")))
    assert (response.status_code, response.get_json()) == (200, {"status": "ignored"})
    assert calls == []


def test_on_rejects_a_non_string_event_type(hook_app: Any) -> None:
    _, clerk = hook_app()
    with pytest.raises(TypeError, match="event type"):
        clerk.webhooks.on("")
    with pytest.raises(TypeError, match="event type"):
        clerk.webhooks.on(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("missing", ["svix-id", "svix-timestamp", "svix-signature"])
def test_missing_svix_header_is_400(hook_app: Any, clerk_issuer: ClerkTestIssuer, missing: str) -> None:
    app, clerk = hook_app()
    calls: list[WebhookEvent] = []
    clerk.webhooks.on("*")(calls.append)
    body, headers = clerk_issuer.sign_webhook(clerk_event("user.created"))
    del headers[missing]
    with recording(webhook_rejected) as rejected:
        response = app.test_client().post(URL, data=body, headers=headers)
    assert (response.status_code, response.get_json()) == (400, {"error": "missing_svix_headers"})
    assert rejected == [{"reason": "missing_headers"}] and calls == []


def test_forged_and_tampered_deliveries_get_a_generic_400(hook_app: Any, clerk_issuer: ClerkTestIssuer) -> None:
    app, clerk = hook_app()
    calls: list[WebhookEvent] = []
    clerk.webhooks.on("*")(calls.append)
    client = app.test_client()
    forged = sign_webhook(generate_webhook_secret(), clerk_event("user.created"))
    body, headers = clerk_issuer.sign_webhook(clerk_event("user.created", {"id": "user_1"}))
    tampered = (body.replace(b"user_1", b"user_2"), headers)
    other_id = (body, {**headers, "svix-id": "msg_other"})
    for signed in (forged, tampered, other_id):
        with recording(webhook_rejected) as rejected:
            response = post(client, signed)
        assert response.status_code == 400
        assert response.get_json() == {"error": "invalid_webhook"}
        assert rejected == [{"reason": "invalid_signature"}]
    assert calls == []


@pytest.mark.parametrize(("offset", "status"), [(-400, 400), (400, 400), (-240, 200), (240, 200)])
def test_timestamp_must_be_within_five_minutes(
    hook_app: Any, clerk_issuer: ClerkTestIssuer, offset: int, status: int
) -> None:
    app, clerk = hook_app()
    clerk.webhooks.on("*")(lambda event: None)
    signed = clerk_issuer.sign_webhook(clerk_event("user.created"), timestamp=time.time() + offset)
    response = post(app.test_client(), signed)
    assert response.status_code == status
    if status == 400:
        assert response.get_json() == {"error": "invalid_webhook"}


@pytest.mark.parametrize(
    "signature",
    ["v1", "v1,abc,def", "v1,***not-base64***", "garbage", "v1,", ",", "v1,Zm9v v2"],
)
def test_malformed_signatures_svix_chokes_on_are_400(
    hook_app: Any, clerk_issuer: ClerkTestIssuer, signature: str
) -> None:
    app, _ = hook_app()
    body, headers = clerk_issuer.sign_webhook(clerk_event("user.created"))
    response = app.test_client().post(URL, data=body, headers={**headers, "svix-signature": signature})
    assert (response.status_code, response.get_json()) == (400, {"error": "invalid_webhook"})


def test_svix_raises_bare_value_errors_for_these_inputs(clerk_issuer: ClerkTestIssuer) -> None:
    """Pins why the endpoint catches ValueError: the installed svix raises it, not WebhookVerificationError."""
    body, headers = clerk_issuer.sign_webhook(clerk_event("user.created"))
    with pytest.raises(ValueError) as caught:
        svix.webhooks.Webhook(clerk_issuer.webhook_secret).verify(body, {**headers, "svix-signature": "v1"})
    assert not isinstance(caught.value, svix.webhooks.WebhookVerificationError)
    assert svix.webhooks.Webhook(clerk_issuer.webhook_secret).verify(body, headers) is None


def test_non_utf8_body_is_400(hook_app: Any, clerk_issuer: ClerkTestIssuer) -> None:
    app, _ = hook_app()
    _, headers = clerk_issuer.sign_webhook(b"{}")
    response = app.test_client().post(URL, data=b"\xff\xfe{}", headers=headers)
    assert (response.status_code, response.get_json()) == (400, {"error": "invalid_webhook"})


HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
SIGNATURES = st.one_of(
    HEADER_TEXT,
    st.lists(st.builds("{},{}".format, st.sampled_from(["v1", "v1a", ""]), HEADER_TEXT), max_size=3).map(" ".join),
)
TIMESTAMPS = st.one_of(HEADER_TEXT, st.integers(-400, 400).map(lambda delta: str(int(time.time()) + delta)))


@pytest.fixture
def fuzz_client(hook_app: Any) -> Any:
    """One app for every example of a hypothesis test (function-scoped fixtures are not reset between examples)."""
    return hook_app()[0].test_client()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(signature=SIGNATURES, svix_id=HEADER_TEXT, timestamp=TIMESTAMPS, body=st.binary(max_size=64))
def test_arbitrary_deliveries_never_cause_a_5xx(
    fuzz_client: Any, signature: str, svix_id: str, timestamp: str, body: bytes
) -> None:
    headers = {"svix-id": svix_id, "svix-timestamp": timestamp, "svix-signature": signature}
    response = fuzz_client.post(URL, data=body, headers=headers)
    assert response.status_code == 400
    assert response.get_json() in ({"error": "invalid_webhook"}, {"error": "missing_svix_headers"})


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"[1, 2]", "invalid_payload"),
        (b'"user.created"', "invalid_payload"),
        (b"not json", "invalid_payload"),
        (b'{"data": {}}', "invalid_payload"),
        (b'{"type": 5}', "invalid_payload"),
        (b'{"type": "user.created", "data": [1]}', "invalid_payload"),
        (b"[" * 100_000, "invalid_payload"),
    ],
)
def test_verified_payload_that_is_not_an_event_object_is_400(
    hook_app: Any, clerk_issuer: ClerkTestIssuer, body: bytes, error: str
) -> None:
    app, clerk = hook_app()
    clerk.webhooks.on("*")(lambda event: None)
    with recording(webhook_rejected) as rejected:
        response = post(app.test_client(), clerk_issuer.sign_webhook(body))
    assert (response.status_code, response.get_json()) == (400, {"error": error})
    assert rejected == [{"reason": "invalid_payload"}]


def test_oversized_body_is_413_before_verification(
    hook_app: Any, clerk_issuer: ClerkTestIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, clerk = hook_app({"CLERK_WEBHOOK_MAX_BYTES": 1024})
    clerk.webhooks.on("*")(lambda event: None)
    verifications: list[bytes] = []
    real_verify = svix.webhooks.Webhook.verify
    monkeypatch.setattr(
        svix.webhooks.Webhook,
        "verify",
        lambda self, data, headers: verifications.append(data) or real_verify(self, data, headers),
    )
    client = app.test_client()
    big = clerk_issuer.sign_webhook(clerk_event("user.created", {"bio": "x" * 2000}))
    with recording(webhook_rejected) as rejected:
        response = post(client, big)
    assert (response.status_code, response.get_json()) == (413, {"error": "payload_too_large"})
    assert verifications == [] and rejected == [{"reason": "too_large"}]
    assert post(client, clerk_issuer.sign_webhook(clerk_event("user.created"))).status_code == 200
    assert len(verifications) == 1


def test_default_body_limit_is_one_mebibyte(hook_app: Any, clerk_issuer: ClerkTestIssuer) -> None:
    app, clerk = hook_app()
    clerk.webhooks.on("*")(lambda event: None)
    client = app.test_client()
    padding = 1024 * 1024 - len(json.dumps(clerk_event("user.created", {"bio": ""}), separators=(",", ":")))
    fits = clerk_issuer.sign_webhook(clerk_event("user.created", {"bio": "x" * padding}))
    assert len(fits[0]) == 1024 * 1024
    assert post(client, fits).status_code == 200
    over = clerk_issuer.sign_webhook(clerk_event("user.created", {"bio": "x" * (padding + 1)}))
    assert post(client, over).status_code == 413


@contextmanager
def serving(app: Flask) -> Iterator[int]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()


def post_chunked(port: int, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    """POST with Transfer-Encoding: chunked (no Content-Length) over a real socket."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest("POST", URL)
        for name, value in {**headers, "Transfer-Encoding": "chunked"}.items():
            connection.putheader(name, value)
        connection.endheaders()
        try:
            for start in range(0, len(body), 16 * 1024):
                chunk = body[start : start + 16 * 1024]
                connection.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            connection.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered 413 and stopped reading
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_chunked_bodies_are_read_bounded(hook_app: Any, clerk_issuer: ClerkTestIssuer) -> None:
    app, clerk = hook_app({"CLERK_WEBHOOK_MAX_BYTES": 4096})
    events: list[WebhookEvent] = []
    clerk.webhooks.on("*")(events.append)
    with serving(app) as port:
        body, headers = clerk_issuer.sign_webhook(clerk_event("user.created", {"bio": "x" * 200_000}))
        status, content = post_chunked(port, body, headers)
        assert (status, json.loads(content)) == (413, {"error": "payload_too_large"})
        body, headers = clerk_issuer.sign_webhook(clerk_event("user.created", {"bio": "small"}))
        status, content = post_chunked(port, body, headers)
        assert (status, json.loads(content)) == (200, {"status": "processed"})
    assert [event.data for event in events] == [{"bio": "small"}]


def test_handler_failure_is_500_and_the_delivery_is_not_marked_processed(
    hook_app: Any, clerk_issuer: ClerkTestIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    app, clerk = hook_app()
    attempts: list[str] = []

    @clerk.webhooks.on("user.created")
    def flaky(event: WebhookEvent) -> None:
        attempts.append(event.id)
        if len(attempts) == 1:
            raise RuntimeError("database unavailable")

    client = app.test_client()
    signed = clerk_issuer.sign_webhook(clerk_event("user.created"))
    with caplog.at_level(logging.ERROR, logger="flask_clerk_security"):
        failed = post(client, signed)
    assert (failed.status_code, failed.get_json()) == (500, {"error": "internal_error"})
    assert b"database unavailable" not in failed.data and b"Traceback" not in failed.data
    assert "webhook handler failed" in caplog.text
    retried = post(client, signed)  # Svix retries the same svix-id
    assert (retried.status_code, retried.get_json()) == (200, {"status": "processed"})
    assert post(client, signed).get_json() == {"status": "duplicate"}
    assert len(attempts) == 2


def test_replays_are_acknowledged_without_running_handlers(hook_app: Any, clerk_issuer: ClerkTestIssuer) -> None:
    app, clerk = hook_app()
    calls: list[str] = []
    clerk.webhooks.on("user.created")(lambda event: calls.append(event.id))
    client = app.test_client()
    signed = clerk_issuer.sign_webhook(clerk_event("user.created"), msg_id="msg_replayed")
    assert post(client, signed).get_json() == {"status": "processed"}
    with recording(webhook_replayed) as replayed:
        again = post(client, signed)
    assert (again.status_code, again.get_json()) == (200, {"status": "duplicate"})
    assert replayed == [{"event_id": "msg_replayed"}]
    # a re-signed copy (a later Svix retry, fresh timestamp) is still the same message
    resigned = clerk_issuer.sign_webhook(clerk_event("user.created"), msg_id="msg_replayed", timestamp=time.time() + 5)
    assert post(client, resigned).get_json() == {"status": "duplicate"}
    assert calls == ["msg_replayed"]


def test_concurrent_delivery_of_one_id_runs_handlers_once(hook_app: Any, clerk_issuer: ClerkTestIssuer) -> None:
    app, clerk = hook_app()
    started, release = threading.Event(), threading.Event()
    calls: list[str] = []

    @clerk.webhooks.on("user.created")
    def slow(event: WebhookEvent) -> None:
        calls.append(event.id)
        started.set()
        release.wait(10)

    signed = clerk_issuer.sign_webhook(clerk_event("user.created"))
    results: list[Any] = []
    first = threading.Thread(target=lambda: results.append(post(app.test_client(), signed)))
    first.start()
    assert started.wait(10)
    concurrent = post(app.test_client(), signed)
    release.set()
    first.join(10)
    assert (concurrent.status_code, concurrent.get_json()) == (409, {"error": "webhook_in_progress"})
    assert int(concurrent.headers["Retry-After"]) >= 5  # flask-limiter may raise it to its window's reset
    assert results[0].get_json() == {"status": "processed"}
    assert post(app.test_client(), signed).get_json() == {"status": "duplicate"}
    assert calls == [signed[1]["svix-id"]]


def test_replay_ttl_below_the_signature_window_is_refused(app_factory: Any, clerk_issuer: ClerkTestIssuer) -> None:
    with pytest.raises(ConfigurationError, match=r"CLERK_WEBHOOK_REPLAY_TTL.*600"):
        app_factory({"CLERK_WEBHOOK_SECRET": clerk_issuer.webhook_secret, "CLERK_WEBHOOK_REPLAY_TTL": 300})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("CLERK_WEBHOOK_MAX_BYTES", 0),
        ("CLERK_WEBHOOK_MAX_BYTES", "lots"),
        ("CLERK_WEBHOOK_RATE_LIMIT", "banana"),
        ("CLERK_WEBHOOK_STORE_URI", "ftp://example.com"),
    ],
)
def test_bad_webhook_settings_fail_at_init_app(app_factory: Any, key: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=key):
        app_factory({key: value})


def test_missing_secret_warns_at_registration_and_answers_a_generic_500(
    app_factory: Any, clerk_issuer: ClerkTestIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    app, clerk = app_factory()
    calls: list[WebhookEvent] = []
    clerk.webhooks.on("*")(calls.append)
    with caplog.at_level(logging.WARNING, logger="flask_clerk_security"):
        app.register_blueprint(clerk.webhooks)
    assert "CLERK_WEBHOOK_SIGNING_SECRET" in caplog.text and "is not set" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="flask_clerk_security"), recording(webhook_rejected) as rejected:
        response = post(app.test_client(), clerk_issuer.sign_webhook(clerk_event("user.created")))
    assert (response.status_code, response.get_json()) == (500, {"error": "internal_error"})
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1 and "CLERK_WEBHOOK_SECRET" in errors[0].getMessage()
    assert rejected == [{"reason": "not_configured"}] and calls == []


def test_registration_before_init_app_still_warns(
    clerk_issuer: ClerkTestIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    clerk = ClerkSecurity()
    app = Flask("late_init")
    app.config.update(clerk_issuer.config)
    app.register_blueprint(clerk.webhooks)
    with caplog.at_level(logging.WARNING, logger="flask_clerk_security"):
        clerk.init_app(app)
    assert "CLERK_WEBHOOK_SIGNING_SECRET" in caplog.text and "is not set" in caplog.text


def test_webhook_secret_is_validated_and_never_echoed(app_factory: Any) -> None:
    with pytest.raises(ConfigurationError, match="CLERK_WEBHOOK_SECRET") as caught:
        app_factory({"CLERK_WEBHOOK_SECRET": "whsec_not base64!!secretpart"})
    assert "secretpart" not in str(caught.value)


def test_url_prefix_is_overridable(app_factory: Any, clerk_issuer: ClerkTestIssuer) -> None:
    app, clerk = app_factory({"CLERK_WEBHOOK_SECRET": clerk_issuer.webhook_secret})
    app.register_blueprint(clerk.webhooks, url_prefix="/hooks/clerk")
    clerk.webhooks.on("*")(lambda event: None)
    client = app.test_client()
    assert post(client, clerk_issuer.sign_webhook(clerk_event("user.created")), path="/hooks/clerk").status_code == 200
    assert post(client, clerk_issuer.sign_webhook(clerk_event("user.created"))).status_code in (401, 404)


def test_one_blueprint_serves_two_apps_with_their_own_secrets(clerk_issuer: ClerkTestIssuer) -> None:
    clerk = ClerkSecurity()
    seen: list[tuple[str, str]] = []
    clerk.webhooks.on("*")(lambda event: seen.append((event.id, event.type)))
    secrets = {"a": generate_webhook_secret(), "b": generate_webhook_secret()}
    clients = {}
    for name, secret in secrets.items():
        app = Flask(f"app_{name}")
        app.config.update(clerk_issuer.config, TESTING=True, CLERK_WEBHOOK_SECRET=secret)
        clerk.init_app(app)
        app.register_blueprint(clerk.webhooks)
        clients[name] = app.test_client()
    for_a = sign_webhook(secrets["a"], clerk_event("user.created"), msg_id="msg_a")
    assert post(clients["a"], for_a).status_code == 200
    assert post(clients["b"], for_a).status_code == 400
    for_b = sign_webhook(secrets["b"], clerk_event("user.updated"), msg_id="msg_b")
    assert post(clients["b"], for_b).status_code == 200
    assert seen == [("msg_a", "user.created"), ("msg_b", "user.updated")]


# --- Redis replay store -------------------------------------------------------------------------------------------


def redis_config(clerk_issuer: ClerkTestIssuer, prefix: str, secret: str | None = None) -> dict[str, Any]:
    return {
        "CLERK_WEBHOOK_SECRET": secret or clerk_issuer.webhook_secret,
        "CLERK_WEBHOOK_STORE_URI": REDIS_URL,
        "CLERK_STORE_KEY_PREFIX": prefix,
    }


@pytest.mark.redis
def test_redis_replay_memory_is_shared_between_app_instances(
    hook_app: Any, clerk_issuer: ClerkTestIssuer, redis_client: Any, redis_prefix: str
) -> None:
    calls: list[str] = []
    apps = []
    for _ in range(2):  # two ClerkSecurity instances, two Redis connections: as two worker processes would have
        app, clerk = hook_app(redis_config(clerk_issuer, redis_prefix))
        clerk.webhooks.on("user.created")(lambda event: calls.append(event.id))
        apps.append(app)
    signed = clerk_issuer.sign_webhook(clerk_event("user.created"), msg_id="msg_shared")
    assert post(apps[0].test_client(), signed).get_json() == {"status": "processed"}
    assert post(apps[1].test_client(), signed).get_json() == {"status": "duplicate"}
    assert calls == ["msg_shared"]
    [key] = list(redis_client.scan_iter(match=f"{redis_prefix}webhook:*"))
    assert key.decode().endswith(":msg_shared") and redis_client.get(key) == b"done"
    assert 86_000 < redis_client.pttl(key) / 1000 <= 86_400


@pytest.mark.redis
def test_redis_claims_are_namespaced_per_endpoint_secret(
    hook_app: Any, clerk_issuer: ClerkTestIssuer, redis_client: Any, redis_prefix: str
) -> None:
    """Svix sends one message id to every subscribed endpoint: two apps sharing Redis must each process it."""
    calls: list[str] = []
    secrets = [generate_webhook_secret(), generate_webhook_secret()]
    clients = []
    for index, secret in enumerate(secrets):
        app, clerk = hook_app(redis_config(clerk_issuer, redis_prefix, secret))
        clerk.webhooks.on("user.created")(lambda event, index=index: calls.append(f"{index}:{event.id}"))
        clients.append(app.test_client())
    for client, secret in zip(clients, secrets, strict=True):
        assert post(client, sign_webhook(secret, clerk_event("user.created"), msg_id="msg_fanout")).status_code == 200
    assert calls == ["0:msg_fanout", "1:msg_fanout"]


@pytest.mark.redis
def test_redis_claim_is_released_when_a_handler_fails(
    hook_app: Any, clerk_issuer: ClerkTestIssuer, redis_client: Any, redis_prefix: str
) -> None:
    app, clerk = hook_app(redis_config(clerk_issuer, redis_prefix))

    @clerk.webhooks.on("user.created")
    def broken(event: WebhookEvent) -> None:
        assert redis_client.get(
            f"{redis_prefix}{app.extensions['clerk_security'].webhooks.namespace}{event.id}"
        ).startswith(b"processing:")
        raise RuntimeError("boom")

    assert post(app.test_client(), clerk_issuer.sign_webhook(clerk_event("user.created"))).status_code == 500
    assert list(redis_client.scan_iter(match=f"{redis_prefix}*")) == []


def test_replay_store_down_is_503_and_handlers_do_not_run(
    hook_app: Any, clerk_issuer: ClerkTestIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    app, clerk = hook_app({"CLERK_WEBHOOK_STORE_URI": f"redis://127.0.0.1:{closed_port()}/0"})
    calls: list[str] = []
    clerk.webhooks.on("user.created")(lambda event: calls.append(event.id))
    with caplog.at_level(logging.ERROR, logger="flask_clerk_security"):
        response = post(app.test_client(), clerk_issuer.sign_webhook(clerk_event("user.created")))
    assert (response.status_code, response.get_json()) == (503, {"error": "webhook_store_unavailable"})
    assert int(response.headers["Retry-After"]) >= 30
    # The outage is logged once by the store's breaker (per delivery only at DEBUG, see test_redis_outages.py).
    assert "webhook replay store: Redis unavailable" in caplog.text and calls == []


def test_rate_limit_storage_redis_is_the_default_replay_store(app_factory: Any, clerk_issuer: ClerkTestIssuer) -> None:
    app, _ = app_factory(
        {"CLERK_WEBHOOK_SECRET": clerk_issuer.webhook_secret, "CLERK_RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/3"}
    )
    settings_ = app.extensions["clerk_security"].settings
    assert settings_.webhook_store_uri.reveal() == "redis://127.0.0.1:6379/3"
    with pytest.raises(ConfigurationError, match="CLERK_WEBHOOK_STORE_URI"):
        app_factory(
            {
                "CLERK_WEBHOOK_SECRET": clerk_issuer.webhook_secret,
                "CLERK_RATELIMIT_STORAGE_URI": "memcached://localhost",
            }
        )


# -- Clerk's names: CLERK_WEBHOOK_SIGNING_SECRET, verify_webhook, typed payloads -----------------------------------


def test_clerks_signing_secret_name_and_its_alias(app_factory: Any, clerk_issuer: ClerkTestIssuer) -> None:
    secret = clerk_issuer.webhook_secret
    for config in (
        {"CLERK_WEBHOOK_SIGNING_SECRET": secret},
        {"CLERK_WEBHOOK_SECRET": secret},
        {"CLERK_WEBHOOK_SIGNING_SECRET": secret, "CLERK_WEBHOOK_SECRET": secret},
    ):
        app, clerk = app_factory(config)
        app.register_blueprint(clerk.webhooks)
        clerk.webhooks.on("user.created")(lambda event: None)
        response = post(app.test_client(), clerk_issuer.sign_webhook(clerk_event("user.created")))
        assert response.get_json() == {"status": "processed"}, config
    app, _ = app_factory(webhook_signing_secret=secret)
    assert get_state(app).settings.webhook_secret is not None
    other = generate_webhook_secret()
    with pytest.raises(ConfigurationError, match="CLERK_WEBHOOK_SIGNING_SECRET and CLERK_WEBHOOK_SECRET") as caught:
        app_factory({"CLERK_WEBHOOK_SIGNING_SECRET": secret, "CLERK_WEBHOOK_SECRET": other})
    assert secret[10:-4] not in str(caught.value) and other[10:-4] not in str(caught.value)
    with pytest.raises(ConfigurationError, match="CLERK_WEBHOOK_SIGNING_SECRET is malformed"):
        app_factory({"CLERK_WEBHOOK_SIGNING_SECRET": "whsec_not base64!!"})


def _own_view_app(app_factory: Any, config: dict[str, Any], **kwargs: Any) -> Flask:
    app, clerk = app_factory(config)

    @app.post("/hooks/clerk")
    @clerk.public
    def hook() -> dict[str, Any]:
        event = verify_webhook(**kwargs)
        return {"id": event.id, "type": event.type, "data": event.data}

    return app


def test_verify_webhook_in_a_view_of_your_own(app_factory: Any, clerk_issuer: ClerkTestIssuer) -> None:
    """Clerk's verifyWebhook: the verified event, or a refusal; no replay record (a redelivery verifies again)."""
    app = _own_view_app(app_factory, {"CLERK_WEBHOOK_SIGNING_SECRET": clerk_issuer.webhook_secret})
    client = app.test_client()
    signed = clerk_issuer.sign_webhook(clerk_event("user.created", {"id": "user_7"}), msg_id="msg_own")
    for _ in range(2):
        response = post(client, signed, "/hooks/clerk")
        assert response.get_json() == {"id": "msg_own", "type": "user.created", "data": {"id": "user_7"}}
    body, headers = signed
    padded = {name: f"  {value} " for name, value in headers.items()}  # Clerk trims the svix headers
    assert client.post("/hooks/clerk", data=body, headers=padded).status_code == 200
    with recording(webhook_rejected) as rejected:
        missing = client.post("/hooks/clerk", data=body, headers={"svix-id": headers["svix-id"]})
        forged = post(client, sign_webhook(generate_webhook_secret(), clerk_event("user.created")), "/hooks/clerk")
        not_object = post(client, clerk_issuer.sign_webhook("[1]"), "/hooks/clerk")
    assert (missing.status_code, missing.get_json()) == (400, {"error": "missing_svix_headers"})
    assert (forged.status_code, forged.get_json()) == (400, {"error": "invalid_webhook"})
    assert (not_object.status_code, not_object.get_json()) == (400, {"error": "invalid_payload"})
    assert rejected == [{"reason": "missing_headers"}, {"reason": "invalid_signature"}, {"reason": "invalid_payload"}]


def test_verify_webhook_takes_the_request_by_its_documented_name(
    app_factory: Any, clerk_issuer: ClerkTestIssuer
) -> None:
    """docs/api.md and docs/webhooks.md: ``verify_webhook(request=None, *, signing_secret=None)``."""
    from flask import request

    app = _own_view_app(app_factory, {"CLERK_WEBHOOK_SIGNING_SECRET": clerk_issuer.webhook_secret}, request=request)
    signed = clerk_issuer.sign_webhook(clerk_event("user.created", {"id": "user_7"}))
    assert post(app.test_client(), signed, "/hooks/clerk").get_json()["type"] == "user.created"


def test_verify_webhook_secret_sources(
    app_factory: Any, clerk_issuer: ClerkTestIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = clerk_issuer.webhook_secret
    signed = clerk_issuer.sign_webhook(clerk_event("session.created"))
    given = _own_view_app(app_factory, {}, signing_secret=secret)  # Clerk's signingSecret option
    assert post(given.test_client(), signed, "/hooks/clerk").status_code == 200
    configured = {"CLERK_WEBHOOK_SIGNING_SECRET": secret}
    wrong = _own_view_app(app_factory, configured, signing_secret=generate_webhook_secret())
    assert post(wrong.test_client(), signed, "/hooks/clerk").status_code == 400  # the argument wins
    unset = _own_view_app(app_factory, {})
    assert post(unset.test_client(), signed, "/hooks/clerk").status_code == 500
    monkeypatch.setenv("CLERK_WEBHOOK_SIGNING_SECRET", secret)
    bare = Flask("bare")  # no extension at all: the environment, as Clerk reads it

    @bare.post("/hooks/clerk")
    def hook() -> dict[str, str]:
        return {"type": verify_webhook().type}

    assert post(bare.test_client(), signed, "/hooks/clerk").get_json() == {"type": "session.created"}
    too_big = clerk_issuer.sign_webhook(clerk_event("user.created", {"pad": "x" * 1_100_000}))
    assert post(bare.test_client(), too_big, "/hooks/clerk").status_code == 413


def test_typed_payload_is_the_payload(hook_app: Any, clerk_issuer: ClerkTestIssuer) -> None:
    app, clerk = hook_app()
    seen: list[WebhookPayload] = []
    clerk.webhooks.on("user.deleted")(lambda event: seen.append(event.typed_payload))
    payload = clerk_event("user.deleted", {"object": "user", "id": "user_1", "deleted": True})
    post(app.test_client(), clerk_issuer.sign_webhook(payload))
    [typed] = seen
    assert typed == payload
    if typed["type"] == "user.deleted":  # narrows the union for a type checker: data is a DeletedObjectJSON
        assert typed["data"]["deleted"] is True
