"""Secret-leak guard: no response body or header may carry the secret key, webhook secret or machine secret.

Runs as an ``after_request`` hook. Under debug/testing a leak raises :class:`SecretLeakError` naming the
config key, so it fails loudly in development; in production the response is replaced by a generic 500 and a
critical audit record names the key (never the value). Streamed and ``direct_passthrough`` responses
(``send_file``, generators) are not checked: reading them would buffer the whole stream.

The body is scanned as the client reads it: a ``Content-Encoding`` set by a compression extension that ran
first (gzip, deflate, br, zstd; stacked codings too) is decoded, up to :data:`MAX_DECODED_BYTES`. A body that
is larger once decoded, does not decode, or carries a coding the guard cannot decode is refused like a leak:
the guard never lets out what it could not read. Decoding rather than insisting on running last keeps the
guard right whatever the order of ``after_request`` hooks.

The response is replaced in place, so a leak in an error handler's response (whose ``after_request`` errors
Flask logs and swallows) is refused too; under debug/testing that response raises the error again when the
server or test client reads it.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Iterator, Mapping

from flask import Flask, Response, current_app, request

from . import signals
from .audit import write_record
from .secret_values import Secret

#: Well-known prefixes; the rest of a secret is what must never appear, with or without its prefix.
_PREFIXES = ("sk_test_", "sk_live_", "whsec_", "ak_", "test_", "live_")
_MIN_CORE = 16
#: A compressed body larger than this once decoded is refused (a few times the largest page anyone renders).
MAX_DECODED_BYTES = 64 * 1024 * 1024


class SecretLeakError(RuntimeError):
    """A response carried a configured secret (raised under debug/testing; the message names the key only)."""

    def __init__(self, key: str, where: str) -> None:
        super().__init__(
            f"The response {where} contains the value of {key}. Fix: never render or return secrets; "
            "take them out of templates, JSON dumps and error messages."
        )
        self.key = key


class UnscannableBodyError(SecretLeakError):
    """A compressed response body the guard could not decode within its bound (refused, never sent)."""

    def __init__(self, reason: str) -> None:
        RuntimeError.__init__(
            self,
            f"The response body was refused by the secret-leak guard: {reason}. Fix: compress with gzip, deflate, "
            f"br or zstd, or keep the body under {MAX_DECODED_BYTES} bytes once decoded.",
        )
        self.key = ""
        self.reason = reason


class _Undecodable(Exception):
    """Why a body could not be decoded (the text goes into the audit record)."""


def _needle(secret: str) -> str:
    """The part of a secret to search for: without its public prefix when the rest is long enough."""
    for prefix in _PREFIXES:
        if secret.startswith(prefix) and len(secret) - len(prefix) >= _MIN_CORE:
            return secret[len(prefix) :]
    return secret


def _zlib_decode(data: bytes, wbits: int, limit: int) -> bytes:
    """Every zlib/gzip member of ``data``, at most ``limit`` bytes (one more means over the bound)."""
    out = bytearray()
    while data:
        decoder = zlib.decompressobj(wbits)
        try:
            out += decoder.decompress(data, limit + 1 - len(out))
        except zlib.error as exc:
            raise _Undecodable(f"invalid {'gzip' if wbits > 15 else 'deflate'} data") from exc
        if len(out) > limit:
            return bytes(out)
        if not decoder.eof:
            raise _Undecodable("truncated compressed data")
        data = decoder.unused_data
        if wbits <= 15 and data:
            raise _Undecodable("data after the deflate stream")
    return bytes(out)


def _brotli_decode(data: bytes, limit: int) -> bytes:
    try:
        import brotli
    except ImportError:
        raise _Undecodable("br coding but the brotli package is missing") from None
    decoder = brotli.Decompressor()
    try:
        out: bytes = decoder.process(data, output_buffer_limit=limit + 1)
    except brotli.error as exc:
        raise _Undecodable("invalid br data") from exc
    if len(out) <= limit and not decoder.is_finished():
        raise _Undecodable("truncated br data")
    return out


def _zstd_decode(data: bytes, limit: int) -> bytes:
    try:
        from compression import zstd  # type: ignore[import-not-found,unused-ignore]  # Python 3.14+
    except ImportError:
        try:
            from backports import zstd  # type: ignore[import-not-found,no-redef,unused-ignore]
        except ImportError:
            raise _Undecodable("zstd coding but no zstd module is installed") from None
    out = bytearray()
    while data:
        decoder = zstd.ZstdDecompressor()
        try:
            out += decoder.decompress(data, max_length=limit + 1 - len(out))
        except zstd.ZstdError as exc:
            raise _Undecodable("invalid zstd data") from exc
        if len(out) > limit:
            break
        if not decoder.eof:
            raise _Undecodable("truncated zstd data")
        data = decoder.unused_data
    return bytes(out)


def decoded_body(body: bytes, content_encoding: str, limit: int = MAX_DECODED_BYTES) -> bytes:
    """``body`` as the client reads it after undoing ``Content-Encoding`` (last coding applied first undone).

    Raises :class:`_Undecodable` for an unknown coding, invalid data, or more than ``limit`` decoded bytes.
    """
    codings = [coding.strip().lower() for coding in content_encoding.split(",")]
    for coding in reversed(codings):
        if coding in ("", "identity"):
            continue
        if coding in ("gzip", "x-gzip"):
            body = _zlib_decode(body, 16 + zlib.MAX_WBITS, limit)
        elif coding == "deflate":
            try:
                body = _zlib_decode(body, zlib.MAX_WBITS, limit)
            except _Undecodable:  # some servers send raw deflate, which clients accept too
                body = _zlib_decode(body, -zlib.MAX_WBITS, limit)
        elif coding == "br":
            body = _brotli_decode(body, limit)
        elif coding == "zstd":
            body = _zstd_decode(body, limit)
        else:
            raise _Undecodable(f"unknown Content-Encoding {coding[:32]!r}")
        if len(body) > limit:
            raise _Undecodable(f"more than {limit} bytes once decoded")
    return body


class _Refused:
    """A WSGI body that raises ``error`` when read: a swallowed leak still fails the test client or debugger."""

    def __init__(self, error: SecretLeakError) -> None:
        self._error = error

    def __iter__(self) -> Iterator[bytes]:
        raise self._error


class LeakGuard:
    """The ``after_request`` hook for one app's configured secrets (``ClerkSettings.secrets``)."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        # Held as Secrets, so the guard's own repr (in a captured frame) does not carry what it looks for.
        self._needles = [(key, Secret(_needle(value))) for key, value in secrets.items()]

    def install(self, app: Flask) -> None:
        if self._needles:
            app.after_request(self)

    def find(self, response: Response) -> tuple[str, str] | None:
        """``(config key, "body"|"header <name>")`` of the first leak, or ``None``.

        Raises :class:`UnscannableBodyError` when the body's ``Content-Encoding`` cannot be undone.
        """
        needles = [(key, needle.reveal()) for key, needle in self._needles]
        for name, value in response.headers:
            for key, text in needles:
                if text in value:
                    return key, f"header {name}"
        if response.is_streamed or response.direct_passthrough:
            return None
        body = response.get_data()
        encoding = response.headers.get("Content-Encoding")
        if encoding:
            try:
                body = decoded_body(body, encoding)
            except _Undecodable as exc:
                raise UnscannableBodyError(str(exc)) from None
        for key, text in needles:
            if text.encode() in body:
                return key, "body"
        return None

    def __call__(self, response: Response) -> Response:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        try:
            leak = self.find(response)
        except UnscannableBodyError as exc:
            _refuse(response)
            if app.debug or app.testing:
                response.response = _Refused(exc)
                raise
            write_record(signals.secret_leak_blocked.name, logging.CRITICAL, {"reason": exc.reason})
            return response
        if leak is None:
            return response
        key, where = leak
        signals.secret_leak_blocked.send(app, key=key, route=request.path, method=request.method)
        _refuse(response)
        if app.debug or app.testing:
            error = SecretLeakError(key, where)
            response.response = _Refused(error)
            raise error
        write_record(signals.secret_leak_blocked.name, logging.CRITICAL, {"key": key, "reason": f"in {where}"})
        return response


def _refuse(response: Response) -> None:
    """Turn ``response`` itself into ``500 {"error": "internal_error"}``: every header and the body replaced.

    In place, because when Flask finalizes an error handler's response it drops this hook's exception and
    sends the response object it passed in.
    """
    response.headers.clear()
    response.status_code = 500
    response.direct_passthrough = False
    response.set_data(json.dumps({"error": "internal_error"}))
    response.mimetype = "application/json"
    response.headers["Cache-Control"] = "no-store"
