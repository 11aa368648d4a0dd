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
    TwoTierCache,
    WorkerEnv,
    error_response,
    json_response,
    response_for_error,
    retry_after_header,
    serve,
)

from .config import Settings, fallback_settings
from .cors import cors_headers, preflight
from .isolate import Isolate
from .search import AllProvidersFailed, Searcher, SearchResult
from .upstreams import ClientFactory, Upstreams
from .validation import SearchParams, isbn, key_list, search_params, search_query
from .volumes import envelope
from .warm import warm_isbns

WORKER = "books_api_proxy"
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
        self.searcher = Searcher(
            self.cache,
            self.upstreams,
            schedule=env.wait_until,
            on_lookup=lambda source: isolate.metrics.incr(f"cache.{source}"),
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
        response = await ROUTES.dispatch(request, self)
        response.headers.update(cors_headers(origins, request.header("origin")))
        return response

    async def _guarded(self, op: Callable[[], Awaitable[Response]]) -> Response:
        if self.config_error is not None:
            return error_for(self.config_error)
        try:
            return await op()
        except BookmetaError as exc:
            return error_for(exc)

    @staticmethod
    def _volumes(result: SearchResult) -> Response:
        body = envelope(result.items, cache=result.cache, failed=result.failed)
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

    async def _rpc(self, op: Callable[[], Awaitable[JsonBody]], method: str) -> JsonBody:
        if self.config_error is not None:
            return rpc_error(self.config_error)
        try:
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
        return envelope(result.items, cache=result.cache, failed=result.failed)

    def _params_of(
        self, q: Any, max_results: Any, include_translations: Any, lang: Any
    ) -> SearchParams:
        return search_params(
            q,
            max_results,
            include_translations,
            lang,
            default_max=self.settings.max_results_default,
        )

    async def search_auto(
        self, q: Any, max_results: Any, include_translations: Any, lang: Any
    ) -> JsonBody:
        """RPC of ``/search/auto``: the same body, or an error dict."""

        async def op() -> JsonBody:
            params = self._params_of(q, max_results, include_translations, lang)
            return self._body(await self.searcher.auto(params))

        return await self._rpc(op, "search_auto")

    async def search_isbn(self, isbn_value: Any) -> JsonBody:
        """RPC of ``/search/isbn``."""

        async def op() -> JsonBody:
            return self._body(await self.searcher.isbn(isbn(isbn_value)))

        return await self._rpc(op, "search_isbn")

    async def search_author(
        self, q: Any, max_results: Any, include_translations: Any, lang: Any
    ) -> JsonBody:
        """RPC of ``/search/author``."""

        async def op() -> JsonBody:
            params = self._params_of(q, max_results, include_translations, lang)
            return self._body(await self.searcher.search(QueryKind.AUTHOR, params))

        return await self._rpc(op, "search_author")

    async def search_title(
        self, q: Any, max_results: Any, include_translations: Any, lang: Any
    ) -> JsonBody:
        """RPC of ``/search/title``."""

        async def op() -> JsonBody:
            params = self._params_of(q, max_results, include_translations, lang)
            return self._body(await self.searcher.search(QueryKind.TITLE, params))

        return await self._rpc(op, "search_title")

    async def warm_isbns(self, isbns: Any) -> JsonBody:
        """RPC: warm the cache for many ISBNs (see ``warm.warm_isbns``)."""

        async def op() -> JsonBody:
            return await warm_isbns(
                isbns, cache=self.cache, upstreams=self.upstreams, clock=self.env.clocks.wall
            )

        return await self._rpc(op, "warm_isbns")

    async def cache_status(self, keys: Any) -> JsonBody:
        """RPC: where each key is cached and until when."""

        async def op() -> JsonBody:
            statuses = await self.cache.status(key_list(keys))
            return {
                "keys": {
                    s.key: {"tier": s.tier, "freshUntil": s.fresh_until, "expiresAt": s.expires_at}
                    for s in statuses
                }
            }

        return await self._rpc(op, "cache_status")

    async def health(self) -> JsonBody:
        """Configuration and breaker states (no secrets: only whether the key is set).

        ``configError`` (the message naming the malformed var) only while a var is malformed.
        """
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

    async def metrics(self) -> JsonBody:
        """Per-isolate counters, latencies, breakers and rate limiters."""
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


def build_app(env: WorkerEnv, isolate: Isolate) -> App:
    """The App for one invocation (cheap: settings, routes and state live in ``isolate``)."""
    return App(env, isolate)
