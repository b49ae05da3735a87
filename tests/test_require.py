"""@clerk.require: signed in, has() dimensions, reverification body, async views, loud misuse."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import pytest
from flask import Blueprint, Flask
from flask.views import MethodView, View
from werkzeug.routing import Rule

from flask_clerk_security import ClerkSecurity, current_auth, protection
from flask_clerk_security.protection import Requirement
from flask_clerk_security.testing import ClerkTestIssuer

from .conftest import AppFactory

ORG = {"id": "org_1", "slug": "acme", "role": "admin", "permissions": {"reports": ["read"]}}


@pytest.fixture
def guarded(app_factory: AppFactory) -> tuple[Flask, ClerkSecurity]:
    app, clerk = app_factory(public_routes=["/open(.*)"])

    @app.get("/open/bare")
    @clerk.require
    def bare() -> dict[str, Any]:
        return {"user": current_auth.user_id}

    @app.get("/open/called")
    @clerk.require()
    def called() -> dict[str, Any]:
        return {"user": current_auth.user_id}

    @app.get("/reports")
    @clerk.require(permission="org:reports:read")
    def reports() -> dict[str, Any]:
        return {"org": current_auth.org_id}

    @app.get("/admin")
    @clerk.require(role="admin", permission="reports:read")
    def admin() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/ai")
    @clerk.require(feature="user:ai", plan="pro")
    def ai() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/transfer")
    @clerk.require(reverification="strict")
    def transfer() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/custom")
    @clerk.require(reverification={"level": "first_factor", "after_minutes": 30})
    def custom() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/admin-transfer")
    @clerk.require(role="admin", reverification="strict_mfa")
    def admin_transfer() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/async")
    @clerk.require(permission="org:reports:read")
    async def async_view() -> dict[str, Any]:
        return {"org": current_auth.org_id}

    return app, clerk


def test_bare_and_called_require_even_on_public_routes(
    guarded: tuple[Flask, ClerkSecurity], clerk_issuer: ClerkTestIssuer
) -> None:
    client = guarded[0].test_client()
    for path in ("/open/bare", "/open/called"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers=clerk_issuer.auth_header()).get_json() == {"user": "user_123"}


def test_permission(guarded: tuple[Flask, ClerkSecurity], clerk_issuer: ClerkTestIssuer) -> None:
    client = guarded[0].test_client()
    denied = client.get("/reports", headers=clerk_issuer.auth_header())
    assert denied.status_code == 403
    assert denied.get_json() == {"error": "forbidden"}
    assert client.get("/reports", headers=clerk_issuer.auth_header(org=ORG)).get_json() == {"org": "org_1"}
    assert client.get("/reports").status_code == 401


def test_role_and_permission_are_both_needed(
    guarded: tuple[Flask, ClerkSecurity], clerk_issuer: ClerkTestIssuer
) -> None:
    client = guarded[0].test_client()
    assert client.get("/admin", headers=clerk_issuer.auth_header(org=ORG)).status_code == 200
    member = {**ORG, "role": "member"}
    assert client.get("/admin", headers=clerk_issuer.auth_header(org=member)).status_code == 403
    no_perm = {**ORG, "permissions": {}}
    assert client.get("/admin", headers=clerk_issuer.auth_header(org=no_perm)).status_code == 403


def test_feature_and_plan(guarded: tuple[Flask, ClerkSecurity], clerk_issuer: ClerkTestIssuer) -> None:
    client = guarded[0].test_client()
    assert client.get("/ai", headers=clerk_issuer.auth_header(features=["u:ai"], plan="u:pro")).status_code == 200
    assert client.get("/ai", headers=clerk_issuer.auth_header(features=["o:ai"], plan="u:pro")).status_code == 403
    assert client.get("/ai", headers=clerk_issuer.auth_header(features=["u:ai"])).status_code == 403


def test_stale_session_gets_clerks_reverification_body(
    guarded: tuple[Flask, ClerkSecurity], clerk_issuer: ClerkTestIssuer
) -> None:
    client = guarded[0].test_client()
    stale = client.post("/transfer", headers=clerk_issuer.auth_header(fva=[3, 11]))
    assert stale.status_code == 403
    assert stale.get_json() == {
        "clerk_error": {"type": "forbidden", "reason": "reverification-error", "metadata": {"reverification": "strict"}}
    }
    assert client.post("/transfer", headers=clerk_issuer.auth_header(fva=[3, 9])).status_code == 200


def test_custom_level_echoes_clerks_camel_case(
    guarded: tuple[Flask, ClerkSecurity], clerk_issuer: ClerkTestIssuer
) -> None:
    client = guarded[0].test_client()
    stale = client.post("/custom", headers=clerk_issuer.auth_header(fva=[45, -1]))
    assert stale.get_json()["clerk_error"]["metadata"] == {
        "reverification": {"level": "first_factor", "afterMinutes": 30}
    }
    assert client.post("/custom", headers=clerk_issuer.auth_header(fva=[29, -1])).status_code == 200


def test_freshness_ignores_token_age(guarded: tuple[Flask, ClerkSecurity], clerk_issuer: ClerkTestIssuer) -> None:
    """A token refreshed a second ago says nothing about when the user last proved a factor."""
    client = guarded[0].test_client()
    just_refreshed = clerk_issuer.auth_header(fva=[600, 600], lifetime=60)
    assert client.post("/transfer", headers=just_refreshed).status_code == 403


def test_authorization_is_checked_before_reverification(
    guarded: tuple[Flask, ClerkSecurity], clerk_issuer: ClerkTestIssuer
) -> None:
    client = guarded[0].test_client()
    member = {**ORG, "role": "member"}
    response = client.post("/admin-transfer", headers=clerk_issuer.auth_header(org=member, fva=[100, 100]))
    assert response.get_json() == {"error": "forbidden"}
    stale_admin = client.post("/admin-transfer", headers=clerk_issuer.auth_header(org=ORG, fva=[100, 100]))
    assert stale_admin.get_json()["clerk_error"]["reason"] == "reverification-error"
    assert client.post("/admin-transfer", headers=clerk_issuer.auth_header(org=ORG, fva=[1, 1])).status_code == 200


def test_async_view(guarded: tuple[Flask, ClerkSecurity], clerk_issuer: ClerkTestIssuer) -> None:
    client = guarded[0].test_client()
    assert client.get("/async", headers=clerk_issuer.auth_header()).status_code == 403
    assert client.get("/async", headers=clerk_issuer.auth_header(org=ORG)).get_json() == {"org": "org_1"}


def test_errors_can_be_customised_with_errorhandler(
    guarded: tuple[Flask, ClerkSecurity], clerk_issuer: ClerkTestIssuer
) -> None:
    app = guarded[0]

    @app.errorhandler(403)
    def forbidden(error: Exception) -> tuple[dict[str, str], int]:
        return {"message": "nope"}, 403

    assert app.test_client().get("/reports", headers=clerk_issuer.auth_header()).get_json() == {"message": "nope"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"reverification": "sometimes"},
        {"reverification": {"level": "third_factor", "after_minutes": 5}},
        {"reverification": {"level": "first_factor", "after_minutes": 0}},
        {"role": ""},
        {"permission": 5},
    ],
)
def test_misuse_fails_at_decoration_time(kwargs: dict[str, Any]) -> None:
    clerk = ClerkSecurity()
    with pytest.raises((TypeError, ValueError)):
        clerk.require(**kwargs)


def test_signed_out_page_visit_to_a_public_required_view_is_sent_to_sign_in(
    app_factory: AppFactory, clerk_issuer: ClerkTestIssuer
) -> None:
    # @clerk.public lets the request through protection; @clerk.require still needs a session: a browser is
    # sent to sign in (as on any protected page), an API client gets 401, never a 500.
    app, clerk = app_factory({"CLERK_SIGN_IN_URL": "https://accounts.example.com/sign-in"})

    @app.get("/dashboard")
    @clerk.public
    @clerk.require
    def dashboard() -> dict[str, Any]:
        return {"user": current_auth.user_id}

    client = app.test_client()
    client.set_cookie("__clerk_db_jwt", "dvb_test")  # a development browser that is signed out: no handshake
    client.set_cookie("__client_uat", "0")
    page = client.get("/dashboard", headers={"Accept": "text/html", "Sec-Fetch-Dest": "document"})
    assert page.status_code == 307
    assert page.headers["Location"].startswith("https://accounts.example.com/sign-in")
    assert "redirect_url=" in page.headers["Location"]
    assert client.get("/dashboard", headers={"Accept": "application/json"}).status_code == 401
    assert client.get("/dashboard", headers=clerk_issuer.auth_header()).get_json() == {"user": "user_123"}
    without_cookies = app.test_client().get("/dashboard", headers={"Accept": "text/html", "Sec-Fetch-Dest": "document"})
    assert without_cookies.status_code == 307  # Clerk's handshake first: it may know a session we do not
    assert without_cookies.headers["Location"].startswith(f"https://{clerk_issuer.frontend_api}/v1/client/handshake")


def test_wrong_typed_has_arguments_are_refused_not_granted(clerk_issuer: ClerkTestIssuer) -> None:
    # Clerk's checkOrgAuthorization compares with === and Array.includes: role=5 or permission=["x"] never
    # equals a claim, so has() is false. Here too, and without raising.
    from flask_clerk_security import Auth

    org = {"id": "org_1", "slug": "acme", "role": "admin", "permissions": {"reports": ["read"]}}
    auth = Auth.from_claims(clerk_issuer.session_claims(org=org, features=["u:ai"], plan="u:pro"))
    assert auth.has(role="admin") and auth.has(permission="org:reports:read")
    assert auth.has(feature="ai") and auth.has(plan="pro")
    wrong: list[dict[str, Any]] = [
        {"role": 5},
        {"permission": ["org:reports:read"]},
        {"role": "admin", "permission": ["org:reports:read"]},
        {"role": ["admin"], "permission": "org:reports:read"},
        {"feature": 5},
        {"plan": ["pro"]},
        {"feature": "ai", "plan": 1},
    ]
    for arguments in wrong:
        assert auth.has(**arguments) is False, arguments


def test_require_above_the_route_decorator_warns(
    app_factory: AppFactory, clerk_issuer: ClerkTestIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    """``@clerk.require`` above ``@app.get`` wraps a function the route already holds, so the route serves the
    view without the requirement (a signed-in user without the permission gets 200): the first request warns.
    A function served bare on one route and wrapped on another does not."""
    app, clerk = app_factory()
    bp = Blueprint("bp", __name__, url_prefix="/bp")

    @clerk.require(permission="org:reports:read")
    @bp.get("/above")
    def above() -> dict[str, bool]:
        return {"ok": True}

    def shared() -> dict[str, bool]:
        return {"ok": True}

    app.add_url_rule("/bare", "bare", shared)
    app.add_url_rule("/wrapped", "wrapped", clerk.require(role="admin")(shared))
    app.register_blueprint(bp)
    client = app.test_client()
    assert client.get("/bare", headers=clerk_issuer.auth_header()).status_code == 200
    assert "above the route decorator" not in caplog.text
    assert client.get("/bp/above", headers=clerk_issuer.auth_header()).status_code == 200
    assert "view 'bp.above': @clerk.require(...) is above the route decorator" in caplog.text
    assert any(r.getMessage().startswith("view 'bp.above': @clerk.require(...)") for r in caplog.records)


def test_requirement_options_are_kept_as_given() -> None:
    """``flask clerk routes`` shows each requirement's options under the names they were given with."""
    given: dict[str, Any] = {
        "permission": "org:a:b",
        "reverification": "strict",
        "accepts_token": ["session_token", "m2m_token"],
        "scopes": ["read"],
        "treat_pending_as_signed_out": False,
        "unauthenticated_url": "https://accounts.example.test/sign-in",
        "unauthorized_url": "http://example.test/denied",
    }
    requirement = Requirement.build("require", **given)
    assert dict(requirement.options) == given
    assert requirement.treat_pending_as_signed_out is False
    assert Requirement.build("require", unauthorized_url="/denied").options == {"unauthorized_url": "/denied"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        requirement.scopes = None  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"treat_pending_as_signed_out": "no"}, "require(treat_pending_as_signed_out=...) takes True or False"),
        ({"unauthenticated_url": "ftp://x"}, "require(unauthenticated_url=...) takes a path"),
        ({"unauthorized_url": "denied"}, "require(unauthorized_url=...) takes a path"),
    ],
)
def test_requirement_option_errors_name_the_option(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError) as caught:
        Requirement.build("require", **kwargs)
    assert str(caught.value).startswith(message)


def test_require_above_the_route_decorator_warns_through_other_decorators(
    app_factory: AppFactory, clerk_issuer: ClerkTestIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    """The warning sees through ``functools.wraps`` decorators on either side of ``require``: a served wrapper of
    the require wrapper is no warning, a require over a decorated, already routed function is."""
    app, clerk = app_factory()

    def logged(func: Any) -> Any:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return func(*args, **kwargs)

        return wrapper

    @app.get("/outer")
    @logged
    @clerk.require(role="admin")
    def outer() -> dict[str, bool]:
        return {"ok": True}

    @clerk.require(role="admin")
    @logged
    @app.get("/inner")
    def inner() -> dict[str, bool]:
        return {"ok": True}

    def shared() -> dict[str, bool]:
        return {"ok": True}

    app.add_url_rule("/bare", "bare", shared)
    app.add_url_rule("/wrapped", "wrapped", logged(clerk.require(role="admin")(shared)))
    client = app.test_client()
    assert client.get("/outer", headers=clerk_issuer.auth_header()).status_code == 403
    assert client.get("/bare", headers=clerk_issuer.auth_header()).status_code == 200
    assert "above the route decorator" not in caplog.text
    assert client.get("/inner", headers=clerk_issuer.auth_header()).status_code == 200
    warnings = [r.getMessage() for r in caplog.records if "above the route decorator" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].startswith("view 'inner': @clerk.require(...) is above the route decorator")


def test_head_uses_the_get_handlers_marks(app_factory: AppFactory) -> None:
    """A MethodView without ``head`` answers HEAD with ``get`` (as Flask does), so ``get``'s public mark holds."""
    app, clerk = app_factory()

    class Page(MethodView):
        @clerk.public
        def get(self) -> dict[str, bool]:
            return {"ok": True}

        def post(self) -> dict[str, bool]:
            return {"ok": True}

    class OwnHead(MethodView):
        @clerk.public
        def get(self) -> dict[str, bool]:
            return {"ok": True}

        def head(self) -> dict[str, bool]:
            return {"ok": True}

    app.add_url_rule("/page", view_func=Page.as_view("page"))
    app.add_url_rule("/own-head", view_func=OwnHead.as_view("own_head"))
    client = app.test_client()
    assert client.head("/page").status_code == 200
    assert client.head("/own-head").status_code == 401  # its own head handler is not public
    assert client.post("/page").status_code == 401


def test_a_views_own_require_is_checked_when_the_view_runs(
    app_factory: AppFactory, clerk_issuer: ClerkTestIssuer
) -> None:
    """``require`` on a view function, a View's ``dispatch_request`` or a MethodView handler is the wrapper's to
    check when the view runs (after the app's own ``before_request``); only Blueprint and View-class marks are
    checked before."""
    app, clerk = app_factory()
    bp = Blueprint("bp", __name__)

    @bp.get("/function")
    @clerk.require(role="admin")
    def function() -> dict[str, bool]:
        return {"ok": True}

    class Dispatch(View):
        @clerk.require(role="admin")
        def dispatch_request(self) -> dict[str, bool]:
            return {"ok": True}

    class Handler(MethodView):
        @clerk.require(role="admin")
        def get(self) -> dict[str, bool]:
            return {"ok": True}

    app.register_blueprint(bp)
    app.add_url_rule("/dispatch", view_func=Dispatch.as_view("dispatch"))
    app.add_url_rule("/handler", view_func=Handler.as_view("handler"))

    @app.before_request
    def maintenance() -> tuple[str, int]:
        return "maintenance", 503

    client = app.test_client()
    for path in ("/function", "/dispatch", "/handler"):
        assert client.get(path, headers=clerk_issuer.auth_header()).status_code == 503, path


def test_protection_logs_under_the_package_logger() -> None:
    """Apps configure ``logging.getLogger("flask_clerk_security")``; protection's debug lines must go there."""
    assert protection.logger.name == "flask_clerk_security"


def test_a_dotted_endpoint_without_a_blueprint_keeps_its_views_marks(app_factory: AppFactory) -> None:
    """An endpoint named like ``a.b`` with no blueprint ``a`` still reads the view's own ``public`` mark."""
    app, clerk = app_factory()

    @clerk.public
    def status() -> dict[str, bool]:
        return {"ok": True}

    app.add_url_rule("/status", "not_a.blueprint", status)
    assert app.test_client().get("/status").status_code == 200


def test_options_the_view_answers_itself_is_protected(app_factory: AppFactory) -> None:
    """OPTIONS skips authentication only where the view never runs (Flask's automatic answer): a rule added to the
    URL map directly, or one listing OPTIONS itself, runs the view, so it is protected (a partial view too)."""
    app, _ = app_factory()

    def answer(word: str = "ok") -> dict[str, str]:
        return {"answer": word}

    app.url_map.add(Rule("/raw", endpoint="raw"))
    app.view_functions["raw"] = answer
    app.add_url_rule("/partial", "partial", functools.partial(answer, "partial"), methods=["GET", "OPTIONS"])
    client = app.test_client()
    assert client.options("/raw").status_code == 401
    assert client.options("/partial").status_code == 401
