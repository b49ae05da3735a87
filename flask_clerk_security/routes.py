"""Public-route matching exactly as Clerk's ``createRouteMatcher``/``createPathMatcher`` decides it.

Clerk (``@clerk/shared``) compiles each pattern with its vendored path-to-regexp 6.x into a JavaScript regex
(flag ``i``), normalises ``new URL(req.url).pathname`` with ``decodeURI`` and a ``//+`` -> ``/`` collapse, and
tests the regex. This module ports that tokenizer and compiler line by line, translates the JavaScript regex into
an equivalent Python one (``$`` is end of input, ``.`` stops at line terminators, case folding is JavaScript's,
strings are matched as UTF-16 code units), and rebuilds the pathname Clerk sees from the raw WSGI request path.
What cannot be translated exactly is refused at init, so a route is never more public here than in Clerk.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from .errors import ConfigurationError

_PREFIXES = "./"
_DELIMITER = "/#?"
_FIX = (
    "use Clerk's path-to-regexp 6.x syntax: '/sign-in(.*)', '/api/:id', '/docs/:path*', '/a/(b)+' or '{/b}+' "
    "to repeat a group"
)


class _PatternError(ValueError):
    """A pattern Clerk's path-to-regexp (or the JavaScript regex it builds) refuses."""


class _Unreachable(_PatternError):
    """A pattern Clerk accepts but that can never match a request path."""


@dataclass(frozen=True)
class _Lexeme:
    kind: str
    index: int
    value: str  # "" stands for JavaScript's undefined (a trailing backslash)


@dataclass(frozen=True)
class _Key:
    name: str
    prefix: str
    suffix: str
    pattern: str
    modifier: str


def _is_name_char(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch == "_")


def _lex(src: str) -> list[_Lexeme]:
    """path-to-regexp 6.x ``lexer``."""
    out: list[_Lexeme] = []
    i = 0
    n = len(src)
    while i < n:
        ch = src[i]
        if ch in "*+?":
            out.append(_Lexeme("MODIFIER", i, ch))
            i += 1
        elif ch == "\\":
            out.append(_Lexeme("ESCAPED_CHAR", i, src[i + 1] if i + 1 < n else ""))
            i += 2
        elif ch in "{}":
            out.append(_Lexeme("OPEN" if ch == "{" else "CLOSE", i, ch))
            i += 1
        elif ch == ":":
            j = i + 1
            while j < n and _is_name_char(src[j]):
                j += 1
            if j == i + 1:
                raise _PatternError(f"Missing parameter name at {i}")
            out.append(_Lexeme("NAME", i, src[i + 1 : j]))
            i = j
        elif ch == "(":
            depth, body, j = 1, "", i + 1
            if j < n and src[j] == "?":
                raise _PatternError(f'Pattern cannot start with "?" at {j}')
            while j < n:
                if src[j] == "\\":
                    body += src[j : j + 2]
                    j += 2
                    continue
                if src[j] == ")":
                    depth -= 1
                    if depth == 0:
                        j += 1
                        break
                elif src[j] == "(":
                    depth += 1
                    if j + 1 >= n or src[j + 1] != "?":
                        raise _PatternError(f"Capturing groups are not allowed at {j}")
                body += src[j]
                j += 1
            if depth:
                raise _PatternError(f"Unbalanced pattern at {i}")
            if not body:
                raise _PatternError(f"Missing pattern at {i}")
            out.append(_Lexeme("PATTERN", i, body))
            i = j
        else:
            out.append(_Lexeme("CHAR", i, ch))
            i += 1
    out.append(_Lexeme("END", n, ""))
    return out


def _escape(text: str) -> str:
    """path-to-regexp's ``escapeString``."""
    return re.sub(r"([.+*?=^!:${}()\[\]|/\\])", r"\\\1", text)


def _parse(src: str) -> list[str | _Key]:
    """path-to-regexp 6.x ``parse`` with its defaults (prefixes ``./``, delimiter ``/#?``)."""
    lexemes = _lex(src)
    result: list[str | _Key] = []
    key = 0
    pos = 0
    path = ""

    def take(kind: str) -> str | None:
        nonlocal pos
        if pos < len(lexemes) and lexemes[pos].kind == kind:
            pos += 1
            return lexemes[pos - 1].value
        return None

    def must(kind: str) -> str:
        value = take(kind)
        if value is not None:
            return value
        lexeme = lexemes[pos]
        raise _PatternError(f"Unexpected {lexeme.kind} at {lexeme.index}, expected {kind}")

    def text() -> str:
        out = ""
        while value := take("CHAR") or take("ESCAPED_CHAR"):
            out += value
        return out

    def default_pattern(prefix: str) -> str:
        prev = result[-1] if result else None
        before = prefix or (prev if isinstance(prev, str) else "")
        if isinstance(prev, _Key) and not before:
            raise _PatternError(f'Must have text between two parameters, missing text after "{prev.name}"')
        if not before or any(d in before for d in _DELIMITER):
            return f"[^{_escape(_DELIMITER)}]+?"
        return f"(?:(?!{_escape(before)})[^{_escape(_DELIMITER)}])+?"

    while pos < len(lexemes):
        char = take("CHAR")
        name = take("NAME")
        pattern = take("PATTERN")
        if name or pattern:
            prefix = char or ""
            if prefix not in _PREFIXES:
                path += prefix
                prefix = ""
            if path:
                result.append(path)
                path = ""
            if not name:
                name, key = str(key), key + 1
            result.append(_Key(name, prefix, "", pattern or default_pattern(prefix), take("MODIFIER") or ""))
            continue
        value = char or take("ESCAPED_CHAR")
        if value:
            path += value
            continue
        if path:
            result.append(path)
            path = ""
        if take("OPEN"):
            prefix = text()
            name = take("NAME") or ""
            pattern = take("PATTERN") or ""
            suffix = text()
            must("CLOSE")
            if not name and pattern:
                name, key = str(key), key + 1
            pattern = default_pattern(prefix) if name and not pattern else pattern
            result.append(_Key(name, prefix, suffix, pattern, take("MODIFIER") or ""))
            continue
        must("END")
    return result


def _compile_js(src: str) -> str:
    """path-to-regexp 6.x ``tokensToRegexp`` with its defaults: the JavaScript regex source Clerk builds."""
    out = "^"
    for token in _parse(src):
        if isinstance(token, str):
            out += _escape(token)
            continue
        prefix, suffix = _escape(token.prefix), _escape(token.suffix)
        if not token.pattern:
            out += f"(?:{prefix}{suffix}){token.modifier}"
        elif prefix or suffix:
            if token.modifier in ("+", "*"):
                optional = "?" if token.modifier == "*" else ""
                out += (
                    f"(?:{prefix}((?:{token.pattern})(?:{suffix}{prefix}(?:{token.pattern}))*){suffix}){optional}"
                )
            else:
                out += f"(?:{prefix}({token.pattern}){suffix}){token.modifier}"
        elif token.modifier in ("+", "*"):
            raise _PatternError(f'Can not repeat "{token.name}" without a prefix and suffix')
        else:
            out += f"({token.pattern}){token.modifier}"
    return out + f"[{_escape(_DELIMITER)}]?$"


# --------------------------------------------------------------------------------------------- JS -> Python
_JS_SPACE = "\\t\\n\\v\\f\\r \\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"
_JS_LINE_END = "\\n\\r\\u2028\\u2029"
_CLASS_ESCAPES = {"d": "0-9", "w": "A-Za-z0-9_"}
_QUANTIFIER = re.compile(r"\{[0-9]+(?:,[0-9]*)?\}")
_HEX2 = re.compile(r"[0-9A-Fa-f]{2}")
_HEX4 = re.compile(r"[0-9A-Fa-f]{4}")
# Escapes that mean something in a JavaScript (non-unicode) regex; any other escaped letter is itself.
_JS_SPECIAL_ESCAPES = "bBdDwWsSfnrtvcxu0123456789"


def _to_code_units(text: str) -> str:
    """The string as JavaScript sees it: a character beyond the BMP becomes its two UTF-16 surrogates."""
    if text.isascii() or max(text) <= "\uffff":
        return text
    return "".join(c if c <= "\uffff" else _surrogates(ord(c) - 0x10000) for c in text)


def _surrogates(offset: int) -> str:
    return chr(0xD800 + (offset >> 10)) + chr(0xDC00 + (offset & 0x3FF))


def _js_canonicalize(ch: str) -> str:
    """ECMAScript's Canonicalize for a case-insensitive regex without ``u``: upper case, but never to ASCII."""
    upper = ch.upper()
    if len(upper) != 1 or (ch > "\x7f" and upper <= "\x7f"):
        return ch
    return upper


@functools.cache
def _case_classes() -> dict[str, str]:
    """Each non-ASCII code unit with case variants -> a regex class of the code units JavaScript folds it with.

    Python's ``re.IGNORECASE`` folds by other rules (LONG S to ``s``, KELVIN SIGN to ``k``), so it only folds ASCII
    here and these classes give non-ASCII literals JavaScript's own folding.
    """
    groups: dict[str, list[str]] = {}
    for code in range(0x80, 0x10000):
        groups.setdefault(_js_canonicalize(chr(code)), []).append(chr(code))
    return {c: "[" + "".join(map(re.escape, g)) + "]" for g in groups.values() if len(g) > 1 for c in g}


def _literal(ch: str) -> str:
    return _case_classes().get(ch, re.escape(ch)) if ch > "\x7f" else re.escape(ch)


def _translate_escape(js: str, i: int, in_class: bool) -> tuple[str, int]:
    """Python for the JavaScript escape at ``js[i]`` (a backslash) and the index after it."""
    if i + 1 >= len(js):
        raise _PatternError("\\ at end of pattern")
    ch = js[i + 1]
    if ch not in _JS_SPECIAL_ESCAPES or not ch.isascii():
        return (re.escape(ch) if in_class else _literal(ch)), i + 2
    if ch in "dw":
        return (f"\\{ch}" if in_class else f"[{_CLASS_ESCAPES[ch]}]"), i + 2
    if ch in "DW":
        return (f"\\{ch}" if in_class else f"[^{_CLASS_ESCAPES[ch.lower()]}]"), i + 2
    if ch == "s":
        if in_class and (js[i - 1 : i] == "-" or js[i + 2 : i + 3] == "-"):
            raise _PatternError("\\s next to '-' in a character class is not supported here")
        return (_JS_SPACE if in_class else f"[{_JS_SPACE}]"), i + 2
    if ch == "S" and not in_class:
        return f"[^{_JS_SPACE}]", i + 2
    if ch in "bB" and not in_class:
        return f"\\{ch}", i + 2
    if ch == "b":
        return "\\x08", i + 2
    if ch in "fnrtv":
        return f"\\{ch}", i + 2
    if ch == "0" and not js[i + 2 : i + 3].isdigit():
        return "\\x00", i + 2
    if ch == "x":
        return (f"\\x{js[i + 2 : i + 4]}", i + 4) if _HEX2.fullmatch(js[i + 2 : i + 4]) else ("x", i + 2)
    if ch == "u":
        return (f"\\u{js[i + 2 : i + 6]}", i + 6) if _HEX4.fullmatch(js[i + 2 : i + 6]) else ("u", i + 2)
    raise _PatternError(f"the escape \\{ch} is not supported here")


def _translate_class(js: str, i: int) -> tuple[str, int]:
    """Python for the JavaScript character class starting at ``js[i]`` (``[``) and the index after it."""
    j = i + 1
    negated = js[j : j + 1] == "^"
    j += negated
    if js[j : j + 1] == "]":
        return ("[\\s\\S]" if negated else "(?!)"), j + 1
    members: list[str] = []
    others: list[str] = []  # \S has no Python spelling inside a class: it joins as an alternative
    while j < len(js) and js[j] != "]":
        if js[j : j + 2] == "\\S":
            others.append(f"[^{_JS_SPACE}]")
            j += 2
        elif js[j] == "\\":
            piece, j = _translate_escape(js, j, in_class=True)
            members.append(piece)
        else:
            members.append(re.escape(js[j]) if js[j] in "[&~|^" else js[j])
            j += 1
    if j >= len(js):
        raise _PatternError("Unterminated character class")
    if not others:
        return "[" + ("^" if negated else "") + "".join(members) + "]", j + 1
    if "-\\S" in js[i:j] or "\\S-" in js[i:j]:
        raise _PatternError("\\S next to '-' in a character class is not supported here")
    alternatives = "|".join(([f"[{''.join(members)}]"] if members else []) + others)
    return (f"(?:(?!{alternatives})[\\s\\S])" if negated else f"(?:{alternatives})"), j + 1


def _translate(js: str) -> str:
    """A Python regex (for flags ``re.ASCII | re.IGNORECASE``) matching what JavaScript's ``new RegExp(js, "i")``
    matches on UTF-16 code units; raises ``_PatternError`` for anything not translated exactly."""
    out: list[str] = []
    i = 0
    while i < len(js):
        ch = js[i]
        quantifier = _QUANTIFIER.match(js, i) if ch == "{" else None
        if ch in "*+?" or quantifier:
            end = quantifier.end() if quantifier else i + 1
            end += js[end : end + 1] == "?"
            out.append(js[i:end])
            if js[end : end + 1] in ("*", "+", "?") or _QUANTIFIER.match(js, end):
                raise _PatternError(f"Nothing to repeat at {end}")
            i = end
            continue
        if ch == "\\":
            piece, i = _translate_escape(js, i, in_class=False)
            out.append(piece)
            continue
        if ch == "[":
            piece, i = _translate_class(js, i)
            out.append(piece)
            continue
        if ch == "(" and js.startswith("(?", i):
            if js[i : i + 3] not in ("(?:", "(?=", "(?!"):
                raise _PatternError(f"the group {js[i : i + 4]!r} is not supported here")
            out.append(js[i : i + 3])
            i += 3
            continue
        if ch == ".":
            out.append(f"[^{_JS_LINE_END}]")
        elif ch == "$":
            out.append("\\Z")
        elif ch in "^|()":
            out.append(ch)
        else:
            out.append(_literal(ch))
        i += 1
    return "".join(out)


_FLAGS = re.ASCII | re.IGNORECASE


def _check_reachable(pattern: str) -> None:
    """Refuse a pattern that starts with literal text other than ``/``: a pathname always starts with ``/``, so
    Clerk's matcher never matches it (``health`` never matches ``/health``)."""
    tokens = _parse(pattern)
    if tokens and isinstance(tokens[0], str) and not tokens[0].startswith("/"):
        raise _Unreachable("a request path always starts with '/'")


def _suggestion(pattern: str) -> str | None:
    """The pattern in Clerk's syntax for a glob-style or relative one (``/health/*`` -> ``/health/(.*)``,
    ``health`` -> ``/health``), when that rewrite is a valid pattern."""
    out: list[str] = []
    previous = ""
    for lexeme in _lex(pattern)[:-1]:
        text = pattern[lexeme.index : lexeme.index + 1] if lexeme.kind != "ESCAPED_CHAR" else "\\" + lexeme.value
        if lexeme.kind in ("NAME", "PATTERN"):
            text = pattern[lexeme.index : lexeme.index + len(lexeme.value) + (1 if lexeme.kind == "NAME" else 2)]
        if lexeme.kind == "MODIFIER" and lexeme.value == "*" and previous not in ("NAME", "PATTERN", "CLOSE"):
            if previous != "GLOB":
                out.append("(.*)")
            previous = "GLOB"
            continue
        out.append(text)
        previous = lexeme.kind
    fixed = "".join(out)
    if not fixed.startswith(("/", "(", "{")):
        fixed = "/" + fixed
    try:
        _compile_js(fixed)
        _check_reachable(fixed)
    except _PatternError:
        return None
    return fixed if fixed != pattern else None


def pattern_to_regex(pattern: str) -> str:
    """The Python regex for a ``CLERK_PUBLIC_ROUTES`` pattern, matching exactly what Clerk's matcher matches.

    Raises ``ConfigurationError`` for a pattern Clerk refuses, one that can never match a request path, or one
    that cannot be translated exactly; it names the pattern Clerk's syntax expects when there is an obvious one.
    """
    try:
        _check_reachable(pattern)
        source = _translate(_compile_js(_to_code_units(pattern)))
        re.compile(source, _FLAGS)
    except (_PatternError, re.error) as exc:
        raise _refusal("CLERK_PUBLIC_ROUTES", pattern, exc) from None
    return source


def _refusal(setting: str, pattern: str, exc: Exception) -> ConfigurationError:
    """The error for a ``setting`` pattern Clerk refuses or that can never match, with the pattern Clerk's syntax
    expects when there is an obvious one."""
    try:
        suggestion = _suggestion(pattern)
    except _PatternError:
        suggestion = None
    fix = f"write {suggestion!r} ({_FIX})" if suggestion else _FIX
    problem = "can never match" if isinstance(exc, _Unreachable) else "is not a valid Clerk route pattern"
    return ConfigurationError(f"{setting} pattern {pattern!r} {problem} ({exc}). Fix: {fix}")


# --------------------------------------------------------------------------------------------- request path
_RESERVED = frozenset(";/?:@&=+$,#")
_HEX_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_UTF8_LEAD = ((0xE0, 0xC0, 2), (0xF0, 0xE0, 3), (0xF8, 0xF0, 4))


def _hex_at(text: str, i: int) -> int | None:
    return int(text[i + 1 : i + 3], 16) if _HEX_ESCAPE.match(text, i) else None


def decode_uri(text: str) -> str | None:
    """JavaScript's ``decodeURI``: ``None`` where it throws (bad escape or invalid UTF-8)."""
    if "%" not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] != "%":
            out.append(text[i])
            i += 1
            continue
        byte = _hex_at(text, i)
        if byte is None:
            return None
        if byte < 0x80:
            out.append(text[i : i + 3] if chr(byte) in _RESERVED else chr(byte))
            i += 3
            continue
        size = next((n for mask, lead, n in _UTF8_LEAD if byte & mask == lead), 0)
        if not size:
            return None
        octets = [byte]
        for k in range(1, size):
            follow = _hex_at(text, i + 3 * k)
            if follow is None or follow & 0xC0 != 0x80:
                return None
            octets.append(follow)
        try:
            out.append(bytes(octets).decode("utf-8"))
        except UnicodeDecodeError:
            return None
        i += 3 * size
    return "".join(out)


def normalize_path(pathname: str) -> str | None:
    """Clerk's ``normalizePath``: ``decodeURI``, then ``//+`` -> ``/``; ``None`` where Clerk throws."""
    decoded = decode_uri(pathname)
    return None if decoded is None else re.sub("//+", "/", decoded)


def _whatwg_path(target: str) -> str:
    """The ``pathname`` of ``new URL("http://host" + target)``: backslashes as slashes, bytes beyond ASCII and
    controls percent-encoded, dot segments (``.``, ``%2e``) resolved."""
    target = re.sub("[\t\n\r]", "", target.strip("".join(map(chr, range(0x21)))))
    encoded = "".join(
        c if " " < c < "\x7f" and c not in '"<>`{}' else "".join(f"%{b:02X}" for b in _char_bytes(c))
        for c in target.replace("\\", "/")
    )
    segments = encoded[1:].split("/") if encoded.startswith("/") else encoded.split("/")
    path: list[str] = []
    for k, segment in enumerate(segments):
        last = k == len(segments) - 1
        lowered = segment.lower()
        if lowered in ("..", ".%2e", "%2e.", "%2e%2e"):
            if path:
                path.pop()
            if last:
                path.append("")
        elif lowered in (".", "%2e"):
            if last:
                path.append("")
        else:
            path.append(segment)
    return "/" + "/".join(path)


def _char_bytes(c: str) -> bytes:
    """A WSGI character's byte (WSGI strings are latin-1), or its UTF-8 bytes from a non-conforming server."""
    return bytes([ord(c)]) if c <= "\xff" else c.encode("utf-8", "surrogatepass")


def _wsgi_bytes(text: str) -> bytes:
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return b"".join(_char_bytes(c) for c in text)


def _app_relative(target: str, script_name: str, path_info: str) -> str | None:
    """The part of the raw ``target`` that is the app's ``PATH_INFO`` (after ``SCRIPT_NAME``), still encoded;
    ``None`` when the raw path does not decode to ``SCRIPT_NAME + PATH_INFO`` (a middleware rewrote it)."""
    decoded = unquote_to_bytes(_wsgi_bytes(target))
    script, path = _wsgi_bytes(script_name), _wsgi_bytes(path_info)
    if decoded == path:
        return target
    if decoded != script + path:
        return None
    i = count = 0
    while count < len(script):
        i += 3 if _HEX_ESCAPE.match(target, i) else 1
        count += 1
    return target[i:]


def request_pathname(environ: Mapping[str, Any]) -> str:
    """The app-relative path as Clerk reads it (``new URL(req.url).pathname``: still percent-encoded).

    The raw request path (``REQUEST_URI``/``RAW_URI``) keeps what decoding loses (``%2F``, ``%3F``, ``%23``
    stay escaped for Clerk); its ``SCRIPT_NAME`` part is dropped, so patterns are written relative to the app,
    like Flask routes. Without a raw path that agrees with ``PATH_INFO``, ``PATH_INFO`` is re-encoded as a
    client would send it (``%``, ``?``, ``#``, controls and non-ASCII bytes escaped).
    """
    script_name, path_info = str(environ.get("SCRIPT_NAME", "")), str(environ.get("PATH_INFO", ""))
    raw = environ.get("REQUEST_URI") or environ.get("RAW_URI")
    if isinstance(raw, str) and raw:
        target = re.sub(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*", "", raw).split("?", 1)[0].split("#", 1)[0]
        relative = _app_relative(target, script_name, path_info)
        if relative is not None:
            return _whatwg_path(relative)
    return _whatwg_path(routed_pathname(environ))


def routed_pathname(environ: Mapping[str, Any]) -> str:
    """``PATH_INFO`` as Flask's router matches it, re-encoded as a client would send it (``%``, ``?``, ``#``,
    controls and non-ASCII bytes escaped): dot segments kept, ``%2F`` already a slash."""
    return "".join(
        chr(b) if 0x20 < b < 0x7F and chr(b) not in "%?#" else f"%{b:02X}"
        for b in _wsgi_bytes(str(environ.get("PATH_INFO", "")))
    )


class RouteMatcher:
    """Clerk's ``createPathMatcher`` over Clerk-style patterns, plus compiled regexes and callables, compiled once.

    Regexes (``search``) and callables get the same normalised path as the patterns; a path Clerk refuses as
    malformed (``MalformedURLError``) is public for none of them.
    """

    def __init__(self, patterns: Iterable[Any]) -> None:
        regexes: list[str] = []
        compiled: list[re.Pattern[str]] = []
        callables: list[Callable[[str], bool]] = []
        for pattern in patterns:
            if pattern == "":
                continue  # Clerk drops empty patterns (they would compile to "/")
            if isinstance(pattern, str):
                regexes.append(pattern_to_regex(pattern))
            elif isinstance(pattern, re.Pattern):
                compiled.append(pattern)
            elif callable(pattern):
                callables.append(pattern)
            else:
                raise TypeError(f"public route {pattern!r} must be a pattern string, a regex or a callable")
        self._combined = re.compile("|".join(f"(?:{r})" for r in regexes), _FLAGS) if regexes else None
        self._compiled = tuple(compiled)
        self._callables = tuple(callables)

    def __call__(self, pathname: str) -> bool:
        """Whether Clerk's matcher answers true for this URL pathname (as ``new URL(...).pathname`` gives it)."""
        path = normalize_path(pathname)
        if path is None:
            return False
        if self._combined is not None and self._combined.match(_to_code_units(path)):
            return True
        return any(p.search(path) for p in self._compiled) or any(c(path) for c in self._callables)

    def matches_request(self, environ: Mapping[str, Any]) -> bool:
        """Whether the request's app-relative path is public: as Clerk reads it (``request_pathname``), and as
        Flask routes it (``routed_pathname``). Clerk resolves dot segments and keeps ``%2F``; Flask does neither,
        so ``/admin/x/../../health`` is ``/health`` to Clerk but reaches ``/admin/<path:rest>``."""
        pathname = request_pathname(environ)
        if not self(pathname):
            return False
        routed = routed_pathname(environ)
        return routed == pathname or self(routed)

    def __bool__(self) -> bool:
        return self._combined is not None or bool(self._compiled or self._callables)


class OrganizationMatcher:
    """Clerk's ``OrganizationMatcher`` (``organizationMatcher.ts``): which organization (or the personal account)
    a URL path asks for, from ``organizationPatterns`` (``:id`` or ``:slug``) and ``personalAccountPatterns``.

    Patterns are path-to-regexp's ``match()``: compiled as Clerk compiles them (case-insensitive, optional
    trailing delimiter), matched against the raw (still encoded) path, the first matching pattern wins.
    """

    def __init__(self, organization_patterns: Iterable[str], personal_account_patterns: Iterable[str]) -> None:
        self._organizations = [_compile_with_keys(p, "organization") for p in organization_patterns]
        self._personal = [_compile_with_keys(p, "personal account")[0] for p in personal_account_patterns]

    def __bool__(self) -> bool:
        return bool(self._organizations or self._personal)

    def find_target(self, pathname: str) -> tuple[str, str | None] | None:
        """``("organization", id)``, ``("organization_slug", slug)``, ``("personal_account", None)`` or None."""
        path = _to_code_units(pathname)
        for regex, keys in self._organizations:
            match = regex.match(path)
            if match is None:
                continue
            params = {key: value for key, value in zip(keys, match.groups(), strict=True) if value is not None}
            if params.get("id"):
                return "organization", params["id"]
            if params.get("slug"):
                return "organization_slug", params["slug"]
            break
        if any(regex.match(path) for regex in self._personal):
            return "personal_account", None
        return None


def _compile_with_keys(pattern: str, kind: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    """A pattern's regex and the names of its capturing groups, in order (path-to-regexp's keys)."""
    if not isinstance(pattern, str):
        raise ConfigurationError(f"CLERK_ORGANIZATION_SYNC {kind} pattern {pattern!r} must be a string")
    try:
        _check_reachable(pattern)
        tokens = _parse(_to_code_units(pattern))
        keys = tuple(token.name for token in tokens if isinstance(token, _Key) and token.pattern)
        regex = re.compile(_translate(_compile_js(_to_code_units(pattern))), _FLAGS)
    except (_PatternError, re.error) as exc:
        raise _refusal(f"CLERK_ORGANIZATION_SYNC {kind}", pattern, exc) from None
    if kind == "organization" and not {"id", "slug"} & set(keys):
        # Clerk's matcher finds no organization in such a match and says nothing: the setting would do nothing.
        raise ConfigurationError(
            f"CLERK_ORGANIZATION_SYNC organization pattern {pattern!r} has no :slug or :id parameter, so the "
            "URLs it matches name no organization and activate none. Fix: name the organization's segment "
            "':slug' or ':id', e.g. '/orgs/:slug' or '/orgs/:slug/(.*)'."
        )
    repeated = [t.name for t in tokens if isinstance(t, _Key) and t.name in ("id", "slug") and t.modifier in ("+", "*")]
    if repeated and kind == "organization":
        # Clerk's match() gives a list there, which never equals the session's organization: a handshake on every
        # page, until the redirect-loop limit.
        raise ConfigurationError(
            f"CLERK_ORGANIZATION_SYNC organization pattern {pattern!r} repeats :{repeated[0]} ('+' or '*'), which "
            f"names no single organization. Fix: one segment, e.g. '/orgs/:{repeated[0]}' or "
            f"'/orgs/:{repeated[0]}/(.*)'."
        )
    return regex, keys
