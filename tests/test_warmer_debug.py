"""The warmer's authenticated pass-through to its bindings (used by operators and e2e)."""

from __future__ import annotations

import json

import pytest
from test_warmer_support import AUTH, WARMER, make_system, mock_upstreams


async def test_forward_needs_the_token() -> None:
    """Without the bearer token nothing is forwarded."""
    system = make_system()
    resp = await system.fetch(WARMER, "/debug/isbndb/health")
    assert resp.status == 401
    assert system.traffic == []


async def test_forward_reaches_each_worker_through_its_binding() -> None:
    """GET /debug/{proxy,isbndb}/health answers from the bound workers."""
    system = make_system()
    for target, worker in (("proxy", "books_api_proxy"), ("isbndb", "isbndb_worker")):
        resp = await system.fetch(WARMER, f"/debug/{target}/health", headers=AUTH)
        assert resp.status == 200
        assert json.loads(await resp.text())["worker"] == worker
    services = [t for t in system.traffic if t.kind in ("fetch", "rpc")]
    assert [(t.binding, t.target) for t in services] == [
        ("BOOKS_API_PROXY", "https://books-api-proxy.internal/health"),
        ("ISBNDB_WORKER", "https://isbndb-worker.internal/health"),
    ]


async def test_forward_keeps_the_encoded_path_and_query() -> None:
    """An encoded author name and the query reach isbndb unchanged; x-cache passes back."""
    system = make_system()
    with mock_upstreams():
        resp = await system.fetch(
            WARMER,
            "/debug/isbndb/author/Frank%20Herbert?page=1&pageSize=50&language=en",
            headers=AUTH,
        )
        assert resp.status == 200
        services = [t for t in system.traffic if t.kind in ("fetch", "rpc")]
        assert services[-1].target == (
            "https://isbndb-worker.internal/author/Frank%20Herbert?page=1&pageSize=50&language=en"
        )
        first = await system.fetch(
            WARMER, "/debug/proxy/search/auto?q=9780441013593&maxResults=1", headers=AUTH
        )
        again = await system.fetch(
            WARMER, "/debug/proxy/search/auto?q=9780441013593&maxResults=1", headers=AUTH
        )
    assert first.headers.get("x-cache") == "miss"
    assert again.headers.get("x-cache") == "kv"


async def test_rpc_calls_allowed_methods_with_positional_args() -> None:
    """POST /debug/rpc/isbndb/book returns the RPC result; unknown methods are 404."""
    system = make_system()
    with mock_upstreams():
        resp = await system.fetch(
            WARMER,
            "/debug/rpc/isbndb/book",
            method="POST",
            headers=AUTH,
            body=json.dumps(["9780441013593"]),
        )
    assert resp.status == 200
    assert json.loads(await resp.text())["result"]["book"]["title"] == "Dune"
    nope = await system.fetch(
        WARMER, "/debug/rpc/isbndb/__init__", method="POST", headers=AUTH, body="[]"
    )
    assert nope.status == 404


@pytest.mark.parametrize(
    ("path", "args"),
    [
        ("/debug/rpc/proxy/cache_status", []),
        ("/debug/rpc/proxy/search_auto", []),
        ("/debug/rpc/isbndb/author", []),
        ("/debug/rpc/isbndb/health", ["surplus"]),
    ],
)
async def test_rpc_with_a_wrong_argument_count_returns_the_error_dict(
    path: str, args: list[object]
) -> None:
    """Over a real binding call, a wrong argument count comes back as a result, not a 502."""
    system = make_system()
    with mock_upstreams():
        resp = await system.fetch(WARMER, path, method="POST", headers=AUTH, body=json.dumps(args))
    assert resp.status == 200, await resp.text()
    error = json.loads(await resp.text())["result"]["error"]
    assert (error["status"], error["code"]) == (400, "invalid_input")


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/debug/proxy/health", "", 405),
        ("GET", "/debug/rpc/proxy/health", None, 405),
        ("POST", "/debug/rpc/proxy/health", '{"not": "a list"}', 400),
        ("POST", "/debug/rpc/proxy/health", "not json", 400),
        ("GET", "/debug/nothing/health", None, 404),
    ],
)
async def test_bad_debug_requests_are_4xx(
    method: str, path: str, body: str | None, status: int
) -> None:
    """Wrong methods, bodies and targets answer JSON 4xx."""
    system = make_system()
    resp = await system.fetch(WARMER, path, method=method, headers=AUTH, body=body)
    assert resp.status == status
    assert "error" in json.loads(await resp.text())


async def test_rpc_cannot_call_warm_isbns() -> None:
    """warm_isbns spends upstream quota outside the daily budgets: not callable over debug."""
    system = make_system()
    with mock_upstreams() as upstreams:
        resp = await system.fetch(
            WARMER,
            "/debug/rpc/proxy/warm_isbns",
            method="POST",
            headers=AUTH,
            body=json.dumps([["9780441013593"]]),
        )
        assert sum(upstreams.calls().values()) == 0
    assert resp.status == 404
    assert json.loads(await resp.text())["error"]["code"] == "not_found"
    assert system.traffic == []
