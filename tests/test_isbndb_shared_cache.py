"""Answers shared across isolates: author pages and books in the isbndb worker's own KV."""

from __future__ import annotations

import json

import httpx
import pytest
from test_isbndb_support import (
    DUNE13,
    MESSIAH13,
    WORKER,
    book_json,
    bulk_echo,
    fixture,
    get,
    make_system,
    mock_isbndb,
    upstream_calls,
)

from harness import FakeKV, System
from harness.isbns import isbn13
from isbndb_app.config import AUTHOR_KV_TTL_S, BOOK_KV_TTL_S, NOT_FOUND_KV_TTL_S
from isbndb_app.shared_cache import author_key, book_key

AUTHOR_PATH = "/author/Frank%20Herbert?page=1&pageSize=50&language=en"


def kv(system: System) -> FakeKV:
    """The isbndb worker's own namespace."""
    return system.kv(WORKER, "ISBNDB_CACHE")


def takes(system: System) -> int:
    """Slots asked of the key guard so far."""
    return sum(1 for c in system.objects.calls if c.method == "take")


def ttl_of(system: System, key: str) -> float:
    """Seconds the KV entry ``key`` has left."""
    item = kv(system).items[key]
    assert item.expires_at is not None
    return item.expires_at - system.clock()


def isbn(n: int) -> str:
    """The n-th valid ISBN-13 of a test series."""
    return isbn13(f"978200{n:06d}")


async def test_an_author_page_asked_again_from_another_isolate_is_not_asked_of_isbndb() -> None:
    """The warmer's page, asked again by the proxy through another isolate, comes from KV."""
    first = make_system()
    second = first.sibling()
    with mock_isbndb() as isbndb:
        isbndb.get("/author/Frank%20Herbert").respond(200, json=fixture("author"))
        status, body, _ = await get(first, AUTHOR_PATH)
        again_status, again, _ = await get(second, AUTHOR_PATH)
    assert (status, again_status) == (200, 200)
    assert again == body
    assert len(upstream_calls(isbndb)) == 1
    assert takes(first) == 1  # the hit never asked the key guard
    key = author_key("Frank Herbert", 1, 50, "en")
    assert ttl_of(first, key) == pytest.approx(AUTHOR_KV_TTL_S, abs=5)
    _, metrics, _ = await get(second, "/metrics")
    assert metrics["counters"]["cache.author.kv_hit"] == 1


async def test_an_unknown_author_is_shared_briefly() -> None:
    """ISBNdb's 404 for an author is shared as an empty page for 15 minutes only."""
    first = make_system()
    with mock_isbndb() as isbndb:
        isbndb.get("/author/Nobody").respond(404, json={"errorMessage": "Not Found"})
        await get(first, "/author/Nobody?page=1&pageSize=50&language=en")
        _, body, _ = await get(first.sibling(), "/author/Nobody?page=1&pageSize=50&language=en")
        assert len(upstream_calls(isbndb)) == 1
        assert (body["books"], body["hasMore"]) == ([], False)
        assert ttl_of(first, author_key("Nobody", 1, 50, "en")) == pytest.approx(
            NOT_FOUND_KV_TTL_S, abs=5
        )
        first.clock.advance(NOT_FOUND_KV_TTL_S)
        await get(first.sibling(), "/author/Nobody?page=1&pageSize=50&language=en")
    assert len(upstream_calls(isbndb)) == 2


async def test_books_and_their_absence_are_shared() -> None:
    """A book, and ISBNdb's "no such book", reach other isolates without an ISBNdb call."""
    first = make_system()
    with mock_isbndb() as isbndb:
        isbndb.get(f"/book/{DUNE13}").respond(200, json=fixture("book"))
        isbndb.get(f"/book/{MESSIAH13}").respond(404, json={"errorMessage": "Not Found"})
        await get(first, f"/book/{DUNE13}")
        await get(first, f"/book/{MESSIAH13}")
        other = first.sibling()
        found = await get(other, f"/book/{DUNE13}")
        missing = await get(other, f"/book/{MESSIAH13}")
        rpc = await other.sibling().rpc(WORKER, "book", DUNE13)
    assert len(upstream_calls(isbndb)) == 2
    assert found[0] == 200
    assert found[1]["book"]["title"] == "Dune"
    assert rpc == found[1]
    assert missing[0] == 404
    assert ttl_of(first, book_key(DUNE13)) == pytest.approx(BOOK_KV_TTL_S, abs=5)
    assert ttl_of(first, book_key(MESSIAH13)) == pytest.approx(NOT_FOUND_KV_TTL_S, abs=5)


async def test_a_repeated_bulk_look_up_from_another_isolate_never_reaches_isbndb() -> None:
    """Every ISBN a bulk call asked (found or not) is shared; a repeat asks only new ones."""
    first = make_system()
    asked = [isbn(n) for n in range(5)]
    with mock_isbndb() as isbndb:
        route = isbndb.post("/books").mock(side_effect=bulk_echo)
        body = json.dumps({"isbns": asked})
        _, one, _ = await get(first, "/books", method="POST", body=body)
        _, two, _ = await get(first.sibling(), "/books", method="POST", body=body)
        more = json.dumps({"isbns": [*asked, isbn(7)]})
        await get(first.sibling(), "/books", method="POST", body=more)
    assert two == one
    assert route.call_count == 2
    assert json.loads(route.calls[1].request.content)["isbns"] == [isbn(7)]
    assert len(kv(first).dump()) == 6


async def test_a_bulk_404_is_not_shared() -> None:
    """A whole-chunk 404 (often a spent quota) is neither remembered nor shared."""
    first = make_system()
    with mock_isbndb() as isbndb:
        route = isbndb.post("/books").respond(404, json={"errorMessage": "Not Found"})
        body = json.dumps({"isbns": [DUNE13]})
        await get(first, "/books", method="POST", body=body)
        await get(first.sibling(), "/books", method="POST", body=body)
    assert route.call_count == 2
    assert kv(first).dump() == {}


async def test_the_isolate_lru_stays_in_front_of_kv() -> None:
    """A repeat in the same isolate reads nothing from KV."""
    system = make_system()
    with mock_isbndb() as isbndb:
        isbndb.get(f"/book/{DUNE13}").respond(200, json=fixture("book"))
        await get(system, f"/book/{DUNE13}")
        reads = kv(system).ops.get("get", 0)
        await get(system, f"/book/{DUNE13}")
    assert kv(system).ops.get("get", 0) == reads


@pytest.mark.parametrize("op", ["get", "put"])
async def test_a_failing_kv_never_fails_an_answer(op: str) -> None:
    """KV reads that throw are misses; writes that throw are logged and counted."""
    system = make_system()
    kv(system).failing.add(op)
    with mock_isbndb() as isbndb:
        isbndb.get(f"/book/{DUNE13}").respond(200, json=fixture("book"))
        status, body, _ = await get(system, f"/book/{DUNE13}")
    assert status == 200
    assert body["book"]["isbn13"] == DUNE13
    _, metrics, _ = await get(system, "/metrics")
    assert metrics["counters"][f"kv.{'read' if op == 'get' else 'write'}_errors"] == 1


async def test_a_corrupt_entry_is_a_miss() -> None:
    """An entry that does not parse (or is not a book) is ignored and asked again."""
    system = make_system()
    await kv(system).put(book_key(DUNE13), "{not json", expirationTtl=60)
    await kv(system).put(book_key(MESSIAH13), json.dumps({"book": {"title": "no isbn"}}))
    with mock_isbndb() as isbndb:
        isbndb.get(path__startswith="/book/").mock(
            side_effect=lambda request: httpx.Response(
                200, json={"book": book_json(request.url.path.rsplit("/", 1)[1])}
            )
        )
        assert (await get(system, f"/book/{DUNE13}"))[0] == 200
        assert (await get(system, f"/book/{MESSIAH13}"))[0] == 200
    assert len(upstream_calls(isbndb)) == 2


async def test_kv_operations_per_call_stay_within_the_runtime_limit() -> None:
    """A 1,000-ISBN bulk call reads and writes at most 400 KV entries each."""
    system = make_system(worker_vars={"ISBNDB_BULK_LIMIT": "1000", "ISBNDB_RATE_PER_S": "100"})
    body = json.dumps({"isbns": [isbn(n) for n in range(1000)]})
    with mock_isbndb() as isbndb:
        isbndb.post("/books").mock(side_effect=bulk_echo)
        status, got, _ = await get(system, "/books", method="POST", body=body)
    assert status == 200
    assert got["requested"] == 1000
    ops = kv(system).ops
    assert ops["get"] == 400
    assert ops["put"] == 400


async def test_health_says_whether_the_shared_cache_is_bound() -> None:
    """/health shows the KV binding; without it the worker still answers (LRU only)."""
    system = make_system()
    _, health, _ = await get(system, "/health")
    assert health["sharedCache"] is True
    del system.envs[WORKER].ISBNDB_CACHE
    with mock_isbndb() as isbndb:
        isbndb.get(f"/book/{DUNE13}").respond(200, json=fixture("book"))
        assert (await get(system, f"/book/{DUNE13}"))[0] == 200
    _, health, _ = await get(system, "/health")
    assert health["sharedCache"] is False
