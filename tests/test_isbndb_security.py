"""Hostile input never reaches ISBNdb raw, and the API key never leaves the upstream header."""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx
import pytest
from test_isbndb_support import (
    DUNE13,
    KEY,
    WORKER,
    fixture,
    get,
    make_system,
    mock_isbndb,
    upstream_calls,
)

NESTED = "[" * 40 + "]" * 40

# (id, method, path, body, raw input that must never travel upstream, param named in the error)
HOSTILE = [
    ("name-blank", "GET", "/author/%20%20%20", None, "   ", "name"),
    ("name-nul", "GET", "/author/Her%00bert", None, "Her\x00bert", "name"),
    ("name-newline", "GET", "/author/Her%0Abert", None, "Her\nbert", "name"),
    ("name-crlf-header", "GET", "/author/a%0D%0AX-Evil:%201", None, "\r\nX-Evil", "name"),
    ("name-escape-seq", "GET", "/author/%1B%5B31mred", None, "\x1b[31m", "name"),
    ("name-del", "GET", "/author/ab%7Fc", None, "ab\x7fc", "name"),
    ("name-line-separator", "GET", "/author/a%E2%80%A8b", None, "a\u2028b", "name"),
    ("name-dot-dot", "GET", "/author/%2E%2E", None, "/..", "name"),
    ("name-dot", "GET", "/author/%2E", None, "/author/.", "name"),
    ("name-only-punctuation", "GET", "/author/%3F%23%2F", None, "?#/", "name"),
    ("name-too-long", "GET", "/author/" + "a" * 201, None, "a" * 201, "name"),
    ("name-bad-utf8", "GET", "/author/%FF%FE", None, "\xff", "name"),
    ("name-lone-surrogate", "GET", "/author/%ED%A0%80", None, "%ED%A0%80", "name"),
    ("page-zero", "GET", "/author/Herbert?page=0", None, "page=0", "page"),
    ("page-negative", "GET", "/author/Herbert?page=-1", None, "page=-1", "page"),
    ("page-float", "GET", "/author/Herbert?page=1.5", None, "1.5", "page"),
    ("page-text", "GET", "/author/Herbert?page=abc", None, "abc", "page"),
    ("page-fullwidth-digit", "GET", "/author/Herbert?page=%EF%BC%91", None, "\uff11", "page"),
    ("page-underscore", "GET", "/author/Herbert?page=1_0", None, "1_0", "page"),
    ("page-past-10000", "GET", "/author/Herbert?page=10001", None, "10001", "page"),
    ("page-huge", "GET", "/author/Herbert?page=" + "9" * 5000, None, "9" * 50, "page"),
    ("page-size-zero", "GET", "/author/Herbert?pageSize=0", None, "pageSize=0", "pageSize"),
    ("page-size-empty", "GET", "/author/Herbert?pageSize=", None, "pageSize=", "pageSize"),
    (
        "page-size-injection",
        "GET",
        "/author/Herbert?pageSize=5%26key%3Dx",
        None,
        "key=x",
        "pageSize",
    ),
    ("language-word", "GET", "/author/Herbert?language=english", None, "english", "language"),
    ("language-one-letter", "GET", "/author/Herbert?language=e", None, "language=e", "language"),
    ("language-nul", "GET", "/author/Herbert?language=en%00", None, "en\x00", "language"),
    (
        "language-injection",
        "GET",
        "/author/Herbert?language=en%26page%3D2",
        None,
        "&page=2",
        "language",
    ),
    ("query-bad-utf8", "GET", "/author/Herbert?page=%FF", None, "\xff", "query"),
    ("isbn-garbage", "GET", "/book/not-an-isbn", None, "not-an-isbn", "isbn"),
    ("isbn-check-digit", "GET", "/book/9780441013594", None, "9780441013594", "isbn"),
    ("isbn-traversal", "GET", "/book/..%2F..%2Fauthor%2Fx", None, "../", "isbn"),
    ("isbn-asin", "GET", "/book/B08ZYQT962", None, "B08ZYQT962", "isbn"),
    ("isbn-too-long", "GET", "/book/" + "9" * 100, None, "9" * 100, "isbn"),
    ("isbn-query-smuggle", "GET", "/book/9780441013593%3Fkey%3Dx", None, "key=x", "isbn"),
    ("bulk-not-json", "POST", "/books", "isbns=9780441013593", "isbns=", "body"),
    ("bulk-not-object", "POST", "/books", json.dumps([DUNE13]), "[", "isbns"),
    ("bulk-string", "POST", "/books", json.dumps({"isbns": DUNE13}), '"isbns"', "isbns"),
    ("bulk-too-many", "POST", "/books", json.dumps({"isbns": [DUNE13] * 1001}), "1001", "isbns"),
    ("bulk-nested", "POST", "/books", json.dumps({"isbns": []})[:-1] + NESTED + "}", "[[[", "body"),
    ("bulk-huge-body", "POST", "/books", json.dumps({"isbns": ["x" * 300_000]}), "xxxx", "body"),
    ("bulk-bad-utf8", "POST", "/books", b'{"isbns": ["\xff"]}', "\xff", "body"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "raw", "param"),
    [case[1:] for case in HOSTILE],
    ids=[case[0] for case in HOSTILE],
)
async def test_hostile_input_is_a_4xx_json_error_and_never_sent_upstream(
    method: str, path: str, body: str | bytes | None, raw: str, param: str
) -> None:
    """Each hostile input answers 4xx JSON naming the parameter; ISBNdb is never called."""
    system = make_system()
    with mock_isbndb() as isbndb:
        isbndb.route().respond(200, json=fixture("author"))
        status, got, headers = await get(system, path, method=method, body=body)
    assert 400 <= status < 500
    assert headers["content-type"].startswith("application/json")
    assert got["error"]["code"] in ("invalid_input", "invalid_isbn", "too_large")
    assert got["error"]["message"]
    assert got["error"]["param"] == param
    sent = upstream_calls(isbndb)
    assert not sent
    assert all(raw not in str(r.url) and raw not in r.content.decode("latin-1") for r in sent)


def test_the_hostile_table_is_big_enough() -> None:
    """At least twenty hostile cases, each with a distinct id."""
    ids = [case[0] for case in HOSTILE]
    assert len(ids) >= 20
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/author/AC%2FDC", "AC/DC"),
        ("/author/..%2F..%2Fkey", "../../key"),
        ("/author/a%3Fpage%3D9", "a?page=9"),
        ("/author/a%23frag", "a#frag"),
        ("/author/100%25", "100%"),
        ("/author/a%252F", "a%2F"),
        ("/author/a%20%26%20b", "a & b"),
        ("/author/%C3%89mile%20Zola", "\u00c9mile Zola"),
        ("/author/..a", "..a"),
        ("/author/%E2%80%AEFrank", "Frank"),
        ("/author/Frank%E2%81%A6%20Herbert%E2%81%A9", "Frank Herbert"),
        ("/author/%D9%85%DB%8C%E2%80%8C%D8%AE", "\u0645\u06cc\u200c\u062e"),
    ],
    ids=[
        "slash",
        "traversal",
        "query",
        "fragment",
        "percent",
        "encoded-slash",
        "amp",
        "utf8",
        "dots",
        "bidi-override-dropped",
        "bidi-isolates-dropped",
        "zwnj-kept",
    ],
)
async def test_author_names_are_one_encoded_path_segment(path: str, name: str) -> None:
    """Slashes, ``?``, ``#``, ``%`` and dots stay inside one encoded segment of /author/."""
    system = make_system()
    with mock_isbndb() as isbndb:
        isbndb.get(path__startswith="/author/").respond(200, json={"books": []})
        status, body, _ = await get(system, path + "?page=1")
    assert status == 200
    assert body["author"] == name
    (sent,) = upstream_calls(isbndb)
    assert sent.url.host == "api2.isbndb.com"
    assert sent.url.raw_path.decode().split("?")[0] == "/author/" + quote(name, safe="")
    assert dict(sent.url.params) == {"page": "1", "pageSize": "50"}


async def test_rpc_author_name_is_encoded_the_same_way() -> None:
    """Over RPC the name is validated and encoded exactly as over HTTP."""
    system = make_system()
    with mock_isbndb() as isbndb:
        isbndb.get(path__startswith="/author/").respond(200, json={"books": []})
        ok = await system.rpc(WORKER, "author", "a/../b?c#d", 1, 5, None)
        bad = await system.rpc(WORKER, "author", "a\x00b", 1, 5, None)
    assert ok["author"] == "a/../b?c#d"
    assert bad["error"]["status"] == 400
    (sent,) = upstream_calls(isbndb)
    assert sent.url.raw_path.decode().startswith("/author/a%2F..%2Fb%3Fc%23d?")


async def test_api_key_never_appears_in_bodies_headers_or_logs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Through successes and every failure mapping the key shows up only in the upstream header."""
    system = make_system()
    answers = {
        f"/book/{DUNE13}": httpx.Response(200, json=fixture("book")),
        "/book/9780593098233": httpx.Response(401, json={"message": f"bad key {KEY}"}),
        "/book/9780593098240": httpx.Response(403, text=f"plan refused for {KEY}"),
        "/book/9780593098257": httpx.Response(500, text=KEY),
        "/book/9780765311788": httpx.Response(429, headers={"retry-after": "1"}, text=KEY),
        "/book/9780000000019": httpx.Response(404, text=KEY),
        "/author/Herbert": httpx.Response(200, content=f"not json {KEY}".encode()),
    }
    with mock_isbndb() as isbndb:
        for path, answer in answers.items():
            isbndb.get(path).mock(return_value=answer)
        isbndb.post("/books").respond(502, text=KEY)
        seen: list[str] = []
        for path in [*answers, "/health", "/metrics", "/nope"]:
            resp = await system.fetch(WORKER, path)
            seen.append(await resp.text())
            seen.extend(f"{k}: {v}" for k, v in resp.headers.items())
        resp = await system.fetch(
            WORKER, "/books", method="POST", body=json.dumps({"isbns": ["9783161484100"]})
        )
        seen.append(await resp.text())
        for method, args in [
            ("book", ["9780593098233"]),
            ("books", [["9783161484100"]]),
            ("author", ["Herbert", 1, 5, "en"]),
            ("health", []),
            ("metrics", []),
        ]:
            seen.append(repr(await system.rpc(WORKER, method, *args)))
    captured = capsys.readouterr()
    assert captured.out.strip()
    for text in [*seen, captured.out, captured.err]:
        assert KEY not in text
    sent = upstream_calls(isbndb)
    assert sent
    assert all(r.headers["authorization"] == KEY for r in sent)
    assert all(KEY not in str(r.url) for r in sent)
