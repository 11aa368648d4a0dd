"""Executes micro-batches: takes the next units of unfinished jobs within the run's budgets.

Order of work in one run (costs in planner.py): list jobs, read today's usage; per unfinished
job: read its state, take its lease, read its plan, catch up on units a dead run left behind,
then attempt the units one by one, writing each unit's result key as soon as every item of it
is settled; finally save the state once and release the lease. Before each attempt the time
budget (monotonic clock), the subrequests left and today's provider budgets are checked, and
the run's usage record is made to count the attempt's worst case (budget.UsageLedger) before
any upstream call is made. What an attempt settles follows attempts.py: a deferral (the
proxy's per-call Google cap) is progress and the unit is attempted again at once; an item a
provider failed on is asked again on a later run (the job's batch stops, ``transient_error``)
and given up after MAX_TRIES attempts of its own. The unit at the cursor keeps its progress in
the job's state between runs.
A spent daily quota (the isbndb worker's key guard answers 429 ``quota_exhausted``, or
``warm_isbns`` names the provider in ``quotaExhausted``) defers: the batch stops as
``daily_budget`` with the unit's unsettled items pending and no try counted against them, and
a later run takes them up.

The warmer's calls to the isbndb worker say ``x-isbndb-purpose: warm`` (and the proxy's
``warm_isbns`` does the same), so they spend the key's warming reserve, not public traffic's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
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

from .attempts import Attempt, UnitProgress
from .budget import BudgetExhausted, Meter, UsageLedger
from .config import Settings
from .jobs import JobState, JobStore, UnitResult
from .lease import Leases
from .planner import (
    JOB_END_SUBREQUESTS,
    JOB_SUBREQUESTS,
    RUN_END_SUBREQUESTS,
    USAGE_COVER_SUBREQUESTS,
    StopReason,
    Unit,
    UnitKind,
    blocker,
    plan_batch,
    upstream_estimate,
)

PROXY_URL = "https://books-api-proxy.internal"
ISBNDB_URL = "https://isbndb-worker.internal"
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


def warm_attempt(sent: Sequence[str], result: Any) -> Attempt:
    """Map a ``warm_isbns`` RPC result (or its error shape) for the ISBNs ``sent``.

    ``deferred`` ISBNs were not asked (the proxy's per-call cap): not failed, though the
    proxy also lists them in ``failed`` for older callers. Other ``failed`` ISBNs were asked
    and a provider failed: ask again. ``notFound`` and ``invalid`` are settled.
    """
    if not isinstance(result, dict):
        return Attempt.failed_call(sent, f"warm_isbns returned {type(result).__name__}")
    error = result.get("error")
    if isinstance(error, dict):
        reason = f"{error.get('code', 'error')}: {error.get('message', '')}".strip()
        if _is_transient(int(error.get("status") or 500)):
            return Attempt.failed_call(sent, reason)
        return Attempt.refused(sent, reason)
    calls = result.get("upstreamCalls", {})
    attempt = Attempt(upstream={str(k): int(v) for k, v in calls.items()})
    for isbn in [*result.get("warmed", []), *result.get("alreadyCached", [])]:
        if str(isbn) not in attempt.done:
            attempt.done.append(str(isbn))
    attempt.deferred = [str(i) for i in result.get("deferred", [])]
    for isbn in result.get("notFound", []):
        attempt.failed.setdefault(str(isbn), "not found by any provider")
    for isbn in result.get("invalid", []):
        attempt.failed.setdefault(str(isbn), "invalid ISBN")
    for entry in result.get("failed", []):
        if isinstance(entry, dict) and str(entry.get("isbn")) not in attempt.deferred:
            attempt.retry.setdefault(str(entry.get("isbn")), str(entry.get("reason", "failed")))
    spent = result.get("quotaExhausted")
    if attempt.retry and isinstance(spent, dict) and spent:
        # A provider's daily quota is spent: what it could not answer waits for the reset
        # (deferred: no try counted); the ISBNs warmed now come back as alreadyCached.
        provider, retry_after = sorted(spent.items())[0]
        attempt.quota = _quota_note(str(provider), retry_after)
        attempt.deferred.extend(attempt.retry)
        attempt.retry = {}
    return attempt


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

    def _spendable(self, *, cover: bool = False) -> int:
        """Subrequests units may still use: the job's and the run's ends stay reserved, and
        with ``cover`` one usage record put (due before calls no record counts yet)."""
        reserved = JOB_END_SUBREQUESTS + RUN_END_SUBREQUESTS
        return self._meter.remaining - reserved - (USAGE_COVER_SUBREQUESTS if cover else 0)

    async def run(self, job_ids: list[str], ledger: UsageLedger) -> list[JobRun]:
        """Work the unfinished jobs among ``job_ids`` in order while budgets last.

        ``ledger`` holds today's usage and writes this run's record before the calls it
        counts; settling it (writing the real spend) is the caller's last step.
        """
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
                job_run = await self._work(state, ledger)
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

    async def _work(self, state: JobState, ledger: UsageLedger) -> JobRun:
        units = await self._store.load_units(state.id)
        if len(units) < state.units:
            raise RuntimeError(f"job {state.id}: plan has {len(units)} of {state.units} units")
        units = units[: state.units]
        job_run = JobRun(state.id)
        job_run.recovered = len(await self._store.catch_up(state))
        if job_run.recovered:
            self._log.warning("warm.recovered", job=state.id, units=job_run.recovered)
        progress = _progress_at(state)
        budgets = self._settings.daily.as_dict()
        stop: tuple[StopReason, str] = (StopReason.COMPLETE, "")
        while not state.finished:
            n = state.cursor
            unit = units[n]
            todo = Unit(unit.kind, tuple(progress.todo(unit)))
            if self._out_of_time():
                stop = (StopReason.TIME, "")
                break
            usage = ledger.usage
            cover = not ledger.covers(upstream_estimate(todo))
            blocked = blocker(
                todo, subrequests=self._spendable(cover=cover), daily_left=usage.left(budgets)
            )
            if blocked is not None:
                stop = blocked
                break
            await self._cover(ledger, units, n, todo)
            attempt = await self._attempt(todo)
            usage.add(attempt.upstream or upstream_estimate(todo))
            step = progress.record(attempt, sent=todo.items)
            state.attempts = progress.attempts
            self._metrics.incr("warm.items.deferred", len(attempt.deferred))
            if attempt.quota is not None and not progress.finished(unit):
                self._log.warning("warm.deferred", job=state.id, unit=n, reason=attempt.quota)
                self._metrics.incr("warm.deferred")
                stop = (StopReason.DAILY_BUDGET, attempt.quota)
                break
            if progress.finished(unit):
                await self._finish(state, unit, progress, job_run)
                progress = UnitProgress(state.cursor)
                continue
            if step.trouble is not None:
                self._log.warning(
                    "warm.transient",
                    job=state.id,
                    unit=n,
                    attempt=progress.attempts,
                    reason=step.trouble,
                )
                stop = (StopReason.TRANSIENT, step.trouble)
                break
            if not step.progress:  # everything deferred again: nothing to gain this run
                stop = (StopReason.TRANSIENT, "the proxy deferred every item")
                break
            # Only deferrals left (a deferral is progress): attempt the unit again now.
        state.unit_progress = None if state.finished else _saved(progress)
        job_run.stop, job_run.detail = stop[0].value, stop[1]
        now = self._clocks.wall()
        if job_run.units or job_run.recovered:
            state.runs += 1
            if state.first_run_at is None:
                state.first_run_at = now
        state.last_run = {"at": now, **job_run.as_dict()}
        return job_run

    async def _cover(self, ledger: UsageLedger, units: list[Unit], n: int, todo: Unit) -> None:
        """Before an attempt: this run's usage record must count it. When it does not, the
        new record also counts every unit the budgets let this run reach (one write, not
        one per unit)."""
        if ledger.covers(upstream_estimate(todo)):
            return
        ahead = plan_batch(
            [*units[:n], todo, *units[n + 1 :]],
            n,
            subrequests=self._spendable(cover=True),
            daily_left=ledger.usage.left(self._settings.daily.as_dict()),
        )
        estimate: dict[str, int] = {}
        for unit in [todo, *(units[i] for i in ahead.indices if i != n)]:
            for provider, calls in upstream_estimate(unit).items():
                estimate[provider] = estimate.get(provider, 0) + calls
        await ledger.cover(estimate)

    async def _finish(
        self, state: JobState, unit: Unit, progress: UnitProgress, job_run: JobRun
    ) -> None:
        done, failed = progress.outcome(unit)
        result = UnitResult(
            progress.n, unit.kind.value, done, failed, self._clocks.wall(), progress.upstream
        )
        await self._store.write_unit(state.id, result)
        state.fold(result)
        job_run.units += 1
        job_run.items += len(unit.items)
        self._metrics.incr(f"warm.units.{unit.kind.value}")
        self._metrics.incr("warm.items.done", len(done))
        self._metrics.incr("warm.items.failed", len(failed))

    async def _attempt(self, todo: Unit) -> Attempt:
        try:
            if todo.kind is UnitKind.ISBNS:
                budget_ms = warm_budget_ms(self._settings.call_timeout_ms)
                result = await self._proxy.call("warm_isbns", list(todo.items), budget_ms)
                return warm_attempt(todo.items, result)
            return await self._warm_author(todo.items[0])
        except BudgetExhausted:
            raise
        except Exception as exc:  # a binding that throws: ask again on a later run
            self._metrics.incr("warm.binding_errors")
            return Attempt.failed_call(todo.items, f"{type(exc).__name__}: {exc}"[:300])

    async def _warm_author(self, name: str) -> Attempt:
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
            return Attempt(deferred=[name], upstream={"isbndb": 0}, quota=deferred)
        if bibliography.status >= 400:
            self._log.warning("warm.author_isbndb", author=name, status=bibliography.status)
        search = await self._proxy.fetch(Request("GET", author_search_url(name), headers))
        if search.status < 400:
            if (failed := _failed_providers(search)) and _no_results(search):
                # Nothing found while a provider was down: no evidence either way; retry later.
                reason = f"proxy search partial ({', '.join(failed)} failed)"
                return Attempt(retry={name: reason})
            if _no_results(search):
                # The proxy keeps an empty answer only briefly (a KV-only negative entry that
                # cache_status reports as absent): recorded as failed, so verification does not
                # re-warm an author nobody lists every night.
                return Attempt(failed={name: NO_RESULTS})
            return Attempt(done=[name])
        reason = f"proxy search answered {search.status}"
        with contextlib.suppress(ValueError, KeyError, TypeError):
            reason = f"{reason}: {search.json()['error']['message']}"
        if _is_transient(search.status):
            return Attempt(retry={name: reason})
        return Attempt(failed={name: reason})


def _progress_at(state: JobState) -> UnitProgress:
    """The saved progress of the unit at the cursor, or a fresh one."""
    saved = state.unit_progress
    if saved is not None and int(saved.get("n", -1)) == state.cursor:
        return UnitProgress.from_json(saved)
    return UnitProgress(state.cursor)


def _saved(progress: UnitProgress) -> dict[str, Any] | None:
    return progress.to_json() if progress.attempts else None
