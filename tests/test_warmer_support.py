"""Shared helpers for the cache warmer tests: the system, uploads, cron ticks, upstream mocks."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import respx

from harness import System
from harness.devtools import fixture_upstream
from harness.isbns import isbn_series
from warmer_app.jobs import JobState

LIBRARIES = Path(__file__).parent / "fixtures" / "libraries"
TOKEN = "t"
AUTH = {"authorization": f"Bearer {TOKEN}"}
WARMER = "cache_warmer"
PROXY = "books_api_proxy"
BATCH_CRON = "*/15 * * * *"
VERIFY_CRON = "0 2 * * *"


FIXTURES = fixture_upstream()
CATALOGUE_ISBNS = [b["isbn13"] for b in FIXTURES.load_catalogue()]
# Authors of goodreads_24.csv that no fixture provider lists: warmed, then recorded as failed
# ("no results from any provider"), so a complete run of that library is 20 done + 4 failed.
UNLISTED_AUTHORS = frozenset({"Stanisław Lem", "Gabriel García Márquez", "Zoë O'Brien", "村上春樹"})
NO_RESULTS = "no results from any provider"


def make_system(**warmer_vars: str) -> System:
    """All three workers with the ISBNdb key and the warmer's admin token configured."""
    return System(
        secrets={"ISBNDB_API_KEY": "k", "WARMER_ADMIN_TOKEN": TOKEN, "GOOGLE_BOOKS_API_KEY": "g"},
        vars={WARMER: warmer_vars} if warmer_vars else None,
    )


def library(name: str) -> bytes:
    """A sample export from tests/fixtures/libraries."""
    return (LIBRARIES / name).read_bytes()


async def upload(
    system: System,
    body: bytes | str,
    *,
    headers: dict[str, str] | None = None,
    content_type: str = "text/csv",
) -> tuple[int, Any]:
    """POST /libraries with the token; returns (status, JSON body)."""
    sent = {**AUTH, "content-type": content_type, **(headers or {})}
    resp = await system.fetch(WARMER, "/libraries", method="POST", headers=sent, body=body)
    return resp.status, json.loads(await resp.text())


async def get_json(
    system: System, path: str, worker: str = WARMER, *, auth: bool = True
) -> tuple[int, Any]:
    """GET a JSON endpoint, with the admin token unless ``auth`` is False (the full views)."""
    resp = await system.fetch(worker, path, headers=AUTH if auth else None)
    return resp.status, json.loads(await resp.text())


async def tick(system: System, cron: str = BATCH_CRON, *, seconds: float = 900) -> None:
    """Let ``seconds`` pass, deliver the queue messages due by then, fire ``cron`` on the
    warmer, and deliver what it sent (a retry's backoff waits for the next tick)."""
    system.clock.advance(seconds)
    await system.deliver()
    await system.scheduled(WARMER, cron)
    await system.deliver()


async def warm(system: System, *, within: float = 3600.0) -> float:
    """Deliver the warming queue (delayed retries included) for up to ``within`` seconds of
    the fake clock, no cron fired; returns the seconds that passed."""
    return await system.run_queues(within=within)


JOBS_NAMESPACE = "personal-library-cache-warmer:LibraryJob"


def job_state(system: System, job_id: str) -> JobState:
    """The job's state as its Durable Object keeps it."""
    rows = system.objects.query(JOBS_NAMESPACE, job_id, "SELECT state FROM job")
    return JobState.from_json(rows[0]["state"])


def job_units(system: System, job_id: str) -> list[dict[str, Any]]:
    """The job's unit rows (n, kind, items as a list, status, result as a dict or None)."""
    rows = system.objects.query(
        JOBS_NAMESPACE, job_id, "SELECT n, kind, items, status, result FROM units ORDER BY n"
    )
    return [
        {
            **r,
            "items": json.loads(r["items"]),
            "result": json.loads(r["result"]) if r["result"] else None,
        }
        for r in rows
    ]


def warmer_kv(system: System) -> Any:
    """The warmer's WARMING_CACHE namespace."""
    return system.kv(WARMER, "WARMING_CACHE")


class IsolateDied(BaseException):
    """Stands for the isolate being killed: nothing after it runs, not even except blocks."""


class DyingBinding:
    """A service binding that kills the run on its ``after``-th call."""

    def __init__(self, inner: Any, after: int) -> None:
        self._inner = inner
        self.after = after
        self.calls = 0

    def _count(self) -> None:
        self.calls += 1
        if self.calls == self.after:
            raise IsolateDied(f"killed at call {self.calls}")

    async def fetch(self, *args: Any, **kwargs: Any) -> Any:
        self._count()
        return await self._inner.fetch(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)

        async def call(*args: Any) -> Any:
            self._count()
            return await method(*args)

        return call


def unknown_isbns(count: int) -> list[str]:
    """``count`` valid ISBN-13s (979-8 prefix) that no fixture provider knows."""
    return isbn_series("9798", count, exclude=CATALOGUE_ISBNS)


def multipart(filename: str, content: bytes, *, boundary: str = "XyZzY") -> tuple[bytes, str]:
    """A multipart/form-data body with one file field, and its Content-Type."""
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{filename}"\r\nContent-Type: text/csv\r\n\r\n'
    ).encode()
    body = head + content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


# -- upstream providers (respx), answering from devtools/fixtures/catalogue.json -------------


@dataclass
class Upstreams:
    """The mocked providers; ``calls`` counts requests per provider."""

    routes: dict[str, respx.Route]

    def calls(self) -> dict[str, int]:
        """Requests per provider so far."""
        return {name: route.call_count for name, route in self.routes.items()}


def _json(status: int, body: Any) -> httpx.Response:
    return httpx.Response(status, json=body)


def _isbndb(request: httpx.Request) -> httpx.Response:
    state = FIXTURES.FixtureState(FIXTURES.load_catalogue())
    parts = [unquote(p) for p in urlsplit(str(request.url)).path.strip("/").split("/")]
    if request.method == "POST" and parts == ["books"]:
        isbns = json.loads(request.content)["isbns"]
        data = [
            FIXTURES.isbndb_book(b)
            for i in isbns
            if (b := state.by_isbn(str(i), "isbndb")) is not None
        ]
        return _json(200, {"total": len(data), "requested": len(isbns), "data": data})
    if len(parts) == 2 and parts[0] == "book":
        book = state.by_isbn(parts[1], "isbndb")
        if book is None:
            return _json(404, {"errorMessage": "Not Found"})
        return _json(200, {"book": FIXTURES.isbndb_book(book)})
    if len(parts) == 2 and parts[0] in ("author", "books"):
        books = state.matching("isbndb", author=parts[1]) if parts[0] == "author" else []
        body: dict[str, Any] = {"books": [FIXTURES.isbndb_book(b) for b in books]}
        body["author" if parts[0] == "author" else "total"] = (
            parts[1] if parts[0] == "author" else len(books)
        )
        return _json(200, body)
    return _json(404, {"errorMessage": "Not Found"})


def _google(request: httpx.Request) -> httpx.Response:
    state = FIXTURES.FixtureState(FIXTURES.load_catalogue())
    q = parse_qs(urlsplit(str(request.url)).query).get("q", [""])[0]
    books: list[Any] = []
    if q.startswith("isbn:"):
        one = state.by_isbn(q[5:], "google")
        books = [one] if one else []
    else:
        author = " ".join(t.partition(":")[2] for t in q.split() if t.startswith("inauthor:"))
        words = " ".join(t for t in q.split() if ":" not in t)
        books = state.matching("google", author=author, text=words)
    body: dict[str, Any] = {"kind": "books#volumes", "totalItems": len(books)}
    if books:
        body["items"] = [FIXTURES.google_item(b) for b in books]
    return _json(200, body)


def _openlibrary(request: httpx.Request) -> httpx.Response:
    state = FIXTURES.FixtureState(FIXTURES.load_catalogue())
    url = urlsplit(str(request.url))
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    if url.path == "/api/books":
        out = {}
        for key in filter(None, query.get("bibkeys", "").split(",")):
            book = state.by_isbn(key.partition(":")[2], "openlibrary")
            if book is not None:
                out[key] = FIXTURES.openlibrary_data(book)
        return _json(200, out)
    if url.path == "/search.json":
        books = state.matching(
            "openlibrary", author=query.get("author", ""), text=query.get("q", "")
        )
        docs = [FIXTURES.openlibrary_doc(b) for b in books]
        return _json(200, {"start": 0, "num_found": len(docs), "docs": docs})
    return _json(404, {"error": "notfound"})


HOSTS = {
    "isbndb": "api2.isbndb.com",
    "google": "www.googleapis.com",
    "openlibrary": "openlibrary.org",
}
Answer = Callable[[httpx.Request], httpx.Response] | httpx.Response


@contextmanager
def _mocked(answers: Mapping[str, Answer]) -> Iterator[Upstreams]:
    """respx routes, one per provider's host, answering with a function or a fixed response."""
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        routes = {}
        for provider, answer in answers.items():
            route = router.route(host=HOSTS[provider])
            if isinstance(answer, httpx.Response):
                routes[provider] = route.mock(return_value=answer)
            else:
                routes[provider] = route.mock(side_effect=answer)
        yield Upstreams(routes)


@contextmanager
def mock_upstreams() -> Iterator[Upstreams]:
    """respx routes for ISBNdb, Google Books and Open Library, named by provider."""
    with _mocked({"isbndb": _isbndb, "google": _google, "openlibrary": _openlibrary}) as up:
        yield up


@contextmanager
def broken_upstreams(status: int) -> Iterator[Upstreams]:
    """Every provider answers ``status`` (503: down, a transient failure for the warmer)."""
    answer = _json(status, {"error": {"code": status, "message": "unavailable"}})
    with _mocked(dict.fromkeys(HOSTS, answer)) as up:
        yield up


@contextmanager
def empty_upstreams() -> Iterator[Upstreams]:
    """Providers that answer, and know no book and no author (every item: not found)."""

    def isbndb(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return _json(200, {"total": 0, "requested": 0, "data": []})
        if "/author/" in request.url.path:
            return _json(200, {"author": "x", "books": []})
        return _json(404, {"errorMessage": "Not Found"})

    def openlibrary(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/search.json":
            return _json(200, {"start": 0, "num_found": 0, "docs": []})
        return _json(200, {})

    google = _json(200, {"kind": "books#volumes", "totalItems": 0})
    with _mocked({"isbndb": isbndb, "google": google, "openlibrary": openlibrary}) as up:
        yield up


HTML = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


async def get_page(system: System, job_id: str, *, auth: bool = True) -> tuple[int, Any, str]:
    """GET /libraries/{id} as a browser asks for it (Accept prefers HTML): status, headers,
    text; with the admin token unless ``auth`` is False."""
    headers = {**HTML, **(AUTH if auth else {})}
    resp = await system.fetch(WARMER, f"/libraries/{job_id}", headers=headers)
    return resp.status, resp.headers, await resp.text()
