"""ISBNdb failures mapped to answers: auth, 429, 5xx/timeouts with retries, breaker, bad JSON.
(The spacing of calls by the key guard is in test_isbndb_keyguard.py.)"""

from __future__ import annotations

import json

import httpx
import pytest
from test_isbndb_support import (
    DUNE13,
    MESSIAH13,
    WORKER,
    book_json,
    fixture,
    get,
    make_system,
    mock_isbndb,
)


@pytest.mark.parametrize(
    ("status", "code", "hint"),
    [(401, "upstream_auth", "ISBNDB_API_KEY"), (403, "upstream_forbidden", "plan")],
)
async def test_auth_failures_are_502_with_a_hint_and_no_retry(
    status: int, code: str, hint: str
) -> None:
    """401/403 answer 502 explaining the key or plan-host problem; they are not retried."""
    system = make_system()
    with mock_isbndb() as isbndb:
        isbndb.get(f"/book/{DUNE13}").respond(status, json={"message": "Unauthorized"})
        got, body, _ = await get(system, f"/book/{DUNE13}")
    assert got == 502
    assert body["error"]["code"] == code
    assert hint in body["error"]["message"]
    assert body["error"]["upstreamStatus"] == status
    assert len(isbndb.calls) == 1


async def test_server_errors_are_retried_then_succeed() -> None:
    """5xx answers are retried with backoff on the fake clock; a later success is returned."""
    system = make_system(worker_vars={"ISBNDB_RATE_PER_S": "100"})  # slots never wait
    with mock_isbndb() as isbndb:
        isbndb.get(f"/book/{DUNE13}").mock(
            side_effect=[
                httpx.Response(500),
                httpx.Response(503),
                httpx.Response(200, json=fixture("book")),
            ]
        )
        status, body, _ = await get(system, f"/book/{DUNE13}")
    assert status == 200
    assert body["book"]["title"] == "Dune"
    assert len(isbndb.calls) == 3
    backoffs = [s for s in system.clock.sleeps if s >= 0.25]
    assert len(backoffs) == 2


async def test_timeouts_are_retried_then_502() -> None:
    """Timeouts are retried; when every attempt times out the answer is 502 upstream_error."""
    system = make_system()
    with mock_isbndb() as isbndb:
        isbndb.get(f"/book/{DUNE13}").mock(side_effect=httpx.ReadTimeout("slow"))
        status, body, _ = await get(system, f"/book/{DUNE13}")
    assert status == 502
    assert body["error"]["code"] == "upstream_error"
    assert "timed out" in body["error"]["message"]
    assert len(isbndb.calls) == 3


async def test_breaker_opens_fails_fast_and_recovers() -> None:
    """After repeated 5xx the breaker opens: 503 with Retry-After, no call; a probe closes it."""
    system = make_system()
    with mock_isbndb() as isbndb:
        route = isbndb.get(f"/book/{DUNE13}").respond(500)
        for _ in range(3):
            assert (await get(system, f"/book/{DUNE13}"))[0] == 502
        calls = route.call_count
        status, body, headers = await get(system, f"/book/{DUNE13}")
        assert status == 503
        assert body["error"]["code"] == "upstream_unavailable"
        assert int(headers["retry-after"]) >= 1
        assert route.call_count == calls
        rpc = await system.rpc(WORKER, "book", DUNE13)
        assert rpc["error"]["status"] == 503
        assert rpc["error"]["retryAfter"] >= 1
        _, health, _ = await get(system, "/health")
        assert health["breaker"]["state"] == "open"
        system.clock.advance(31)
        route.respond(200, json=fixture("book"))
        assert (await get(system, f"/book/{DUNE13}"))[0] == 200
    _, health, _ = await get(system, "/health")
    assert health["breaker"]["state"] == "closed"


async def test_429_honours_retry_after_then_succeeds() -> None:
    """A 429 with Retry-After waits that long (on the fake clock) before retrying."""
    system = make_system()
    with mock_isbndb() as isbndb:
        isbndb.get(f"/book/{DUNE13}").mock(
            side_effect=[
                httpx.Response(
                    429, headers={"retry-after": "2"}, json={"message": "Limit Exceeded"}
                ),
                httpx.Response(200, json=fixture("book")),
            ]
        )
        status, _, _ = await get(system, f"/book/{DUNE13}")
    assert status == 200
    assert 2.0 in system.clock.sleeps


async def test_persistent_429_is_503_with_retry_after() -> None:
    """When 429 persists through the bounded retries the answer is 503 rate_limited."""
    system = make_system()
    with mock_isbndb() as isbndb:
        isbndb.get(f"/book/{DUNE13}").respond(
            429, headers={"retry-after": "3"}, json={"message": "Limit Exceeded"}
        )
        status, body, headers = await get(system, f"/book/{DUNE13}")
        rpc = await system.rpc(WORKER, "book", DUNE13)
    assert status == 503
    assert body["error"]["code"] == "rate_limited"
    assert headers["retry-after"] == "3"
    assert len(isbndb.calls) == 6  # two look-ups, three attempts each
    assert rpc["error"]["code"] in ("rate_limited", "upstream_unavailable")
    assert rpc["error"]["retryAfter"] >= 1
    assert max(system.clock.sleeps) <= 5.0  # Retry-After is capped


@pytest.mark.parametrize(
    ("method", "upstream", "path", "payload"),
    [
        ("GET", f"/book/{DUNE13}", f"/book/{DUNE13}", b"not json{"),
        ("GET", f"/book/{DUNE13}", f"/book/{DUNE13}", b'{"book": "Dune"}'),
        ("GET", f"/book/{DUNE13}", f"/book/{DUNE13}", b"[1, 2]"),
        ("GET", f"/book/{DUNE13}", f"/book/{DUNE13}", b""),
        ("GET", "/author/Herbert", "/author/Herbert", b'{"books": "many"}'),
        ("GET", "/author/Herbert", "/author/Herbert", b"<html>oops</html>"),
        ("POST", "/books", "/books", b'{"data": 3}'),
        ("POST", "/books", "/books", b"\xff\xfe"),
    ],
    ids=[
        "book-not-json",
        "book-wrong-shape",
        "book-list",
        "book-empty",
        "author-books-string",
        "author-html",
        "bulk-data-number",
        "bulk-binary",
    ],
)
async def test_malformed_upstream_answers_are_502(
    method: str, upstream: str, path: str, payload: bytes
) -> None:
    """Anything but the documented JSON answers 502 (never a crash)."""
    system = make_system()
    body = json.dumps({"isbns": [DUNE13]}) if method == "POST" else None
    with mock_isbndb() as isbndb:
        isbndb.route(method=method, path=upstream).respond(200, content=payload)
        status, got, _ = await get(system, path, method=method, body=body)
    assert status == 502
    assert got["error"]["code"] == "upstream_error"
    assert "malformed" in got["error"]["message"]


async def test_other_4xx_is_502_not_retried() -> None:
    """An unexpected 4xx from ISBNdb is a 502 and is not retried."""
    system = make_system()
    with mock_isbndb() as isbndb:
        isbndb.post("/books").respond(400, json={"message": "Maximum 100 ISBNs"})
        status, body, _ = await get(
            system, "/books", method="POST", body=json.dumps({"isbns": [DUNE13]})
        )
    assert status == 502
    assert body["error"]["upstreamStatus"] == 400
    assert len(isbndb.calls) == 1


async def test_a_failing_chunk_fails_the_bulk_call_but_keeps_earlier_chunks() -> None:
    """If a later chunk fails the call answers its error; books of earlier chunks are cached."""
    system = make_system(worker_vars={"ISBNDB_BULK_LIMIT": "1"})
    with mock_isbndb() as isbndb:
        isbndb.post("/books").mock(
            side_effect=[
                httpx.Response(200, json={"data": [book_json(DUNE13)]}),
                httpx.Response(401),
            ]
        )
        status, _, _ = await get(
            system, "/books", method="POST", body=json.dumps({"isbns": [DUNE13, MESSIAH13]})
        )
        cached, _, _ = await get(system, f"/book/{DUNE13}")
    assert status == 502
    assert cached == 200
    assert len(isbndb.calls) == 2


async def test_bulk_404_is_not_found_but_not_remembered() -> None:
    """A whole-chunk 404 (often a spent quota) reports notFound without negative caching."""
    system = make_system()
    with mock_isbndb() as isbndb:
        isbndb.post("/books").respond(404, json={"errorMessage": "Not Found"})
        isbndb.get(f"/book/{DUNE13}").respond(200, json=fixture("book"))
        _, body, _ = await get(
            system, "/books", method="POST", body=json.dumps({"isbns": [DUNE13]})
        )
        status, _, _ = await get(system, f"/book/{DUNE13}")
    assert body["notFound"] == [DUNE13]
    assert status == 200
