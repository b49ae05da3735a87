"""require()/public on every shape a Flask app has: blueprints (before/after routes, nested, registered twice),
View classes and their methods, async views; anything else is refused at decoration time."""

from __future__ import annotations

import json
import re
import types
from typing import Any

import pytest
from flask import Blueprint, Flask
from flask.views import MethodView, View

from flask_clerk_security import ClerkSecurity, current_auth
from flask_clerk_security.testing import BackendAPIStandIn, ClerkTestIssuer

from .conftest import AppFactory

ADMIN = {"id": "org_1", "slug": "acme", "role": "admin", "permissions": {}}
MEMBER = {**ADMIN, "role": "member"}


def statuses(client: Any, path: str, issuer: ClerkTestIssuer, method: str = "GET") -> tuple[int, int, int]:
    """(anonymous, signed-in member, signed-in admin) statuses of one request."""
    return (
        client.open(path, method=method).status_code,
        client.open(path, method=method, headers=issuer.auth_header(org=MEMBER)).status_code,
        client.open(path, method=method, headers=issuer.auth_header(org=ADMIN)).status_code,
    )


def ok() -> dict[str, Any]:
    return {"user": current_auth.user_id}


def test_blueprint_decorated_before_and_after_its_routes(
    app_factory: AppFactory, clerk_issuer: ClerkTestIssuer
) -> None:
    app, clerk = app_factory()
    bp = Blueprint("admin", __name__, url_prefix="/admin")
    bp.add_url_rule("/before", "before", ok)
    assert clerk.require(role="admin")(bp) is bp
    bp.add_url_rule("/after", "after", ok)
    app.register_blueprint(bp)
    client = app.test_client()
    for path in ("/admin/before", "/admin/after"):
        assert statuses(client, path, clerk_issuer) == (401, 403, 200)


def test_blueprint_decorated_after_registration(app_factory: AppFactory, clerk_issuer: ClerkTestIssuer) -> None:
    app, clerk = app_factory()
    bp = Blueprint("late", __name__, url_prefix="/late")
    bp.add_url_rule("/x", "x", ok)
    app.register_blueprint(bp)
    clerk.require(role="admin")(bp)
    assert statuses(app.test_client(), "/late/x", clerk_issuer) == (401, 403, 200)


def test_bare_require_on_a_blueprint_covers_public_routes(
    app_factory: AppFactory, clerk_issuer: ClerkTestIssuer
) -> None:
    app, clerk = app_factory(public_routes=["/open(.*)"])
    bp = Blueprint("open", __name__, url_prefix="/open")
    bp.add_url_rule("/x", "x", ok)
    clerk.require(bp)
    app.register_blueprint(bp)
    assert statuses(app.test_client(), "/open/x", clerk_issuer) == (401, 200, 200)


def test_nested_blueprints(app_factory: AppFactory, clerk_issuer: ClerkTestIssuer) -> None:
    app, clerk = app_factory()
    parent = Blueprint("parent", __name__, url_prefix="/p")
    child = Blueprint("child", __name__, url_prefix="/c")
    child.add_url_rule("/x", "x", ok)
    parent.add_url_rule("/y", "y", ok)
    parent.register_blueprint(child)
    clerk.require(role="admin")(parent)
    app.register_blueprint(parent)
    client = app.test_client()
    assert statuses(client, "/p/c/x", clerk_issuer) == (401, 403, 200)
    assert statuses(client, "/p/y", clerk_issuer) == (401, 403, 200)


def test_requirements_of_nested_blueprints_add_up(app_factory: AppFactory, clerk_issuer: ClerkTestIssuer) -> None:
    app, clerk = app_factory()
    parent = Blueprint("parent", __name__, url_prefix="/p")
    child = Blueprint("child", __name__, url_prefix="/c")
    child.add_url_rule("/x", "x", ok)
    clerk.require(role="admin")(parent)
    clerk.require(permission="org:reports:read")(child)
    parent.register_blueprint(child)
    app.register_blueprint(parent)
    client = app.test_client()
    assert client.get("/p/c/x", headers=clerk_issuer.auth_header(org=ADMIN)).status_code == 403
    both = {**ADMIN, "permissions": {"reports": ["read"]}}
    assert client.get("/p/c/x", headers=clerk_issuer.auth_header(org=both)).status_code == 200


def test_blueprint_registered_twice_under_two_names(app_factory: AppFactory, clerk_issuer: ClerkTestIssuer) -> None:
    app, clerk = app_factory()
    bp = Blueprint("reports", __name__)
    bp.add_url_rule("/x", "x", ok)
    clerk.require(role="admin")(bp)
    app.register_blueprint(bp, url_prefix="/v1")
    app.register_blueprint(bp, url_prefix="/v2", name="reports_v2")
    client = app.test_client()
    for path in ("/v1/x", "/v2/x"):
        assert statuses(client, path, clerk_issuer) == (401, 403, 200)


def test_public_blueprint_unless_a_view_inside_requires(app_factory: AppFactory, clerk_issuer: ClerkTestIssuer) -> None:
    app, clerk = app_factory()
    bp = Blueprint("docs", __name__, url_prefix="/docs")
    bp.add_url_rule("/open", "open", ok)
    bp.add_url_rule("/closed", "closed", clerk.require(role="admin")(ok))
    assert clerk.public(bp) is bp
    app.register_blueprint(bp)
    client = app.test_client()
    assert statuses(client, "/docs/open", clerk_issuer) == (200, 200, 200)
    assert statuses(client, "/docs/closed", clerk_issuer) == (401, 403, 200)


def test_public_view_inside_a_required_blueprint(app_factory: AppFactory, clerk_issuer: ClerkTestIssuer) -> None:
    """The nearest mark wins: a login page marked public inside an admin blueprint is public."""
    app, clerk = app_factory()
    bp = Blueprint("admin", __name__, url_prefix="/admin")
    clerk.require(role="admin")(bp)

    @bp.get("/login")
    @clerk.public
    def login() -> str:
        return "sign in"

    bp.add_url_rule("/panel", "panel", ok)
    app.register_blueprint(bp)
    client = app.test_client()
    assert statuses(client, "/admin/login", clerk_issuer) == (200, 200, 200)
    assert statuses(client, "/admin/panel", clerk_issuer) == (401, 403, 200)


def test_blueprint_accepts_machine_tokens(app_factory: AppFactory, clerk_issuer: ClerkTestIssuer) -> None:
    app, clerk = app_factory()
    bp = Blueprint("m2m", __name__, url_prefix="/m2m")
    bp.add_url_rule("/x", "x", lambda: {"subject": current_auth.subject})
    clerk.require(accepts_token="m2m_token")(bp)
    app.register_blueprint(bp)
    client = app.test_client()
    token = clerk_issuer.m2m_jwt()
    assert client.get("/m2m/x", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.get("/m2m/x", headers=clerk_issuer.auth_header()).status_code == 401


class Reports(MethodView):
    def get(self) -> dict[str, Any]:
        return {"user": current_auth.user_id}

    def post(self) -> dict[str, Any]:
        return {"posted": current_auth.user_id}


def test_method_view_class(app_factory: AppFactory, clerk_issuer: ClerkTestIssuer) -> None:
    app, clerk = app_factory()
    view = type("AdminReports", (Reports,), {})
    assert clerk.require(role="admin")(view) is view
    app.add_url_rule("/reports", view_func=view.as_view("reports"))
    client = app.test_client()
    assert statuses(client, "/reports", clerk_issuer) == (401, 403, 200)
    assert statuses(client, "/reports", clerk_issuer, "POST") == (401, 403, 200)


def test_method_view_class_decorated_after_as_view(app_factory: AppFactory, clerk_issuer: ClerkTestIssuer) -> None:
    app, clerk = app_factory()
    view = type("LateReports", (Reports,), {})
    app.add_url_rule("/reports", view_func=view.as_view("reports"))
    clerk.require(role="admin")(view)
    assert statuses(app.test_client(), "/reports", clerk_issuer) == (401, 403, 200)


def test_public_method_view_class_and_method(app_factory: AppFactory, clerk_issuer: ClerkTestIssuer) -> None:
    app, clerk = app_factory()

    @clerk.public
    class Open(MethodView):
        def get(self) -> str:
            return "open"

    class Half(MethodView):
        @clerk.public
        def get(self) -> str:
            return "open"

        def post(self) -> str:
            return "closed"

    app.add_url_rule("/open", view_func=Open.as_view("open"))
    app.add_url_rule("/half", view_func=Half.as_view("half"))
    client = app.test_client()
    assert client.get("/open").status_code == 200
    assert client.get("/half").status_code == 200
    assert client.post("/half").status_code == 401


def test_public_mark_on_a_view_class_is_not_inherited(app_factory: AppFactory, clerk_issuer: ClerkTestIssuer) -> None:
    """``@clerk.public class V`` then ``class W(V)`` adding ``delete``: W inherited the mark (Python attribute
    lookup), so an anonymous DELETE /w ran. The class-level public mark covers the class it was put on only."""
    app, clerk = app_factory()

    @clerk.public
    class Catalogue(MethodView):
        def get(self) -> str:
            return "open"

    class Managed(Catalogue):
        def delete(self) -> str:
            return "deleted"

    app.add_url_rule("/catalogue", view_func=Catalogue.as_view("catalogue"))
    app.add_url_rule("/managed", view_func=Managed.as_view("managed"))
    client = app.test_client()
    assert client.get("/catalogue").status_code == 200
    assert client.delete("/managed").status_code == 401
    assert client.get("/managed").status_code == 401  # the subclass is protected as a whole: mark it to open it
    assert client.delete("/managed", headers=clerk_issuer.auth_header()).status_code == 200


def test_require_on_a_view_class_is_inherited(app_factory: AppFactory, clerk_issuer: ClerkTestIssuer) -> None:
    """A base class's requirement keeps applying to its subclasses (fail closed), new methods included."""
    app, clerk = app_factory()
    admin_only = clerk.require(role="admin")(type("AdminOnly", (Reports,), {}))
    extended = type("Extended", (admin_only,), {"delete": lambda self: "deleted"})
    app.add_url_rule("/extended", view_func=extended.as_view("extended"))
    client = app.test_client()
    assert statuses(client, "/extended", clerk_issuer) == (401, 403, 200)
    assert statuses(client, "/extended", clerk_issuer, "DELETE") == (401, 403, 200)


def test_method_view_method_requirement(app_factory: AppFactory, clerk_issuer: ClerkTestIssuer) -> None:
    app, clerk = app_factory()

    class Partly(MethodView):
        def get(self) -> str:
            return "read"

        @clerk.require(role="admin")
        def delete(self) -> str:
            return "deleted"

    app.add_url_rule("/partly", view_func=Partly.as_view("partly"))
    client = app.test_client()
    assert statuses(client, "/partly", clerk_issuer) == (401, 200, 200)
    assert statuses(client, "/partly", clerk_issuer, "DELETE") == (401, 403, 200)


def test_method_view_method_accepts_api_keys(
    app_factory: AppFactory, clerk_issuer: ClerkTestIssuer, clerk_backend_api: BackendAPIStandIn
) -> None:
    """``@clerk.require(accepts_token="api_key")`` on a method is seen by protection: the API key signs in."""
    app, clerk = app_factory({"CLERK_API_URL": clerk_backend_api.url, "CLERK_SECRET_KEY": clerk_issuer.secret_key})

    class Keys(MethodView):
        def get(self) -> dict[str, Any]:
            return {"type": current_auth.token_type}

        @clerk.require(accepts_token="api_key", scopes=["reports:write"])
        def post(self) -> dict[str, Any]:
            return {"subject": current_auth.subject}

    app.add_url_rule("/keys", view_func=Keys.as_view("keys"))
    client = app.test_client()
    api_key = {"Authorization": f"Bearer {clerk_backend_api.mint_api_key(subject='user_7', scopes=['reports:write'])}"}
    assert client.post("/keys", headers=api_key).get_json() == {"subject": "user_7"}
    no_scope = {"Authorization": f"Bearer {clerk_backend_api.mint_api_key(subject='user_7')}"}
    assert client.post("/keys", headers=no_scope).status_code == 403
    assert client.post("/keys", headers=clerk_issuer.auth_header()).status_code == 401
    assert client.get("/keys", headers=api_key).status_code == 401
    assert client.get("/keys", headers=clerk_issuer.auth_header()).get_json() == {"type": "session_token"}


def test_async_view_in_a_required_blueprint(app_factory: AppFactory, clerk_issuer: ClerkTestIssuer) -> None:
    app, clerk = app_factory()
    bp = Blueprint("async_bp", __name__, url_prefix="/async")

    @bp.get("/x")
    async def x() -> dict[str, Any]:
        return {"user": current_auth.user_id}

    clerk.require(role="admin")(bp)
    app.register_blueprint(bp)
    assert statuses(app.test_client(), "/async/x", clerk_issuer) == (401, 403, 200)


class NotAView:
    pass


@pytest.mark.parametrize(
    "target",
    [NotAView, NotAView(), types, Flask("x"), Reports(), "view", 5, Blueprint],
    ids=["plain class", "instance", "module", "app", "view instance", "string", "int", "Blueprint class"],
)
def test_what_cannot_be_protected_is_refused_at_decoration_time(target: Any) -> None:
    clerk = ClerkSecurity()
    with pytest.raises(TypeError, match="protects a view function"):
        clerk.require(role="admin")(target)
    with pytest.raises(TypeError, match="protects a view function"):
        clerk.require(target)
    with pytest.raises(TypeError, match="protects a view function"):
        clerk.public(target)


def test_plain_view_class_is_accepted() -> None:
    class Plain(View):
        def dispatch_request(self) -> str:
            return "x"

    clerk = ClerkSecurity()
    assert clerk.require(role="admin")(Plain) is Plain
    assert clerk.public(Plain) is Plain


def test_clerk_routes_lists_blueprint_and_view_class_requirements(app_factory: AppFactory) -> None:
    from flask_clerk_security.cli import clerk_cli

    app, clerk = app_factory()
    bp = Blueprint("admin", __name__, url_prefix="/admin")
    bp.add_url_rule("/x", "x", ok)
    clerk.require(role="admin")(bp)
    docs = Blueprint("docs", __name__, url_prefix="/docs")
    docs.add_url_rule("/x", "x", ok)
    clerk.public(docs)
    view = type("ListedReports", (Reports,), {})
    clerk.require(permission="org:reports:read")(view)
    app.add_url_rule("/reports", view_func=view.as_view("reports"))
    app.register_blueprint(bp)
    app.register_blueprint(docs)
    result = app.test_cli_runner().invoke(clerk_cli, ["routes", "--json"])
    routes = {row["endpoint"]: row for row in json.loads(result.output)["routes"]}
    assert routes["admin.x"]["requires"] == [{"role": "admin"}]
    assert routes["docs.x"]["access"] == "public"
    assert routes["reports"]["requires"] == [{"permission": "org:reports:read"}]


@pytest.mark.parametrize(
    ("option", "suggestion"),
    [
        ("public_route", "public_routes"),
        ("signin_url", "sign_in_url"),
        ("secretkey", "secret_key"),
        ("CLOCK_SKEW", "clock_skew"),
    ],
)
def test_unknown_options_raise_with_a_did_you_mean(option: str, suggestion: str) -> None:
    with pytest.raises(TypeError, match=re.escape(f"unknown option '{option}'. Did you mean '{suggestion}'?")):
        ClerkSecurity(**{option: "/x"})


def test_unknown_option_without_a_close_name(clerk_issuer: ClerkTestIssuer) -> None:
    app = Flask("x")
    app.config.update(clerk_issuer.config)
    with pytest.raises(TypeError, match=re.escape("unknown option 'zzz'. Options are the CLERK_")):
        ClerkSecurity(app, zzz=1)
    assert "clerk_security" not in app.extensions


def test_public_or_require_on_a_plain_views_dispatch_request(
    app_factory: AppFactory, clerk_issuer: ClerkTestIssuer
) -> None:
    """A plain View handles every method in dispatch_request: ``@clerk.public`` there did nothing (the request
    was still 401), unlike on a MethodView's ``get``."""
    app, clerk = app_factory()

    class Open(View):
        methods = ("GET", "POST")

        @clerk.public
        def dispatch_request(self) -> dict[str, Any]:
            return {"user": current_auth.user_id}

    class Closed(View):
        @clerk.require(role="admin")
        def dispatch_request(self) -> dict[str, Any]:
            return {"user": current_auth.user_id}

    app.add_url_rule("/open", view_func=Open.as_view("open"))
    app.add_url_rule("/closed", view_func=Closed.as_view("closed"))
    client = app.test_client()
    assert statuses(client, "/open", clerk_issuer) == (200, 200, 200)
    assert statuses(client, "/open", clerk_issuer, method="POST") == (200, 200, 200)
    assert statuses(client, "/closed", clerk_issuer) == (401, 403, 200)
