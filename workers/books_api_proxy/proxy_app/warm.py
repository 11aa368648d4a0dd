"""Bulk warming: cache many ISBNs with the fewest upstream calls.

Order of attack, each step only for what is still missing: skip ISBNs already fresh in the
cache, and report those with a fresh not-found entry as ``notFound`` without asking again (a
settled not-found); ISBNdb bulk (one binding call, the isbndb worker chunks); Open Library
Books API batches of 50; Google, one ``isbn:`` query per ISBN, at most
``MAX_GOOGLE_PER_CALL`` per call (a Free-plan invocation has 50 subrequests). The rest are
``deferred``: not asked, not failed, to send again (also in ``failed``, "not asked", for
callers that predate ``deferred``). Each book is stored under exactly ``isbn_key(isbn13)`` of
the ISBN asked for, in the shape an ISBN search stores, so a later
``/search/auto?q=<isbn>&maxResults=1`` is a cache hit; that holds for an ISBN ISBNdb matched
through another book's ``other_isbns`` too (stored under the asked ISBN, not the book's). An
ISBN nobody has gets a negative entry, but only when every provider asked about it answered
(a failure is not "not found").
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from bookmeta import Clock, TwoTierCache, isbn_key

from .merge import merge
from .model import Edition, Provider
from .providers.openlibrary import batches
from .upstreams import Outcome, Upstreams
from .validation import isbn_list
from .volumes import to_item

MAX_GOOGLE_PER_CALL = 20


class _Collected:
    """Editions found per ISBN and provider failures per ISBN, across the steps."""

    def __init__(self, isbns: Sequence[str]) -> None:
        self.editions: dict[str, dict[Provider, list[Edition]]] = {i: {} for i in isbns}
        self.errors: dict[str, list[str]] = {i: [] for i in isbns}

    def missing(self) -> list[str]:
        return [i for i, found in self.editions.items() if not found]

    def add(self, outcome: Outcome | None, asked: Sequence[str]) -> None:
        if outcome is None:
            return
        if outcome.error is not None:
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
    raw_isbns: Any, *, cache: TwoTierCache, upstreams: Upstreams, clock: Clock
) -> dict[str, Any]:
    """Warm the cache for ``raw_isbns`` and report what happened (ARCHITECTURE.md shape).

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
    if todo:
        found.add(await upstreams.isbndb_bulk(todo), todo)
    for batch in batches(found.missing()):
        found.add(await upstreams.openlibrary_books(batch), batch)
    missing = found.missing()
    asked, deferred = missing[:MAX_GOOGLE_PER_CALL], missing[MAX_GOOGLE_PER_CALL:]
    for isbn, outcome in zip(
        asked, await asyncio.gather(*(upstreams.google_isbn(i) for i in asked)), strict=True
    ):
        found.add(outcome, [isbn])
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
        "deferred": deferred,
        "upstreamCalls": dict(upstreams.calls),
    }
