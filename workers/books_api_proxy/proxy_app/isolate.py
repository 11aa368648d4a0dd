"""Per-isolate state: breakers, rate limiters, single-flight and metrics (no I/O, no randomness).

Also what is the same for every request of an isolate: the settings parsed from the vars
(or the ConfigError parsing raised; keyed by the vars' values), and secrets read within the
last ``SECRET_TTL_S``.
Created once by the entry module and shared by every request the isolate serves. Time is
read through ``current_clocks()`` at each use, so tests that install a fake clock drive it
too.
"""

from __future__ import annotations

from typing import Any

from bookmeta import (
    BookmetaError,
    BreakerEvent,
    BreakerRegistry,
    ConfigError,
    Metrics,
    RateLimiter,
    SecretCache,
    SettingsCache,
    SingleFlight,
    TooManyRequests,
    WorkerEnv,
    current_clocks,
)

from .clients import Refusals
from .config import VAR_NAMES, Settings, load_settings

BREAKER_FAILURE_THRESHOLD = 3
BREAKER_RESET_TIMEOUT_S = 30.0
# How long a Secrets Store value is reused before it is read again (a rotated key is used
# within this); /health and every miss would otherwise wait on the store each time.
SECRET_TTL_S = 60.0


def _monotonic() -> float:
    return current_clocks().monotonic()


async def _sleep(seconds: float) -> None:
    await current_clocks().sleep(seconds)


class Isolate:
    """What outlives one request: one breaker and one limiter per provider, in-flight loads."""

    def __init__(
        self,
        *,
        failure_threshold: int = BREAKER_FAILURE_THRESHOLD,
        reset_timeout_s: float = BREAKER_RESET_TIMEOUT_S,
    ) -> None:
        self.metrics = Metrics()
        # Joiners re-run a load only when it died of something other than the app's own
        # errors (partial answers and provider failures are BookmetaError or a search control
        # exception): e.g. the starting request was cancelled and its I/O torn down.
        self.single_flight: SingleFlight[str, Any] = SingleFlight(retry_alone=_torn_down)
        self.breakers = BreakerRegistry(
            failure_threshold=failure_threshold,
            reset_timeout_s=reset_timeout_s,
            clock=_monotonic,
            on_change=self._on_breaker_change,
        )
        self._limiters: dict[str, RateLimiter] = {}
        self._settings = SettingsCache(VAR_NAMES, load_settings)
        self.secrets = SecretCache(ttl_s=SECRET_TTL_S, clock=_monotonic)
        # Callers the per-client limits refused, until their window ends (clients.py).
        self.refusals = Refusals(on_remembered=lambda: self.metrics.incr("limited.remembered"))

    def settings(self, env: WorkerEnv) -> Settings | ConfigError:
        """``load_settings(env)`` once per isolate, or the ConfigError it raised."""
        return self._settings.get(env)

    def limiter(self, provider: str, min_interval_ms: int) -> RateLimiter:
        """The provider's limiter, created on first use with ``min_interval_ms``."""
        limiter = self._limiters.get(provider)
        if limiter is None:
            limiter = RateLimiter.from_ms(min_interval_ms, clock=_monotonic, sleep=_sleep)
            self._limiters[provider] = limiter
        return limiter

    def limiter_snapshot(self) -> dict[str, dict[str, Any]]:
        """JSON-able view of the limiters created so far."""
        return {name: self._limiters[name].snapshot() for name in sorted(self._limiters)}

    def _on_breaker_change(self, event: BreakerEvent) -> None:
        self.metrics.incr(f"breaker.{event.name}.{event.new.value}")


class LoadAnswer(Exception):  # noqa: N818 - not an error: a load's answer, raised past the cache
    """A load that ended with something to serve (e.g. a partial answer), not a failure."""


def _torn_down(exc: BaseException) -> bool:
    """A joiner runs the load itself: the shared one failed for a reason of the runtime (not an
    answer from upstream), or because the caller that started it was over its own limit."""
    return isinstance(exc, TooManyRequests) or not isinstance(exc, BookmetaError | LoadAnswer)
