"""Batch planning (pure), in isolation (the unit leases: test_warmer_job_object.py)."""

from __future__ import annotations

from warmer_app.planner import StopReason, UnitKind, build_units, plan_batch

LOTS = {"isbndb": 10_000, "google": 10_000, "openlibrary": 10_000, "kv_writes": 10_000}


def test_units_are_isbn_chunks_then_one_per_author() -> None:
    """25 ISBNs in chunks of 10 give three ISBN units, then the authors."""
    units = build_units([str(i) for i in range(25)], ["A", "B"], chunk_size=10)
    assert [(u.kind, len(u.items)) for u in units] == [
        (UnitKind.ISBNS, 10),
        (UnitKind.ISBNS, 10),
        (UnitKind.ISBNS, 5),
        (UnitKind.AUTHOR, 1),
        (UnitKind.AUTHOR, 1),
    ]


def test_plan_stops_at_the_first_unit_the_subrequests_do_not_cover() -> None:
    """2 per ISBN chunk, 3 per author: 7 subrequests cover two chunks and one author."""
    units = build_units(["1", "2"], ["A", "B"], chunk_size=1)
    plan = plan_batch(units, 0, subrequests=7, daily_left=LOTS)
    assert (plan.indices, plan.stop) == ([0, 1, 2], StopReason.SUBREQUESTS)


def test_plan_respects_the_daily_provider_budget_and_the_cursor() -> None:
    """An author needs up to 2 ISBNdb calls; with 1 left the batch stops there."""
    units = build_units(["1"], ["A"], chunk_size=1)
    plan = plan_batch(units, 1, subrequests=45, daily_left={**LOTS, "isbndb": 1})
    assert (plan.indices, plan.stop, plan.detail) == ([], StopReason.DAILY_BUDGET, "isbndb")


def test_google_estimate_of_an_isbn_chunk_is_capped_like_the_proxy() -> None:
    """A chunk of 100 ISBNs costs at most 20 Google calls (the proxy's cap per call)."""
    from warmer_app.planner import upstream_estimate

    (chunk,) = build_units([str(i) for i in range(100)], [], chunk_size=100)
    assert upstream_estimate(chunk) == {
        "isbndb": 1,
        "openlibrary": 2,
        "google": 20,
        "kv_writes": 200,
    }
