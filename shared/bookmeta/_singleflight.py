"""Collapse concurrent identical calls into one in-flight call (Go's singleflight)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """Share one in-flight call per key among concurrent callers; not a cache.

    The first caller for a key starts ``fn()`` in its own task; callers arriving while it
    runs await the same task and get the same result or the same exception. The key is
    freed as soon as the call completes, so the next caller starts a fresh call.

    A caller cancelled while waiting leaves the shared call running for the others (it
    is shielded); the call still completes and frees its key.

    With ``retry_alone`` (True, or a predicate on the exception) a caller that *joined* a
    call which then failed that way runs ``fn()`` once itself. On Workers the shared call
    belongs to the request that started it: if that request is cancelled, its I/O is torn
    down, and the joiners must not inherit that failure. Pass a predicate that is False for
    the app's own errors (upstream failures, partial answers), so outages are not re-asked.
    """

    def __init__(self, *, retry_alone: bool | Callable[[BaseException], bool] = False) -> None:
        self._calls: dict[K, asyncio.Task[V]] = {}
        self._retry_alone = retry_alone

    @property
    def in_flight(self) -> int:
        """Number of keys with a call in flight."""
        return len(self._calls)

    async def do(self, key: K, fn: Callable[[], Awaitable[V]]) -> V:
        """Return ``fn()``'s result, sharing one call with concurrent callers of ``key``.

        Raises:
            BaseException: whatever the shared call raised, to every caller sharing it.
        """
        task = self._calls.get(key)
        if task is None:
            task = asyncio.ensure_future(self._run(key, fn))
            task.add_done_callback(_mark_retrieved)
            self._calls[key] = task
            return await asyncio.shield(task)
        try:
            return await asyncio.shield(task)
        except Exception as exc:
            retry = self._retry_alone(exc) if callable(self._retry_alone) else self._retry_alone
            if not retry:
                raise
        return await fn()

    async def _run(self, key: K, fn: Callable[[], Awaitable[V]]) -> V:
        try:
            return await fn()
        finally:
            # Runs inside the task, before any waiter resumes: a waiter never sees a stale key.
            del self._calls[key]


def _mark_retrieved(task: asyncio.Task[object]) -> None:
    # If every waiter was cancelled, nobody reads the error; silence "never retrieved".
    if not task.cancelled():
        task.exception()
