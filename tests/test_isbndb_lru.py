"""The in-isolate LRU cache: bounded size, TTL on an injected clock, recency."""

from __future__ import annotations

import pytest

from bookmeta import FakeClock, InvalidInput
from isbndb_app.lru import LRUCache


def test_get_returns_what_was_set_until_it_expires() -> None:
    """A value lives for the default TTL, then reads as a miss and is dropped."""
    clock = FakeClock(100.0)
    cache: LRUCache[str, int] = LRUCache(3, default_ttl_s=10.0, clock=clock)
    cache.set("a", 1)
    clock.advance(9.9)
    assert cache.get("a") == 1
    clock.advance(0.1)
    assert cache.get("a") is None
    assert len(cache) == 0


def test_per_entry_ttl_overrides_the_default() -> None:
    """`ttl_s` sets one entry's lifetime; a TTL <= 0 removes the entry."""
    clock = FakeClock()
    cache: LRUCache[str, int] = LRUCache(3, default_ttl_s=100.0, clock=clock)
    cache.set("short", 1, ttl_s=1.0)
    cache.set("long", 2)
    clock.advance(2.0)
    assert cache.get("short") is None
    assert cache.get("long") == 2
    cache.set("long", 3, ttl_s=0)
    assert cache.get("long") is None


def test_least_recently_used_is_evicted() -> None:
    """When full, the entry read or written least recently goes first."""
    cache: LRUCache[str, int] = LRUCache(2, default_ttl_s=10.0, clock=FakeClock())
    cache.set("a", 1)
    cache.set("b", 2)
    assert cache.get("a") == 1  # a is now the most recent
    cache.set("c", 3)
    assert cache.get("b") is None
    assert cache.get("a") == 1
    assert cache.get("c") == 3
    assert cache.evictions == 1


def test_overwrite_does_not_grow_and_refreshes_ttl() -> None:
    """Setting an existing key replaces it and restarts its TTL."""
    clock = FakeClock()
    cache: LRUCache[str, int] = LRUCache(2, default_ttl_s=10.0, clock=clock)
    cache.set("a", 1)
    clock.advance(8.0)
    cache.set("a", 2)
    clock.advance(8.0)
    assert cache.get("a") == 2
    assert len(cache) == 1


def test_snapshot_counts_hits_misses_and_delete() -> None:
    """The snapshot reports size, hits, misses and evictions; delete forgets a key."""
    cache: LRUCache[str, int] = LRUCache(5, default_ttl_s=10.0, clock=FakeClock())
    cache.set("a", 1)
    cache.get("a")
    cache.get("b")
    cache.delete("a")
    cache.delete("never")
    assert cache.snapshot() == {
        "size": 0,
        "max_entries": 5,
        "hits": 1,
        "misses": 1,
        "evictions": 0,
    }


@pytest.mark.parametrize(("size", "ttl"), [(0, 1.0), (1, 0.0), (1, -1.0)])
def test_bad_sizes_are_refused(size: int, ttl: float) -> None:
    """A cache needs at least one entry and a positive TTL."""
    with pytest.raises(InvalidInput):
        LRUCache(size, default_ttl_s=ttl, clock=FakeClock())
