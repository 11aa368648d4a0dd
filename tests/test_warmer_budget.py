"""Daily provider budgets: past a budget, work waits for the next UTC day; nothing is lost."""

from __future__ import annotations

from test_warmer_support import get_json, library, make_system, mock_upstreams, tick, upload

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
    assert progress["failed"] == 0
    assert progress["done"] == progress["total"] == 24
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
