"""The whole warming flow through the harness: upload, cron ticks, cache hits, budgets, crashes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from test_warmer_support import (
    AUTH,
    CATALOGUE_ISBNS,
    JOBS_NAMESPACE,
    PROXY,
    VERIFY_CRON,
    WARMER,
    DyingBinding,
    IsolateDied,
    get_json,
    job_state,
    job_units,
    library,
    make_system,
    mock_upstreams,
    tick,
    unknown_isbns,
    upload,
    warmer_kv,
)

from bookmeta import author_warm_key
from bookmeta.runtime import KVBinding
from harness import System
from warmer_app.budget import load_usage
from warmer_app.jobs import JobState
from warmer_app.planner import Unit, total_estimate, upstream_estimate
from warmer_app.verify import utc_day

# Small ISBN chunks so the fixture library spans several units and runs (production: 100).
SMALL_CHUNKS = "10"


class CountingR2:
    """Counts the warmer's own R2 operations (the bucket is shared with the proxy)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.ops = 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.ops += 1
            return await method(*args, **kwargs)

        return counted


class YieldingBinding:
    """Yields to the event loop before each call, so two concurrent runs interleave."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def fetch(self, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0)
        return await self._inner.fetch(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)

        async def call(*args: Any) -> Any:
            await asyncio.sleep(0)
            return await method(*args)

        return call


def warmer_traffic(system: System) -> list[Any]:
    """Service-binding calls the warmer made (not its job objects' RPC)."""
    return [t for t in system.traffic if t.caller == WARMER and t.binding != "LIBRARY_JOBS"]


def unit_writes(system: System, job_id: str | None = None) -> dict[tuple[str, int], Any]:
    """The unit results the jobs' objects recorded: (job, n) -> result."""
    ids = [job_id] if job_id else [n for n in system.objects.names(JOBS_NAMESPACE) if n]
    return {
        (job, u["n"]): u["result"]
        for job in ids
        for u in job_units(system, job)
        if u["status"] == "done"
    }


async def run_until_done(system: System, job_id: str, *, max_ticks: int = 10) -> dict[str, Any]:
    """Fire the micro-batch cron until the job reports 100%; returns the progress."""
    for _ in range(max_ticks):
        await tick(system)
        _, progress = await get_json(system, f"/libraries/{job_id}")
        if progress["percent"] == 100.0:
            return dict(progress)
    raise AssertionError(f"not done after {max_ticks} ticks: {progress}")


async def test_goodreads_library_is_warmed_to_100_percent_and_every_isbn_hits_the_cache() -> None:
    """A realistic Goodreads export warms completely within budget; ISBN searches then hit."""
    system = make_system(WARM_ISBN_CHUNK=SMALL_CHUNKS)
    r2 = CountingR2(system.envs[WARMER].LIBRARY_DATA)
    system.envs[WARMER].LIBRARY_DATA = r2
    kv = warmer_kv(system)
    with mock_upstreams() as upstreams:
        status, summary = await upload(system, library("goodreads_24.csv"))
        assert status == 201
        per_run: list[int] = []
        for _ in range(10):
            before = (len(warmer_traffic(system)), sum(kv.ops.values()), r2.ops)
            await tick(system)
            after = (len(warmer_traffic(system)), sum(kv.ops.values()), r2.ops)
            per_run.append(sum(a - b for a, b in zip(after, before, strict=True)))
            _, progress = await get_json(system, f"/libraries/{summary['id']}")
            if progress["percent"] == 100.0:
                break
        warm_calls = upstreams.calls()
        hits = []
        for isbn in summary["isbns"]:
            resp = await system.fetch(PROXY, f"/search/auto?q={isbn}&maxResults=1")
            body = json.loads(await resp.text())
            hits.append((resp.status, resp.headers.get("x-cache"), body["cache"]))
        assert upstreams.calls() == warm_calls, "cached ISBN searches must not reach upstream"
    assert progress["percent"] == 100.0
    assert progress["done"] + progress["failed"] == progress["total"] == 24
    assert progress["remaining"] == 0
    assert progress["status"] == "done"
    assert len(per_run) == 1, "warmed through the queue within the first tick"
    queue = system.queues.by_name["library-warming"]
    assert queue.delivered == 14, "one message per unit"
    assert not queue.messages, "each acked"
    assert all(status == 200 and x != "miss" and c != "miss" for status, x, c in hits), hits
    state = job_state(system, summary["id"])
    assert state.cursor == state.units == 14
    estimate = summary["estimatedUpstreamCalls"]
    assert all(warm_calls[p] <= estimate[p] for p in warm_calls), (warm_calls, estimate)


async def test_each_unit_runs_once_and_isbndb_author_calls_are_absolute_and_encoded() -> None:
    """Every unit key is written once; author calls go over the bindings with encoded names."""
    system = make_system(WARM_ISBN_CHUNK=SMALL_CHUNKS)
    with mock_upstreams():
        _, summary = await upload(system, library("goodreads_24.csv"))
        await run_until_done(system, summary["id"])
    targets = [t.target for t in warmer_traffic(system)]
    rpc = [t for t in targets if t == "warm_isbns"]
    assert len(rpc) == 2
    assert len(unit_writes(system)) == 14
    assert system.queues.by_name["library-warming"].delivered == 14
    author_urls = [t for t in targets if "/author/" in t]
    assert len(author_urls) == 12
    assert all(u.startswith("https://") for u in targets if u != "warm_isbns")
    assert any("/author/Stanis%C5%82aw%20Lem?page=1&pageSize=50&language=en" in u for u in targets)
    assert any(
        "q=inauthor%3AJ.R.R.+Tolkien&maxResults=40&includeTranslations=false" in u for u in targets
    )


async def test_a_run_killed_mid_batch_resumes_without_loss_or_duplication() -> None:
    """The isolate dies at the 4th proxy call: the units settled before keep their results,
    the one in flight is redelivered once its lease runs out, and nothing runs twice."""
    system = make_system(WARM_ISBN_CHUNK=SMALL_CHUNKS)
    with mock_upstreams():
        _, summary = await upload(system, library("goodreads_24.csv"))
        original = system.envs[WARMER].BOOKS_API_PROXY
        dying = DyingBinding(original, after=4)
        system.envs[WARMER].BOOKS_API_PROXY = dying
        with pytest.raises(IsolateDied):
            await tick(system)
        saved = unit_writes(system)
        assert len(saved) == 3, "units finished before the crash keep their results"
        system.envs[WARMER].BOOKS_API_PROXY = original
        _, mid = await get_json(system, f"/libraries/{summary['id']}")
        assert mid["units"]["done"] == 3
        progress = await run_until_done(system, summary["id"])
    writes = unit_writes(system)
    assert len(writes) == 14
    assert all(writes[k] == v for k, v in saved.items()), "a saved unit is never redone"
    targets = [t.target for t in warmer_traffic(system)]
    searches = [t for t in targets if "/search/auto" in t]
    bibliographies = [t for t in targets if "/author/" in t]
    assert len(searches) == len(set(searches)) == 12, "the killed call never reached the proxy"
    assert len(bibliographies) == len(set(bibliographies)) + 1, "only the unit in flight repeats"
    assert progress["done"] + progress["failed"] == progress["total"] == 24


async def test_overlapping_consumers_and_duplicates_do_not_process_a_unit_twice() -> None:
    """Every message is in the queue twice and two consumers run at once: the object's lease
    and its exactly-once result keep each unit to one run and each count exact."""
    system = make_system(WARM_ISBN_CHUNK=SMALL_CHUNKS)
    with mock_upstreams():
        _, summary = await upload(system, library("goodreads_24.csv"))
        env = system.envs[WARMER]
        env.BOOKS_API_PROXY = YieldingBinding(env.BOOKS_API_PROXY)
        env.ISBNDB_WORKER = YieldingBinding(env.ISBNDB_WORKER)
        queue = system.queues.by_name["library-warming"]
        for body in queue.bodies():
            queue.put(dict(body))  # a second copy of every message
        system.queues.set_duplicates()  # and every acked one once more
        await asyncio.gather(system.deliver(), system.deliver())
        progress = await run_until_done(system, summary["id"])
    targets = [t.target for t in warmer_traffic(system)]
    searches = [t for t in targets if "/search/auto" in t]
    assert len(searches) == len(set(searches)) == 12
    assert targets.count("warm_isbns") == 2
    assert len(unit_writes(system)) == 14
    assert progress["done"] + progress["failed"] == progress["total"] == 24


async def test_manual_warm_runs_a_batch_and_reports_its_subrequests() -> None:
    """POST /libraries/{id}/warm sends the library's pending units to the queue now."""
    system = make_system(WARM_ISBN_CHUNK=SMALL_CHUNKS)
    with mock_upstreams():
        _, summary = await upload(system, library("goodreads_24.csv"))
        resp = await system.fetch(
            WARMER, f"/libraries/{summary['id']}/warm", method="POST", headers=AUTH
        )
        body = json.loads(await resp.text())
        assert resp.status == 200
        assert body["subrequests"]["used"] <= body["subrequests"]["limit"] == 45
        assert body["jobs"][0]["redriven"] == 14
        await system.deliver()
        _, progress = await get_json(system, f"/libraries/{summary['id']}")
    assert progress["percent"] == 100.0


async def test_daily_verification_requeues_missing_keys_and_writes_a_dated_report() -> None:
    """At 02:00 verification finds evicted keys, re-queues them and writes reports/<day>.json."""
    system = make_system(WARM_ISBN_CHUNK=SMALL_CHUNKS)
    with mock_upstreams():
        _, summary = await upload(system, library("goodreads_24.csv"))
        await run_until_done(system, summary["id"])
        proxy_kv = system.kv(PROXY, "CACHE")
        bucket = system.r2(PROXY, "API_CACHE_COLD")
        evicted = author_warm_key("Frank Herbert")
        assert evicted in proxy_kv.dump()
        await proxy_kv.delete(evicted)
        await bucket.delete("cache/" + evicted)
        system.clock.advance(3600)
        await system.scheduled(WARMER, VERIFY_CRON)
        _, progress = await get_json(system, f"/libraries/{summary['id']}")
        report = json.loads(bucket.items["reports/2026-01-01.json"].body)
        assert progress["percent"] < 100.0
        await run_until_done(system, summary["id"])
    job = report["jobs"][0]
    assert job["checked"] == job["of"]
    assert job["requeued"] >= 1
    assert progress["requeued"] == job["requeued"]
    assert progress["units"]["total"] > 14
    assert evicted in system.kv(PROXY, "CACHE").dump()


async def test_verification_and_batch_at_0200_do_not_work_one_job_at_once() -> None:
    """Both crons fire at 02:00 while the queue works: every unit settles once."""
    system = make_system(WARM_ISBN_CHUNK=SMALL_CHUNKS)
    with mock_upstreams():
        _, summary = await upload(system, library("goodreads_24.csv"))
        await tick(system)
        await system.scheduled(WARMER, VERIFY_CRON)
        await system.scheduled(WARMER, "*/15 * * * *")
        progress = await run_until_done(system, summary["id"])
    assert progress["lastVerify"] is not None
    assert len(unit_writes(system)) == progress["units"]["total"]


async def test_total_estimate_matches_the_upload_summary() -> None:
    """The summary's upstream estimate is the planner's, for the stored plan."""
    system = make_system(WARM_ISBN_CHUNK=SMALL_CHUNKS)
    _, summary = await upload(system, library("goodreads_24.csv"))
    units = [
        Unit.from_json({"kind": u["kind"], "items": u["items"]})
        for u in job_units(system, summary["id"])
    ]
    assert total_estimate(units) == summary["estimatedUpstreamCalls"]


# -- review fixes: unlisted authors, verification faults, leases, concurrent usage -----------

DAY_S = 86_400.0
OTHER_BOOKS = (
    b"title,author,isbn13\nNeuromancer,William Gibson,9780441569595\n"
    b"Foundation,Isaac Asimov,9780553293357\n"
)


async def fire_verification_at_0200(system: System) -> None:
    """Advance to the next 02:00 UTC and fire the daily verification cron."""
    now = system.clock()
    next_0200 = (now - 2 * 3600) // DAY_S * DAY_S + DAY_S + 2 * 3600
    system.clock.advance(next_0200 - now)
    await system.scheduled(WARMER, VERIFY_CRON)


class FailingCacheStatus:
    """The proxy binding, whose ``cache_status`` RPC throws the first ``failures`` times."""

    def __init__(self, inner: Any, failures: int = 1) -> None:
        self._inner = inner
        self.failures = failures

    async def fetch(self, *args: Any, **kwargs: Any) -> Any:
        return await self._inner.fetch(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)

        async def call(*args: Any) -> Any:
            if name == "cache_status" and self.failures > 0:
                self.failures -= 1
                raise RuntimeError("Error: Network connection lost.")
            return await method(*args)

        return call


async def test_an_author_nobody_lists_fails_once_and_verification_never_requeues_it() -> None:
    """No provider lists the author: failed with a reason; 3 nightly verifications leave it."""
    system = make_system()
    with mock_upstreams() as upstreams:
        _, summary = await upload(system, b"title,author\nNo Such Book,Nobody Ever Wrote This\n")
        progress = await run_until_done(system, summary["id"])
        assert (progress["done"], progress["failed"]) == (0, 1)
        assert progress["failures"] == [
            {"unit": 0, "item": "Nobody Ever Wrote This", "reason": "no results from any provider"}
        ]
        calls = upstreams.calls()
        for _ in range(3):
            await fire_verification_at_0200(system)
            await tick(system)  # a re-queued unit would run (and call providers) here
        _, after = await get_json(system, f"/libraries/{summary['id']}")
        assert upstreams.calls() == calls, "verification made no upstream call re-warm it"
    assert after["requeued"] == 0
    assert (after["total"], after["done"], after["failed"]) == (1, 0, 1)
    assert after["units"] == {"total": 1, "done": 1}
    bucket = system.r2(WARMER, "LIBRARY_DATA").items
    reports = [json.loads(v.body) for k, v in bucket.items() if k.startswith("reports/")]
    assert [r["totals"]["requeued"] for r in reports] == [0, 0, 0]


async def test_a_failing_cache_status_call_is_reported_and_the_pass_goes_on() -> None:
    """cache_status throws for the first job: the error is in the report and the next job
    is still verified."""
    system = make_system()
    with mock_upstreams():
        _, first = await upload(system, library("generic.csv"))
        _, second = await upload(system, library("generic.csv"))
        await tick(system)
        await tick(system)
        env = system.envs[WARMER]
        env.BOOKS_API_PROXY = FailingCacheStatus(env.BOOKS_API_PROXY, failures=1)
        system.clock.advance(3600)
        await system.scheduled(WARMER, VERIFY_CRON)  # must not raise
    report = json.loads(system.r2(WARMER, "LIBRARY_DATA").items["reports/2026-01-01.json"].body)
    jobs = {j["id"]: j for j in report["jobs"]}
    ids = sorted([first["id"], second["id"]])
    assert "UpstreamError" in jobs[ids[0]]["error"]
    assert jobs[ids[0]]["checked"] == 0
    assert "error" not in jobs[ids[1]]
    assert jobs[ids[1]]["checked"] == jobs[ids[1]]["of"] > 0
    _, progress = await get_json(system, f"/libraries/{ids[0]}")
    assert "UpstreamError" in progress["lastVerify"]["error"]


async def test_a_verification_that_crashes_mid_job_leaves_the_job_as_it_was() -> None:
    """cache_status answers a malformed result that breaks verification: nothing re-queued."""

    class Malformed(FailingCacheStatus):
        def __getattr__(self, name: str) -> Any:
            method = getattr(self._inner, name)

            async def call(*args: Any) -> Any:
                return (
                    {"keys": ["not", "a", "mapping"]}
                    if name == "cache_status"
                    else (await method(*args))
                )

            return call

    system = make_system()
    with mock_upstreams():
        _, summary = await upload(system, library("generic.csv"))
        await tick(system)
        env = system.envs[WARMER]
        env.BOOKS_API_PROXY = Malformed(env.BOOKS_API_PROXY)
        system.clock.advance(3600)
        before = job_state(system, summary["id"])
        with pytest.raises(AttributeError):
            await system.scheduled(WARMER, VERIFY_CRON)
    assert job_state(system, summary["id"]) == before


async def test_concurrent_consumers_both_count_their_daily_usage() -> None:
    """Two consumers work two libraries at once: no usage increment is lost."""
    system = make_system()
    with mock_upstreams():
        _, older = await upload(system, library("generic.csv"))
        # Other books and authors, so the two runs never write one proxy cache key at once.
        _, newer = await upload(system, OTHER_BOOKS)
        env = system.envs[WARMER]
        env.BOOKS_API_PROXY = YieldingBinding(env.BOOKS_API_PROXY)
        env.ISBNDB_WORKER = YieldingBinding(env.ISBNDB_WORKER)
        queue = system.queues.by_name["library-warming"]
        assert len(queue.messages) == 6
        queue.consumer.max_batch_size = 3  # type: ignore[union-attr]
        await asyncio.gather(system.deliver(), system.deliver())
        for job in (older, newer):
            _, progress = await get_json(system, f"/libraries/{job['id']}")
            assert progress["units"]["done"] == 3
    recorded = (await load_usage(KVBinding(warmer_kv(system)), "2026-01-01")).calls
    expected: dict[str, int] = {}
    for job in (older, newer):
        for unit in job_units(system, job["id"]):
            plan = Unit.from_json({"kind": unit["kind"], "items": unit["items"]})
            spent = unit["result"]["upstream"] or upstream_estimate(plan)
            for provider, n in spent.items():
                expected[provider] = expected.get(provider, 0) + n
    assert recorded == expected


def test_author_calls_and_keys_use_the_shared_contract() -> None:
    """The author search, bibliography and verification key come from bookmeta's constants."""
    from bookmeta import AUTHOR_PAGE_SIZE, AUTHOR_WARM_MAX_RESULTS, DEFAULT_LANG
    from warmer_app import runner, verify
    from warmer_app.planner import UnitKind

    assert not hasattr(runner, "AUTHOR_MAX_RESULTS"), "no private copy of the contract"
    assert not hasattr(verify, "PROXY_DEFAULT_LANG")
    assert not hasattr(verify, "author_cache_key")
    assert f"maxResults={AUTHOR_WARM_MAX_RESULTS}&" in runner.author_search_url("A B")
    assert runner.author_bibliography_url("A B").endswith(
        f"?page=1&pageSize={AUTHOR_PAGE_SIZE}&language={DEFAULT_LANG}"
    )
    assert verify.item_key(UnitKind.AUTHOR, "Frank Herbert") == author_warm_key("Frank Herbert")


async def test_books_and_authors_are_counted_apart_through_runs_and_the_nightly_check() -> None:
    """Per-kind counts: 12 books and 12 authors at import; 12 books and 8 authors warmed,
    4 authors failed at the end; an author the nightly check re-queues adds to the authors."""
    system = make_system(WARM_ISBN_CHUNK=SMALL_CHUNKS)
    with mock_upstreams():
        _, summary = await upload(system, library("goodreads_24.csv"))
        key = summary["id"]
        assert job_state(system, key).by_kind == {
            "isbns": {"total": 12, "done": 0, "failed": 0},
            "author": {"total": 12, "done": 0, "failed": 0},
        }
        await run_until_done(system, summary["id"])
        assert job_state(system, key).by_kind == {
            "isbns": {"total": 12, "done": 12, "failed": 0},
            "author": {"total": 12, "done": 8, "failed": 4},
        }
        evicted = author_warm_key("Frank Herbert")
        await system.kv(PROXY, "CACHE").delete(evicted)
        await system.r2(PROXY, "API_CACHE_COLD").delete("cache/" + evicted)
        system.clock.advance(3600)
        await system.scheduled(WARMER, VERIFY_CRON)
        assert job_state(system, key).by_kind["author"]["total"] == 13
        await run_until_done(system, summary["id"])
    state = job_state(system, key)
    assert state.by_kind["author"] == {"total": 13, "done": 9, "failed": 4}
    counts = state.by_kind.values()
    assert sum(c["total"] for c in counts) == state.items
    assert sum(c["done"] for c in counts) == state.done
    assert sum(c["failed"] for c in counts) == state.failed


def test_a_state_written_by_a_newer_version_still_loads() -> None:
    """Fields this version does not know are ignored (isolates of two versions overlap)."""
    state = JobState("j", 0.0, "generic", "csv", "", {}, 1, 1)
    data = json.loads(state.to_json())
    loaded = JobState.from_json(json.dumps({**data, "addedLater": [1, 2]}))
    assert loaded == state


async def test_a_chunk_nobody_knows_asks_google_about_every_isbn_once_then_settles() -> None:
    """45 unknown ISBNs: Google is asked about each exactly once; all end not found."""
    system = make_system()
    isbns = unknown_isbns(45)
    csv = "title,author,isbn13\n" + "".join(f"Book {n},,{i}\n" for n, i in enumerate(isbns))
    with mock_upstreams() as upstreams:
        _, summary = await upload(system, csv)
        progress = await run_until_done(system, summary["id"], max_ticks=4)
        asked = [c.request.url.params["q"] for c in upstreams.routes["google"].calls]
    assert sorted(asked) == sorted(f"isbn:{i}" for i in isbns), "each ISBN asked once"
    assert (progress["done"], progress["failed"]) == (0, 45)
    assert {f["reason"] for f in progress["failures"]} == {"not found by any provider"}


async def test_an_isbn_the_proxy_deferred_never_fails_for_it() -> None:
    """Google down: the 20 ISBNs asked give up after 3 failed attempts; the 5 the proxy
    deferred are not written off with them, and once Google is back they are asked."""
    system = make_system()
    isbns = unknown_isbns(25)
    csv = "title,author,isbn13\n" + "".join(f"Book {n},,{i}\n" for n, i in enumerate(isbns))
    with mock_upstreams() as upstreams:
        healthy = upstreams.routes["google"].side_effect
        upstreams.routes["google"].mock(side_effect=lambda request: httpx.Response(500, json={}))
        _, summary = await upload(system, csv)
        for _ in range(3):
            await tick(system)
        _, during = await get_json(system, f"/libraries/{summary['id']}")
        upstreams.routes["google"].mock(side_effect=healthy)
        progress = await run_until_done(system, summary["id"], max_ticks=3)
    assert during["units"]["done"] == 0, "the deferred ISBNs kept their unit open"
    reasons = {f["item"]: f["reason"] for f in progress["failures"]}
    assert all(reasons[i].startswith("gave up after 3 attempts: google") for i in isbns[:20])
    assert {reasons[i] for i in isbns[20:]} == {"not found by any provider"}
    assert not any("not asked" in r for r in reasons.values())


async def test_the_0200_verification_sweeps_expired_cold_cache_entries() -> None:
    """The daily cron asks the proxy to delete R2 cache entries past their cold TTL."""
    system = make_system()
    bucket = system.r2(PROXY, "API_CACHE_COLD")
    with mock_upstreams():
        for isbn in CATALOGUE_ISBNS[:3]:
            await system.fetch(PROXY, f"/search/auto?q={isbn}")
        assert len([k for k in bucket.items if k.startswith("cache/")]) == 3
        system.clock.advance(8 * DAY_S)
        await fire_verification_at_0200(system)
    assert [k for k in bucket.items if k.startswith("cache/")] == []
    day = json.loads(bucket.text(f"reports/{utc_day(system.clock())}.json") or "{}")
    assert day["sweep"] == {"scanned": 3, "deleted": 3, "complete": True}
    assert day["subrequests"] <= 45
