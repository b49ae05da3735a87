"""``@clerk.validate``: 415/413/400/422 answers before the view, models handed to sync and async views."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal
from uuid import UUID

import pytest
import requests
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, RootModel, StringConstraints, field_validator, model_validator

from flask_clerk_security import (
    BodyTooLarge,
    ClerkSecurity,
    ConfigurationError,
    ValidationFailed,
    current_auth,
    get_validated_body,
    get_validated_query,
)
from flask_clerk_security.testing import ClerkTestIssuer, serve_app
from flask_clerk_security.validation import GENERIC_MESSAGE, MAX_REPORTED_ERRORS, SUBMITTED_KEY

AppFactory = Callable[..., tuple[Flask, ClerkSecurity]]
ALLOWED_STATUSES = {200, 400, 413, 415, 422}
MARK = "\u00a7"  # never part of a pydantic message: a message containing it echoes the input


class Cat(BaseModel):
    kind: Literal["cat"]
    lives: int = 9


class Dog(BaseModel):
    kind: Literal["dog"]


class Note(BaseModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    priority: Literal["low", "high"] = "low"
    count: int = Field(default=0, ge=0)
    tags: list[Annotated[str, StringConstraints(max_length=20)]] = Field(default=[], max_length=5)
    ref: UUID | None = None
    pet: Cat | Dog | None = Field(default=None, discriminator="kind")

    @field_validator("name")
    @classmethod
    def no_marks(cls, value: str) -> str:
        if MARK in value:
            raise ValueError(f"name {value} is reserved")  # a careless message: the extension must not echo it
        return value


class Search(BaseModel):
    q: Annotated[str, StringConstraints(max_length=50)] = ""
    page: int = Field(default=1, ge=1)
    tags: list[str] = []
    sort: Literal["new", "old"] | None = Field(default=None, alias="order")


@pytest.fixture
def build(app_factory: AppFactory) -> Any:
    """An app with validated routes; ``config`` goes to app.config."""

    def make(config: dict[str, Any] | None = None) -> tuple[Flask, ClerkSecurity]:
        app, clerk = app_factory(config)
        calls: list[str] = []
        app.config["VIEW_CALLS"] = calls

        @app.post("/api/notes")
        @clerk.validate(body=Note)
        def add_note(body: Note) -> dict[str, Any]:
            calls.append("notes")
            assert get_validated_body() is body
            return {"note": body.model_dump(mode="json"), "user": current_auth.user_id}

        @app.post("/api/async-notes")
        @clerk.validate(body=Note)
        async def add_note_async(body: Note) -> dict[str, Any]:
            calls.append("async-notes")
            return {"note": body.model_dump(mode="json")}

        @app.get("/api/search")
        @clerk.validate(query=Search)
        def search(query: Search) -> dict[str, Any]:
            assert get_validated_query() is query
            return {"query": query.model_dump(mode="json")}

        @app.post("/api/both")
        @clerk.validate(body=Note, query=Search)
        def both(body: Note, query: Search) -> dict[str, Any]:
            return {"name": body.name, "page": query.page}

        @app.post("/api/admin/require-first")
        @clerk.require(permission="org:notes:manage")
        @clerk.validate(body=Note)
        def require_first(body: Note) -> dict[str, str]:
            return {"name": body.name}

        @app.post("/api/admin/validate-first")
        @clerk.validate(body=Note)
        @clerk.require(permission="org:notes:manage")
        def validate_first(body: Note) -> dict[str, str]:
            return {"name": body.name}

        @app.post("/api/admin/async-validate-first")
        @clerk.validate(body=Note)
        @clerk.require(permission="org:notes:manage")
        async def async_validate_first(body: Note) -> dict[str, str]:
            return {"name": body.name}

        return app, clerk

    return make


@pytest.fixture
def app(build: Any) -> Flask:
    application: Flask = build()[0]
    return application


@pytest.fixture
def auth(clerk_issuer: ClerkTestIssuer) -> dict[str, str]:
    return clerk_issuer.auth_header()


def post_json(client: Any, path: str, value: Any, auth: dict[str, str], **kwargs: Any) -> Any:
    return client.post(path, data=json.dumps(value), content_type="application/json", headers=auth, **kwargs)


# --- the happy path --------------------------------------------------------------------------------------------


def test_valid_body_reaches_the_view_as_a_model(app: Flask, auth: dict[str, str]) -> None:
    response = post_json(app.test_client(), "/api/notes", {"name": "  Groceries ", "tags": ["a", "b"]}, auth)
    assert response.status_code == 200
    assert response.json == {
        "note": {"name": "Groceries", "priority": "low", "count": 0, "tags": ["a", "b"], "ref": None, "pet": None},
        "user": "user_123",
    }


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "APPLICATION/JSON", "application/merge-patch+json"],
)
def test_json_and_structured_json_types_are_accepted(app: Flask, auth: dict[str, str], content_type: str) -> None:
    response = app.test_client().post("/api/notes", data=b'{"name": "x"}', content_type=content_type, headers=auth)
    assert response.status_code == 200, response.json


def test_async_view_gets_the_model(app: Flask, auth: dict[str, str]) -> None:
    client = app.test_client()
    assert post_json(client, "/api/async-notes", {"name": "a", "priority": "high"}, auth).json["note"]["priority"] == (
        "high"
    )
    refused = post_json(client, "/api/async-notes", {"name": ""}, auth)
    assert refused.status_code == 422
    assert app.config["VIEW_CALLS"] == ["async-notes"]


# --- 415 ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "text/json", "application/+json", "application/jsonx"],
)
def test_non_json_content_type_is_415(app: Flask, auth: dict[str, str], content_type: str | None) -> None:
    response = app.test_client().post("/api/notes", data=b'{"name": "x"}', content_type=content_type, headers=auth)
    assert response.status_code == 415
    assert response.json == {"error": "unsupported_media_type"}
    assert response.content_type == "application/json"
    assert app.config["VIEW_CALLS"] == []


# --- 400 ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"", "body must be a JSON object"),
        (b"[1, 2]", "body must be a JSON object"),
        (b'"name"', "body must be a JSON object"),
        (b"null", "body must be a JSON object"),
        (b"not json", "body must be a JSON object"),
        (b'{"name": "x"', "body is not valid JSON"),
        (b'{"name": "x"} trailing', "body is not valid JSON"),
        (b'{"name": "\xff"}', "body is not valid JSON"),
        (b'{"name": ' + b"[" * 5000, "body is not valid JSON"),
        (b"\xef\xbb\xbf{}", "body must be a JSON object"),
    ],
)
def test_malformed_json_or_non_object_is_400(app: Flask, auth: dict[str, str], body: bytes, detail: str) -> None:
    response = app.test_client().post("/api/notes", data=body, content_type="application/json", headers=auth)
    assert response.status_code == 400
    assert response.json == {"error": "malformed_json", "detail": detail}
    assert app.config["VIEW_CALLS"] == []


# --- 422 ----------------------------------------------------------------------------------------------------------


def test_validation_errors_are_422_with_loc_msg_type(app: Flask, auth: dict[str, str]) -> None:
    response = post_json(app.test_client(), "/api/notes", {"priority": "urgent", "count": -1}, auth)
    assert response.status_code == 422
    assert response.json == {
        "error": "validation_failed",
        "errors": [
            {"loc": ["body", "name"], "msg": "Field required", "type": "missing"},
            {"loc": ["body", "priority"], "msg": "Input should be 'low' or 'high'", "type": "literal_error"},
            {
                "loc": ["body", "count"],
                "msg": "Input should be greater than or equal to 0",
                "type": "greater_than_equal",
            },
        ],
    }
    assert app.config["VIEW_CALLS"] == []


def test_strings_are_length_bounded_by_the_model(app: Flask, auth: dict[str, str]) -> None:
    client = app.test_client()
    assert post_json(client, "/api/notes", {"name": "n" * 200}, auth).status_code == 200
    response = post_json(client, "/api/notes", {"name": "n" * 201}, auth)
    assert response.status_code == 422
    assert response.json["errors"] == [
        {"loc": ["body", "name"], "msg": "String should have at most 200 characters", "type": "string_too_long"}
    ]


def test_422_never_echoes_submitted_values(app: Flask, auth: dict[str, str]) -> None:
    secret = "sk_live_0123456789abcdef"
    markup = "<script>alert(1)</script>"
    body = {
        "name": f"  {MARK}{secret}  ",  # the model strips it, then its validator puts it in the message
        "priority": markup,
        "count": secret,
        "tags": [markup * 2],
        "ref": markup,  # pydantic's UUID message quotes an offending character
        "pet": {"kind": secret},  # pydantic's discriminator message quotes the tag
    }
    response = post_json(app.test_client(), "/api/notes", body, auth)
    assert response.status_code == 422
    assert secret not in response.text and "script" not in response.text and "<" not in response.text
    by_field = {error["loc"][1]: error for error in response.json["errors"]}
    assert by_field["name"] == {"loc": ["body", "name"], "msg": GENERIC_MESSAGE, "type": "value_error"}
    assert by_field["ref"]["msg"] == "Input should be a valid UUID"
    assert by_field["pet"]["msg"] == "Input tag does not match any of the expected tags: 'cat', 'dog'"
    assert all(set(error) == {"loc", "msg", "type"} for error in response.json["errors"])


def test_even_a_one_character_value_is_not_echoed(app: Flask, auth: dict[str, str]) -> None:
    response = post_json(app.test_client(), "/api/notes", {"name": MARK}, auth)
    assert response.json["errors"] == [{"loc": ["body", "name"], "msg": GENERIC_MESSAGE, "type": "value_error"}]


def test_validator_messages_without_the_value_are_kept(app_factory: AppFactory, auth: dict[str, str]) -> None:
    class Transfer(BaseModel):
        amount: int

        @field_validator("amount")
        @classmethod
        def even(cls, value: int) -> int:
            if value % 2:
                raise ValueError("amount must be even")
            return value

    app, clerk = app_factory()

    @app.post("/api/transfer")
    @clerk.validate(body=Transfer)
    def transfer(body: Transfer) -> dict[str, int]:
        return {"amount": body.amount}

    response = post_json(app.test_client(), "/api/transfer", {"amount": 3}, auth)
    assert response.json["errors"] == [
        {"loc": ["body", "amount"], "msg": "Value error, amount must be even", "type": "value_error"}
    ]


def test_error_list_and_long_keys_are_bounded(app_factory: AppFactory, auth: dict[str, str]) -> None:
    class Scores(BaseModel):
        scores: dict[str, int]

    app, clerk = app_factory()

    @app.post("/api/scores")
    @clerk.validate(body=Scores)
    def scores(body: Scores) -> dict[str, int]:
        return {"n": len(body.scores)}

    key = "k" * 5000
    payload = {"scores": {key: "x", **{f"s{i}": "x" for i in range(500)}}}
    response = post_json(app.test_client(), "/api/scores", payload, auth)
    assert response.status_code == 422
    errors = response.json["errors"]
    assert len(errors) == MAX_REPORTED_ERRORS
    assert errors[0]["loc"] == ["body", "scores", SUBMITTED_KEY]
    assert len(response.data) < 8000


HOSTILE = ("<img src=x onerror=alert(1)>", "sk_live_0123456789abcdef", "\u00a7k")


class Strict(BaseModel):
    """Hostile keys reach pydantic's ``loc`` (extra keys, dict keys) and validators that quote them."""

    model_config = ConfigDict(extra="forbid")
    scores: dict[str, int] = {}
    labels: dict[str, Annotated[str, StringConstraints(max_length=3)]] = {}

    @field_validator("scores")
    @classmethod
    def known_keys(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = [key for key in value if not key.isalnum()]
        if unknown:
            raise ValueError(f"unknown score {unknown[0]}")  # quotes a submitted key
        return value

    @model_validator(mode="after")
    def total(self) -> Strict:
        if self.labels and sum(self.scores.values()) < 0:
            raise ValueError(f"scores must be positive for labels {sorted(self.labels)}")  # quotes a sibling's keys
        return self


def test_422_never_echoes_submitted_keys(app_factory: AppFactory, auth: dict[str, str]) -> None:
    app, clerk = app_factory()

    @app.post("/api/strict")
    @clerk.validate(body=Strict, query=Strict)
    def strict(body: Strict, query: Strict) -> dict[str, str]:
        return {}

    client = app.test_client()
    for key in HOSTILE:
        bodies = [
            {key: 1},  # extra_forbidden: loc is the key
            {"scores": {key: 1}},  # the validator's message quotes the key
            {"scores": {"a": "x", key: "y"}},  # int_parsing under a dict key
            {"labels": {key: "long value"}, "scores": {"a": -1}},  # a model validator quotes the keys
            {"labels": {"ok": key}},  # a submitted value
        ]
        for body in bodies:
            response = client.post("/api/strict", query_string={key: key}, json=body, headers=auth)
            assert response.status_code == 422, body
            text = response.get_data(as_text=True)
            assert key not in text and json.dumps(key)[1:-1] not in text, (body, text)
            assert "onerror" not in text and "<img" not in text and "0123456789" not in text, (body, text)
    errors = client.post("/api/strict", json={"scores": {"a": "x", "<k>": "y"}, "x": 1}, headers=auth).json
    assert {
        "loc": ["body", "scores", SUBMITTED_KEY],
        "msg": "Input should be a valid integer, unable to parse string as an integer",
        "type": "int_parsing",
    } in errors["errors"]
    assert {"loc": ["body", SUBMITTED_KEY], "msg": "Extra inputs are not permitted", "type": "extra_forbidden"} in (
        errors["errors"]
    )


def test_apps_customise_the_answers_with_errorhandler(app: Flask, auth: dict[str, str]) -> None:
    @app.errorhandler(ValidationFailed)
    def invalid(error: ValidationFailed) -> tuple[dict[str, Any], int]:
        return {"problems": len(error.errors)}, 422

    @app.errorhandler(413)
    def too_large(error: Exception) -> tuple[dict[str, Any], int]:
        assert isinstance(error, BodyTooLarge)
        return {"too": "big"}, 413

    client = app.test_client()
    assert post_json(client, "/api/notes", {}, auth).json == {"problems": 1}
    assert post_json(client, "/api/notes", {"name": "x" * (2 << 20)}, auth).json == {"too": "big"}


# --- 413 ----------------------------------------------------------------------------------------------------------


class _UnreadableStream:
    """A request body that fails the test if anything reads it."""

    def read(self, *args: Any) -> bytes:
        raise AssertionError("the body was read although Content-Length was over the limit")

    readline = read


class _EndlessJSON:
    """A streamed body without Content-Length that never ends; counts what was read."""

    def __init__(self) -> None:
        self.read_bytes = 0
        self._head = b'{"name": "'

    def read(self, size: int = -1) -> bytes:
        assert size > 0, "an unbounded read of a streamed body"
        chunk = (self._head + b"a" * size)[:size]
        self._head = b""
        self.read_bytes += len(chunk)
        return chunk


def test_default_limit_is_one_mebibyte(app: Flask, auth: dict[str, str]) -> None:
    client = app.test_client()
    padding = {"name": "x", "pad": "p" * ((1 << 20) - 40)}
    assert post_json(client, "/api/notes", padding, auth).status_code == 200
    response = post_json(client, "/api/notes", {"name": "x", "pad": "p" * (1 << 20)}, auth)
    assert response.status_code == 413
    assert response.json == {"error": "payload_too_large", "max_bytes": 1 << 20}


def test_content_length_over_the_limit_is_413_without_reading(build: Any, auth: dict[str, str]) -> None:
    app, _ = build({"CLERK_MAX_BODY_BYTES": 1000})
    response = app.test_client().post(
        "/api/notes",
        content_type="application/json",
        headers=auth,
        environ_overrides={"wsgi.input": _UnreadableStream(), "CONTENT_LENGTH": "1001"},
    )
    assert response.status_code == 413
    assert response.json == {"error": "payload_too_large", "max_bytes": 1000}
    assert app.config["VIEW_CALLS"] == []


@pytest.mark.parametrize(("clerk_limit", "flask_limit", "effective"), [(1000, 500, 500), (500, 1000, 500)])
def test_the_smaller_of_clerk_and_flask_limits_wins(
    build: Any, auth: dict[str, str], clerk_limit: int, flask_limit: int, effective: int
) -> None:
    app, _ = build({"CLERK_MAX_BODY_BYTES": clerk_limit, "MAX_CONTENT_LENGTH": flask_limit})
    client = app.test_client()
    fits = json.dumps({"name": "x" * (effective - 20)})
    assert len(fits) <= effective
    assert client.post("/api/notes", data=fits, content_type="application/json", headers=auth).status_code == 422
    too_big = json.dumps({"name": "x" * effective})
    response = client.post("/api/notes", data=too_big, content_type="application/json", headers=auth)
    assert response.status_code == 413
    assert response.json == {"error": "payload_too_large", "max_bytes": effective}


@pytest.mark.parametrize("flask_limit", [None, 700])
def test_streamed_body_read_is_bounded(build: Any, auth: dict[str, str], flask_limit: int | None) -> None:
    app, _ = build({"CLERK_MAX_BODY_BYTES": 1000, "MAX_CONTENT_LENGTH": flask_limit})
    body = _EndlessJSON()
    response = app.test_client().post(
        "/api/notes",
        content_type="application/json",
        headers=auth,
        environ_overrides={"wsgi.input": body, "wsgi.input_terminated": True},
    )
    limit = flask_limit or 1000
    assert response.status_code == 413
    assert response.json == {"error": "payload_too_large", "max_bytes": limit}
    assert body.read_bytes <= limit + 1


@pytest.fixture
def served(build: Any) -> Iterator[str]:
    """The app on a real HTTP server on 127.0.0.1 (werkzeug's, which decodes chunked bodies)."""
    app, _ = build({"CLERK_MAX_BODY_BYTES": 4096})
    with serve_app(app) as url:
        yield url


def _chunks(total: int) -> Iterator[bytes]:
    yield b'{"name": "'
    for _ in range(total // 512):
        yield b"n" * 512
    yield b'", "priority": "high"}'


def test_chunked_body_over_http(served: str, auth: dict[str, str]) -> None:
    headers = {"Content-Type": "application/json", **auth}
    small = requests.post(f"{served}/api/notes", data=_chunks(0), headers=headers, timeout=10)
    assert small.request.headers.get("Transfer-Encoding") == "chunked"
    assert small.status_code == 422  # empty name: the streamed body was read and validated
    large = requests.post(f"{served}/api/notes", data=_chunks(64 * 1024), headers=headers, timeout=10)
    assert large.request.headers.get("Transfer-Encoding") == "chunked"
    assert large.status_code == 413
    assert large.json() == {"error": "payload_too_large", "max_bytes": 4096}


# --- query strings --------------------------------------------------------------------------------------------


def test_query_string_is_parsed_into_the_model(app: Flask, auth: dict[str, str]) -> None:
    response = app.test_client().get("/api/search?q=tea&page=3&tags=a&tags=b&order=new&extra=1", headers=auth)
    assert response.status_code == 200
    assert response.json == {"query": {"q": "tea", "page": 3, "tags": ["a", "b"], "sort": "new"}}
    single = app.test_client().get("/api/search?tags=only", headers=auth)
    assert single.json["query"]["tags"] == ["only"]


def test_query_errors_are_422(app: Flask, auth: dict[str, str]) -> None:
    response = app.test_client().get("/api/search?page=zero&q=" + "x" * 51 + "&order=%3Cb%3E", headers=auth)
    assert response.status_code == 422
    assert response.json["errors"] == [
        {"loc": ["query", "q"], "msg": "String should have at most 50 characters", "type": "string_too_long"},
        {
            "loc": ["query", "page"],
            "msg": "Input should be a valid integer, unable to parse string as an integer",
            "type": "int_parsing",
        },
        {"loc": ["query", "order"], "msg": "Input should be 'new' or 'old'", "type": "literal_error"},
    ]


def test_repeated_key_for_a_single_value_field_is_422(app: Flask, auth: dict[str, str]) -> None:
    response = app.test_client().get("/api/search?page=1&page=2", headers=auth)
    assert response.status_code == 422
    assert response.json["errors"][0]["loc"] == ["query", "page"]


def test_body_and_query_errors_share_one_422(app: Flask, auth: dict[str, str]) -> None:
    client = app.test_client()
    response = post_json(client, "/api/both?page=0", {"name": ""}, auth)
    assert response.status_code == 422
    assert [error["loc"] for error in response.json["errors"]] == [["body", "name"], ["query", "page"]]
    assert post_json(client, "/api/both?page=2", {"name": "n"}, auth).json == {"name": "n", "page": 2}
    # A body that is not JSON is refused before the query is looked at.
    assert client.post("/api/both?page=0", data="x", headers=auth).status_code == 415


# --- composition with require() -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/admin/require-first", "/api/admin/validate-first", "/api/admin/async-validate-first"]
)
def test_composes_with_require_in_either_order(app: Flask, clerk_issuer: ClerkTestIssuer, path: str) -> None:
    client = app.test_client()
    manager = clerk_issuer.auth_header(org={"id": "org_1", "role": "admin", "permissions": {"notes": ["manage"]}})
    member = clerk_issuer.auth_header(org={"id": "org_1", "role": "member"})
    assert post_json(client, path, {"name": "ok"}, manager).json == {"name": "ok"}
    assert post_json(client, path, {"name": ""}, manager).status_code == 422
    assert post_json(client, path, {"name": "ok"}, member).status_code == 403
    assert client.post(path, data=b"{}", content_type="application/json").status_code == 401


def test_order_decides_which_check_runs_first(app: Flask, clerk_issuer: ClerkTestIssuer) -> None:
    client = app.test_client()
    member = clerk_issuer.auth_header(org={"id": "org_1", "role": "member"})
    # require() outermost: a caller without the permission learns nothing about the schema.
    assert post_json(client, "/api/admin/require-first", {}, member).status_code == 403
    assert post_json(client, "/api/admin/validate-first", {}, member).status_code == 422


def test_signed_out_request_is_401_before_validation(app: Flask) -> None:
    response = app.test_client().post("/api/notes", data=b"not json", content_type="text/plain")
    assert response.status_code == 401


# --- misuse fails at decoration time --------------------------------------------------------------------------


def test_misuse_fails_loudly_at_decoration(app_factory: AppFactory) -> None:
    _, clerk = app_factory()
    with pytest.raises(TypeError, match="needs body=Model, query=Model or both"):
        clerk.validate()
    with pytest.raises(TypeError, match="pydantic BaseModel subclass"):
        clerk.validate(body=dict)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="pydantic BaseModel subclass"):
        clerk.validate(query=Note.model_construct())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="RootModel is not supported"):
        clerk.validate(body=RootModel[list[int]])
    with pytest.raises(TypeError, match="must accept the keyword argument"):

        @clerk.validate(body=Note, query=Search)
        def view(body: Note) -> None: ...

    @clerk.validate(body=Note, query=Search)
    def flexible(**kwargs: Any) -> None: ...


def test_accessors_fail_loudly_without_validation(app: Flask) -> None:
    with pytest.raises(RuntimeError, match="No validated body"):
        get_validated_body()
    with app.test_request_context("/"), pytest.raises(RuntimeError, match=r"@clerk.validate\(query=...\)"):
        get_validated_query()


@pytest.mark.parametrize("value", ["0", "-1", "lots", "1.5"])
def test_bad_max_body_bytes_fails_at_init(app_factory: AppFactory, value: str) -> None:
    with pytest.raises(ConfigurationError, match="CLERK_MAX_BODY_BYTES"):
        app_factory({"CLERK_MAX_BODY_BYTES": value})


# --- fuzzing: never a 5xx -------------------------------------------------------------------------------------

_json_leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
_marked = st.text(max_size=20).map(lambda text: MARK + text)
_json = st.recursive(
    _json_leaf | _marked,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)
_note_like = st.fixed_dictionaries(
    {},
    optional={
        "name": _json | _marked,
        "priority": _json | st.sampled_from(["low", "high"]),
        "count": _json,
        "tags": _json | st.lists(_marked, max_size=7),
        "ref": _json | st.uuids().map(str),
        "pet": _json | st.fixed_dictionaries({"kind": _json | _marked}),
    },
)
_content_types = st.sampled_from(
    ["application/json", "application/vnd.api+json", "text/plain", "multipart/form-data; boundary=x", ""]
) | st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
_fuzz_settings = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@pytest.fixture
def fuzz_app(build: Any) -> Flask:
    """One app for every example of a fuzz test (requests do not change it); a 1 KiB limit so 413 comes up."""
    application: Flask = build({"CLERK_MAX_BODY_BYTES": 1024})[0]
    return application


def _assert_clean_answer(response: Any) -> None:
    assert response.status_code in ALLOWED_STATUSES, response.data[:200]
    if response.status_code != 200:
        assert response.content_type == "application/json"
        assert set(response.json) <= {"error", "errors", "detail", "max_bytes"}
    if response.status_code == 422:
        assert all(MARK not in error["msg"] for error in response.json["errors"]), response.json


@_fuzz_settings
@given(body=st.binary(max_size=1500), content_type=_content_types)
def test_fuzz_random_bytes_and_content_types(
    fuzz_app: Flask, auth: dict[str, str], body: bytes, content_type: str
) -> None:
    response = fuzz_app.test_client().post("/api/notes", data=body, headers={**auth, "Content-Type": content_type})
    _assert_clean_answer(response)


@_fuzz_settings
@given(value=_note_like | _json, pad=st.integers(0, 1200))
def test_fuzz_json_bodies(fuzz_app: Flask, auth: dict[str, str], value: Any, pad: int) -> None:
    text = json.dumps(value) + " " * pad
    response = fuzz_app.test_client().post("/api/notes", data=text, content_type="application/json", headers=auth)
    _assert_clean_answer(response)
    if isinstance(value, dict) and len(text.encode()) <= 1024:
        assert response.status_code in {200, 422}


@_fuzz_settings
@given(pairs=st.lists(st.tuples(st.sampled_from(["q", "page", "tags", "order", "x"]) | st.text(), st.text())))
def test_fuzz_query_strings(fuzz_app: Flask, auth: dict[str, str], pairs: list[tuple[str, str]]) -> None:
    response = fuzz_app.test_client().get("/api/search", query_string=pairs, headers=auth)
    assert response.status_code in {200, 422}
