"""ISBNdb worker entry point: runtime glue only (the app lives in isbndb_app)."""

from workers import DurableObject, WorkerEntrypoint

from bookmeta.runtime import RuntimeEnv, SqlBinding, read_request, to_runtime_response
from isbndb_app import Isolate, KeyGuardObject, build_app

_ISOLATE = Isolate()  # per-isolate state: breaker, LRU caches, known refusals, metrics


class IsbndbKeyGuard(DurableObject):
    """The key guard: one object per ISBNdb key (isbndb_app/guard_object.py)."""

    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self._guard = KeyGuardObject(SqlBinding(ctx.storage.sql), RuntimeEnv(env, ctx))

    async def take(self, purpose, max_wait_ms):
        return self._guard.take(purpose, max_wait_ms)

    async def usage(self):
        return self._guard.usage()


class Default(WorkerEntrypoint):
    def _app(self):
        return build_app(RuntimeEnv(self.env, self.ctx), _ISOLATE)

    async def fetch(self, request):
        return to_runtime_response(await self._app().handle(await read_request(request)))

    async def author(self, name, page=None, page_size=None, language=None, purpose=None):
        return await self._app().author(name, page, page_size, language, purpose)

    async def book(self, isbn, purpose=None):
        return await self._app().book(isbn, purpose)

    async def books(self, isbns, purpose=None):
        return await self._app().books(isbns, purpose)

    async def health(self):
        return await self._app().health()

    async def metrics(self):
        return await self._app().metrics()
