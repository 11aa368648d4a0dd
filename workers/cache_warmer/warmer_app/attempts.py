"""The attempt policy of one unit: what is settled, what to send next, when to give up. Pure.

One attempt sends a unit's unsettled items (to ``warm_isbns``, or one author's two calls) and
says, per item: ``done``; ``failed`` (settled: nobody has it, invalid, refused); ``retry``
(it was asked and a provider failed: ask again); or ``deferred`` (not asked for lack of
budget, e.g. the proxy's 20 Google look-ups per call: ask again, nothing spent). So:

* a deferral is progress, never an attempt: a deferred item never fails for it;
* attempts are counted per item: an item is given up (failed, ``gave up after 3 attempts:
  <reason>``) only after ``MAX_TRIES`` attempts that asked it and failed, so every item is
  asked before it can fail;
* a settled item (done, or a settled not-found) is never sent again;
* the unit is finished when every item is settled.

The library's job object (``job_object.py``) keeps each unit's ``UnitProgress`` between the
queue consumer's attempts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .planner import Unit

MAX_TRIES = 3


@dataclass
class Attempt:
    """What one attempt said about the items it was sent (reasons by item)."""

    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    retry: dict[str, str] = field(default_factory=dict)
    deferred: list[str] = field(default_factory=list)
    upstream: dict[str, int] = field(default_factory=dict)
    # A provider's daily quota is spent (what it said, for the progress view): the deferred
    # items wait for the reset; the caller stops for the day instead of asking again now.
    quota: str | None = None

    @classmethod
    def failed_call(cls, items: Iterable[str], reason: str) -> Attempt:
        """The call failed as a whole (a binding threw, a 5xx): every item sent was asked."""
        return cls(retry=dict.fromkeys(items, reason))

    @classmethod
    def refused(cls, items: Iterable[str], reason: str) -> Attempt:
        """The call was refused for good (a 4xx): every item sent fails with ``reason``."""
        return cls(failed=dict.fromkeys(items, reason))


@dataclass(frozen=True, slots=True)
class Step:
    """What recording an attempt changed: ``progress`` when an item got settled, and the
    first reason an item must be asked again because a provider failed (``trouble``)."""

    progress: bool
    trouble: str | None


@dataclass
class UnitProgress:
    """The items of unit ``n`` settled so far, and the failed tries of the others."""

    n: int
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    tries: dict[str, int] = field(default_factory=dict)
    upstream: dict[str, int] = field(default_factory=dict)
    attempts: int = 0

    def settled(self, item: str) -> bool:
        """True once ``item`` is done or failed."""
        return item in self.failed or item in self.done

    def todo(self, unit: Unit) -> list[str]:
        """The unit's items still to send, in the unit's order."""
        return [i for i in unit.items if not self.settled(i)]

    def finished(self, unit: Unit) -> bool:
        """Every item of ``unit`` is settled."""
        return not self.todo(unit)

    def record(
        self, attempt: Attempt, *, sent: Iterable[str] = (), max_tries: int = MAX_TRIES
    ) -> Step:
        """Fold one attempt in; an item in ``sent`` the attempt says nothing about is retried."""
        self.attempts += 1
        for provider, n in attempt.upstream.items():
            self.upstream[provider] = self.upstream.get(provider, 0) + int(n)
        before = len(self.done) + len(self.failed)
        for item in attempt.done:
            if not self.settled(item):
                self.done.append(item)
        for item, reason in attempt.failed.items():
            if not self.settled(item):
                self.failed[item] = reason
        retry = dict(attempt.retry)
        answered = set(attempt.done) | set(attempt.failed) | set(retry) | set(attempt.deferred)
        for item in sent:
            if item not in answered and not self.settled(item):
                retry[item] = f"{item}: missing from the result"
        trouble = None
        for item, reason in retry.items():
            if self.settled(item):
                continue
            trouble = trouble or reason
            self.tries[item] = self.tries.get(item, 0) + 1
            if self.tries[item] >= max_tries:
                self.failed[item] = f"gave up after {self.tries[item]} attempts: {reason}"
        for item in list(self.tries):
            if self.settled(item):
                del self.tries[item]
        return Step(len(self.done) + len(self.failed) > before, trouble)

    def outcome(self, unit: Unit) -> tuple[list[str], list[dict[str, str]]]:
        """The unit's result, in its items' order: items done, items failed with a reason."""
        done = [i for i in unit.items if i in self.done]
        failed = [{"item": i, "reason": self.failed[i]} for i in unit.items if i in self.failed]
        return done, failed

    def to_json(self) -> dict[str, Any]:
        """JSON-able (kept in the job's state between runs)."""
        return {
            "n": self.n,
            "done": list(self.done),
            "failed": dict(self.failed),
            "tries": dict(self.tries),
            "upstream": dict(self.upstream),
            "attempts": self.attempts,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> UnitProgress:
        """Inverse of to_json."""
        return cls(
            int(data["n"]),
            [str(i) for i in data.get("done", [])],
            {str(k): str(v) for k, v in data.get("failed", {}).items()},
            {str(k): int(v) for k, v in data.get("tries", {}).items()},
            {str(k): int(v) for k, v in data.get("upstream", {}).items()},
            int(data.get("attempts", 0)),
        )
