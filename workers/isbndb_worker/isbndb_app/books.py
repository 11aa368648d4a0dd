"""ISBNdb v2 payloads -> one normalized `Book` shape. Pure: no I/O, never crashes on odd data.

Field rules: strings are trimmed (empty -> None); lists keep their string items; ``pages`` is a
positive int or None; ``date_published`` stays a string (often just a year); ``synopsis`` is
read from ``synopsis`` or the older spelling ``synopsys``; ``image_original`` (a signed URL that
expires within hours) is never read. A book without a valid ISBN is skipped (None).
A payload whose envelope is not the documented shape raises `UpstreamError` (-> 502).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bookmeta import InvalidISBN, UpstreamError, canonical, drop_format_chars, to_isbn10

PROVIDER = "isbndb"
_MAX_ISBN_CHARS = 32
_MAX_PAGE_DIGITS = 9


@dataclass(frozen=True, slots=True)
class Book:
    """A normalized ISBNdb book; ``as_dict`` is its JSON (and RPC) form."""

    isbn13: str
    isbn10: str | None
    title: str | None
    title_long: str | None
    authors: tuple[str, ...]
    publisher: str | None
    date_published: str | None
    language: str | None
    pages: int | None
    binding: str | None
    image: str | None
    synopsis: str | None
    subjects: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """A fresh plain dict (lists, not tuples: RPC cannot carry tuples)."""
        return {
            "isbn13": self.isbn13,
            "isbn10": self.isbn10,
            "title": self.title,
            "title_long": self.title_long,
            "authors": list(self.authors),
            "publisher": self.publisher,
            "date_published": self.date_published,
            "language": self.language,
            "pages": self.pages,
            "binding": self.binding,
            "image": self.image,
            "synopsis": self.synopsis,
            "subjects": list(self.subjects),
        }


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = drop_format_chars(value).strip()  # no bidi overrides in displayed text
    return value or None


def _texts(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    seen: dict[str, None] = {}
    for item in items:
        text = _text(item)
        if text is not None:
            seen.setdefault(text, None)
    return tuple(seen)


def _date(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _text(value)


def _pages(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        digits = value.strip()
        # At most 9 ASCII digits: int() refuses "²" (isdigit accepts it) and > 4,300 digits.
        if digits.isascii() and digits.isdigit() and len(digits) <= _MAX_PAGE_DIGITS:
            value = int(digits)
    if isinstance(value, int) and 0 < value < 1_000_000:
        return value
    return None


def _image(value: Any) -> str | None:
    url = _text(value)
    if url is None or not url.startswith(("https://", "http://")):
        return None
    return url


def _isbn13(value: Any) -> str | None:
    if not isinstance(value, str | int) or isinstance(value, bool):
        return None
    text = str(value)
    if len(text) > _MAX_ISBN_CHARS:
        return None
    try:
        return canonical(text)
    except InvalidISBN:
        return None


def isbn_aliases(raw: Any) -> frozenset[str]:
    """Canonical ISBN-13s a raw book answers to: ``isbn13``, ``isbn`` and ``other_isbns``."""
    if not isinstance(raw, dict):
        return frozenset()
    candidates: list[Any] = [raw.get("isbn13"), raw.get("isbn"), raw.get("isbn10")]
    others = raw.get("other_isbns")
    if isinstance(others, list):
        for other in others:
            candidates.append(other.get("isbn") if isinstance(other, dict) else other)
    return frozenset(filter(None, (_isbn13(c) for c in candidates)))


def parse_book(raw: Any) -> Book | None:
    """Normalize one raw ISBNdb book; None when it is not an object or has no valid ISBN."""
    if not isinstance(raw, dict):
        return None
    isbn13 = _isbn13(raw.get("isbn13")) or _isbn13(raw.get("isbn")) or _isbn13(raw.get("isbn10"))
    if isbn13 is None:
        return None
    title = _text(raw.get("title"))
    title_long = _text(raw.get("title_long"))
    synopsis = _text(raw.get("synopsis")) or _text(raw.get("synopsys"))
    return Book(
        isbn13=isbn13,
        isbn10=to_isbn10(isbn13),
        title=title or title_long,
        title_long=title_long or title,
        authors=_texts(raw.get("authors")),
        publisher=_text(raw.get("publisher")),
        date_published=_date(raw.get("date_published")),
        language=_text(raw.get("language")),
        pages=_pages(raw.get("pages")),
        binding=_text(raw.get("binding")),
        image=_image(raw.get("image")),
        synopsis=synopsis,
        subjects=_texts(raw.get("subjects")),
    )


def parse_books(raws: Iterable[Any]) -> list[Book]:
    """Normalize a list of raw books, skipping unusable ones, de-duplicated by ISBN-13."""
    seen: dict[str, Book] = {}
    for raw in raws:
        book = parse_book(raw)
        if book is not None:
            seen.setdefault(book.isbn13, book)
    return list(seen.values())


def _envelope(data: Any, key: str) -> list[Any]:
    if not isinstance(data, dict):
        raise UpstreamError(PROVIDER, None, "malformed response: expected a JSON object")
    items = data.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        raise UpstreamError(PROVIDER, None, f"malformed response: {key!r} is not a list")
    return items


def parse_book_response(data: Any) -> Book | None:
    """The book of a ``GET /book/{isbn}`` answer, or None when it has no usable book.

    Raises:
        UpstreamError: the answer is not an object with a ``book`` object.
    """
    if not isinstance(data, dict) or not isinstance(data.get("book"), dict):
        raise UpstreamError(PROVIDER, None, "malformed response: expected a 'book' object")
    return parse_book(data["book"])


@dataclass(frozen=True, slots=True)
class AuthorPage:
    """Books of one author page; ``raw_count`` counts every entry ISBNdb sent (for paging)."""

    books: list[Book]
    raw_count: int


def parse_author_response(data: Any) -> AuthorPage:
    """The books of a ``GET /author/{name}`` answer.

    Raises:
        UpstreamError: the answer is not an object, or ``books`` is not a list.
    """
    raws = _envelope(data, "books")
    return AuthorPage(parse_books(raws), len(raws))


def parse_bulk_response(data: Any) -> list[tuple[Book, frozenset[str]]]:
    """Books of a ``POST /books`` answer, each with the ISBN-13s it answers to.

    Raises:
        UpstreamError: the answer is not an object, or ``data`` is not a list.
    """
    out: list[tuple[Book, frozenset[str]]] = []
    for raw in _envelope(data, "data"):
        book = parse_book(raw)
        if book is not None:
            out.append((book, isbn_aliases(raw) | {book.isbn13}))
    return out
