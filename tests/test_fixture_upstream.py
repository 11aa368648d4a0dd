"""Tests for devtools/fixture_upstream.py, the local fake of the three upstream book APIs."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from harness.devtools import DEVTOOLS
from harness.devtools import fixture_upstream as load_fixture_upstream

fixture_upstream = load_fixture_upstream()
AUTH = {"Authorization": "test-key"}


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with fixture_upstream.run_in_thread(port=0) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=5) as c:
        c.post("/__reset").raise_for_status()
        yield c


def test_catalogue_isbns_are_valid() -> None:
    """Every catalogue book has a valid ISBN-13 and the matching ISBN-10."""
    books = fixture_upstream.load_catalogue()
    assert len(books) >= 12
    for book in books:
        i13, i10 = book["isbn13"], book["isbn10"]
        total = sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(i13[:12]))
        assert int(i13[12]) == (10 - total % 10) % 10, i13
        body = i13[3:12]
        check = (11 - sum(int(d) * (10 - i) for i, d in enumerate(body)) % 11) % 11
        assert i10 == body + ("X" if check == 10 else str(check)), i13


def test_run_in_thread_picks_free_port(base_url: str) -> None:
    """Port 0 binds a real port and the base URL names it."""
    assert base_url.startswith("http://127.0.0.1:")
    assert int(base_url.rsplit(":", 1)[1]) > 0


def test_google_isbn_query(client: httpx.Client) -> None:
    """An isbn: query returns the one volume in Google's shape."""
    r = client.get("/google/books/v1/volumes", params={"q": "isbn:9780441013593", "maxResults": 1})
    assert r.status_code == 200
    body = r.json()
    assert body["kind"] == "books#volumes"
    assert body["totalItems"] == 1
    info = body["items"][0]["volumeInfo"]
    assert info["title"] == "Dune"
    assert info["authors"] == ["Frank Herbert"]
    ids = {i["type"]: i["identifier"] for i in info["industryIdentifiers"]}
    assert ids == {"ISBN_10": "0441013597", "ISBN_13": "9780441013593"}


def test_google_no_items_key_when_empty(client: httpx.Client) -> None:
    """No match means totalItems 0 and no items key; uppercase ISBN: is fuzzy text."""
    r = client.get("/google/books/v1/volumes", params={"q": "isbn:9780451526533"})
    assert r.json() == {"kind": "books#volumes", "totalItems": 0}
    r = client.get("/google/books/v1/volumes", params={"q": "ISBN:9780441013593"})
    assert "items" not in r.json()


def test_google_author_search_and_max_results(client: httpx.Client) -> None:
    """inauthor: finds an author's books; maxResults over 40 is a 400."""
    r = client.get("/google/books/v1/volumes", params={"q": "inauthor:frank herbert"})
    titles = {i["volumeInfo"]["title"] for i in r.json()["items"]}
    assert titles == {"Dune", "Dune Messiah", "Children of Dune"}
    r = client.get("/google/books/v1/volumes", params={"q": "frank herbert", "maxResults": 41})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == 400


def test_isbndb_requires_authorization(client: httpx.Client) -> None:
    """ISBNdb answers 401 without an Authorization header."""
    assert client.get("/isbndb/book/9780441013593").status_code == 401


def test_isbndb_book_by_isbn10_and_13(client: httpx.Client) -> None:
    """GET /book/{isbn} accepts both forms and wraps the record in "book"."""
    for isbn in ("9780441013593", "0441013597"):
        r = client.get(f"/isbndb/book/{isbn}", headers=AUTH)
        assert r.status_code == 200
        book = r.json()["book"]
        assert book["isbn13"] == "9780441013593"
        assert book["isbn"] == "0441013597"
        assert book["authors"] == ["Frank Herbert"]
        assert "synopsis" in book


def test_isbndb_unknown_book_is_404(client: httpx.Client) -> None:
    """An unknown ISBN is a 404 with ISBNdb's errorMessage body."""
    r = client.get("/isbndb/book/9780000000002", headers=AUTH)
    assert r.status_code == 404
    assert r.json() == {"errorMessage": "Not Found"}


def test_isbndb_bulk_leaves_out_unknown(client: httpx.Client) -> None:
    """POST /books returns total/requested/data and silently drops unknown ISBNs."""
    r = client.post(
        "/isbndb/books",
        json={"isbns": ["9780441013593", "0441569595", "9780000000002"]},
        headers=AUTH,
    )
    body = r.json()
    assert body["total"] == 2
    assert body["requested"] == 3
    assert {b["isbn13"] for b in body["data"]} == {"9780441013593", "9780441569595"}
    too_many = client.post("/isbndb/books", json={"isbns": ["1"] * 101}, headers=AUTH)
    assert too_many.status_code == 400


def test_isbndb_author_paging_has_no_total(client: httpx.Client) -> None:
    """/author/{name} pages without a total; the last page is short."""
    r = client.get(
        "/isbndb/author/frank%20herbert",
        params={"page": 1, "pageSize": 2, "language": "en"},
        headers=AUTH,
    )
    body = r.json()
    assert set(body) == {"author", "books"}
    assert body["author"] == "frank herbert"
    assert len(body["books"]) == 2
    r2 = client.get(
        "/isbndb/author/frank%20herbert", params={"page": 2, "pageSize": 2}, headers=AUTH
    )
    assert len(r2.json()["books"]) == 1


def test_openlibrary_books_api(client: httpx.Client) -> None:
    """The Books API is keyed by bibkey; missing keys are absent."""
    r = client.get(
        "/openlibrary/api/books",
        params={
            "bibkeys": "ISBN:0451526538,ISBN:9780441013593,ISBN:9780804139021",
            "format": "json",
            "jscmd": "data",
        },
    )
    body = r.json()
    assert set(body) == {"ISBN:0451526538", "ISBN:9780441013593"}
    dune = body["ISBN:9780441013593"]
    assert dune["title"] == "Dune"
    assert dune["authors"][0]["name"] == "Frank Herbert"
    assert dune["identifiers"]["isbn_10"] == ["0441013597"]
    assert set(dune["cover"]) == {"small", "medium", "large"}


def test_openlibrary_default_format_is_javascript(client: httpx.Client) -> None:
    """Without format=json the Books API answers JavaScript, like the real one."""
    r = client.get("/openlibrary/api/books", params={"bibkeys": "ISBN:9780441013593"})
    assert r.text.startswith("var _OLBookInfo = ")


def test_openlibrary_search(client: httpx.Client) -> None:
    """search.json returns works with num_found and docs."""
    r = client.get("/openlibrary/search.json", params={"author": "orwell", "limit": 10})
    body = r.json()
    assert body["start"] == 0
    assert body["num_found"] == 2
    assert {d["title"] for d in body["docs"]} == {"1984", "Animal Farm"}
    assert all("author_key" in d and "cover_i" in d for d in body["docs"])


def test_calls_are_counted_and_reset(client: httpx.Client) -> None:
    """/__calls counts per provider and records headers; /__reset clears them."""
    client.get("/google/books/v1/volumes", params={"q": "dune"})
    client.get("/isbndb/book/9780441013593", headers=AUTH)
    client.get("/isbndb/book/9780441013593", headers=AUTH)
    calls = client.get("/__calls").json()
    assert calls["counts"] == {"google": 1, "isbndb": 2, "openlibrary": 0}
    assert calls["requests"][1]["headers"]["authorization"] == "test-key"
    client.post("/__reset")
    assert client.get("/__calls").json()["counts"] == {"google": 0, "isbndb": 0, "openlibrary": 0}


def test_fault_injection_status_times(client: httpx.Client) -> None:
    """A fault with status and times fails that many calls, then clears."""
    r = client.post("/__faults", json={"isbndb": {"status": 500, "times": 2}})
    assert r.status_code == 200
    statuses = [
        client.get("/isbndb/book/9780441013593", headers=AUTH).status_code for _ in range(3)
    ]
    assert statuses == [500, 500, 200]
    assert client.get("/__calls").json()["counts"]["isbndb"] == 3


def test_fault_injection_default_bodies(client: httpx.Client) -> None:
    """Faults carry each provider's usual error body."""
    client.post("/__faults", json={"isbndb": {"status": 429}, "google": {"status": 429}})
    assert client.get("/isbndb/book/1", headers=AUTH).json() == {"message": "Limit Exceeded"}
    body = client.get("/google/books/v1/volumes", params={"q": "x"}).json()
    assert body["error"]["errors"][0]["reason"] == "rateLimitExceeded"
    client.post("/__faults", json={"isbndb": None})
    assert client.get("/isbndb/book/0441013597", headers=AUTH).status_code == 200


def test_fault_injection_delay(client: httpx.Client) -> None:
    """delay_ms slows the next call without changing its answer."""
    client.post("/__faults", json={"openlibrary": {"delay_ms": 150, "times": 1}})
    start = time.monotonic()
    r = client.get("/openlibrary/search.json", params={"q": "dune"})
    assert time.monotonic() - start >= 0.14
    assert r.status_code == 200


def test_bad_fault_spec_is_400(client: httpx.Client) -> None:
    """An unknown provider in /__faults is rejected."""
    assert client.post("/__faults", json={"amazon": {"status": 500}}).status_code == 400


def test_cli_port_zero_prints_port() -> None:
    """`python devtools/fixture_upstream.py --port 0` prints the chosen port and serves."""
    proc = subprocess.Popen(
        [sys.executable, str(DEVTOOLS / "fixture_upstream.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("fixture upstream listening on http://127.0.0.1:")
        base = line.split(" on ", 1)[1].strip()
        r = httpx.get(f"{base}/__calls", timeout=5)
        assert r.json()["counts"]["google"] == 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
