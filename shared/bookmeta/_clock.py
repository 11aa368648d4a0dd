"""Injected time: clock and sleep types, production defaults, and a fake for tests.

Monotonic time (``monotonic``) measures in-isolate intervals; wall-clock epoch seconds
(``wall_clock``) are for anything persisted, such as KV expiry stamps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeAlias

Clock: TypeAlias = Callable[[], float]
Sleep: TypeAlias = Callable[[float], Awaitable[None]]

monotonic: Clock = time.monotonic
wall_clock: Clock = time.time
sleep: Sleep = asyncio.sleep


class FakeClock:
    """A manual clock: call it for the time, ``advance`` it, or ``await sleep(s)``.

    ``sleep`` moves time forward instantly and records the delay in ``sleeps``, so one
    instance stands in for both ``clock=`` and ``sleep=``. It does not yield to the event
    loop: each sleeper wakes before anyone else runs, which keeps time consistent.
    """

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (negative values are refused)."""
        if seconds < 0:
            raise ValueError(f"cannot move a clock backwards by {seconds}s")
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        """Record ``seconds`` and advance by it; never sleeps for real."""
        self.sleeps.append(seconds)
        self.advance(max(seconds, 0.0))
