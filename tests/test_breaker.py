import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bookmeta._breaker import (
    BreakerEvent,
    BreakerRegistry,
    BreakerState,
    CircuitBreaker,
    default_is_failure,
)
from bookmeta._clock import FakeClock
from bookmeta._errors import (
    CircuitOpen,
    GuardRefused,
    InvalidInput,
    QuotaExhausted,
    RateLimited,
    UpstreamError,
)

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


async def ok() -> str:
    return "ok"


def raising(exc: BaseException) -> Callable[[], Awaitable[str]]:
    async def fn() -> str:
        raise exc

    return fn


def make(clock: FakeClock, events: list[BreakerEvent] | None = None) -> CircuitBreaker:
    return CircuitBreaker(
        "isbndb",
        failure_threshold=3,
        reset_timeout_s=30.0,
        clock=clock,
        on_change=None if events is None else events.append,
    )


async def fail_n(breaker: CircuitBreaker, n: int, exc: BaseException | None = None) -> None:
    for _ in range(n):
        with pytest.raises(UpstreamError):
            await breaker.call(raising(exc or UpstreamError("isbndb", 503, "down")))


@pytest.mark.parametrize(
    ("exc", "counts"),
    [
        (TimeoutError(), True),
        (httpx.ReadTimeout("slow"), True),
        (UpstreamError("p", None, "connection reset"), True),
        (UpstreamError("p", 500, "boom"), True),
        (UpstreamError("p", 503, "down"), True),
        (RateLimited("p", retry_after_s=1.0), True),
        (UpstreamError("p", 404, "not found"), False),
        (UpstreamError("p", 400, "bad request"), False),
        (ValueError("bug"), False),
        (asyncio.CancelledError(), False),
    ],
    ids=[
        "timeout",
        "httpx-timeout",
        "no-status",
        "500",
        "503",
        "429",
        "404",
        "400",
        "value-error",
        "cancelled",
    ],
)
def test_default_is_failure_classifies(exc: BaseException, counts: bool) -> None:
    """Timeouts, no status, 5xx and 429 count as failures; other 4xx and bugs do not."""
    assert default_is_failure(exc) is counts


async def test_full_cycle_is_reported_through_on_change() -> None:
    """Events run closed -> open -> half_open -> closed with the times they took effect."""
    clock = FakeClock()
    events: list[BreakerEvent] = []
    breaker = make(clock, events)
    await fail_n(breaker, 3)
    assert breaker.state is OPEN
    clock.advance(45)
    assert breaker.state is HALF_OPEN
    assert await breaker.call(ok) == "ok"
    assert breaker.state is CLOSED
    assert [(e.old, e.new, e.at) for e in events] == [
        (CLOSED, OPEN, 0.0),
        (OPEN, HALF_OPEN, 30.0),
        (HALF_OPEN, CLOSED, 45.0),
    ]
    assert {e.name for e in events} == {"isbndb"}


async def test_open_breaker_fails_fast_without_calling() -> None:
    """An open breaker raises CircuitOpen with the remaining time and never calls fn."""
    clock = FakeClock()
    breaker = make(clock)
    await fail_n(breaker, 3)
    clock.advance(10)
    called = False

    async def fn() -> str:
        nonlocal called
        called = True
        return "x"

    with pytest.raises(CircuitOpen) as info:
        await breaker.call(fn)
    assert not called
    assert info.value.name == "isbndb"
    assert info.value.retry_after_s == 20.0


async def test_fewer_failures_than_threshold_keep_it_closed() -> None:
    """Two failures with a threshold of three leave the breaker closed."""
    breaker = make(FakeClock())
    await fail_n(breaker, 2)
    assert breaker.state is CLOSED
    assert breaker.failures == 2


async def test_success_resets_the_failure_streak() -> None:
    """A success between failures ends the streak, so failures must be consecutive."""
    breaker = make(FakeClock())
    await fail_n(breaker, 2)
    await breaker.call(ok)
    await fail_n(breaker, 2)
    assert breaker.state is CLOSED


async def test_404_does_not_trip() -> None:
    """Any number of 404s leaves the breaker closed; the error still reaches the caller."""
    breaker = make(FakeClock())
    for _ in range(10):
        with pytest.raises(UpstreamError):
            await breaker.call(raising(UpstreamError("isbndb", 404, "not found")))
    assert breaker.state is CLOSED
    assert breaker.failures == 0
    assert breaker.trips == 0


@pytest.mark.parametrize(
    "exc",
    [
        RateLimited("isbndb", retry_after_s=5),
        UpstreamError("isbndb", 502, "bad gateway"),
        TimeoutError(),
        httpx.ConnectTimeout("no answer"),
    ],
    ids=["429", "502", "timeout", "httpx-timeout"],
)
async def test_transient_errors_trip(exc: BaseException) -> None:
    """429, 5xx and timeouts each open the breaker at the threshold."""
    breaker = make(FakeClock())
    for _ in range(3):
        with pytest.raises(type(exc)):
            await breaker.call(raising(exc))
    assert breaker.state is OPEN


async def test_exactly_one_probe_while_half_open() -> None:
    """Concurrent callers during the half-open probe fail fast; only the probe runs."""
    clock = FakeClock()
    breaker = make(clock)
    await fail_n(breaker, 3)
    clock.advance(30)
    gate = asyncio.Event()
    probes = 0

    async def probe() -> str:
        nonlocal probes
        probes += 1
        await gate.wait()
        return "ok"

    tasks = [asyncio.create_task(breaker.call(probe)) for _ in range(20)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert probes == 1
    assert results.count("ok") == 1
    rejected = [r for r in results if isinstance(r, CircuitOpen)]
    assert len(rejected) == 19
    assert all(r.retry_after_s == 0.0 for r in rejected)
    assert breaker.state is CLOSED


async def test_failed_probe_reopens_and_restarts_timer() -> None:
    """A failing probe reopens the breaker and the reset timeout starts again."""
    clock = FakeClock()
    events: list[BreakerEvent] = []
    breaker = make(clock, events)
    await fail_n(breaker, 3)
    clock.advance(30)
    await fail_n(breaker, 1)
    assert breaker.state is OPEN
    assert breaker.trips == 2
    clock.advance(29)
    assert breaker.state is OPEN
    clock.advance(1)
    assert breaker.state is HALF_OPEN
    assert [(e.old, e.new) for e in events] == [
        (CLOSED, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, OPEN),
        (OPEN, HALF_OPEN),
    ]


async def test_cancelled_probe_frees_the_probe_slot() -> None:
    """A probe cancelled mid-flight neither closes nor reopens, and frees the slot."""
    clock = FakeClock()
    breaker = make(clock)
    await fail_n(breaker, 3)
    clock.advance(30)
    task = asyncio.create_task(breaker.call(raising(asyncio.CancelledError())))
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.state is HALF_OPEN
    assert await breaker.call(ok) == "ok"
    assert breaker.state is CLOSED


@pytest.mark.parametrize(
    "refusal",
    [
        GuardRefused("isbndb", "rate", "no slot", retry_after_s=2.0),
        QuotaExhausted("isbndb", retry_after_s=3600.0),
    ],
    ids=["rate", "quota"],
)
async def test_guard_refusal_records_no_outcome(refusal: GuardRefused) -> None:
    """A call our own guard refused proves nothing: no failure, no success, probe slot freed."""
    clock = FakeClock()
    breaker = make(clock)
    await fail_n(breaker, 2)
    with pytest.raises(GuardRefused):
        await breaker.call(raising(refusal))
    assert breaker.failures == 2  # the streak neither grew nor ended
    await fail_n(breaker, 1)
    clock.advance(30)
    with pytest.raises(GuardRefused):
        await breaker.call(raising(refusal))
    assert breaker.state is HALF_OPEN  # the probe was not spent on a call that never ran
    assert await breaker.call(ok) == "ok"
    assert breaker.state is CLOSED


async def test_404_probe_closes_the_breaker() -> None:
    """A half-open probe answered with a 404 proves the upstream is up and closes it."""
    clock = FakeClock()
    breaker = make(clock)
    await fail_n(breaker, 3)
    clock.advance(30)
    with pytest.raises(UpstreamError):
        await breaker.call(raising(UpstreamError("isbndb", 404, "not found")))
    assert breaker.state is CLOSED


async def test_trips_counts_each_opening() -> None:
    """trips increments every time the breaker opens."""
    clock = FakeClock()
    breaker = make(clock)
    for expected in (1, 2, 3):
        await fail_n(breaker, 3)
        assert breaker.trips == expected
        clock.advance(30)
        await breaker.call(ok)


def test_explicit_record_api() -> None:
    """record_failure/record_success/allow drive the same state machine without call()."""
    clock = FakeClock()
    breaker = make(clock)
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert not breaker.allow()
    clock.advance(30)
    assert breaker.allow()
    assert not breaker.allow()
    breaker.record_success()
    assert breaker.state is CLOSED
    assert breaker.allow()


def test_release_returns_an_unused_probe_slot() -> None:
    """release() lets the next caller probe after a claimed slot goes unused."""
    clock = FakeClock()
    breaker = make(clock)
    for _ in range(3):
        breaker.record_failure()
    clock.advance(30)
    assert breaker.allow()
    breaker.release()
    assert breaker.allow()


def test_late_outcomes_while_open_are_ignored() -> None:
    """Results of calls admitted before the breaker opened do not change an open breaker."""
    clock = FakeClock()
    breaker = make(clock)
    for _ in range(3):
        breaker.record_failure()
    clock.advance(10)
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is OPEN
    assert breaker.trips == 1
    assert breaker.retry_after_s == 20.0


class Gated:
    """A call held until ``release``, then failing or succeeding."""

    def __init__(self, exc: BaseException | None = None) -> None:
        self.gate = asyncio.Event()
        self.exc = exc

    async def __call__(self) -> str:
        await self.gate.wait()
        if self.exc is not None:
            raise self.exc
        return "ok"


async def test_a_stale_failure_does_not_cancel_a_healthy_probe() -> None:
    """A call admitted while CLOSED failing during the probe neither reopens nor counts."""
    clock = FakeClock()
    breaker = make(clock)
    straggler = Gated(UpstreamError("isbndb", 503, "down"))
    late = asyncio.ensure_future(breaker.call(straggler))
    await asyncio.sleep(0)
    await fail_n(breaker, 3)
    clock.advance(30)
    probe = Gated()
    probing = asyncio.ensure_future(breaker.call(probe))
    await asyncio.sleep(0)
    straggler.gate.set()
    with pytest.raises(UpstreamError):
        await late
    assert (breaker.state, breaker.trips) == (HALF_OPEN, 1)
    probe.gate.set()
    assert await probing == "ok"
    assert (breaker.state, breaker.trips, breaker.failures) == (CLOSED, 1, 0)


async def test_a_stale_success_does_not_close_a_half_open_breaker() -> None:
    """Only the probe's outcome decides HALF_OPEN: an older call's success is ignored."""
    clock = FakeClock()
    breaker = make(clock)
    straggler = Gated()
    late = asyncio.ensure_future(breaker.call(straggler))
    await asyncio.sleep(0)
    await fail_n(breaker, 3)
    clock.advance(30)
    probe = Gated(UpstreamError("isbndb", 503, "still down"))
    probing = asyncio.ensure_future(breaker.call(probe))
    await asyncio.sleep(0)
    straggler.gate.set()
    assert await late == "ok"
    assert breaker.state is HALF_OPEN
    probe.gate.set()
    with pytest.raises(UpstreamError):
        await probing
    assert (breaker.state, breaker.trips) == (OPEN, 2)


async def test_failures_from_before_a_recovery_do_not_count_after_it() -> None:
    """Calls admitted before the breaker opened and closed again do not feed the new streak."""
    clock = FakeClock()
    breaker = make(clock)
    stragglers = [Gated(UpstreamError("isbndb", 503, "down")) for _ in range(3)]
    late = [asyncio.ensure_future(breaker.call(g)) for g in stragglers]
    await asyncio.sleep(0)
    await fail_n(breaker, 3)
    clock.advance(30)
    await breaker.call(ok)  # the probe closes it
    for gated in stragglers:
        gated.gate.set()
    for task in late:
        with pytest.raises(UpstreamError):
            await task
    assert (breaker.state, breaker.failures, breaker.trips) == (CLOSED, 0, 1)


def test_snapshot_is_json_able() -> None:
    """snapshot() reports state, counters and retry time as plain JSON values."""
    clock = FakeClock()
    breaker = make(clock)
    for _ in range(3):
        breaker.record_failure()
    clock.advance(5)
    snap = breaker.snapshot()
    assert json.loads(json.dumps(snap)) == snap
    assert snap == {
        "name": "isbndb",
        "state": "open",
        "failures": 3,
        "trips": 1,
        "failure_threshold": 3,
        "reset_timeout_s": 30.0,
        "retry_after_s": 25.0,
        "probe_in_flight": False,
    }


def test_custom_is_failure_policy() -> None:
    """A custom is_failure decides what counts."""
    breaker = CircuitBreaker("x", failure_threshold=1, is_failure=lambda e: isinstance(e, KeyError))
    assert breaker.is_failure(KeyError("k"))
    assert not breaker.is_failure(TimeoutError())


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [({"failure_threshold": 0}, "failure_threshold"), ({"reset_timeout_s": -1}, "reset_timeout_s")],
    ids=["threshold", "timeout"],
)
def test_invalid_settings_raise_invalid_input(kwargs: dict[str, float], param: str) -> None:
    """Out-of-range settings raise InvalidInput naming the parameter."""
    with pytest.raises(InvalidInput) as info:
        CircuitBreaker("x", **kwargs)  # type: ignore[arg-type]
    assert info.value.param == param


def test_registry_gives_one_breaker_per_name() -> None:
    """get() returns the same breaker for a name, built with the registry's defaults."""
    clock = FakeClock()
    events: list[BreakerEvent] = []
    registry = BreakerRegistry(
        failure_threshold=1, reset_timeout_s=5.0, clock=clock, on_change=events.append
    )
    isbndb = registry.get("isbndb")
    assert registry.get("isbndb") is isbndb
    assert registry.get("openlibrary") is not isbndb
    isbndb.record_failure()
    assert events == [BreakerEvent("isbndb", CLOSED, OPEN, 0.0)]
    assert registry.names() == ["isbndb", "openlibrary"]
    snap = registry.snapshot()
    assert snap["isbndb"]["state"] == "open"
    assert snap["openlibrary"]["state"] == "closed"
    assert json.loads(json.dumps(snap)) == snap


def test_registries_do_not_share_breakers() -> None:
    """Two registries hold independent breakers (no module-level state)."""
    first, second = BreakerRegistry(failure_threshold=1), BreakerRegistry(failure_threshold=1)
    first.get("p").record_failure()
    assert second.get("p").state is CLOSED


@st.composite
def operations(draw: st.DrawFn) -> list[tuple[str, float]]:
    ops = st.one_of(
        st.tuples(st.just("success"), st.just(0.0)),
        st.tuples(st.just("failure"), st.just(0.0)),
        st.tuples(st.just("advance"), st.floats(min_value=0, max_value=40)),
        st.tuples(st.just("allow"), st.just(0.0)),
    )
    return draw(st.lists(ops, max_size=60))


@settings(max_examples=300, deadline=None)
@given(threshold=st.integers(min_value=1, max_value=5), ops=operations())
def test_breaker_invariants_hold_over_random_histories(
    threshold: int, ops: list[tuple[str, float]]
) -> None:
    """Over random success/failure/advance/allow histories the breaker's invariants hold."""
    clock = FakeClock()
    events: list[BreakerEvent] = []
    breaker = CircuitBreaker(
        "p", failure_threshold=threshold, reset_timeout_s=30.0, clock=clock, on_change=events.append
    )
    streak = 0  # consecutive failures counted since the last close or success
    for op, amount in ops:
        before = breaker.state
        if op == "success":
            breaker.record_success()
            if before is not OPEN:
                streak = 0
        elif op == "failure":
            breaker.record_failure()
            if before is not OPEN:
                streak += 1
        elif op == "advance":
            clock.advance(amount)
        else:
            breaker.allow()
        state = breaker.state
        if state is OPEN:
            assert streak >= threshold
            assert 0 < breaker.retry_after_s <= 30.0
        if state is CLOSED:
            assert breaker.failures < threshold
        assert breaker.trips == sum(e.new is OPEN for e in events)
    for prev, nxt in itertools.pairwise(events):
        assert prev.new is nxt.old
        assert prev.at <= nxt.at
    allowed = {(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, OPEN), (HALF_OPEN, CLOSED)}
    assert all((e.old, e.new) in allowed for e in events)
