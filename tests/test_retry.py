import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable

import httpx
import pytest

from bookmeta._clock import FakeClock
from bookmeta._errors import (
    GuardRefused,
    InvalidInput,
    QuotaExhausted,
    RateLimited,
    UpstreamError,
)
from bookmeta._retry import (
    RetryEvent,
    RetryPolicy,
    default_is_retryable,
    is_testing,
    retry,
    testing_mode,
)

NO_JITTER = RetryPolicy(attempts=5, wait_jitter_s=0.0)


def flaky(
    errors: list[Exception], result: str = "ok"
) -> tuple[Callable[[], Awaitable[str]], list[int]]:
    """Return fn raising each of ``errors`` in turn, then ``result``; and a call counter."""
    calls = [0]

    async def fn() -> str:
        calls[0] += 1
        if errors:
            raise errors.pop(0)
        return result

    return fn, calls


def down(status: int | None = 503) -> UpstreamError:
    return UpstreamError("isbndb", status, "down")


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [
        (TimeoutError(), True),
        (httpx.ReadTimeout("slow"), True),
        (down(None), True),
        (down(500), True),
        (RateLimited("isbndb"), True),
        (down(404), False),
        (down(401), False),
        (ValueError("bug"), False),
        (asyncio.CancelledError(), False),
        (GuardRefused("isbndb", "rate", "no slot", retry_after_s=2.0), False),
        (QuotaExhausted("isbndb", retry_after_s=3600.0), False),
    ],
    ids=[
        "timeout",
        "httpx-timeout",
        "no-status",
        "500",
        "429",
        "404",
        "401",
        "bug",
        "cancelled",
        "guard-refused",
        "quota-exhausted",
    ],
)
def test_default_is_retryable_classifies(exc: BaseException, retryable: bool) -> None:
    """Timeouts, no status, 5xx and 429 are retryable; other errors are not."""
    assert default_is_retryable(exc) is retryable


async def test_success_on_first_attempt_does_not_sleep() -> None:
    """A call that succeeds at once returns its result without waiting."""
    clock = FakeClock()
    fn, calls = flaky([])
    assert await retry(fn, clock=clock, sleep=clock.sleep) == "ok"
    assert calls == [1]
    assert clock.sleeps == []


async def test_retries_until_success() -> None:
    """Transient failures are retried and the eventual result returned."""
    clock = FakeClock()
    fn, calls = flaky([down(), TimeoutError()])
    assert await retry(fn, policy=NO_JITTER, clock=clock, sleep=clock.sleep) == "ok"
    assert calls == [3]


async def test_gives_up_after_attempts_and_raises_last_error() -> None:
    """After policy.attempts failures the last error is raised unchanged."""
    clock = FakeClock()
    last = down(502)
    fn, calls = flaky([down(), down(), last, down()])
    with pytest.raises(UpstreamError) as info:
        await retry(fn, policy=RetryPolicy(attempts=3), clock=clock, sleep=clock.sleep)
    assert info.value is last
    assert calls == [3]
    assert len(clock.sleeps) == 2


async def test_backoff_sequence_is_exponential_and_capped() -> None:
    """Waits grow initial * base**(n-1) plus jitter, capped at wait_max_s."""
    clock = FakeClock()
    policy = RetryPolicy(
        attempts=6, wait_initial_s=0.5, wait_exp_base=2.0, wait_max_s=5.0, wait_jitter_s=0.2
    )
    fn, _ = flaky([down() for _ in range(5)])
    await retry(fn, policy=policy, clock=clock, sleep=clock.sleep, rand=lambda: 0.5)
    assert clock.sleeps == pytest.approx([0.6, 1.1, 2.1, 4.1, 5.0])


async def test_on_retry_receives_one_event_per_retry() -> None:
    """on_retry gets attempt number, wait and error before each sleep."""
    clock = FakeClock()
    events: list[RetryEvent] = []
    first, second = down(500), TimeoutError()
    fn, _ = flaky([first, second])
    await retry(fn, policy=NO_JITTER, clock=clock, sleep=clock.sleep, on_retry=events.append)
    assert events == [RetryEvent(1, 0.2, first), RetryEvent(2, 0.4, second)]


async def test_retry_after_is_honoured_instead_of_backoff() -> None:
    """A RateLimited error's retry_after_s replaces the backoff wait."""
    clock = FakeClock()
    fn, _ = flaky([RateLimited("isbndb", retry_after_s=3.0)])
    await retry(fn, policy=NO_JITTER, clock=clock, sleep=clock.sleep)
    assert clock.sleeps == [3.0]


async def test_retry_after_is_capped() -> None:
    """A Retry-After longer than retry_after_cap_s waits only the cap."""
    clock = FakeClock()
    fn, _ = flaky([RateLimited("isbndb", retry_after_s=600.0)])
    policy = RetryPolicy(retry_after_cap_s=4.0, deadline_s=20.0)
    await retry(fn, policy=policy, clock=clock, sleep=clock.sleep)
    assert clock.sleeps == [4.0]


async def test_rate_limited_without_retry_after_uses_backoff() -> None:
    """A 429 with no Retry-After falls back to the backoff wait."""
    clock = FakeClock()
    fn, _ = flaky([RateLimited("isbndb")])
    await retry(fn, policy=NO_JITTER, clock=clock, sleep=clock.sleep)
    assert clock.sleeps == [0.2]


async def test_retry_after_past_deadline_raises_at_once() -> None:
    """If Retry-After would end past the deadline, the error is raised without sleeping."""
    clock = FakeClock()
    limited = RateLimited("isbndb", retry_after_s=8.0)
    fn, calls = flaky([limited])
    policy = RetryPolicy(retry_after_cap_s=10.0, deadline_s=5.0)
    with pytest.raises(RateLimited) as info:
        await retry(fn, policy=policy, clock=clock, sleep=clock.sleep)
    assert info.value is limited
    assert calls == [1]
    assert clock.sleeps == []


async def test_deadline_is_never_slept_past() -> None:
    """Total time stays within deadline_s even with attempts to spare."""
    clock = FakeClock()
    policy = RetryPolicy(
        attempts=50, wait_initial_s=1.0, wait_max_s=1.0, wait_jitter_s=0.0, deadline_s=3.5
    )

    async def slow_failure() -> str:
        clock.advance(0.5)
        raise TimeoutError

    with pytest.raises(TimeoutError):
        await retry(slow_failure, policy=policy, clock=clock, sleep=clock.sleep)
    assert clock() <= 3.5
    assert clock.sleeps == [1.0, 1.0]


async def test_non_retryable_error_is_raised_at_once() -> None:
    """A 404 is raised on the first attempt without any wait."""
    clock = FakeClock()
    fn, calls = flaky([down(404)])
    with pytest.raises(UpstreamError):
        await retry(fn, clock=clock, sleep=clock.sleep)
    assert calls == [1]
    assert clock.sleeps == []


async def test_custom_is_retryable_policy() -> None:
    """A caller-supplied is_retryable decides what is retried."""
    clock = FakeClock()
    fn, calls = flaky([KeyError("x")])
    result = await retry(
        fn, clock=clock, sleep=clock.sleep, is_retryable=lambda e: isinstance(e, KeyError)
    )
    assert result == "ok"
    assert calls == [2]


async def test_cancellation_is_not_caught() -> None:
    """CancelledError from fn propagates on the first attempt."""
    clock = FakeClock()
    calls = 0

    async def cancelled() -> str:
        nonlocal calls
        calls += 1
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await retry(cancelled, clock=clock, sleep=clock.sleep)
    assert calls == 1


async def test_testing_mode_zeroes_waits_and_restores() -> None:
    """Inside testing_mode() retries happen without sleeping; the setting is restored after."""
    clock = FakeClock()
    events: list[RetryEvent] = []
    fn, calls = flaky([down(), RateLimited("isbndb", retry_after_s=9.0)])
    assert not is_testing()
    with testing_mode():
        assert is_testing()
        assert await retry(fn, clock=clock, sleep=clock.sleep, on_retry=events.append) == "ok"
    assert not is_testing()
    assert calls == [3]
    assert clock.sleeps == []
    assert [e.wait_s for e in events] == [0.0, 0.0]


def test_testing_mode_nests() -> None:
    """Nested testing_mode() blocks restore the enclosing setting, not the default."""
    with testing_mode():
        with testing_mode():
            assert is_testing()
        assert is_testing()
    assert not is_testing()


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"attempts": 0}, "attempts"),
        ({"wait_initial_s": -1.0}, "wait_initial_s"),
        ({"deadline_s": -1.0}, "deadline_s"),
        ({"wait_exp_base": 0.5}, "wait_exp_base"),
    ],
    ids=["attempts", "initial", "deadline", "base"],
)
def test_invalid_policy_raises_invalid_input(kwargs: dict[str, float], param: str) -> None:
    """An out-of-range policy field raises InvalidInput naming it."""
    with pytest.raises(InvalidInput) as info:
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
    assert info.value.param == param


def test_importing_retry_does_not_call_random() -> None:
    """The module draws no random numbers at import time (Workers forbid it at global scope)."""
    code = (
        "import random\n"
        "def refuse(*a, **k):\n"
        "    raise SystemExit('random called at import')\n"
        "random.random = random.uniform = random.randint = refuse\n"
        "import bookmeta._retry\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
