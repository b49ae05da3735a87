"""JSON values written the way JavaScript writes them, for Clerk's messages and its cookie arithmetic.

``String(value)``, ``JSON.stringify(value)``, ``Number.prototype.toString()`` and ``Date.prototype.toUTCString()``
over values as :func:`json.loads` gives them (``UNDEFINED`` for a member that is absent). Every function is total:
a value an attacker wrote (nested 900 deep, a 400-digit number, a lone surrogate) is written, never raised on.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from decimal import Decimal
from typing import Any


class _Undefined:
    """JavaScript's ``undefined``: a claim the token does not carry (``None`` is JSON's ``null``)."""


UNDEFINED: Any = _Undefined()

_DAYS = ("Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed")  # day 0 (1 January 1970) was a Thursday
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MS_PER_DAY = 86_400_000
_MAX_ARRAY_INDEX = 2**32 - 2
#: 2**53: every integer up to it is a double, written as its digits.
_MAX_SAFE = float(2**53)
#: How much of a value Clerk's messages quote: as much as ``x-clerk-auth-message`` ever carries (1,024 characters,
#: ``errors.MAX_AUTH_MESSAGE``), so the header is the same, while quoting a 16 KB claim costs what 1 KB does.
#: Beyond it: ``...``.
QUOTE_LIMIT = 1024
_CUT = "..."
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def js_double(value: int | float) -> float:
    """A JSON number as JavaScript holds it: a double, ``±inf`` past its range (``JSON.parse("1e400")``)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def js_number_string(number: float) -> str:
    """JavaScript's ``Number.prototype.toString()``: shortest round-trip digits, JavaScript's exponent rules."""
    if number.is_integer() and -_MAX_SAFE <= number <= _MAX_SAFE:  # its digits, exactly (-0 too: "0")
        return str(int(number))
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    if number < 0:
        return "-" + js_number_string(-number)
    _, shortest, exponent = Decimal(repr(number)).normalize().as_tuple()
    digits = "".join(map(str, shortest))
    point = len(digits) + int(exponent)
    if len(digits) <= point <= 21:
        return digits + "0" * (point - len(digits))
    if 0 < point <= 21:
        return f"{digits[:point]}.{digits[point:]}"
    if -6 < point <= 0:
        return "0." + "0" * -point + digits
    shown = digits[0] + (f".{digits[1:]}" if len(digits) > 1 else "")
    return f"{shown}e{'+' if point > 0 else '-'}{abs(point - 1)}"


def _scalar_string(value: Any) -> str:
    if value is UNDEFINED:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return js_number_string(js_double(value))
    if isinstance(value, str):
        return value
    return "[object Object]"


def js_string(value: Any, limit: int | None = None) -> str:
    """``String(value)`` (what a template literal writes): a list is its items joined with ``,`` (``null`` items
    empty, nested lists flattened the same way), an object ``[object Object]``. With ``limit``, at most that many
    characters of it, then ``...``; the writing stops there."""
    if not isinstance(value, list):
        return _cut(_scalar_string(value), limit)
    out: list[str] = []
    size = 0
    stack: list[tuple[list[Any], int]] = [(value, 0)]  # (list, next index): no recursion, any depth
    while stack:
        if limit is not None and size > limit:
            return _cut("".join(out), limit)
        items, index = stack.pop()
        if index == len(items):
            continue
        stack.append((items, index + 1))
        if index:
            out.append(",")
            size += 1
        item = items[index]
        if isinstance(item, list):
            stack.append((item, 0))
        elif item is not None:
            out.append(_scalar_string(item))
            size += len(out[-1])
    return _cut("".join(out), limit)


def _cut(text: str, limit: int | None) -> str:
    return text if limit is None or len(text) <= limit else text[:limit] + _CUT


def _quote(text: str) -> str:
    """JSON.stringify's QuoteJSONString: C0 controls and lone surrogates escaped, everything else as it is."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif code < 0x20 or 0xD800 <= code <= 0xDFFF:  # Python keeps a surrogate only when it has no partner
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _is_array_index(key: str) -> bool:
    return key.isascii() and key.isdigit() and (key == "0" or key[0] != "0") and int(key) <= _MAX_ARRAY_INDEX


def _own_keys(obj: dict[str, Any]) -> list[str]:
    """An object's keys in JavaScript's order: array indices ascending, then the rest as inserted."""
    indices = sorted((key for key in obj if _is_array_index(key)), key=int)
    return indices + [key for key in obj if not _is_array_index(key)] if indices else list(obj)


class _Text(str):
    """Literal output on the work stack (a plain ``str`` there is a JSON string still to quote)."""


_END = object()


def _array_parts(items: list[Any]) -> Iterator[Any]:
    yield _Text("[")
    for index, element in enumerate(items):
        if index:
            yield _Text(",")
        yield element
    yield _Text("]")


def _object_parts(obj: dict[str, Any]) -> Iterator[Any]:
    yield _Text("{")
    for index, key in enumerate(_own_keys(obj)):
        yield _Text(("," if index else "") + _quote(key) + ":")
        yield obj[key]
    yield _Text("}")


def js_json(value: Any, limit: int | None = None) -> str:
    """``JSON.stringify(value)`` as a template literal writes it (``undefined`` for ``UNDEFINED``): JavaScript's
    numbers (``null`` for ``±inf``), string escapes and object key order. With ``limit``, at most that many
    characters of it, then ``...``; the writing stops there."""
    if value is UNDEFINED:
        return "undefined"
    out: list[str] = []
    size = 0
    stack: list[Iterator[Any]] = [iter((value,))]  # what is left of each array or object: any depth, lazily
    while stack:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
            continue
        if isinstance(item, _Text):
            piece: str = item
        elif isinstance(item, str):
            piece = _quote(item if limit is None else item[: limit + 1])  # a prefix quotes as a prefix
        elif isinstance(item, list):
            stack.append(_array_parts(item))
            continue
        elif isinstance(item, dict):
            stack.append(_object_parts(item))
            continue
        elif isinstance(item, (int, float)) and not isinstance(item, bool):
            number = js_double(item)
            piece = js_number_string(number) if math.isfinite(number) else "null"
        else:
            piece = _scalar_string(item)
        out.append(piece)
        size += len(piece)
        if limit is not None and size > limit:
            return _cut("".join(out), limit)
    return "".join(out)


def _civil_from_days(days: int) -> tuple[int, int, int]:
    """(year, month, day) of a day count from 1970-01-01, proleptic Gregorian (Howard Hinnant's algorithm)."""
    shifted = days + 719_468
    era = shifted // 146_097
    day_of_era = shifted - era * 146_097
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36_524 - day_of_era // 146_096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    shifted_month = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * shifted_month + 2) // 5 + 1
    month = shifted_month + 3 if shifted_month < 10 else shifted_month - 9
    return year_of_era + era * 400 + (month <= 2), month, day


def js_utc_string(ms: float) -> str:
    """``new Date(ms).toUTCString()``: ``Thu, 01 Jan 1970 00:00:00 GMT`` (years before 0 with ``-``), or
    ``Invalid Date`` for NaN (a time outside JavaScript's ±8.64e15 ms)."""
    if not math.isfinite(ms) or abs(ms) > 8.64e15:
        return "Invalid Date"
    days, rest = divmod(int(ms), _MS_PER_DAY)
    year, month, day = _civil_from_days(days)
    hours, rest = divmod(rest, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    sign = "-" if year < 0 else ""
    return (
        f"{_DAYS[days % 7]}, {day:02d} {_MONTHS[month - 1]} {sign}{abs(year):04d} "
        f"{hours:02d}:{minutes:02d}:{rest // 1000:02d} GMT"
    )
