"""The three look-ups (author page, one book, many books): in-isolate LRU, then the KV
shared by every isolate, then ISBNdb (through the key guard).

Author pages and books found on them fill the book LRU; a book ISBNdb does not know is
remembered briefly (ISBNdb indexes new books within minutes to a day, and a spent daily
quota also answers 404). What ISBNdb answers is shared in KV (shared_cache.py), so a
repeated look-up from any isolate does not reach ISBNdb again.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from bookmeta import Metrics, normalize_key

from .books import AuthorPage, Book, parse_author_response, parse_book_response, parse_bulk_response
from .client import IsbndbClient
from .config import AUTHOR_TTL_S, MAX_PAGE, NOT_FOUND_TTL_S, Settings
from .isolate import State
from .shared_cache import SharedCache

MAX_AUTHOR_RESULTS = MAX_PAGE  # ISBNdb stops paging at 10,000 results


def match_index(found: list[tuple[Book, frozenset[str]]]) -> dict[str, Book]:
    """ISBN-13 -> the book answering it: a book's own ISBN-13 first, then the ISBNs it lists.

    An alias never replaces a book's own record, whatever order ISBNdb answers in: for Y
    (listing X in ``other_isbns``) before X, X maps to X. Among aliases the first book wins.
    """
    index = {book.isbn13: book for book, _ in reversed(found)}
    for book, aliases in found:
        for alias in aliases:
            index.setdefault(alias, book)
    return index


def author_path(name: str) -> str:
    """The upstream path for ``name``: one fully encoded segment (``/``, ``?``, ``#`` too)."""
    return "/author/" + quote(name, safe="")


class Catalog:
    """ISBNdb look-ups for one invocation, sharing the isolate's LRU and the KV tier."""

    def __init__(
        self,
        *,
        client: IsbndbClient,
        state: State,
        shared: SharedCache,
        settings: Settings,
        metrics: Metrics,
    ) -> None:
        self._client = client
        self._state = state
        self._shared = shared
        self._settings = settings
        self._metrics = metrics

    async def author(
        self, name: str, page: int, page_size: int, language: str | None
    ) -> dict[str, Any]:
        """One page of an author's books; ``hasMore`` when ISBNdb filled the page."""
        # Case- and spacing-blind, like the proxy's keys: the warmer asks "Frank Herbert", the
        # proxy "frank herbert" (its key form); one ISBNdb call serves both.
        key = (normalize_key(name), page, page_size, language)
        result = self._state.authors.get(key)
        self._metrics.incr("cache.author." + ("hit" if result is not None else "miss"))
        if result is None:
            result, negative = await self._author_page(name, page, page_size, language)
            ttl_s = NOT_FOUND_TTL_S if negative else AUTHOR_TTL_S
            self._state.authors.set(key, result, ttl_s=ttl_s)
            for book in result.books:
                self._state.books.set(book.isbn13, book)
        # ISBNdb sends no total: a full page means there may be more (counting skipped entries).
        has_more = result.raw_count == page_size and page * page_size < MAX_AUTHOR_RESULTS
        return {
            "author": name,
            "page": page,
            "pageSize": page_size,
            "books": [book.as_dict() for book in result.books],
            "hasMore": has_more,
        }

    async def _author_page(
        self, name: str, page: int, page_size: int, language: str | None
    ) -> tuple[AuthorPage, bool]:
        """The page from KV or ISBNdb, and whether ISBNdb did not know the author."""
        hit = await self._shared.author(name, page, page_size, language)
        if hit is not None:
            return hit.page, hit.negative
        params: dict[str, str | int] = {"page": page, "pageSize": page_size}
        if language is not None:
            params["language"] = language
        response = await self._client.get(author_path(name), params)
        negative = response.status == 404  # ISBNdb's answer for an author it does not know
        result = AuthorPage([], 0) if negative else parse_author_response(response.data)
        self._shared.put_author(name, page, page_size, language, result, negative=negative)
        return result, negative

    async def book(self, isbn13: str) -> Book | None:
        """The book for a canonical ISBN-13, or None when ISBNdb does not know it."""
        cached = self._cached(isbn13)
        if cached is not None or self._known_missing(isbn13):
            return cached
        hit = await self._shared.book(isbn13)
        if hit is not None:
            self._learn(isbn13, hit.book)
            return hit.book
        response = await self._client.get(f"/book/{isbn13}")
        book = None if response.status == 404 else parse_book_response(response.data)
        self._learn(isbn13, book)
        self._shared.put_book(isbn13, book)
        return book

    async def books(self, isbns: list[str]) -> tuple[list[Book], list[str], dict[str, str]]:
        """Books for distinct canonical ISBN-13s, those not found, and which book each found
        ISBN matched (``{requested: book.isbn13}``), all in request order.

        ISBNs neither in the LRU, nor known missing, nor in KV go to ISBNdb's bulk endpoint
        in chunks of ``bulk_limit``; a returned book matches every ISBN it lists (isbn13,
        isbn, other_isbns), so a requested ISBN may be answered by a book with another
        ISBN-13, but only when no returned book has that ISBN-13 itself.
        One failing chunk fails the call; earlier chunks stay cached.
        """
        found: dict[str, Book] = {}
        missing: set[str] = set()
        unknown: list[str] = []
        for isbn13 in isbns:
            cached = self._cached(isbn13)
            if cached is not None:
                found[isbn13] = cached
            elif self._known_missing(isbn13):
                missing.add(isbn13)
            else:
                unknown.append(isbn13)
        shared = await self._shared.books(unknown)
        to_fetch: list[str] = []
        for isbn13 in unknown:
            hit = shared.get(isbn13)
            if hit is None:
                to_fetch.append(isbn13)
                continue
            self._learn(isbn13, hit.book)
            if hit.book is None:
                missing.add(isbn13)
            else:
                found[isbn13] = hit.book
        limit = self._settings.bulk_limit
        for start in range(0, len(to_fetch), limit):
            chunk = to_fetch[start : start + limit]
            response = await self._client.post("/books", {"isbns": chunk})
            index = (
                {} if response.status == 404 else match_index(parse_bulk_response(response.data))
            )
            for isbn13 in chunk:
                match = index.get(isbn13)
                if match is not None:
                    found[isbn13] = match
                else:
                    missing.add(isbn13)
                # A 404 for a whole chunk is more likely a spent quota: do not remember it.
                if match is not None or response.status != 404:
                    self._learn(isbn13, match)
                    self._shared.put_book(isbn13, match)
        unique: dict[str, Book] = {}
        matches: dict[str, str] = {}
        for isbn13 in isbns:
            if isbn13 in found:
                unique.setdefault(found[isbn13].isbn13, found[isbn13])
                matches[isbn13] = found[isbn13].isbn13
        return list(unique.values()), [i for i in isbns if i in missing], matches

    def _cached(self, isbn13: str) -> Book | None:
        book = self._state.books.get(isbn13)
        self._metrics.incr("cache.book." + ("hit" if book is not None else "miss"))
        return book

    def _known_missing(self, isbn13: str) -> bool:
        missing = self._state.not_found.get(isbn13) is not None
        if missing:
            self._metrics.incr("cache.book.not_found_hit")
        return missing

    def _learn(self, isbn13: str, book: Book | None) -> None:
        """Put an answer for ``isbn13`` in the LRU: the book (under both ISBNs) or "none"."""
        if book is None:
            self._state.not_found.set(isbn13, True)
            return
        self._state.books.set(isbn13, book)
        self._state.books.set(book.isbn13, book)
        self._state.not_found.delete(isbn13)
