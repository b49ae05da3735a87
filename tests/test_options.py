"""OPTIONS (issue 13 #4): only an answer that runs no view code skips protection; a view's own OPTIONS is protected."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.views import MethodView
from flask_cors import CORS, cross_origin

from flask_clerk_security.testing import ClerkTestIssuer

from .conftest import AppFactory

PREFLIGHT = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}


def build(app_factory: AppFactory) -> tuple[Flask, list[str]]:
    """An app whose views record every run of their own code."""
    app, _ = app_factory()
    ran: list[str] = []

    @app.route("/own", methods=["GET", "OPTIONS"])
    def own() -> dict[str, Any]:
        ran.append("own")
        return {"allow": "GET"}

    class Items(MethodView):
        def get(self) -> str:
            return "items"

        def options(self) -> dict[str, Any]:
            ran.append("items.options")
            return {"allow": "GET"}

    app.add_url_rule("/items", view_func=Items.as_view("items"))

    @app.route("/auto", methods=["GET"])
    def auto() -> str:
        ran.append("auto")
        return "auto"

    return app, ran


def test_a_views_own_options_code_is_protected(app_factory: AppFactory, clerk_issuer: ClerkTestIssuer) -> None:
    app, ran = build(app_factory)
    client = app.test_client()
    for path in ("/own", "/items"):
        assert client.options(path).status_code == 401
        assert client.options(path, headers=PREFLIGHT).status_code == 401
    assert ran == []
    assert client.options("/own", headers=clerk_issuer.auth_header()).get_json() == {"allow": "GET"}
    assert client.options("/items", headers=clerk_issuer.auth_header()).status_code == 200
    assert ran == ["own", "items.options"]


def test_flasks_automatic_options_answer_is_not_protected(app_factory: AppFactory) -> None:
    app, ran = build(app_factory)
    response = app.test_client().options("/auto")
    assert response.status_code == 200
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
    assert ran == []


def test_cors_preflights_answered_by_flask_cors(app_factory: AppFactory) -> None:
    """flask-cors as an extension (Flask's automatic answer plus its headers) and as ``@cross_origin`` (which
    answers OPTIONS itself, without the view): anonymous preflights pass; the view's code never ran."""
    app, ran = build(app_factory)
    CORS(app, origins=["https://app.example"])

    @app.route("/decorated", methods=["POST"])
    @cross_origin(origins=["https://app.example"])
    def decorated() -> str:
        ran.append("decorated")
        return "posted"

    client = app.test_client()
    for path in ("/auto", "/decorated"):
        response = client.options(path, headers=PREFLIGHT)
        assert response.status_code == 200, path
        assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert client.post("/decorated").status_code == 401
    # A view's own OPTIONS stays protected under the CORS extension too (the 401 still carries CORS headers).
    assert client.options("/own", headers=PREFLIGHT).status_code == 401
    assert ran == []


def test_cross_origin_without_automatic_options_runs_the_view_so_it_is_protected(app_factory: AppFactory) -> None:
    app, ran = build(app_factory)

    @app.route("/manual", methods=["GET", "OPTIONS"])
    @cross_origin(automatic_options=False)
    def manual() -> str:
        ran.append("manual")
        return "manual"

    @app.route("/configured", methods=["GET"])
    @cross_origin()
    def configured() -> str:
        ran.append("configured")
        return "configured"

    client = app.test_client()
    assert client.options("/manual", headers=PREFLIGHT).status_code == 401
    app.config["CORS_AUTOMATIC_OPTIONS"] = False  # flask-cors then runs the view for OPTIONS
    assert client.options("/configured", headers=PREFLIGHT).status_code == 401
    app.config["CORS_AUTOMATIC_OPTIONS"] = True
    assert client.options("/configured", headers=PREFLIGHT).status_code == 200
    assert ran == []
