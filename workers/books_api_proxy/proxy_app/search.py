"""Search orchestration: classify, read through the two-tier cache, fan out, merge, shape.

Cache policy (keys from ``bookmeta``, so the warmer writes what the proxy reads):

* an ISBN search is keyed ``isbn_key(isbn13)`` whatever ``maxResults`` is, and stores one
  merged item; author/title/text searches are keyed ``search_key(kind, q, max_results=,
  lang=, translations=)`` and store the final item list, with ``lang=None`` when
  translations are included (the language filters nothing then);
* nothing found (every provider answered) is a short negative entry (``negative_ttl_s``);
* a partial answer (some provider failed, another answered) is served with
  ``failedProviders`` and kept briefly, in KV only, flagged as partial (``Provisional``): for
  the failed providers' retry hint (their breakers'), at least KV's 60 s and at most
  ``PARTIAL_TTL_MAX_S``. Identical searches in that window are hits (with
  ``failedProviders``) and cost no provider call; after it the next one asks everyone again
  and the full answer replaces the partial one. A partial answer never replaces a full entry:
  a stale (even expired) full entry is served instead;
* every provider failed: a stale entry of any age is served (``cache: "stale"``), else
  ``AllProvidersFailed`` (503 with Retry-After).

Query form (README "Searches ignore case"): every search goes upstream and into its key as
``normalize_key`` of its text, so two queries with the same key are the same search. A query
without a prefix that is not an ISBN is searched as text; when the best matches' authors are
the query (``names_an_author``), it is promoted to an author search (Google ``inauthor:``, Open
Library ``author=``, the ISBNdb bibliography) and that page is stored under the text key,
marked ``"kind": "author"``, so a hit costs one read either way. Later pages follow the first
page's decision.

Paging (Google's ``startIndex``): each provider is asked for its window from
``start_index`` and the merge of the windows is the page, keyed by ``start`` from 1 on. A
search entry stores ``{"items", "totalItems"}``; ``totalItems`` is the match count as far as
known: the largest count a provider gave (the merged set holds at least that many), and at
least ``start_index`` plus the items returned. An empty later page is stored as such, not as
"not found". An ISBN search has its one item at index 0.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from bookmeta import (
    CircuitOpen,
    InvalidInput,
    Provisional,
    QueryKind,
    RateLimited,
    TwoTierCache,
    UpstreamError,
    classify,
    extract_isbn,
    isbn_key,
    normalize_key,
    search_key,
)

from .isolate import LoadAnswer
from .merge import merge
from .model import Provider
from .upstreams import Outcome, Upstreams
from .validation import SearchParams
from .volumes import keep_language, to_item

DEFAULT_RETRY_AFTER_S = 30.0
PARTIAL_TTL_MAX_S = 300.0
V = TypeVar("V")
Schedule = Callable[[Coroutine[Any, Any, None]], None]


class AllProvidersFailed(UpstreamError):  # noqa: N818 - reads as the condition, like CircuitOpen
    """Every provider failed and nothing was cached: a 503 with ``retry_after_s``."""

    def __init__(self, failed: Sequence[str], retry_after_s: float) -> None:
        super().__init__("all", 503, "every provider failed: " + ", ".join(failed))
        self.failed = list(failed)
        self.retry_after_s = retry_after_s


class _Partial(Provisional, LoadAnswer):  # control flow, never leaves this module
    """A partial answer: served to the caller, kept briefly (``Provisional``)."""

    def __init__(self, value: Any, failed: list[str], ttl_s: float) -> None:
        super().__init__(value, {"failed": failed}, ttl_s)
        self.failed = failed


@dataclass(frozen=True, slots=True)
class SearchResult:
    """Items to return, which cache tier answered, which providers failed, how many items
    match in all (``totalItems``, as far as known), and which search answered."""

    items: list[dict[str, Any]]
    cache: str
    failed: list[str] = field(default_factory=list)
    total: int = 0
    kind: str = ""


PROMOTION_TOP = 5  # how many of the best text matches the author test looks at


def _name_tokens(key: str) -> list[str]:
    return key.split()


def _same_name(query: list[str], author_key: str) -> bool:
    """The query names this author: the same words, or the same once initials are dropped
    (``ursula le guin`` is Ursula K. Le Guin)."""
    author = _name_tokens(author_key)
    if query == author:
        return True
    full = [t for t in author if len(t) > 1]
    return query == full or [t for t in query if len(t) > 1] == full


def names_an_author(query_key: str, items: Sequence[dict[str, Any]]) -> bool:
    """True when a text query (its ``normalize_key``) is the name of the author of its best
    matches: the first one, or at least half of the first ``PROMOTION_TOP``.

    Two to six words only: one word ("tolkien", "dune") is a text search either way.
    """
    query = _name_tokens(query_key)
    if not 2 <= len(query) <= 6 or not items:
        return False
    best = items[:PROMOTION_TOP]

    def by_query(item: dict[str, Any]) -> bool:
        authors = item.get("volumeInfo", {}).get("authors") or []
        return any(_same_name(query, normalize_key(str(a))) for a in authors)

    hits = [by_query(item) for item in best]
    return hits[0] or 2 * sum(hits) >= len(best)


def retry_after(errors: Sequence[BaseException]) -> float:
    """The soonest retry hint among the failures (breakers, 429s), else a default.

    A spent daily quota (``QuotaExhausted``, hours away) is no hint: it says nothing about when
    the other providers recover.
    """
    hints = [
        e.retry_after_s
        for e in errors
        if isinstance(e, CircuitOpen | RateLimited) and e.retry_after_s is not None
    ]
    positive = [h for h in hints if h > 0]
    return max(1.0, min(positive)) if positive else DEFAULT_RETRY_AFTER_S


def settle(outcomes: Sequence[Outcome], value: V) -> V:
    """Return ``value`` when every provider answered; raise when some or all failed."""
    failed = [o for o in outcomes if not o.ok]
    if not failed:
        return value
    if len(failed) == len(outcomes):
        raise AllProvidersFailed(
            [o.provider for o in failed], retry_after([o.error for o in failed if o.error])
        )
    hint = retry_after([o.error for o in failed if o.error])
    raise _Partial(value, [o.provider for o in failed], min(hint, PARTIAL_TTL_MAX_S))


def by_provider(outcomes: Sequence[Outcome]) -> dict[Provider, list[Any]]:
    """The answered providers' editions, by provider."""
    return {o.provider: list(o.editions) for o in outcomes if o.ok}


def total_items(outcomes: Sequence[Outcome], start_index: int, count: int) -> int:
    """Matches as far as known: the largest provider count, at least what this page shows."""
    known = [o.total for o in outcomes if o.ok and o.total is not None]
    return max([start_index + count, *known])


def page_of(value: Any) -> tuple[list[dict[str, Any]], int, str]:
    """A stored search value as (items, totalItems, kind): a page dict, a negative None, or
    the bare item list older entries hold; ``kind`` is ``author`` for a promoted text page."""
    if isinstance(value, dict):
        items = list(value.get("items") or [])
        return items, int(value.get("totalItems") or 0), str(value.get("kind") or "")
    items = list(value or [])
    return items, len(items), ""


async def _admit_all() -> None:
    """No per-client limit (RPC and internal calls)."""


class Searcher:
    """The proxy's searches over one ``TwoTierCache`` and one ``Upstreams``."""

    def __init__(
        self,
        cache: TwoTierCache,
        upstreams: Upstreams,
        *,
        schedule: Schedule,
        on_lookup: Callable[[str], None] = lambda source: None,
        admit_miss: Callable[[], Awaitable[None]] = _admit_all,
    ) -> None:
        self.cache = cache
        self.upstreams = upstreams
        self.schedule = schedule
        self.on_lookup = on_lookup
        # Called before a load calls any provider: may raise TooManyRequests (the caller's
        # miss limit); a stale entry is then served, or the 429 answered.
        self.admit_miss = admit_miss

    async def _read_through(
        self, key: str, loader: Callable[[], Awaitable[Any]]
    ) -> tuple[Any, str, list[str]]:
        lookup = await self.cache.get_or_load(key, loader, schedule=self.schedule)
        failed = [str(p) for p in (lookup.note or {}).get("failed", [])]
        self.on_lookup("partial" if failed and lookup.source == "miss" else lookup.source)
        return lookup.value, lookup.source, failed

    async def isbn(self, isbn13: str, start_index: int = 0) -> SearchResult:
        """One book by ISBN-13: its merged item (at index 0), or no items."""

        async def load() -> dict[str, Any] | None:
            await self.admit_miss()
            outcomes = await self.upstreams.by_isbn(isbn13)
            merged = merge(by_provider(outcomes), exact_isbn13=isbn13)
            item = to_item(merged[0]) if merged and merged[0].isbn13 == isbn13 else None
            return settle(outcomes, item)

        value, source, failed = await self._read_through(isbn_key(isbn13), load)
        items = [value] if value and start_index == 0 else []
        return SearchResult(items, source, failed, 1 if value else 0)

    async def _fetch(
        self, kind: QueryKind, params: SearchParams, lang_filter: str | None
    ) -> tuple[dict[str, Any] | None, list[Outcome]]:
        """One fan-out for ``kind``: the merged page (None: nothing at all) and the outcomes."""
        start = params.start_index
        outcomes = await self.upstreams.search(
            kind.value,
            params.q,
            max_results=params.max_results,
            lang=lang_filter,
            start_index=start,
        )
        exact = extract_isbn(params.q) if kind is QueryKind.TEXT else None
        merged = merge(by_provider(outcomes), exact_isbn13=exact)
        if lang_filter is not None:
            merged = keep_language(merged, lang_filter)
        items = [to_item(e) for e in merged[: params.max_results]]
        total = total_items(outcomes, start, len(items))
        # Nothing at all is "not found" (a short negative entry); an empty later page
        # of a search that matched is a page like any other.
        page = {"items": items, "totalItems": total} if items or total else None
        return page, list(outcomes)

    async def search(
        self, kind: QueryKind, params: SearchParams, *, promote: bool = False
    ) -> SearchResult:
        """An author, title or text search, cached with its parameters; its text goes upstream
        and into the key as ``normalize_key``. ``promote`` (a text query on its first page):
        an author search answers instead when ``names_an_author`` says so."""
        params = _keyed(params)
        lang_filter = None if params.include_translations else params.lang
        # Keyed by the language only where it filters: translations=false (the warmer's
        # bookmeta.author_warm_key is that key for q=inauthor:<name>&maxResults=40).
        start = params.start_index
        key = search_key(
            kind.value,
            params.q,
            max_results=params.max_results,
            lang=lang_filter,
            translations=params.include_translations,
            start=start,
        )

        async def load() -> dict[str, Any] | None:
            await self.admit_miss()
            page, outcomes = await self._fetch(kind, params, lang_filter)
            if promote and page is not None and names_an_author(params.q, page["items"]):
                by_author, author_outcomes = await self._fetch(
                    QueryKind.AUTHOR, params, lang_filter
                )
                if by_author is not None:
                    return settle(author_outcomes, {**by_author, "kind": "author"})
            return settle(outcomes, page)

        value, source, failed = await self._read_through(key, load)
        items, total, answered = page_of(value)
        return SearchResult(items[: params.max_results], source, failed, total, answered)

    async def auto(self, params: SearchParams) -> SearchResult:
        """Classify ``q`` and run the matching search (module docstring: "Query form").

        Raises:
            InvalidInput: an ``isbn:`` prefix without a valid ISBN, or a query with nothing
                to search after its prefix (no letter or digit).
        """
        query = classify(params.q)
        if query.kind is QueryKind.ISBN:
            assert query.isbn13 is not None
            return await self.isbn(query.isbn13, params.start_index)
        narrowed = replace(params, q=_nonempty(query.text))  # search() puts q in its key form
        if query.kind is not QueryKind.TEXT:
            return await self.search(query.kind, narrowed)
        first = await self.search(QueryKind.TEXT, replace(narrowed, start_index=0), promote=True)
        if narrowed.start_index == 0:
            return first
        # A later page pages through what the first page was: the author search or the text.
        kind = QueryKind.AUTHOR if first.kind == "author" else QueryKind.TEXT
        return await self.search(kind, narrowed)


def _keyed(params: SearchParams) -> SearchParams:
    """``params`` with ``q`` in its key form, refused when nothing searchable is left."""
    key = normalize_key(params.q)
    if not key:
        raise InvalidInput("q", "has no letter or digit to search for")
    return params if key == params.q else replace(params, q=key)


def _nonempty(text: str) -> str:
    if not text:
        raise InvalidInput("q", "must not be empty after its prefix")
    return text
