"""The owner's words (pure): durations, the expected time, states, budgets."""

from __future__ import annotations

from typing import Any

import pytest

from warmer_app.views import (
    State,
    budget_bars,
    human_duration,
    progress_bars,
    skipped_rows,
    status_of,
)

NOON = 1_767_268_800.0  # 2026-01-01 12:00:00 UTC


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0, "less than a minute"),
        (59, "less than a minute"),
        (60, "about 1 minute"),
        (12 * 60 + 10, "about 12 minutes"),
        (89 * 60, "about 89 minutes"),
        (90 * 60, "about 2 hours"),
        (47 * 3600, "about 47 hours"),
        (48 * 3600, "about 2 days"),
        (10 * 86400, "about 10 days"),
    ],
)
def test_durations_read_in_human_units(seconds: float, words: str) -> None:
    """Minutes up to an hour and a half, hours up to two days, then days."""
    assert human_duration(seconds) == words


def view(**fields: Any) -> dict[str, Any]:
    """A public progress view with plain defaults."""
    return {"id": "x", "status": "warming", "total": 10, "done": 4, "failed": 1,
            "remaining": 5, "eta": None, "lastRun": None, **fields}  # fmt: skip


def test_the_expected_time_is_the_estimate_itself() -> None:
    """The queue warms continuously: no rounding to the re-drive cron's runs."""
    status = status_of(view(eta={"seconds": 420.0, "at": NOON + 420}), now=NOON)
    assert (status.state, status.eta) == (State.WARMING, "about 7 minutes (about 12:07 UTC)")


def test_an_overdue_estimate_says_so_and_never_a_past_time() -> None:
    """An ETA already past: the queue is behind its pace (retries, a slow provider)."""
    status = status_of(view(eta={"seconds": 60.0, "at": NOON - 600}), now=NOON + 60)
    assert status.state is State.WARMING
    assert status.eta.startswith("any moment now")


def test_an_eta_past_midnight_says_tomorrow() -> None:
    """A time on the next UTC day is named so."""
    status = status_of(view(eta={"seconds": 1.0, "at": NOON + 12 * 3600 + 60}), now=NOON)
    assert status.eta == "about 12 hours (about 00:01 UTC tomorrow)"


def test_a_budget_stop_names_every_short_provider() -> None:
    """Two providers short: both named, plural."""
    last = {"stoppedBy": "daily_budget", "detail": "google, isbndb", "at": NOON}
    status = status_of(view(lastRun=last), now=NOON + 60)
    assert status.words == "waiting for tomorrow's Google Books and ISBNdb budgets"


def test_per_kind_bars_need_counts_and_a_zero_kind_has_no_bar() -> None:
    """No ISBN in the file: the books line is text only (no <progress> with max 0)."""
    kinds = {"isbns": {"total": 0, "done": 0, "failed": 0},
             "author": {"total": 3, "done": 1, "failed": 1}}  # fmt: skip
    books, authors = progress_bars(view(), kinds)
    assert (books.max, books.text) == (0, "none in this file")
    assert (authors.value, authors.max) == (2, 3)
    (items,) = progress_bars(view(), None)
    assert (items.label, items.value, items.max) == ("Books and authors", 5, 10)


def test_budget_bars_say_when_a_budget_is_spent_or_absent() -> None:
    """Spent: until midnight UTC. Zero budget: warming never calls that provider."""
    isbndb, google, openlibrary, kv_writes = budget_bars(
        {"isbndb": 12, "google": 1, "kv_writes": 9},
        {"isbndb": 10, "google": 5000, "openlibrary": 0, "kv_writes": 900},
    )
    assert kv_writes.text == "9 of 900 writes used today (1.0%)"
    assert (isbndb.value, isbndb.text) == (
        10,
        "12 of 10 calls used today (120%): spent until 00:00 UTC",
    )
    assert google.text == "1 of 5,000 calls used today (under 0.1%)"
    assert (openlibrary.max, openlibrary.text) == (0, "no budget: warming does not call it")


def test_skipped_rows_merge_problems_and_rows_without_an_isbn_by_line() -> None:
    """One line per row, problems first in their own words; rows past the kept 1,000 counted."""
    report = {
        "problems": [{"line": 5, "message": "ISBN: bad (check digit mismatch)"},
                     {"line": 9, "message": "expected 3 fields, found 2"}],
        "problemsTotal": 3,
        "rowsWithoutIsbn": {"count": 3, "lines": [5, 7]},
    }  # fmt: skip
    rows, note = skipped_rows(report)
    assert rows == (
        (5, "ISBN: bad (check digit mismatch)"),
        (7, "no ISBN (its author is still warmed)"),
        (9, "expected 3 fields, found 2"),
    )
    assert note == "2 more rows not listed."
