"""The cache warmer app: HTTP routes, the two crons, and the wiring of stores and bindings.

Routes::

    GET  /                         dashboard (HTML)            GET /dashboard.js  the pages' script
    POST /libraries                import a CSV/TSV (auth)     GET /libraries     progress list
    GET  /libraries/{id}           progress (JSON; HTML when Accept prefers it)
    POST /libraries/{id}/warm      one batch now (auth)        POST /libraries/{id}/retry (auth)
    GET  /health                   GET /metrics
    GET  /debug/{proxy|isbndb}/... POST /debug/rpc/...        binding pass-through (auth)

Queue: ``WARM_QUEUE`` (one message per unit, sent at upload) is consumed by ``queue()``
(consumer.py); its dead-letter queue too. Crons: ``*/15 * * * *`` re-drives what is due
(redrive.py), ``0 2 * * *`` verification; any other is logged only.
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bookmeta import (
    BlobStore,
    BookmetaError,
    ConfigError,
    InvalidInput,
    KVStore,
    Log,
    Metrics,
    ObservedService,
    PayloadTooLarge,
    QueueMessage,
    QueueProducer,
    Request,
    Response,
    Router,
    Service,
    WorkerEnv,
    error_response,
    json_response,
    normalize_display,
    response_for_error,
    serve,
)

from . import debug
from .auth import is_authorized, unauthorized
from .budget import (
    BudgetExhausted,
    Meter,
    MeteredBlobs,
    MeteredKV,
    MeteredObjects,
    MeteredQueue,
    MeteredService,
    UsageLedger,
    load_usage,
)
from .config import VERSION, WORKER, Settings
from .consumer import Consumer
from .dashboard import render_dashboard
from .formats import ParsedLibrary, UploadRejected, decode_upload, parse_library
from .jobs import (
    MAX_REPORT_LINES,
    JobState,
    JobStore,
    is_job_id,
    kind_counts,
    progress,
    public_progress,
)
from .library_page import render_library
from .multipart import MultipartError, is_multipart, read_file_part
from .negotiate import prefers_html
from .planner import build_units, total_estimate
from .redrive import enqueue_units, redrive
from .runner import UnitWorker
from .script import SCRIPT
from .ui import HTML_HEADERS
from .verify import Verifier, utc_day
from .views import library_row, library_view

MICRO_BATCH_CRON = "*/15 * * * *"
VERIFY_CRON = "0 2 * * *"
KV_BINDING = "WARMING_CACHE"
R2_BINDING = "LIBRARY_DATA"
PROXY_BINDING = "BOOKS_API_PROXY"
ISBNDB_BINDING = "ISBNDB_WORKER"
JOBS_BINDING = "LIBRARY_JOBS"
QUEUE_BINDING = "WARM_QUEUE"
TOKEN_SECRET = "WARMER_ADMIN_TOKEN"
DASHBOARD_LIBRARIES = 20
_TEXT_TYPES = frozenset(
    {
        "",
        "text/csv",
        "text/plain",
        "text/tab-separated-values",
        "application/csv",
        "application/vnd.ms-excel",  # what Windows browsers send for .csv
        "application/octet-stream",
    }
)


@dataclass
class Isolate:
    """Per-isolate state: metrics (no I/O, no randomness at creation)."""

    metrics: Metrics = field(default_factory=Metrics)


class Misconfigured(Exception):  # noqa: N818 (a state of the deployment)
    """A binding the warmer needs is missing."""


@dataclass
class _Wiring:
    """The metered bindings of one invocation."""

    meter: Meter
    kv: KVStore
    blobs: BlobStore
    proxy: Service
    isbndb: Service
    store: JobStore
    queue: QueueProducer


def _new_job_id(now: float) -> str:
    stamp = datetime.fromtimestamp(now, tz=UTC).strftime("%Y%m%dt%H%M%S")
    return f"{stamp}-{secrets.token_hex(3)}"


class App:
    """One invocation's view of the warmer."""

    def __init__(self, env: WorkerEnv, isolate: Isolate) -> None:
        self._env = env
        self._isolate = isolate
        self._clocks = env.clocks
        self._log = Log(WORKER, "-")  # replaced by the request's log in _route()

    # -- wiring ------------------------------------------------------------------------------

    def _settings(self) -> Settings:
        return Settings.from_env(self._env)

    def _observed(self, name: str, service: Service) -> ObservedService:
        return ObservedService(
            name, service, metrics=self._isolate.metrics, clock=self._clocks.monotonic
        )

    def _wire(self, settings: Settings) -> _Wiring:
        kv = self._env.kv(KV_BINDING)
        blobs = self._env.r2(R2_BINDING)
        proxy = self._env.service(PROXY_BINDING)
        isbndb = self._env.service(ISBNDB_BINDING)
        jobs = self._env.durable_object(JOBS_BINDING)
        queue = self._env.queue(QUEUE_BINDING)
        missing = [
            name
            for name, b in (
                (KV_BINDING, kv),
                (R2_BINDING, blobs),
                (PROXY_BINDING, proxy),
                (ISBNDB_BINDING, isbndb),
                (JOBS_BINDING, jobs),
                (QUEUE_BINDING, queue),
            )
            if b is None
        ]
        if (
            kv is None
            or blobs is None
            or proxy is None
            or isbndb is None
            or jobs is None
            or queue is None
        ):
            raise Misconfigured(f"missing bindings: {', '.join(missing)}")
        meter = Meter(settings.max_subrequests)
        timeout_s = settings.call_timeout_ms / 1000.0
        mkv = MeteredKV(kv, meter)
        mblobs = MeteredBlobs(blobs, meter)
        return _Wiring(
            meter,
            mkv,
            mblobs,
            MeteredService(
                PROXY_BINDING, self._observed(PROXY_BINDING, proxy), meter, timeout_s=timeout_s
            ),
            MeteredService(
                ISBNDB_BINDING, self._observed(ISBNDB_BINDING, isbndb), meter, timeout_s=timeout_s
            ),
            JobStore(
                mkv,
                mblobs,
                MeteredObjects(JOBS_BINDING, jobs, meter, timeout_s=timeout_s),
                self._clocks,
            ),
            MeteredQueue(QUEUE_BINDING, queue, meter),
        )

    # -- HTTP --------------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        """Serve one HTTP request (request id, timing, JSON errors)."""
        return await serve(
            request,
            self._route,
            worker=WORKER,
            metrics=self._isolate.metrics,
            clock=self._clocks.monotonic,
        )

    async def _route(self, request: Request, log: Log) -> Response:
        self._log = log
        if (target := debug.parse_target(request.path)) is not None:
            return await self._debug(request, *target)
        try:
            return await ROUTES.dispatch(request, self)
        except Misconfigured as exc:
            log.error("misconfigured", detail=str(exc))
            return error_response(503, "misconfigured", str(exc))
        except BudgetExhausted as exc:
            log.error("budget.exhausted", detail=str(exc))
            return error_response(503, "budget_exhausted", "subrequest budget spent; retry later")

    # Route handlers: unbound in the isolate's table (_routes), called with this App.

    async def _http_dashboard(self, request: Request) -> Response:
        return await self._dashboard(full=await self._is_admin(request))

    async def _http_script(self, request: Request) -> Response:
        return Response(
            200,
            SCRIPT.encode("utf-8"),
            {"content-type": "text/javascript; charset=utf-8", "cache-control": "max-age=300"},
        )

    async def _http_create(self, request: Request) -> Response:
        return await self._create(request, self._log)

    async def _http_list(self, request: Request) -> Response:
        full = await self._is_admin(request)
        return json_response({"libraries": await self._progress_list(full=full)})

    async def _http_show(self, request: Request, id: str) -> Response:
        full = await self._is_admin(request)
        if prefers_html(request.header("accept")):
            return await self._page(id, full=full)
        return await self._show(id, full=full)

    async def _http_warm(self, request: Request, id: str) -> Response:
        return await self._warm_now(request, id, self._log)

    async def _http_retry(self, request: Request, id: str) -> Response:
        return await self._retry(request, id, self._log)

    async def _http_health(self, request: Request) -> Response:
        return await self._health()

    async def _http_metrics(self, request: Request) -> Response:
        return json_response({"worker": WORKER, **self._isolate.metrics.snapshot()})

    async def _debug(self, request: Request, kind: str, target: str, rest: str) -> Response:
        refused = await self._authorized(request)
        if refused is not None:
            return refused
        service = self._env.service(debug.TARGETS[target][0])
        if service is None:
            return error_response(503, "misconfigured", f"binding for {target} is missing")
        try:
            if kind == "rpc":
                return await debug.call(request, service, target, rest)
            return await debug.forward(request, service, target, rest)
        except BookmetaError as exc:
            return response_for_error(exc)

    async def _authorized(self, request: Request) -> Response | None:
        expected = await self._env.secret(TOKEN_SECRET)
        return None if is_authorized(request, expected) else unauthorized(expected)

    async def _is_admin(self, request: Request) -> bool:
        """The request carries the admin token (read routes then show the full view)."""
        return is_authorized(request, await self._env.secret(TOKEN_SECRET))

    async def _create(self, request: Request, log: Log) -> Response:
        # Every refusal that needs no body comes first: not a byte is read for them.
        refused = await self._authorized(request)
        if refused is not None:
            return refused
        settings = self._settings()
        content_type = request.header("content-type") or ""
        multipart = is_multipart(content_type)
        if not multipart and content_type.split(";", 1)[0].strip().lower() not in _TEXT_TYPES:
            return error_response(
                415,
                "unsupported_media_type",
                f"send the export as text/csv or multipart/form-data, not {content_type!r}",
            )
        filename = normalize_display(request.query.get("filename", ""))
        try:
            body = await request.read_body(settings.max_upload_bytes)
        except PayloadTooLarge as exc:
            size = f"{exc.declared} bytes" if exc.declared is not None else "larger than that"
            return error_response(
                413,
                "too_large",
                f"the upload limit is {settings.max_upload_bytes} bytes; this one is {size}",
                details={"limit": settings.max_upload_bytes},
            )
        try:
            data = body
            if multipart:
                part = read_file_part(body, content_type)
                data, filename = part.content, normalize_display(part.filename) or filename
            library = parse_library(decode_upload(data))
        except MultipartError as exc:
            return error_response(400, "bad_multipart", str(exc))
        except UploadRejected as exc:
            return error_response(exc.status, exc.code, exc.message)
        return await self._import(library, data, filename[:200], settings, log)

    async def _import(
        self, library: ParsedLibrary, data: bytes, filename: str, settings: Settings, log: Log
    ) -> Response:
        wiring = self._wire(settings)
        now = self._clocks.wall()
        isbns, authors = library.isbns, library.authors
        units = build_units(isbns, authors, chunk_size=settings.isbn_chunk_size)
        no_isbn = library.lines_without_isbn
        summary = {"rows": library.rows, "isbns": len(isbns), "rowsWithoutIsbn": len(no_isbn)}
        state = JobState(
            id=_new_job_id(now),
            created_at=now,
            format=library.format.value,
            variant=library.variant,
            filename=filename,
            library={**summary, "authors": len(authors)},
            units=len(units),
            items=sum(len(u.items) for u in units),
            by_kind=kind_counts(units),
        )
        problems = [{"line": p.line, "message": p.message} for p in library.problems]
        report = {
            "variant": library.variant,
            "rows": library.rows,
            "problems": problems,
            "problemsTotal": library.problems_total,
            "rowsWithoutIsbn": {"count": len(no_isbn), "lines": no_isbn[:MAX_REPORT_LINES]},
        }
        content_type = "text/tab-separated-values" if library.variant == "tsv" else "text/csv"
        await wiring.store.create(
            state,
            data,
            units,
            content_type=f"{content_type}; charset=utf-8",
            metadata={"format": state.format, "filename": filename, "jobId": state.id},
            report=report,
        )
        enqueued = await enqueue_units(wiring.store, wiring.queue, state.id, range(len(units)))
        self._isolate.metrics.incr("import.libraries")
        log.event("import", job=state.id, format=state.format, counts=summary, queued=enqueued)
        body = {
            "id": state.id,
            "format": state.format,
            "variant": state.variant,
            "filename": filename,
            "rows": library.rows,
            "validIsbns": len(isbns),
            "isbns": isbns,
            "rowsWithoutIsbn": {"count": len(no_isbn), "lines": no_isbn},
            "authors": len(authors),
            "authorNames": authors,
            "problems": problems,
            "problemsTotal": library.problems_total,
            "units": state.units,
            "items": state.items,
            "estimatedUpstreamCalls": total_estimate(units),
            "progress": f"/libraries/{state.id}",
        }
        return json_response(body, 201, headers={"location": f"/libraries/{state.id}"})

    async def _load_state(self, wiring: _Wiring, job_id: str) -> JobState | None:
        """The job's state from its object (None for no such job)."""
        return await wiring.store.load(job_id) if is_job_id(job_id) else None

    async def _load_progress(self, job_id: str) -> dict[str, Any] | None:
        state = await self._load_state(self._wire(self._settings()), job_id)
        return None if state is None else progress(state)

    async def _show(self, job_id: str, *, full: bool) -> Response:
        found = await self._load_progress(job_id)
        if found is None:
            return error_response(404, "not_found", f"no library {job_id!r}")
        view = found if full else public_progress(found)
        return json_response(view, headers={"vary": "accept"})

    async def _page(self, job_id: str, *, full: bool) -> Response:
        """The library's page (HTML); errors stay JSON like every other error."""
        settings = self._settings()
        wiring = self._wire(settings)
        state = await self._load_state(wiring, job_id)
        if state is None:
            return error_response(404, "not_found", f"no library {job_id!r}")
        now = self._clocks.wall()
        usage = await load_usage(wiring.kv, utc_day(now))
        found = progress(state)
        view = library_view(
            found if full else public_progress(found),
            full=full,
            now=now,
            usage_day=usage.day,
            calls=usage.calls,
            budgets=settings.daily.as_dict(),
            usage_saturated=usage.saturated,
            kinds=state.by_kind if full else None,
            report=await wiring.store.load_report(job_id) if full else None,
        )
        html = render_library(view)
        return Response(200, html.encode("utf-8"), {**HTML_HEADERS, "vary": "accept"})

    async def _newest_states(self) -> list[JobState]:
        wiring = self._wire(self._settings())
        ids = await wiring.store.list_ids()
        states = [
            await wiring.store.load(job_id) for job_id in reversed(ids[-DASHBOARD_LIBRARIES:])
        ]
        return [s for s in states if s is not None]

    async def _progress_list(self, *, full: bool) -> list[dict[str, Any]]:
        """The newest jobs' progress: the full view with the token, else aggregates only."""
        views = [progress(state) for state in await self._newest_states()]
        return views if full else [public_progress(v) for v in views]

    async def _dashboard(self, *, full: bool) -> Response:
        now = self._clocks.wall()
        rows = []
        for state in await self._newest_states():
            view = progress(state)
            if full:
                rows.append(library_row(view, now=now, kinds=state.by_kind))
            else:
                rows.append(library_row(public_progress(view), now=now))
        html = render_dashboard(rows, max_upload_bytes=self._settings().max_upload_bytes, full=full)
        return Response(200, html.encode("utf-8"), dict(HTML_HEADERS))

    async def _warm_now(self, request: Request, job_id: str, log: Log) -> Response:
        """Send the library's due units to the queue now (what the cron would do)."""
        refused = await self._authorized(request)
        if refused is not None:
            return refused
        if not is_job_id(job_id) or await self._load_progress(job_id) is None:
            return error_response(404, "not_found", f"no library {job_id!r}")
        report = await self.run_batch(log, only=job_id)
        return json_response({**report, "progress": await self._load_progress(job_id)})

    async def _retry(self, request: Request, job_id: str, log: Log) -> Response:
        """Queue every failed item of the library again: the object forgets the failures and
        adds units for them in one call (atomic), then those units are sent to the queue."""
        refused = await self._authorized(request)
        if refused is not None:
            return refused
        settings = self._settings()
        wiring = self._wire(settings)
        if not is_job_id(job_id) or await wiring.store.load(job_id) is None:
            return error_response(404, "not_found", f"no library {job_id!r}")
        found = await wiring.store.requeue_failures(job_id, settings.isbn_chunk_size)
        added = [int(n) for n in found.get("units", [])]
        retried = int(found.get("retried", 0))
        await enqueue_units(wiring.store, wiring.queue, job_id, added)
        state = await wiring.store.load(job_id)
        self._isolate.metrics.incr("retry.items", retried)
        log.event("retry", job=job_id, items=retried, units=len(added))
        return json_response(
            {
                "id": job_id,
                "retried": retried,
                "units": len(added),
                "progress": progress(state) if state is not None else None,
            }
        )

    async def _health(self) -> Response:
        settings = self._settings()
        bindings = {
            KV_BINDING: self._env.kv(KV_BINDING) is not None,
            R2_BINDING: self._env.r2(R2_BINDING) is not None,
            PROXY_BINDING: self._env.service(PROXY_BINDING) is not None,
            ISBNDB_BINDING: self._env.service(ISBNDB_BINDING) is not None,
            JOBS_BINDING: self._env.durable_object(JOBS_BINDING) is not None,
            QUEUE_BINDING: self._env.queue(QUEUE_BINDING) is not None,
        }
        return json_response(
            {
                "worker": WORKER,
                "version": VERSION,
                "ok": all(bindings.values()),
                "bindings": bindings,
                "adminTokenConfigured": bool(await self._env.secret(TOKEN_SECRET)),
                "settings": {
                    "maxSubrequests": settings.max_subrequests,
                    "maxSeconds": settings.max_seconds,
                    "maxUploadBytes": settings.max_upload_bytes,
                    "isbnChunkSize": settings.isbn_chunk_size,
                    "dailyBudgets": settings.daily.as_dict(),
                },
            }
        )

    # -- crons -------------------------------------------------------------------------------

    async def scheduled(self, cron: str, scheduled_time_ms: float) -> dict[str, Any]:
        """Dispatch a cron trigger; returns what the run did (also logged)."""
        log = Log(WORKER, f"cron-{int(scheduled_time_ms)}")
        try:
            if cron == MICRO_BATCH_CRON:
                return await self.run_batch(log)
            if cron == VERIFY_CRON:
                return await self.verify(log)
        except ConfigError as exc:
            log.error("cron.config_error", cron=cron, var=exc.name, detail=str(exc))
            return {"error": str(exc), "var": exc.name}
        except (BudgetExhausted, Misconfigured, InvalidInput) as exc:
            log.error("cron.failed", cron=cron, error=type(exc).__name__, detail=str(exc))
            return {"error": str(exc)}
        log.warning("cron.unknown", cron=cron)
        return {"ignored": cron}

    async def run_batch(self, log: Log, *, only: str | None = None) -> dict[str, Any]:
        """The re-drive: send every unfinished job's due units (or just ``only``'s) to the
        queue again: units deferred to a budget's reset, retried, or left by a dead consumer."""
        settings = self._settings()
        wiring = self._wire(settings)
        ids = [only] if only is not None else await wiring.store.list_ids()
        jobs = await redrive(wiring.store, wiring.queue, ids, wiring.meter, now=only is not None)
        report = {
            "jobs": jobs,
            "subrequests": {
                "used": wiring.meter.used,
                "limit": wiring.meter.limit,
                "byTarget": dict(sorted(wiring.meter.by_target.items())),
            },
        }
        self._isolate.metrics.incr("warm.redrives")
        log.event("warm.redrive", jobs=jobs, subrequests=report["subrequests"])
        return report

    async def queue(self, queue_name: str, messages: list[QueueMessage]) -> dict[str, Any]:
        """Consume one batch of the warming queue or its dead-letter queue."""
        log = Log(WORKER, f"queue-{queue_name}")
        settings = self._settings()
        wiring = self._wire(settings)
        usage = await load_usage(wiring.kv, utc_day(self._clocks.wall()))
        ledger = UsageLedger(wiring.kv, usage, self._clocks)
        worker = UnitWorker(
            proxy=wiring.proxy,
            isbndb=wiring.isbndb,
            settings=settings,
            metrics=self._isolate.metrics,
            log=log,
        )
        consumer = Consumer(
            store=wiring.store,
            queue=wiring.queue,
            worker=worker,
            ledger=ledger,
            settings=settings,
            clocks=self._clocks,
            meter=wiring.meter,
            metrics=self._isolate.metrics,
            log=log,
        )
        try:
            outcome = await consumer.consume(queue_name, messages)
        finally:
            with contextlib.suppress(Exception):
                await ledger.settle()
        report = {
            **outcome.as_dict(),
            "messages": len(messages),
            "subrequests": {"used": wiring.meter.used, "limit": wiring.meter.limit},
        }
        self._isolate.metrics.incr("warm.batches")
        log.event("warm.batch", **report)
        return report

    async def verify(self, log: Log) -> dict[str, Any]:
        """The daily verification pass; writes reports/{YYYY-MM-DD}.json."""
        settings = self._settings()
        wiring = self._wire(settings)
        verifier = Verifier(
            store=wiring.store,
            queue=wiring.queue,
            proxy=wiring.proxy,
            reports=wiring.blobs,
            clocks=self._clocks,
            meter=wiring.meter,
            log=log,
            keys_per_call=settings.verify_keys_per_call,
            chunk_size=settings.isbn_chunk_size,
        )
        report = await verifier.run(await wiring.store.list_ids())
        self._isolate.metrics.incr("verify.runs")
        log.event("verify.run", totals=report["totals"], subrequests=wiring.meter.used)
        return report


def _routes() -> Router:
    # Handlers are unbound App methods, given the invocation's App by dispatch(request, app),
    # so no route closes over per-request state.
    router = Router()
    router.add("GET", "/", App._http_dashboard)
    router.add("GET", "/dashboard.js", App._http_script)
    router.add("POST", "/libraries", App._http_create)
    router.add("GET", "/libraries", App._http_list)
    router.add("GET", "/libraries/{id}", App._http_show)
    router.add("POST", "/libraries/{id}/warm", App._http_warm)
    router.add("POST", "/libraries/{id}/retry", App._http_retry)
    router.add("GET", "/health", App._http_health)
    router.add("GET", "/metrics", App._http_metrics)
    return router


# The route table: immutable once built, so one per module (= per isolate) is shared.
ROUTES = _routes()


def build_app(env: WorkerEnv, isolate: Isolate) -> App:
    """The app for one invocation, built from its env and the isolate's state."""
    return App(env, isolate)


__all__ = ["App", "Isolate", "build_app"]
