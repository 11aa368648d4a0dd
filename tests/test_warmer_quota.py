"""The warmer and the isbndb worker's key guard: warming says so, a spent quota defers."""

from __future__ import annotations

from typing import Any

from test_warmer_support import (
    TOKEN,
    UNLISTED_AUTHORS,
    WARMER,
    get_json,
    library,
    mock_upstreams,
    tick,
    upload,
)

from bookmeta import PURPOSE_HEADER
from harness import System
from isbndb_app.policy import next_utc_midnight

ISBNDB = "isbndb_worker"
PROXY = "books_api_proxy"


def system_with_quota(total: int) -> System:
    """All three workers; the ISBNdb key's whole daily quota is ``total``, all of it warming's."""
    return System(
        secrets={"ISBNDB_API_KEY": "k", "WARMER_ADMIN_TOKEN": TOKEN, "GOOGLE_BOOKS_API_KEY": "g"},
        vars={
            ISBNDB: {"ISBNDB_DAILY_QUOTA": str(total), "ISBNDB_WARM_RESERVE": str(total)},
            WARMER: {"WARM_ISBN_CHUNK": "10"},
        },
    )


async def progress_of(system: System, job: str) -> dict[str, Any]:
    """The job's progress view (authenticated)."""
    _, body = await get_json(system, f"/libraries/{job}")
    return dict(body)


async def test_every_isbndb_call_made_for_warming_says_warm() -> None:
    """The warmer's author pages and the proxy's warm_isbns bulk calls carry purpose warm."""
    system = system_with_quota(1000)
    with mock_upstreams():
        _, summary = await upload(system, library("goodreads_24.csv"))
        await tick(system)
    to_isbndb = [
        t
        for t in system.traffic
        if t.binding == "ISBNDB_WORKER" and t.kind == "fetch" and t.caller in (WARMER, PROXY)
    ]
    warming = [t for t in to_isbndb if t.caller == WARMER or "/books" in t.target]
    assert warming
    assert {t.headers.get(PURPOSE_HEADER) for t in warming} == {"warm"}
    assert summary["id"]


async def test_a_spent_quota_defers_the_job_and_it_resumes_after_midnight() -> None:
    """When the key's quota runs out, runs stop as daily_budget naming the key guard, no
    unit is given up, and after 00:00 UTC the job completes as it would have."""
    system = system_with_quota(4)
    with mock_upstreams():
        status, summary = await upload(system, library("goodreads_24.csv"))
        assert status == 201
        job = summary["id"]
        for _ in range(3):
            await tick(system)
        stopped = await progress_of(system, job)
        assert stopped["status"] != "done"
        assert stopped["lastRun"]["stoppedBy"] == "daily_budget"
        assert "isbndb: daily quota of the key spent (key guard)" in stopped["lastRun"]["detail"]
        assert stopped["failures"] == []
        resp = await system.fetch(ISBNDB, "/health")
        quota = (await resp.json())["quota"]
        assert (quota["used"], quota["left"]) == (4, 0)
        days = 0
        for _ in range(40):
            if (await progress_of(system, job))["lastRun"]["stoppedBy"] == "daily_budget":
                system.clock.advance(next_utc_midnight(system.clock()) - system.clock())
                days += 1
            await tick(system)
            done = await progress_of(system, job)
            if done["status"] == "done":
                break
    assert days >= 2  # four calls a day: the job spans several UTC days
    assert (done["done"], done["failed"], done["remaining"]) == (20, 4, 0)
    assert {f["item"] for f in done["failures"]} == UNLISTED_AUTHORS
