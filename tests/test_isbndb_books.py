"""Parsing ISBNdb payloads into the normalized book shape (pure, table-tested from fixtures)."""

from __future__ import annotations

from typing import Any

import pytest
from test_isbndb_support import ALIAS13, DUNE10, DUNE13, MESSIAH13, fixture

from bookmeta import UpstreamError
from isbndb_app.books import (
    parse_author_response,
    parse_book,
    parse_book_response,
    parse_bulk_response,
)

BOOK_KEYS = {
    "isbn13",
    "isbn10",
    "title",
    "title_long",
    "authors",
    "publisher",
    "date_published",
    "language",
    "pages",
    "binding",
    "image",
    "synopsis",
    "subjects",
}
WEIRD = fixture("weird_books")


def test_documented_book_is_normalized() -> None:
    """The documented GET /book shape maps onto every normalized field."""
    book = parse_book_response(fixture("book"))
    assert book is not None
    assert book.as_dict() == {
        "isbn13": DUNE13,
        "isbn10": DUNE10,
        "title": "Dune",
        "title_long": "Dune (Dune Chronicles, Book 1)",
        "authors": ["Frank Herbert"],
        "publisher": "Ace",
        "date_published": "2005-08-02",
        "language": "en",
        "pages": 896,
        "binding": "Paperback",
        "image": "https://images.isbndb.com/covers/35/93/9780441013593.jpg",
        "synopsis": "Set on the desert planet Arrakis, Dune is the story of the boy Paul Atreides.",
        "subjects": ["Fiction", "Science Fiction", "Space Opera"],
    }


def test_format_characters_are_dropped_from_text() -> None:
    """A title or author with a bidi override is kept without it."""
    raw = {**fixture("book")["book"], "title": "\u202eenuD", "authors": ["\u2067Frank Herbert"]}
    book = parse_book_response({"book": raw})
    assert book is not None
    assert (book.title, book.authors) == ("enuD", ("Frank Herbert",))


def test_old_spelling_and_loose_types() -> None:
    """`synopsys`, a numeric year, string pages and messy author lists are tolerated."""
    book = parse_book_response(fixture("book_synopsys"))
    assert book is not None
    got = book.as_dict()
    assert got["synopsis"] == "The sequel to Dune."
    assert got["date_published"] == "1969"
    assert got["pages"] == 352
    assert got["authors"] == ["Frank Herbert"]
    assert got["subjects"] == ["Science Fiction"]
    assert got["image"] is None


@pytest.mark.parametrize("case", WEIRD, ids=[c["id"] for c in WEIRD])
def test_weird_books(case: dict[str, Any]) -> None:
    """Odd or broken books never crash: they are skipped or their bad fields become empty."""
    book = parse_book(case["raw"])
    if case["expected"] is None:
        assert book is None
        return
    assert book is not None
    got = book.as_dict()
    assert set(got) == BOOK_KEYS
    for key, value in case["expected"].items():
        assert got[key] == value, key


def test_image_original_is_never_kept() -> None:
    """No parsed book carries `image_original` or its signed URL."""
    for name in ("book", "book_synopsys"):
        book = parse_book_response(fixture(name))
        assert book is not None
        assert "Signature" not in repr(book.as_dict())
        assert "image_original" not in book.as_dict()


def test_author_page_skips_books_without_isbn_but_counts_them() -> None:
    """A book without an ISBN is skipped; raw_count still counts it (for hasMore)."""
    page = parse_author_response(fixture("author"))
    assert [b.isbn13 for b in page.books] == [DUNE13, MESSIAH13]
    assert page.raw_count == 3


def test_bulk_matches_on_every_listed_isbn() -> None:
    """A bulk book answers to its isbn13, isbn and other_isbns (objects or strings)."""
    parsed = parse_bulk_response(fixture("bulk"))
    assert [b.isbn13 for b, _ in parsed] == [DUNE13, MESSIAH13]
    assert parsed[0][1] == {DUNE13, ALIAS13}
    assert parsed[1][1] == {MESSIAH13}


def test_missing_lists_are_empty() -> None:
    """An envelope without its list (or with null) means no books."""
    assert parse_author_response({"author": "x"}).books == []
    assert parse_bulk_response({"data": None}) == []


@pytest.mark.parametrize(
    ("parse", "data"),
    [
        (parse_book_response, None),
        (parse_book_response, []),
        (parse_book_response, {"book": "Dune"}),
        (parse_book_response, {"errorMessage": "x"}),
        (parse_author_response, "x"),
        (parse_author_response, {"books": {"a": 1}}),
        (parse_bulk_response, [1, 2]),
        (parse_bulk_response, {"data": "x"}),
    ],
    ids=[
        "book-null",
        "book-list",
        "book-string",
        "book-missing",
        "author-string",
        "author-books-object",
        "bulk-list",
        "bulk-data-string",
    ],
)
def test_malformed_envelopes_raise_upstream_error(parse: Any, data: Any) -> None:
    """A payload that is not the documented envelope raises UpstreamError (-> 502)."""
    with pytest.raises(UpstreamError, match="malformed"):
        parse(data)
