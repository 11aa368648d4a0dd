"""The provider-neutral record every provider maps into and the merge works on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Provider = Literal["google", "isbndb", "openlibrary"]
# Priority for "first non-empty" merge rules and for ranking ties.
PROVIDERS: tuple[Provider, ...] = ("google", "isbndb", "openlibrary")


@dataclass(frozen=True, slots=True)
class Identifier:
    """One Google-style industry identifier (``ISBN_13``, ``ISBN_10``, ``ISSN``, ``OTHER``)."""

    type: str
    identifier: str


@dataclass(frozen=True, slots=True)
class Edition:
    """One book as a provider (or the merge of several) describes it.

    ``isbn13`` is the key the merge groups by. ``work_isbn13s`` is only set for an Open Library
    work (a search doc), which lists the ISBNs of all its editions: the merge folds such a work
    into an edition carrying one of them. ``published_date`` is ISO-like: ``YYYY``, ``YYYY-MM``
    or ``YYYY-MM-DD``. ``language`` is a lower-case ISO 639-1 code when one is known.
    """

    providers: tuple[Provider, ...]
    title: str
    isbn13: str | None = None
    volume_id: str | None = None
    subtitle: str | None = None
    authors: tuple[str, ...] = ()
    publisher: str | None = None
    published_date: str | None = None
    description: str | None = None
    identifiers: tuple[Identifier, ...] = ()
    page_count: int | None = None
    categories: tuple[str, ...] = ()
    image_links: Mapping[str, str] = field(default_factory=dict)
    language: str | None = None
    work_isbn13s: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a provider's search: its editions and, when it says, how many match."""

    editions: list[Edition]
    total: int | None = None
