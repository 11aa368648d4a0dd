"""Minimum spacing between calls to one upstream, within one isolate."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bookmeta._clock import Clock, Sleep
from bookmeta._errors import InvalidInput


class RateLimiter:
    """Space acquisitions at least ``min_interval_s`` apart.

    Each ``acquire`` reserves the next free slot synchronously before awaiting, so N
    concurrent callers get slots ``0, i, 2i, ...`` with no lock. A caller cancelled while
    waiting gives up its slot unused (the spacing only errs on the slow side).

    Raises:
        InvalidInput: if ``min_interval_s`` is negative.
    """

    def __init__(
        self,
        min_interval_s: float,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if min_interval_s < 0:
            raise InvalidInput("min_interval_s", f"must be >= 0, got {min_interval_s}")
        self.min_interval_s = min_interval_s
        self._clock = clock
        self._sleep = sleep
        self._next_slot: float | None = None
        self._acquired = 0
        self._waited_s = 0.0

    @classmethod
    def from_ms(
        cls,
        min_interval_ms: float,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> RateLimiter:
        """Build a limiter from an interval in milliseconds (as configured in env vars)."""
        if min_interval_ms < 0:
            raise InvalidInput("min_interval_ms", f"must be >= 0, got {min_interval_ms}")
        return cls(min_interval_ms / 1000.0, clock=clock, sleep=sleep)

    async def acquire(self) -> None:
        """Wait until this caller's slot; returns at once if the interval is 0."""
        self._acquired += 1
        if self.min_interval_s == 0:
            return
        now = self._clock()
        slot = now if self._next_slot is None else max(now, self._next_slot)
        self._next_slot = slot + self.min_interval_s
        wait_s = slot - now
        if wait_s > 0:
            self._waited_s += wait_s
            await self._sleep(wait_s)

    def snapshot(self) -> dict[str, Any]:
        """JSON-able view for /metrics."""
        next_slot_in_s = 0.0
        if self._next_slot is not None:
            next_slot_in_s = max(0.0, self._next_slot - self._clock())
        return {
            "min_interval_s": self.min_interval_s,
            "acquired": self._acquired,
            "waited_s": self._waited_s,
            "next_slot_in_s": next_slot_in_s,
        }
