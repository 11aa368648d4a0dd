"""Answers shared by every isolate: ISBNdb author pages and books in the worker's own KV.

Read path: in-isolate LRU -> this KV tier -> key guard + ISBNdb. An answer from ISBNdb is
written here in the background (``waitUntil``): a write that fails is logged and counted,
never fails the answer, and a read that fails is a miss. KV is eventually consistent (up
to ~60 s between locations): an isolate elsewhere may miss a fresh entry for that long and
ask ISBNdb once more (through the key guard, so within the key's rate and quota).

Keys (versioned)::

    isbndb:v1:book:{isbn13}                          a book, or "ISBNdb has none"
    isbndb:v1:author:{sha256 of name, page, size, language}   one author page, or "unknown"

TTLs (config.py): books 7 days (ISBNdb's book data rarely changes; the proxy keeps merged
answers as long), author pages 24 h (new books appear), negative answers 15 min (ISBNdb
indexes new books within minutes to a day, and a 404 may be a quota spent elsewhere).

Cost: one KV read per look-up that misses the LRU; one write per answer from ISBNdb. An
author page is one write: its books go to the LRU only (50 writes a page would eat the Free
plan's 1,000 KV writes a day). A bulk look-up writes one entry per ISBN it asked ISBNdb
about. At most `KV_READS_PER_CALL` reads and `KV_WRITES_PER_CALL` writes per invocation
(the runtime allows 1,000 KV operations per invocation); past them this tier is skipped.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from bookmeta import KVStore, Log, Metrics, normalize_key

from .books import AuthorPage, Book, parse_book
from .config import (
    AUTHOR_KV_TTL_S,
    BOOK_KV_TTL_S,
    KV_READS_PER_CALL,
    KV_WRITES_PER_CALL,
    NOT_FOUND_KV_TTL_S,
)

PREFIX = "isbndb:v1"
Schedule = Callable[[Coroutine[Any, Any, None]], None]


def book_key(isbn13: str) -> str:
    """The KV key of one book (by the ISBN-13 it was asked for)."""
    return f"{PREFIX}:book:{isbn13}"


def author_key(name: str, page: int, page_size: int, language: str | None) -> str:
    """The KV key of one author page (the name's ``normalize_key``, so ``Frank Herbert`` and
    ``frank herbert`` share it, and the paging; hashed: names may be long)."""
    raw = json.dumps([normalize_key(name), page, page_size, language or ""], ensure_ascii=False)
    return f"{PREFIX}:author:" + hashlib.sha256(raw.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class BookHit:
    """A book found in KV; ``book`` is None when ISBNdb said it has none."""

    book: Book | None


@dataclass(frozen=True, slots=True)
class AuthorHit:
    """An author page found in KV; ``negative`` when ISBNdb did not know the author."""

    page: AuthorPage
    negative: bool


class SharedCache:
    """The KV tier for one invocation (None ``kv``: every read misses, writes are skipped)."""

    def __init__(
        self, kv: KVStore | None, *, schedule: Schedule, metrics: Metrics, log: Log | None = None
    ) -> None:
        self._kv = kv
        self._schedule = schedule
        self._metrics = metrics
        self._log = log
        self._reads_left = KV_READS_PER_CALL
        self._writes_left = KV_WRITES_PER_CALL
        self._written: set[str] = set()

    @property
    def bound(self) -> bool:
        """True when the worker has its KV binding."""
        return self._kv is not None

    async def _read(self, key: str) -> Any:
        if self._kv is None or self._reads_left <= 0:
            return None
        self._reads_left -= 1
        try:
            raw = await self._kv.get(key)
        except Exception as exc:  # a failing read is a miss, never a failed answer
            self._metrics.incr("kv.read_errors")
            if self._log is not None:
                self._log.warning("kv.read_failed", error=type(exc).__name__)
            return None
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            self._metrics.incr("kv.corrupt")
            return None

    def _write(self, key: str, value: dict[str, Any], ttl_s: int) -> None:
        if self._kv is None or key in self._written or self._writes_left <= 0:
            return
        self._writes_left -= 1
        self._written.add(key)
        self._schedule(self._put(self._kv, key, json.dumps(value, separators=(",", ":")), ttl_s))

    async def _put(self, kv: KVStore, key: str, text: str, ttl_s: int) -> None:
        try:
            await kv.put(key, text, ttl_s=ttl_s)
        except Exception as exc:  # best effort: the answer has already been given
            self._metrics.incr("kv.write_errors")
            if self._log is not None:
                self._log.warning("kv.write_failed", error=type(exc).__name__)
            return
        self._metrics.incr("kv.writes")

    # -- author pages ---------------------------------------------------------------------

    async def author(
        self, name: str, page: int, page_size: int, language: str | None
    ) -> AuthorHit | None:
        """The cached page, or None on a miss (or an unreadable entry)."""
        data = await self._read(author_key(name, page, page_size, language))
        if not isinstance(data, dict) or not isinstance(data.get("books"), list):
            return None
        raw_count = data.get("rawCount")
        if not isinstance(raw_count, int) or isinstance(raw_count, bool):
            return None
        books = [b for b in (parse_book(raw) for raw in data["books"]) if b is not None]
        self._metrics.incr("cache.author.kv_hit")
        return AuthorHit(AuthorPage(books, raw_count), bool(data.get("negative")))

    def put_author(
        self,
        name: str,
        page: int,
        page_size: int,
        language: str | None,
        result: AuthorPage,
        *,
        negative: bool,
    ) -> None:
        """Share one page ISBNdb answered (in the background)."""
        value = {
            "books": [b.as_dict() for b in result.books],
            "rawCount": result.raw_count,
            "negative": negative,
        }
        ttl_s = NOT_FOUND_KV_TTL_S if negative else AUTHOR_KV_TTL_S
        self._write(author_key(name, page, page_size, language), value, ttl_s)

    # -- books ----------------------------------------------------------------------------

    async def book(self, isbn13: str) -> BookHit | None:
        """The cached book (or "none"), or None on a miss."""
        data = await self._read(book_key(isbn13))
        if not isinstance(data, dict) or "book" not in data:
            return None
        if data["book"] is None:
            self._metrics.incr("cache.book.kv_not_found_hit")
            return BookHit(None)
        book = parse_book(data["book"])
        if book is None:
            return None
        self._metrics.incr("cache.book.kv_hit")
        return BookHit(book)

    async def books(self, isbns: Sequence[str]) -> dict[str, BookHit]:
        """The cached answers among ``isbns`` (misses are left out), one read each, at once
        (the runtime queues KV calls past its six at a time)."""
        asked = list(isbns)[: max(0, self._reads_left)]
        found = await asyncio.gather(*(self.book(isbn13) for isbn13 in asked))
        return {isbn13: hit for isbn13, hit in zip(asked, found, strict=True) if hit is not None}

    def put_book(self, isbn13: str, book: Book | None) -> None:
        """Share ISBNdb's answer for ``isbn13`` (a book, or None for "it has none")."""
        value = {"book": None if book is None else book.as_dict()}
        self._write(book_key(isbn13), value, NOT_FOUND_KV_TTL_S if book is None else BOOK_KV_TTL_S)
