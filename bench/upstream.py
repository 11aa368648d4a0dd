"""The fixture upstream for benchmarks: a generated catalogue matching a generated library.

Every ISBN of the library is a book; which providers know it is fixed by a hash of the
ISBN, so runs are repeatable. Assumed coverage (ISBNdb is the paid, broadest source):
ISBNdb 90 %, Open Library 75 % (4 % of all ISBNs only there), Google 90 % (3 % only
there), nobody 3 %.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

from bookmeta import extract_isbn, to_isbn10
from harness.devtools import fixture_upstream


def providers_for(isbn13: str) -> list[str]:
    """Which providers know ``isbn13`` (deterministic)."""
    h = int(hashlib.sha256(isbn13.encode()).hexdigest(), 16) % 100
    out = []
    if h < 90:
        out.append("isbndb")
    if h < 71 or 90 <= h < 94:
        out.append("openlibrary")
    if h < 87 or 94 <= h < 97:
        out.append("google")
    return out


def catalogue_from_csv(text: str) -> list[dict[str, Any]]:
    """Fixture books for every ISBN row of a Goodreads export."""
    books = []
    for row in csv.DictReader(io.StringIO(text)):
        isbn13 = extract_isbn(row["ISBN13"]) or extract_isbn(row["ISBN"])
        if isbn13 is None:
            continue
        books.append(
            {
                "isbn13": isbn13,
                "isbn10": to_isbn10(isbn13) or "",
                "title": row["Title"],
                "subtitle": None,
                "authors": [row["Author"]],
                "publisher": row["Publisher"],
                "published": row["Year Published"] or "2000",
                "pages": int(row["Number of Pages"] or 0) or None,
                "binding": row["Binding"],
                "subjects": ["Fiction"],
                "description": f"A generated book: {row['Title']}.",
                "first_publish_year": int(row["Year Published"] or 2000),
                "language": "en",
                "providers": providers_for(isbn13),
            }
        )
    return books


@contextlib.contextmanager
def serve(books: list[dict[str, Any]]) -> Iterator[str]:
    """Run the fixture upstream on a free loopback port with ``books``; yields its base URL."""
    fixture = fixture_upstream()
    with fixture.run_in_thread(0, books=books) as base:
        yield base


def control(base: str, path: str, body: Any = None) -> Any:
    """Call a control endpoint of the fixture upstream (``/__calls``, ``/__reset``, ...)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method="GET" if data is None else "POST")
    if path == "/__reset":
        req.method = "POST"
        req.data = b"{}"
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"null")


def upstream_vars(base: str) -> dict[str, dict[str, str]]:
    """Harness var overrides pointing every worker at the fixture upstream."""
    return {
        "isbndb_worker": {"ISBNDB_BASE_URL": f"{base}/isbndb"},
        "books_api_proxy": {
            "GOOGLE_BOOKS_BASE_URL": f"{base}/google/books/v1",
            "OPEN_LIBRARY_BASE_URL": f"{base}/openlibrary",
        },
    }
