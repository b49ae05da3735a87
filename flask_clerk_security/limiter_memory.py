"""A bounded in-memory storage for the extension's own limiter (the default, and its fallback while Redis is down).

``limits``' ``MemoryStorage`` keeps every key until a background timer, restarted 10 ms after each hit, scans all
of them; it keeps an ``RLock`` per key besides. With tens of thousands of distinct users that scan runs all the
time and every request pays for it, and memory grows with every user seen in the window. This subclass keeps the
same counting code but holds at most ``max_keys`` keys (the oldest window is evicted first: its client starts a
fresh window, a looser limit for it, never a refusal), expires keys a few at a time on each hit instead of
scanning, and shares one lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from limits.storage import MemoryStorage

if TYPE_CHECKING:
    from flask_limiter import Limiter

logger = logging.getLogger("flask_clerk_security")

#: Keys (one per client and limit) held at most per storage; about 28 MiB at the cap.
MAX_KEYS = 100_000
#: Expired keys dropped per hit, oldest first: more than one, so expiry outpaces creation.
_EXPIRE_PER_HIT = 2
#: The private parts of flask-limiter this relies on, checked before use.
_LIMITER_SLOTS = ("_storage", "_limiter", "_strategy")


class _OneLock:
    """Stands in for ``MemoryStorage.locks`` (a lock per key): one lock for every key, nothing kept per key."""

    def __init__(self) -> None:
        self._lock = threading.RLock()

    def __getitem__(self, key: str) -> threading.RLock:
        return self._lock

    def pop(self, key: str, default: Any = None) -> Any:
        return default

    def clear(self) -> None:
        return None


class BoundedMemoryStorage(MemoryStorage):
    """``MemoryStorage`` holding at most ``max_keys`` counters and moving windows, with no background scan."""

    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        super().__init__()
        self.timer.cancel()
        self.timer.join()
        self._max_keys = max_keys
        self._evict_lock = threading.Lock()
        self.expirations: OrderedDict[str, float] = OrderedDict()
        self.events: OrderedDict[str, list[Any]] = OrderedDict()
        self.locks = _OneLock()  # type: ignore[assignment]
        self.evicted = 0

    def _MemoryStorage__schedule_expiry(self) -> None:
        """Runs before every hit: drop a few expired keys, then evict the oldest while over the cap."""
        now = time.time()
        with self._evict_lock:
            expirations, events = self.expirations, self.events
            for _ in range(_EXPIRE_PER_HIT):
                if not expirations:
                    break
                key, expiry = next(iter(expirations.items()))
                if expiry > now:
                    break
                del expirations[key]
                self.storage.pop(key, None)
            for _ in range(_EXPIRE_PER_HIT):
                if not events:
                    break
                key, entries = next(iter(events.items()))
                if entries and entries[0].expiry > now:
                    break
                del events[key]
            while len(expirations) > self._max_keys:
                key, _ = expirations.popitem(last=False)
                self.storage.pop(key, None)
                self._evicted()
            while len(events) > self._max_keys:
                events.popitem(last=False)
                self._evicted()

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        acquired = super().acquire_entry(key, limit, expiry, amount)
        with self.locks[key]:
            entries = self.events.get(key)
            if entries is not None:
                # Only the newest ``limit`` entries decide (the stock timer trimmed the rest).
                del entries[limit:]
                self.events.move_to_end(key)
        return acquired

    def _evicted(self) -> None:
        if self.evicted % MAX_KEYS == 0:
            logger.warning(
                "rate limiter: %d clients in memory, the cap; the oldest windows are forgotten (%d so far), which "
                "loosens their limits. Use Redis (CLERK_RATELIMIT_STORAGE_URI) for this many clients.",
                self._max_keys,
                self.evicted + 1,
            )
        self.evicted += 1


def bound_memory_storages(limiter: Limiter) -> None:
    """Swap the stock memory storages of ``limiter`` (its storage, its Redis fallback) for bounded ones."""
    from limits.strategies import STRATEGIES

    owner: Any = limiter
    if not all(hasattr(owner, slot) for slot in _LIMITER_SLOTS) or owner._strategy not in STRATEGIES:
        logger.warning(
            "this flask-limiter version is not the one the bounded memory storage was written for: the limiter "
            "keeps the stock memory storage, which grows with every client and slows past ~50,000 of them."
        )
        return
    strategy = STRATEGIES[owner._strategy]
    if type(owner._storage) is MemoryStorage:
        owner._storage = BoundedMemoryStorage()
        owner._limiter = strategy(owner._storage)
    if type(getattr(owner, "_fallback_storage", None)) is MemoryStorage and hasattr(owner, "_fallback_limiter"):
        owner._fallback_storage = BoundedMemoryStorage()
        owner._fallback_limiter = strategy(owner._fallback_storage)
