"""``validate(body=Model, query=Model)``: request input parsed by pydantic before the view runs.

The body must be a JSON object (``application/json`` or ``application/*+json``) no larger than the smaller of
``CLERK_MAX_BODY_BYTES`` and Flask's ``MAX_CONTENT_LENGTH``; the answers are 415, 413, 400 and 422, in that
order, each a short JSON body. Error messages never carry the submitted values.
"""

from __future__ import annotations

import functools
import inspect
import json
import types
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal, TypeVar, Union, cast, get_args, get_origin

import pydantic_core
from flask import g, has_request_context, request
from pydantic import AliasChoices, BaseModel, RootModel, ValidationError
from pydantic.fields import FieldInfo
from werkzeug.exceptions import RequestEntityTooLarge

from .errors import BodyTooLarge, MalformedJSON, UnsupportedContentType, ValidationFailed
from .state import get_state

F = TypeVar("F", bound=Callable[..., Any])
Part = Literal["body", "query"]

_G_VALIDATED = "_clerk_security_validated"
_READ_CHUNK = 64 * 1024
_JSON_WHITESPACE = b" \t\r\n"
#: At most this many errors are reported, and ``loc`` strings are cut to this length: a 1 MiB body must not
#: turn into a larger 422.
MAX_REPORTED_ERRORS = 50
MAX_LOC_CHARS = 64
#: A message is replaced by this when it repeats a submitted string (a validator's ``f"bad {value}"``).
GENERIC_MESSAGE = "Invalid value"
#: A ``loc`` item that is a submitted dict key (not a field the model declares) is shown as this.
SUBMITTED_KEY = "<key>"
#: In pydantic's own messages, input strings shorter than this are not looked for ("a" is in most sentences).
_MIN_ECHO_CHARS = 3
_MAX_ECHO_LEAVES = 10_000
_SEQUENCE_ORIGINS = (list, set, frozenset, tuple)
_DEVELOPER_TYPES = frozenset({"value_error", "assertion_error"})
_CORE_TYPES = frozenset(get_args(pydantic_core.core_schema.ErrorType))


def is_json_content_type(mimetype: str) -> bool:
    """``application/json`` or a structured-syntax ``application/<name>+json`` type (RFC 6839)."""
    if mimetype == "application/json":
        return True
    kind, _, subtype = mimetype.partition("/")
    return kind == "application" and subtype.endswith("+json") and len(subtype) > len("+json")


def body_limit() -> int:
    """The byte limit for the current request: ``CLERK_MAX_BODY_BYTES`` or ``MAX_CONTENT_LENGTH``, the smaller."""
    limit = get_state().settings.max_body_bytes
    flask_limit = request.max_content_length
    return limit if flask_limit is None else min(limit, flask_limit)


def read_body(limit: int) -> bytes:
    """The request body, refused with 413 from ``Content-Length`` alone or once a streamed read passes ``limit``."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        stream = request.stream
        while size <= limit:
            chunk = stream.read(min(_READ_CHUNK, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except RequestEntityTooLarge:  # werkzeug's own MAX_CONTENT_LENGTH guard on a streamed body
        size = limit + 1
    if size > limit:
        raise BodyTooLarge(limit)
    return b"".join(chunks)


def parse_body(model: type[BaseModel]) -> BaseModel:
    """415 unless JSON, 413 when too large, 400 unless a JSON object, 422 when the model refuses it."""
    if not is_json_content_type(request.mimetype):
        raise UnsupportedContentType()
    data = read_body(body_limit())
    if not data.lstrip(_JSON_WHITESPACE).startswith(b"{"):
        raise MalformedJSON("body must be a JSON object")
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" and not error["loc"] for error in exc.errors()):
            raise MalformedJSON("body is not valid JSON") from None
        raise ValidationFailed(safe_errors(exc, "body", _submitted_json(data), _declared_names(model))) from None


def _is_sequence(annotation: Any) -> bool:
    """Whether a field takes several values: ``list[int]``, ``set[str] | None``, ``tuple[str, ...]``."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return any(_is_sequence(arg) for arg in get_args(annotation) if arg is not type(None))
    return origin in _SEQUENCE_ORIGINS or annotation in _SEQUENCE_ORIGINS


def _sequence_keys(model: type[BaseModel]) -> frozenset[str]:
    """The query keys (field names and string aliases) whose field takes a list."""
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        if not _is_sequence(field.annotation):
            continue
        keys.update(_field_names(name, field))
    return frozenset(keys)


def _field_names(name: str, field: FieldInfo) -> set[str]:
    """A field's name and its string aliases: the keys a client may send for it."""
    names = {name}
    for alias in (field.alias, field.validation_alias):
        if isinstance(alias, str):
            names.add(alias)
        elif isinstance(alias, AliasChoices):
            names.update(choice for choice in alias.choices if isinstance(choice, str))
    return names


def parse_query(model: type[BaseModel], sequence_keys: frozenset[str]) -> BaseModel:
    """The query string as ``model``: list fields get every value, a repeated key for a single field is a 422."""
    data: dict[str, Any] = {}
    for key, values in request.args.lists():
        data[key] = values if key in sequence_keys or len(values) > 1 else values[0]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(safe_errors(exc, "query", data, _declared_names(model))) from None


def _submitted_json(data: bytes) -> Any:
    """The submitted body as plain JSON values (``None`` if it does not parse), to tell its keys and strings."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None


def _declared_names(model: type[BaseModel]) -> frozenset[str]:
    """Field names and string aliases of ``model`` and of every model its annotations reach."""
    names: set[str] = set()
    seen: set[type[BaseModel]] = set()
    stack: list[Any] = [model]
    while stack:
        item = stack.pop()
        if isinstance(item, type) and issubclass(item, BaseModel):
            if item in seen:
                continue
            seen.add(item)
            for name, field in item.model_fields.items():
                names.update(_field_names(name, field))
                stack.append(field.annotation)
        else:
            stack.extend(get_args(item))
    return frozenset(names)


def _string_leaves(value: Any) -> Iterator[str]:
    """The strings inside a submitted value (dict keys and values, list items, depth first)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, Mapping):
            stack.extend(key for key in item if isinstance(key, str))
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)


def _normal(text: str) -> str:
    """Text as a comparison sees it: models often strip, case-fold or NFKC-normalise a value before complaining."""
    return unicodedata.normalize("NFKC", text).strip().casefold()


def _normal_leaves(value: Any, known: frozenset[str]) -> frozenset[str] | None:
    """The submitted strings of 3 characters or more, normalised, ``known`` names aside; ``None`` when there are
    too many to check (then every message is replaced). Computed once per 422, not once per error."""
    leaves: set[str] = set()
    for count, leaf in enumerate(_string_leaves(value)):
        if count >= _MAX_ECHO_LEAVES:
            return None
        if leaf not in known:
            normal = _normal(leaf)
            if len(normal) >= _MIN_ECHO_CHARS:
                leaves.add(normal)
    return frozenset(leaves)


def _echoes(value: Any, message: str, min_chars: int) -> bool:
    """Whether ``message`` repeats a submitted string (or the input is too large to tell)."""
    normal_message = _normal(message)
    for count, leaf in enumerate(_string_leaves(value)):
        if count >= _MAX_ECHO_LEAVES:
            return True
        normal_leaf = _normal(leaf)
        if len(normal_leaf) >= min_chars and normal_leaf in normal_message:
            return True
    return False


def safe_message(error: Mapping[str, Any], submitted_leaves: frozenset[str] | None = frozenset()) -> str:
    """pydantic's message without anything taken from the input.

    Parser details (``Input should be a valid UUID, invalid character: found `<` at 1``) are cut after the fixed
    part and a discriminator's tag is dropped. A message of the app's own validators (``value_error``,
    ``assertion_error``, custom types) that contains any string of the error's input (keys too), however short,
    becomes :data:`GENERIC_MESSAGE`; so does any message that still contains a string of 3 characters or more from
    the error's input or among ``submitted_leaves`` (:func:`_normal_leaves` of the whole body or query: a model
    validator may quote a sibling).
    """
    kind = str(error["type"])
    from_app = kind in _DEVELOPER_TYPES or kind not in _CORE_TYPES
    message = str(error["msg"])
    ctx = error.get("ctx") or {}
    if kind == "union_tag_invalid":
        message = f"Input tag does not match any of the expected tags: {ctx.get('expected_tags', '')}"
    elif not from_app and isinstance(ctx.get("error"), str):
        cut = message.find(ctx["error"])
        if cut > 0:
            message = message[:cut].rstrip(" ,:")
    if _echoes(error.get("input"), message, 1 if from_app else _MIN_ECHO_CHARS):
        return GENERIC_MESSAGE
    if submitted_leaves is None:
        return GENERIC_MESSAGE
    normal_message = _normal(message)
    if any(leaf in normal_message for leaf in submitted_leaves):
        return GENERIC_MESSAGE
    return message


def _submitted_keys(value: Any) -> frozenset[str]:
    """Every dict key of a submitted value, at any depth (one pass over a body already bounded in size)."""
    keys: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            keys.update(key for key in item if isinstance(key, str))
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return frozenset(keys)


def _loc_item(item: int | str, submitted_keys: frozenset[str], declared: frozenset[str]) -> int | str:
    """A ``loc`` item: a submitted dict key the model does not declare is :data:`SUBMITTED_KEY`; any other string
    (a field name, a union member's schema name) is cut to :data:`MAX_LOC_CHARS`."""
    if not isinstance(item, str):
        return item
    if item in submitted_keys and item not in declared:
        return SUBMITTED_KEY
    return item[:MAX_LOC_CHARS] + "..." if len(item) > MAX_LOC_CHARS else item


def safe_errors(
    exc: ValidationError, part: Part, submitted: Any = None, declared: frozenset[str] = frozenset()
) -> list[dict[str, Any]]:
    """``[{loc, msg, type}]`` for a 422: ``loc`` starts with ``"body"``/``"query"``; no input, no context, and no
    submitted key (``submitted`` is the body or query as received, ``declared`` the names the model knows)."""
    keys = _submitted_keys(submitted)
    leaves = _normal_leaves(submitted, declared)
    return [
        {
            "loc": [part, *(_loc_item(item, keys, declared) for item in error["loc"])],
            "msg": safe_message(error, leaves),
            "type": error["type"],
        }
        for error in exc.errors(include_url=False)[:MAX_REPORTED_ERRORS]
    ]


def get_validated_body() -> BaseModel:
    """The body model instance ``@clerk.validate(body=...)`` produced for the current request."""
    return _get_validated("body")


def get_validated_query() -> BaseModel:
    """The query model instance ``@clerk.validate(query=...)`` produced for the current request."""
    return _get_validated("query")


def _get_validated(part: Part) -> BaseModel:
    validated: dict[str, BaseModel] | None = g.get(_G_VALIDATED) if has_request_context() else None
    if validated is None or part not in validated:
        raise RuntimeError(f"No validated {part} for this request: decorate the view with @clerk.validate({part}=...).")
    return validated[part]


def _check_model(name: str, model: Any) -> None:
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"validate({name}=...) takes a pydantic BaseModel subclass, got {model!r}")
    if issubclass(model, RootModel):
        raise TypeError(f"validate({name}={model.__name__}): the {name} must be an object; RootModel is not supported")


def _check_view(func: Callable[..., Any], names: list[str]) -> None:
    parameters = inspect.signature(func).parameters.values()
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters):
        return
    accepted = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    missing = [name for name in names if name not in accepted]
    if missing:
        raise TypeError(
            f"view {func.__qualname__} must accept the keyword argument(s) {', '.join(missing)} "
            f"that @clerk.validate passes, e.g. def {func.__name__}({missing[0]}: Model): ..."
        )


def validate(*, body: type[BaseModel] | None = None, query: type[BaseModel] | None = None) -> Callable[[F], F]:
    """Decorator: parse the JSON body and/or the query string into pydantic models and pass them to the view
    as the keyword arguments ``body=`` and ``query=``. Misuse raises ``TypeError`` at decoration time."""
    if body is None and query is None:
        raise TypeError("validate() needs body=Model, query=Model or both")
    if body is not None:
        _check_model("body", body)
    if query is not None:
        _check_model("query", query)
    sequence_keys = _sequence_keys(query) if query is not None else frozenset()

    def parse() -> dict[str, BaseModel]:
        # Transport errors (415/413/400) come first; the body's and the query's field errors share one 422.
        parsed: dict[str, BaseModel] = {}
        errors: list[dict[str, Any]] = []
        for part, model in (("body", body), ("query", query)):
            if model is None:
                continue
            try:
                parsed[part] = parse_body(model) if part == "body" else parse_query(model, sequence_keys)
            except ValidationFailed as exc:
                errors.extend(exc.errors)
        if errors:
            raise ValidationFailed(errors[:MAX_REPORTED_ERRORS])
        setattr(g, _G_VALIDATED, parsed)
        return parsed

    def decorator(func: F) -> F:
        _check_view(func, [name for name, model in (("body", body), ("query", query)) if model is not None])
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                return await func(*args, **kwargs, **parse())

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return func(*args, **kwargs, **parse())

        return cast(F, wrapper)

    return decorator
