"""A bounded in-memory LRU cache with a per-entry TTL (one isolate's memory, nothing persisted)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from bookmeta import Clock, InvalidInput

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    value: V
    expires_at: float


class LRUCache(Generic[K, V]):
    """Keep at most ``max_entries`` values, each for ``ttl_s`` seconds on ``clock``.

    ``get`` refreshes recency; ``set`` evicts the least recently used entry when full.
    Expired entries are dropped when read (and count as misses).

    Raises:
        InvalidInput: if ``max_entries`` < 1 or ``default_ttl_s`` <= 0.
    """

    def __init__(
        self, max_entries: int, *, default_ttl_s: float, clock: Clock = time.monotonic
    ) -> None:
        if max_entries < 1:
            raise InvalidInput("max_entries", f"must be >= 1, got {max_entries}")
        if default_ttl_s <= 0:
            raise InvalidInput("default_ttl_s", f"must be > 0, got {default_ttl_s}")
        self.max_entries = max_entries
        self.default_ttl_s = default_ttl_s
        self._clock = clock
        self._entries: OrderedDict[K, _Entry[V]] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        """The live value for ``key``, or None when absent or expired."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        if self._clock() >= entry.expires_at:
            del self._entries[key]
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry.value

    def set(self, key: K, value: V, *, ttl_s: float | None = None) -> None:
        """Store ``value`` for ``ttl_s`` seconds (default ``default_ttl_s``); evicts if full."""
        ttl = self.default_ttl_s if ttl_s is None else ttl_s
        if ttl <= 0:
            self._entries.pop(key, None)
            return
        self._entries[key] = _Entry(value, self._clock() + ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
            self.evictions += 1

    def delete(self, key: K) -> None:
        """Forget ``key`` (no error when absent)."""
        self._entries.pop(key, None)

    def snapshot(self) -> dict[str, int | float]:
        """JSON-able figures for /metrics and /health."""
        return {
            "size": len(self._entries),
            "max_entries": self.max_entries,
            "hits": self.hits,
            "misses": self.misses,
            "evictions": self.evictions,
        }
