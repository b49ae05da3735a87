"""jsvalues: JavaScript's ``JSON.stringify``, ``String()`` and ``toUTCString`` against node itself, and never an
exception on any JSON value (Clerk's messages quote attacker-chosen claims with them)."""

from __future__ import annotations

import json
import math
import random
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flask_clerk_security.jsvalues import UNDEFINED, js_json, js_number_string, js_string, js_utc_string

from .oracle import run_node_raw

#: JSON texts whose values JavaScript writes in its own way: number formats, huge and tiny numbers, string escapes,
#: lone surrogates, object key order (array indices first), duplicate keys, deep nesting.
TEXTS = [
    "1", "-0", "0.1", "1e21", "1e20", "123456789012345678901234567890", "1e-7", "0.000001", "1.5e300", "1e400",
    "-1e400", "9" * 400, "-" + "9" * 400, "5e-324", "1.7976931348623157e308", "0.1e2", "1.25", "-1.5e-10",
    '"a\\"b\\\\c\\n\\t\\u0001\\u001f\\u007f\\u0085\\u00e9\\u2028\\ud800x\\udfff\\ud83d\\ude00"', '"\\u0000\\b\\f\\r"',
    "null", "true", "false", '""', "[]", "{}", "[[]]", "[null,null]", "[[null],[],[[1]]]", '[1,[2,[3,null]],{}]',
    '{"b":1,"a":2,"10":3,"2":4,"01":5,"4294967294":6,"4294967295":7,"-1":8,"\\u0661":9}', '{"__proto__":1}',
    '{"a":1,"a":2,"b":3}', '{"a":{"b":[1,"x",{"c":null}]}}', "[1e400,-0,0.5]", "[" * 900 + "]" * 900,
    '["RS256","JWT"]', '"https://clerk.example.com"', '"\\u00ff\\u0100"',
    "9007199254740992", "-9007199254740992", "9007199254740993", "9007199254740994", "18014398509481984", "-0.0",
    "1e15", "100", "2.0", "-3", '" \\u00a0~\\u007f"', '"\\ud7ff\\ue000\\uffff"', '{"1":1,"0":2,"00":3,"b":4}',
]  # fmt: skip
#: Times (ms) around the edges of JavaScript's dates: the epoch, year 0 and before, leap days, the ±8.64e15 limit.
DATES = [
    0, -1, 1, 8.64e15, -8.64e15, 8.64e15 + 1, -8.64e15 - 1, -62198755200000, -62135596800000, -62167219200000,
    -62167219200001, 253402300799000, 253402300800000, 951782400000, 951868800000, 4107542400000, -2208988800000,
    -30610224000000, math.nan,
]  # fmt: skip


def _parse(text: str) -> Any:
    """A JSON text as the token decoder reads it (integers of 300 digits or more as doubles)."""
    return json.loads(text, parse_int=lambda digits: int(digits) if len(digits) < 300 else float(digits))


def test_values_are_written_as_node_writes_them(conformance_node: str) -> None:
    rng = random.Random(20261201)
    dates = DATES + [rng.randint(-8_640_000_000_000_000, 8_640_000_000_000_000) for _ in range(300)]
    node_dates = [ms if math.isfinite(ms) else None for ms in dates]  # JSON has no NaN (the script reads null)
    theirs = run_node_raw(conformance_node, "js_values.mjs", {"texts": TEXTS, "dates": node_dates})
    for text, (stringified, string) in zip(TEXTS, theirs["texts"], strict=True):
        value = _parse(text)
        assert (js_json(value), js_string(value)) == (stringified, string), text[:80]
    for ms, utc in zip(dates, theirs["dates"], strict=True):
        assert js_utc_string(ms) == utc, ms


def test_numbers_json_cannot_hold_are_written_as_javascript_writes_them() -> None:
    """``String(NaN)``, ``String(Infinity)``: what a cookie's number arithmetic can give (``Number("x") + 1``)."""
    assert [js_number_string(n) for n in (math.nan, math.inf, -math.inf, -0.0, -2.5e-7)] == [
        "NaN", "Infinity", "-Infinity", "0", "-2.5e-7",
    ]


def test_undefined_as_a_template_literal_writes_it() -> None:
    assert (js_json(UNDEFINED), js_string(UNDEFINED)) == ("undefined", "undefined")


def test_integers_beyond_a_double_are_infinite_as_in_javascript() -> None:
    assert (js_json(10**400), js_string(10**400), js_string(-(10**400))) == ("null", "Infinity", "-Infinity")


def test_deep_nesting_needs_no_recursion() -> None:
    depth = sys.getrecursionlimit() * 3
    assert js_json(_nested(depth)) == "[" * depth + "]" * depth
    assert js_string(_nested(depth)) == ""


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=20,
)


@given(JSON_VALUES)
def test_any_value_is_written_without_an_exception(value: Any) -> None:
    assert isinstance(js_json(value), str) and isinstance(js_string(value), str)


@given(st.floats() | st.integers(min_value=-(10**20), max_value=10**20))
def test_any_time_is_written_without_an_exception(ms: float) -> None:
    assert js_utc_string(ms).endswith(" GMT") or js_utc_string(ms) == "Invalid Date"


@pytest.mark.parametrize(("ms", "expected"), [(0, "Thu, 01 Jan 1970 00:00:00 GMT"), (math.nan, "Invalid Date")])
def test_utc_strings_without_node(ms: float, expected: str) -> None:
    assert js_utc_string(ms) == expected


@given(JSON_VALUES, st.integers(min_value=0, max_value=40))
def test_a_limit_cuts_the_same_text_and_says_so(value: Any, limit: int) -> None:
    """``limit``: the first ``limit`` characters of the whole text, then ``...``; the whole text when it fits."""
    for write in (js_json, js_string):
        whole, cut = write(value), write(value, limit)
        assert cut == (whole if len(whole) <= limit else whole[:limit] + "...")
