"""Small TTL key-value stores shared by webhook replay protection and machine-token caching.

``memory://`` keeps entries in this process (bounded); ``redis://`` / ``rediss://`` share them across processes.
Every Redis call goes through a :class:`CircuitBreaker`: after a timeout or a connection error the store fails
fast (``StoreError`` at once, so callers take their documented fallback) until a probe finds Redis answering.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from .errors import ConfigurationError
from .secret_values import SecretURI, reveal

if TYPE_CHECKING:
    from .settings import ClerkSettings

logger = logging.getLogger("flask_clerk_security")

#: Seconds a store fails fast after its first failure; each failed probe doubles it, up to the ceiling.
BREAKER_COOLDOWN = 5.0
BREAKER_CEILING = 60.0
#: A full memory store logs its first eviction of a live entry, then one in every this many.
EVICTION_LOG_EVERY = 10_000

# SET NX PX only while the claimant still waits for the answer (ARGV[3], its deadline in Unix ms): a claim that
# reaches a stalled Redis after the client gave up must not be written, or it blocks that delivery for its TTL.
_CLAIM_BEFORE_DEADLINE = """
local now = redis.call('TIME')
if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(ARGV[3]) then return -1 end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""
_DELETE_IF_EQUAL = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def namespace(*parts: str | None) -> str:
    """A short, stable digest of what makes an instance distinct (never reversible to the secrets in it)."""
    return hashlib.sha256("\0".join(part or "" for part in parts).encode()).hexdigest()[:16]


def instance_namespace(settings: ClerkSettings) -> str:
    """The Clerk instance's namespace in shared stores: the Backend API and the keys that decide what a machine
    token verifies to, so two instances sharing one Redis never read each other's entries or counters."""
    secret_key, machine_secret_key = reveal(settings.secret_key), reveal(settings.machine_secret_key)
    return namespace(settings.api_url, secret_key, machine_secret_key, settings.jwt_key)


class StoreError(Exception):
    """The store could not be reached (Redis down); callers decide whether to fail open or closed."""


class TTLStore(Protocol):
    """String values under string keys, each expiring after ``ttl`` seconds."""

    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str, ttl: float) -> None: ...

    def add(self, key: str, value: str, ttl: float) -> bool:
        """Set only if absent, atomically; True when this call set it (a claim)."""
        ...

    def delete_if(self, key: str, value: str) -> None:
        """Delete ``key`` only while it still holds ``value`` (release one's own claim, never another's)."""
        ...


class MemoryStore:
    """A per-process store bounded to ``max_entries`` (oldest entries are evicted first)."""

    def __init__(self, max_entries: int = 100_000, *, purpose: str = "store") -> None:
        self._data: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()
        self._purpose = purpose
        self.live_evictions = 0

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

    def delete_if(self, key: str, value: str) -> None:
        with self._lock:
            item = self._data.get(key)
            if item is not None and item[0] == value:
                del self._data[key]

    def __len__(self) -> int:
        return len(self._data)

    def _put(self, key: str, value: str, ttl: float) -> None:
        now = time.monotonic()
        self._data[key] = (value, now + ttl)
        self._data.move_to_end(key)
        while len(self._data) > self._max:
            _, (_, expires) = self._data.popitem(last=False)
            if expires > now:
                self._evicted_live()

    def _evicted_live(self) -> None:
        if self.live_evictions % EVICTION_LOG_EVERY == 0:
            logger.warning(
                "%s: the memory store is full (%d entries) and evicted a live entry (%d so far); for webhooks a "
                "redelivery of an evicted id runs its handlers again. Fix: use a redis:// store.",
                self._purpose,
                self._max,
                self.live_evictions + 1,
            )
        self.live_evictions += 1


class CircuitBreaker:
    """Fail fast while a dependency is down: after a failure, refuse calls at once for a cooldown (growing on
    each failed probe), then let one call through as a probe; its success closes the circuit again."""

    def __init__(self, purpose: str, *, cooldown: float | None = None, ceiling: float = BREAKER_CEILING) -> None:
        self.purpose = purpose
        self._base = BREAKER_COOLDOWN if cooldown is None else cooldown
        self._ceiling = ceiling
        self._cooldown = 0.0
        self._open_until = 0.0
        self._probing = False
        self._lock = threading.Lock()
        self.refused = 0

    @property
    def is_open(self) -> bool:
        return self._cooldown > 0

    def allow(self) -> bool:
        """Whether a call may go to the dependency now (False: answer from the fallback at once)."""
        if not self._cooldown:
            return True
        with self._lock:
            if not self._cooldown:
                return True
            if self._probing or time.monotonic() < self._open_until:
                self.refused += 1
                return False
            self._probing = True
            return True

    def succeeded(self) -> None:
        if not self._cooldown:
            return
        with self._lock:
            if self._cooldown:
                logger.warning(
                    "%s: Redis answers again (%d calls used the fallback meanwhile)", self.purpose, self.refused
                )
            self._cooldown = self._open_until = 0.0
            self._probing = False
            self.refused = 0

    def failed(self, reason: str) -> None:
        with self._lock:
            first = not self._cooldown
            self._cooldown = self._base if first else min(self._cooldown * 2, self._ceiling)
            self._open_until = time.monotonic() + self._cooldown
            self._probing = False
        if first:
            logger.error(
                "%s: Redis unavailable (%s); answering from the fallback for %.0f s, then probing",
                self.purpose,
                reason,
                self._cooldown,
            )
        else:
            logger.info("%s: Redis still unavailable (%s); next probe in %.0f s", self.purpose, reason, self._cooldown)


class RedisStore:
    """Entries in Redis under ``prefix``; ``add`` is ``SET NX PX``, so a claim holds across processes."""

    def __init__(self, client: Any, prefix: str = "clerk:", *, timeout: float = 1.0, purpose: str = "store") -> None:
        self._client = client
        self._prefix = prefix
        self._timeout = timeout
        self.breaker = CircuitBreaker(purpose)
        self._claim = client.register_script(_CLAIM_BEFORE_DEADLINE)
        self._delete_if = client.register_script(_DELETE_IF_EQUAL)
        #: Claims use the deadline script until this Redis turns out unable to run it usefully.
        self._guard_claims = True

    @classmethod
    def from_url(cls, url: str, prefix: str = "clerk:", timeout: float = 1.0, *, purpose: str = "store") -> RedisStore:
        try:
            import redis
        except ImportError:
            raise ConfigurationError(
                "Redis storage needs the redis package. Fix: pip install 'flask-clerk-security[redis]'"
            ) from None
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        return cls(client, prefix, timeout=timeout, purpose=purpose)

    def _call(self, method: str, call: Callable[[], Any]) -> Any:
        import redis

        if not self.breaker.allow():
            raise StoreError(f"Redis {method} skipped: circuit open after a failure")
        try:
            result = call()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self.breaker.failed(type(exc).__name__)
            raise StoreError(f"Redis {method} failed: {type(exc).__name__}") from None
        except redis.RedisError as exc:
            raise StoreError(f"Redis {method} failed: {type(exc).__name__}") from None
        self.breaker.succeeded()
        return result

    def get(self, key: str) -> str | None:
        value = self._call("get", lambda: self._client.get(self._prefix + key))
        return value.decode() if isinstance(value, bytes) else value

    def set(self, key: str, value: str, ttl: float) -> None:
        self._call("set", lambda: self._client.set(self._prefix + key, value, px=_ms(ttl)))

    def add(self, key: str, value: str, ttl: float) -> bool:
        name = self._prefix + key
        if self._guard_claims:
            deadline = int((time.time() + self._timeout + 0.25) * 1000)
            answer = self._call("add", lambda: self._guarded_claim(name, value, ttl, deadline))
            if answer in (0, 1):
                return bool(answer)
        return bool(self._call("add", lambda: self._client.set(name, value, px=_ms(ttl), nx=True)))

    def _guarded_claim(self, name: str, value: str, ttl: float, deadline: int) -> int:
        """1 claimed, 0 taken; -1 (and claims unguarded from now on) when the guard cannot work on this Redis."""
        import redis

        try:
            answer = int(self._claim(keys=[name], args=[value, _ms(ttl), deadline]))
        except redis.ResponseError:
            reason = "it refuses scripts"
        else:
            if answer != -1:
                return answer
            # A refusal that reached us in time: Redis's clock is ahead of ours, so the deadline cannot be judged.
            reason = "its clock is ahead of this host's"
        self._guard_claims = False
        logger.warning(
            "%s: claims are not deadline-guarded on this Redis (%s); a claim Redis runs after a stall can hold a "
            "delivery back until it expires",
            self.breaker.purpose,
            reason,
        )
        return -1

    def delete_if(self, key: str, value: str) -> None:
        self._call("delete", lambda: self._delete_if(keys=[self._prefix + key], args=[value]))

    def persistence_problem(self) -> str | None:
        """What a restart would lose (no AOF, no RDB snapshots), or None; None too when CONFIG is refused."""
        import redis

        try:
            appendonly = self._client.config_get("appendonly").get("appendonly")
            save = self._client.config_get("save").get("save")
        except redis.RedisError as exc:
            logger.debug("could not read Redis persistence settings (%s); managed Redis often refuses CONFIG", exc)
            return None
        if appendonly == "yes" or save:
            return None
        return "appendonly is off and save is empty, so a restart forgets every stored id"


def _ms(ttl: float) -> int:
    return max(1, int(ttl * 1000))


def store_from_uri(uri: str | SecretURI, *, prefix: str = "clerk:", purpose: str = "store") -> TTLStore:
    """``memory://`` or ``redis://host:port/db`` (also ``rediss://``, ``unix://``) to a store."""
    uri = uri.reveal() if isinstance(uri, SecretURI) else uri
    if uri.startswith("memory://"):
        return MemoryStore(purpose=purpose)
    if uri.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore.from_url(uri, prefix, purpose=purpose)
    raise ConfigurationError(f"unsupported store URI scheme in {uri.split('://', 1)[0]!r}: use memory:// or redis://")
