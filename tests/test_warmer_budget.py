"""Daily provider budgets: past a budget, work waits for the next UTC day; nothing is lost."""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_warmer_support import (
    UNLISTED_AUTHORS,
    WARMER,
    DyingBinding,
    IsolateDied,
    get_json,
    library,
    make_system,
    mock_upstreams,
    tick,
    upload,
    warmer_kv,
)

from bookmeta import Clocks, FakeClock
from bookmeta.runtime import KVBinding
from harness import FakeKV
from warmer_app.budget import USAGE_TTL_S, UsageLedger, load_usage
from warmer_app.verify import utc_day

DAY = 86_400.0
ISBNDB_BUDGET = 4


async def test_a_library_past_a_small_budget_completes_on_later_days() -> None:
    """Each day spends at most the ISBNdb budget; the job stops saying why, then finishes."""
    system = make_system(WARM_ISBN_CHUNK="10", ISBNDB_DAILY_BUDGET=str(ISBNDB_BUDGET))
    per_day: list[int] = []
    reasons: set[str] = set()
    with mock_upstreams() as upstreams:
        status, summary = await upload(system, library("goodreads_24.csv"))
        assert status == 201
        job = summary["id"]
        progress: dict[str, object] = {}
        for _day in range(20):
            day_start = (system.clock() // DAY + 1) * DAY
            system.clock.advance(day_start - system.clock() + 60)  # just after midnight UTC
            before = upstreams.calls()["isbndb"]
            for _ in range(8):  # two hours of */15 ticks: plenty of subrequests, not of budget
                await tick(system)
            per_day.append(upstreams.calls()["isbndb"] - before)
            _, progress = await get_json(system, f"/libraries/{job}")
            last = progress["lastRun"]
            assert isinstance(last, dict)
            reasons.add(str(last["stoppedBy"]))
            if progress["remaining"] == 0:
                break
    assert progress["percent"] == 100.0
    assert progress["failed"] == len(UNLISTED_AUTHORS), "only the authors nobody lists"
    assert progress["done"] + progress["failed"] == progress["total"] == 24
    assert len(per_day) > 2, "a 4-call daily budget must spread the library over several days"
    assert max(per_day) <= ISBNDB_BUDGET
    assert "daily_budget" in reasons


async def test_the_progress_view_says_the_budget_is_spent() -> None:
    """While a budget blocks the job, GET /libraries/{id} names the provider and the reason."""
    system = make_system(WARM_ISBN_CHUNK="10", ISBNDB_DAILY_BUDGET="1")
    with mock_upstreams():
        _, summary = await upload(system, library("goodreads_24.csv"))
        for _ in range(3):
            await tick(system)
        _, progress = await get_json(system, f"/libraries/{summary['id']}")
    assert progress["remaining"] > 0
    assert progress["lastRun"]["stoppedBy"] == "daily_budget"
    assert "isbndb" in progress["lastRun"]["detail"]


async def test_a_library_past_the_kv_write_budget_defers_and_says_so() -> None:
    """KV_DAILY_WRITE_BUDGET (the Free plan's 1,000 KV writes a day): warming stops at it,
    names it in the progress view, and finishes on later days instead of failing."""
    system = make_system(WARM_ISBN_CHUNK="4", KV_DAILY_WRITE_BUDGET="10")
    with mock_upstreams():
        _, summary = await upload(system, library("goodreads_24.csv"))
        job = summary["id"]
        for _ in range(3):
            await tick(system)
        _, blocked = await get_json(system, f"/libraries/{job}")
        for _day in range(30):
            system.clock.advance(DAY)
            for _ in range(3):
                await tick(system)
            _, progress = await get_json(system, f"/libraries/{job}")
            if progress["remaining"] == 0:
                break
    assert blocked["remaining"] > 0
    assert blocked["lastRun"]["stoppedBy"] == "daily_budget"
    assert "kv_writes" in blocked["lastRun"]["detail"]
    assert progress["remaining"] == 0
    assert progress["failed"] == len(UNLISTED_AUTHORS), "deferred, never failed for it"


async def test_usage_sums_every_run_record_and_a_legacy_record_in_one_list() -> None:
    """Each run writes records of its own; loading sums them (and the pre-upgrade keys)."""
    clock = FakeClock(0.0)
    clocks = Clocks(wall=clock, monotonic=clock, sleep=clock.sleep)
    raw = FakeKV(clock=clock)
    kv = KVBinding(raw)
    legacy = {"day": "2026-01-01", "calls": {"isbndb": 5}, "writtenAt": 0.0}
    await kv.put("usage:2026-01-01", json.dumps(legacy), ttl_s=USAGE_TTL_S)
    await kv.put("usage:2026-01-01:0a1b:isbndb=0,google=1,openlibrary=0", "{}", ttl_s=60)
    first, second = await load_usage(kv, "2026-01-01"), await load_usage(kv, "2026-01-01")
    first_run, second_run = UsageLedger(kv, first, clocks), UsageLedger(kv, second, clocks)
    first.add({"isbndb": 2, "google": 1, "openlibrary": 1})
    second.add({"google": 3})
    await first_run.settle()  # two runs that started together: neither overwrites
    await second_run.settle()
    raw.ops.clear()
    await second_run.settle()  # nothing new spent: nothing written
    assert raw.ops == {}
    await kv.put("usage:2026-01-02:x.0:isbndb=100", "{}", ttl_s=USAGE_TTL_S)  # another day
    raw.ops.clear()
    total = await load_usage(kv, "2026-01-01")
    assert total.calls == {"isbndb": 7, "google": 5, "openlibrary": 1}
    assert raw.ops == {"list": 1, "get": 1}, "one list, plus one get for the legacy record"
    assert total.left({"isbndb": 10, "google": 10, "openlibrary": 10, "kv_writes": 10}) == {
        "isbndb": 3,
        "google": 5,
        "openlibrary": 9,
        "kv_writes": 10,
    }


async def test_a_runs_record_counts_calls_before_they_are_made_and_settles_to_the_spend() -> None:
    """cover() writes spent + estimate first; settle() the real spend; the day counts the last."""
    clock = FakeClock(0.0)
    clocks = Clocks(wall=clock, monotonic=clock, sleep=clock.sleep)
    raw = FakeKV(clock=clock, enforce_write_rate=False)
    kv = KVBinding(raw)
    usage = await load_usage(kv, "2026-01-01")
    ledger = UsageLedger(kv, usage, clocks)
    await ledger.cover({"isbndb": 2, "google": 20, "openlibrary": 2})
    assert (await load_usage(kv, "2026-01-01")).calls == {
        "isbndb": 2,
        "google": 20,
        "openlibrary": 2,
    }, "counted before a single call was made"
    usage.add({"isbndb": 1, "google": 4, "openlibrary": 1})
    raw.ops.clear()
    await ledger.cover({"isbndb": 1, "google": 16, "openlibrary": 1})  # already counted
    assert raw.ops == {}
    await ledger.settle()
    assert (await load_usage(kv, "2026-01-01")).calls == {
        "isbndb": 1,
        "google": 4,
        "openlibrary": 1,
    }, "the settled record replaces the estimate"


async def test_more_usage_records_than_one_list_page_count_as_the_budget_spent() -> None:
    """Records past one KV list page cannot be summed in one subrequest: nothing is left."""
    clock = FakeClock(0.0)
    kv = KVBinding(FakeKV(clock=clock))
    for n in range(1001):
        await kv.put(f"usage:2026-01-01:{n:04d}:isbndb=1", "{}", ttl_s=USAGE_TTL_S)
    usage = await load_usage(kv, "2026-01-01")
    assert usage.left(
        {"isbndb": 10_000, "google": 10_000, "openlibrary": 10_000, "kv_writes": 10_000}
    ) == {"isbndb": 0, "google": 0, "openlibrary": 0, "kv_writes": 0}


async def test_a_run_killed_mid_batch_leaves_its_upstream_calls_counted() -> None:
    """The isolate dies after ISBNdb calls were made: today's usage already counts them."""
    system = make_system(WARM_ISBN_CHUNK="10")
    with mock_upstreams() as upstreams:
        await upload(system, library("goodreads_24.csv"))
        env = system.envs[WARMER]
        env.BOOKS_API_PROXY = DyingBinding(env.BOOKS_API_PROXY, after=4)
        with pytest.raises(IsolateDied):
            await tick(system)
        spent = upstreams.calls()
    usage = await load_usage(KVBinding(warmer_kv(system)), utc_day(system.clock()))
    assert spent["isbndb"] >= 3
    assert all(usage.calls.get(p, 0) >= n for p, n in spent.items()), (usage.calls, spent)


async def test_a_run_that_raises_records_what_it_spent() -> None:
    """A consumer whose job object fails to record the 4th unit's result (the message is
    retried) still records the real spend of the calls it made."""
    system = make_system(WARM_ISBN_CHUNK="10")
    with mock_upstreams() as upstreams:
        await upload(system, library("goodreads_24.csv"))
        namespace = system.envs[WARMER].LIBRARY_JOBS

        class Stub:
            def __init__(self, inner: Any) -> None:
                self._inner = inner

            def __getattr__(self, name: str) -> Any:
                method = getattr(self._inner, name)

                async def call(*args: Any) -> Any:
                    if name == "finish" and args[0] == 3:
                        raise RuntimeError("Durable Object reset because its code was updated")
                    return await method(*args)

                return call

        class Namespace:
            def getByName(self, name: str) -> Stub:
                return Stub(namespace.getByName(name))

        system.envs[WARMER].LIBRARY_JOBS = Namespace()
        await system.deliver()
        spent = upstreams.calls()
        retried = system.queues.by_name["library-warming"].messages
        assert [m.body["n"] for m in retried if m.attempts == 2] == [3]
    usage = await load_usage(KVBinding(warmer_kv(system)), utc_day(system.clock()))
    assert spent["isbndb"] >= 3
    assert all(usage.calls.get(p, 0) >= n for p, n in spent.items()), (usage.calls, spent)
