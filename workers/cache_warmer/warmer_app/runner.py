"""Executes micro-batches: takes the next units of unfinished jobs within the run's budgets.

Order of work in one run (costs in planner.py): list jobs, read today's usage; per unfinished
job: read its state, take its lease, read its plan, catch up on units a dead run left behind,
then run the planned units one by one, writing each unit's result key right after it ran;
finally save the state once and release the lease. The time budget (monotonic clock) is checked
before each unit. A transient failure (5xx, 429, a binding that throws) stops the job's batch
with the unit still pending; after MAX_ATTEMPTS the unit is recorded as failed. A spent daily
quota (the isbndb worker's key guard answers 429 ``quota_exhausted``, or ``warm_isbns``
names the provider in ``quotaExhausted``) defers: the batch stops as ``daily_budget`` with
the unit pending and no attempt counted, and a later run takes it up.

The warmer's calls to the isbndb worker say ``x-isbndb-purpose: warm`` (and the proxy's
``warm_isbns`` does the same), so they spend the key's warming reserve, not public traffic's.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from bookmeta import (
    AUTHOR_PAGE_SIZE,
    AUTHOR_WARM_MAX_RESULTS,
    DEFAULT_LANG,
    PURPOSE_HEADER,
    REQUEST_ID_HEADER,
    Clocks,
    Log,
    Metrics,
    Purpose,
    Request,
    Response,
    Service,
)

from .budget import BudgetExhausted, DailyUsage, Meter
from .config import Settings
from .jobs import JobState, JobStore, UnitResult
from .lease import Leases
from .planner import (
    JOB_END_SUBREQUESTS,
    JOB_SUBREQUESTS,
    RUN_END_SUBREQUESTS,
    StopReason,
    Unit,
    UnitKind,
    plan_batch,
    upstream_estimate,
)

PROXY_URL = "https://books-api-proxy.internal"
ISBNDB_URL = "https://isbndb-worker.internal"
MAX_ATTEMPTS = 3
NO_RESULTS = "no results from any provider"
# warm_isbns gets this share of the warmer's wait (WARM_CALL_TIMEOUT_MS) as its deadline; the
# rest is for the proxy to store what it found and answer before the warmer gives up.
WARM_BUDGET_SHARE = 0.8


def warm_budget_ms(call_timeout_ms: int) -> int:
    """The ``budget_ms`` passed to ``warm_isbns`` for a call the warmer waits on this long."""
    return max(1, int(call_timeout_ms * WARM_BUDGET_SHARE))


def author_search_url(name: str) -> str:
    """The proxy search that warms an author (the original system's call, made explicit).

    ``inauthor:`` says what the warmer knows, that the text is an author, so the proxy never
    retries it as a title search (which costs every provider a second call for authors nobody
    lists). The cache key is ``bookmeta.author_warm_key(name)``.
    """
    query = urlencode(
        {
            "q": f"inauthor:{name}",
            "maxResults": AUTHOR_WARM_MAX_RESULTS,
            "includeTranslations": "false",
        }
    )
    return f"{PROXY_URL}/search/auto?{query}"


def author_bibliography_url(name: str) -> str:
    """ISBNdb worker's author bibliography, name percent-encoded as one path segment."""
    query = urlencode({"page": 1, "pageSize": AUTHOR_PAGE_SIZE, "language": DEFAULT_LANG})
    return f"{ISBNDB_URL}/author/{quote(name, safe='')}?{query}"


@dataclass
class Outcome:
    """A unit's result before it is numbered; ``transient`` set means "retry the unit later",
    ``deferred`` "a daily quota is spent: run the unit again once it resets" (no attempt)."""

    done: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    upstream: dict[str, int] = field(default_factory=dict)
    transient: str | None = None
    deferred: str | None = None


def _is_transient(status: int) -> bool:
    return status == 429 or status >= 500


def _no_results(search: Response) -> bool:
    """True for a search answer that lists no book (``totalItems`` 0 and no ``items``)."""
    try:
        body = search.json()
    except ValueError:
        return False
    if not isinstance(body, dict):
        return False
    return not body.get("items") and body.get("totalItems") == 0


def _failed_providers(search: Response) -> list[str]:
    """The providers a partial search answer names as failed (none for a full answer)."""
    try:
        body = search.json()
    except ValueError:
        return []
    failed = body.get("failedProviders") if isinstance(body, dict) else None
    return [str(p) for p in failed] if isinstance(failed, list) else []


def _quota_note(provider: str, retry_after: Any) -> str:
    """A progress detail naming the spent quota and when it resets."""
    when = ""
    if isinstance(retry_after, int | float) and not isinstance(retry_after, bool):
        when = f"; resets in {round(retry_after / 60)} min"
    return f"{provider}: daily quota of the key spent (key guard){when}"


def _quota_exhausted(response: Response) -> str | None:
    """The defer note when the isbndb worker answered 429 ``quota_exhausted``, else None."""
    if response.status != 429:
        return None
    try:
        error = response.json().get("error", {})
    except (ValueError, AttributeError):
        return None
    if not isinstance(error, dict) or error.get("code") != "quota_exhausted":
        return None
    retry = response.headers.get("retry-after", "")
    return _quota_note("isbndb", float(retry) if retry.isascii() and retry.isdigit() else None)


def _warm_result(unit: Unit, result: Any) -> Outcome:
    """Map a ``warm_isbns`` RPC result (or its error shape) to an outcome."""
    if not isinstance(result, dict):
        return Outcome(transient=f"warm_isbns returned {type(result).__name__}")
    error = result.get("error")
    if isinstance(error, dict):
        reason = f"{error.get('code', 'error')}: {error.get('message', '')}".strip()
        if _is_transient(int(error.get("status") or 500)):
            return Outcome(transient=reason)
        return Outcome(failed=[{"item": i, "reason": reason} for i in unit.items])
    done = [str(i) for i in result.get("warmed", [])]
    done += [str(i) for i in result.get("alreadyCached", []) if str(i) not in done]
    reasons: dict[str, str] = {}
    for isbn in result.get("notFound", []):
        reasons.setdefault(str(isbn), "not found by any provider")
    for isbn in result.get("invalid", []):
        reasons.setdefault(str(isbn), "invalid ISBN")
    upstream_failed: list[str] = []
    for entry in result.get("failed", []):
        if isinstance(entry, dict):
            reason = str(entry.get("reason", "failed"))
            upstream_failed.append(reason)
            reasons.setdefault(str(entry.get("isbn")), reason)
    outcome = Outcome(upstream={str(k): int(v) for k, v in result.get("upstreamCalls", {}).items()})
    for isbn in unit.items:
        if isbn in done:
            outcome.done.append(isbn)
        else:
            reason = reasons.get(isbn, "missing from the warm_isbns result")
            outcome.failed.append({"item": isbn, "reason": reason})
    spent = result.get("quotaExhausted")
    if upstream_failed and isinstance(spent, dict) and spent:
        # A provider's daily quota is spent: run the unit again after the reset; the ISBNs
        # warmed now come back as alreadyCached, so nothing is counted twice.
        provider, retry_after = sorted(spent.items())[0]
        outcome.deferred = _quota_note(str(provider), retry_after)
    elif upstream_failed:
        # A provider failed (not "not found"): retry the unit later; the ISBNs warmed now
        # come back as alreadyCached, so nothing is counted twice.
        outcome.transient = f"{len(upstream_failed)} ISBNs failed upstream: {upstream_failed[0]}"
    return outcome


def _give_up(unit: Unit, outcome: Outcome) -> Outcome:
    """The final outcome of a unit still failing after MAX_ATTEMPTS: what was warmed stays
    done; the rest fails with its own reason (or the transient one when there is none)."""
    prefix = f"gave up after {MAX_ATTEMPTS} attempts"
    if not outcome.done and not outcome.failed:
        reason = f"{prefix}: {outcome.transient}"
        return Outcome(failed=[{"item": i, "reason": reason} for i in unit.items])
    failed = [{"item": f["item"], "reason": f"{prefix}: {f['reason']}"} for f in outcome.failed]
    return Outcome(done=list(outcome.done), failed=failed, upstream=dict(outcome.upstream))


@dataclass
class JobRun:
    """What one run did to one job."""

    id: str
    units: int = 0
    items: int = 0
    stop: str = StopReason.COMPLETE.value
    detail: str = ""
    recovered: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-able."""
        return {
            "id": self.id,
            "units": self.units,
            "items": self.items,
            "stoppedBy": self.stop,
            "detail": self.detail,
            "recoveredUnits": self.recovered,
        }


class Runner:
    """Runs micro-batches; every I/O goes through metered bindings (see budget.py)."""

    def __init__(
        self,
        *,
        store: JobStore,
        leases: Leases,
        proxy: Service,
        isbndb: Service,
        settings: Settings,
        clocks: Clocks,
        meter: Meter,
        metrics: Metrics,
        log: Log,
    ) -> None:
        self._store = store
        self._leases = leases
        self._proxy = proxy
        self._isbndb = isbndb
        self._settings = settings
        self._clocks = clocks
        self._meter = meter
        self._metrics = metrics
        self._log = log
        self._started = clocks.monotonic()

    def _out_of_time(self) -> bool:
        return self._clocks.monotonic() - self._started >= self._settings.max_seconds

    async def run(self, job_ids: list[str], usage: DailyUsage) -> list[JobRun]:
        """Work the unfinished jobs among ``job_ids`` in order while budgets last."""
        runs: list[JobRun] = []
        for job_id in job_ids:
            if self._out_of_time():
                break
            if self._meter.remaining < JOB_SUBREQUESTS + RUN_END_SUBREQUESTS + 2:
                break
            state = await self._store.load(job_id)
            if state is None or state.finished:
                continue
            lease = await self._leases.acquire(job_id)
            if lease is None:
                runs.append(JobRun(job_id, stop=StopReason.BUSY.value, detail="lease held"))
                self._metrics.incr("warm.busy")
                continue
            try:
                job_run = await self._work(state, usage)
                await self._store.save(state)
            except BaseException:
                # A crash must not leave the lease held until it expires (best effort: the
                # original error is what the caller sees).
                with contextlib.suppress(Exception):
                    await self._leases.release(lease)
                raise
            await self._leases.release(lease)
            runs.append(job_run)
            if job_run.stop in (StopReason.TIME.value, StopReason.DAILY_BUDGET.value):
                break
        return runs

    async def _work(self, state: JobState, usage: DailyUsage) -> JobRun:
        units = await self._store.load_units(state.id)
        if len(units) < state.units:
            raise RuntimeError(f"job {state.id}: plan has {len(units)} of {state.units} units")
        job_run = JobRun(state.id)
        job_run.recovered = len(await self._store.catch_up(state))
        if job_run.recovered:
            self._log.warning("warm.recovered", job=state.id, units=job_run.recovered)
        spendable = self._meter.remaining - JOB_END_SUBREQUESTS - RUN_END_SUBREQUESTS
        plan = plan_batch(
            units[: state.units],
            state.cursor,
            subrequests=spendable,
            daily_left=usage.left(self._settings.daily.as_dict()),
        )
        job_run.stop, job_run.detail = plan.stop.value, plan.detail
        for n in plan.indices:
            if self._out_of_time():
                job_run.stop, job_run.detail = StopReason.TIME.value, ""
                break
            unit = units[n]
            outcome = await self._warm(unit)
            usage.add(outcome.upstream or upstream_estimate(unit))
            if outcome.deferred is not None:
                self._log.warning("warm.deferred", job=state.id, unit=n, reason=outcome.deferred)
                self._metrics.incr("warm.deferred")
                job_run.stop, job_run.detail = StopReason.DAILY_BUDGET.value, outcome.deferred
                break
            if outcome.transient is not None:
                state.attempts += 1
                self._log.warning(
                    "warm.transient",
                    job=state.id,
                    unit=n,
                    attempt=state.attempts,
                    reason=outcome.transient,
                )
                if state.attempts < MAX_ATTEMPTS:
                    job_run.stop, job_run.detail = StopReason.TRANSIENT.value, outcome.transient
                    break
                outcome = _give_up(unit, outcome)
            result = UnitResult(
                n,
                unit.kind.value,
                outcome.done,
                outcome.failed,
                self._clocks.wall(),
                outcome.upstream,
            )
            await self._store.write_unit(state.id, result)
            state.fold(result)
            job_run.units += 1
            job_run.items += len(unit.items)
            self._metrics.incr(f"warm.units.{unit.kind.value}")
            self._metrics.incr("warm.items.done", len(outcome.done))
            self._metrics.incr("warm.items.failed", len(outcome.failed))
        now = self._clocks.wall()
        if job_run.units or job_run.recovered:
            state.runs += 1
            if state.first_run_at is None:
                state.first_run_at = now
        state.last_run = {"at": now, **job_run.as_dict()}
        return job_run

    async def _warm(self, unit: Unit) -> Outcome:
        try:
            if unit.kind is UnitKind.ISBNS:
                budget_ms = warm_budget_ms(self._settings.call_timeout_ms)
                result = await self._proxy.call("warm_isbns", list(unit.items), budget_ms)
                return _warm_result(unit, result)
            return await self._warm_author(unit.items[0])
        except BudgetExhausted:
            raise
        except Exception as exc:  # a binding that throws: retry the unit on a later run
            self._metrics.incr("warm.binding_errors")
            return Outcome(transient=f"{type(exc).__name__}: {exc}"[:300])

    async def _warm_author(self, name: str) -> Outcome:
        headers = {REQUEST_ID_HEADER: self._log.request_id, "accept": "application/json"}
        bibliography = await self._isbndb.fetch(
            Request(
                "GET",
                author_bibliography_url(name),
                {**headers, PURPOSE_HEADER: Purpose.WARM.value},
            )
        )
        if (deferred := _quota_exhausted(bibliography)) is not None:
            # The proxy's search would ask for the same page as public traffic: wait instead.
            return Outcome(upstream={"isbndb": 0}, deferred=deferred)
        if bibliography.status >= 400:
            self._log.warning("warm.author_isbndb", author=name, status=bibliography.status)
        search = await self._proxy.fetch(Request("GET", author_search_url(name), headers))
        if search.status < 400:
            if (failed := _failed_providers(search)) and _no_results(search):
                # Nothing found while a provider was down: no evidence either way; retry later.
                return Outcome(transient=f"proxy search partial ({', '.join(failed)} failed)")
            if _no_results(search):
                # The proxy keeps an empty answer only briefly (a KV-only negative entry that
                # cache_status reports as absent): recorded as failed, so verification does not
                # re-warm an author nobody lists every night.
                return Outcome(failed=[{"item": name, "reason": NO_RESULTS}])
            return Outcome(done=[name])
        reason = f"proxy search answered {search.status}"
        with contextlib.suppress(ValueError, KeyError, TypeError):
            reason = f"{reason}: {search.json()['error']['message']}"
        if _is_transient(search.status):
            return Outcome(transient=reason)
        return Outcome(failed=[{"item": name, "reason": reason}])
