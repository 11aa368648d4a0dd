"""POST /libraries/{id}/retry: failed items are queued again and the next run warms them."""

from __future__ import annotations

import json
from typing import Any

from test_warmer_support import (
    AUTH,
    UNLISTED_AUTHORS,
    WARMER,
    empty_upstreams,
    get_json,
    job_state,
    job_units,
    library,
    make_system,
    mock_upstreams,
    tick,
    upload,
)

from harness import System
from warmer_app.jobs import JobState


async def retry(system: System, job: str, *, auth: bool = True) -> tuple[int, Any]:
    """POST the retry; (status, JSON body)."""
    resp = await system.fetch(
        WARMER, f"/libraries/{job}/retry", method="POST", headers=AUTH if auth else None
    )
    return resp.status, json.loads(await resp.text())


def stored(system: System, job: str) -> tuple[JobState, list[Any]]:
    """The job's state and its units, as its object keeps them."""
    state = job_state(system, job)
    state.saved_at = None
    return state, [{"kind": u["kind"], "items": u["items"]} for u in job_units(system, job)]


async def test_failed_items_queued_again_are_warmed_by_the_next_run() -> None:
    """Providers knew nothing: all 4 items failed. Retry queues them (the total stays 4),
    and once the providers know them the next run warms every one."""
    system = make_system()
    with empty_upstreams():
        _, summary = await upload(system, library("generic.csv"))
        await tick(system)
    job = summary["id"]
    _, before = await get_json(system, f"/libraries/{job}")
    assert (before["status"], before["done"], before["failed"]) == ("done", 0, 4)
    status, body = await retry(system, job)
    assert status == 200
    assert (body["id"], body["retried"], body["units"]) == (job, 4, 3)
    queued = body["progress"]
    assert (queued["status"], queued["total"], queued["failed"]) == ("warming", 4, 0)
    assert (queued["remaining"], queued["failures"], queued["percent"]) == (4, [], 0.0)
    state, plan = stored(system, job)
    assert plan[3:] == [
        {"kind": "isbns", "items": ["9780441013593", "9780451526342"]},
        {"kind": "author", "items": ["Frank Herbert"]},
        {"kind": "author", "items": ["George Orwell"]},
    ]
    assert (state.units, state.cursor) == (6, 3)
    with mock_upstreams():
        await tick(system)
    _, after = await get_json(system, f"/libraries/{job}")
    assert (after["status"], after["total"], after["done"], after["failed"]) == ("done", 4, 4, 0)
    state, _ = stored(system, job)
    assert state.by_kind == {
        "isbns": {"total": 2, "done": 2, "failed": 0},
        "author": {"total": 2, "done": 2, "failed": 0},
    }


async def test_items_that_fail_again_are_counted_once() -> None:
    """The 4 authors nobody lists fail again after a retry: still 24 items, 20 done, 4 failed."""
    system = make_system(WARM_ISBN_CHUNK="10")
    with mock_upstreams():
        _, summary = await upload(system, library("goodreads_24.csv"))
        for _ in range(3):
            await tick(system)
        job = summary["id"]
        status, body = await retry(system, job)
        assert (status, body["retried"]) == (200, 4)
        await tick(system)
    _, after = await get_json(system, f"/libraries/{job}")
    assert (after["status"], after["total"], after["done"], after["failed"]) == (
        "done",
        24,
        20,
        4,
    )
    assert {f["item"] for f in after["failures"]} == UNLISTED_AUTHORS
    assert after["failuresTotal"] == 4
    state, _ = stored(system, job)
    assert state.by_kind["author"] == {"total": 12, "done": 8, "failed": 4}


async def test_a_retry_with_nothing_failed_changes_nothing() -> None:
    """No failure: 200 with nothing retried; state and plan untouched."""
    system = make_system()
    with mock_upstreams():
        _, summary = await upload(system, library("generic.csv"))
        await tick(system)
    job = summary["id"]
    before = stored(system, job)
    status, body = await retry(system, job)
    assert (status, body["retried"], body["units"]) == (200, 0, 0)
    assert stored(system, job) == before


async def test_retry_needs_the_token_and_a_known_library() -> None:
    """401 without the token, 404 for an unknown id, 405 for a GET."""
    system = make_system()
    _, summary = await upload(system, library("generic.csv"))
    status, body = await retry(system, summary["id"], auth=False)
    assert (status, body["error"]["code"]) == (401, "unauthorized")
    for job in ("20990101t000000-abcdef", "Not-An-Id"):
        status, body = await retry(system, job)
        assert (status, body["error"]["code"]) == (404, "not_found")
    resp = await system.fetch(WARMER, f"/libraries/{summary['id']}/retry", headers=AUTH)
    assert (resp.status, resp.headers["allow"]) == (405, "POST")
