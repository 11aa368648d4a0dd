"""Google Books v1: ``GET {base}/volumes?q=...`` (keyless or with ``key``).

Quirks handled here (REFERENCE.md): the ``isbn:`` keyword must be lower-case; an ISBN query
sometimes answers with another book, so ISBN results that do not carry the asked ISBN are
dropped; ``items`` is absent when there are none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from bookmeta import InvalidISBN, UpstreamError, canonical, request_json

from ..dates import normalize_date
from ..languages import normalize_language
from ..model import Edition, Identifier, Page, Provider
from . import _fields as f

PROVIDER: Provider = "google"
ISBN_LOOKUP_MAX_RESULTS = 10


def isbn_query(isbn13: str) -> str:
    """The ``q`` of an ISBN lookup (lower-case keyword: ``ISBN:`` is a fuzzy text search)."""
    return f"isbn:{isbn13}"


def search_query(kind: str, text: str) -> str:
    """The ``q`` of an author, title or free-text search; phrases are quoted."""
    phrase = text.replace('"', " ").strip()
    if kind == "author":
        return f'inauthor:"{phrase}"'
    if kind == "title":
        return f'intitle:"{phrase}"'
    return phrase


def _isbn13_of(identifiers: tuple[Identifier, ...]) -> str | None:
    for wanted in ("ISBN_13", "ISBN_10"):
        for ident in identifiers:
            if ident.type == wanted:
                try:
                    return canonical(ident.identifier)
                except InvalidISBN:
                    continue
    return None


def _identifiers(info: Mapping[str, Any]) -> tuple[Identifier, ...]:
    raw = info.get("industryIdentifiers")
    if not isinstance(raw, list):
        return ()
    out: list[Identifier] = []
    for item in raw:
        if not isinstance(item, Mapping):
            continue
        kind, ident = f.text(item, "type"), f.text(item, "identifier")
        if kind and ident and Identifier(kind, ident) not in out:
            out.append(Identifier(kind, ident))
    return tuple(out)


def _image_links(info: Mapping[str, Any]) -> dict[str, str]:
    links = f.mapping(info, "imageLinks")
    return {k: f.https(v) for k, v in links.items() if isinstance(v, str) and v}


def parse_item(item: Mapping[str, Any]) -> Edition | None:
    """Map one ``volumes`` item; None when it has no title."""
    info = f.mapping(item, "volumeInfo")
    title = f.text(info, "title")
    if title is None:
        return None
    identifiers = _identifiers(info)
    return Edition(
        providers=(PROVIDER,),
        title=title,
        isbn13=_isbn13_of(identifiers),
        volume_id=f.text(item, "id"),
        subtitle=f.text(info, "subtitle"),
        authors=f.texts(info, "authors"),
        publisher=f.text(info, "publisher"),
        published_date=normalize_date(info.get("publishedDate")),
        description=f.text(info, "description"),
        identifiers=identifiers,
        page_count=f.positive_int(info, "pageCount"),
        categories=f.texts(info, "categories"),
        image_links=_image_links(info),
        language=normalize_language(info.get("language")),
    )


def parse_volumes(data: Any) -> list[Edition]:
    """Map a ``volumes`` response; a missing ``items`` (no results) gives []."""
    if not isinstance(data, Mapping):
        return []
    items = data.get("items")
    if not isinstance(items, list):
        return []
    parsed = (parse_item(item) for item in items if isinstance(item, Mapping))
    return [edition for edition in parsed if edition is not None]


def parse_total(data: Any) -> int | None:
    """``totalItems``, Google's count of every match (not the page's length), if sane."""
    if not isinstance(data, Mapping):
        return None
    total = data.get("totalItems")
    if isinstance(total, int) and not isinstance(total, bool) and total >= 0:
        return total
    return None


def only_isbn(editions: list[Edition], isbn13: str) -> list[Edition]:
    """Keep the editions that really carry ``isbn13`` (Google sometimes answers another book)."""
    return [e for e in editions if e.isbn13 == isbn13]


async def fetch_volumes(
    client: httpx.AsyncClient,
    base_url: str,
    *,
    q: str,
    max_results: int,
    key: str | None,
    lang: str | None,
    now: float,
    timeout_s: float,
    start_index: int = 0,
) -> Page:
    """Query ``/volumes`` from ``start_index`` and map the page (and Google's match count).

    Raises:
        UpstreamError: the call failed (``RateLimited`` on 429) or the answer is malformed.
    """
    params: dict[str, str | int] = {"q": q, "maxResults": max_results, "printType": "books"}
    if start_index:
        params["startIndex"] = start_index
    if lang:
        params["langRestrict"] = lang
    if key:
        params["key"] = key
    resp = await request_json(
        client,
        "GET",
        f"{base_url.rstrip('/')}/volumes",
        provider=PROVIDER,
        now=now,
        params=params,
        timeout_s=timeout_s,
    )
    if resp.status == 404:
        return Page([], 0)
    if resp.data is not None and not isinstance(resp.data, Mapping):
        raise UpstreamError(PROVIDER, None, "unexpected response shape")
    return Page(parse_volumes(resp.data), parse_total(resp.data))
