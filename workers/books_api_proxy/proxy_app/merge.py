"""Merge the providers' editions into one list, by ISBN-13, ranked. Pure.

Rules for editions sharing an ISBN-13 (``PROVIDERS`` order is the priority):

* identifiers: the union (ISBN-13s, then ISBN-10s, then the rest, without duplicates);
* title: the cleaner one, i.e. the shortest non-empty title (ties: priority), so
  ``"Dune"`` beats ``"Dune (Dune Chronicles, Book 1)"``;
* authors: the longest list (ties: priority);
* published date: the earliest (``2005`` counts as the end of 2005, see ``date_sort_key``);
* everything else (subtitle, publisher, description, cover, pages, categories, language,
  Google volume id): the first non-empty value by priority;
* providers: every provider that contributed.

An Open Library work (a search doc, listing the ISBNs of all its editions) is folded into the
first-ranked edition carrying one of them, where it only fills what the editions left empty
(subtitle, authors, description, cover, categories, language) and never anything that belongs
to one edition: its ``first_publish_year`` is not the edition's date, its median page count
and first-listed publisher not the edition's, its other ISBNs not the edition's identifiers.
A work that folds into nothing stands alone as a work: no ISBN (its first one may be a
translation's), its first publication year as its date. Editions without an ISBN are never
merged.

Ranking: exact ISBN matches first, then by best position in any provider's list, then by
provider priority, then by first appearance.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from .dates import date_sort_key
from .model import PROVIDERS, Edition, Identifier, Provider

T = TypeVar("T")
_ISBN_TYPES = ("ISBN_13", "ISBN_10")


@dataclass(frozen=True, slots=True)
class _Member:
    priority: int
    position: int
    edition: Edition


def _priority(provider: Provider) -> int:
    return PROVIDERS.index(provider)


def _first(members: Sequence[_Member], get: Callable[[Edition], T | None]) -> T | None:
    for member in members:
        value = get(member.edition)
        if value:
            return value
    return None


def _identifiers(members: Sequence[_Member], isbn13: str | None) -> tuple[Identifier, ...]:
    seen: list[Identifier] = []
    for member in members:
        ids = member.edition.identifiers
        if member.edition.work_isbn13s and isbn13 is not None:
            # A folded work contributes the matched edition's ISBNs, not all of its own.
            ids = tuple(i for i in ids if i.type not in _ISBN_TYPES)
        for ident in ids:
            if ident not in seen:
                seen.append(ident)

    def order(ident: Identifier) -> int:
        return _ISBN_TYPES.index(ident.type) if ident.type in _ISBN_TYPES else len(_ISBN_TYPES)

    return tuple(sorted(seen, key=order))


def _merge(members: Sequence[_Member]) -> Edition:
    members = sorted(members, key=lambda m: (m.priority, m.position))
    editions = [m for m in members if not m.edition.work_isbn13s]
    works = [m for m in members if m.edition.work_isbn13s]
    if not editions:
        return _as_work(works)
    isbn13 = next((m.edition.isbn13 for m in editions if m.edition.isbn13), None)
    title = min((m.edition.title for m in editions if m.edition.title), key=len, default="")
    dates = [m.edition.published_date for m in editions if m.edition.published_date]
    providers = sorted({p for m in members for p in m.edition.providers}, key=_priority)

    def filled(get: Callable[[Edition], T | None]) -> T | None:
        """The editions' value, else what a folded work says (for work-level fields only)."""
        return _first(editions, get) or _first(works, get)

    return Edition(
        providers=tuple(providers),
        title=title or works[0].edition.title,
        isbn13=isbn13,
        volume_id=_first(editions, lambda e: e.volume_id),
        subtitle=filled(lambda e: e.subtitle),
        authors=max((m.edition.authors for m in editions), key=len)
        or filled(lambda e: e.authors)
        or (),
        publisher=_first(editions, lambda e: e.publisher),
        published_date=min(dates, key=date_sort_key) if dates else None,
        description=filled(lambda e: e.description),
        identifiers=_identifiers(members, isbn13),
        page_count=_first(editions, lambda e: e.page_count),
        categories=filled(lambda e: e.categories) or (),
        image_links=filled(lambda e: dict(e.image_links)) or {},
        language=filled(lambda e: e.language),
    )


def _as_work(works: Sequence[_Member]) -> Edition:
    """A work that folded into no edition: itself, without any one edition's ISBN."""
    work = works[0].edition
    identifiers = tuple(i for i in work.identifiers if i.type not in _ISBN_TYPES)
    return replace(work, isbn13=None, identifiers=identifiers)


def merge(
    results: Mapping[Provider, Sequence[Edition]], *, exact_isbn13: str | None = None
) -> list[Edition]:
    """Merge every provider's list into one ranked list (see the module docstring)."""
    groups: dict[str, list[_Member]] = {}
    works: list[_Member] = []
    for provider in PROVIDERS:
        for position, edition in enumerate(results.get(provider, ())):
            member = _Member(_priority(provider), position, edition)
            if edition.work_isbn13s:
                works.append(member)
            elif edition.isbn13 is None:
                groups[f"{provider}#{position}"] = [member]
            else:
                groups.setdefault(edition.isbn13, []).append(member)
    for member in works:
        matched = next((key for key in groups if key in member.edition.work_isbn13s), None)
        key = matched or f"{PROVIDERS[member.priority]}#{member.position}"
        groups.setdefault(key, []).append(member)
    order = {key: i for i, key in enumerate(groups)}

    def rank(key: str) -> tuple[bool, int, int, int]:
        members = groups[key]
        return (
            exact_isbn13 is None or key != exact_isbn13,
            min(m.position for m in members),
            min(m.priority for m in members),
            order[key],
        )

    return [_merge(groups[key]) for key in sorted(groups, key=rank)]
