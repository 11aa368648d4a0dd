"""The warming queue's consumer: one message is one unit of one library, ``{"job", "n"}``.

Per message: claim the unit in the library's object (a lease: two consumers never work one
unit at once), attempt its unsettled items until every item is settled (attempts.py), then
record the result in the object (counted once, whoever reports it). Otherwise:

* a provider failed on an item: the progress goes back to the object and the message is
  retried through the queue with backoff (``retry(delaySeconds)``); each item gives up after
  its own ``MAX_TRIES``; a message the queue gives up on reaches the dead-letter queue, whose
  consumer settles the unit's unsettled items as failed with the last reason;
* a daily budget is spent (the warmer's provider budgets, the key guard's quota): the unit is
  sent again with a delay to the UTC day's reset (at most the queue's 12 h; the cron re-drives
  it if still due), and the message is acked: a deferral is not an attempt;
* the invocation's subrequests or time run short before a unit starts, or its lease is held
  elsewhere, or an earlier unit of the batch just failed transiently (a hung or broken
  binding costs one attempt, not the whole batch's): the message is sent again (acked here,
  after the backoff in the last case), no attempt counted.

A redelivered message of a settled unit is acked at once; one of a unit in progress resumes
from the object's saved progress, and ``warm_isbns`` answers already-cached ISBNs without a
provider call, so at-least-once delivery neither counts twice nor calls twice.

Subrequests per invocation: the day's usage list (1) and its settled record (1); per unit the
claim (1), the attempts (ISBN chunk 1 RPC each, author 2 fetches), a usage record before calls
no record covers yet (1), and the finish, release or re-send (1-2).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bookmeta import Clocks, Log, Metrics, QueueMessage, QueueProducer

from .attempts import UnitProgress
from .budget import Meter, UsageLedger
from .config import Settings
from .jobs import JobStore, UnitResult, is_job_id
from .planner import StopReason, Unit, blocker, upstream_estimate
from .runner import UnitWorker

MAX_DELAY_S = 43_200  # the longest delay Cloudflare Queues accepts (12 h)
DEAD_LETTER_SUFFIX = "-dlq"
UNIT_END_SUBREQUESTS = 2  # finish/release + a re-send
RUN_END_SUBREQUESTS = 1  # the settled usage record
DAY_S = 86_400.0


def backoff_s(attempts: int) -> int:
    """Delay before the next delivery after ``attempts`` deliveries failed: 15 s doubling,
    at most 15 min."""
    return int(min(900, 15 * 2 ** max(0, attempts - 1)))


def until_reset_s(now: float) -> int:
    """Seconds to the next UTC midnight (the daily budgets' and the key guard's reset), +5."""
    return int(DAY_S - (now % DAY_S)) + 5


def unit_message(job_id: str, n: int) -> dict[str, Any]:
    """The queue message of unit ``n`` of job ``job_id``."""
    return {"job": job_id, "n": n}


def parse_message(body: Any) -> tuple[str, int] | None:
    """``(job, n)`` of a message body, or None for a malformed one."""
    if not isinstance(body, Mapping):
        return None
    job, n = body.get("job"), body.get("n")
    if not isinstance(job, str) or not is_job_id(job):
        return None
    if isinstance(n, bool) or not isinstance(n, int | float) or n < 0 or int(n) != n:
        return None
    return job, int(n)


def is_dead_letter_queue(name: str) -> bool:
    """Our dead-letter queues are named ``<queue>-dlq`` (wrangler.toml.d/cache_warmer.toml)."""
    return name.endswith(DEAD_LETTER_SUFFIX)


@dataclass
class Outcome:
    """What one invocation did (for the log and the tests)."""

    finished: int = 0
    duplicates: int = 0
    retried: int = 0
    deferred: int = 0
    resent: int = 0
    dead: int = 0
    malformed: int = 0
    details: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able."""
        return {
            "finished": self.finished,
            "duplicates": self.duplicates,
            "retried": self.retried,
            "deferred": self.deferred,
            "resent": self.resent,
            "dead": self.dead,
            "malformed": self.malformed,
        }


class Consumer:
    """Consumes one batch of the warming queue (or its dead-letter queue)."""

    def __init__(
        self,
        *,
        store: JobStore,
        queue: QueueProducer,
        worker: UnitWorker,
        ledger: UsageLedger,
        settings: Settings,
        clocks: Clocks,
        meter: Meter,
        metrics: Metrics,
        log: Log,
    ) -> None:
        self._store = store
        self._queue = queue
        self._worker = worker
        self._ledger = ledger
        self._settings = settings
        self._clocks = clocks
        self._meter = meter
        self._metrics = metrics
        self._log = log
        self._holder = secrets.token_hex(6)
        self._started = clocks.monotonic()
        self._lease_s = float(settings.max_seconds * 2 + 30)
        self.outcome = Outcome()
        self._trouble: str | None = None  # a transient failure earlier in this batch

    def _out_of_time(self) -> bool:
        return self._clocks.monotonic() - self._started >= self._settings.max_seconds

    def _spendable(self) -> int:
        return self._meter.remaining - UNIT_END_SUBREQUESTS - RUN_END_SUBREQUESTS

    async def consume(self, queue_name: str, messages: Sequence[QueueMessage]) -> Outcome:
        """Handle every message of a batch: each is acked, retried or sent again."""
        dead = is_dead_letter_queue(queue_name)
        for message in messages:
            parsed = parse_message(message.body)
            if parsed is None:
                self._log.warning("queue.malformed", queue=queue_name)
                self.outcome.malformed += 1
                message.ack()
                continue
            job_id, n = parsed
            try:
                if dead:
                    await self._dead(message, job_id, n)
                else:
                    await self._unit(message, job_id, n)
            except Exception as exc:  # a binding failed outside an attempt: retry later
                reason = f"{type(exc).__name__}: {exc}"[:300]
                self._log.warning("queue.error", job=job_id, unit=n, reason=reason)
                self._metrics.incr("warm.queue_errors")
                self.outcome.retried += 1
                message.retry(backoff_s(message.attempts))
        return self.outcome

    async def _dead(self, message: QueueMessage, job_id: str, n: int) -> None:
        found = await self._store.fail(job_id, n, "gave up after repeated deliveries")
        self._log.warning("warm.dead_letter", job=job_id, unit=n, counted=found.get("counted"))
        self.outcome.dead += 1
        message.ack()

    async def _later(self, message: QueueMessage, delay_s: float) -> None:
        """Send the message again (after ``delay_s``) and ack this delivery."""
        await self._queue.send(dict(message.body), delay_s=int(min(MAX_DELAY_S, delay_s)))
        message.ack()
        self.outcome.resent += 1

    async def _unit(self, message: QueueMessage, job_id: str, n: int) -> None:
        if self._trouble is not None:
            await self._later(message, backoff_s(1))
            return
        if self._out_of_time() or self._spendable() < 4:
            await self._later(message, 0)
            return
        claim = await self._store.claim(job_id, n, self._holder, self._lease_s)
        if not claim.get("claimed"):
            if claim.get("why") == "busy":
                await self._later(message, float(claim.get("retryInS", 30)))
            else:  # settled already (a duplicate), or no such unit
                self.outcome.duplicates += 1
                self._metrics.incr("warm.duplicates")
                message.ack()
            return
        unit = Unit.from_json(claim["unit"])
        saved = claim.get("progress")
        progress = UnitProgress.from_json(saved) if saved else UnitProgress(n)
        budgets = self._settings.daily.as_dict()
        while True:
            todo = Unit(unit.kind, tuple(progress.todo(unit)))
            if not todo.items:
                await self._finish(message, job_id, unit, progress)
                return
            if self._out_of_time():
                await self._release(job_id, progress, StopReason.TIME, "", 0)
                await self._later(message, 0)
                return
            cover = not self._ledger.covers(upstream_estimate(todo))
            usage = self._ledger.usage
            blocked = blocker(
                todo, subrequests=self._spendable() - int(cover), daily_left=usage.left(budgets)
            )
            if blocked is not None:
                reason, detail = blocked
                if reason is StopReason.DAILY_BUDGET:
                    await self._defer(message, job_id, progress, detail)
                else:
                    await self._release(job_id, progress, reason, detail, 0)
                    await self._later(message, 0)
                return
            await self._ledger.cover(upstream_estimate(todo))
            attempt = await self._worker.attempt(todo)
            usage.add(attempt.upstream or upstream_estimate(todo))
            step = progress.record(attempt, sent=todo.items)
            self._metrics.incr("warm.items.deferred", len(attempt.deferred))
            if progress.finished(unit):
                continue
            if attempt.quota is not None:
                await self._defer(message, job_id, progress, attempt.quota)
                return
            if step.trouble is not None or not step.progress:
                trouble = step.trouble or "the proxy deferred every item"
                delay = backoff_s(message.attempts)
                self._log.warning(
                    "warm.transient", job=job_id, unit=n, attempt=message.attempts, reason=trouble
                )
                await self._release(job_id, progress, StopReason.TRANSIENT, trouble, delay)
                self._trouble = trouble
                self.outcome.retried += 1
                message.retry(delay)
                return
            # Only deferrals left (a deferral is progress): attempt the unit again now.

    async def _finish(
        self, message: QueueMessage, job_id: str, unit: Unit, progress: UnitProgress
    ) -> None:
        done, failed = progress.outcome(unit)
        result = UnitResult(
            progress.n, unit.kind.value, done, failed, self._clocks.wall(), progress.upstream
        )
        found = await self._store.finish(job_id, result)
        if found.get("counted"):
            self.outcome.finished += 1
            self._metrics.incr(f"warm.units.{unit.kind.value}")
            self._metrics.incr("warm.items.done", len(done))
            self._metrics.incr("warm.items.failed", len(failed))
        else:
            self.outcome.duplicates += 1
        message.ack()

    async def _release(
        self, job_id: str, progress: UnitProgress, stop: StopReason, detail: str, due_in_s: float
    ) -> None:
        await self._store.release(
            job_id, progress.n, self._holder, progress.to_json(), due_in_s, stop.value, detail
        )

    async def _defer(
        self, message: QueueMessage, job_id: str, progress: UnitProgress, detail: str
    ) -> None:
        delay = until_reset_s(self._clocks.wall())
        self._log.warning("warm.deferred", job=job_id, unit=progress.n, reason=detail)
        self._metrics.incr("warm.deferred")
        await self._release(job_id, progress, StopReason.DAILY_BUDGET, detail, delay)
        self.outcome.deferred += 1
        with contextlib.suppress(Exception):
            await self._later(message, delay)
            return
        message.retry(int(min(MAX_DELAY_S, delay)))
