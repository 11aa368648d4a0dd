"""Retries with capped exponential backoff, Retry-After and an overall deadline (after stamina).

Waits are skipped inside ``testing_mode()``, a context-local switch (a contextvar, so
concurrent tests and requests do not leak it into each other).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

from bookmeta._breaker import default_is_failure
from bookmeta._clock import Clock, Sleep
from bookmeta._errors import InvalidInput, RateLimited

T = TypeVar("T")

_testing: ContextVar[bool] = ContextVar("bookmeta_retry_testing", default=False)


@contextmanager
def testing_mode() -> Iterator[None]:
    """Zero every retry wait inside the block; restores the previous setting on exit."""
    token = _testing.set(True)
    try:
        yield
    finally:
        _testing.reset(token)


# Its name starts with "test": stop pytest collecting it from modules that import it.
testing_mode.__test__ = False  # type: ignore[attr-defined]


def is_testing() -> bool:
    """Return True inside ``testing_mode()``."""
    return _testing.get()


def default_is_retryable(exc: BaseException) -> bool:
    """Return True for transient trouble: timeouts, ``UpstreamError`` with no status/5xx/429.

    The same classification the circuit breaker counts as failure.
    """
    return isinstance(exc, Exception) and default_is_failure(exc)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry.

    Attempt ``n`` (1-based) that fails waits
    ``min(wait_max_s, wait_initial_s * wait_exp_base ** (n - 1) + rand() * wait_jitter_s)``,
    or the provider's Retry-After capped at ``retry_after_cap_s``. No retry starts once
    ``deadline_s`` seconds have passed since the first attempt, and no wait ends past it.
    """

    attempts: int = 3
    wait_initial_s: float = 0.2
    wait_max_s: float = 5.0
    wait_exp_base: float = 2.0
    wait_jitter_s: float = 0.1
    retry_after_cap_s: float = 10.0
    deadline_s: float = 20.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise InvalidInput("attempts", f"must be >= 1, got {self.attempts}")
        for param in (
            "wait_initial_s",
            "wait_max_s",
            "wait_jitter_s",
            "retry_after_cap_s",
            "deadline_s",
        ):
            if getattr(self, param) < 0:
                raise InvalidInput(param, f"must be >= 0, got {getattr(self, param)}")
        if self.wait_exp_base < 1:
            raise InvalidInput("wait_exp_base", f"must be >= 1, got {self.wait_exp_base}")

    def backoff_s(self, attempt: int, jitter: float) -> float:
        """Backoff after failed attempt ``attempt`` (1-based); ``jitter`` is in [0, 1)."""
        exp = self.wait_initial_s * self.wait_exp_base ** (attempt - 1)
        return min(self.wait_max_s, exp + jitter * self.wait_jitter_s)


DEFAULT_POLICY = RetryPolicy()


@dataclass(frozen=True)
class RetryEvent:
    """Attempt ``attempt`` (1-based) failed with ``error``; retrying after ``wait_s``."""

    attempt: int
    wait_s: float
    error: BaseException


async def retry(
    fn: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy = DEFAULT_POLICY,
    is_retryable: Callable[[BaseException], bool] = default_is_retryable,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
    rand: Callable[[], float] = random.random,
    on_retry: Callable[[RetryEvent], None] | None = None,
) -> T:
    """Await ``fn()`` until it succeeds, retrying transient errors per ``policy``.

    A ``RateLimited`` error with ``retry_after_s`` waits that long (capped at
    ``policy.retry_after_cap_s``) instead of the backoff.

    Raises:
        Exception: the last error, unchanged, when it is not retryable, the attempts are
            used up, or the next wait would end past the deadline (raised at once, without
            sleeping). ``BaseException`` such as cancellation is never caught.
    """
    deadline = clock() + policy.deadline_s
    attempt = 0
    while True:
        attempt += 1
        try:
            return await fn()
        except Exception as exc:
            if attempt >= policy.attempts or not is_retryable(exc):
                raise
            wait_s = 0.0 if _testing.get() else _wait_s(policy, attempt, exc, rand)
            if clock() + wait_s > deadline:
                raise
            if on_retry is not None:
                on_retry(RetryEvent(attempt, wait_s, exc))
            if wait_s > 0:
                await sleep(wait_s)


def _wait_s(policy: RetryPolicy, attempt: int, exc: Exception, rand: Callable[[], float]) -> float:
    if isinstance(exc, RateLimited) and exc.retry_after_s is not None:
        return min(max(exc.retry_after_s, 0.0), policy.retry_after_cap_s)
    return policy.backoff_s(attempt, rand())
