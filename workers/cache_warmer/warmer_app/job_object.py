"""A library's job as a Durable Object, without the runtime: SQLite around `jobs.JobState`.

One object per library (named by its job id). The entry module's ``LibraryJob(DurableObject)``
hands its RPC methods here. Tables::

    job    (id = 1)  the JobState as JSON: counts, failures, last run (the progress view)
    units  (n)       one row per unit: kind, items, status (pending | done), the lease
                     (holder, until), the unit's UnitProgress between attempts, when it is
                     due again (a deferral), the last stop (reason, detail), its result

The object handles one call at a time and every method reads, decides and writes with no
await in between, so: two consumers never hold the same unit's lease at once (``claim``); a
unit's result is counted exactly once whoever reports it and however often (``finish``,
``fail``: a settled unit answers ``counted: False``); the counts are exact. Times are the
object's wall clock.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from bookmeta import SqlStore, SqlValue, WorkerEnv

from .attempts import UnitProgress
from .jobs import JobState, UnitResult
from .planner import Unit, UnitKind

SCHEMA = """
CREATE TABLE IF NOT EXISTS job (id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS units (
    n INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    items TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    holder TEXT,
    lease_until REAL NOT NULL DEFAULT 0,
    progress TEXT,
    due_at REAL NOT NULL DEFAULT 0,
    stop TEXT,
    detail TEXT,
    result TEXT
)
"""
PENDING = "pending"
DONE = "done"
MAX_DUE = 200


def _text(value: SqlValue) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _unit(row: Mapping[str, SqlValue]) -> Unit:
    return Unit(UnitKind(_text(row["kind"])), tuple(json.loads(_text(row["items"]))))


class LibraryJobObject:
    """The job's state and operations over its SQLite database."""

    def __init__(self, sql: SqlStore, env: WorkerEnv) -> None:
        self._sql = sql
        self._clock = env.clocks.wall
        for statement in SCHEMA.split(";"):
            if statement.strip():
                sql.execute(statement)

    # -- state ----------------------------------------------------------------------------

    def _state(self) -> JobState | None:
        rows = self._sql.execute("SELECT state FROM job WHERE id = 1")
        return JobState.from_json(_text(rows[0]["state"])) if rows else None

    def _save(self, state: JobState) -> None:
        state.saved_at = self._clock()
        self._sql.execute(
            "INSERT INTO job (id, state) VALUES (1, ?) "
            "ON CONFLICT (id) DO UPDATE SET state = excluded.state",
            state.to_json(),
        )

    def _append(self, first: int, units: Sequence[Unit]) -> None:
        for i, unit in enumerate(units):
            self._sql.execute(
                "INSERT OR IGNORE INTO units (n, kind, items) VALUES (?, ?, ?)",
                first + i,
                unit.kind.value,
                json.dumps(list(unit.items), ensure_ascii=False),
            )

    # -- RPC ------------------------------------------------------------------------------

    def create(
        self, state: Mapping[str, Any], units: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """Store a new job and its units (a repeated create changes nothing)."""
        if self._state() is not None:
            return {"created": False}
        job = JobState.from_json(json.dumps(dict(state)))
        plan = [Unit.from_json(u) for u in units]
        if len(plan) != job.units:
            return {"error": f"{len(plan)} units sent for a job of {job.units}"}
        self._append(0, plan)
        self._save(job)
        return {"created": True}

    def state(self) -> dict[str, Any]:
        """``{"state": JobState}`` (as JSON), or ``{"missing": True}``."""
        job = self._state()
        return {"missing": True} if job is None else {"state": json.loads(job.to_json())}

    def claim(self, n: int, holder: str, lease_s: float) -> dict[str, Any]:
        """Take unit ``n`` for ``lease_s`` seconds: ``{"claimed": True, "unit", "progress"}``,
        or ``{"claimed": False, "why": "done" | "busy" | "missing", "retryInS"?}``."""
        rows = self._sql.execute(
            "SELECT kind, items, status, holder, lease_until, progress FROM units WHERE n = ?",
            int(n),
        )
        if not rows:
            return {"claimed": False, "why": "missing"}
        row = rows[0]
        if row["status"] == DONE:
            return {"claimed": False, "why": "done"}
        now = self._clock()
        until = float(row["lease_until"] or 0)
        if row["holder"] is not None and row["holder"] != holder and until > now:
            return {"claimed": False, "why": "busy", "retryInS": max(1, round(until - now))}
        self._sql.execute(
            "UPDATE units SET holder = ?, lease_until = ? WHERE n = ?", holder, now + lease_s, n
        )
        progress = json.loads(_text(row["progress"])) if row["progress"] is not None else None
        return {"claimed": True, "unit": _unit(row).to_json(), "progress": progress}

    def release(
        self,
        n: int,
        holder: str,
        progress: Mapping[str, Any],
        due_in_s: float,
        stop: str,
        detail: str,
    ) -> dict[str, Any]:
        """Keep unit ``n``'s progress and give its lease back; it is due again in
        ``due_in_s`` seconds (the queue redelivers it then; the cron re-drives it if not)."""
        rows = self._sql.execute("SELECT status, holder FROM units WHERE n = ?", int(n))
        if not rows or rows[0]["status"] == DONE:
            return {"released": False}
        if rows[0]["holder"] not in (None, holder):
            return {"released": False}  # our lease ran out and another consumer took it
        now = self._clock()
        self._sql.execute(
            "UPDATE units SET holder = NULL, lease_until = 0, progress = ?, due_at = ?, "
            "stop = ?, detail = ? WHERE n = ?",
            json.dumps(dict(progress), ensure_ascii=False),
            now + max(0.0, float(due_in_s)),
            stop,
            detail[:500],
            n,
        )
        state = self._state()
        if state is not None:
            self._ran(state, now, {"unit": n, "stoppedBy": stop, "detail": detail[:500]})
            self._save(state)
        return {"released": True}

    def finish(self, n: int, result: Mapping[str, Any]) -> dict[str, Any]:
        """Record unit ``n``'s result: counted once (``counted: True``), never again."""
        rows = self._sql.execute("SELECT kind, items, status FROM units WHERE n = ?", int(n))
        if not rows:
            return {"counted": False, "why": "missing"}
        if rows[0]["status"] == DONE:
            return {"counted": False, "why": "done"}
        state = self._state()
        if state is None:
            return {"counted": False, "why": "missing"}
        unit_result = UnitResult.from_json(json.dumps(dict(result)))
        self._sql.execute(
            "UPDATE units SET status = ?, holder = NULL, lease_until = 0, progress = NULL, "
            "result = ?, stop = NULL, detail = NULL WHERE n = ?",
            DONE,
            unit_result.to_json(),
            n,
        )
        state.done += len(unit_result.done)
        state.failed += len(unit_result.failed)
        state.failures.extend({"unit": n, **f} for f in unit_result.failed)
        if (counts := state.by_kind.get(unit_result.kind)) is not None:
            counts["done"] += len(unit_result.done)
            counts["failed"] += len(unit_result.failed)
        state.cursor += 1  # units settled (they settle in any order)
        now = self._clock()
        self._ran(
            state,
            now,
            {
                "unit": n,
                "units": 1,
                "items": len(_unit(rows[0]).items),
                "stoppedBy": "complete",
                "detail": "",
            },
        )
        self._save(state)
        return {"counted": True, "finished": state.finished}

    def fail(self, n: int, reason: str) -> dict[str, Any]:
        """Settle unit ``n`` after its last delivery (the dead-letter queue): its items done so
        far stay done, every other item fails with ``reason``. Counted once, like ``finish``."""
        rows = self._sql.execute(
            "SELECT kind, items, status, progress, detail FROM units WHERE n = ?", int(n)
        )
        if not rows or rows[0]["status"] == DONE:
            return {"counted": False}
        if rows[0]["detail"]:
            reason = f"{reason}: {_text(rows[0]['detail'])}"
        unit = _unit(rows[0])
        raw = rows[0]["progress"]
        progress = (
            UnitProgress.from_json(json.loads(_text(raw))) if raw is not None else UnitProgress(n)
        )
        for item in progress.todo(unit):
            progress.failed[item] = reason
        done, failed = progress.outcome(unit)
        result = UnitResult(n, unit.kind.value, done, failed, self._clock(), progress.upstream)
        return self.finish(n, json.loads(result.to_json()))

    def due(self, limit: int, now_too: int = 0) -> dict[str, Any]:
        """Units to send to the queue again: pending, due, and not leased (or the lease ran
        out: a consumer died). At most ``limit`` (oldest first). ``now_too`` (1): every
        pending unit not leased, due or not (a person asked to warm now)."""
        now = self._clock()
        rows = self._sql.execute(
            "SELECT n FROM units WHERE status = ? AND due_at <= ? AND lease_until <= ? "
            "ORDER BY n LIMIT ?",
            PENDING,
            float("inf") if now_too else now,
            now,
            max(1, min(int(limit), MAX_DUE)),
        )
        return {"units": [int(r["n"]) for r in rows]}  # type: ignore[arg-type]

    def redriven(self, units: Sequence[int], after_s: float) -> dict[str, Any]:
        """Note that ``units`` were sent again: not due again for ``after_s`` seconds (so the
        next cron does not send them twice while the queue holds them)."""
        due = self._clock() + max(0.0, float(after_s))
        for n in units:
            self._sql.execute(
                "UPDATE units SET due_at = ? WHERE n = ? AND status = ?", due, int(n), PENDING
            )
        return {"units": len(units)}

    def requeue_failures(self, chunk_size: int) -> dict[str, Any]:
        """Forget every recorded failure and add units that warm those items again;
        ``{"retried": items, "units": [new unit numbers], "state": ...}``."""
        state = self._state()
        if state is None:
            return {"missing": True}
        rows = self._sql.execute("SELECT n, kind, items FROM units ORDER BY n")
        plan = [_unit(r) for r in rows]
        retried = len(state.failures)
        added = state.requeue_failures(plan, chunk_size=chunk_size)
        self._append(len(plan), added)
        self._save(state)
        return {
            "retried": retried,
            "units": list(range(len(plan), len(plan) + len(added))),
            "state": json.loads(state.to_json()),
        }

    def grow(self, units: Sequence[Mapping[str, Any]], requeued: int) -> dict[str, Any]:
        """Append ``units`` (verification re-queues ``requeued`` missing items); their numbers."""
        state = self._state()
        if state is None:
            return {"missing": True}
        first = int(self._sql.execute("SELECT COUNT(*) AS c FROM units")[0]["c"] or 0)
        added = [Unit.from_json(u) for u in units]
        self._append(first, added)
        state.grow(added)
        state.requeued += int(requeued)
        self._save(state)
        return {"units": list(range(first, first + len(added)))}

    def units(self) -> dict[str, Any]:
        """Every unit (the plan): ``{"units": [{kind, items}]}``."""
        rows = self._sql.execute("SELECT n, kind, items, status FROM units ORDER BY n")
        return {
            "units": [_unit(r).to_json() for r in rows],
            "done": [int(r["n"]) for r in rows if r["status"] == DONE],  # type: ignore[arg-type]
        }

    def set_verify(self, report: Mapping[str, Any], cursor: int) -> dict[str, Any]:
        """Record the latest verification of this job."""
        state = self._state()
        if state is None:
            return {"missing": True}
        state.last_verify = dict(report)
        state.verify_cursor = int(cursor)
        self._save(state)
        return {"saved": True}

    def _ran(self, state: JobState, now: float, run: dict[str, Any]) -> None:
        state.runs += 1
        if state.first_run_at is None:
            state.first_run_at = now
        state.last_run = {"at": now, **run}
