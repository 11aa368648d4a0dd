"""books-api-proxy entry: runtime glue only (the app lives in proxy_app)."""

from workers import WorkerEntrypoint

from bookmeta.runtime import EnvMemo, RuntimeEnv, read_request, to_runtime_response
from proxy_app import Isolate, build_app

_ISOLATE = Isolate()  # per-isolate state: breakers, limiters, single-flight, metrics
_ENV = EnvMemo()  # the isolate's bindings and vars, looked up once (the hot path's entry)


class Default(WorkerEntrypoint):
    def _app(self):
        return build_app(RuntimeEnv(self.env, self.ctx, memo=_ENV), _ISOLATE)

    async def fetch(self, request):
        return to_runtime_response(await self._app().handle(await read_request(request)))

    async def search_auto(self, q, max_results, include_translations, lang):
        return await self._app().search_auto(q, max_results, include_translations, lang)

    async def search_isbn(self, isbn):
        return await self._app().search_isbn(isbn)

    async def search_author(self, q, max_results, include_translations, lang):
        return await self._app().search_author(q, max_results, include_translations, lang)

    async def search_title(self, q, max_results, include_translations, lang):
        return await self._app().search_title(q, max_results, include_translations, lang)

    async def warm_isbns(self, isbns):
        return await self._app().warm_isbns(isbns)

    async def cache_status(self, keys):
        return await self._app().cache_status(keys)

    async def health(self):
        return await self._app().health()

    async def metrics(self):
        return await self._app().metrics()
