"""Helpers shared by the isbndb worker tests (no tests here): fixtures, the system, respx."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import respx

from harness import System

BASE = "https://api2.isbndb.com"
KEY = "test-key-5ecret-7c1d"  # distinctive, so a leak anywhere is easy to spot
WORKER = "isbndb_worker"
FIXTURES = Path(__file__).parent / "fixtures" / "isbndb"
DUNE13 = "9780441013593"
DUNE10 = "0441013597"
MESSIAH13 = "9780593098233"
CHILDREN13 = "9780593098240"
ALIAS13 = "9780000000019"  # listed in Dune's other_isbns


def fixture(name: str) -> Any:
    """A JSON fixture from tests/fixtures/isbndb/."""
    return json.loads((FIXTURES / f"{name}.json").read_text())


def make_system(*, key: str | None = KEY, worker_vars: Mapping[str, str] | None = None) -> System:
    """The deployed wiring with the API key in the Secrets Store (or missing)."""
    return System(secrets={"ISBNDB_API_KEY": key}, vars={WORKER: dict(worker_vars or {})})


@contextlib.contextmanager
def mock_isbndb() -> Iterator[respx.MockRouter]:
    """respx on the ISBNdb host; any unmocked request fails the test.

    Calls stay readable after the block (respx's own context manager clears them).
    """
    router = respx.mock(base_url=BASE, assert_all_called=False, assert_all_mocked=True)
    router.start()
    try:
        yield router
    finally:
        router.stop(clear=False, reset=False)


async def get(system: System, path: str, **kwargs: Any) -> tuple[int, Any, dict[str, str]]:
    """Fetch ``path`` from the worker: status, parsed JSON body, headers."""
    resp = await system.fetch(WORKER, path, **kwargs)
    text = await resp.text()
    return resp.status, json.loads(text), dict(resp.headers)


def book_json(isbn13: str, title: str = "A Book", **extra: Any) -> dict[str, Any]:
    """A minimal ISBNdb book object."""
    return {"isbn13": isbn13, "title": title, "authors": ["Someone"], **extra}


def bulk_echo(request: httpx.Request) -> httpx.Response:
    """A POST /books answer that knows every requested ISBN except those ending in 0."""
    isbns = json.loads(request.content)["isbns"]
    data = [book_json(i) for i in isbns if not i.endswith("0")]
    return httpx.Response(200, json={"total": len(data), "requested": len(isbns), "data": data})


def upstream_calls(router: respx.MockRouter) -> list[httpx.Request]:
    """Every request that reached the mocked ISBNdb, in order."""
    return [call.request for call in router.calls]
