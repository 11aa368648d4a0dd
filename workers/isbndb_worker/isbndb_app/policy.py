"""The key guard's policy: slots at the plan's rate, the daily quota, the warming reserve.

Pure: `decide` is a function of a small `GuardState`, the `Limits`, the caller's purpose,
the time (wall-clock epoch seconds; the UTC day comes from it) and how long the caller will
wait. The Durable Object (guard_object.py) keeps the state in SQLite; nothing here does I/O.

Rate: a slot is a reservation of a start time. A new slot starts no earlier than now, than
the latest slot, and than ``SLOT_SPACING_S`` after the slot ``rate`` places back, so no
1-second window ever holds more than ``rate`` slot starts. The spacing is a hair over one
second (``SLOT_MARGIN_S``) so a caller that starts its call a little late (scheduling,
network) still cannot land ``rate + 1`` calls in one of ISBNdb's seconds. A slot further
away than the caller will wait is refused and not reserved, so nobody holds a slot they
will not use.

Quota: a granted slot counts against the UTC day it starts in (a reservation made just
before midnight for just after counts tomorrow, when ISBNdb counts it). Warming may use the
whole quota; public traffic at most ``daily_quota - warm_reserve`` of it, and neither goes
past the quota, so the reserve is always there for warming.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any, Literal

from bookmeta import Purpose

DAY_S = 86_400.0
SLOT_MARGIN_S = 0.05
SLOT_SPACING_S = 1.0 + SLOT_MARGIN_S


@dataclass(frozen=True, slots=True)
class Limits:
    """The key's plan: requests per second, calls per UTC day, and the part kept for warming."""

    rate_per_s: int
    daily_quota: int
    warm_reserve: int

    @property
    def public_quota(self) -> int:
        """Calls public traffic may make in a day."""
        return max(0, self.daily_quota - self.warm_reserve)


@dataclass(frozen=True, slots=True)
class GuardState:
    """What the guard remembers: the day's counts and the latest slot starts."""

    day: str = ""
    public: int = 0
    warm: int = 0
    slots: tuple[float, ...] = ()  # start times (epoch s) of the latest granted slots

    @property
    def used(self) -> int:
        """Calls granted on ``day``."""
        return self.public + self.warm


@dataclass(frozen=True, slots=True)
class Grant:
    """Call at ``slot_at`` (epoch s), ``wait_s`` from now."""

    slot_at: float
    wait_s: float


@dataclass(frozen=True, slots=True)
class Refusal:
    """No call: ``quota`` until the reset, or ``rate`` (no slot within the caller's wait)."""

    reason: Literal["rate", "quota"]
    retry_after_s: float
    message: str


Decision = Grant | Refusal


def utc_day(t: float) -> str:
    """The UTC date of epoch seconds ``t``, ``YYYY-MM-DD``."""
    return time.strftime("%Y-%m-%d", time.gmtime(t))


def next_utc_midnight(t: float) -> float:
    """Epoch seconds of the first 00:00 UTC after ``t``."""
    return (math.floor(t / DAY_S) + 1) * DAY_S


def next_slot(slots: tuple[float, ...], rate_per_s: int, now: float) -> float:
    """The earliest start keeping every 1-second window at ``rate_per_s`` slots or fewer."""
    start = now
    if slots:
        start = max(start, slots[-1])
        if len(slots) >= rate_per_s:
            start = max(start, slots[-rate_per_s] + SLOT_SPACING_S)
    return start


def _on_day(state: GuardState, day: str) -> GuardState:
    return state if state.day == day else GuardState(day=day, slots=state.slots)


def _quota_left(state: GuardState, limits: Limits, purpose: Purpose) -> int:
    left = limits.daily_quota - state.used
    if purpose is Purpose.PUBLIC:
        left = min(left, limits.public_quota - state.public)
    return max(0, left)


def decide(
    state: GuardState, limits: Limits, purpose: Purpose, now: float, *, max_wait_s: float
) -> tuple[GuardState, Decision]:
    """The guard's answer to one caller, and the state to keep (unchanged on a refusal)."""
    start = next_slot(state.slots, limits.rate_per_s, now)
    wait_s = start - now
    if wait_s > max(0.0, max_wait_s):
        message = f"ISBNdb key busy: the next slot is {wait_s:.2f}s away (waiting {max_wait_s:g}s)"
        return state, Refusal("rate", wait_s, message)
    today = _on_day(state, utc_day(start))
    if _quota_left(today, limits, purpose) < 1:
        share = "daily quota" if purpose is Purpose.WARM else "public share of the daily quota"
        cap = limits.daily_quota if purpose is Purpose.WARM else limits.public_quota
        message = f"ISBNdb {share} ({cap} calls) is spent for {today.day} (UTC)"
        return state, Refusal("quota", next_utc_midnight(start) - now, message)
    public, warm = (1, 0) if purpose is Purpose.PUBLIC else (0, 1)
    granted = replace(
        today,
        public=today.public + public,
        warm=today.warm + warm,
        slots=(*today.slots, start)[-limits.rate_per_s :],
    )
    return granted, Grant(start, wait_s)


def usage_view(state: GuardState, limits: Limits, now: float) -> dict[str, Any]:
    """Today's counts and what is left, per purpose (JSON-able, for /health)."""
    today = _on_day(state, utc_day(now)) if state.day < utc_day(now) else state
    return {
        "day": today.day,
        "ratePerSecond": limits.rate_per_s,
        "dailyQuota": limits.daily_quota,
        "warmReserve": limits.warm_reserve,
        "used": today.used,
        "left": max(0, limits.daily_quota - today.used),
        "public": {"used": today.public, "left": _quota_left(today, limits, Purpose.PUBLIC)},
        "warm": {"used": today.warm, "left": _quota_left(today, limits, Purpose.WARM)},
        "resetsInS": round(next_utc_midnight(now) - now, 3),
    }
