"""Small TTL key-value stores shared by webhook replay protection and machine-token caching.

``memory://`` keeps entries in this process (bounded); ``redis://`` / ``rediss://`` share them across processes.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any, Protocol

from .config import SecretURI
from .errors import ConfigurationError


class StoreError(Exception):
    """The store could not be reached (Redis down); callers decide whether to fail open or closed."""


class TTLStore(Protocol):
    """String values under string keys, each expiring after ``ttl`` seconds."""

    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str, ttl: float) -> None: ...

    def add(self, key: str, value: str, ttl: float) -> bool:
        """Set only if absent, atomically; True when this call set it (a claim)."""
        ...

    def delete(self, key: str) -> None: ...


class MemoryStore:
    """A per-process store bounded to ``max_entries`` (oldest entries are evicted first)."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._data: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def _live(self, key: str, now: float) -> str | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[1] <= now:
            del self._data[key]
            return None
        return item[0]

    def get(self, key: str) -> str | None:
        with self._lock:
            return self._live(key, time.monotonic())

    def set(self, key: str, value: str, ttl: float) -> None:
        with self._lock:
            self._put(key, value, ttl)

    def add(self, key: str, value: str, ttl: float) -> bool:
        with self._lock:
            if self._live(key, time.monotonic()) is not None:
                return False
            self._put(key, value, ttl)
            return True

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def __len__(self) -> int:
        return len(self._data)

    def _put(self, key: str, value: str, ttl: float) -> None:
        self._data[key] = (value, time.monotonic() + ttl)
        self._data.move_to_end(key)
        while len(self._data) > self._max:
            self._data.popitem(last=False)


class RedisStore:
    """Entries in Redis under ``prefix``; ``add`` is ``SET NX PX``, so a claim holds across processes."""

    def __init__(self, client: Any, prefix: str = "clerk:") -> None:
        self._client = client
        self._prefix = prefix

    @classmethod
    def from_url(cls, url: str, prefix: str = "clerk:", timeout: float = 1.0) -> RedisStore:
        try:
            import redis
        except ImportError:
            raise ConfigurationError(
                "Redis storage needs the redis package. Fix: pip install 'flask-clerk-security[redis]'"
            ) from None
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        return cls(client, prefix)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        import redis

        try:
            return getattr(self._client, method)(*args, **kwargs)
        except redis.RedisError as exc:
            raise StoreError(f"Redis {method} failed: {type(exc).__name__}") from None

    def get(self, key: str) -> str | None:
        value = self._call("get", self._prefix + key)
        return value.decode() if isinstance(value, bytes) else value

    def set(self, key: str, value: str, ttl: float) -> None:
        self._call("set", self._prefix + key, value, px=max(1, int(ttl * 1000)))

    def add(self, key: str, value: str, ttl: float) -> bool:
        return bool(self._call("set", self._prefix + key, value, px=max(1, int(ttl * 1000)), nx=True))

    def delete(self, key: str) -> None:
        self._call("delete", self._prefix + key)


def store_from_uri(uri: str | SecretURI, *, prefix: str = "clerk:") -> TTLStore:
    """``memory://`` or ``redis://host:port/db`` (also ``rediss://``, ``unix://``) to a store."""
    uri = uri.reveal() if isinstance(uri, SecretURI) else uri
    if uri.startswith("memory://"):
        return MemoryStore()
    if uri.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore.from_url(uri, prefix)
    raise ConfigurationError(f"unsupported store URI scheme in {uri.split('://', 1)[0]!r}: use memory:// or redis://")
