"""Open Library: the Books API for ISBN batches and ``search.json`` for author/title/text.

Keyless, but it wants a User-Agent naming the app and a contact (REFERENCE.md: without the
contact it has answered 403). ``format=json`` is required on the Books API (the default is
JavaScript). Search docs are works, not editions: their ISBNs are those of every edition.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from bookmeta import InvalidISBN, UpstreamError, canonical, request_json, to_isbn10

from ..dates import normalize_date
from ..languages import normalize_language
from ..model import Edition, Identifier, Page, Provider
from . import _fields as f

PROVIDER: Provider = "openlibrary"
BATCH_MAX = 50
APP_NAME = "BookMetadataProxy/1.0"
SEARCH_FIELDS = (
    "key,title,subtitle,author_name,first_publish_year,publisher,isbn,language,"
    "cover_i,number_of_pages_median,subject"
)
COVER_URL = "https://covers.openlibrary.org/b/id/{cover_id}-{size}.jpg"


def user_agent(contact_email: str) -> str:
    """The identifying User-Agent: app name and contact."""
    return f"{APP_NAME} (+mailto:{contact_email})" if contact_email else APP_NAME


def bibkeys(isbns: Sequence[str]) -> str:
    """The ``bibkeys`` parameter for a batch of ISBN-13s."""
    return ",".join(f"ISBN:{isbn}" for isbn in isbns)


def batches(isbns: Sequence[str], size: int = BATCH_MAX) -> list[list[str]]:
    """Split ``isbns`` into batches of at most ``size`` (the Books API's modest limit)."""
    return [list(isbns[i : i + size]) for i in range(0, len(isbns), size)]


def _names(records: Any) -> tuple[str, ...]:
    if not isinstance(records, list):
        return ()
    out: list[str] = []
    for record in records:
        name = record if isinstance(record, str) else None
        if isinstance(record, Mapping):
            name = f.text(record, "name")
        if name and name.strip() and name.strip() not in out:
            out.append(name.strip())
    return tuple(out)


def _isbn13s(values: Any) -> list[str]:
    out: list[str] = []
    if not isinstance(values, list):
        return out
    for value in values:
        if not isinstance(value, str):
            continue
        try:
            isbn = canonical(value)
        except InvalidISBN:
            continue
        if isbn not in out:
            out.append(isbn)
    return out


def _isbn_identifiers(isbn13: str) -> tuple[Identifier, ...]:
    isbn10 = to_isbn10(isbn13)
    ids = [Identifier("ISBN_13", isbn13)]
    if isbn10 is not None:
        ids.append(Identifier("ISBN_10", isbn10))
    return tuple(ids)


def _cover_links(cover: Mapping[str, Any]) -> dict[str, str]:
    links: dict[str, str] = {}
    for ours, theirs in (("smallThumbnail", "small"), ("thumbnail", "medium"), ("large", "large")):
        url = f.text(cover, theirs)
        if url:
            links[ours] = f.https(url)
    return links


def parse_book(isbn13: str, record: Mapping[str, Any]) -> Edition | None:
    """Map one Books API (``jscmd=data``) record, asked for as ``ISBN:{isbn13}``."""
    title = f.text(record, "title")
    if title is None:
        return None
    return Edition(
        providers=(PROVIDER,),
        title=title,
        isbn13=isbn13,
        subtitle=f.text(record, "subtitle"),
        authors=_names(record.get("authors")),
        publisher=next(iter(_names(record.get("publishers"))), None),
        published_date=normalize_date(record.get("publish_date")),
        identifiers=_isbn_identifiers(isbn13),
        page_count=f.positive_int(record, "number_of_pages"),
        categories=_names(record.get("subjects"))[:5],
        image_links=_cover_links(f.mapping(record, "cover")),
    )


def parse_books(data: Any) -> dict[str, Edition]:
    """Map a Books API answer (keyed ``ISBN:...``) to editions by ISBN-13."""
    if not isinstance(data, Mapping):
        return {}
    out: dict[str, Edition] = {}
    for bibkey, record in data.items():
        if not isinstance(bibkey, str) or not isinstance(record, Mapping):
            continue
        try:
            isbn13 = canonical(bibkey.removeprefix("ISBN:"))
        except InvalidISBN:
            continue
        edition = parse_book(isbn13, record)
        if edition is not None:
            out[isbn13] = edition
    return out


def parse_doc(doc: Mapping[str, Any]) -> Edition | None:
    """Map one ``search.json`` doc (a work): its editions' ISBN-13s in ``work_isbn13s``.

    A work claims no ISBN of its own (any one of them may be a translation's); its date is
    ``first_publish_year``, the work's, which the merge never gives an edition.
    """
    title = f.text(doc, "title")
    if title is None:
        return None
    isbns = _isbn13s(doc.get("isbn"))
    languages = [code for code in map(normalize_language, f.texts(doc, "language")) if code]
    cover_id = f.positive_int(doc, "cover_i")
    links = (
        {
            "smallThumbnail": COVER_URL.format(cover_id=cover_id, size="S"),
            "thumbnail": COVER_URL.format(cover_id=cover_id, size="M"),
        }
        if cover_id
        else {}
    )
    return Edition(
        providers=(PROVIDER,),
        title=title,
        subtitle=f.text(doc, "subtitle"),
        authors=f.texts(doc, "author_name"),
        publisher=next(iter(f.texts(doc, "publisher")), None),
        published_date=normalize_date(doc.get("first_publish_year")),
        page_count=f.positive_int(doc, "number_of_pages_median"),
        categories=f.texts(doc, "subject")[:5],
        image_links=links,
        # A work in several languages has no one language: unknown is kept by the filter.
        language=languages[0] if len(set(languages)) == 1 else None,
        work_isbn13s=frozenset(isbns),
    )


def parse_search(data: Any) -> list[Edition]:
    """Map a ``search.json`` answer."""
    if not isinstance(data, Mapping):
        return []
    docs = data.get("docs")
    if not isinstance(docs, list):
        return []
    parsed = (parse_doc(doc) for doc in docs if isinstance(doc, Mapping))
    return [edition for edition in parsed if edition is not None]


def parse_total(data: Any) -> int | None:
    """``num_found``: how many works match (not the page's length), if sane."""
    if not isinstance(data, Mapping):
        return None
    total = data.get("num_found", data.get("numFound"))
    if isinstance(total, int) and not isinstance(total, bool) and total >= 0:
        return total
    return None


def search_params(kind: str, text: str, limit: int, offset: int = 0) -> dict[str, str | int]:
    """``search.json`` parameters: ``author=``, ``title=`` or ``q=`` by query kind."""
    field = {"author": "author", "title": "title"}.get(kind, "q")
    params: dict[str, str | int] = {field: text, "limit": limit, "fields": SEARCH_FIELDS}
    if offset:
        params["offset"] = offset
    return params


async def _get(
    client: httpx.AsyncClient,
    url: str,
    params: Mapping[str, str | int],
    *,
    contact_email: str,
    now: float,
    timeout_s: float,
) -> Any:
    resp = await request_json(
        client,
        "GET",
        url,
        provider=PROVIDER,
        now=now,
        params=params,
        headers={"user-agent": user_agent(contact_email), "accept": "application/json"},
        timeout_s=timeout_s,
    )
    if resp.status == 404:
        return None
    if resp.data is not None and not isinstance(resp.data, Mapping):
        raise UpstreamError(PROVIDER, None, "unexpected response shape")
    return resp.data


async def fetch_books(
    client: httpx.AsyncClient,
    base_url: str,
    isbns: Sequence[str],
    *,
    contact_email: str,
    now: float,
    timeout_s: float,
) -> dict[str, Edition]:
    """One Books API call for up to ``BATCH_MAX`` ISBN-13s.

    Raises:
        UpstreamError: the call failed or the answer is malformed.
    """
    if len(isbns) > BATCH_MAX:
        raise ValueError(f"at most {BATCH_MAX} ISBNs per Open Library batch")
    params = {"bibkeys": bibkeys(isbns), "format": "json", "jscmd": "data"}
    data = await _get(
        client,
        f"{base_url.rstrip('/')}/api/books",
        params,
        contact_email=contact_email,
        now=now,
        timeout_s=timeout_s,
    )
    return parse_books(data)


async def fetch_search(
    client: httpx.AsyncClient,
    base_url: str,
    *,
    kind: str,
    text: str,
    limit: int,
    contact_email: str,
    now: float,
    timeout_s: float,
    offset: int = 0,
) -> Page:
    """One ``search.json`` call for ``limit`` works from ``offset``, with the match count.

    Raises:
        UpstreamError: the call failed or the answer is malformed.
    """
    data = await _get(
        client,
        f"{base_url.rstrip('/')}/search.json",
        search_params(kind, text, limit, offset),
        contact_email=contact_email,
        now=now,
        timeout_s=timeout_s,
    )
    return Page(parse_search(data), 0 if data is None else parse_total(data))
