"""Local fake of the upstream book APIs (stdlib only) for `make dev UPSTREAM=fixtures` and tests.

One server answers for all providers under path prefixes, so the workers' base-URL vars point at:

* ``http://127.0.0.1:PORT/google/books/v1``  (GOOGLE_BOOKS_BASE_URL)
* ``http://127.0.0.1:PORT/isbndb``           (ISBNDB_BASE_URL)
* ``http://127.0.0.1:PORT/openlibrary``      (OPEN_LIBRARY_BASE_URL)

Responses follow the shapes in REFERENCE.md, built from ``devtools/fixtures/catalogue.json``.
Control endpoints (not part of any real API):

* ``GET /__calls``   -> ``{"counts": {"google": n, "isbndb": n, "openlibrary": n}, "by_kind":
  {"isbndb.isbn": n, "isbndb.author": n, "google.search": n, ...},
  "requests": [...], "faults": {...}}``
* ``POST /__reset``  -> clears counts, recorded requests and faults
* ``POST /__faults`` -> body like ``{"isbndb": {"status": 500, "times": 3}}`` or
  ``{"google": {"delay_ms": 200}}``; ``times`` omitted means "until reset", ``body`` overrides the
  default error body, ``{"isbndb": null}`` clears one provider's fault.

Run: ``python devtools/fixture_upstream.py --port 8790`` (``--port 0`` picks a free port and
prints it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import threading
import time
import unicodedata
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

CATALOGUE_PATH = Path(__file__).resolve().parent / "fixtures" / "catalogue.json"
PROVIDERS = ("google", "isbndb", "openlibrary")
DEFAULT_PORT = 8790
MAX_RECORDED = 500
ISBNDB_BULK_MAX = 100  # Basic plan

Json = dict[str, Any]


def load_catalogue(path: Path = CATALOGUE_PATH) -> list[Json]:
    """Read the fixture catalogue's list of books."""
    with path.open(encoding="utf-8") as fh:
        books: list[Json] = json.load(fh)["books"]
    return books


def _digits(value: str) -> str:
    return "".join(ch for ch in value if ch.isdigit() or ch in "xX").upper()


def _year(book: Json) -> str:
    return str(book["published"])[:4]


# --------------------------------------------------------------------------- response shapes


def google_item(book: Json) -> Json:
    """A Google Books ``volumes`` item for one catalogue book."""
    info: Json = {
        "title": book["title"],
        "authors": list(book["authors"]),
        "publisher": book["publisher"],
        "publishedDate": book["published"],
        "description": book["description"],
        "industryIdentifiers": [
            {"type": "ISBN_10", "identifier": book["isbn10"]},
            {"type": "ISBN_13", "identifier": book["isbn13"]},
        ],
        "pageCount": book["pages"],
        "categories": list(book["subjects"][:1]),
        "imageLinks": {
            "smallThumbnail": f"http://books.google.com/books/content?id=fx{book['isbn13']}&zoom=5",
            "thumbnail": f"http://books.google.com/books/content?id=fx{book['isbn13']}&zoom=1",
        },
        "language": book["language"],
        "previewLink": f"http://books.google.com/books?id=fx{book['isbn13']}&hl=&source=gbs_api",
        "infoLink": f"http://books.google.com/books?id=fx{book['isbn13']}&source=gbs_api",
    }
    if book.get("subtitle"):
        info["subtitle"] = book["subtitle"]
    return {
        "kind": "books#volume",
        "id": f"fx{book['isbn13']}",
        "etag": f"etag{book['isbn13']}",
        "selfLink": f"https://www.googleapis.com/books/v1/volumes/fx{book['isbn13']}",
        "volumeInfo": info,
    }


def isbndb_book(book: Json) -> Json:
    """An ISBNdb v2 book object for one catalogue book."""
    title_long = book["title"] + (f": {book['subtitle']}" if book.get("subtitle") else "")
    return {
        "title": book["title"],
        "title_long": title_long,
        "isbn": book["isbn10"],
        "isbn13": book["isbn13"],
        "authors": list(book["authors"]),
        "publisher": book["publisher"],
        "date_published": book["published"],
        "language": book["language"],
        "pages": book["pages"],
        "binding": book["binding"],
        "image": f"https://images.isbndb.com/covers/{book['isbn13']}.jpg",
        "image_original": f"https://images.isbndb.com/covers/{book['isbn13']}.jpg?sig=fixture",
        "synopsis": book["description"],
        "subjects": list(book["subjects"]),
        "msrp": "0.00",
        "other_isbns": [],
    }


def _ol_author_key(name: str) -> str:
    return "OL" + str(abs(hash_name(name)) % 10_000_000) + "A"


def hash_name(name: str) -> int:
    """Stable (process-independent) small hash, for fake Open Library keys."""
    acc = 7
    for ch in name:
        acc = (acc * 31 + ord(ch)) % 2_147_483_647
    return acc


def openlibrary_data(book: Json) -> Json:
    """An Open Library Books API (``jscmd=data``) record for one catalogue book."""
    edition = f"OL{hash_name(book['isbn13']) % 10_000_000}M"
    cover_id = hash_name(book["isbn13"]) % 100000
    record: Json = {
        "url": f"https://openlibrary.org/books/{edition}",
        "key": f"/books/{edition}",
        "title": book["title"],
        "authors": [
            {"url": f"https://openlibrary.org/authors/{_ol_author_key(a)}", "name": a}
            for a in book["authors"]
        ],
        "publishers": [{"name": book["publisher"]}],
        "publish_date": _year(book),
        "number_of_pages": book["pages"],
        "identifiers": {
            "isbn_10": [book["isbn10"]],
            "isbn_13": [book["isbn13"]],
            "openlibrary": [edition],
        },
        "subjects": [
            {"name": s, "url": f"https://openlibrary.org/subjects/{s}"} for s in book["subjects"]
        ],
        "cover": {
            size: f"https://covers.openlibrary.org/b/id/{cover_id}-{s}.jpg"
            for size, s in (("small", "S"), ("medium", "M"), ("large", "L"))
        },
    }
    if book.get("subtitle"):
        record["subtitle"] = book["subtitle"]
    return record


def openlibrary_doc(book: Json) -> Json:
    """An Open Library ``search.json`` doc (a work) for one catalogue book."""
    return {
        "key": f"/works/OL{hash_name(book['title']) % 10_000_000}W",
        "title": book["title"],
        "author_name": list(book["authors"]),
        "author_key": [_ol_author_key(a) for a in book["authors"]],
        "first_publish_year": book["first_publish_year"],
        "edition_count": 1,
        "cover_i": hash_name(book["isbn13"]) % 100000,
        "isbn": [book["isbn10"], book["isbn13"]],
        "language": ["eng"],
    }


def search_fold(text: str) -> str:
    """Text as a search engine's tokenizer sees it: case, accents and punctuation folded
    (Google, Open Library's Solr and ISBNdb all match "Le Guin" for "le guin", "Garcia" for
    "García", "ursula k le guin" for "Ursula K. Le Guin")."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    kept = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join("".join(c if c.isalnum() else " " for c in kept).split())


def _query_tokens(q: str) -> list[str]:
    """Google's query words; ``key:"a phrase"`` is one token (quotes dropped), like the real API."""
    return [
        f"{m.group(1)}:{m.group(2)}" if m.group(1) else m.group(3)
        for m in re.finditer(r'(\w+):"([^"]*)"|(\S+)', q)
    ]


def default_error_body(provider: str, status: int) -> Json:
    """The body a real provider tends to send with an error status."""
    if provider == "google":
        reason = "rateLimitExceeded" if status == 429 else "backendError"
        return {
            "error": {
                "code": status,
                "message": "Fixture fault",
                "errors": [{"reason": reason}],
                "status": "RESOURCE_EXHAUSTED" if status == 429 else "UNAVAILABLE",
            }
        }
    if provider == "isbndb":
        if status == 429:
            return {"message": "Limit Exceeded"}
        if status == 404:
            return {"errorMessage": "Not Found"}
        return {"message": "Internal Server Error"}
    return {"error": f"fixture fault {status}"}


def call_kind(provider: str, path: str) -> str:
    """``isbn`` for look-ups by ISBN, ``author`` or ``search`` otherwise (for cost accounting)."""
    split = urlsplit(path)
    if provider == "isbndb":
        return "author" if "/author/" in split.path else "isbn"
    if provider == "google":
        q = parse_qs(split.query).get("q", [""])[0]
        return "isbn" if q.startswith("isbn:") else "search"
    return "isbn" if split.path.endswith("/api/books") else "search"


# --------------------------------------------------------------------------- state


class FixtureState:
    """Call counts, recorded requests and armed faults; shared by the handler threads."""

    def __init__(self, books: list[Json]) -> None:
        self.books = books
        self._by_isbn: dict[str, Json] = {}
        for book in books:
            for key in (book["isbn10"], book["isbn13"]):
                if key:
                    self._by_isbn.setdefault(key, book)
        self.lock = threading.Lock()
        self.counts: dict[str, int] = dict.fromkeys(PROVIDERS, 0)
        self.by_kind: dict[str, int] = {}
        self.requests: list[Json] = []
        self.faults: dict[str, Json] = {}

    def reset(self) -> None:
        with self.lock:
            self.counts = dict.fromkeys(PROVIDERS, 0)
            self.by_kind = {}
            self.requests = []
            self.faults = {}

    def record(self, provider: str, method: str, path: str, headers: dict[str, str]) -> None:
        kind = f"{provider}.{call_kind(provider, path)}"
        with self.lock:
            self.counts[provider] += 1
            self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
            self.requests.append(
                {"provider": provider, "method": method, "path": path, "headers": headers}
            )
            del self.requests[:-MAX_RECORDED]

    def take_fault(self, provider: str) -> Json | None:
        """Consume one use of the provider's armed fault, if any."""
        with self.lock:
            fault = self.faults.get(provider)
            if fault is None:
                return None
            times = fault.get("times")
            if times is not None:
                if times <= 0:
                    del self.faults[provider]
                    return None
                fault["times"] = times - 1
                if fault["times"] == 0:
                    del self.faults[provider]
            return dict(fault)

    def set_faults(self, spec: Json) -> None:
        with self.lock:
            for provider, fault in spec.items():
                if provider not in PROVIDERS:
                    raise ValueError(f"unknown provider {provider!r}")
                if fault is None:
                    self.faults.pop(provider, None)
                elif isinstance(fault, dict):
                    self.faults[provider] = dict(fault)
                else:
                    raise ValueError(f"fault for {provider!r} must be an object or null")

    def snapshot(self) -> Json:
        with self.lock:
            return {
                "counts": dict(self.counts),
                "by_kind": dict(self.by_kind),
                "requests": list(self.requests),
                "faults": {k: dict(v) for k, v in self.faults.items()},
            }

    # ---- catalogue look-ups

    def by_isbn(self, isbn: str, provider: str) -> Json | None:
        book = self._by_isbn.get(_digits(isbn))
        return book if book is not None and provider in book["providers"] else None

    def matching(
        self, provider: str, *, text: str = "", title: str = "", author: str = ""
    ) -> list[Json]:
        out = []
        for book in self.books:
            if provider not in book["providers"]:
                continue
            authors = search_fold(" ".join(book["authors"]))
            haystack = search_fold(f"{book['title']} {book.get('subtitle') or ''} {authors}")
            if title and search_fold(title) not in search_fold(book["title"]):
                continue
            if author and f" {search_fold(author)} " not in f" {authors} ":
                continue
            if text and not all(word in haystack.split() for word in search_fold(text).split()):
                continue
            out.append(book)
        return out


# --------------------------------------------------------------------------- HTTP


class _Handler(BaseHTTPRequestHandler):
    server_version = "FixtureUpstream/1.0"
    protocol_version = "HTTP/1.1"

    @property
    def state(self) -> FixtureState:
        state: FixtureState = self.server.state  # type: ignore[attr-defined]
        return state

    def log_message(self, format: str, *args: Any) -> None:
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)

    # ---- plumbing

    def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        path = split.path
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        body = self._read_body() if method == "POST" else b""
        if path.startswith("/__"):
            self._control(method, path, body)
            return
        provider, _, rest = path.lstrip("/").partition("/")
        if provider not in PROVIDERS:
            self._send(404, {"error": f"unknown path {path}"})
            return
        self.state.record(
            provider, method, self.path, {k.lower(): v for k, v in self.headers.items()}
        )
        fault = self.state.take_fault(provider)
        if fault is not None:
            delay_ms = fault.get("delay_ms") or 0
            if delay_ms:
                time.sleep(delay_ms / 1000)
            status = fault.get("status")
            if status:
                self._send(
                    int(status), fault.get("body") or default_error_body(provider, int(status))
                )
                return
        handler = {"google": self._google, "isbndb": self._isbndb, "openlibrary": self._openlibrary}
        handler[provider](method, "/" + rest, query, body)

    def _control(self, method: str, path: str, body: bytes) -> None:
        if method == "GET" and path == "/__calls":
            self._send(200, self.state.snapshot())
        elif method == "POST" and path == "/__reset":
            self.state.reset()
            self._send(200, {"ok": True})
        elif method == "POST" and path == "/__faults":
            try:
                spec = json.loads(body or b"{}")
                if not isinstance(spec, dict):
                    raise ValueError("faults must be a JSON object")
                self.state.set_faults(spec)
            except ValueError as exc:
                self._send(400, {"error": str(exc)})
                return
            self._send(200, {"ok": True, "faults": self.state.snapshot()["faults"]})
        elif method == "GET" and path == "/__health":
            self._send(200, {"ok": True})
        else:
            self._send(404, {"error": f"unknown control path {path}"})

    # ---- Google Books

    def _google(self, method: str, path: str, query: dict[str, str], body: bytes) -> None:
        if method != "GET" or path.rstrip("/") != "/books/v1/volumes":
            self._send(404, {"error": {"code": 404, "message": "Not Found", "errors": []}})
            return
        q = query.get("q", "")
        try:
            max_results = int(query.get("maxResults", "10"))
            start = int(query.get("startIndex", "0"))
        except ValueError:
            max_results = -1
            start = 0
        if not q or not 0 <= max_results <= 40:
            message = "Missing query." if not q else "Invalid value at 'max_results'"
            self._send(
                400,
                {
                    "error": {
                        "code": 400,
                        "message": message,
                        "errors": [{"reason": "invalid"}],
                        "status": "INVALID_ARGUMENT",
                    }
                },
            )
            return
        books = self._google_search(q)
        lang = query.get("langRestrict")
        if lang:
            books = [b for b in books if b["language"] == lang]
        result: Json = {"kind": "books#volumes", "totalItems": len(books)}
        page = books[start : start + max_results]
        if page:
            result["items"] = [google_item(b) for b in page]
        self._send(200, result)

    def _google_search(self, q: str) -> list[Json]:
        text_words: list[str] = []
        title = author = ""
        for token in _query_tokens(q):
            key, sep, value = token.partition(":")
            if sep and key == "isbn":  # lowercase only, like the real API
                book = self.state.by_isbn(value, "google")
                return [book] if book else []
            if sep and key == "intitle":
                title = (title + " " + value).strip()
            elif sep and key == "inauthor":
                author = (author + " " + value).strip()
            else:
                text_words.append(token)
        return self.state.matching("google", text=" ".join(text_words), title=title, author=author)

    # ---- ISBNdb

    def _isbndb(self, method: str, path: str, query: dict[str, str], body: bytes) -> None:
        if not self.headers.get("Authorization"):
            self._send(401, {"message": "Unauthorized"})
            return
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if method == "GET" and len(parts) == 2 and parts[0] == "book":
            book = self.state.by_isbn(parts[1], "isbndb")
            if book is None:
                self._send(404, {"errorMessage": "Not Found"})
            else:
                self._send(200, {"book": isbndb_book(book)})
        elif method == "POST" and parts == ["books"]:
            self._isbndb_bulk(body)
        elif method == "GET" and len(parts) == 2 and parts[0] == "author":
            books = self.state.matching("isbndb", author=parts[1])
            page, size = self._paging(query)
            chunk = books[(page - 1) * size : page * size]
            self._send(200, {"author": parts[1], "books": [isbndb_book(b) for b in chunk]})
        elif method == "GET" and len(parts) == 2 and parts[0] == "books":
            column = query.get("column", "")
            if column == "title":
                books = self.state.matching("isbndb", title=parts[1])
            elif column == "author":
                books = self.state.matching("isbndb", author=parts[1])
            else:
                books = self.state.matching("isbndb", text=parts[1])
            page, size = self._paging(query)
            chunk = books[(page - 1) * size : page * size]
            self._send(200, {"total": len(books), "books": [isbndb_book(b) for b in chunk]})
        else:
            self._send(404, {"errorMessage": "Not Found"})

    def _paging(self, query: dict[str, str]) -> tuple[int, int]:
        try:
            page = max(1, int(query.get("page", "1")))
            size = min(1000, max(1, int(query.get("pageSize", "20"))))
        except ValueError:
            return 1, 20
        return page, size

    def _isbndb_bulk(self, body: bytes) -> None:
        try:
            payload = json.loads(body or b"{}")
            isbns = payload["isbns"]
            if not isinstance(isbns, list):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            self._send(400, {"message": 'Body must be JSON {"isbns": [...]}'})
            return
        if len(isbns) > ISBNDB_BULK_MAX:
            self._send(400, {"message": f"Maximum {ISBNDB_BULK_MAX} ISBNs per request"})
            return
        data = []
        for isbn in isbns:
            book = self.state.by_isbn(str(isbn), "isbndb")
            if book is not None:
                data.append(isbndb_book(book))
        self._send(200, {"total": len(data), "requested": len(isbns), "data": data})

    # ---- Open Library

    def _openlibrary(self, method: str, path: str, query: dict[str, str], body: bytes) -> None:
        if method != "GET":
            self._send(405, {"error": "method not allowed"})
        elif path == "/api/books":
            result: Json = {}
            for key in filter(None, query.get("bibkeys", "").split(",")):
                scheme, _, value = key.partition(":")
                if scheme.upper() != "ISBN":
                    continue
                book = self.state.by_isbn(value, "openlibrary")
                if book is not None:
                    result[key] = openlibrary_data(book)
            if query.get("format") == "json":
                self._send(200, result)
            else:  # the real default is a JavaScript assignment
                self._send(200, f"var _OLBookInfo = {json.dumps(result)};", "text/javascript")
        elif path == "/search.json":
            if query.get("isbn"):
                one = self.state.by_isbn(query["isbn"], "openlibrary")
                books = [one] if one else []
            else:
                books = self.state.matching(
                    "openlibrary",
                    text=query.get("q", ""),
                    title=query.get("title", ""),
                    author=query.get("author", ""),
                )
            try:
                limit = int(query.get("limit", "100"))
                page = max(1, int(query.get("page", "1")))
                offset = int(query["offset"]) if "offset" in query else None
            except ValueError:
                limit, page, offset = 100, 1, None
            start = max(0, offset) if offset is not None else (page - 1) * limit
            docs = [openlibrary_doc(b) for b in books[start : start + limit]]
            self._send(200, {"start": start, "num_found": len(books), "docs": docs})
        else:
            self._send(404, {"error": "notfound", "key": path})


class FixtureServer(ThreadingHTTPServer):
    """Threaded HTTP server carrying a :class:`FixtureState`."""

    daemon_threads = True

    def __init__(
        self, host: str, port: int, *, verbose: bool = False, books: list[Json] | None = None
    ) -> None:
        super().__init__((host, port), _Handler)
        self.state = FixtureState(load_catalogue() if books is None else books)
        self.verbose = verbose

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


@contextlib.contextmanager
def run_in_thread(
    port: int = 0, host: str = "127.0.0.1", *, books: list[Json] | None = None
) -> Iterator[str]:
    """Serve in a background thread; yields the base URL (``http://127.0.0.1:PORT``).

    ``books`` replaces the fixture catalogue (benchmarks serve a generated one).
    """
    server = FixtureServer(host, port, books=books)
    thread = threading.Thread(target=server.serve_forever, name="fixture-upstream", daemon=True)
    thread.start()
    try:
        yield server.base_url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    server = FixtureServer(args.host, args.port, verbose=args.verbose)
    base = server.base_url
    print(f"fixture upstream listening on {base}", flush=True)
    print(f"  ISBNDB_BASE_URL={base}/isbndb", flush=True)
    print(f"  GOOGLE_BOOKS_BASE_URL={base}/google/books/v1", flush=True)
    print(f"  OPEN_LIBRARY_BASE_URL={base}/openlibrary", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
