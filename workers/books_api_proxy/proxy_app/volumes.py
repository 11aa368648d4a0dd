"""Response shaping: merged editions as Google Books ``volumes`` items, and the envelope."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .model import Edition

KIND = "books#volumes"


def to_item(edition: Edition) -> dict[str, Any]:
    """One ``items[]`` entry: ``id``, ``volumeInfo`` (Google's field names) and ``providers``.

    Absent values are left out of ``volumeInfo``, as Google does. The id is Google's volume
    id when Google contributed, else ``isbn:{isbn13}``, else the provider and title.
    """
    info: dict[str, Any] = {"title": edition.title}
    if edition.subtitle:
        info["subtitle"] = edition.subtitle
    if edition.authors:
        info["authors"] = list(edition.authors)
    if edition.publisher:
        info["publisher"] = edition.publisher
    if edition.published_date:
        info["publishedDate"] = edition.published_date
    if edition.description:
        info["description"] = edition.description
    if edition.identifiers:
        info["industryIdentifiers"] = [
            {"type": i.type, "identifier": i.identifier} for i in edition.identifiers
        ]
    if edition.page_count:
        info["pageCount"] = edition.page_count
    if edition.categories:
        info["categories"] = list(edition.categories)
    if edition.image_links:
        info["imageLinks"] = dict(edition.image_links)
    if edition.language:
        info["language"] = edition.language
    return {"id": item_id(edition), "volumeInfo": info, "providers": list(edition.providers)}


def item_id(edition: Edition) -> str:
    """A stable id for an item (see ``to_item``)."""
    if edition.volume_id:
        return edition.volume_id
    if edition.isbn13:
        return f"isbn:{edition.isbn13}"
    return f"{edition.providers[0]}:{edition.title}"


def keep_language(editions: Sequence[Edition], lang: str) -> list[Edition]:
    """Keep the editions known to be in ``lang``: an unknown language is not ``lang``.

    (Providers asked to filter by ``lang`` vouch for their answers: see ``Upstreams.search``.)
    """
    return [e for e in editions if e.language == lang]


def envelope(
    items: Sequence[dict[str, Any]],
    *,
    cache: str,
    failed: Sequence[str] = (),
    total: int | None = None,
) -> dict[str, Any]:
    """The response body: ``kind``, ``totalItems``, ``items``, ``cache`` (+ ``failedProviders``).

    ``totalItems`` is ``total``, the match count as far as known (at least the items'
    number); ``failedProviders`` appears only on a partial answer (some provider failed).
    """
    body: dict[str, Any] = {
        "kind": KIND,
        "totalItems": max(len(items), total or 0),
        "items": list(items),
        "cache": cache,
    }
    if failed:
        body["failedProviders"] = list(failed)
    return body
