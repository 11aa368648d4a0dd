"""The providers' pure parse/map halves, table-tested from fixtures in the documented shapes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bookmeta import RateLimited, Request, Response, UpstreamError
from proxy_app.dates import date_sort_key, normalize_date
from proxy_app.languages import normalize_language
from proxy_app.model import Identifier
from proxy_app.providers import google, isbndb, openlibrary

FIXTURES = Path(__file__).parent / "fixtures"
DUNE = "9780441013593"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def test_google_maps_volume_info() -> None:
    """A Google item maps every volumeInfo field and upgrades image links to https."""
    dune = google.parse_volumes(load("google/volumes_isbn_dune.json"))[0]
    assert dune.providers == ("google",)
    assert dune.volume_id == "B1hSG45JCX4C"
    assert (dune.title, dune.authors, dune.publisher) == ("Dune", ("Frank Herbert",), "Penguin")
    assert dune.isbn13 == DUNE
    assert dune.published_date == "2005-08-02"
    assert dune.page_count == 896
    assert dune.language == "en"
    assert dune.image_links["thumbnail"].startswith("https://books.google.com/")
    assert Identifier("ISBN_10", "0441013597") in dune.identifiers


def test_provider_text_loses_format_characters() -> None:
    """Titles and authors from a provider lose bidi overrides (they would show reversed)."""
    data = load("google/volumes_isbn_dune.json")
    info = data["items"][0]["volumeInfo"]
    info["title"] = "\u202eenuD"
    info["authors"] = ["Frank\u2066 Herbert\u2069", "Frank Herbert"]
    dune = google.parse_volumes(data)[0]
    assert (dune.title, dune.authors) == ("enuD", ("Frank Herbert",))


def test_google_isbn_lookup_drops_other_books() -> None:
    """An isbn: answer that includes another book keeps only the asked ISBN."""
    editions = google.parse_volumes(load("google/volumes_isbn_dune.json"))
    assert len(editions) == 2
    assert [e.volume_id for e in google.only_isbn(editions, DUNE)] == ["B1hSG45JCX4C"]
    assert google.only_isbn(editions, "9780140449136") == []


@pytest.mark.parametrize(
    ("data", "count"),
    [
        pytest.param(load("google/volumes_empty.json"), 0, id="items-absent"),
        pytest.param({"items": None}, 0, id="items-null"),
        pytest.param([], 0, id="not-an-object"),
        pytest.param({"items": ["junk", {"volumeInfo": "x"}]}, 0, id="junk-items"),
        pytest.param(load("google/volumes_author_herbert.json"), 3, id="untitled-dropped"),
    ],
)
def test_google_tolerates_odd_shapes(data: Any, count: int) -> None:
    """Missing or malformed parts read as nothing, never raise."""
    assert len(google.parse_volumes(data)) == count


@pytest.mark.parametrize(
    ("kind", "text", "q"),
    [
        pytest.param("author", "Frank Herbert", 'inauthor:"Frank Herbert"', id="author"),
        pytest.param("title", 'Dune "Messiah"', 'intitle:"Dune  Messiah"', id="title-quotes"),
        pytest.param("text", "dune spice", "dune spice", id="text"),
    ],
)
def test_google_search_query(kind: str, text: str, q: str) -> None:
    """Author and title searches use the lower-case keywords with a quoted phrase."""
    assert google.search_query(kind, text) == q
    assert google.isbn_query(DUNE) == f"isbn:{DUNE}"


def test_openlibrary_books_api_maps_records() -> None:
    """Books API records map by their ISBN key; unusable keys and untitled records are skipped."""
    books = openlibrary.parse_books(load("openlibrary/books_data.json"))
    assert sorted(books) == [DUNE, "9780593098233"]
    dune = books[DUNE]
    assert dune.subtitle == "Deluxe Edition"
    assert dune.publisher == "Ace Books"
    assert dune.published_date == "2005-08-02"
    assert dune.page_count == 528
    assert dune.categories[0] == "Science fiction"
    assert dune.image_links["thumbnail"].endswith("-M.jpg")
    assert dune.identifiers == (Identifier("ISBN_13", DUNE), Identifier("ISBN_10", "0441013597"))
    assert books["9780593098233"].published_date == "2019-06-04"


def test_openlibrary_search_docs_are_works() -> None:
    """Search docs carry all their editions' ISBNs but claim none; multi-language: no language."""
    docs = openlibrary.parse_search(load("openlibrary/search_author_herbert.json"))
    assert [d.title for d in docs] == ["Dune", "Children of Dune"]
    dune, children = docs
    assert (dune.isbn13, dune.identifiers) == (None, ())
    assert dune.work_isbn13s == {DUNE, "9780340960196"}
    assert dune.published_date == "1965"
    assert dune.language is None
    assert children.language == "en"
    assert children.work_isbn13s == {"9780441104024"}
    assert openlibrary.parse_search(load("openlibrary/search_empty.json")) == []


def test_openlibrary_request_shapes() -> None:
    """Batches hold at most 50; search uses author=/title=/q=; the UA names app and contact."""
    isbns = [f"{i}" for i in range(120)]
    assert [len(b) for b in openlibrary.batches(isbns)] == [50, 50, 20]
    assert openlibrary.bibkeys([DUNE, "9780593098233"]) == f"ISBN:{DUNE},ISBN:9780593098233"
    assert "author" in openlibrary.search_params("author", "Frank Herbert", 5)
    assert "title" in openlibrary.search_params("title", "Dune", 5)
    assert "q" in openlibrary.search_params("text", "dune", 5)
    ua = openlibrary.user_agent("ops@example.com")
    assert "BookMetadataProxy" in ua
    assert "ops@example.com" in ua


ISBNDB_BOOK = {
    "isbn13": DUNE,
    "isbn10": "0441013597",
    "title": "Dune",
    "title_long": "Dune: Deluxe Edition",
    "authors": ["Frank Herbert", "Frank Herbert"],
    "publisher": "Ace",
    "date_published": "1990",
    "language": "en_US",
    "pages": "535",
    "binding": "Paperback",
    "image": "https://images.isbndb.com/covers/35/93/9780441013593.jpg",
    "synopsis": "A <b>classic</b>.",
    "subjects": ["Fiction"],
}


def test_isbndb_maps_a_normalized_book() -> None:
    """A normalized Book maps to an edition; title_long gives the subtitle; en_US is en."""
    edition = isbndb.parse_book(ISBNDB_BOOK)
    assert edition is not None
    assert edition.subtitle == "Deluxe Edition"
    assert edition.authors == ("Frank Herbert",)
    assert edition.language == "en"
    assert edition.page_count == 535
    assert edition.description == "A <b>classic</b>."
    assert edition.image_links["thumbnail"] == ISBNDB_BOOK["image"]


@pytest.mark.parametrize(
    "book",
    [
        pytest.param({**ISBNDB_BOOK, "isbn13": "978044101359X", "isbn10": None}, id="bad-isbn"),
        pytest.param({**ISBNDB_BOOK, "title": None, "title_long": None}, id="no-title"),
    ],
)
def test_isbndb_skips_unusable_books(book: dict[str, Any]) -> None:
    """Books without a title or a valid ISBN are skipped."""
    assert isbndb.parse_book(book) is None


@pytest.mark.parametrize(
    ("result", "error", "status"),
    [
        pytest.param(
            {"error": {"code": "rate_limited", "status": 429}}, RateLimited, 429, id="429"
        ),
        pytest.param({"error": {"code": "not_found", "status": 404}}, UpstreamError, 404, id="404"),
        pytest.param({"error": "boom"}, UpstreamError, None, id="malformed-error"),
        pytest.param(["not", "a", "dict"], UpstreamError, None, id="not-an-object"),
    ],
)
def test_isbndb_rpc_errors_become_exceptions(
    result: Any, error: type[Exception], status: int | None
) -> None:
    """An RPC error dict is raised as our exception, keeping its status."""
    with pytest.raises(error) as info:
        isbndb.raise_for_error(result)
    assert getattr(info.value, "status", None) == status


class _BulkWorker:
    """An isbndb worker binding answering POST /books with a fixed body."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    async def fetch(self, request: Request) -> Response:
        return Response(200, json.dumps(self.body).encode(), {"content-type": "application/json"})

    async def call(self, method: str, *args: Any) -> Any:
        raise AssertionError("the proxy reaches the isbndb worker over HTTP")


async def test_isbndb_bulk_prefers_a_books_own_record_over_an_alias_match() -> None:
    """Even a worker whose matches map X to Y is overruled when X's own book came back."""
    messiah = {**ISBNDB_BOOK, "isbn13": "9780593098233", "isbn10": None, "title": "Messiah"}
    worker = _BulkWorker(
        {"books": [messiah, ISBNDB_BOOK], "matches": {DUNE: "9780593098233"}, "notFound": []}
    )
    found = await isbndb.fetch_bulk(worker, [DUNE, "9780593098233"])
    assert found.found[DUNE].title == ISBNDB_BOOK["title"]
    assert found.aliases() == {}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2005-08-02", "2005-08-02"),
        ("2005", "2005"),
        ("2005-8", "2005-08"),
        (1965, "1965"),
        ("August 2, 2005", "2005-08-02"),
        ("Aug 02, 2005", "2005-08-02"),
        ("2 Sept. 1999", "1999-09-02"),
        ("c1965", "1965"),
        ("May 1990", "1990-05"),
        ("unknown", None),
        (None, None),
    ],
)
def test_dates_normalize(raw: object, expected: str | None) -> None:
    """Provider dates become YYYY[-MM[-DD]]."""
    assert normalize_date(raw) == expected


def test_date_sort_key_prefers_precise_dates_within_a_year() -> None:
    """A year alone sorts after any precise date in that year, before the next year."""
    dates = ["2005", "2005-08-02", "2004", "2005-08"]
    assert min(dates, key=date_sort_key) == "2004"
    assert sorted(dates, key=date_sort_key) == ["2004", "2005-08-02", "2005-08", "2005"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("en", "en"), ("EN", "en"), ("en_US", "en"), ("eng", "en"), ("fre", "fr"), ("x", None)],
)
def test_languages_normalize(raw: str, expected: str | None) -> None:
    """Language codes of every provider fold to ISO 639-1."""
    assert normalize_language(raw) == expected
