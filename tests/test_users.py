"""current_user, clerk.backend, @clerk.user_loader and get_token() through Clerk's real SDK, over real HTTP,
against the test kit's Backend API stand-in (outages with its fail_status/hang knobs, svix-signed webhooks)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from clerk_backend_api import Clerk, models
from flask import Flask, render_template_string

from flask_clerk_security import ClerkSecurity, ConfigurationError, current_user, get_token
from flask_clerk_security.testing import BackendAPIStandIn, ClerkTestIssuer, clerk_event, sign_webhook

UserApp = Callable[..., tuple[Flask, ClerkSecurity]]
USER = "user_ada"
USER_PATH = f"/v1/users/{USER}"


@pytest.fixture
def make_app(clerk_issuer: ClerkTestIssuer, clerk_backend_api: BackendAPIStandIn) -> UserApp:
    """An app whose Backend API is the stand-in, with views reading current_user and get_token()."""

    def build(**config: Any) -> tuple[Flask, ClerkSecurity]:
        app = Flask("users_app")
        app.config.update(
            TESTING=True,
            CLERK_SECRET_KEY=clerk_issuer.secret_key,
            CLERK_API_URL=clerk_backend_api.url,
            CLERK_WEBHOOK_SECRET=clerk_issuer.webhook_secret,
            CLERK_HTTP_TIMEOUT=1.0,
            **clerk_issuer.config,
        )
        app.config.update(config)
        clerk = ClerkSecurity(app, accepts_token=["session_token", "api_key"])
        app.register_blueprint(clerk.webhooks)

        @app.get("/me")
        def me() -> dict[str, Any]:
            user = current_user._get_current_object()
            return {"first_name": user.first_name if user else None, "same": current_user._get_current_object() is user}

        @app.get("/page")
        @clerk.public
        def page() -> str:
            return render_template_string(
                "{% if current_user %}Hello {{ current_user.first_name }}{% else %}Hi{% endif %}"
            )

        @app.get("/token/<template>")
        def token(template: str) -> dict[str, str]:
            return {"jwt": get_token(template=template)}

        return app, clerk

    return build


def bearer(issuer: ClerkTestIssuer, **claims: Any) -> dict[str, str]:
    return issuer.auth_header(user_id=USER, **claims)


def test_clerk_backend_is_the_official_sdk_aimed_at_clerk_api_url(
    make_app: UserApp, clerk_backend_api: BackendAPIStandIn
) -> None:
    app, clerk = make_app()
    clerk_backend_api.add_user(user_id=USER, first_name="Ada")
    org = clerk_backend_api.add_organization(name="Acme")
    clerk_backend_api.add_membership(org["id"], USER, role="org:admin")
    with app.app_context():
        backend = clerk.backend
        assert isinstance(backend, Clerk)
        assert clerk.backend is backend  # one client per app
        user = backend.users.get(user_id=USER)
        assert isinstance(user, models.User) and user.first_name == "Ada"
        assert backend.organizations.get(organization_id=org["slug"]).name == "Acme"
        memberships = backend.users.get_organization_memberships(user_id=USER)
        assert [m.role for m in memberships.data] == ["org:admin"]
        assert backend.organization_memberships.list(organization_id=org["id"]).total_count == 1
    assert clerk_backend_api.count("GET", USER_PATH) == 1


def test_clerk_backend_keeps_the_total_deadline_and_does_not_retry(
    make_app: UserApp, clerk_backend_api: BackendAPIStandIn
) -> None:
    import httpx

    app, clerk = make_app(CLERK_HTTP_TIMEOUT=0.5)
    clerk_backend_api.hang = True
    with app.app_context():
        started = time.monotonic()
        with pytest.raises(httpx.TimeoutException):
            clerk.backend.users.get(user_id=USER)
        assert time.monotonic() - started < 2.0
    clerk_backend_api.hang = False
    clerk_backend_api.fail_status = 500
    with app.app_context(), pytest.raises(models.ClerkBaseError):
        clerk.backend.users.get(user_id=USER)
    assert clerk_backend_api.count("GET", USER_PATH) == 2  # one per call: no retries (the SDK's default retries)


def test_without_the_extra_clerk_backend_names_the_install_command(
    make_app: UserApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, clerk = make_app()
    monkeypatch.setitem(sys.modules, "clerk_backend_api", None)  # as if the package were not installed
    with app.app_context(), pytest.raises(ConfigurationError, match=r"pip install 'flask-clerk-security\[backend\]'"):
        clerk.backend  # noqa: B018


@pytest.mark.parametrize(
    ("key", "value"),
    [("CLERK_USER_CACHE_URI", "memcached://localhost"), ("CLERK_USER_CACHE_TTL", "-1"), ("CLERK_USER_CACHE_SIZE", "0")],
)
def test_bad_user_cache_settings_fail_at_init_naming_the_key(make_app: UserApp, key: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=key):
        make_app(**{key: value})


def test_current_user_is_the_sdk_user_memoized_per_request_and_cached_across_requests(
    make_app: UserApp, clerk_issuer: ClerkTestIssuer, clerk_backend_api: BackendAPIStandIn
) -> None:
    app, _ = make_app()
    clerk_backend_api.add_user(user_id=USER, first_name="Ada")
    client = app.test_client()
    for _ in range(3):
        response = client.get("/me", headers=bearer(clerk_issuer))
        assert response.status_code == 200
        assert response.json == {"first_name": "Ada", "same": True}
    assert clerk_backend_api.count("GET", USER_PATH) == 1
    with app.test_request_context(headers=bearer(clerk_issuer)):
        assert isinstance(current_user._get_current_object(), models.User)


def test_current_user_is_none_when_signed_out_or_for_a_machine_token(
    make_app: UserApp, clerk_issuer: ClerkTestIssuer, clerk_backend_api: BackendAPIStandIn
) -> None:
    app, _ = make_app()
    clerk_backend_api.add_user(user_id=USER)
    client = app.test_client()
    assert client.get("/page").data == b"Hi"
    api_key = clerk_backend_api.mint_api_key(subject=USER)
    response = client.get("/me", headers={"Authorization": f"Bearer {api_key}"})
    assert response.json == {"first_name": None, "same": True}
    assert clerk_backend_api.count("GET", USER_PATH) == 0


def test_current_user_in_every_template(
    make_app: UserApp, clerk_issuer: ClerkTestIssuer, clerk_backend_api: BackendAPIStandIn
) -> None:
    app, _ = make_app()
    clerk_backend_api.add_user(user_id=USER, first_name="Grace")
    assert app.test_client().get("/page", headers=bearer(clerk_issuer)).data == b"Hello Grace"


def test_ttl_expiry_refetches(
    make_app: UserApp, clerk_issuer: ClerkTestIssuer, clerk_backend_api: BackendAPIStandIn
) -> None:
    app, _ = make_app(CLERK_USER_CACHE_TTL=1.0)
    clerk_backend_api.add_user(user_id=USER, first_name="Ada")
    client = app.test_client()
    client.get("/me", headers=bearer(clerk_issuer))
    clerk_backend_api.update_user(USER, first_name="Augusta")
    assert client.get("/me", headers=bearer(clerk_issuer)).json["first_name"] == "Ada"
    time.sleep(1.05)
    assert client.get("/me", headers=bearer(clerk_issuer)).json["first_name"] == "Augusta"
    assert clerk_backend_api.count("GET", USER_PATH) == 2


def test_outage_serves_a_cached_user_within_bounded_staleness_then_503(
    make_app: UserApp, clerk_issuer: ClerkTestIssuer, clerk_backend_api: BackendAPIStandIn
) -> None:
    app, _ = make_app(CLERK_USER_CACHE_TTL=0.1, CLERK_USER_CACHE_MAX_STALE=1.0, CLERK_HTTP_TIMEOUT=0.3)
    clerk_backend_api.add_user(user_id=USER, first_name="Ada")
    client = app.test_client()
    assert client.get("/me", headers=bearer(clerk_issuer)).status_code == 200
    time.sleep(0.15)  # past the TTL: the next request tries the Backend API
    clerk_backend_api.hang = True
    response = client.get("/me", headers=bearer(clerk_issuer))
    assert response.status_code == 200 and response.json["first_name"] == "Ada"
    clerk_backend_api.hang = False
    clerk_backend_api.fail_status = 503
    assert client.get("/me", headers=bearer(clerk_issuer)).json["first_name"] == "Ada"
    time.sleep(1.0)  # past TTL + max stale
    response = client.get("/me", headers=bearer(clerk_issuer))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json == {"error": "auth_unavailable"}


def test_outage_with_nothing_cached_is_503_with_retry_after(
    make_app: UserApp, clerk_issuer: ClerkTestIssuer, clerk_backend_api: BackendAPIStandIn
) -> None:
    app, _ = make_app(CLERK_HTTP_TIMEOUT=0.3)
    client = app.test_client()
    for knob in ("fail_status", "hang"):
        setattr(clerk_backend_api, knob, 500 if knob == "fail_status" else True)
        response = client.get("/me", headers=bearer(clerk_issuer))
        assert response.status_code == 503, knob
        assert response.headers["Retry-After"] == "5"
        setattr(clerk_backend_api, knob, None if knob == "fail_status" else False)


def test_a_user_deleted_in_clerk_reads_as_none(
    make_app: UserApp, clerk_issuer: ClerkTestIssuer, clerk_backend_api: BackendAPIStandIn
) -> None:
    app, _ = make_app()
    assert app.test_client().get("/me", headers=bearer(clerk_issuer)).json == {"first_name": None, "same": True}


def _deliver(app: Flask, issuer: ClerkTestIssuer, event_type: str, data: dict[str, Any]) -> Any:
    body, headers = sign_webhook(issuer.webhook_secret, clerk_event(event_type, data))
    return app.test_client().post("/api/webhooks/clerk", data=body, headers=headers)


@pytest.mark.parametrize("event_type", ["user.updated", "user.deleted"])
def test_webhook_invalidates_the_cache_before_the_apps_handlers_run(
    event_type: str, make_app: UserApp, clerk_issuer: ClerkTestIssuer, clerk_backend_api: BackendAPIStandIn
) -> None:
    app, clerk = make_app()
    clerk_backend_api.add_user(user_id=USER, first_name="Ada")
    client = app.test_client()
    assert client.get("/me", headers=bearer(clerk_issuer)).json["first_name"] == "Ada"
    seen: list[Any] = []

    @clerk.webhooks.on(event_type)
    def handler(event: Any) -> None:
        # The app's handler already sees Clerk's current user: the cache was dropped before it ran.
        with app.test_request_context(headers=bearer(clerk_issuer)):
            user = current_user._get_current_object()
            seen.append(user.first_name if user else None)

    if event_type == "user.updated":
        clerk_backend_api.update_user(USER, first_name="Augusta")
        expected = "Augusta"
    else:
        clerk_backend_api.delete_user(USER)
        expected = None
    assert _deliver(app, clerk_issuer, event_type, {"id": USER}).status_code == 200
    assert seen == [expected]
    assert client.get("/me", headers=bearer(clerk_issuer)).json["first_name"] == expected


@pytest.mark.parametrize("redis_cache", [False, True], ids=["memory", "redis"])
def test_a_fetch_under_way_when_the_webhook_lands_is_not_cached(
    redis_cache: bool,
    make_app: UserApp,
    clerk_issuer: ClerkTestIssuer,
    clerk_backend_api: BackendAPIStandIn,
    request: pytest.FixtureRequest,
) -> None:
    import threading

    config = {}
    if redis_cache:
        prefix = request.getfixturevalue("redis_prefix")
        config = {"CLERK_USER_CACHE_URI": "redis://127.0.0.1:6379/0", "CLERK_STORE_KEY_PREFIX": prefix}
    app, _ = make_app(**config)
    clerk_backend_api.add_user(user_id=USER, first_name="Ada")
    clerk_backend_api.delay = 0.6  # the fetch below is still under way when the webhook arrives
    slow = threading.Thread(target=lambda: app.test_client().get("/me", headers=bearer(clerk_issuer)))
    slow.start()
    time.sleep(0.2)
    assert _deliver(app, clerk_issuer, "user.updated", {"id": USER}).status_code == 200
    slow.join(5)
    clerk_backend_api.delay = 0
    app.test_client().get("/me", headers=bearer(clerk_issuer))
    assert clerk_backend_api.count("GET", USER_PATH) == 2  # the answer that raced the invalidation was not kept


def test_webhook_with_a_bad_signature_does_not_invalidate(
    make_app: UserApp, clerk_issuer: ClerkTestIssuer, clerk_backend_api: BackendAPIStandIn
) -> None:
    app, _ = make_app()
    clerk_backend_api.add_user(user_id=USER, first_name="Ada")
    client = app.test_client()
    client.get("/me", headers=bearer(clerk_issuer))
    body, headers = sign_webhook("whsec_" + "A" * 32, clerk_event("user.updated", {"id": USER}))
    assert client.post("/api/webhooks/clerk", data=body, headers=headers).status_code == 400
    client.get("/me", headers=bearer(clerk_issuer))
    assert clerk_backend_api.count("GET", USER_PATH) == 1


@pytest.mark.redis
def test_redis_cache_is_shared_between_apps_and_invalidated_for_all(
    make_app: UserApp,
    clerk_issuer: ClerkTestIssuer,
    clerk_backend_api: BackendAPIStandIn,
    redis_client: Any,
    redis_prefix: str,
) -> None:
    config = {"CLERK_USER_CACHE_URI": "redis://127.0.0.1:6379/0", "CLERK_STORE_KEY_PREFIX": redis_prefix}
    first, _ = make_app(**config)
    second, _ = make_app(**config)  # another process, as far as the cache can tell
    clerk_backend_api.add_user(user_id=USER, first_name="Ada", public_metadata={"plan": "pro"})
    assert first.test_client().get("/me", headers=bearer(clerk_issuer)).json["first_name"] == "Ada"
    assert second.test_client().get("/me", headers=bearer(clerk_issuer)).json["first_name"] == "Ada"
    assert clerk_backend_api.count("GET", USER_PATH) == 1
    keys = [key.decode() for key in redis_client.scan_iter(match=f"{redis_prefix}*")]
    assert len(keys) == 1 and keys[0].startswith(f"{redis_prefix}user:") and keys[0].endswith(f":{USER}")
    stored = redis_client.get(keys[0]).decode().partition(" ")[2]
    assert models.User.model_validate_json(stored).public_metadata == {"plan": "pro"}  # the SDK's own JSON
    clerk_backend_api.update_user(USER, first_name="Augusta")
    assert _deliver(first, clerk_issuer, "user.updated", {"id": USER}).status_code == 200
    assert second.test_client().get("/me", headers=bearer(clerk_issuer)).json["first_name"] == "Augusta"


def test_redis_down_still_serves_the_user_and_a_webhook_answers_503(
    make_app: UserApp, clerk_issuer: ClerkTestIssuer, clerk_backend_api: BackendAPIStandIn
) -> None:
    from tests.conftest import closed_port

    app, _ = make_app(CLERK_USER_CACHE_URI=f"redis://127.0.0.1:{closed_port()}/0")
    clerk_backend_api.add_user(user_id=USER, first_name="Ada")
    assert app.test_client().get("/me", headers=bearer(clerk_issuer)).json["first_name"] == "Ada"
    response = _deliver(app, clerk_issuer, "user.updated", {"id": USER})
    assert response.status_code == 503 and "Retry-After" in response.headers  # Svix retries: invalidation is not lost


def test_redis_down_logs_the_user_cache_outage_once_not_per_request(
    make_app: UserApp,
    clerk_issuer: ClerkTestIssuer,
    clerk_backend_api: BackendAPIStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As the other stores: the breaker logs the outage once, named; each request that skips the cache does not."""
    from tests.conftest import closed_port

    app, _ = make_app(CLERK_USER_CACHE_URI=f"redis://127.0.0.1:{closed_port()}/0")
    clerk_backend_api.add_user(user_id=USER, first_name="Ada")
    client = app.test_client()
    with caplog.at_level(logging.DEBUG, logger="flask_clerk_security"):
        caplog.clear()  # only what the requests log, not the app's start-up warnings
        for _ in range(4):
            assert client.get("/me", headers=bearer(clerk_issuer)).json["first_name"] == "Ada"
    loud = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(loud) == 1 and loud[0].startswith("user cache: Redis unavailable"), loud


def test_backend_api_outage_is_logged_once_not_per_request(
    make_app: UserApp,
    clerk_issuer: ClerkTestIssuer,
    clerk_backend_api: BackendAPIStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Found by benchmarks/soak.py: each current_user request of an outage logged an ERROR (no cached user) or a
    WARNING (stale user served). Now one ERROR when it starts, one WARNING when the API answers again."""
    app, _ = make_app(CLERK_USER_CACHE_TTL=0)
    clerk_backend_api.add_user(user_id=USER, first_name="Ada")
    client = app.test_client()
    assert client.get("/me", headers=bearer(clerk_issuer)).json["first_name"] == "Ada"
    clerk_backend_api.fail_status = 503
    with caplog.at_level(logging.DEBUG, logger="flask_clerk_security"):
        caplog.clear()  # only what the requests log, not the app's start-up warnings
        stale = [client.get("/me", headers=bearer(clerk_issuer)).json["first_name"] for _ in range(3)]
        other = clerk_issuer.auth_header(user_id="user_other")
        others = [client.get("/me", headers=other).status_code for _ in range(2)]
        clerk_backend_api.fail_status = None
        assert client.get("/me", headers=bearer(clerk_issuer)).json["first_name"] == "Ada"
    assert stale == ["Ada"] * 3 and others == [503, 503]
    loud = [(r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING]
    assert [level for level, _ in loud] == ["ERROR", "WARNING"], loud
    assert loud[0][1].startswith("current_user: Backend API unavailable")
    assert loud[1][1].startswith("current_user: Backend API answers again") and "(5 requests affected)" in loud[1][1]


def test_user_loader_maps_the_clerk_id_and_claims_to_the_apps_object(
    make_app: UserApp, clerk_issuer: ClerkTestIssuer, clerk_backend_api: BackendAPIStandIn
) -> None:
    app, clerk = make_app()
    calls: list[tuple[str, str]] = []

    @clerk.user_loader
    def load(user_id: str, claims: dict[str, Any]) -> dict[str, str] | None:
        calls.append((user_id, claims["sid"]))
        return {"first_name": f"local {user_id}"} if user_id == USER else None

    with app.test_request_context(headers=bearer(clerk_issuer, session_id="sess_1")):
        assert current_user == {"first_name": f"local {USER}"}
        assert current_user == {"first_name": f"local {USER}"}
    assert calls == [(USER, "sess_1")]  # once per request
    with app.test_request_context(headers=clerk_issuer.auth_header(user_id="user_unknown")):
        assert current_user._get_current_object() is None
    with app.test_request_context():
        assert current_user._get_current_object() is None
    assert len(calls) == 2  # signed out: the loader is not asked
    assert clerk_backend_api.count("GET", USER_PATH) == 0


def test_user_loader_taking_only_the_id_as_flask_login(
    make_app: UserApp, clerk_issuer: ClerkTestIssuer
) -> None:
    app, clerk = make_app()
    clerk.user_loader(lambda user_id: f"app user {user_id}")
    with app.test_request_context(headers=bearer(clerk_issuer)):
        assert current_user == f"app user {USER}"


def test_get_token_mints_from_a_template_and_caches_until_near_expiry(
    make_app: UserApp, clerk_issuer: ClerkTestIssuer, clerk_backend_api: BackendAPIStandIn
) -> None:
    app, _ = make_app()
    clerk_backend_api.add_jwt_template("supabase", {"role": "authenticated"}, lifetime=60)
    clerk_backend_api.add_session("sess_9", USER)
    client = app.test_client()
    path = "/v1/sessions/sess_9/tokens/supabase"
    first = client.get("/token/supabase", headers=bearer(clerk_issuer, session_id="sess_9")).json["jwt"]
    claims = jwt.decode(first, clerk_issuer.public_pem, algorithms=["RS256"])
    assert claims["role"] == "authenticated" and claims["sid"] == "sess_9" and claims["sub"] == USER
    again = client.get("/token/supabase", headers=bearer(clerk_issuer, session_id="sess_9")).json["jwt"]
    assert again == first and clerk_backend_api.count("POST", path) == 1
    clerk_backend_api.add_jwt_template("short", lifetime=5)  # under the refresh margin: never reused
    for _ in range(2):
        client.get("/token/short", headers=bearer(clerk_issuer, session_id="sess_9"))
    assert clerk_backend_api.count("POST", "/v1/sessions/sess_9/tokens/short") == 2


def test_get_token_signed_out_or_machine_token_is_a_clear_401(
    make_app: UserApp, clerk_issuer: ClerkTestIssuer, clerk_backend_api: BackendAPIStandIn
) -> None:
    from flask_clerk_security import SessionRequired

    app, _ = make_app()
    api_key = clerk_backend_api.mint_api_key(subject=USER)
    response = app.test_client().get("/token/supabase", headers={"Authorization": f"Bearer {api_key}"})
    assert response.status_code == 401 and response.json == {"error": "unauthorized"}
    assert response.headers["x-clerk-auth-reason"] == "session-token-required"
    with app.test_request_context(), pytest.raises(SessionRequired):
        get_token(template="supabase")


def test_get_token_outage_is_503(
    make_app: UserApp, clerk_issuer: ClerkTestIssuer, clerk_backend_api: BackendAPIStandIn
) -> None:
    app, _ = make_app()
    clerk_backend_api.add_jwt_template("supabase")
    clerk_backend_api.fail_status = 502
    response = app.test_client().get("/token/supabase", headers=bearer(clerk_issuer))
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"


@pytest.mark.parametrize("template", ["../../../users/user_1/ban", "x?y=1", "x#y", "a%2F..", "a\\b", "..", ".", "a\nb"])
def test_get_token_refuses_a_template_name_that_is_no_path_segment(
    make_app: UserApp, clerk_issuer: ClerkTestIssuer, clerk_backend_api: BackendAPIStandIn, template: str
) -> None:
    """The SDK put the name into the URL path unescaped: "../../../users/user_1/ban" made the app POST
    /v1/users/user_1/ban with its secret key. Such a name now raises before any Backend API call."""
    app, _ = make_app()
    with app.test_request_context(headers=bearer(clerk_issuer)), pytest.raises(ValueError, match="JWT template"):
        get_token(template)
    assert [call for call in clerk_backend_api.calls if call.method == "POST"] == []


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_secret_key_is_503_logged_once_never_a_500_or_clerks_body(
    make_app: UserApp,
    clerk_issuer: ClerkTestIssuer,
    clerk_backend_api: BackendAPIStandIn,
    caplog: pytest.LogCaptureFixture,
    status: int,
) -> None:
    """A rotated secret key: current_user and get_token() raised the SDK's ClerkErrors/SDKError (a 500 with Clerk's
    message in the trace). Now 503 with Retry-After, one ERROR naming CLERK_SECRET_KEY, and no Clerk body."""
    app, _ = make_app()
    clerk_backend_api.add_user(user_id=USER)
    clerk_backend_api.add_jwt_template("supabase")
    clerk_backend_api.fail_status = status
    client = app.test_client()
    with caplog.at_level(logging.DEBUG, logger="flask_clerk_security"):
        caplog.clear()
        answers = [client.get(path, headers=bearer(clerk_issuer)) for path in ("/me", "/me", "/token/supabase")]
    for response in answers:
        assert response.status_code == 503 and response.headers["Retry-After"] == "5"
        assert response.json == {"error": "auth_unavailable"}
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(loud) == 2, loud  # one per caller (current_user, get_token), not one per request
    assert all(f"refused CLERK_SECRET_KEY ({status}" in line and "stand-in failure" not in line for line in loud)


def test_get_token_for_a_session_ended_in_clerk_is_a_401(
    make_app: UserApp, clerk_issuer: ClerkTestIssuer, clerk_backend_api: BackendAPIStandIn
) -> None:
    """Revoked within its session token's 60 s: Clerk answers 404, which the SDK raised as ClerkErrors (a 500)."""
    app, _ = make_app()
    clerk_backend_api.add_jwt_template("supabase")
    clerk_backend_api.add_session("sess_9", USER)
    clerk_backend_api.end_session("sess_9")
    response = app.test_client().get("/token/supabase", headers=bearer(clerk_issuer, session_id="sess_9"))
    assert response.status_code == 401 and response.json == {"error": "unauthorized"}
    assert response.headers["x-clerk-auth-reason"] == "session-token-required"


def test_get_token_for_an_unknown_template_is_a_configuration_error_without_clerks_message(
    make_app: UserApp, clerk_issuer: ClerkTestIssuer, clerk_backend_api: BackendAPIStandIn
) -> None:
    app, _ = make_app()
    clerk_backend_api.add_session("sess_9", USER)
    with app.test_request_context(headers=bearer(clerk_issuer, session_id="sess_9")):
        with pytest.raises(ConfigurationError, match="no JWT template of that name") as raised:
            get_token("nope")
    assert "resource_not_found" not in str(raised.value) and raised.value.__cause__ is None
