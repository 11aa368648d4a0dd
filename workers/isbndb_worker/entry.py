"""ISBNdb worker entry point: runtime glue only (the app lives in isbndb_app)."""

from workers import DurableObject, WorkerEntrypoint

from bookmeta.runtime import (
    RuntimeEnv,
    SqlBinding,
    fetch_client,
    read_request,
    to_runtime_response,
)
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
        return build_app(RuntimeEnv(self.env, self.ctx), _ISOLATE, http_factory=fetch_client)

    async def fetch(self, request):
        return to_runtime_response(await self._app().handle(await read_request(request)))

    # RPC: positional args only, passed on as sent; the app checks their number and values,
    # so a wrong call gets the error dict, never a TypeError.
    async def author(self, *args):
        return await self._app().author(*args)

    async def book(self, *args):
        return await self._app().book(*args)

    async def books(self, *args):
        return await self._app().books(*args)

    async def health(self, *args):
        return await self._app().health(*args)

    async def metrics(self, *args):
        return await self._app().metrics(*args)
