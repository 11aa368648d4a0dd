"""Warming jobs: the state model, its persistence in KV/R2, and the progress view.

Layout (KV ``WARMING_CACHE``, R2 ``LIBRARY_DATA``)::

    R2  libraries/{id}/source.csv   the upload as received (the file part of a multipart form)
    R2  libraries/{id}/plan.json    the units, append-only (verification and retries append units)
    R2  libraries/{id}/import.json  what the import found: rows skipped (line, reason), rows
                                    without an ISBN; shown on the library's page to the token holder
    KV  job:{id}                    JobState: cursor, counters, failures, last run; written at
                                    import and at most once per run, >= 1 s after its last write
    KV  unit:{id}:{n:06d}           UnitResult of unit n; written exactly once, right after the
                                    unit ran (this is the per-unit progress a crash cannot lose)
    KV  lease:{id}                  who works the job now (see lease.py)
    KV  usage:{YYYY-MM-DD}:...      upstream calls one run spent that UTC day (see budget.py)

The cursor in ``job:{id}`` may lag behind the unit keys when a run died before saving it;
``catch_up`` reads ``unit:{id}:{cursor}``, ``{cursor+1}``... and folds each into the state, so
a unit is never run twice and never counted twice.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from bookmeta import BlobStore, Clocks, KVStore

from .budget import wait_for_write_slot
from .planner import StopReason, Unit, UnitKind, build_units

JOB_PREFIX = "job:"
MAX_FAILURES_SHOWN = 100
MAX_REPORT_LINES = (
    1000  # lines without an ISBN kept in import.json (problems: formats.MAX_PROBLEMS)
)
CRON_INTERVAL_S = 900.0
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

    ``rate`` is items per hour at the cron cadence (the mean per worked run times four);
    ``eta`` is the seconds and the UTC epoch at which the rest would be done at that rate.
    """
    processed = state.done + state.failed
    remaining = max(0, state.items - processed)
    percent = 100.0 if state.items == 0 else round(100.0 * processed / state.items, 1)
    if state.finished:
        remaining, percent = 0, 100.0
    rate = None
    eta: dict[str, float] | None = None
    if state.runs and processed:
        rate = round(processed / state.runs * (3600.0 / CRON_INTERVAL_S), 1)
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
    """Jobs in KV (state, unit results) and R2 (source, plan)."""

    def __init__(self, kv: KVStore, blobs: BlobStore, clocks: Clocks) -> None:
        self._kv = kv
        self._blobs = blobs
        self._clocks = clocks

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
        """Store the upload, the plan, the import report and the initial state (state last)."""
        await self._blobs.put(
            source_key(state.id), source, custom_metadata=metadata, content_type=content_type
        )
        await self.save_units(state.id, units)
        body = json.dumps(report, ensure_ascii=False, separators=(",", ":"))
        await self._blobs.put(report_key(state.id), body, content_type="application/json")
        await self.save(state)

    async def load_report(self, job_id: str) -> dict[str, Any] | None:
        """The import report, or None (libraries imported before reports were kept)."""
        blob = await self._blobs.get(report_key(job_id))
        if blob is None:
            return None
        report: dict[str, Any] = json.loads(blob.text())
        return report

    async def load(self, job_id: str) -> JobState | None:
        """The job's state, or None when there is no such job."""
        raw = await self._kv.get(job_key(job_id))
        return None if raw is None else JobState.from_json(raw)

    async def save(self, state: JobState) -> None:
        """Write the state, at least 1 s after its previous write (KV's per-key rate)."""
        await wait_for_write_slot(state.saved_at, self._clocks)
        state.saved_at = self._clocks.wall()
        await self._kv.put(job_key(state.id), state.to_json())

    async def load_units(self, job_id: str) -> list[Unit]:
        """The job's units from R2 (empty when the plan is missing)."""
        blob = await self._blobs.get(plan_key(job_id))
        if blob is None:
            return []
        return [Unit.from_json(u) for u in json.loads(blob.text())["units"]]

    async def save_units(self, job_id: str, units: Sequence[Unit]) -> None:
        """Write the plan (append-only by convention: indices never change meaning)."""
        body = json.dumps({"units": [u.to_json() for u in units]}, ensure_ascii=False)
        await self._blobs.put(plan_key(job_id), body, content_type="application/json")

    async def write_unit(self, job_id: str, result: UnitResult) -> None:
        """Record a unit's result (once per unit: its key is never written again)."""
        await self._kv.put(unit_key(job_id, result.n), result.to_json())

    async def catch_up(self, state: JobState) -> list[UnitResult]:
        """Fold results saved by a run that died before saving the state; returns them."""
        folded: list[UnitResult] = []
        while not state.finished:
            raw = await self._kv.get(unit_key(state.id, state.cursor))
            if raw is None:
                break
            result = UnitResult.from_json(raw)
            state.fold(result)
            folded.append(result)
        return folded

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
