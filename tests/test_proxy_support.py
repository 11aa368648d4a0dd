"""Shared helpers for the proxy's harness tests: a small catalogue behind respx-mocked upstreams."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import httpx
import respx

from harness import System

WORKER = "books_api_proxy"
GOOGLE = "https://www.googleapis.com/books/v1/volumes"
OL_BOOKS = "https://openlibrary.org/api/books"
OL_SEARCH = "https://openlibrary.org/search.json"
ISBNDB_HOST = "api2.isbndb.com"

DUNE = "9780441013593"
MESSIAH = "9780593098233"
CHILDREN = "9780441104024"
UNKNOWN = "9780140449136"


@dataclass(frozen=True)
class Book:
    isbn13: str
    isbn10: str
    title: str
    authors: tuple[str, ...]
    date: str
    language: str = "en"


BOOKS = {
    DUNE: Book(DUNE, "0441013597", "Dune", ("Frank Herbert",), "2005-08-02"),
    MESSIAH: Book(MESSIAH, "0593098234", "Dune Messiah", ("Frank Herbert",), "2019-06-04"),
    CHILDREN: Book(CHILDREN, "0441104029", "Children of Dune", ("Frank Herbert",), "1987"),
}


def google_item(book: Book) -> dict[str, Any]:
    return {
        "id": f"g-{book.isbn13}",
        "volumeInfo": {
            "title": book.title,
            "authors": list(book.authors),
            "publishedDate": book.date,
            "description": f"Google description of {book.title}",
            "industryIdentifiers": [
                {"type": "ISBN_10", "identifier": book.isbn10},
                {"type": "ISBN_13", "identifier": book.isbn13},
            ],
            "imageLinks": {"thumbnail": f"http://books.google.com/{book.isbn13}"},
            "language": book.language,
        },
    }


def isbndb_book(book: Book) -> dict[str, Any]:
    return {
        "title": book.title,
        "title_long": book.title,
        "isbn": book.isbn10,
        "isbn13": book.isbn13,
        "authors": list(book.authors),
        "publisher": "Ace",
        "date_published": book.date[:4],
        "language": book.language,
        "pages": 500,
        "binding": "Paperback",
        "image": f"https://images.isbndb.com/covers/{book.isbn13}.jpg",
        "image_original": f"https://images.isbndb.com/covers/{book.isbn13}.jpg?sig=x",
        "synopsis": f"ISBNdb synopsis of {book.title}",
        "subjects": ["Fiction"],
    }


def ol_record(book: Book) -> dict[str, Any]:
    return {
        "title": book.title,
        "authors": [{"name": a} for a in book.authors],
        "publish_date": book.date[:4],
        "identifiers": {"isbn_13": [book.isbn13], "isbn_10": [book.isbn10]},
        "cover": {"medium": f"https://covers.openlibrary.org/b/id/{book.isbn13}-M.jpg"},
    }


def ol_doc(book: Book) -> dict[str, Any]:
    return {
        "key": f"/works/{book.isbn13}W",
        "title": book.title,
        "author_name": list(book.authors),
        "first_publish_year": int(book.date[:4]),
        "isbn": [book.isbn13],
        "language": ["eng"],
    }


def _matching(books: list[Book], field_name: str, text: str) -> list[Book]:
    """Books whose authors (author search), title (title search) or both hold every word."""
    words = text.replace('"', " ").lower().split()

    def haystack(book: Book) -> str:
        authors = " ".join(book.authors)
        if field_name in ("author", "inauthor"):
            return authors.lower()
        if field_name in ("title", "intitle"):
            return book.title.lower()
        return f"{book.title} {authors}".lower()

    return [b for b in books if all(w in haystack(b) for w in words)]


@dataclass
class Upstream:
    """Which provider knows which books, which are down; every request is recorded."""

    knows: dict[str, set[str]] = field(
        default_factory=lambda: {p: set(BOOKS) for p in ("google", "isbndb", "openlibrary")}
    )
    down: set[str] = field(default_factory=set)
    requests: list[httpx.Request] = field(default_factory=list)
    yield_first: bool = False
    # ISBNdb's other_isbns: an ISBN -> the ISBN-13 of the book ISBNdb lists it under.
    isbndb_aliases: dict[str, str] = field(default_factory=dict)
    # Fields that replace those of a book's Open Library search doc (a work), its ISBNdb record.
    isbndb_fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    ol_doc_fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Other ISBNs a known book's record lists in other_isbns (whatever was asked).
    isbndb_other_isbns: dict[str, list[str]] = field(default_factory=dict)

    def calls(self, provider: str) -> list[httpx.Request]:
        hosts = {
            "google": "www.googleapis.com",
            "openlibrary": "openlibrary.org",
            "isbndb": ISBNDB_HOST,
        }
        return [r for r in self.requests if r.url.host == hosts[provider]]

    def _known(self, provider: str) -> list[Book]:
        return [BOOKS[i] for i in sorted(self.knows[provider])]

    async def google(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.yield_first:
            await asyncio.sleep(0)
        if "google" in self.down:
            return httpx.Response(500, json={"error": {"code": 500, "message": "backendError"}})
        q = request.url.params.get("q", "")
        if q.startswith("isbn:"):
            hits = [b for b in self._known("google") if b.isbn13 == q[5:]]
        else:
            field_name = q.split(":", 1)[0] if q.startswith(("inauthor:", "intitle:")) else "q"
            words = q.split(":", 1)[-1] if field_name != "q" else q
            hits = _matching(self._known("google"), field_name, words)
        if lang := request.url.params.get("langRestrict"):
            hits = [b for b in hits if b.language == lang]
        # Paged as Google pages: totalItems counts every match, items the asked window.
        start = int(request.url.params.get("startIndex", "0"))
        window = hits[start : start + int(request.url.params.get("maxResults", "10"))]
        body: dict[str, Any] = {"kind": "books#volumes", "totalItems": len(hits)}
        if window:
            body["items"] = [google_item(b) for b in window]
        return httpx.Response(200, json=body)

    async def openlibrary(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if "openlibrary" in self.down:
            return httpx.Response(503, text="down")
        if request.url.path == "/api/books":
            keys = request.url.params["bibkeys"].split(",")
            known = {f"ISBN:{b.isbn13}": ol_record(b) for b in self._known("openlibrary")}
            return httpx.Response(200, json={k: known[k] for k in keys if k in known})
        params = request.url.params
        field_name = next(k for k in ("author", "title", "q") if k in params)
        docs = [
            {**ol_doc(b), **self.ol_doc_fields.get(b.isbn13, {})}
            for b in _matching(self._known("openlibrary"), field_name, params[field_name])
        ]
        start = int(params.get("offset", "0"))
        window = docs[start : start + int(params.get("limit", "100"))]
        return httpx.Response(200, json={"start": start, "num_found": len(docs), "docs": window})

    async def isbndb(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if "isbndb" in self.down:
            return httpx.Response(500, json={"message": "Internal Server Error"})
        known = {b.isbn13: b for b in self._known("isbndb")}
        path = unquote(request.url.path)
        if request.method == "POST" and path == "/books":
            asked = json.loads(request.content)["isbns"]
            data = [
                {**isbndb_book(known[i]), "other_isbns": self.isbndb_other_isbns[i]}
                if i in self.isbndb_other_isbns
                else isbndb_book(known[i])
                for i in asked
                if i in known
            ]
            for alias in asked:
                target = known.get(self.isbndb_aliases.get(alias, ""))
                if target is not None and target.isbn13 not in asked:
                    data.append({**isbndb_book(target), "other_isbns": [{"isbn": alias}]})
            return httpx.Response(
                200, json={"total": len(data), "requested": len(asked), "data": data}
            )
        if path.startswith("/book/"):
            isbn = path.removeprefix("/book/")
            if isbn in known:
                return httpx.Response(200, json={"book": isbndb_book(known[isbn])})
            return httpx.Response(404, json={"errorMessage": "Not Found"})
        if path.startswith("/author/"):
            name = path.removeprefix("/author/").lower()
            books = [
                {**isbndb_book(b), **self.isbndb_fields.get(b.isbn13, {})}
                for b in known.values()
                if name in " ".join(b.authors).lower()
            ]
            size = int(request.url.params.get("pageSize", "20"))
            start = (int(request.url.params.get("page", "1")) - 1) * size
            return httpx.Response(200, json={"author": name, "books": books[start : start + size]})
        return httpx.Response(404, json={"errorMessage": "Not Found"})


@contextmanager
def mocked(upstream: Upstream | None = None) -> Iterator[Upstream]:
    """Route every provider host to ``upstream``; anything else fails the test."""
    upstream = upstream or Upstream()
    with respx.mock(assert_all_called=False) as router:
        router.route(host="www.googleapis.com").mock(side_effect=upstream.google)
        router.route(host="openlibrary.org").mock(side_effect=upstream.openlibrary)
        router.route(host=ISBNDB_HOST).mock(side_effect=upstream.isbndb)
        yield upstream


def make_system(**kwargs: Any) -> System:
    """All three workers, ISBNdb keyed, the fake clock at the harness epoch."""
    kwargs.setdefault("secrets", {"ISBNDB_API_KEY": "k"})
    return System(**kwargs)


async def get(
    system: System, path: str, *, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, Any, dict[str, str]]:
    """Fetch ``path`` from the proxy: status, JSON body (None when empty) and headers."""
    resp = await system.fetch(WORKER, path, headers=headers, method=method)
    text = await resp.text()
    return resp.status, json.loads(text) if text else None, dict(resp.headers)
