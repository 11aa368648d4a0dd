import asyncio
import gc

import pytest

from bookmeta._singleflight import SingleFlight


async def test_concurrent_identical_calls_share_one_upstream_call() -> None:
    """100 concurrent callers of one key cause exactly one upstream call."""
    flight: SingleFlight[str, int] = SingleFlight()
    calls = 0
    gate = asyncio.Event()

    async def fetch() -> int:
        nonlocal calls
        calls += 1
        await gate.wait()
        return 42

    tasks = [asyncio.create_task(flight.do("isbn", fetch)) for _ in range(100)]
    await asyncio.sleep(0)
    assert flight.in_flight == 1
    gate.set()
    assert await asyncio.gather(*tasks) == [42] * 100
    assert calls == 1


async def test_different_keys_run_separately() -> None:
    """Callers of different keys do not share a call."""
    flight: SingleFlight[str, str] = SingleFlight()

    async def echo(value: str) -> str:
        await asyncio.sleep(0)
        return value

    results = await asyncio.gather(
        flight.do("a", lambda: echo("a")), flight.do("b", lambda: echo("b"))
    )
    assert list(results) == ["a", "b"]


async def test_error_propagates_to_every_waiter() -> None:
    """When the shared call fails, every waiter gets the same exception object."""
    flight: SingleFlight[str, int] = SingleFlight()
    gate = asyncio.Event()
    boom = RuntimeError("upstream down")

    async def fail() -> int:
        await gate.wait()
        raise boom

    tasks = [asyncio.create_task(flight.do("k", fail)) for _ in range(10)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(r is boom for r in results)
    assert flight.in_flight == 0


async def test_single_waiter_failure_leaves_no_unretrieved_exception() -> None:
    """A failing call with one waiter raises to it and leaves no 'never retrieved' warning."""
    flight: SingleFlight[str, int] = SingleFlight()

    async def fail() -> int:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        await flight.do("k", fail)
    await asyncio.sleep(0)  # let any stray done-callbacks run while warnings are errors


async def test_key_is_freed_after_completion() -> None:
    """After a call completes, the next caller starts a fresh call (not a cache)."""
    flight: SingleFlight[str, int] = SingleFlight()
    calls = 0

    async def fetch() -> int:
        nonlocal calls
        calls += 1
        return calls

    assert await flight.do("k", fetch) == 1
    assert flight.in_flight == 0
    assert await flight.do("k", fetch) == 2


async def test_cancelled_waiter_does_not_cancel_shared_call() -> None:
    """Cancelling one waiter leaves the shared call running for the others."""
    flight: SingleFlight[str, int] = SingleFlight()
    gate = asyncio.Event()

    async def fetch() -> int:
        await gate.wait()
        return 7

    first = asyncio.create_task(flight.do("k", fetch))
    second = asyncio.create_task(flight.do("k", fetch))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    gate.set()
    assert await second == 7
    assert first.cancelled()
    assert flight.in_flight == 0


async def test_failure_after_every_waiter_left_is_not_reported_as_unretrieved() -> None:
    """A shared call that fails after all its waiters were cancelled logs no unretrieved error."""
    loop = asyncio.get_running_loop()
    reports: list[str] = []
    loop.set_exception_handler(lambda _loop, context: reports.append(context["message"]))
    flight: SingleFlight[str, int] = SingleFlight()
    gate = asyncio.Event()

    async def fail_later() -> int:
        await gate.wait()
        raise ValueError("late")

    waiter = asyncio.create_task(flight.do("k", fail_later))
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.sleep(0)
    gate.set()
    for _ in range(3):
        await asyncio.sleep(0)
    assert flight.in_flight == 0
    del waiter
    gc.collect()
    loop.set_exception_handler(None)
    assert reports == []


async def test_joiners_retry_alone_when_the_shared_call_fails() -> None:
    """With retry_alone, a joiner whose shared call failed runs the call once itself."""
    flight: SingleFlight[str, str] = SingleFlight(retry_alone=True)
    gate = asyncio.Event()
    calls = 0

    async def leader() -> str:
        nonlocal calls
        calls += 1
        await gate.wait()
        raise RuntimeError("the starting request was cancelled")

    async def joiner() -> str:
        nonlocal calls
        calls += 1
        return "own result"

    first = asyncio.ensure_future(flight.do("k", leader))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(flight.do("k", joiner))
    await asyncio.sleep(0)
    gate.set()
    with pytest.raises(RuntimeError):
        await first
    assert await second == "own result"
    assert calls == 2


async def test_a_predicate_limits_which_failures_joiners_retry() -> None:
    """Failures the predicate rejects (an app's own answers) are shared, not re-asked."""
    flight: SingleFlight[str, str] = SingleFlight(retry_alone=lambda e: not isinstance(e, KeyError))
    gate = asyncio.Event()
    calls = 0

    async def failing() -> str:
        nonlocal calls
        calls += 1
        await gate.wait()
        raise KeyError("an upstream's answer")

    tasks = [asyncio.ensure_future(flight.do("k", failing)) for _ in range(5)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, KeyError) for r in results)
    assert calls == 1
