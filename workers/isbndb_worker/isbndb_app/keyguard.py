"""The callers' side of the key guard: a slot before every ISBNdb call, from any isolate.

`KeyGuard.take(purpose)` asks the key's guard object (Durable Object binding
``ISBNDB_GUARD``, object named `guard_name(api_key)`: a hash, never the key) for a slot,
then sleeps until the slot starts. It raises instead of calling when:

* the day's quota, or public traffic's share of it, is spent: `QuotaExhausted` until 00:00
  UTC. The isolate remembers it (`RefusalMemo`) and refuses that purpose again without
  asking the object, so a spent quota costs no Durable Object request per search;
* the next slot is further away than the caller waits (`config.SLOT_MAX_WAIT_S`):
  `GuardRefused` ("rate");
* the object cannot be asked, or answers nonsense: `GuardRefused` ("unavailable"). The
  call is not made: the quota is never spent blind.

Why the object hands out waits rather than refusing until a slot is free: one round trip
per call (each is a billed Durable Object request) and first come, first served. Refusing
and retrying would cost a request per try, and let late callers overtake early ones. The
price is a slot held by a caller that then dies; it goes unused, which errs on the safe side.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from bookmeta import (
    BookmetaError,
    Clocks,
    GuardRefused,
    Log,
    Metrics,
    Purpose,
    QuotaExhausted,
    Service,
)

from .books import PROVIDER

UNAVAILABLE_RETRY_S = 1.0


def guard_name(api_key: str) -> str:
    """The guard object's name for ``api_key``: one object per key, the key never shown."""
    return "isbndb-key:" + hashlib.sha256(api_key.encode("utf-8")).hexdigest()


class RefusalMemo:
    """Per isolate: until when (wall clock) each purpose is known to be out of quota.

    It only ever refuses, and only until the reset the guard named, so it cannot let an
    isolate spend more than the guard allows. A warming refusal means the whole quota is
    spent, so public traffic is refused too.
    """

    def __init__(self) -> None:
        self._until: dict[Purpose, float] = {}

    def refused_until(self, purpose: Purpose, now: float) -> float | None:
        """The end of a known refusal of ``purpose``, or None."""
        until = self._until.get(purpose)
        if until is None or until <= now:
            return None
        return until

    def remember(self, purpose: Purpose, until: float) -> None:
        """``purpose`` is out of quota until ``until``."""
        purposes = (Purpose.WARM, Purpose.PUBLIC) if purpose is Purpose.WARM else (purpose,)
        for p in purposes:
            self._until[p] = max(until, self._until.get(p, 0.0))

    def snapshot(self, now: float) -> dict[str, float]:
        """Seconds left of each known refusal (JSON-able)."""
        return {p.value: round(until - now, 3) for p, until in self._until.items() if until > now}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class KeyGuard:
    """Slots from the key's guard object for one invocation's ISBNdb calls."""

    def __init__(
        self,
        stub: Service,
        *,
        memo: RefusalMemo,
        clocks: Clocks,
        metrics: Metrics,
        max_wait_s: Mapping[Purpose, float],
        log: Log | None = None,
    ) -> None:
        self._stub = stub
        self._memo = memo
        self._clocks = clocks
        self._metrics = metrics
        self._max_wait_s = max_wait_s
        self._log = log

    async def _ask(self, method: str, *args: Any) -> Mapping[str, Any]:
        try:
            answer = await self._stub.call(method, *args)
        except BookmetaError as exc:  # the binding threw: the object is unreachable
            self._metrics.incr("guard.unavailable")
            if self._log is not None:
                self._log.error("guard.unavailable", method=method, error=str(exc))
            raise GuardRefused(
                PROVIDER,
                "unavailable",
                "the ISBNdb key guard cannot be reached; no call was made",
                retry_after_s=UNAVAILABLE_RETRY_S,
            ) from exc
        if not isinstance(answer, Mapping):
            self._metrics.incr("guard.unavailable")
            raise GuardRefused(
                PROVIDER,
                "unavailable",
                "the ISBNdb key guard answered nonsense; no call was made",
                retry_after_s=UNAVAILABLE_RETRY_S,
            )
        return answer

    async def take(self, purpose: Purpose) -> None:
        """Wait for a slot for one ISBNdb call of ``purpose``.

        Raises:
            QuotaExhausted: the day's quota (or public traffic's share) is spent.
            GuardRefused: no slot within the wait ("rate"), or no guard ("unavailable").
        """
        now = self._clocks.wall()
        until = self._memo.refused_until(purpose, now)
        if until is not None:
            self._metrics.incr("guard.refused.remembered")
            raise QuotaExhausted(
                PROVIDER,
                f"ISBNdb daily quota for {purpose.value} calls is spent (UTC day)",
                retry_after_s=until - now,
            )
        max_wait_ms = round(self._max_wait_s[purpose] * 1000)
        answer = await self._ask("take", purpose.value, max_wait_ms)
        if answer.get("granted") is True:
            wait_ms = _number(answer.get("waitMs"))
            if wait_ms is None or wait_ms < 0:
                raise GuardRefused(
                    PROVIDER, "unavailable", "the ISBNdb key guard gave no wait", retry_after_s=1.0
                )
            self._metrics.incr("guard.granted")
            self._metrics.observe("guard.wait", wait_ms)
            if wait_ms > 0:
                await self._clocks.sleep(wait_ms / 1000.0)
            return
        self._refused(purpose, answer, now)

    def _refused(self, purpose: Purpose, answer: Mapping[str, Any], now: float) -> None:
        reason = str(answer.get("reason", "unavailable"))
        message = str(answer.get("message", "refused by the ISBNdb key guard"))[:300]
        retry_ms = _number(answer.get("retryAfterMs"))
        retry_s = None if retry_ms is None else retry_ms / 1000.0
        self._metrics.incr(f"guard.refused.{reason}")
        if self._log is not None:
            self._log.warning("guard.refused", purpose=purpose.value, reason=reason)
        if reason == "quota":
            if retry_s is not None:
                self._memo.remember(purpose, now + retry_s)
            raise QuotaExhausted(PROVIDER, message, retry_after_s=retry_s)
        if reason == "rate":
            raise GuardRefused(PROVIDER, "rate", message, retry_after_s=retry_s)
        raise GuardRefused(PROVIDER, "unavailable", message, retry_after_s=UNAVAILABLE_RETRY_S)

    async def usage(self) -> dict[str, Any]:
        """Today's used and left counts, as the guard object reports them.

        Raises:
            GuardRefused: the object cannot be reached ("unavailable").
        """
        answer = await self._ask("usage")
        usage = answer.get("usage")
        if isinstance(usage, Mapping):
            return dict(usage)
        return {"error": str(answer.get("error", "no usage in the guard's answer"))[:300]}
