"""Runtime glue of the cache warmer: HTTP, queue and cron handlers delegate to warmer_app."""

from workers import DurableObject, WorkerEntrypoint

from bookmeta.runtime import (
    RuntimeEnv,
    SqlBinding,
    read_batch,
    read_request,
    to_python,
    to_runtime_response,
)
from warmer_app import Isolate, LibraryJobObject, build_app

_ISOLATE = Isolate()  # per-isolate metrics (no I/O, no randomness)


class LibraryJob(DurableObject):
    """One library's job: units, leases, results, counts (warmer_app/job_object.py)."""

    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self._job = LibraryJobObject(SqlBinding(ctx.storage.sql), RuntimeEnv(env, ctx))

    async def create(self, state, units):
        return self._job.create(to_python(state), to_python(units))

    async def state(self):
        return self._job.state()

    async def claim(self, n, holder, lease_s):
        return self._job.claim(n, holder, lease_s)

    async def release(self, n, holder, progress, due_in_s, stop, detail):
        return self._job.release(n, holder, to_python(progress), due_in_s, stop, detail)

    async def finish(self, n, result):
        return self._job.finish(n, to_python(result))

    async def fail(self, n, reason):
        return self._job.fail(n, reason)

    async def due(self, limit, now_too):
        return self._job.due(limit, now_too)

    async def redriven(self, units, after_s):
        return self._job.redriven(to_python(units), after_s)

    async def requeue_failures(self, chunk_size):
        return self._job.requeue_failures(chunk_size)

    async def grow(self, units, requeued):
        return self._job.grow(to_python(units), requeued)

    async def units(self):
        return self._job.units()

    async def set_verify(self, report, cursor):
        return self._job.set_verify(to_python(report), cursor)


class Default(WorkerEntrypoint):
    def _app(self):
        return build_app(RuntimeEnv(self.env, self.ctx), _ISOLATE)

    async def fetch(self, request):
        return to_runtime_response(await self._app().handle(await read_request(request)))

    async def queue(self, batch, env, ctx):
        await self._app().queue(*read_batch(batch))

    async def scheduled(self, controller, env, ctx):
        await self._app().scheduled(str(controller.cron), float(controller.scheduledTime))
