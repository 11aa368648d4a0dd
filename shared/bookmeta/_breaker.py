"""Circuit breaker per upstream dependency, with half-open derived lazily on read.

No timers: an OPEN breaker reads as HALF_OPEN once ``reset_timeout_s`` has passed on the
injected clock, which suits request-driven Workers where nothing runs between requests.

Outcome classification (``default_is_failure``):

* failures: timeouts, and ``UpstreamError`` with no status, a 5xx, or 429;
* everything else that returns or raises is a success for the breaker. In particular an
  ``UpstreamError`` with another 4xx (a 404 for an unknown ISBN) proves the upstream is up:
  it neither counts as a failure nor trips anything, and like any success it ends a
  failure streak and closes a half-open breaker;
* ``BaseException`` that is not an ``Exception`` (cancellation) and ``GuardRefused`` (our own
  guard refused the call before it was made) are neither: they only free the half-open
  probe slot.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from bookmeta._clock import Clock
from bookmeta._errors import CircuitOpen, GuardRefused, InvalidInput, UpstreamError

T = TypeVar("T")

try:
    import httpx
except ImportError:  # pragma: no cover - httpx is optional for bookmeta
    _TIMEOUT_ERRORS: tuple[type[BaseException], ...] = (TimeoutError,)
else:
    _TIMEOUT_ERRORS = (TimeoutError, httpx.TimeoutException)


def default_is_failure(exc: BaseException) -> bool:
    """Return True for transient upstream trouble: timeouts, no status, 5xx, 429."""
    if isinstance(exc, _TIMEOUT_ERRORS):  # asyncio.TimeoutError is TimeoutError on 3.11+
        return True
    if isinstance(exc, UpstreamError):
        return exc.status is None or exc.status >= 500 or exc.status == 429
    return False


class BreakerState(StrEnum):
    """State of a circuit breaker."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerEvent:
    """A state change of breaker ``name``; ``at`` is the clock time it took effect."""

    name: str
    old: BreakerState
    new: BreakerState
    at: float


class CircuitBreaker:
    """Fail fast on a dependency after ``failure_threshold`` consecutive failures.

    CLOSED -> OPEN after ``failure_threshold`` consecutive failures. OPEN raises
    ``CircuitOpen`` without calling. After ``reset_timeout_s`` the breaker reads HALF_OPEN
    and admits exactly one probe; concurrent callers meanwhile get ``CircuitOpen``. The
    probe's success closes the breaker; its failure reopens it and restarts the timer.

    Every state change starts a new generation. ``call`` reports an outcome with the
    generation its call was admitted in, and an outcome from an earlier generation is ignored:
    a call admitted while CLOSED that fails (or succeeds) after the breaker opened, went
    HALF_OPEN or closed again neither reopens the breaker, cancels the probe, closes it
    without a probe, nor feeds the next failure streak. Outcomes reported while OPEN are
    ignored too.

    Args:
        name: the dependency, used in events, errors and snapshots.
        failure_threshold: consecutive failures that open the breaker (>= 1).
        reset_timeout_s: seconds an open breaker waits before admitting a probe (>= 0).
        clock: monotonic seconds.
        on_change: called with a ``BreakerEvent`` after every state change.
        is_failure: classifies an exception raised inside ``call``.

    Raises:
        InvalidInput: if ``failure_threshold`` or ``reset_timeout_s`` is out of range.
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 3,
        reset_timeout_s: float = 60.0,
        clock: Clock = time.monotonic,
        on_change: Callable[[BreakerEvent], None] | None = None,
        is_failure: Callable[[BaseException], bool] = default_is_failure,
    ) -> None:
        if failure_threshold < 1:
            raise InvalidInput("failure_threshold", f"must be >= 1, got {failure_threshold}")
        if reset_timeout_s < 0:
            raise InvalidInput("reset_timeout_s", f"must be >= 0, got {reset_timeout_s}")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self.is_failure = is_failure
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._trips = 0
        self._opened_at = 0.0
        self._probing = False
        self._generation = 0

    @property
    def state(self) -> BreakerState:
        """Current state; an expired OPEN becomes HALF_OPEN here, on read."""
        if (
            self._state is BreakerState.OPEN
            and self._clock() - self._opened_at >= self.reset_timeout_s
        ):
            self._transition(BreakerState.HALF_OPEN, at=self._opened_at + self.reset_timeout_s)
        return self._state

    @property
    def generation(self) -> int:
        """The number of state changes so far; a call's outcome counts only in its own."""
        _ = self.state  # an expired OPEN turns HALF_OPEN (a new generation) on read
        return self._generation

    @property
    def failures(self) -> int:
        """Consecutive failures since the breaker last closed or saw a success."""
        return self._failures

    @property
    def trips(self) -> int:
        """How many times the breaker has gone to OPEN (including reopen after a probe)."""
        return self._trips

    @property
    def retry_after_s(self) -> float:
        """Seconds until an open breaker admits a probe; 0.0 unless OPEN."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self.reset_timeout_s - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """Return True if a call may go ahead now; in HALF_OPEN this claims the one probe.

        A caller that gets True must report the outcome with ``record_success`` or
        ``record_failure`` (or ``release`` if it never made the call), passing the
        ``generation`` read right after ``allow`` so a late outcome is ignored.
        """
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def _stale(self, generation: int | None) -> bool:
        return generation is not None and generation != self.generation

    def release(self, *, generation: int | None = None) -> None:
        """Give back a probe slot claimed by ``allow`` without reporting an outcome."""
        if not self._stale(generation):
            self._probing = False

    def record_success(self, *, generation: int | None = None) -> None:
        """Report a healthy upstream: end the failure streak; a half-open breaker closes.

        Ignored while OPEN, and when ``generation`` (the call's) is not the current one.
        """
        state = self.state
        if state is BreakerState.OPEN or self._stale(generation):
            return
        self._failures = 0
        if state is BreakerState.HALF_OPEN:
            self._probing = False
            self._transition(BreakerState.CLOSED, at=self._clock())

    def record_failure(self, *, generation: int | None = None) -> None:
        """Report a failure: a half-open breaker reopens; a closed one opens at the threshold.

        Ignored while OPEN, and when ``generation`` (the call's) is not the current one.
        """
        state = self.state
        if state is BreakerState.OPEN or self._stale(generation):
            return
        self._failures += 1
        if state is BreakerState.HALF_OPEN or self._failures >= self.failure_threshold:
            self._probing = False
            self._open()

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Await ``fn()`` through the breaker and record its outcome.

        Raises:
            CircuitOpen: without calling ``fn`` when OPEN, or HALF_OPEN with a probe in
                flight (``retry_after_s`` is then 0.0: the probe's outcome is unknown).
            BaseException: whatever ``fn`` raises, after classifying it with ``is_failure``.
        """
        if not self.allow():
            raise CircuitOpen(self.name, self.retry_after_s)
        generation = self._generation  # allow() has read the state: this is the call's
        try:
            result = await fn()
        except BaseException as exc:
            if self.is_failure(exc):
                self.record_failure(generation=generation)
            elif isinstance(exc, Exception) and not isinstance(exc, GuardRefused):
                self.record_success(generation=generation)
            else:
                self.release(generation=generation)
            raise
        self.record_success(generation=generation)
        return result

    def snapshot(self) -> dict[str, Any]:
        """JSON-able view for /health and /metrics."""
        state = self.state
        return {
            "name": self.name,
            "state": state.value,
            "failures": self._failures,
            "trips": self._trips,
            "failure_threshold": self.failure_threshold,
            "reset_timeout_s": self.reset_timeout_s,
            "retry_after_s": self.retry_after_s,
            "probe_in_flight": self._probing,
        }

    def _open(self) -> None:
        now = self._clock()
        self._opened_at = now
        self._trips += 1
        self._transition(BreakerState.OPEN, at=now)

    def _transition(self, new: BreakerState, *, at: float) -> None:
        old, self._state = self._state, new
        if old is not new:
            self._generation += 1
        if self._on_change is not None and old is not new:
            self._on_change(BreakerEvent(self.name, old, new, at))


class BreakerRegistry:
    """One ``CircuitBreaker`` per named dependency, created on first ``get``.

    The keyword arguments are the defaults for every breaker it creates.
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        reset_timeout_s: float = 60.0,
        clock: Clock = time.monotonic,
        on_change: Callable[[BreakerEvent], None] | None = None,
        is_failure: Callable[[BaseException], bool] = default_is_failure,
    ) -> None:
        self._make = functools.partial(
            CircuitBreaker,
            failure_threshold=failure_threshold,
            reset_timeout_s=reset_timeout_s,
            clock=clock,
            on_change=on_change,
            is_failure=is_failure,
        )
        self._make("settings check")  # refuse bad settings now, not at the first get()
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, name: str) -> CircuitBreaker:
        """Return the breaker for ``name``, creating it with the registry's defaults."""
        breaker = self._breakers.get(name)
        if breaker is None:
            breaker = self._breakers[name] = self._make(name)
        return breaker

    def names(self) -> list[str]:
        """Names of the breakers created so far, sorted."""
        return sorted(self._breakers)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """JSON-able snapshots of every breaker, keyed by name."""
        return {name: self._breakers[name].snapshot() for name in sorted(self._breakers)}
