"""The key guard's pure policy: rate slots, daily quota, warming reserve, day rollover."""

from __future__ import annotations

import bisect

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bookmeta import Purpose
from isbndb_app.policy import (
    SLOT_SPACING_S,
    Grant,
    GuardState,
    Limits,
    Refusal,
    decide,
    next_slot,
    next_utc_midnight,
    usage_view,
    utc_day,
)

PUBLIC, WARM = Purpose.PUBLIC, Purpose.WARM
NOON = 1_767_268_800.0  # 2026-01-01T12:00:00Z
BASIC = Limits(rate_per_s=1, daily_quota=10, warm_reserve=4)


def run(
    limits: Limits, calls: list[tuple[float, Purpose]], *, max_wait_s: float = 60.0
) -> tuple[GuardState, list[Grant | Refusal]]:
    """Feed (time, purpose) calls through decide, threading the state."""
    state = GuardState()
    out: list[Grant | Refusal] = []
    for now, purpose in calls:
        state, decision = decide(state, limits, purpose, now, max_wait_s=max_wait_s)
        out.append(decision)
    return state, out


def test_utc_day_and_next_midnight() -> None:
    """Days are UTC dates; the reset is the next 00:00 UTC."""
    assert utc_day(NOON) == "2026-01-01"
    assert next_utc_midnight(NOON) == NOON + 12 * 3600
    assert next_utc_midnight(NOON + 12 * 3600) == NOON + 36 * 3600
    assert utc_day(NOON + 12 * 3600) == "2026-01-02"


def test_first_call_goes_at_once_and_the_next_waits_a_slot() -> None:
    """At 1 request/s, back-to-back callers are spaced a hair over a second apart."""
    _, (first, second, third) = run(BASIC, [(NOON, PUBLIC)] * 3)
    assert first == Grant(NOON, 0.0)
    assert isinstance(second, Grant)
    assert isinstance(third, Grant)
    assert second.wait_s == pytest.approx(SLOT_SPACING_S)
    assert third.slot_at == pytest.approx(NOON + 2 * SLOT_SPACING_S)


def test_higher_plans_allow_bursts_up_to_the_rate() -> None:
    """At 3 requests/s, three callers go at once and the fourth waits for the window."""
    limits = Limits(rate_per_s=3, daily_quota=100, warm_reserve=0)
    _, decisions = run(limits, [(NOON, WARM)] * 4)
    waits = [d.wait_s for d in decisions if isinstance(d, Grant)]
    assert waits == [0.0, 0.0, 0.0, pytest.approx(SLOT_SPACING_S)]


def test_a_slot_beyond_the_callers_wait_is_refused_and_not_reserved() -> None:
    """A caller that will not wait that long gets a rate refusal; the slot stays free."""
    state, _ = run(BASIC, [(NOON, PUBLIC)])
    same, refusal = decide(state, BASIC, PUBLIC, NOON + 0.5, max_wait_s=0.25)
    assert isinstance(refusal, Refusal)
    assert refusal.reason == "rate"
    assert refusal.retry_after_s == pytest.approx(SLOT_SPACING_S - 0.5)
    assert same == state
    _, grant = decide(same, BASIC, PUBLIC, NOON + 0.5, max_wait_s=1.0)
    assert isinstance(grant, Grant)
    assert grant.slot_at == pytest.approx(NOON + SLOT_SPACING_S)


def test_public_traffic_cannot_spend_the_warming_reserve() -> None:
    """Public calls stop at quota - reserve; warming goes on to the full quota."""
    calls = [(NOON + 2.0 * i, PUBLIC) for i in range(8)]
    state, decisions = run(BASIC, calls)
    assert [isinstance(d, Grant) for d in decisions] == [True] * 6 + [False] * 2
    refusal = decisions[-1]
    assert isinstance(refusal, Refusal)
    assert refusal.reason == "quota"
    assert "public share" in refusal.message
    assert refusal.retry_after_s == pytest.approx(next_utc_midnight(NOON) - (NOON + 14.0))
    for i in range(5):
        state, decision = decide(state, BASIC, WARM, NOON + 100 + 2 * i, max_wait_s=5)
        assert isinstance(decision, Grant) is (i < 4), i
    assert (state.public, state.warm, state.used) == (6, 4, 10)


def test_warming_may_use_the_whole_quota_and_then_public_gets_nothing() -> None:
    """The reserve is a floor for warming, not a ceiling: warm can spend all of it."""
    state, decisions = run(BASIC, [(NOON + 2.0 * i, WARM) for i in range(11)])
    assert sum(isinstance(d, Grant) for d in decisions) == 10
    _, public = decide(state, BASIC, PUBLIC, NOON + 100, max_wait_s=5)
    assert isinstance(public, Refusal)
    assert public.reason == "quota"


def test_a_new_utc_day_resets_the_counts() -> None:
    """Quota spent today is back at 00:00 UTC; the slot history carries over."""
    state, _ = run(BASIC, [(NOON + 2.0 * i, WARM) for i in range(10)])
    _, refused = decide(state, BASIC, WARM, NOON + 60, max_wait_s=5)
    assert isinstance(refused, Refusal)
    tomorrow = next_utc_midnight(NOON)
    after, grant = decide(state, BASIC, WARM, tomorrow, max_wait_s=5)
    assert isinstance(grant, Grant)
    assert (after.day, after.used) == ("2026-01-02", 1)


def test_a_slot_after_midnight_counts_for_the_next_day() -> None:
    """A reservation starting after 00:00 UTC is counted on the day ISBNdb counts it."""
    limits = Limits(rate_per_s=1, daily_quota=1, warm_reserve=0)
    midnight = next_utc_midnight(NOON)
    state, first = decide(GuardState(), limits, WARM, midnight - 0.5, max_wait_s=5)
    assert isinstance(first, Grant)
    state, second = decide(state, limits, WARM, midnight - 0.4, max_wait_s=5)
    assert isinstance(second, Grant)
    assert second.slot_at >= midnight
    assert (state.day, state.used) == ("2026-01-02", 1)


def test_usage_view_reports_used_and_left_per_purpose() -> None:
    """The view names the day, the limits, and what each purpose may still spend."""
    state, _ = run(BASIC, [(NOON, PUBLIC), (NOON + 2, PUBLIC), (NOON + 4, WARM)])
    view = usage_view(state, BASIC, NOON + 10)
    assert view == {
        "day": "2026-01-01",
        "ratePerSecond": 1,
        "dailyQuota": 10,
        "warmReserve": 4,
        "used": 3,
        "left": 7,
        "public": {"used": 2, "left": 4},
        "warm": {"used": 1, "left": 7},
        "resetsInS": 43190.0,
    }
    tomorrow = usage_view(state, BASIC, next_utc_midnight(NOON) + 1)
    assert (tomorrow["day"], tomorrow["used"], tomorrow["left"]) == ("2026-01-02", 0, 10)


calls_strategy = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=3.0),  # time since the previous call
        st.sampled_from([PUBLIC, WARM]),
        st.floats(min_value=0.0, max_value=8.0),  # how long the caller waits
    ),
    max_size=200,
)


@settings(max_examples=150, deadline=None)
@given(
    calls=calls_strategy,
    rate=st.sampled_from([1, 3, 5]),
    quota=st.integers(min_value=1, max_value=60),
    reserve_share=st.floats(min_value=0.0, max_value=1.0),
)
def test_no_window_over_the_rate_and_no_day_over_the_quota(
    calls: list[tuple[float, Purpose, float]], rate: int, quota: int, reserve_share: float
) -> None:
    """Whatever the arrivals, slot starts never exceed the rate in any 1-second window,
    counts never pass the quota, public never passes its share, and warming is refused
    only once the whole quota is spent."""
    limits = Limits(rate_per_s=rate, daily_quota=quota, warm_reserve=int(quota * reserve_share))
    state = GuardState()
    now = NOON + 12 * 3600 - 120  # two minutes before midnight: the rollover is exercised
    starts: list[float] = []
    for gap, purpose, max_wait in calls:
        now += gap
        before = state
        state, decision = decide(state, limits, purpose, now, max_wait_s=max_wait)
        if isinstance(decision, Grant):
            assert decision.slot_at >= now
            assert decision.wait_s <= max_wait + 1e-9
            starts.append(decision.slot_at)
        else:
            assert state == before
            if decision.reason == "quota" and purpose is WARM:
                slot_day = utc_day(next_slot(before.slots, rate, now))
                assert (before.used if before.day == slot_day else 0) == quota
        assert state.used <= quota
        assert state.public <= limits.public_quota
    for i, start in enumerate(starts):
        assert bisect.bisect_left(starts, start + 1.0) - i <= rate
