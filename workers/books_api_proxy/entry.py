"""books-api-proxy entry: runtime glue only (the app lives in proxy_app)."""

from workers import WorkerEntrypoint

from bookmeta.runtime import EnvMemo, RuntimeEnv, fetch_client, read_request, to_runtime_response
from proxy_app import Isolate, build_app

_ISOLATE = Isolate()  # per-isolate state: breakers, limiters, single-flight, metrics
_ENV = EnvMemo()  # the isolate's bindings and vars, looked up once (the hot path's entry)


class Default(WorkerEntrypoint):
    def _app(self):
        env = RuntimeEnv(self.env, self.ctx, memo=_ENV)
        return build_app(env, _ISOLATE, client_factory=fetch_client)

    async def fetch(self, request):
        return to_runtime_response(await self._app().handle(await read_request(request)))

    # RPC: positional args only, passed on as sent; the app checks their number and values,
    # so a wrong call gets the error dict, never a TypeError.
    async def search_auto(self, *args):
        return await self._app().search_auto(*args)

    async def search_isbn(self, *args):
        return await self._app().search_isbn(*args)

    async def search_author(self, *args):
        return await self._app().search_author(*args)

    async def search_title(self, *args):
        return await self._app().search_title(*args)

    async def warm_isbns(self, *args):
        return await self._app().warm_isbns(*args)

    async def cache_status(self, *args):
        return await self._app().cache_status(*args)

    async def sweep_cache(self, *args):
        return await self._app().sweep_cache(*args)

    async def health(self, *args):
        return await self._app().health(*args)

    async def metrics(self, *args):
        return await self._app().metrics(*args)
