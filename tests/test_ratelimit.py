import asyncio

import pytest

from bookmeta._clock import FakeClock
from bookmeta._errors import InvalidInput
from bookmeta._ratelimit import RateLimiter


async def test_first_acquire_does_not_wait() -> None:
    """The first acquisition goes through without sleeping."""
    clock = FakeClock()
    limiter = RateLimiter(1.0, clock=clock, sleep=clock.sleep)
    await limiter.acquire()
    assert clock.sleeps == []


async def test_sequential_acquires_are_spaced() -> None:
    """Back-to-back acquisitions wait out the remainder of the interval."""
    clock = FakeClock()
    limiter = RateLimiter(1.0, clock=clock, sleep=clock.sleep)
    await limiter.acquire()
    clock.advance(0.25)
    await limiter.acquire()
    assert clock.sleeps == [0.75]
    assert clock() == 1.0


async def test_no_wait_after_interval_has_passed() -> None:
    """An acquisition after a long pause does not sleep."""
    clock = FakeClock()
    limiter = RateLimiter(1.0, clock=clock, sleep=clock.sleep)
    await limiter.acquire()
    clock.advance(5)
    await limiter.acquire()
    assert clock.sleeps == []


async def test_concurrent_callers_get_evenly_spaced_slots() -> None:
    """N concurrent callers on a frozen clock are given slots 0, i, 2i, ..."""
    clock = FakeClock()
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(0)

    limiter = RateLimiter(0.5, clock=clock, sleep=record)
    await asyncio.gather(*(limiter.acquire() for _ in range(5)))
    assert waits == [0.5, 1.0, 1.5, 2.0]


async def test_concurrent_callers_acquire_at_spaced_times() -> None:
    """With a fake sleep that advances time, acquisitions happen at 0, i, 2i, ..."""
    clock = FakeClock()
    limiter = RateLimiter(0.5, clock=clock, sleep=clock.sleep)
    times: list[float] = []

    async def worker() -> None:
        await limiter.acquire()
        times.append(clock())

    await asyncio.gather(*(worker() for _ in range(4)))
    assert sorted(times) == [0.0, 0.5, 1.0, 1.5]


async def test_zero_interval_never_sleeps() -> None:
    """min_interval_s == 0 never calls sleep."""
    clock = FakeClock()
    limiter = RateLimiter(0, clock=clock, sleep=clock.sleep)
    await asyncio.gather(*(limiter.acquire() for _ in range(10)))
    assert clock.sleeps == []
    assert limiter.snapshot()["acquired"] == 10


def test_from_ms_converts_to_seconds() -> None:
    """from_ms(250) spaces calls 0.25 s apart."""
    assert RateLimiter.from_ms(250).min_interval_s == 0.25


def test_negative_interval_is_invalid_input() -> None:
    """A negative interval raises InvalidInput naming the parameter."""
    with pytest.raises(InvalidInput) as info:
        RateLimiter(-1)
    assert info.value.param == "min_interval_s"


async def test_snapshot_reports_counters() -> None:
    """snapshot() is JSON-able and reports acquisitions, total wait and next slot."""
    clock = FakeClock()
    limiter = RateLimiter(1.0, clock=clock, sleep=clock.sleep)
    await limiter.acquire()
    await limiter.acquire()
    assert limiter.snapshot() == {
        "min_interval_s": 1.0,
        "acquired": 2,
        "waited_s": 1.0,
        "next_slot_in_s": 1.0,
    }
