"""The proxy's App: HTTP routes and the same operations as RPC methods.

Every HTTP error is JSON ``{"error": {...}}``; every RPC failure is returned (not raised) as
``{"error": {"code", "message", "status", "retryAfter"}}`` (ARCHITECTURE.md). A malformed var
never stops the App from being built: every operation but ``health``/``metrics`` (and CORS
preflights) then answers ``500 config_error`` naming the var.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from bookmeta import (
    BookmetaError,
    ConfigError,
    Log,
    ObservedService,
    QueryKind,
    Request,
    Response,
    Router,
    TooManyRequests,
    TwoTierCache,
    WorkerEnv,
    error_response,
    json_response,
    refuse_extra_args,
    response_for_error,
    retry_after_header,
    serve,
)

from . import validation
from .clients import APP_KEYS_SECRET, INTERNAL, Gate, UnknownAppKey, identify, parse_app_keys
from .config import Settings, fallback_settings
from .cors import cors_headers, preflight
from .isolate import Isolate
from .search import AllProvidersFailed, Searcher, SearchResult
from .sweep import sweep_cache
from .upstreams import ClientFactory, Upstreams
from .validation import SearchParams, isbn, key_list, search_params, search_query, sweep_pages
from .volumes import envelope
from .warm import Deadline, warm_isbns

WORKER = "books_api_proxy"
UNCOUNTED = frozenset({"/health", "/metrics"})
VERSION = "1.0.0"
JsonBody = dict[str, Any]
_CACHED = frozenset({"kv", "r2"})
_POLLS = frozenset({"/health", "/metrics"})


def error_for(exc: BookmetaError) -> Response:
    """The HTTP error for ``exc``; all-providers-down is a 503 with Retry-After."""
    if isinstance(exc, AllProvidersFailed):
        return error_response(
            503,
            "upstream_unavailable",
            "every provider is failing and nothing is cached; retry later",
            headers=retry_after_header(exc.retry_after_s),
            details={"providers": exc.failed},
        )
    return response_for_error(exc)


def routine(request: Request, response: Response) -> bool:
    """An answer with nothing to read at 3 a.m.: from a fresh cache entry (no upstream call),
    a health or metrics poll, a CORS preflight. ``serve`` gives these no log line (unless
    they failed or were slow); ``/metrics`` still counts them."""
    return (
        response.headers.get("x-cache") in _CACHED
        or request.method == "OPTIONS"
        or request.path in _POLLS
    )


def rpc_error(exc: BookmetaError) -> JsonBody:
    """The RPC error dict for ``exc``: the HTTP error body plus ``status`` and ``retryAfter``."""
    resp = error_for(exc)
    error = dict(resp.json()["error"])
    retry = resp.headers.get("retry-after")
    error["status"] = resp.status
    error["retryAfter"] = float(retry) if retry else None
    return {"error": error}


def _refused_args(method: str, extra: tuple[Any, ...]) -> JsonBody | None:
    """The RPC error dict for arguments passed to a method that takes none, else None."""
    try:
        refuse_extra_args(method, extra, 0)
    except BookmetaError as exc:
        return rpc_error(exc)
    return None


class App:
    """Routes and RPC operations over one invocation's env and the isolate's state."""

    def __init__(
        self,
        env: WorkerEnv,
        isolate: Isolate,
        *,
        settings: Settings | None = None,
        client_factory: ClientFactory = httpx.AsyncClient,
    ) -> None:
        self.env = env
        self.isolate = isolate
        loaded = settings or isolate.settings(env)
        # A malformed var is answered per operation (config_error), never raised from here:
        # that would escape serve() (a non-JSON 500) and the RPC edge (a JS error).
        self.config_error: ConfigError | None = None
        if isinstance(loaded, ConfigError):
            self.config_error = loaded
            loaded = fallback_settings(env)
        self.settings = loaded
        self.cache = TwoTierCache(
            env.kv("CACHE"),
            env.r2("API_CACHE_COLD"),
            hot_ttl_s=self.settings.hot_ttl_s,
            cold_ttl_s=max(self.settings.cold_ttl_s, self.settings.hot_ttl_s),
            negative_ttl_s=self.settings.negative_ttl_s,
            clock=env.clocks.wall,
            single_flight=isolate.single_flight,
            on_write_failure=lambda failure: isolate.metrics.incr(
                f"cache.write_failed.{failure.tier}"
            ),
        )
        isbndb = env.service("ISBNDB_WORKER")
        self.isbndb: ObservedService | None = None
        if isbndb is not None:
            self.isbndb = ObservedService(
                "ISBNDB_WORKER", isbndb, metrics=isolate.metrics, clock=env.clocks.monotonic
            )
        self.upstreams = Upstreams(
            self.settings,
            isolate,
            isbndb_service=self.isbndb,
            google_key=self._google_key,
            wall_clock=env.clocks.wall,
            monotonic_clock=env.clocks.monotonic,
            client_factory=client_factory,
        )
        # RPC and internal calls are never limited; _handle sets the public caller's gate.
        self.gate = Gate(env, INTERNAL, isolate.refusals)
        self.searcher = Searcher(
            self.cache,
            self.upstreams,
            schedule=env.wait_until,
            on_lookup=lambda source: isolate.metrics.incr(f"cache.{source}"),
            admit_miss=lambda: self.gate.admit_miss(),
        )

    async def _google_key(self) -> str | None:
        return await self.isolate.secrets.get(self.env, "GOOGLE_BOOKS_API_KEY")

    # -- HTTP ----------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        """Answer one HTTP request (request id, timing, JSON errors, CORS)."""
        return await serve(
            request,
            self._handle,
            worker=WORKER,
            metrics=self.isolate.metrics,
            clock=self.env.clocks.monotonic,
            routine=routine,
        )

    async def _handle(self, request: Request, log: Log) -> Response:
        if self.isbndb is not None:
            self.isbndb.request_id = log.request_id
        origins = self.settings.cors_origins
        if request.method.upper() == "OPTIONS":
            return preflight(origins, request)
        response = await self._identified(request, log)
        if response is None:
            remembered = self.gate.remembered()
            if remembered is not None:  # refused earlier in this window: no route, no count
                response = self._limited(remembered, log)
        if response is None:
            # The request limit is asked while the route runs (a hit's KV read overlaps the
            # limiter's round trip); a miss waits for it before any upstream call (admit_miss).
            self.gate.start_request()
            try:
                response = await ROUTES.dispatch(request, self)
            finally:
                refused = await self._refused(log)
            response = refused or response
        response.headers.update(cors_headers(origins, request.header("origin")))
        return response

    async def _refused(self, log: Log) -> Response | None:
        """The 429 when the caller's request limit refused this request, else None."""
        try:
            await self.gate.admitted()
        except TooManyRequests as exc:
            return self._limited(exc, log)
        return None

    def _limited(self, exc: TooManyRequests, log: Log) -> Response:
        log.warning("client.limited", scope=self.gate.client.scope.value, limit=exc.scope)
        self.isolate.metrics.incr(f"limited.{self.gate.client.scope.value}")
        return error_for(exc)

    async def _identified(self, request: Request, log: Log) -> Response | None:
        """Identify the caller (``self.gate``): None to go on, else the refusal (401)."""
        app_keys: tuple[str, ...] = ()
        if request.header("authorization") is not None:
            app_keys = parse_app_keys(await self.env.secret(APP_KEYS_SECRET))
        try:
            client = identify(request, app_keys)
        except UnknownAppKey:
            log.warning("client.unknown_app_key")
            return error_response(
                401,
                "invalid_app_key",
                "the bearer token is not a known app key; send none to be counted by IP",
            )
        # /health and /metrics cost no upstream call and are polled by monitors: not counted.
        counted = client if request.path not in UNCOUNTED else INTERNAL
        self.gate = Gate(self.env, counted, self.isolate.refusals)
        return None

    async def _guarded(self, op: Callable[[], Awaitable[Response]]) -> Response:
        if self.config_error is not None:
            return error_for(self.config_error)
        try:
            return await op()
        except BookmetaError as exc:
            return error_for(exc)

    @staticmethod
    def _volumes(result: SearchResult) -> Response:
        body = App._body(result)
        return json_response(body, headers={"x-cache": result.cache})

    async def _http_search(self, request: Request, kind: QueryKind | None) -> Response:
        async def op() -> Response:
            params = search_query(request.query, default_max=self.settings.max_results_default)
            if kind is None:
                return self._volumes(await self.searcher.auto(params))
            return self._volumes(await self.searcher.search(kind, params))

        return await self._guarded(op)

    async def _http_auto(self, request: Request) -> Response:
        return await self._http_search(request, None)

    async def _http_author(self, request: Request) -> Response:
        return await self._http_search(request, QueryKind.AUTHOR)

    async def _http_title(self, request: Request) -> Response:
        return await self._http_search(request, QueryKind.TITLE)

    async def _http_isbn(self, request: Request) -> Response:
        async def op() -> Response:
            return self._volumes(await self.searcher.isbn(isbn(request.query.get("isbn"))))

        return await self._guarded(op)

    async def _http_health(self, request: Request) -> Response:
        return json_response(await self.health())

    async def _http_metrics(self, request: Request) -> Response:
        return json_response(await self.metrics())

    # -- RPC (and the bodies HTTP returns) -------------------------------------------------

    async def _rpc(
        self,
        op: Callable[[], Awaitable[JsonBody]],
        method: str,
        extra: tuple[Any, ...] = (),
        accepted: int = 0,
    ) -> JsonBody:
        if self.config_error is not None:
            return rpc_error(self.config_error)
        try:
            refuse_extra_args(method, extra, accepted)
            return await op()
        except BookmetaError as exc:
            return rpc_error(exc)
        except Exception as exc:  # RPC edge: a JS error would lose its type; answer in kind
            print(
                json.dumps(
                    {
                        "level": "error",
                        "event": "rpc.crashed",
                        "method": method,
                        "error": type(exc).__name__,
                    }
                )
            )
            return {
                "error": {
                    "code": "internal_error",
                    "message": "unexpected error",
                    "status": 500,
                    "retryAfter": None,
                }
            }

    @staticmethod
    def _body(result: SearchResult) -> JsonBody:
        return envelope(result.items, cache=result.cache, failed=result.failed, total=result.total)

    def _params_of(
        self, q: Any, max_results: Any, include_translations: Any, lang: Any, start_index: Any
    ) -> SearchParams:
        return search_params(
            q,
            max_results,
            include_translations,
            lang,
            start_index,
            default_max=self.settings.max_results_default,
        )

    # Every RPC parameter defaults to None and surplus arguments land in *extra: a caller's
    # wrong argument count is answered with the error dict, never a TypeError (bookmeta._rpc).

    async def search_auto(
        self,
        q: Any = None,
        max_results: Any = None,
        include_translations: Any = None,
        lang: Any = None,
        start_index: Any = None,
        *extra: Any,
    ) -> JsonBody:
        """RPC of ``/search/auto``: the same body, or an error dict."""
        args = (q, max_results, include_translations, lang, start_index)
        return await self._rpc_search("search_auto", None, args, extra)

    async def search_isbn(self, isbn_value: Any = None, *extra: Any) -> JsonBody:
        """RPC of ``/search/isbn``."""

        async def op() -> JsonBody:
            return self._body(await self.searcher.isbn(isbn(isbn_value)))

        return await self._rpc(op, "search_isbn", extra, 1)

    async def search_author(
        self,
        q: Any = None,
        max_results: Any = None,
        include_translations: Any = None,
        lang: Any = None,
        start_index: Any = None,
        *extra: Any,
    ) -> JsonBody:
        """RPC of ``/search/author``."""
        args = (q, max_results, include_translations, lang, start_index)
        return await self._rpc_search("search_author", QueryKind.AUTHOR, args, extra)

    async def search_title(
        self,
        q: Any = None,
        max_results: Any = None,
        include_translations: Any = None,
        lang: Any = None,
        start_index: Any = None,
        *extra: Any,
    ) -> JsonBody:
        """RPC of ``/search/title``."""
        args = (q, max_results, include_translations, lang, start_index)
        return await self._rpc_search("search_title", QueryKind.TITLE, args, extra)

    async def _rpc_search(
        self, method: str, kind: QueryKind | None, args: tuple[Any, ...], extra: tuple[Any, ...]
    ) -> JsonBody:
        """A search RPC (``kind`` None: auto), as ``_http_search`` is for HTTP."""

        async def op() -> JsonBody:
            params = self._params_of(*args)
            if kind is None:
                return self._body(await self.searcher.auto(params))
            return self._body(await self.searcher.search(kind, params))

        return await self._rpc(op, method, extra, len(args))

    async def warm_isbns(self, isbns: Any = None, budget_ms: Any = None, *extra: Any) -> JsonBody:
        """RPC ``warm_isbns(isbns, budget_ms)``: warm the cache for many ISBNs.

        ``budget_ms`` is how long the caller waits (None: no deadline); past it no upstream
        call is made and the answer comes back (see ``warm.warm_isbns``).
        """
        started = self.env.clocks.monotonic()

        async def op() -> JsonBody:
            budget = validation.budget_ms(budget_ms)
            deadline = None
            if budget is not None:
                deadline = Deadline(started + budget / 1000.0, self.env.clocks.monotonic, budget)
            return await warm_isbns(
                isbns,
                cache=self.cache,
                upstreams=self.upstreams,
                clock=self.env.clocks.wall,
                deadline=deadline,
            )

        return await self._rpc(op, "warm_isbns", extra, 2)

    async def cache_status(self, keys: Any = None, *extra: Any) -> JsonBody:
        """RPC: where each key is cached and until when."""

        async def op() -> JsonBody:
            statuses = await self.cache.status(key_list(keys))
            return {
                "keys": {
                    s.key: {"tier": s.tier, "freshUntil": s.fresh_until, "expiresAt": s.expires_at}
                    for s in statuses
                }
            }

        return await self._rpc(op, "cache_status", extra, 1)

    async def sweep_cache(self, max_pages: Any = None, *extra: Any) -> JsonBody:
        """RPC: delete cold entries past their TTL, ``max_pages`` list pages from where the
        last sweep stopped (see ``sweep.sweep_cache``)."""

        async def op() -> JsonBody:
            return await sweep_cache(self.cache, sweep_pages(max_pages))

        return await self._rpc(op, "sweep_cache", extra, 1)

    async def health(self, *extra: Any) -> JsonBody:
        """Configuration and breaker states (no secrets: only whether the key is set).

        ``configError`` (the message naming the malformed var) only while a var is malformed.
        """
        if (refused := _refused_args("health", extra)) is not None:
            return refused
        body: JsonBody = {
            "worker": WORKER,
            "version": VERSION,
            "googleKeyConfigured": bool(await self._google_key()),
            "isbndbBinding": self.upstreams.isbndb_service is not None,
            "cache": {"kv": self.cache.hot is not None, "r2": self.cache.cold is not None},
            "breakers": self.isolate.breakers.snapshot(),
        }
        if self.config_error is not None:
            body["configError"] = str(self.config_error)
        return body

    async def metrics(self, *extra: Any) -> JsonBody:
        """Per-isolate counters, latencies, breakers and rate limiters."""
        if (refused := _refused_args("metrics", extra)) is not None:
            return refused
        return {
            "worker": WORKER,
            **self.isolate.metrics.snapshot(),
            "breakers": self.isolate.breakers.snapshot(),
            "rateLimiters": self.isolate.limiter_snapshot(),
            "inFlight": self.isolate.single_flight.in_flight,
        }


def _routes() -> Router:
    # Handlers are unbound App methods, given the invocation's App by dispatch(request, app),
    # so no route closes over per-request state.
    router = Router()
    router.add("GET", "/search/auto", App._http_auto)
    router.add("GET", "/search/isbn", App._http_isbn)
    router.add("GET", "/search/author", App._http_author)
    router.add("GET", "/search/title", App._http_title)
    router.add("GET", "/health", App._http_health)
    router.add("GET", "/metrics", App._http_metrics)
    return router


# The route table: immutable once built, so one per module (= per isolate) is shared.
ROUTES = _routes()


def build_app(
    env: WorkerEnv, isolate: Isolate, *, client_factory: ClientFactory = httpx.AsyncClient
) -> App:
    """The App for one invocation (cheap: settings, routes and state live in ``isolate``)."""
    return App(env, isolate, client_factory=client_factory)
