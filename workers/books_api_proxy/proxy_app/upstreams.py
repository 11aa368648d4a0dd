"""The providers behind their breakers, rate limiters and timeouts.

Each call returns an ``Outcome`` instead of raising, so one provider's failure never hides the
others' answers. Only calls that really went upstream are counted (an open breaker's
fail-fast is not a call). A parser that raises on odd data (anything but a ``BookmetaError``)
is that provider's failure, ``UpstreamError(provider, None, "unparseable response")``,
counted by its breaker, never a 500.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

import httpx

from bookmeta import AUTHOR_PAGE_SIZE, BookmetaError, Clock, Log, Purpose, Service, UpstreamError

from .config import Settings
from .isolate import Isolate
from .model import Edition, Page, Provider
from .providers import google, isbndb, openlibrary

T = TypeVar("T")
ISBNDB_PAGE_MAX = 1000  # ISBNdb's largest pageSize
UNPARSEABLE = "unparseable response"
ClientFactory = Callable[[], httpx.AsyncClient]
SecretGetter = Callable[[], Awaitable[str | None]]


@dataclass(frozen=True, slots=True)
class Outcome:
    """One provider's answer (``editions``) or failure (``error``).

    ``aliases`` maps an asked ISBN-13 to the ISBN-13 of the edition answering it, where they
    differ (ISBNdb's bulk look-up matches an ISBN a book lists in ``other_isbns``). ``total``
    is the provider's count of every match of a search (Google ``totalItems``, Open Library
    ``num_found``), None when it gives none.
    """

    provider: Provider
    editions: list[Edition]
    error: BookmetaError | None = None
    aliases: Mapping[str, str] = field(default_factory=dict)
    total: int | None = None  # how many match in all, when the provider says

    @property
    def ok(self) -> bool:
        """True when the provider answered (possibly with nothing)."""
        return self.error is None


def in_language(editions: Sequence[Edition], lang: str | None) -> list[Edition]:
    """``editions`` a provider returned for a search restricted to ``lang``: those without a
    language are in ``lang``."""
    if lang is None:
        return list(editions)
    return [e if e.language else replace(e, language=lang) for e in editions]


class Upstreams:
    """Guarded calls to Google Books, ISBNdb (binding) and Open Library."""

    def __init__(
        self,
        settings: Settings,
        isolate: Isolate,
        *,
        isbndb_service: Service | None,
        google_key: SecretGetter,
        wall_clock: Clock,
        monotonic_clock: Clock = time.monotonic,
        client_factory: ClientFactory = httpx.AsyncClient,
    ) -> None:
        self.settings = settings
        self.isolate = isolate
        self.isbndb_service = isbndb_service
        self._google_key_getter = google_key
        self._google_key: str | None = None
        self._google_key_read = False
        self._clock = wall_clock
        self._monotonic = monotonic_clock
        self._client_factory = client_factory
        self.calls: dict[str, int] = {"isbndb": 0, "openlibrary": 0, "google": 0}

    async def _guard(self, provider: Provider, fetch: Callable[[], Awaitable[T]]) -> T:
        breaker = self.isolate.breakers.get(provider)
        limited = provider != "isbndb"  # the isbndb worker spaces its own calls

        async def call() -> T:
            if limited:
                await self.isolate.limiter(provider, self.settings.rate_limit_ms).acquire()
            self.calls[provider] += 1
            self.isolate.metrics.incr(f"upstream.{provider}.calls")
            started, ok = self._monotonic(), False
            try:
                result = await asyncio.wait_for(fetch(), self.settings.provider_timeout_s)
                ok = True
                return result
            except (BookmetaError, TimeoutError):
                raise
            except Exception as exc:  # a parser tripped on odd data: the breaker counts it
                raise self._unparseable(provider, exc) from exc
            finally:
                elapsed_ms = (self._monotonic() - started) * 1000.0
                self.isolate.metrics.observe(f"upstream.{provider}", elapsed_ms, ok=ok)

        try:
            return await breaker.call(call)
        except TimeoutError:
            self.isolate.metrics.incr(f"upstream.{provider}.timeouts")
            raise UpstreamError(provider, None, "timed out") from None
        except BookmetaError:
            self.isolate.metrics.incr(f"upstream.{provider}.errors")
            raise

    def _unparseable(self, provider: Provider, exc: Exception) -> UpstreamError:
        self.isolate.metrics.incr(f"upstream.{provider}.unparseable")
        Log("books_api_proxy", "upstreams").error(
            "upstream.unparseable", provider=provider, error=type(exc).__name__
        )
        return UpstreamError(provider, None, UNPARSEABLE)

    async def _settle(
        self, provider: Provider, answer: Callable[[], Awaitable[Outcome]]
    ) -> Outcome:
        """``answer()``, or its failure as an Outcome (any exception: the safety net)."""
        try:
            return await answer()
        except BookmetaError as exc:
            return Outcome(provider, [], exc)
        except Exception as exc:  # raised outside the guard (post-processing): still no 500
            return Outcome(provider, [], self._unparseable(provider, exc))

    async def _outcome(
        self, provider: Provider, fetch: Callable[[], Awaitable[list[Edition]]]
    ) -> Outcome:
        async def answer() -> Outcome:
            return Outcome(provider, await self._guard(provider, fetch))

        return await self._settle(provider, answer)

    async def _key(self) -> str | None:
        if not self._google_key_read:
            self._google_key = await self._google_key_getter()
            self._google_key_read = True
        return self._google_key

    # -- single providers ------------------------------------------------------------------

    async def google_volumes(
        self, q: str, max_results: int, lang: str | None, start_index: int = 0
    ) -> Page:
        """One ``volumes`` query (guarded). Raises what the guard raises."""
        key = await self._key()

        async def fetch() -> Page:
            async with self._client_factory() as client:
                return await google.fetch_volumes(
                    client,
                    self.settings.google_base_url,
                    q=q,
                    max_results=max_results,
                    key=key,
                    lang=lang,
                    now=self._clock(),
                    timeout_s=self.settings.provider_timeout_s,
                    start_index=start_index,
                )

        return await self._guard("google", fetch)

    async def google_isbn(self, isbn13: str) -> Outcome:
        """Google's editions that really carry ``isbn13``."""

        async def answer() -> Outcome:
            found = await self.google_volumes(
                google.isbn_query(isbn13), google.ISBN_LOOKUP_MAX_RESULTS, None
            )
            return Outcome("google", google.only_isbn(found.editions, isbn13))

        return await self._settle("google", answer)

    async def openlibrary_books(self, isbns: Sequence[str]) -> Outcome:
        """One Books API batch (at most 50 ISBN-13s)."""

        async def fetch() -> list[Edition]:
            async with self._client_factory() as client:
                found = await openlibrary.fetch_books(
                    client,
                    self.settings.openlibrary_base_url,
                    isbns,
                    contact_email=self.settings.contact_email,
                    now=self._clock(),
                    timeout_s=self.settings.provider_timeout_s,
                )
            return list(found.values())

        return await self._outcome("openlibrary", fetch)

    async def openlibrary_search(
        self, kind: str, text: str, limit: int, offset: int = 0
    ) -> Outcome:
        """One ``search.json`` query: ``limit`` works from ``offset``, and the match count."""

        async def fetch() -> Page:
            async with self._client_factory() as client:
                return await openlibrary.fetch_search(
                    client,
                    self.settings.openlibrary_base_url,
                    kind=kind,
                    text=text,
                    limit=limit,
                    contact_email=self.settings.contact_email,
                    now=self._clock(),
                    timeout_s=self.settings.provider_timeout_s,
                    offset=offset,
                )

        async def answer() -> Outcome:
            page = await self._guard("openlibrary", fetch)
            return Outcome("openlibrary", page.editions, total=page.total)

        return await self._settle("openlibrary", answer)

    async def isbndb_book(self, isbn13: str) -> Outcome | None:
        """One book over the binding; None when the binding is not configured."""
        service = self.isbndb_service
        if service is None:
            return None

        async def fetch() -> list[Edition]:
            edition = await isbndb.fetch_book(service, isbn13)
            return [] if edition is None else [edition]

        return await self._outcome("isbndb", fetch)

    async def isbndb_author(self, name: str, page_size: int, language: str) -> Outcome | None:
        """An author's first page of books; None when the binding is not configured."""
        service = self.isbndb_service
        if service is None:
            return None

        async def fetch() -> list[Edition]:
            return await isbndb.fetch_author(service, name, page_size=page_size, language=language)

        return await self._outcome("isbndb", fetch)

    async def isbndb_bulk(
        self, isbns: Sequence[str], *, purpose: Purpose = Purpose.PUBLIC
    ) -> Outcome | None:
        """Many books in one binding call; None when the binding is not configured.

        The outcome's ``aliases`` name the asked ISBNs answered by a book with another ISBN-13.
        ``purpose`` tells the isbndb worker's key guard who is asking (warming: ``WARM``).
        """
        service = self.isbndb_service
        if service is None:
            return None

        async def fetch() -> isbndb.BulkResult:
            return await isbndb.fetch_bulk(service, isbns, purpose=purpose)

        async def answer() -> Outcome:
            bulk = await self._guard("isbndb", fetch)
            return Outcome("isbndb", bulk.editions(), aliases=bulk.aliases())

        return await self._settle("isbndb", answer)

    # -- all providers at once -------------------------------------------------------------

    async def by_isbn(self, isbn13: str) -> list[Outcome]:
        """Every provider's answer for one ISBN, queried in parallel."""
        answers = await asyncio.gather(
            self.google_isbn(isbn13),
            self.isbndb_book(isbn13),
            self.openlibrary_books([isbn13]),
        )
        return [a for a in answers if a is not None]

    async def search(
        self, kind: str, text: str, *, max_results: int, lang: str | None, start_index: int = 0
    ) -> list[Outcome]:
        """Every provider able to answer a ``kind`` search, queried in parallel.

        ``lang`` restricts Google and ISBNdb to one language (None: all languages); an
        edition they return without a language is in ``lang`` (they filtered by it). Open
        Library is not filtered: its works keep the language they state, or none, and its
        match count then counts other languages too, so it is dropped. ISBNdb only answers
        author searches (its worker has no title search).

        Each provider is asked for its own window ``[start_index, start_index + max_results)``
        (Google ``startIndex``, Open Library ``offset``, ISBNdb a page from 1 cut at
        ``start_index``): the merge of those windows is the page.
        """

        async def google_answer() -> Outcome:
            found = await self.google_volumes(
                google.search_query(kind, text), max_results, lang, start_index
            )
            return Outcome("google", in_language(found.editions, lang), total=found.total)

        async def google_search() -> Outcome:
            return await self._settle("google", google_answer)

        async def isbndb_search() -> Outcome | None:
            if kind != "author":
                return None
            # Page 1 of at least the size the warmer asks for (AUTHOR_PAGE_SIZE, lang): the
            # isbndb worker's LRU or shared KV then answers an author just warmed without
            # another ISBNdb call. Deeper windows take a bigger page 1 (one ISBNdb call
            # whatever its size), cut at start_index; trimmed by the merge.
            size = min(ISBNDB_PAGE_MAX, max(AUTHOR_PAGE_SIZE, start_index + max_results))
            outcome = await self.isbndb_author(text, size, lang or "")
            if outcome is None or not outcome.ok:
                return outcome
            window = outcome.editions[start_index:]
            return replace(outcome, editions=in_language(window, lang))

        answers = await asyncio.gather(
            google_search(),
            isbndb_search(),
            self.openlibrary_search(kind, text, max_results, start_index),
        )
        outcomes = [a for a in answers if a is not None]
        if lang is not None:
            outcomes = [
                replace(o, total=None) if o.provider == "openlibrary" else o for o in outcomes
            ]
        return outcomes
