"""Two-tier cache: hot hit, cold hit with promotion, stale-while-revalidate, negatives, expiry."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from bookmeta._cache import CacheWriteFailure, Provisional, TwoTierCache
from bookmeta._clock import FakeClock
from bookmeta._singleflight import SingleFlight
from bookmeta.runtime import KVBinding, R2Binding
from harness import FakeKV, FakeR2

HOT, COLD, NEG = 3600, 604_800, 300


class Setup:
    """A cache over strict fakes, with a loader that counts its calls."""

    def __init__(self) -> None:
        self.clock = FakeClock(1_000_000.0)
        self.kv = FakeKV(clock=self.clock)
        self.r2 = FakeR2()
        self.cache = TwoTierCache(
            KVBinding(self.kv),
            R2Binding(self.r2),
            hot_ttl_s=HOT,
            cold_ttl_s=COLD,
            negative_ttl_s=NEG,
            clock=self.clock,
        )
        self.calls = 0
        self.value: Any = {"title": "Dune"}
        self.fail = False
        self.background: list[Coroutine[Any, Any, None]] = []

    async def load(self) -> Any:
        self.calls += 1
        if self.fail:
            raise RuntimeError("upstream down")
        return self.value

    def schedule(self, work: Coroutine[Any, Any, None]) -> None:
        self.background.append(work)

    async def run_background(self) -> None:
        while self.background:
            await self.background.pop(0)

    async def lookup(self, key: str = "k", *, drain: bool = True) -> tuple[Any, str]:
        """One read-through; ``drain`` then runs its background work, as ``waitUntil`` would."""
        got = await self.cache.get_or_load(key, self.load, schedule=self.schedule)
        if drain:
            await self.run_background()
        return got.value, got.source


@pytest.fixture
def s() -> Setup:
    return Setup()


async def test_miss_then_hot_hit(s: Setup) -> None:
    """The first read loads and stores in both tiers; the next is a KV hit."""
    assert await s.lookup() == ({"title": "Dune"}, "miss")
    assert await s.lookup() == ({"title": "Dune"}, "kv")
    assert s.calls == 1
    assert "cache/k" in s.r2.items


async def test_cold_hit_is_promoted_to_kv(s: Setup) -> None:
    """With KV empty, R2 answers and the entry is written back to KV."""
    await s.lookup()
    s.kv.items.clear()
    s.clock.advance(10)
    assert await s.lookup() == ({"title": "Dune"}, "r2")
    await s.run_background()
    assert await s.lookup() == ({"title": "Dune"}, "kv")
    assert s.calls == 1


async def test_stale_is_served_and_refreshed(s: Setup) -> None:
    """Past the hot TTL the R2 copy is served as stale and refreshed in the background."""
    await s.lookup()
    s.clock.advance(HOT + 1)
    s.value = {"title": "Dune (new)"}
    assert await s.lookup(drain=False) == ({"title": "Dune"}, "stale")
    assert s.calls == 1
    await s.run_background()
    assert s.calls == 2
    assert await s.lookup() == ({"title": "Dune (new)"}, "kv")


async def test_expired_entry_is_reloaded(s: Setup) -> None:
    """Past the cold TTL the entry is not served while the upstream works."""
    await s.lookup()
    s.clock.advance(COLD + 1)
    s.value = {"title": "fresh"}
    assert await s.lookup() == ({"title": "fresh"}, "miss")


async def test_expired_entry_is_the_fallback_when_upstream_fails(s: Setup) -> None:
    """When the loader fails, any old entry beats an error."""
    await s.lookup()
    s.clock.advance(COLD + 1)
    s.fail = True
    assert await s.lookup() == ({"title": "Dune"}, "stale")


async def test_failure_without_any_entry_propagates(s: Setup) -> None:
    """No entry and a failing loader: the error reaches the caller."""
    s.fail = True
    with pytest.raises(RuntimeError):
        await s.lookup()


async def test_not_found_is_cached_briefly(s: Setup) -> None:
    """A None result is remembered for the negative TTL only, in KV only."""
    s.value = None
    got = await s.cache.get_or_load("k", s.load, schedule=s.schedule)
    assert (got.value, got.source, got.negative) == (None, "miss", True)
    await s.run_background()
    got = await s.cache.get_or_load("k", s.load, schedule=s.schedule)
    assert (got.source, got.negative) == ("kv", True)
    assert s.calls == 1
    assert "cache/k" not in s.r2.items
    s.clock.advance(NEG + 1)
    s.value = {"title": "now known"}
    assert await s.lookup() == ({"title": "now known"}, "miss")


async def test_concurrent_misses_share_one_load(s: Setup) -> None:
    """100 concurrent identical misses make one upstream call."""
    gate = asyncio.Event()

    async def slow() -> Any:
        s.calls += 1
        await gate.wait()
        return {"n": 1}

    tasks = [
        asyncio.ensure_future(s.cache.get_or_load("k", slow, schedule=s.schedule))
        for _ in range(100)
    ]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*tasks)
    assert s.calls == 1
    assert {r.source for r in results} == {"miss"}
    assert len(s.background) == 1  # one store for the one load
    await s.run_background()


async def test_status_reports_tier_and_expiry(s: Setup) -> None:
    """`status` says where each key lives and until when, without reading values."""
    await s.lookup("a")
    s.kv.items.clear()
    await s.lookup("b")
    now = s.clock()
    statuses = {st.key: st for st in await s.cache.status(["a", "b", "c"])}
    assert statuses["a"].tier == "r2"
    assert statuses["b"].tier == "kv"
    assert statuses["b"].fresh_until == pytest.approx(now + HOT)
    assert statuses["c"].tier is None


async def test_values_too_big_for_kv_go_to_r2_only(
    s: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A value over KV's size limit is stored in R2 only."""
    import bookmeta._cache as cache_module

    monkeypatch.setattr(cache_module, "KV_VALUE_MAX_BYTES", 2048)
    s.value = {"blob": "x" * 4096}
    await s.lookup()
    assert s.kv.dump() == {}
    assert "cache/k" in s.r2.items
    assert (await s.lookup())[1] == "r2"
    await s.run_background()
    assert s.kv.dump() == {}


def test_ttls_below_kv_minimum_are_refused() -> None:
    """KV cannot hold anything for less than 60 s; the cache refuses such settings."""
    with pytest.raises(ValueError, match="60"):
        TwoTierCache(None, None, hot_ttl_s=30)


# -- writes are best effort (issue 14, item 1) ---------------------------------------------------


async def test_a_failing_kv_write_still_answers_and_is_reported(s: Setup) -> None:
    """A KV put that throws never fails the lookup: logged, reported, the R2 copy still made."""
    failures: list[CacheWriteFailure] = []
    s.cache.on_write_failure = failures.append
    s.kv.failing.add("put")
    assert await s.lookup() == ({"title": "Dune"}, "miss")
    assert [(f.key, f.tier, f.op) for f in failures] == [("k", "kv", "store")]
    assert "503" in failures[0].error
    assert "cache/k" in s.r2.items


async def test_the_answer_does_not_wait_for_the_store(s: Setup) -> None:
    """A loaded value is returned before it is stored: the store is background work."""
    assert await s.lookup(drain=False) == ({"title": "Dune"}, "miss")
    assert s.kv.dump() == {}
    assert s.r2.items == {}
    await s.run_background()
    assert await s.lookup() == ({"title": "Dune"}, "kv")


async def test_joiners_do_not_repeat_the_load_when_the_store_fails() -> None:
    """Another isolate wrote the key this second (KV 429): 5 callers share 1 load, all answered."""
    s = Setup()
    s.cache = TwoTierCache(
        KVBinding(s.kv),
        R2Binding(s.r2),
        clock=s.clock,
        single_flight=SingleFlight(retry_alone=True),  # as the proxy: joiners retry teardown
    )
    s.kv.last_write["k"] = s.clock()  # the racing isolate's write
    gate = asyncio.Event()

    async def slow() -> Any:
        s.calls += 1
        await gate.wait()
        return {"n": 1}

    tasks = [
        asyncio.ensure_future(s.cache.get_or_load("k", slow, schedule=s.schedule)) for _ in range(5)
    ]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*tasks)
    assert s.calls == 1
    assert [r.value for r in results] == [{"n": 1}] * 5
    await s.run_background()  # the one scheduled store: its KV half fails, quietly
    assert "cache/k" in s.r2.items


async def test_promotion_never_overwrites_a_fresher_kv_entry(s: Setup) -> None:
    """An R2 hit promoted to KV after another request stored a newer value leaves KV alone."""
    await s.lookup()
    s.kv.items.clear()
    s.clock.advance(10)
    assert await s.lookup(drain=False) == ({"title": "Dune"}, "r2")  # promotion scheduled
    await s.cache.set("k", {"title": "Dune (newer)"})  # another request stored a fresh load
    s.clock.advance(2)
    await s.run_background()
    assert await s.lookup() == ({"title": "Dune (newer)"}, "kv")


async def test_a_failing_promotion_is_reported_not_raised(s: Setup) -> None:
    """Promotion is best effort too: a KV put that throws is reported."""
    failures: list[CacheWriteFailure] = []
    s.cache.on_write_failure = failures.append
    await s.lookup()
    s.kv.items.clear()
    s.kv.failing.add("put")
    s.clock.advance(10)
    assert await s.lookup() == ({"title": "Dune"}, "r2")
    assert [(f.tier, f.op) for f in failures] == [("kv", "promote")]


# -- the cold tier's expired entries are swept (issue 14, item 9) --------------------------------


async def test_sweep_deletes_only_entries_past_their_cold_ttl(s: Setup) -> None:
    """Entries past the cold TTL go; fresh and stale ones stay; one list + one delete."""
    await s.lookup("old")
    s.clock.advance(COLD - HOT)
    await s.lookup("stale")
    s.clock.advance(HOT + 1)  # "old" expired, "stale" only stale
    await s.lookup("fresh")
    s.r2.ops.clear()
    report = await s.cache.sweep_expired()
    assert (report.scanned, report.deleted, report.cursor) == (3, 1, None)
    assert sorted(s.r2.items) == ["cache/fresh", "cache/stale"]
    assert s.r2.ops == {"list": 1, "delete": 1}


async def test_sweep_pages_with_a_cursor_and_leaves_other_prefixes_alone(s: Setup) -> None:
    """At most ``max_pages`` pages per call; the cursor resumes; libraries/ is untouched."""
    for n in range(5):
        await s.lookup(f"k{n}")
    await s.r2.put("libraries/x/plan.json", "{}")
    s.clock.advance(COLD + 1)
    first = await s.cache.sweep_expired(max_pages=2, page_size=2)
    assert (first.scanned, first.deleted) == (4, 4)
    assert first.cursor is not None
    rest = await s.cache.sweep_expired(cursor=first.cursor, max_pages=2, page_size=2)
    assert (rest.deleted, rest.cursor) == (1, None)
    assert list(s.r2.items) == ["libraries/x/plan.json"]


# -- provisional answers (a partial answer while a provider is down) ------------------------


async def test_a_provisional_answer_is_served_kept_in_kv_only_and_reloaded_after_its_ttl(
    s: Setup,
) -> None:
    """Provisional: served with its note, kept in KV (not R2) for its TTL, then reloaded."""
    answer = Provisional({"title": "Dune?"}, {"failed": ["google"]}, ttl_s=90)

    async def partial() -> Any:
        s.calls += 1
        raise answer

    got = await s.cache.get_or_load("k", partial, schedule=s.schedule)
    await s.run_background()
    assert (got.value, got.source, got.note) == ({"title": "Dune?"}, "miss", {"failed": ["google"]})
    assert "cache/k" not in s.r2.items
    again = await s.cache.get_or_load("k", partial, schedule=s.schedule)
    assert (again.source, again.note, s.calls) == ("kv", {"failed": ["google"]}, 1)
    assert (await s.cache.status(["k"]))[0].tier is None  # not counted as cached
    s.clock.advance(91)
    assert await s.lookup() == ({"title": "Dune"}, "miss")  # the full answer replaces it
    assert (await s.cache.get_or_load("k", partial, schedule=s.schedule)).note is None


async def test_a_provisional_answer_never_replaces_a_full_entry(s: Setup) -> None:
    """With a full entry of any age, a provisional load serves that entry and stores nothing."""

    async def partial() -> Any:
        raise Provisional({"title": "partial"}, {"failed": ["google"]}, ttl_s=60)

    await s.lookup()
    s.clock.advance(COLD + 1)
    s.kv.items.clear()
    got = await s.cache.get_or_load("k", partial, schedule=s.schedule)
    await s.run_background()
    assert (got.value, got.source, got.note) == ({"title": "Dune"}, "stale", None)
    assert "k" not in s.kv.items


def test_a_provisional_ttl_is_at_least_kvs_minimum() -> None:
    """KV cannot keep anything for less than 60 s."""
    assert Provisional(None, {}, ttl_s=5).ttl_s == 60
    assert Provisional(None, {}, ttl_s=120.2).ttl_s == 121
