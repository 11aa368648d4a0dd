"""Warming jobs: the state model, where it is kept, and the progress view.

Layout::

    Durable Object LIBRARY_JOBS, one per job id (job_object.py, SQLite): the JobState
                                    (counts, failures, last run) and one row per unit
                                    (items, pending|done, lease, progress, result)
    R2  libraries/{id}/source.csv   the upload as received (the file part of a multipart form)
    R2  libraries/{id}/import.json  what the import found: rows skipped (line, reason), rows
                                    without an ISBN; shown on the library's page to the token holder
    KV  job:{id}                    the index of libraries (written once, at import; the
                                    dashboard lists it)
    KV  usage:{YYYY-MM-DD}:...      upstream calls spent that UTC day (see budget.py)

``JobState.cursor`` counts the units settled (they settle in any order, one queue message
each); a job is finished when every unit is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from bookmeta import BlobStore, Clocks, KVStore, ObjectNamespace, Service, UpstreamError

from .planner import StopReason, Unit, UnitKind, build_units

JOB_PREFIX = "job:"
CRON_INTERVAL_S = 900.0  # the re-drive cron's cadence (*/15)
MAX_FAILURES_SHOWN = 100
MAX_REPORT_LINES = (
    1000  # lines without an ISBN kept in import.json (problems: formats.MAX_PROBLEMS)
)
_ID_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


def is_job_id(text: str) -> bool:
    """True for something that can be a job id (ids are ours: lowercase, digits, hyphens)."""
    return _ID_RE.fullmatch(text) is not None


def job_key(job_id: str) -> str:
    """KV key of a job's state."""
    return f"{JOB_PREFIX}{job_id}"


def unit_key(job_id: str, n: int) -> str:
    """KV key of unit ``n``'s result."""
    return f"unit:{job_id}:{n:06d}"


def source_key(job_id: str) -> str:
    """R2 key of the uploaded file."""
    return f"libraries/{job_id}/source.csv"


def plan_key(job_id: str) -> str:
    """R2 key of the job's units."""
    return f"libraries/{job_id}/plan.json"


def report_key(job_id: str) -> str:
    """R2 key of the import report (rows skipped, rows without an ISBN)."""
    return f"libraries/{job_id}/import.json"


def kind_counts(units: Sequence[Unit]) -> dict[str, dict[str, int]]:
    """``{kind: {"total", "done", "failed"}}`` for ``units`` not yet run (both kinds present)."""
    counts = {kind.value: {"total": 0, "done": 0, "failed": 0} for kind in UnitKind}
    for unit in units:
        counts[unit.kind.value]["total"] += len(unit.items)
    return counts


@dataclass
class UnitResult:
    """What one unit achieved: items done, items failed with a reason, upstream calls spent."""

    n: int
    kind: str
    done: list[str]
    failed: list[dict[str, str]]
    at: float
    upstream: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        """Serialized for KV."""
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> UnitResult:
        """Inverse of to_json."""
        data = json.loads(raw)
        return cls(
            int(data["n"]),
            str(data["kind"]),
            [str(i) for i in data["done"]],
            [{"item": str(f["item"]), "reason": str(f["reason"])} for f in data["failed"]],
            float(data["at"]),
            {str(k): int(v) for k, v in data.get("upstream", {}).items()},
        )


@dataclass
class JobState:
    """Everything about one library's warming except the units themselves."""

    id: str
    created_at: float
    format: str
    variant: str
    filename: str
    library: dict[str, int]
    units: int
    items: int
    cursor: int = 0
    done: int = 0
    failed: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0  # attempts of the unit at the cursor so far
    runs: int = 0
    first_run_at: float | None = None
    last_run: dict[str, Any] | None = None
    requeued: int = 0
    last_verify: dict[str, Any] | None = None
    verify_cursor: int = 0
    saved_at: float | None = None
    # Items per unit kind ("isbns", "author"): total, done, failed. Empty for jobs imported
    # before it existed (their pages then show one bar for all items).
    by_kind: dict[str, dict[str, int]] = field(default_factory=dict)
    # attempts.UnitProgress of the unit at the cursor while it is unfinished between runs
    unit_progress: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        """No unit left to run."""
        return self.cursor >= self.units

    def fold(self, result: UnitResult) -> None:
        """Account unit ``result`` (the unit at the cursor) and move the cursor past it."""
        if result.n != self.cursor:
            raise ValueError(f"unit {result.n} folded at cursor {self.cursor}")
        self.done += len(result.done)
        self.failed += len(result.failed)
        self.failures.extend({"unit": result.n, **f} for f in result.failed)
        if (counts := self.by_kind.get(result.kind)) is not None:
            counts["done"] += len(result.done)
            counts["failed"] += len(result.failed)
        self.cursor += 1
        self.attempts = 0
        self.unit_progress = None

    def grow(self, added: Sequence[Unit]) -> None:
        """Account units appended to the plan (after the existing ``units``)."""
        self.units += len(added)
        for unit in added:
            self.items += len(unit.items)
            if (counts := self.by_kind.get(unit.kind.value)) is not None:
                counts["total"] += len(unit.items)

    def requeue_failures(self, units: Sequence[Unit], *, chunk_size: int) -> list[Unit]:
        """Forget every recorded failure; returns the units that warm those items again.

        ``units`` is the plan (a failure names its unit, hence its item's kind). The items
        leave ``failed`` and ``failures`` and become pending work again, one unit item per
        failure: ``items`` does not change, ``units`` grows by the returned units, which the
        caller appends to the plan.
        """
        isbns: list[str] = []
        authors: list[str] = []
        for failure in self.failures:
            kind = units[int(failure["unit"])].kind
            (isbns if kind is UnitKind.ISBNS else authors).append(str(failure["item"]))
            if (counts := self.by_kind.get(kind.value)) is not None:
                counts["failed"] -= 1
        added = build_units(isbns, authors, chunk_size=chunk_size)
        self.failed -= len(self.failures)
        self.failures = []
        self.units += len(added)
        return added

    def failed_items(self) -> set[str]:
        """Items recorded as failed (verification leaves them alone; a retry forgets them)."""
        return {str(f["item"]) for f in self.failures}

    def to_json(self) -> str:
        """Serialized for KV."""
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> JobState:
        """Inverse of to_json; fields a newer version added are ignored (rolling deploys)."""
        data: dict[str, Any] = json.loads(raw)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def progress(state: JobState) -> dict[str, Any]:
    """The progress view of GET /libraries/{id} (items are ISBNs plus authors).

    ``rate`` is items per hour measured from the first settled work to the last;
    ``eta`` is the seconds and the UTC epoch at which the rest would be done at that rate.
    """
    processed = state.done + state.failed
    remaining = max(0, state.items - processed)
    percent = 100.0 if state.items == 0 else round(100.0 * processed / state.items, 1)
    if state.finished:
        remaining, percent = 0, 100.0
    rate = None
    eta: dict[str, float] | None = None
    if state.runs and processed and state.first_run_at is not None and state.last_run:
        span = max(60.0, float(state.last_run["at"]) - float(state.first_run_at))
        rate = round(processed / span * 3600.0, 1)
        if remaining and state.last_run is not None:
            seconds = round(remaining / rate * 3600.0, 1)
            eta = {"seconds": seconds, "at": round(float(state.last_run["at"]) + seconds, 1)}
        elif not remaining:
            eta = {"seconds": 0.0, "at": float(state.last_run["at"]) if state.last_run else 0.0}
    return {
        "id": state.id,
        "status": "done" if state.finished else ("warming" if state.runs else "queued"),
        "format": state.format,
        "filename": state.filename,
        "createdAt": state.created_at,
        "library": state.library,
        "total": state.items,
        "done": state.done,
        "failed": state.failed,
        "failures": state.failures[:MAX_FAILURES_SHOWN],
        "failuresTotal": len(state.failures),
        "remaining": remaining,
        "percent": percent,
        "units": {"total": state.units, "done": state.cursor},
        "requeued": state.requeued,
        "runs": state.runs,
        "lastRun": state.last_run,
        "lastVerify": state.last_verify,
        "rate": {"itemsPerHour": rate} if rate is not None else None,
        "eta": eta,
    }


PUBLIC_FIELDS = (
    "id",
    "status",
    "format",
    "total",
    "done",
    "failed",
    "remaining",
    "percent",
    "units",
    "rate",
    "eta",
)


def public_progress(view: Mapping[str, Any]) -> dict[str, Any]:
    """The aggregate part of a ``progress`` view, for callers without the admin token.

    A library is a person's reading list: the filename, the failures (ISBNs, author names),
    the library summary and the verification details are left out. ``lastRun`` keeps only
    ``stoppedBy`` and ``detail``; a transient error's detail is cut to its first clause
    (``"proxy search answered 503"``), since the rest can quote what a provider said.
    """
    out = {name: view.get(name) for name in PUBLIC_FIELDS}
    last = view.get("lastRun")
    if isinstance(last, Mapping):
        detail = str(last.get("detail") or "")
        if last.get("stoppedBy") == StopReason.TRANSIENT.value:
            detail = detail.split(":", 1)[0]
        out["lastRun"] = {"stoppedBy": last.get("stoppedBy"), "detail": detail}
    else:
        out["lastRun"] = None
    return out


class JobStore:
    """Jobs in their Durable Objects (state, units), R2 (source, report) and a KV index."""

    def __init__(
        self, kv: KVStore, blobs: BlobStore, objects: ObjectNamespace, clocks: Clocks
    ) -> None:
        self._kv = kv
        self._blobs = blobs
        self._objects = objects
        self._clocks = clocks

    async def _call(self, job_id: str, method: str, *args: Any) -> dict[str, Any]:
        result = await self._objects.get_by_name(job_id).call(method, *args)
        if not isinstance(result, dict):
            raise UpstreamError("LIBRARY_JOBS", None, f"{method} returned {type(result).__name__}")
        if "error" in result:
            raise UpstreamError("LIBRARY_JOBS", None, f"{method}: {result['error']}")
        return result

    def stub(self, job_id: str) -> Service:
        """The job's object (RPC)."""
        return self._objects.get_by_name(job_id)

    async def create(
        self,
        state: JobState,
        source: bytes,
        units: Sequence[Unit],
        *,
        content_type: str,
        metadata: Mapping[str, str],
        report: Mapping[str, Any],
    ) -> None:
        """Store the upload, the import report, the job (object) and its index entry (last)."""
        await self._blobs.put(
            source_key(state.id), source, custom_metadata=metadata, content_type=content_type
        )
        body = json.dumps(report, ensure_ascii=False, separators=(",", ":"))
        await self._blobs.put(report_key(state.id), body, content_type="application/json")
        await self._call(
            state.id, "create", json.loads(state.to_json()), [u.to_json() for u in units]
        )
        await self._kv.put(job_key(state.id), json.dumps({"createdAt": state.created_at}))

    async def load_report(self, job_id: str) -> dict[str, Any] | None:
        """The import report, or None (libraries imported before reports were kept)."""
        blob = await self._blobs.get(report_key(job_id))
        if blob is None:
            return None
        report: dict[str, Any] = json.loads(blob.text())
        return report

    async def load(self, job_id: str) -> JobState | None:
        """The job's state, or None when there is no such job."""
        found = await self._call(job_id, "state")
        if "state" not in found:
            return None
        return JobState.from_json(json.dumps(found["state"]))

    async def load_units(self, job_id: str) -> tuple[list[Unit], set[int]]:
        """The job's units, and the numbers of those settled."""
        found = await self._call(job_id, "units")
        units = [Unit.from_json(u) for u in found.get("units", [])]
        return units, {int(n) for n in found.get("done", [])}

    async def claim(self, job_id: str, n: int, holder: str, lease_s: float) -> dict[str, Any]:
        """Take unit ``n``'s lease (job_object.LibraryJobObject.claim)."""
        return await self._call(job_id, "claim", n, holder, lease_s)

    async def release(
        self, job_id: str, n: int, holder: str, progress: Mapping[str, Any], due_in_s: float,
        stop: str, detail: str,
    ) -> dict[str, Any]:  # fmt: skip
        """Keep unit ``n``'s progress, give its lease back, due again in ``due_in_s``."""
        return await self._call(
            job_id, "release", n, holder, dict(progress), due_in_s, stop, detail
        )

    async def finish(self, job_id: str, result: UnitResult) -> dict[str, Any]:
        """Record a unit's result (counted once)."""
        return await self._call(job_id, "finish", result.n, json.loads(result.to_json()))

    async def fail(self, job_id: str, n: int, reason: str) -> dict[str, Any]:
        """Settle unit ``n``'s unsettled items as failed (dead-lettered)."""
        return await self._call(job_id, "fail", n, reason)

    async def due(self, job_id: str, limit: int, *, now_too: bool = False) -> list[int]:
        """Units due to be sent to the queue again (``now_too``: every pending one)."""
        found = await self._call(job_id, "due", limit, int(now_too))
        return [int(n) for n in found.get("units", [])]

    async def redriven(self, job_id: str, units: Sequence[int], after_s: float) -> None:
        """Mark ``units`` as sent again."""
        await self._call(job_id, "redriven", list(units), after_s)

    async def requeue_failures(self, job_id: str, chunk_size: int) -> dict[str, Any]:
        """Forget the job's failures, add units for them (job_object)."""
        return await self._call(job_id, "requeue_failures", chunk_size)

    async def grow(self, job_id: str, units: Sequence[Unit], requeued: int) -> list[int]:
        """Append units (verification); their numbers."""
        found = await self._call(job_id, "grow", [u.to_json() for u in units], requeued)
        return [int(n) for n in found.get("units", [])]

    async def set_verify(self, job_id: str, report: Mapping[str, Any], cursor: int) -> None:
        """Record the job's latest verification."""
        await self._call(job_id, "set_verify", dict(report), cursor)

    async def list_ids(self, *, limit: int | None = None) -> list[str]:
        """Job ids, oldest first (ids start with their creation time)."""
        ids: list[str] = []
        cursor: str | None = None
        while True:
            page = await self._kv.list(JOB_PREFIX, cursor=cursor)
            ids.extend(k[len(JOB_PREFIX) :] for k in page.keys)
            cursor = page.cursor
            if cursor is None or (limit is not None and len(ids) >= limit):
                break
        ids.sort()
        return ids
