"""Public-route matching with Clerk's ``createRouteMatcher`` patterns (path-to-regexp syntax)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

_TOKEN = re.compile(
    r"""
    (?P<escape>\\.)
  | :(?P<name>[A-Za-z0-9_]+)(?P<pattern>\((?:[^()\\]|\\.)*\))?(?P<param_mod>[?*+])?
  | (?P<group>\((?:[^()\\]|\\.)*\))(?P<group_mod>[?*+])?
  | (?P<char>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_SEGMENT = "[^/#?]+?"


def _param(body: str, modifier: str | None, prefix: str) -> str:
    once = f"(?:{re.escape(prefix)}(?:{body}))"
    if modifier in ("*", "+"):
        return f"(?:{once}+)" + ("?" if modifier == "*" else "")
    return once + ("?" if modifier == "?" else "")


def pattern_to_regex(pattern: str) -> str:
    """Translate a path-to-regexp (v6) pattern such as ``/sign-in(.*)`` or ``/api/:id`` to a Python regex."""
    out: list[str] = []
    pending_prefix = ""
    for match in _TOKEN.finditer(pattern):
        if match.group("char") is not None:
            out.append(re.escape(pending_prefix))
            pending_prefix = match.group("char") if match.group("char") == "/" else ""
            if not pending_prefix:
                out.append(re.escape(match.group("char")))
            continue
        if match.group("escape") is not None:
            out.append(re.escape(pending_prefix) + re.escape(match.group("escape")[1]))
            pending_prefix = ""
            continue
        if match.group("name") is not None:
            body = match.group("pattern")[1:-1] if match.group("pattern") else _SEGMENT
            out.append(_param(body, match.group("param_mod"), pending_prefix))
        else:
            out.append(_param(match.group("group")[1:-1], match.group("group_mod"), pending_prefix))
        pending_prefix = ""
    out.append(re.escape(pending_prefix))
    return "^" + "".join(out) + r"[/#?]?$"


class RouteMatcher:
    """Matches request paths against Clerk-style patterns, compiled regexes or callables, compiled once."""

    def __init__(self, patterns: Iterable[Any]) -> None:
        regexes: list[str] = []
        compiled: list[re.Pattern[str]] = []
        callables: list[Callable[[str], bool]] = []
        for pattern in patterns:
            if isinstance(pattern, str):
                regexes.append(pattern_to_regex(pattern))
            elif isinstance(pattern, re.Pattern):
                compiled.append(pattern)
            elif callable(pattern):
                callables.append(pattern)
            else:
                raise TypeError(f"public route {pattern!r} must be a pattern string, a regex or a callable")
        self._combined = re.compile("|".join(f"(?:{r})" for r in regexes), re.IGNORECASE) if regexes else None
        self._compiled = tuple(compiled)
        self._callables = tuple(callables)

    def __call__(self, path: str) -> bool:
        if self._combined is not None and self._combined.match(path):
            return True
        return any(p.search(path) for p in self._compiled) or any(c(path) for c in self._callables)

    def __bool__(self) -> bool:
        return self._combined is not None or bool(self._compiled or self._callables)
