"""Hostile and malformed inputs: 4xx JSON, never a 500, and nothing raw reaches an upstream."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from test_proxy_support import get, make_system, mocked

from bookmeta import normalize_key

LONG_Q = "a" * 257

CASES = [
    pytest.param("/search/auto", 400, id="q-missing"),
    pytest.param("/search/auto?q=", 400, id="q-empty"),
    pytest.param("/search/auto?q=%20%20%09", 400, id="q-blank"),
    pytest.param(f"/search/auto?q={LONG_Q}", 400, id="q-too-long"),
    pytest.param("/search/auto?q=%00dune", 400, id="q-nul"),
    pytest.param("/search/auto?q=%1B%5B31mred", 400, id="q-escape-sequence"),
    pytest.param("/search/auto?q=%FF%FE", 400, id="q-invalid-utf8"),
    pytest.param("/search/auto?q=isbn:123", 400, id="isbn-prefix-not-an-isbn"),
    pytest.param("/search/auto?q=inauthor:%20", 400, id="empty-after-prefix"),
    pytest.param("/search/auto?q=dune&maxResults=abc", 400, id="max-abc"),
    pytest.param("/search/auto?q=dune&maxResults=0", 400, id="max-0"),
    pytest.param("/search/auto?q=dune&maxResults=41", 400, id="max-41"),
    pytest.param("/search/auto?q=dune&maxResults=-1", 400, id="max-negative"),
    pytest.param("/search/auto?q=dune&maxResults=1e1", 400, id="max-exponent"),
    pytest.param("/search/auto?q=dune&maxResults=%EF%BC%91", 400, id="max-fullwidth"),
    pytest.param("/search/auto?q=dune&maxResults=", 400, id="max-empty"),
    pytest.param("/search/auto?q=dune&maxResults=99999999999999999999", 400, id="max-huge"),
    pytest.param("/search/auto?q=dune&startIndex=-1", 400, id="start-negative"),
    pytest.param("/search/auto?q=dune&startIndex=x", 400, id="start-word"),
    pytest.param("/search/auto?q=dune&startIndex=1001", 400, id="start-past-1000"),
    pytest.param("/search/auto?q=dune&startIndex=", 400, id="start-empty"),
    pytest.param("/search/auto?q=dune&includeTranslations=yes", 400, id="bool-yes"),
    pytest.param("/search/auto?q=dune&includeTranslations=TRUE", 400, id="bool-upper"),
    pytest.param("/search/auto?q=dune&includeTranslations=1", 400, id="bool-1"),
    pytest.param("/search/auto?q=dune&langRestrict=english", 400, id="lang-word"),
    pytest.param("/search/auto?q=dune&langRestrict=e", 400, id="lang-short"),
    pytest.param("/search/auto?q=dune&langRestrict=e1", 400, id="lang-digit"),
    pytest.param("/search/author?q=&maxResults=5", 400, id="author-empty"),
    pytest.param("/search/title?q=dune&maxResults=0x10", 400, id="title-hex-max"),
    pytest.param("/search/isbn", 400, id="isbn-missing"),
    pytest.param("/search/isbn?isbn=9780441013594", 400, id="isbn-bad-check-digit"),
    pytest.param("/search/isbn?isbn=%27%20OR%201%3D1--", 400, id="isbn-sql"),
    pytest.param("/search/isbn?isbn=" + "9" * 40, 400, id="isbn-too-long"),
    pytest.param("/nope", 404, id="unknown-path"),
    pytest.param("/search/auto/extra?q=dune", 404, id="extra-segment"),
    pytest.param("/search", 404, id="bare-search"),
]


@pytest.mark.parametrize(("path", "status"), CASES)
async def test_bad_requests_are_json_4xx_without_upstream_calls(path: str, status: int) -> None:
    """Malformed input is refused with a JSON error before any upstream request."""
    system = make_system()
    with mocked() as up:
        got, body, headers = await get(system, path)
    assert got == status
    assert headers["content-type"].startswith("application/json")
    assert set(body["error"]) >= {"code", "message"}
    assert up.requests == []


async def test_wrong_method_is_405_json() -> None:
    """A POST to a search endpoint is 405 JSON naming the allowed method."""
    system = make_system()
    status, body, headers = await get(system, "/search/auto?q=dune", method="POST")
    assert (status, body["error"]["code"]) == (405, "method_not_allowed")
    assert headers["allow"] == "GET"


WEIRD = [
    pytest.param("dune&key=stolen&maxResults=1", id="param-injection"),
    pytest.param("<script>alert(1)</script>", id="html"),
    pytest.param("Robert'); DROP TABLE books;--", id="sql"),
    pytest.param("../../etc/passwd", id="path-traversal"),
    pytest.param("dune #fragment ?x=1", id="url-metacharacters"),
    pytest.param("Frank Herbert/../../key", id="author-path"),
    pytest.param("ünïcödé 書", id="unicode"),
]


@pytest.mark.parametrize("q", WEIRD)
async def test_odd_text_is_encoded_into_upstream_queries(q: str) -> None:
    """Valid but odd text is searched for in its key form (punctuation folded), URL-encoded:
    no upstream URL carries it raw."""
    system = make_system()
    with mocked() as up:
        status, body, _ = await get(system, "/search/auto?q=" + quote(q, safe=""))
    assert status == 200
    assert body["kind"] == "books#volumes"
    assert up.requests
    for request in up.requests:
        raw = str(request.url)
        assert q not in raw
        for token in ("&key=stolen", "<script>", "'); DROP", "/../", " #", "書"):
            assert token not in raw
    google = up.calls("google")[0]
    assert google.url.params.get("key") is None  # the injected key never became a parameter
    assert google.url.params["q"] == normalize_key(q)
