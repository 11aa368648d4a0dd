"""End-to-end: the proxy and ISBNdb calls the system exists for, over HTTP and RPC (via warmer)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest

if TYPE_CHECKING:  # tests/e2e/conftest.py: a conftest is not importable by name at runtime
    from conftest import WorkersSession

pytestmark = pytest.mark.e2e

DUNE = "9780441013593"
AUTHOR = "Frank Herbert"
AUTHOR_PATH = f"author/{quote(AUTHOR, safe='')}"  # author/Frank%20Herbert
HERBERT_ISBNS = {"9780441013593", "9780593098233", "9780593098240"}  # devtools catalogue


def _isbn13s(item: dict[str, Any]) -> set[str]:
    ids = item["volumeInfo"].get("industryIdentifiers") or []
    return {i["identifier"] for i in ids if i.get("type") == "ISBN_13"}


def _without_cache(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "cache"}


def test_health_of_all_three(e2e: WorkersSession) -> None:
    """/health answers 200 on the warmer directly and on the proxy and ISBNdb via the bindings."""
    warmer = e2e.warmer("GET", "/health")
    assert warmer.status_code == 200, warmer.text
    assert warmer.json()["worker"] == "cache_warmer"
    proxy = e2e.proxy("health")
    assert proxy.status_code == 200, proxy.text
    assert proxy.json()["worker"] == "books_api_proxy"
    isbndb = e2e.isbndb("health")
    assert isbndb.status_code == 200, isbndb.text
    assert isbndb.json()["worker"] == "isbndb_worker"
    assert isbndb.json()["apiKeyConfigured"] is True  # seeded into the local Secrets Store


def test_health_over_rpc(e2e: WorkersSession) -> None:
    """health() over RPC returns the same kind of body as GET /health."""
    assert e2e.rpc("proxy", "health")["worker"] == "books_api_proxy"
    isbndb = e2e.rpc("isbndb", "health")
    assert isbndb["worker"] == "isbndb_worker"
    assert isbndb["apiKeyConfigured"] is True


def test_proxy_isbn_search_then_cache_hit(e2e: WorkersSession) -> None:
    """/search/auto?q=<isbn>&maxResults=1 finds Dune; the repeat is a hit with no upstream call."""
    params = {"q": DUNE, "maxResults": 1}
    first = e2e.proxy("search/auto", params)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["kind"] == "books#volumes"
    assert len(body["items"]) == 1
    assert body["items"][0]["volumeInfo"]["title"] == "Dune"
    assert DUNE in _isbn13s(body["items"][0])
    calls = e2e.upstream_calls()
    again = e2e.proxy("search/auto", params)
    assert again.status_code == 200, again.text
    assert again.json()["cache"] != "miss"
    assert again.headers.get("x-cache", again.json()["cache"]) != "miss"
    assert _without_cache(again.json()) == _without_cache(body)
    assert e2e.upstream_calls() == calls


def test_proxy_isbn_search_over_rpc(e2e: WorkersSession) -> None:
    """search_auto(isbn, 1, True, None) over RPC equals the HTTP body (cache field aside)."""
    http = e2e.proxy("search/auto", {"q": DUNE, "maxResults": 1})
    assert http.status_code == 200, http.text
    rpc = e2e.rpc("proxy", "search_auto", DUNE, 1, True, None)
    assert "error" not in rpc, rpc
    assert rpc["cache"] != "miss"
    assert _without_cache(rpc) == _without_cache(http.json())


def test_proxy_author_search(e2e: WorkersSession) -> None:
    """/search/auto?q=<author>&maxResults=40&includeTranslations=false lists the author's books."""
    params = {"q": AUTHOR, "maxResults": 40, "includeTranslations": "false"}
    response = e2e.proxy("search/auto", params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["kind"] == "books#volumes"
    found = set().union(*(_isbn13s(item) for item in body["items"]))
    assert found >= HERBERT_ISBNS
    for item in body["items"]:
        assert AUTHOR in item["volumeInfo"]["authors"], item
    rpc = e2e.rpc("proxy", "search_auto", AUTHOR, 40, False, None)
    assert "error" not in rpc, rpc
    assert rpc["cache"] != "miss"  # the HTTP call above stored it under the same key
    assert _without_cache(rpc) == _without_cache(e2e.proxy("search/auto", params).json())


def test_isbndb_author(e2e: WorkersSession) -> None:
    """ISBNdb /author/<name>?page=1&pageSize=50&language=en returns normalized books."""
    params = {"page": 1, "pageSize": 50, "language": "en"}
    response = e2e.isbndb(AUTHOR_PATH, params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["author"] == AUTHOR
    assert body["page"] == 1
    assert body["pageSize"] == 50
    assert body["hasMore"] is False
    assert {book["isbn13"] for book in body["books"]} == HERBERT_ISBNS
    for book in body["books"]:
        assert "image_original" not in book
        assert AUTHOR in book["authors"]


def test_isbndb_author_over_rpc(e2e: WorkersSession) -> None:
    """author(name, 1, 50, "en") over RPC equals the HTTP body."""
    http = e2e.isbndb(AUTHOR_PATH, {"page": 1, "pageSize": 50, "language": "en"})
    assert http.status_code == 200, http.text
    rpc = e2e.rpc("isbndb", "author", AUTHOR, 1, 50, "en")
    assert rpc == http.json()


def test_isbndb_book_over_rpc(e2e: WorkersSession) -> None:
    """book(isbn) over RPC finds Dune; an unknown ISBN returns an error dict, not a raise."""
    found = e2e.rpc("isbndb", "book", DUNE)
    assert found["book"]["isbn13"] == DUNE
    missing = e2e.rpc("isbndb", "book", "9780000000002")
    assert missing["error"]["code"] == "not_found"
    assert missing["error"]["status"] == 404


def _one_search_in_two_spellings(e2e: WorkersSession, q: str, respelled: str) -> set[str]:
    """Search ``q`` (a miss), then ``respelled``: a cache hit with the same items and no
    upstream call. The ISBN-13s the first answer found."""
    first = e2e.proxy("search/auto", {"q": q, "maxResults": 10})
    assert first.status_code == 200, first.text
    calls = e2e.upstream_calls()
    again = e2e.proxy("search/auto", {"q": respelled, "maxResults": 10})
    assert again.status_code == 200, again.text
    assert again.json()["cache"] != "miss"
    assert again.json()["items"] == first.json()["items"]
    assert e2e.upstream_calls() == calls
    return set().union(*(_isbn13s(item) for item in first.json()["items"]))


def test_a_name_in_any_case_is_one_author_search(e2e: WorkersSession) -> None:
    """`frank herbert` is promoted to an author search; `FRANK  Herbert` is then a cache hit
    with the same items and no upstream call."""
    assert _one_search_in_two_spellings(e2e, "frank herbert", "FRANK  Herbert") >= HERBERT_ISBNS


def test_a_name_with_an_apostrophe_reaches_the_providers_with_it(e2e: WorkersSession) -> None:
    """`Tim O'Brien` goes upstream as `tim o'brien` (providers match that, not `obrien`): his
    book is found; `TIM O\u2019BRIEN` (a curly apostrophe) is then the same cache entry."""
    found = _one_search_in_two_spellings(e2e, "Tim O'Brien", "TIM O\u2019BRIEN")
    assert "9780618706419" in found
