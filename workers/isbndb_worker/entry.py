"""ISBNdb worker entry point: runtime glue only (the app lives in isbndb_app)."""

from workers import WorkerEntrypoint

from bookmeta.runtime import RuntimeEnv, read_request, to_runtime_response
from isbndb_app import Isolate, build_app

_ISOLATE = Isolate()  # per-isolate state: breaker, rate limiter, LRU caches, metrics


class Default(WorkerEntrypoint):
    def _app(self):
        return build_app(RuntimeEnv(self.env, self.ctx), _ISOLATE)

    async def fetch(self, request):
        return to_runtime_response(await self._app().handle(await read_request(request)))

    async def author(self, name, page=None, page_size=None, language=None):
        return await self._app().author(name, page, page_size, language)

    async def book(self, isbn):
        return await self._app().book(isbn)

    async def books(self, isbns):
        return await self._app().books(isbns)

    async def health(self):
        return await self._app().health()

    async def metrics(self):
        return await self._app().metrics()
