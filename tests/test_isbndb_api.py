"""The ISBNdb worker's endpoints and RPC methods, through the harness, ISBNdb mocked by respx."""

from __future__ import annotations

import json

import pytest
from test_isbndb_support import (
    ALIAS13,
    CHILDREN13,
    DUNE10,
    DUNE13,
    KEY,
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

from bookmeta import Request
from bookmeta.runtime import RuntimeEnv
from harness import FakeContext
from harness.system import FakeEnv
from isbndb_app import Isolate, build_app

# -- GET /book/{isbn} ------------------------------------------------------------------------


async def test_book_by_isbn10_is_looked_up_as_isbn13_with_the_bare_key() -> None:
    """Any ISBN form is accepted; ISBNdb gets the ISBN-13 and `Authorization: <key>`."""
    system = make_system()
    with mock_isbndb() as isbndb:
        isbndb.get(f"/book/{DUNE13}").respond(200, json=fixture("book"))
        status, body, headers = await get(system, "/book/0-441-01359-7")
    assert status == 200
    assert body["book"]["isbn13"] == DUNE13
    assert body["book"]["isbn10"] == DUNE10
    assert "image_original" not in body["book"]
    assert headers["content-type"].startswith("application/json")
    (sent,) = upstream_calls(isbndb)
    assert sent.headers["authorization"] == KEY


async def test_repeated_book_costs_one_upstream_call() -> None:
    """A second look-up of the same book (any ISBN form) is served from the isolate LRU."""
    system = make_system()
    with mock_isbndb() as isbndb:
        route = isbndb.get(f"/book/{DUNE13}").respond(200, json=fixture("book"))
        first = await get(system, f"/book/{DUNE13}")
        second = await get(system, f"/book/{DUNE10}")
    assert first[1] == second[1]
    assert route.call_count == 1


async def test_unknown_book_is_404_and_negative_cached_for_less_than_an_hour() -> None:
    """ISBNdb's 404 answers 404 not_found; it is remembered briefly, then asked again."""
    system = make_system()
    with mock_isbndb() as isbndb:
        route = isbndb.get(f"/book/{MESSIAH13}").respond(404, json={"errorMessage": "Not Found"})
        status, body, _ = await get(system, f"/book/{MESSIAH13}")
        again = await get(system, f"/book/{MESSIAH13}")
        assert route.call_count == 1
        system.clock.advance(3600)
        await get(system, f"/book/{MESSIAH13}")
    assert status == 404
    assert body["error"]["code"] == "not_found"
    assert MESSIAH13 in body["error"]["message"]
    assert again[0] == 404
    assert route.call_count == 2


async def test_invalid_isbn_is_400_without_upstream_call() -> None:
    """A wrong check digit is refused locally."""
    system = make_system()
    with mock_isbndb() as isbndb:
        status, body, _ = await get(system, "/book/9780441013594")
    assert status == 400
    assert body["error"]["code"] == "invalid_isbn"
    assert "check digit" in body["error"]["message"]
    assert not isbndb.calls


# -- GET /author/{name} ----------------------------------------------------------------------


async def test_author_page_passes_paging_and_language() -> None:
    """page, pageSize and language go upstream; a full page (counting skipped books) hasMore."""
    system = make_system()
    with mock_isbndb() as isbndb:
        isbndb.get("/author/Frank%20Herbert").respond(200, json=fixture("author"))
        status, body, _ = await get(
            system, "/author/%20Frank%20Herbert%20?page=2&pageSize=3&language=EN"
        )
    assert status == 200
    assert body["author"] == "Frank Herbert"
    assert (body["page"], body["pageSize"], body["hasMore"]) == (2, 3, True)
    assert [b["isbn13"] for b in body["books"]] == [DUNE13, MESSIAH13]
    (sent,) = upstream_calls(isbndb)
    assert dict(sent.url.params) == {"page": "2", "pageSize": "3", "language": "en"}


async def test_an_author_page_is_one_call_whatever_the_names_case() -> None:
    """The warmer asks "Frank Herbert", the proxy "frank herbert" (its key form): the second is
    answered from the worker's caches, so warming stays at one ISBNdb call per author."""
    system = make_system()
    with mock_isbndb() as isbndb:
        isbndb.get("/author/Frank%20Herbert").respond(200, json=fixture("author"))
        first = await get(system, "/author/Frank%20Herbert?page=1&pageSize=50&language=en")
        second = await get(system, "/author/frank%20%20HERBERT?page=1&pageSize=50&language=en")
    assert first[0] == second[0] == 200
    assert second[1]["author"] == "frank  HERBERT"  # echoed as asked
    assert second[1]["books"] == first[1]["books"]
    assert len(upstream_calls(isbndb)) == 1


async def test_author_defaults_and_clamped_page_size() -> None:
    """Without paging the page is 1 and pageSize MAX_BOOKS_PER_AUTHOR; larger sizes clamp."""
    system = make_system()
    with mock_isbndb() as isbndb:
        isbndb.get("/author/Herbert").respond(200, json=fixture("author"))
        _, default, _ = await get(system, "/author/Herbert")
        _, clamped, _ = await get(system, "/author/Herbert?page=2&pageSize=500")
    first, second = upstream_calls(isbndb)
    assert dict(first.url.params) == {"page": "1", "pageSize": "50"}
    assert dict(second.url.params) == {"page": "2", "pageSize": "50"}
    assert (default["pageSize"], default["hasMore"]) == (50, False)
    assert clamped["pageSize"] == 50


async def test_max_books_per_author_var_sets_the_clamp() -> None:
    """MAX_BOOKS_PER_AUTHOR is read from the worker's vars."""
    system = make_system(worker_vars={"MAX_BOOKS_PER_AUTHOR": "3"})
    with mock_isbndb() as isbndb:
        isbndb.get("/author/Herbert").respond(200, json=fixture("author"))
        _, body, _ = await get(system, "/author/Herbert?pageSize=20")
    assert body["pageSize"] == 3
    assert body["hasMore"] is True


async def test_unknown_author_is_an_empty_page() -> None:
    """ISBNdb's 404 for an author answers 200 with no books and hasMore false."""
    system = make_system()
    with mock_isbndb() as isbndb:
        isbndb.get("/author/Nobody").respond(404, json={"errorMessage": "Not Found"})
        status, body, _ = await get(system, "/author/Nobody")
    assert status == 200
    assert body == {"author": "Nobody", "page": 1, "pageSize": 50, "books": [], "hasMore": False}


async def test_author_pages_are_cached_and_fill_the_book_cache() -> None:
    """A repeated author page and the books on it cost no further upstream call."""
    system = make_system()
    with mock_isbndb() as isbndb:
        isbndb.get("/author/Herbert").respond(200, json=fixture("author"))
        first = await get(system, "/author/Herbert")
        second = await get(system, "/author/Herbert")
        status, book, _ = await get(system, f"/book/{MESSIAH13}")
    assert first[1] == second[1]
    assert status == 200
    assert book["book"]["title"] == "Dune Messiah"
    assert len(isbndb.calls) == 1


# -- POST /books -----------------------------------------------------------------------------


async def test_bulk_lookup_reports_found_missing_and_invalid() -> None:
    """Duplicates collapse by ISBN-13, invalid and unknown ones are listed, aliases matched."""
    system = make_system()
    isbns = [DUNE10, DUNE13, ALIAS13, MESSIAH13, CHILDREN13, "nope", "9780441013594"]
    with mock_isbndb() as isbndb:
        isbndb.post("/books").respond(200, json=fixture("bulk"))
        status, body, _ = await get(
            system, "/books", method="POST", body=json.dumps({"isbns": isbns})
        )
    assert status == 200
    assert [b["isbn13"] for b in body["books"]] == [DUNE13, MESSIAH13]
    assert body["notFound"] == [CHILDREN13]
    assert [i["input"] for i in body["invalid"]] == ["nope", "9780441013594"]
    assert body["requested"] == 4
    assert body["matches"] == {DUNE13: DUNE13, ALIAS13: DUNE13, MESSIAH13: MESSIAH13}
    (sent,) = upstream_calls(isbndb)
    assert json.loads(sent.content) == {"isbns": [DUNE13, ALIAS13, MESSIAH13, CHILDREN13]}
    assert sent.headers["authorization"] == KEY


async def test_an_exact_isbn_match_beats_an_alias_listed_earlier() -> None:
    """Y listing X in other_isbns, answered before X itself, never replaces X's own record."""
    system = make_system()
    messiah = book_json(MESSIAH13, "Dune Messiah", other_isbns=[{"isbn": DUNE13}])
    dune = book_json(DUNE13, "Dune")
    with mock_isbndb() as isbndb:
        isbndb.post("/books").respond(
            200, json={"total": 2, "requested": 2, "data": [messiah, dune]}
        )
        status, body, _ = await get(
            system, "/books", method="POST", body=json.dumps({"isbns": [DUNE13, MESSIAH13]})
        )
        assert status == 200
        assert body["matches"] == {DUNE13: DUNE13, MESSIAH13: MESSIAH13}
        assert sorted(b["title"] for b in body["books"]) == ["Dune", "Dune Messiah"]
        status, one, _ = await get(system, f"/book/{DUNE13}")  # the isolate's cache agrees
    assert (status, one["book"]["title"]) == (200, "Dune")
    assert len(upstream_calls(isbndb)) == 1


async def test_250_isbns_take_three_chunked_calls() -> None:
    """At ISBNDB_BULK_LIMIT=100, 250 ISBNs go up as 100 + 100 + 50."""
    system = make_system()
    isbns = [f"978{i:09d}" for i in range(250)]
    isbns = [i + _check13(i) for i in isbns]
    with mock_isbndb() as isbndb:
        isbndb.post("/books").mock(side_effect=bulk_echo)
        status, body, _ = await get(
            system, "/books", method="POST", body=json.dumps({"isbns": isbns})
        )
    sizes = [len(json.loads(r.content)["isbns"]) for r in upstream_calls(isbndb)]
    assert status == 200
    assert sizes == [100, 100, 50]
    assert len(body["books"]) + len(body["notFound"]) == 250
    assert body["notFound"] == [i for i in isbns if i.endswith("0")]


async def test_bulk_limit_var_and_cache_reuse() -> None:
    """ISBNDB_BULK_LIMIT sets the chunk size; found and missing books are then cached."""
    system = make_system(worker_vars={"ISBNDB_BULK_LIMIT": "2"})
    isbns = [DUNE13, MESSIAH13, CHILDREN13, ALIAS13, "9780765311788"]
    with mock_isbndb() as isbndb:
        isbndb.post("/books").mock(side_effect=bulk_echo)
        _, first, _ = await get(system, "/books", method="POST", body=json.dumps({"isbns": isbns}))
        assert len(isbndb.calls) == 3
        _, again, _ = await get(system, "/books", method="POST", body=json.dumps({"isbns": isbns}))
        status, _, _ = await get(system, f"/book/{MESSIAH13}")
        missing, _, _ = await get(system, f"/book/{CHILDREN13}")
    assert first == again
    assert (status, missing) == (200, 404)
    assert len(isbndb.calls) == 3


@pytest.mark.parametrize("pages", ["²", "9" * 5000], ids=["superscript-two", "5000-digits"])
async def test_odd_page_strings_read_as_no_page_count(pages: str) -> None:
    """pages "²" (isdigit, yet not int()-able) or 5,000 digits is null, not a 500."""
    system = make_system()
    with mock_isbndb() as isbndb:
        isbndb.post("/books").respond(200, json={"data": [book_json(DUNE13, pages=pages)]})
        status, body, _ = await get(
            system, "/books", method="POST", body=json.dumps({"isbns": [DUNE13]})
        )
    assert status == 200
    assert [(b["isbn13"], b["pages"]) for b in body["books"]] == [(DUNE13, None)]


async def test_bulk_with_only_invalid_isbns_makes_no_call() -> None:
    """Nothing valid to look up: the answer lists the invalid inputs and ISBNdb is not asked."""
    system = make_system()
    with mock_isbndb() as isbndb:
        status, body, _ = await get(
            system, "/books", method="POST", body=json.dumps({"isbns": ["x", 12]})
        )
    assert status == 200
    assert body == {
        "books": [],
        "matches": {},
        "notFound": [],
        "invalid": [
            {"input": "x", "reason": body["invalid"][0]["reason"]},
            {"input": "12", "reason": "isbn must be a string"},
        ],
        "requested": 0,
    }
    assert not isbndb.calls


async def test_bulk_over_1000_names_the_limit() -> None:
    """More than 1,000 ISBNs in one request is a 400 naming the limit."""
    system = make_system()
    with mock_isbndb() as isbndb:
        status, body, _ = await get(
            system, "/books", method="POST", body=json.dumps({"isbns": [DUNE13] * 1001})
        )
    assert status == 400
    assert body["error"]["param"] == "isbns"
    assert "1000" in body["error"]["message"]
    assert not isbndb.calls


# -- /health, /metrics, routing -------------------------------------------------------------


async def test_health_reports_configuration_without_the_key() -> None:
    """Health says whether a key is configured (never its value), breaker and today's quota."""
    system = make_system()
    status, body, _ = await get(system, "/health")
    assert status == 200
    assert body["worker"] == WORKER
    assert body["version"]
    assert body["apiKeyConfigured"] is True
    assert body["breaker"]["state"] == "closed"
    assert body["quota"]["ratePerSecond"] == 1
    assert (body["quota"]["used"], body["quota"]["left"]) == (0, 2000)
    assert KEY not in json.dumps(body)
    _, missing, _ = await get(make_system(key=None), "/health")
    assert missing["apiKeyConfigured"] is False
    assert "ISBNDB_API_KEY" in missing["quota"]["error"]


async def test_metrics_count_requests_upstream_calls_and_cache() -> None:
    """Metrics show HTTP counters, upstream calls and latency, and cache hits."""
    system = make_system()
    with mock_isbndb() as isbndb:
        isbndb.get(f"/book/{DUNE13}").respond(200, json=fixture("book"))
        await get(system, f"/book/{DUNE13}")
        await get(system, f"/book/{DUNE13}")
    status, body, _ = await get(system, "/metrics")
    assert status == 200
    assert body["counters"]["upstream.calls"] == 1
    assert body["counters"]["cache.book.hit"] == 1
    assert body["counters"]["http.2xx"] == 2
    assert body["latency"]["upstream.isbndb"]["count"] == 1
    assert body["cache"]["books"]["size"] == 1


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/", 404, "not_found"),
        ("GET", "/nope", 404, "not_found"),
        ("GET", "/book", 404, "not_found"),
        ("GET", f"/book/{DUNE13}/extra", 404, "not_found"),
        ("POST", f"/book/{DUNE13}", 405, "method_not_allowed"),
        ("DELETE", "/author/Herbert", 405, "method_not_allowed"),
        ("GET", "/books", 405, "method_not_allowed"),
        ("POST", "/health", 405, "method_not_allowed"),
    ],
)
async def test_unknown_paths_and_wrong_methods(
    method: str, path: str, status: int, code: str
) -> None:
    """Unknown paths answer 404 JSON and wrong methods 405 JSON with Allow."""
    system = make_system()
    got_status, body, headers = await get(system, path, method=method)
    assert got_status == status
    assert body["error"]["code"] == code
    if status == 405:
        assert headers["allow"]


# -- missing key and configuration ------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", f"/book/{DUNE13}"), ("GET", "/author/Herbert"), ("POST", "/books")],
)
@pytest.mark.parametrize("key", [None, "", "bad key\u00e9"])
async def test_no_key_is_503_without_upstream_call(method: str, path: str, key: str | None) -> None:
    """Without a usable key every data endpoint answers 503 not_configured and calls nothing."""
    system = make_system(key=key)
    body = json.dumps({"isbns": [DUNE13]}) if method == "POST" else None
    with mock_isbndb() as isbndb:
        status, got, _ = await get(system, path, method=method, body=body)
    assert status == 503
    assert got["error"]["code"] == "not_configured"
    assert "ISBNDB_API_KEY" in got["error"]["message"]
    assert not isbndb.calls


async def test_plain_secret_string_works_too() -> None:
    """A plain secret (.dev.vars) is used like a Secrets Store binding."""
    guard = make_system().envs[WORKER].ISBNDB_GUARD
    env = RuntimeEnv(FakeEnv({"ISBNDB_API_KEY": "plain-key", "ISBNDB_GUARD": guard}), FakeContext())
    app = build_app(env, Isolate())
    with mock_isbndb() as isbndb:
        isbndb.get(f"/book/{DUNE13}").respond(200, json={"book": book_json(DUNE13)})
        response = await app.handle(Request("GET", f"https://w.test/book/{DUNE13}"))
    assert response.status == 200
    assert upstream_calls(isbndb)[0].headers["authorization"] == "plain-key"


async def test_malformed_var_is_a_json_500_naming_it() -> None:
    """A malformed var answers 500 config_error naming the var; health still answers."""
    system = make_system(worker_vars={"ISBNDB_DAILY_QUOTA": "lots"})
    with mock_isbndb() as isbndb:
        status, body, _ = await get(system, f"/book/{DUNE13}")
    assert status == 500
    assert body["error"]["code"] == "config_error"
    assert body["error"]["var"] == "ISBNDB_DAILY_QUOTA"
    assert not isbndb.calls
    _, health, _ = await get(system, "/health")
    assert "ISBNDB_DAILY_QUOTA" in health["configError"]


# -- RPC -------------------------------------------------------------------------------------


async def test_rpc_methods_return_the_http_bodies() -> None:
    """author, book, books, health and metrics over RPC equal the endpoints' JSON bodies."""
    http, rpc = make_system(), make_system()
    with mock_isbndb() as isbndb:
        isbndb.get("/author/Frank%20Herbert").respond(200, json=fixture("author"))
        isbndb.get(f"/book/{DUNE13}").respond(200, json=fixture("book"))
        isbndb.post("/books").respond(200, json=fixture("bulk"))
        pairs = [
            (
                await get(http, "/author/Frank%20Herbert?page=1&pageSize=3&language=en"),
                await rpc.rpc(WORKER, "author", "Frank Herbert", 1, 3, "en"),
            ),
            (
                await get(http, f"/book/{DUNE10}"),
                await rpc.rpc(WORKER, "book", DUNE10),
            ),
            (
                await get(http, "/books", method="POST", body=json.dumps({"isbns": [DUNE13, "x"]})),
                await rpc.rpc(WORKER, "books", [DUNE13, "x"]),
            ),
        ]
    for (status, body, _), result in pairs:
        assert status == 200
        assert result == body
    health = await rpc.rpc(WORKER, "health")
    assert health["apiKeyConfigured"] is True
    metrics = await rpc.rpc(WORKER, "metrics")
    assert metrics["counters"]["rpc.books"] == 1


async def test_rpc_author_defaults_when_paging_is_none() -> None:
    """RPC author accepts None for page, page_size and language (the HTTP defaults)."""
    system = make_system()
    with mock_isbndb() as isbndb:
        isbndb.get("/author/Herbert").respond(200, json=fixture("author"))
        result = await system.rpc(WORKER, "author", "Herbert", None, None, None)
    assert (result["page"], result["pageSize"]) == (1, 50)


async def test_rpc_errors_are_returned_with_status() -> None:
    """RPC failures come back as {"error": {code, message, status, retryAfter}}, not raised."""
    system = make_system()
    with mock_isbndb() as isbndb:
        isbndb.get(f"/book/{DUNE13}").respond(404)
        missing = await system.rpc(WORKER, "book", DUNE13)
        bad = await system.rpc(WORKER, "author", "Herbert", 0, 10, "en")
        wrong_type = await system.rpc(WORKER, "books", "not a list")
    assert missing["error"]["code"] == "not_found"
    assert (missing["error"]["status"], missing["error"]["retryAfter"]) == (404, None)
    assert bad["error"]["status"] == 400
    assert bad["error"]["param"] == "page"
    assert wrong_type["error"]["param"] == "isbns"
    no_key = await make_system(key=None).rpc(WORKER, "book", DUNE13)
    assert no_key["error"]["status"] == 503


def _check13(first12: str) -> str:
    total = sum((3 if i % 2 else 1) * int(d) for i, d in enumerate(first12))
    return str((10 - total % 10) % 10)
