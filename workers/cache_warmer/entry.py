"""Runtime glue of the cache warmer: HTTP and cron handlers delegate to warmer_app."""

from workers import WorkerEntrypoint

from bookmeta.runtime import RuntimeEnv, read_request, to_runtime_response
from warmer_app import Isolate, build_app

_ISOLATE = Isolate()  # per-isolate metrics (no I/O, no randomness)


class Default(WorkerEntrypoint):
    def _app(self):
        return build_app(RuntimeEnv(self.env, self.ctx), _ISOLATE)

    async def fetch(self, request):
        return to_runtime_response(await self._app().handle(await read_request(request)))

    async def scheduled(self, controller, env, ctx):
        await self._app().scheduled(str(controller.cron), float(controller.scheduledTime))
