"""The key's rate and daily quota across isolates: the key guard against per-isolate limiters.

Eight simulated isolates of the isbndb worker (harness `System.sibling()`: each its own entry
module and per-isolate state, all sharing KV and the one Durable Object per key) take
concurrent look-ups from two clients each, one public and one warming, every client sending
a new ``GET /book/{isbn}`` (a distinct ISBN: no cache hit) 0.25 s after its previous answer.
ISBNdb is mocked and stamps each call with the virtual clock; the largest number of calls
in any 1-second window and the day's total are what ISBNdb would count against the key.

Today's design is modelled in the same run with the same arrivals: each isolate spaces its
own calls with `bookmeta.RateLimiter` (RATE_LIMIT_MS, 100 ms as configured, and at best the
plan's interval) and nothing counts the day across isolates, so every look-up is a call.

Time is virtual (`VirtualClock`): a sleeping task parks, and time jumps to the next wake-up
once every task is parked, so concurrency is real (asyncio) and the figures are exact and
repeatable, independent of the machine's speed.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import itertools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import httpx
import respx

from bookmeta import PURPOSE_HEADER, FakeClock, RateLimiter
from harness import System
from harness.system import EPOCH_START

ISOLATES = 8
REQUESTS_PER_CLIENT = 40
THINK_S = 0.25
QUOTA = 60
WARM_RESERVE = 20
PLANS = {"basic": 1, "premium": 3, "pro": 5}
TODAY_RATE_LIMIT_MS = 100  # RATE_LIMIT_MS of the isbndb worker's configs before the key guard
WORKER = "isbndb_worker"
BASE = "https://api2.isbndb.com"


class VirtualClock(FakeClock):
    """Virtual time for concurrent tasks: ``sleep`` parks the caller until the clock reaches
    its wake-up; `run` moves the clock to the earliest wake-up whenever nothing else can run."""

    def __init__(self, now: float) -> None:
        super().__init__(now)
        self._parked: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        wake = asyncio.get_running_loop().create_future()
        heapq.heappush(self._parked, (self.now + seconds, next(self._order), wake))
        await wake

    async def run(self, work: Coroutine[Any, Any, Any]) -> Any:
        """Drive ``work`` (and every task it starts) to completion in virtual time."""
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(work)
        while not task.done():
            await _settle(loop)
            if task.done():
                break
            if not self._parked:
                raise RuntimeError("every task waits on something that is not the clock")
            wake_at, _, wake = heapq.heappop(self._parked)
            self.now = max(self.now, wake_at)
            if not wake.cancelled():
                wake.set_result(None)
        return task.result()


async def _settle(loop: asyncio.AbstractEventLoop) -> None:
    """Yield until no callback is ready: every other task is parked (or done)."""
    for _ in range(1_000_000):
        await asyncio.sleep(0)
        if not loop._ready:  # type: ignore[attr-defined]  # the event loop's run queue
            return
    raise RuntimeError("tasks never settled")


def largest_window(times: list[float], window_s: float = 1.0) -> int:
    """The most calls in any half-open window of ``window_s`` seconds."""
    ordered = sorted(times)
    return max(
        (bisect.bisect_left(ordered, t + window_s) - i for i, t in enumerate(ordered)), default=0
    )


def _isbn(n: int) -> str:
    body = f"979{n:09d}"
    total = sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


Client = Callable[[int, int, int], Awaitable[None]]  # (isolate, client, request number)


async def _offer(clock: VirtualClock, client: Client) -> None:
    """Every client of every isolate: a request, then THINK_S, REQUESTS_PER_CLIENT times."""

    async def stream(isolate: int, lane: int) -> None:
        for n in range(REQUESTS_PER_CLIENT):
            await client(isolate, lane, n)
            await clock.sleep(THINK_S)

    await asyncio.gather(*(stream(i, lane) for i in range(ISOLATES) for lane in (0, 1)))


async def _ours(rate: int) -> dict[str, Any]:
    clock = VirtualClock(EPOCH_START)
    base = System(
        secrets={"ISBNDB_API_KEY": "bench-key"},
        vars={
            WORKER: {
                "ISBNDB_RATE_PER_S": str(rate),
                "ISBNDB_DAILY_QUOTA": str(QUOTA),
                "ISBNDB_WARM_RESERVE": str(WARM_RESERVE),
            }
        },
        clock=clock,
    )
    isolates = [base, *(base.sibling() for _ in range(ISOLATES - 1))]
    calls: list[tuple[float, str]] = []
    answers: dict[str, int] = {}

    def isbndb(request: httpx.Request) -> httpx.Response:
        isbn13 = request.url.path.rsplit("/", 1)[1]
        calls.append((clock(), isbn13))
        return httpx.Response(200, json={"book": {"isbn13": isbn13, "title": "Bench"}})

    async def client(isolate: int, lane: int, n: int) -> None:
        purpose = "public" if lane == 0 else "warm"
        isbn13 = _isbn((isolate * 2 + lane) * 1000 + n)
        resp = await isolates[isolate].fetch(
            WORKER, f"/book/{isbn13}", headers={PURPOSE_HEADER: purpose}
        )
        body = await resp.json()
        key = f"{purpose}.{resp.status}.{body['error']['code'] if resp.status >= 400 else 'ok'}"
        answers[key] = answers.get(key, 0) + 1

    with respx.mock(base_url=BASE, assert_all_mocked=True) as router:
        router.get(path__startswith="/book/").mock(side_effect=isbndb)
        await clock.run(_offer(clock, client))
    times = [t for t, _ in calls]
    health = await (await base.fetch(WORKER, "/health")).json()
    return {
        "calls": len(calls),
        "max_calls_in_1s": largest_window(times),
        "public_calls": health["quota"]["public"]["used"],
        "warm_calls": health["quota"]["warm"]["used"],
        "answers": dict(sorted(answers.items())),
        "guard_requests": len(base.objects.calls),
        "virtual_seconds": round(clock() - EPOCH_START, 1),
    }


async def _today(interval_ms: int) -> dict[str, Any]:
    """Per-isolate spacing only (the design before the key guard), same arrivals."""
    clock = VirtualClock(EPOCH_START)
    limiters = [
        RateLimiter.from_ms(interval_ms, clock=clock, sleep=clock.sleep) for _ in range(ISOLATES)
    ]
    times: list[float] = []

    async def client(isolate: int, lane: int, n: int) -> None:
        await limiters[isolate].acquire()
        times.append(clock())

    await clock.run(_offer(clock, client))
    return {
        "per_isolate_interval_ms": interval_ms,
        "calls": len(times),
        "max_calls_in_1s": largest_window(times),
    }


async def measure() -> dict[str, Any]:
    """Largest 1-second window and the day's calls, per plan, ours against today's design."""
    plans: dict[str, Any] = {}
    for plan, rate in PLANS.items():
        ours = await _ours(rate)
        plans[plan] = {
            "rate_per_s": rate,
            "ours": ours,
            "today_as_configured": await _today(TODAY_RATE_LIMIT_MS),
            "today_at_plan_interval": await _today(round(1000 / rate)),
            "rate_met": ours["max_calls_in_1s"] <= rate,
            "quota_met": ours["calls"] <= QUOTA and ours["public_calls"] <= QUOTA - WARM_RESERVE,
        }
    return {
        "isolates": ISOLATES,
        "clients_per_isolate": 2,
        "requests_offered": ISOLATES * 2 * REQUESTS_PER_CLIENT,
        "think_s": THINK_S,
        "daily_quota": QUOTA,
        "warm_reserve": WARM_RESERVE,
        "plans": plans,
    }
