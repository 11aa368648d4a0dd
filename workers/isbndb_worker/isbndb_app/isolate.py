"""Per-isolate state: breaker, caches, refusals known, metrics (no I/O, no randomness).

What must hold across isolates (the key's rate and daily quota) is the key guard's job
(policy.py, a Durable Object); what is kept here only saves work, never allows more.

The entry module makes one `Isolate` at import; the parts that need settings and clocks are
built on first use, from the first invocation's env (the runtime's clocks in production,
the harness's fake clock in tests). The settings parsed from the vars (keyed by the vars'
values; or the ConfigError parsing raised) are kept here too, so a request does not parse
them again.
"""

from __future__ import annotations

from dataclasses import dataclass

from bookmeta import (
    BreakerEvent,
    CircuitBreaker,
    Clocks,
    ConfigError,
    Log,
    Metrics,
    SettingsCache,
    WorkerEnv,
)

from .books import PROVIDER, AuthorPage, Book
from .config import (
    AUTHOR_CACHE_ENTRIES,
    AUTHOR_TTL_S,
    BOOK_CACHE_ENTRIES,
    BOOK_TTL_S,
    BREAKER_FAILURES,
    BREAKER_RESET_S,
    NOT_FOUND_TTL_S,
    VAR_NAMES,
    WORKER,
    Settings,
)
from .keyguard import RefusalMemo
from .lru import LRUCache

AuthorKey = tuple[str, int, int, str | None]


@dataclass(slots=True)
class State:
    """What survives between invocations of one isolate."""

    breaker: CircuitBreaker
    books: LRUCache[str, Book]
    not_found: LRUCache[str, bool]
    authors: LRUCache[AuthorKey, AuthorPage]


class Isolate:
    """Holder of one isolate's state; `state` builds it on first call."""

    def __init__(self) -> None:
        self.metrics = Metrics()
        self.refusals = RefusalMemo()
        self._state: State | None = None
        self._settings = SettingsCache(VAR_NAMES, Settings.from_env)

    def settings(self, env: WorkerEnv) -> Settings | ConfigError:
        """``Settings.from_env(env)`` once per isolate, or the ConfigError it raised."""
        return self._settings.get(env)

    def state(self, settings: Settings, clocks: Clocks) -> State:
        """The isolate's state, built from the first caller's settings and clocks."""
        if self._state is None:
            self._state = State(
                breaker=CircuitBreaker(
                    PROVIDER,
                    failure_threshold=BREAKER_FAILURES,
                    reset_timeout_s=BREAKER_RESET_S,
                    clock=clocks.monotonic,
                    on_change=self._on_breaker_change,
                ),
                books=LRUCache(
                    BOOK_CACHE_ENTRIES, default_ttl_s=BOOK_TTL_S, clock=clocks.monotonic
                ),
                not_found=LRUCache(
                    BOOK_CACHE_ENTRIES, default_ttl_s=NOT_FOUND_TTL_S, clock=clocks.monotonic
                ),
                authors=LRUCache(
                    AUTHOR_CACHE_ENTRIES, default_ttl_s=AUTHOR_TTL_S, clock=clocks.monotonic
                ),
            )
        return self._state

    def _on_breaker_change(self, event: BreakerEvent) -> None:
        self.metrics.incr(f"breaker.{event.new.value}")
        Log(WORKER, "isolate").warning(
            "breaker.change", breaker=event.name, old=event.old.value, new=event.new.value
        )
