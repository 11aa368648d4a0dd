"""The ISBNdb worker's API: HTTP routes and the same operations as RPC methods.

Each operation returns its JSON body (a plain dict) or a `Failure`; HTTP renders a failure
as a JSON error response, RPC returns ``{"error": {..., "status", "retryAfter"}}``.
Callers say why they call (`bookmeta.Purpose`): over HTTP in the ``x-isbndb-purpose``
header, over RPC as the last argument; absent means public. Every ISBNdb call takes a slot
from the key guard first (keyguard.py); cache hits never reach it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from bookmeta import (
    PURPOSE_HEADER,
    BookmetaError,
    ConfigError,
    GuardRefused,
    InvalidInput,
    Log,
    Purpose,
    Request,
    Response,
    Router,
    WorkerEnv,
    json_response,
    parse_purpose,
    refuse_extra_args,
    serve,
)

from . import validation
from .catalog import Catalog
from .client import HttpSession, IsbndbClient
from .config import (
    API_KEY_SECRET,
    CACHE_BINDING,
    GUARD_BINDING,
    MAX_BODY_BYTES,
    SLOT_MAX_WAIT_S,
    VERSION,
    WORKER,
    Settings,
)
from .errors import (
    Failure,
    config_error,
    failure_for,
    guard_not_bound,
    not_configured,
    not_found,
)
from .isolate import Isolate, State
from .keyguard import KeyGuard, guard_name
from .shared_cache import SharedCache

Body = dict[str, Any]
Outcome = Body | Failure


class App:
    """One invocation's view of the worker: settings, isolate state, routes and operations."""

    def __init__(
        self,
        env: WorkerEnv,
        isolate: Isolate,
        *,
        http_factory: Callable[[], httpx.AsyncClient] = httpx.AsyncClient,
    ) -> None:
        self._env = env
        self._metrics = isolate.metrics
        self._refusals = isolate.refusals
        self._config_failure: Failure | None = None
        settings = isolate.settings(env)
        if isinstance(settings, ConfigError):
            self._settings = Settings()
            self._config_failure = config_error(settings)
        else:
            self._settings = settings
        self._state: State = isolate.state(self._settings, env.clocks)
        self._session = HttpSession(http_factory)
        self._log: Log | None = None

    # -- HTTP ------------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        """Answer an HTTP request (JSON always; request id and timing headers added)."""

        async def handler(req: Request, log: Log) -> Response:
            self._log = log
            return await ROUTES.dispatch(req, self)

        return await serve(
            request, handler, worker=WORKER, metrics=self._metrics, clock=self._env.clocks.monotonic
        )

    async def _http_author(self, request: Request, name: str) -> Response:
        async def lookup() -> Outcome:
            query = request.query
            page, size, language = query.get("page"), query.get("pageSize"), query.get("language")
            return await self._author(name, page, size, language, _purpose_of(request))

        return _render(await self._guard(lookup()))

    async def _http_book(self, request: Request, isbn: str) -> Response:
        async def lookup() -> Outcome:
            return await self._book(isbn, _purpose_of(request))

        return _render(await self._guard(lookup()))

    async def _http_books(self, request: Request) -> Response:
        async def parse_then_lookup() -> Outcome:
            payload = await request.read_json(MAX_BODY_BYTES)
            if not isinstance(payload, dict) or "isbns" not in payload:
                raise InvalidInput("isbns", 'body must be a JSON object {"isbns": [...]}')
            return await self._books(payload["isbns"], _purpose_of(request))

        return _render(await self._guard(parse_then_lookup()))

    async def _http_health(self, request: Request) -> Response:
        return _render(await self._guard(self._health()))

    async def _http_metrics(self, request: Request) -> Response:
        return _render(await self._guard(self._metrics_body()))

    # -- RPC (positional arguments; plain dict results) -------------------------------------

    # Every parameter defaults to None and surplus arguments land in *extra: a caller's wrong
    # argument count is answered with the error dict, never a TypeError (bookmeta._rpc).

    async def author(
        self,
        name: Any = None,
        page: Any = None,
        page_size: Any = None,
        language: Any = None,
        purpose: Any = None,
        *extra: Any,
    ) -> Body:
        """RPC ``author(name, page, page_size, language, purpose)`` -> the ``/author`` body."""

        async def op() -> Outcome:
            return await self._author(name, page, page_size, language, parse_purpose(purpose))

        return await self._rpc("author", op, extra, 5)

    async def book(self, isbn: Any = None, purpose: Any = None, *extra: Any) -> Body:
        """RPC ``book(isbn, purpose)`` -> ``{"book": Book}`` or an error (404 ``not_found``)."""

        async def op() -> Outcome:
            return await self._book(isbn, parse_purpose(purpose))

        return await self._rpc("book", op, extra, 2)

    async def books(self, isbns: Any = None, purpose: Any = None, *extra: Any) -> Body:
        """RPC ``books(isbns, purpose)`` -> the ``POST /books`` body."""

        async def op() -> Outcome:
            return await self._books(isbns, parse_purpose(purpose))

        return await self._rpc("books", op, extra, 2)

    async def health(self, *extra: Any) -> Body:
        """RPC ``health()`` -> the ``/health`` body."""
        return await self._rpc("health", self._health, extra, 0)

    async def metrics(self, *extra: Any) -> Body:
        """RPC ``metrics()`` -> the ``/metrics`` body."""
        return await self._rpc("metrics", self._metrics_body, extra, 0)

    async def _rpc(
        self,
        method: str,
        op: Callable[[], Awaitable[Outcome]],
        extra: tuple[Any, ...],
        accepted: int,
    ) -> Body:
        self._metrics.incr(f"rpc.{method}")

        async def checked() -> Outcome:
            refuse_extra_args(method, extra, accepted)
            return await op()

        try:
            outcome = await self._guard(checked())
        except Exception as exc:  # RPC has no serve(): answer like its JSON 500, never raise
            Log(WORKER, "rpc").error("rpc.crashed", method=method, error=type(exc).__name__)
            outcome = Failure(500, "internal_error", f"unexpected error in {method}")
        return outcome.rpc() if isinstance(outcome, Failure) else outcome

    # -- operations -------------------------------------------------------------------------

    async def _guard(self, op: Awaitable[Outcome]) -> Outcome:
        try:
            return await op
        except BookmetaError as exc:
            failure = failure_for(exc)
            self._metrics.incr(f"failure.{failure.code}")
            return failure
        finally:
            await self._session.aclose()

    def _key_guard(self, api_key: str) -> KeyGuard | Failure:
        namespace = self._env.durable_object(GUARD_BINDING)
        if namespace is None:
            return guard_not_bound()
        return KeyGuard(
            namespace.get_by_name(guard_name(api_key)),
            memo=self._refusals,
            clocks=self._env.clocks,
            metrics=self._metrics,
            max_wait_s=SLOT_MAX_WAIT_S,
            log=self._log,
        )

    async def _catalog(self, purpose: Purpose) -> Catalog | Failure:
        if self._config_failure is not None:
            return self._config_failure
        api_key = await self._api_key()
        if api_key is None:
            return not_configured()
        guard = self._key_guard(api_key)
        if isinstance(guard, Failure):
            return guard
        client = IsbndbClient(
            session=self._session,
            base_url=self._settings.base_url,
            api_key=api_key,
            breaker=self._state.breaker,
            guard=guard,
            purpose=purpose,
            clocks=self._env.clocks,
            metrics=self._metrics,
            log=self._log,
        )
        shared = SharedCache(
            self._env.kv(CACHE_BINDING),
            schedule=self._env.wait_until,
            metrics=self._metrics,
            log=self._log,
        )
        return Catalog(
            client=client,
            state=self._state,
            shared=shared,
            settings=self._settings,
            metrics=self._metrics,
        )

    async def _api_key(self) -> str | None:
        key = (await self._env.secret(API_KEY_SECRET) or "").strip()
        # It goes into a header as is: anything but visible ASCII would break the request.
        if not key or not key.isascii() or not key.isprintable() or " " in key:
            return None
        return key

    async def _author(
        self, name: Any, page: Any, page_size: Any, language: Any, purpose: Purpose
    ) -> Outcome:
        clean_name = validation.author_name(name)
        page_no = validation.page(page)
        size = validation.page_size(page_size, maximum=self._settings.max_books_per_author)
        lang = validation.language(language)
        catalog = await self._catalog(purpose)
        if isinstance(catalog, Failure):
            return catalog
        return await catalog.author(clean_name, page_no, size, lang)

    async def _book(self, isbn: Any, purpose: Purpose) -> Outcome:
        isbn13 = validation.isbn(isbn)
        catalog = await self._catalog(purpose)
        if isinstance(catalog, Failure):
            return catalog
        book = await catalog.book(isbn13)
        return not_found(isbn13) if book is None else {"book": book.as_dict()}

    async def _books(self, isbns: Any, purpose: Purpose) -> Outcome:
        batch = validation.isbn_batch(isbns)
        found: list[Any] = []
        missing: list[str] = []
        matches: dict[str, str] = {}
        if batch.valid:
            catalog = await self._catalog(purpose)
            if isinstance(catalog, Failure):
                return catalog
            books, missing, matches = await catalog.books(batch.valid)
            found = [book.as_dict() for book in books]
        return {
            "books": found,
            "matches": matches,
            "notFound": missing,
            "invalid": batch.invalid,
            "requested": len(batch.valid),
        }

    async def _quota(self, api_key: str | None) -> Body:
        """Today's used and left calls from the key guard, or why they are unknown."""
        if api_key is None:
            return {"error": f"{API_KEY_SECRET} is not configured"}
        guard = self._key_guard(api_key)
        if isinstance(guard, Failure):
            return {"error": guard.message}
        try:
            return await guard.usage()
        except GuardRefused as exc:
            return {"error": exc.message}

    async def _health(self) -> Outcome:
        api_key = await self._api_key()
        body: Body = {
            "worker": WORKER,
            "version": VERSION,
            "apiKeyConfigured": api_key is not None,
            "upstream": self._settings.base_url,
            "breaker": self._state.breaker.snapshot(),
            "quota": await self._quota(api_key),
            "sharedCache": self._env.kv(CACHE_BINDING) is not None,
            "refusedUntil": self._refusals.snapshot(self._env.clocks.wall()),
            "bulkLimit": self._settings.bulk_limit,
            "maxBooksPerAuthor": self._settings.max_books_per_author,
        }
        if self._config_failure is not None:
            body["configError"] = self._config_failure.message
        return body

    async def _metrics_body(self) -> Outcome:
        return {
            "worker": WORKER,
            "version": VERSION,
            **self._metrics.snapshot(),
            "breaker": self._state.breaker.snapshot(),
            "refusedUntil": self._refusals.snapshot(self._env.clocks.wall()),
            "cache": {
                "books": self._state.books.snapshot(),
                "notFound": self._state.not_found.snapshot(),
                "authors": self._state.authors.snapshot(),
            },
        }


def _purpose_of(request: Request) -> Purpose:
    return parse_purpose(request.header(PURPOSE_HEADER))


def _render(outcome: Outcome) -> Response:
    return outcome.response() if isinstance(outcome, Failure) else json_response(outcome)


def _routes() -> Router:
    # Handlers are unbound App methods, given the invocation's App by dispatch(request, app),
    # so no route closes over per-request state.
    router = Router()
    router.add("GET", "/author/{name}", App._http_author)
    router.add("GET", "/book/{isbn}", App._http_book)
    router.add("POST", "/books", App._http_books)
    router.add("GET", "/health", App._http_health)
    router.add("GET", "/metrics", App._http_metrics)
    return router


# The route table: immutable once built, so one per module (= per isolate) is shared.
ROUTES = _routes()


def build_app(
    env: WorkerEnv,
    isolate: Isolate,
    *,
    http_factory: Callable[[], httpx.AsyncClient] = httpx.AsyncClient,
) -> App:
    """The app for one invocation: vars from ``env``, long-lived state from ``isolate``."""
    return App(env, isolate, http_factory=http_factory)
