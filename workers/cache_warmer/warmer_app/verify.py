"""Daily verification: are warmed entries still in the proxy's cache? Re-queue those that are not.

For each job, the keys of warmed items (settled units, minus items that ever failed)
are computed exactly as the proxy computes them (``isbn_key`` for books, ``author_warm_key`` for the
author searches) and checked with the proxy's ``cache_status`` RPC in chunks. Missing keys and
keys with less than 24 h left are re-queued: new units appended in the job's object, sent to
the warming queue at once. Large libraries
are checked round-robin: ``verify_cursor`` remembers where the budget ran out. A dated report
goes to R2 ``reports/{YYYY-MM-DD}.json`` (UTC).

First, the pass asks the proxy to sweep its cold tier (``sweep_cache``, one subrequest here):
R2 keeps cache entries until deleted, so those past their cold TTL are deleted, a few list
pages a night, the proxy resuming where the last night stopped.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bookmeta import (
    BlobStore,
    BookmetaError,
    Clocks,
    Log,
    QueueProducer,
    Service,
    author_warm_key,
    isbn_key,
)

from .budget import Meter
from .jobs import JobState, JobStore
from .planner import Unit, UnitKind, build_units
from .redrive import enqueue_units

EXPIRY_MARGIN_S = 24 * 3600.0
# List pages (1,000 objects each) the proxy sweeps a night: 2 R2 operations per page, in the
# proxy's own invocation; a night covers 5,000 cache entries, the walk resumes the next.
SWEEP_MAX_PAGES = 5
SWEEP_SUBREQUESTS = 1  # the sweep_cache RPC
JOB_START_SUBREQUESTS = 2  # state, units (the job's object)
JOB_END_SUBREQUESTS = 4  # grow, sendBatch, redriven, set_verify
RUN_END_SUBREQUESTS = 1  # the report put


def utc_day(epoch_s: float) -> str:
    """``YYYY-MM-DD`` of an epoch second, in UTC (crons run in UTC)."""
    return datetime.fromtimestamp(epoch_s, tz=UTC).strftime("%Y-%m-%d")


def item_key(kind: UnitKind, item: str) -> str:
    """The cache key a warmed item should have in the proxy's cache."""
    return isbn_key(item) if kind is UnitKind.ISBNS else author_warm_key(item)


def warmed_keys(
    state: JobState, units: Sequence[Unit], settled: set[int] | None = None
) -> dict[str, tuple[UnitKind, str]]:
    """Cache key -> (kind, item) for every item warmed so far (of the ``settled`` units; by
    default the first ``state.cursor``), in unit order, de-duplicated."""
    failed = state.failed_items()
    if settled is None:
        units = units[: min(state.cursor, state.units)]
    else:
        units = [u for n, u in enumerate(units) if n in settled]
    keys: dict[str, tuple[UnitKind, str]] = {}
    for unit in units:
        for item in unit.items:
            if item not in failed:
                keys.setdefault(item_key(unit.kind, item), (unit.kind, item))
    return keys


def needs_requeue(status: Any, now: float) -> str | None:
    """``"missing"``, ``"expiring"`` or None for one key's ``cache_status`` entry."""
    if not isinstance(status, dict) or status.get("tier") is None:
        return "missing"
    expires_at = status.get("expiresAt")
    if expires_at is not None and float(expires_at) - now < EXPIRY_MARGIN_S:
        return "expiring"
    return None


class Verifier:
    """Runs one verification pass over all jobs within the run's subrequest budget."""

    def __init__(
        self,
        *,
        store: JobStore,
        queue: QueueProducer,
        proxy: Service,
        reports: BlobStore,
        clocks: Clocks,
        meter: Meter,
        log: Log,
        keys_per_call: int,
        chunk_size: int,
    ) -> None:
        self._store = store
        self._queue = queue
        self._proxy = proxy
        self._reports = reports
        self._clocks = clocks
        self._meter = meter
        self._log = log
        self._keys_per_call = keys_per_call
        self._chunk_size = chunk_size

    async def run(self, job_ids: list[str]) -> dict[str, Any]:
        """Sweep the proxy's cold tier, verify the jobs and write the day's report."""
        sweep = await self._sweep()
        jobs: list[dict[str, Any]] = []
        for job_id in job_ids:
            if (
                self._meter.remaining
                < JOB_START_SUBREQUESTS + JOB_END_SUBREQUESTS + RUN_END_SUBREQUESTS + 1
            ):
                jobs.append({"id": job_id, "skipped": "subrequest budget spent"})
                continue
            state = await self._store.load(job_id)
            if state is None or state.cursor == 0:
                continue
            jobs.append(await self._verify_locked(state))
        now = self._clocks.wall()
        report = {
            "date": utc_day(now),
            "generatedAt": now,
            "jobs": jobs,
            "totals": {
                k: sum(int(j.get(k, 0)) for j in jobs)
                for k in ("checked", "missing", "expiring", "requeued")
            },
            "sweep": sweep,
            "subrequests": self._meter.used + 1,
        }
        await self._reports.put(
            f"reports/{report['date']}.json",
            json.dumps(report, ensure_ascii=False),
            content_type="application/json",
        )
        return report

    async def _sweep(self) -> dict[str, Any]:
        """Ask the proxy to delete expired cold entries; a failure is reported, not raised."""
        try:
            result = await self._proxy.call("sweep_cache", SWEEP_MAX_PAGES)
        except BookmetaError as exc:  # the binding threw or timed out
            result = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        if not isinstance(result, dict) or "error" in result:
            error = str(result.get("error") if isinstance(result, dict) else result)[:300]
            self._log.warning("verify.sweep_failed", error=error)
            return {"error": error}
        self._log.event("verify.sweep", **result)
        return dict(result)

    async def _verify_locked(self, state: JobState) -> dict[str, Any]:
        summary, cursor = await self._verify(state)
        await self._store.set_verify(state.id, summary_at(summary, self._clocks.wall()), cursor)
        return summary

    async def _verify(self, state: JobState) -> tuple[dict[str, Any], int]:
        units, settled = await self._store.load_units(state.id)
        keys = warmed_keys(state, units, settled)
        ordered = list(keys)
        if not ordered:
            return {"id": state.id, "checked": 0}, state.verify_cursor
        start = state.verify_cursor % len(ordered)
        calls = max(0, self._meter.remaining - JOB_END_SUBREQUESTS - RUN_END_SUBREQUESTS)
        window = (ordered[start:] + ordered[:start])[: calls * self._keys_per_call]
        now = self._clocks.wall()
        checked = 0
        missing: list[str] = []
        expiring: list[str] = []
        error = None
        for i in range(0, len(window), self._keys_per_call):
            batch = window[i : i + self._keys_per_call]
            try:
                result = await self._proxy.call("cache_status", batch)
            except BookmetaError as exc:  # the binding threw or timed out: stop this job's pass
                error = f"{type(exc).__name__}: {exc}"[:300]
                break
            if not isinstance(result, dict) or "error" in result:
                error = str(result.get("error") if isinstance(result, dict) else result)[:300]
                break
            statuses = result.get("keys", {})
            for key in batch:
                verdict = needs_requeue(statuses.get(key), now)
                if verdict == "missing":
                    missing.append(key)
                elif verdict == "expiring":
                    expiring.append(key)
            checked += len(batch)
        requeue = [keys[k] for k in missing + expiring]
        if requeue:
            isbns = [item for kind, item in requeue if kind is UnitKind.ISBNS]
            authors = [item for kind, item in requeue if kind is UnitKind.AUTHOR]
            added = build_units(isbns, authors, chunk_size=self._chunk_size)
            numbers = await self._store.grow(state.id, added, len(requeue))
            await enqueue_units(self._store, self._queue, state.id, numbers, max_batches=1)
        cursor = 0 if checked >= len(ordered) else (start + checked) % len(ordered)
        summary: dict[str, Any] = {
            "id": state.id,
            "checked": checked,
            "of": len(ordered),
            "missing": len(missing),
            "expiring": len(expiring),
            "requeued": len(requeue),
        }
        if error is not None:
            summary["error"] = error
        self._log.event("verify.job", **summary)
        return summary, cursor


def summary_at(summary: dict[str, Any], now: float) -> dict[str, Any]:
    """A job's verification summary as kept in its state (``lastVerify``)."""
    return {"at": now, **summary}
