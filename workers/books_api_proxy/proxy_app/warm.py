"""Bulk warming: cache many ISBNs with the fewest upstream calls.

Order of attack, each step only for what is still missing: skip ISBNs already fresh in the
cache, and report those with a fresh not-found entry as ``notFound`` without asking again (a
settled not-found); ISBNdb bulk (one binding call, the isbndb worker chunks; purpose
``warm``, so it spends the warming reserve of the key's quota); Open Library Books API
batches of 50; Google, one ``isbn:`` query per ISBN, at most
``MAX_GOOGLE_PER_CALL`` per call (a Free-plan invocation has 50 subrequests). The rest are
``deferred``: not asked, not failed, to send again (also in ``failed``, "not asked", for
callers that predate ``deferred``). Each book is stored under exactly ``isbn_key(isbn13)`` of
the ISBN asked for, in the shape an ISBN search stores, so a later
``/search/auto?q=<isbn>&maxResults=1`` is a cache hit; that holds for an ISBN ISBNdb matched
through another book's ``other_isbns`` too (stored under the asked ISBN, not the book's). An
ISBN nobody has gets a negative entry, but only when every provider asked about it answered
(a failure is not "not found").
With a deadline (the caller's ``budget_ms``), no step starts after it and a step still
running at it is cut: what it had asked is reported as failed ("retry later"), what was found
before is stored, and the answer comes back while the caller still waits. A provider whose
daily quota is spent is named in ``quotaExhausted`` with the seconds until it resets, so the
warmer defers instead of retrying.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from bookmeta import Clock, Purpose, QuotaExhausted, TwoTierCache, isbn_key

from .merge import merge
from .model import Edition, Provider
from .providers.openlibrary import batches
from .upstreams import Outcome, Upstreams
from .validation import isbn_list
from .volumes import to_item

MAX_GOOGLE_PER_CALL = 20
T = TypeVar("T")


class _Late(Exception):  # noqa: N818 (a state, not an error to report)
    """The deadline passed before a step started, or while it ran (it was cancelled)."""


@dataclass(slots=True)
class Deadline:
    """When the caller stops waiting, on the monotonic ``clock``; once a step is cut at it,
    it stays passed (whatever the clock says next)."""

    at: float
    clock: Clock
    budget_ms: int
    passed: bool = False

    def remaining_s(self) -> float:
        """Seconds left (0 or less once passed)."""
        return 0.0 if self.passed else self.at - self.clock()

    @property
    def reason(self) -> str:
        """Why an ISBN was not warmed: the caller's time ran out."""
        return f"deadline: the caller's {self.budget_ms} ms ran out first; retry later"

    async def run(self, work: Callable[[], Awaitable[T]]) -> T:
        """``work()`` in the time left; raises _Late if none is left or it runs past it."""
        left = self.remaining_s()
        if left <= 0:
            self.passed = True
            raise _Late
        try:
            return await asyncio.wait_for(work(), left)
        except TimeoutError:  # cut at the deadline (providers' own timeouts are UpstreamErrors)
            self.passed = True
            raise _Late from None


async def _in_time(deadline: Deadline | None, work: Callable[[], Awaitable[T]]) -> T:
    """``work()``, within ``deadline`` when there is one (raises _Late past it)."""
    return await work() if deadline is None else await deadline.run(work)


class _Collected:
    """Editions found per ISBN and provider failures per ISBN, across the steps."""

    def __init__(self, isbns: Sequence[str]) -> None:
        self.editions: dict[str, dict[Provider, list[Edition]]] = {i: {} for i in isbns}
        self.errors: dict[str, list[str]] = {i: [] for i in isbns}
        self.quota_exhausted: dict[str, float | None] = {}

    def missing(self) -> list[str]:
        return [i for i, found in self.editions.items() if not found]

    def late(self, asked: Sequence[str], reason: str) -> None:
        for isbn in asked:
            if reason not in self.errors[isbn]:  # once, however many steps it missed
                self.errors[isbn].append(reason)

    def add(self, outcome: Outcome | None, asked: Sequence[str]) -> None:
        if outcome is None:
            return
        if outcome.error is not None:
            if isinstance(outcome.error, QuotaExhausted):
                self.quota_exhausted[outcome.provider] = outcome.error.retry_after_s
            for isbn in asked:
                self.errors[isbn].append(f"{outcome.provider}: {outcome.error}")
            return
        by_isbn13 = {e.isbn13: e for e in outcome.editions}
        for edition in outcome.editions:
            if edition.isbn13 in self.editions:
                self.editions[edition.isbn13].setdefault(outcome.provider, []).append(edition)
        # An asked ISBN answered by a book under another ISBN-13 (ISBNdb's other_isbns) is
        # found too: the book is stored under the asked ISBN's key.
        for asked_isbn, isbn13 in outcome.aliases.items():
            alias = by_isbn13.get(isbn13)
            if alias is not None and asked_isbn in self.editions:
                self.editions[asked_isbn].setdefault(outcome.provider, []).append(alias)


async def warm_isbns(
    raw_isbns: Any,
    *,
    cache: TwoTierCache,
    upstreams: Upstreams,
    clock: Clock,
    deadline: Deadline | None = None,
) -> dict[str, Any]:
    """Warm the cache for ``raw_isbns`` and report what happened (ARCHITECTURE.md shape).

    ``deadline``: no upstream step starts after it, and one running at it is cut; the ISBNs it
    covered are reported as failed with ``deadline.reason``.

    Raises:
        InvalidInput: ``raw_isbns`` is not a list of at most 200 entries.
    """
    isbns, invalid = isbn_list(raw_isbns)
    statuses = await cache.status([isbn_key(i) for i in isbns])
    now = clock()
    already = [
        i
        for i, s in zip(isbns, statuses, strict=True)
        if s.tier is not None and s.fresh_until is not None and s.fresh_until > now
    ]
    settled_missing = [i for i, s in zip(isbns, statuses, strict=True) if s.negative]
    todo = [i for i in isbns if i not in already and i not in settled_missing]
    found = _Collected(todo)
    late = deadline.reason if deadline is not None else ""

    async def step(work: Callable[[], Awaitable[Outcome | None]], asked: list[str]) -> None:
        try:
            found.add(await _in_time(deadline, work), asked)
        except _Late:
            found.late(asked, late)

    async def google(asked: list[str]) -> None:
        answers = await asyncio.gather(*(upstreams.google_isbn(i) for i in asked))
        for isbn, outcome in zip(asked, answers, strict=True):
            found.add(outcome, [isbn])

    if todo:
        await step(lambda: upstreams.isbndb_bulk(todo, purpose=Purpose.WARM), todo)
    for batch in batches(found.missing()):
        await step(partial(upstreams.openlibrary_books, batch), batch)
    missing = found.missing()
    asked, deferred = missing[:MAX_GOOGLE_PER_CALL], missing[MAX_GOOGLE_PER_CALL:]
    if asked:
        try:
            await _in_time(deadline, lambda: google(asked))
        except _Late:
            found.late(asked, late)
    for isbn in deferred:
        found.errors[isbn].append(
            f"google: not asked (at most {MAX_GOOGLE_PER_CALL} look-ups per call); retry later"
        )

    outcomes: list[tuple[str, bool]] = []  # (isbn, found) for each write, in order
    writes = []
    failed: list[dict[str, str]] = []
    for isbn in todo:
        editions = found.editions[isbn]
        if editions:
            merged = merge(editions, exact_isbn13=isbn)
            writes.append(cache.set(isbn_key(isbn), to_item(merged[0])))
            outcomes.append((isbn, True))
        elif found.errors[isbn]:
            failed.append({"isbn": isbn, "reason": "; ".join(found.errors[isbn])})
        else:
            writes.append(cache.set_negative(isbn_key(isbn)))
            outcomes.append((isbn, False))
    warmed: list[str] = []
    not_found: list[str] = [i for i in isbns if i in settled_missing]
    # A write a tier refused (KV: one write per second per key) fails that ISBN only: the
    # caller retries it, and a copy that did land reads back as alreadyCached.
    results = await asyncio.gather(*writes, return_exceptions=True)
    for (isbn, was_found), result in zip(outcomes, results, strict=True):
        if isinstance(result, Exception):
            reason = f"cache write failed ({type(result).__name__}: {result})"[:300]
            failed.append({"isbn": isbn, "reason": reason})
        elif isinstance(result, BaseException):
            raise result
        else:
            (warmed if was_found else not_found).append(isbn)
    failed.sort(key=lambda f: todo.index(f["isbn"]))
    not_found.sort(key=isbns.index)
    return {
        "warmed": warmed,
        "alreadyCached": already,
        "notFound": not_found,
        "invalid": invalid,
        "failed": failed,
        "quotaExhausted": dict(found.quota_exhausted),
        "deferred": deferred,
        "upstreamCalls": dict(upstreams.calls),
    }
