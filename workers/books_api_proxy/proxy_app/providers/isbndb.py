"""ISBNdb through the ``ISBNDB_WORKER`` service binding, never ISBNdb directly.

HTTP over the binding (absolute URLs), like the original design, so the request id
(``x-request-id``, added by the binding's ObservedService) follows a search into the
isbndb worker's logs; RPC cannot carry it. Every request says its purpose in the
``x-isbndb-purpose`` header (public searches ``public``, ``warm_isbns`` ``warm``), so the
worker's key guard keeps the warming reserve for warming. The worker returns normalized
books (ARCHITECTURE.md) and, on failure, ``{"error": {"code", "message", ...}}`` with an
HTTP status, which is turned back into our exception tree here (a spent quota is
``QuotaExhausted``: not ISBNdb failing, so no breaker counts it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from bookmeta import (
    PURPOSE_HEADER,
    BookmetaError,
    InvalidISBN,
    Purpose,
    QuotaExhausted,
    RateLimited,
    Request,
    Response,
    Service,
    UpstreamError,
    canonical,
    parse_json,
    parse_retry_after,
    to_isbn10,
)

from ..dates import normalize_date
from ..languages import normalize_language
from ..model import Edition, Identifier, Provider
from . import _fields as f

PROVIDER: Provider = "isbndb"
BASE_URL = "https://isbndb-worker.internal"


@dataclass(frozen=True, slots=True)
class BulkResult:
    """What one ``books(isbns)`` call found, by requested ISBN-13, and what it did not.

    ``found`` maps each requested ISBN-13 to the edition answering it, whose own ``isbn13``
    may differ: ISBNdb matches an ISBN through a book's ``other_isbns`` (an alias).
    """

    found: dict[str, Edition] = field(default_factory=dict)
    not_found: list[str] = field(default_factory=list)

    def editions(self) -> list[Edition]:
        """The distinct editions found (by ISBN-13), in request order."""
        unique: dict[str | None, Edition] = {}
        for edition in self.found.values():
            unique.setdefault(edition.isbn13, edition)
        return list(unique.values())

    def aliases(self) -> dict[str, str]:
        """Requested ISBN-13 -> the ISBN-13 of the edition answering it, where they differ."""
        return {
            requested: edition.isbn13
            for requested, edition in self.found.items()
            if edition.isbn13 is not None and edition.isbn13 != requested
        }


def _subtitle(title: str, title_long: str | None) -> str | None:
    if not title_long or title_long == title:
        return None
    for sep in (": ", " - ", " — "):
        head = title + sep
        if title_long.startswith(head) and title_long[len(head) :].strip():
            return title_long[len(head) :].strip()
    return None


def parse_book(book: Mapping[str, Any]) -> Edition | None:
    """Map one normalized Book; None without a title or a valid ISBN-13."""
    title = f.text(book, "title") or f.text(book, "title_long")
    raw_isbn = f.text(book, "isbn13") or f.text(book, "isbn10")
    if title is None or raw_isbn is None:
        return None
    try:
        isbn13 = canonical(raw_isbn)
    except InvalidISBN:
        return None
    ids = [Identifier("ISBN_13", isbn13)]
    isbn10 = to_isbn10(isbn13)
    if isbn10 is not None:
        ids.append(Identifier("ISBN_10", isbn10))
    image = f.text(book, "image")
    return Edition(
        providers=(PROVIDER,),
        title=title,
        isbn13=isbn13,
        subtitle=_subtitle(title, f.text(book, "title_long")),
        authors=f.texts(book, "authors"),
        publisher=f.text(book, "publisher"),
        published_date=normalize_date(book.get("date_published")),
        description=f.text(book, "synopsis"),
        identifiers=tuple(ids),
        page_count=f.positive_int(book, "pages"),
        categories=f.texts(book, "subjects")[:5],
        image_links={"smallThumbnail": image, "thumbnail": image} if image else {},
        language=normalize_language(book.get("language")),
    )


def parse_books(items: Any) -> list[Edition]:
    """Map a list of Books, skipping unusable entries."""
    if not isinstance(items, list):
        return []
    parsed = (parse_book(b) for b in items if isinstance(b, Mapping))
    return [edition for edition in parsed if edition is not None]


def raise_for_error(result: Any) -> Mapping[str, Any]:
    """Return a worker result, or raise what its ``{"error": ...}`` describes.

    Raises:
        QuotaExhausted: the worker's key guard says the day's quota (or this purpose's
            share) is spent (429 ``quota_exhausted``).
        RateLimited: the worker reported another 429.
        UpstreamError: any other error (``status`` kept, so a 404 does not trip a breaker),
            or a result that is not an object.
    """
    if not isinstance(result, Mapping):
        raise UpstreamError(PROVIDER, None, "unexpected isbndb worker result")
    error = result.get("error")
    if error is None:
        return result
    err = error if isinstance(error, Mapping) else {}
    status = err.get("status")
    status = status if isinstance(status, int) and not isinstance(status, bool) else None
    message = f.text(err, "code") or "error"
    retry_after = err.get("retryAfter")
    retry_s = float(retry_after) if isinstance(retry_after, int | float) else None
    if status == 429 and message == "quota_exhausted":
        detail = f.text(err, "message") or "ISBNdb daily quota spent"
        raise QuotaExhausted(PROVIDER, detail, retry_after_s=retry_s)
    if status == 429:
        raise RateLimited(PROVIDER, message, retry_after_s=retry_s)
    raise UpstreamError(PROVIDER, status, message)


def result_of(response: Response) -> Any:
    """The JSON body of a worker answer, with the HTTP status folded into ``error``."""
    try:
        body = parse_json(response.body, param="response")
    except ValueError:
        raise UpstreamError(PROVIDER, None, "isbndb worker sent no JSON") from None
    if response.status < 400:
        return body
    error = (
        dict(body["error"])
        if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping)
        else {}
    )
    error["status"] = response.status
    seconds = response.headers.get("retry-after", "").strip()
    if seconds.isascii() and seconds.isdigit():  # the worker sends delta-seconds only
        error.setdefault("retryAfter", parse_retry_after(seconds, now=0.0))
    return {"error": error}


async def _send(service: Service, request: Request) -> Any:
    """The worker's answer to ``request``; a binding that throws is this provider's failure."""
    try:
        response = await service.fetch(request)
    except BookmetaError:
        raise
    except Exception as exc:  # the runtime's error for a lost or crashed callee
        raise UpstreamError(PROVIDER, None, f"binding error: {type(exc).__name__}") from None
    return result_of(response)


def _headers(purpose: Purpose, **extra: str) -> dict[str, str]:
    return {"accept": "application/json", PURPOSE_HEADER: purpose.value, **extra}


async def _get(service: Service, path: str, query: Mapping[str, str | int] | None = None) -> Any:
    url = f"{BASE_URL}{path}" + (f"?{urlencode(query)}" if query else "")
    return await _send(service, Request("GET", url, _headers(Purpose.PUBLIC)))


async def fetch_author(
    service: Service, name: str, *, page_size: int, language: str
) -> list[Edition]:
    """First page of an author's bibliography (one call over the binding)."""
    query: dict[str, str | int] = {"page": 1, "pageSize": page_size}
    if language:
        query["language"] = language
    result = raise_for_error(await _get(service, f"/author/{quote(name, safe='')}", query))
    return parse_books(result.get("books"))


async def fetch_book(service: Service, isbn13: str) -> Edition | None:
    """One book by ISBN; None when the worker answers 404 ``not_found``."""
    try:
        result = raise_for_error(await _get(service, f"/book/{isbn13}"))
    except UpstreamError as exc:
        if exc.status == 404:
            return None
        raise
    book = result.get("book")
    return parse_book(book) if isinstance(book, Mapping) else None


async def fetch_bulk(
    service: Service, isbns: Sequence[str], *, purpose: Purpose = Purpose.PUBLIC
) -> BulkResult:
    """Many books in one binding call (the isbndb worker chunks for its plan).

    Each requested ISBN is matched through the worker's ``matches`` (requested ISBN-13 ->
    the ``isbn13`` of the book answering it, an alias when ISBNdb found it in
    ``other_isbns``); a book with the requested ISBN-13 itself always wins over an alias.
    Without ``matches`` (an older worker) only by the book's own ISBN-13.
    """
    body = json.dumps({"isbns": list(isbns)}).encode("utf-8")
    headers = _headers(purpose, **{"content-type": "application/json"})
    request = Request("POST", f"{BASE_URL}/books", headers, body)
    result = raise_for_error(await _send(service, request))
    by_isbn13 = {e.isbn13: e for e in parse_books(result.get("books")) if e.isbn13}
    raw_matches = result.get("matches")
    matches: Mapping[Any, Any] = raw_matches if isinstance(raw_matches, Mapping) else {}
    found: dict[str, Edition] = {}
    for isbn13 in isbns:
        # A book's own record first: an alias only where nothing has the exact ISBN-13.
        target = isbn13 if isbn13 in by_isbn13 else matches.get(isbn13)
        edition = by_isbn13.get(target) if isinstance(target, str) else None
        if edition is not None:
            found[isbn13] = edition
    not_found = [i for i in isbns if i not in found]
    return BulkResult(found, not_found)
