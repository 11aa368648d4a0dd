"""The cross-worker hostile corpus: every endpoint of the three workers answers hostile input
with a 4xx JSON error, never a 5xx, and no upstream provider ever sees the raw input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_proxy_support import mocked
from test_warmer_support import AUTH, make_system, multipart

ISBNDB = "isbndb_worker"
PROXY = "books_api_proxy"
WARMER = "cache_warmer"
DUNE = "9780441013593"
CSV = "text/csv"
NESTED_JSON = "[" * 5000 + "]" * 5000
NESTED_OBJECT = '{"isbns": ' + "[" * 100 + "]" * 100 + "}"
# Past the few thousand levels at which json.loads overflows the wasm stack (issue 13, item 1).
DEEP = "[" * 100_000 + "]" * 100_000
HUGE = "h" * 100_000
LONG_CSV_LINE = ("title,author,isbn13\n" + "L" * 200_000 + ",Someone,9780441013593\n").encode()
OPEN_QUOTE_CSV = ('title,author,isbn13\n"' + "Q" * 5000 + ",x,y\n").encode()
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
ZIP = b"PK\x03\x04" + b"\x00" * 40
UTF16 = "title,author\r\nDune,Frank Herbert\r\n".encode("utf-16")
FORM_NO_FILE = (
    b'--B\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n--B--\r\n',
    "multipart/form-data; boundary=B",
)
FORM_BINARY = multipart("lib.csv", PNG)


def case(
    worker: str,
    method: str,
    path: str,
    raw: str,
    *,
    id: str,
    body: str | bytes | None = None,
    content_type: str | None = None,
    auth: bool = False,
    extra: dict[str, str] | None = None,
) -> Any:
    """One row: the request, and the raw hostile substring no upstream request may carry."""
    headers = {**(AUTH if auth else {}), **(extra or {})}
    if content_type is not None:
        headers["content-type"] = content_type
    return pytest.param(worker, method, path, headers, body, raw, id=id)


CORPUS = [
    # -- isbndb_worker: GET /author/{name} ---------------------------------------------------
    case(ISBNDB, "GET", "/author/%20%20%20", "   ", id="isbndb-author-blank"),
    case(ISBNDB, "GET", "/author/Her%00bert", "Her\x00bert", id="isbndb-author-nul"),
    case(ISBNDB, "GET", "/author/a%0D%0ASet-Cookie:%20x", "Set-Cookie", id="isbndb-author-crlf"),
    case(ISBNDB, "GET", "/author/%1B%5B2J", "\x1b[2J", id="isbndb-author-ansi"),
    case(ISBNDB, "GET", "/author/%FF%FE", "%FF%FE", id="isbndb-author-invalid-utf8"),
    case(ISBNDB, "GET", "/author/%ED%A0%80x", "%ED%A0%80", id="isbndb-author-lone-surrogate"),
    case(ISBNDB, "GET", "/author/a%E2%80%A9b", "a\u2029b", id="isbndb-author-para-separator"),
    case(ISBNDB, "GET", "/author/" + "n" * 5000, "n" * 201, id="isbndb-author-huge"),
    # the purpose header (x-isbndb-purpose): only public|warm
    case(
        ISBNDB,
        "GET",
        f"/book/{DUNE}",
        "superuser",
        id="isbndb-purpose-unknown",
        extra={"x-isbndb-purpose": "superuser"},
    ),
    case(
        ISBNDB,
        "GET",
        f"/book/{DUNE}",
        "w" * 500,
        id="isbndb-purpose-huge",
        extra={"x-isbndb-purpose": "w" * 5000},
    ),
    case(
        ISBNDB,
        "GET",
        "/author/Herbert",
        "warm\u200b",
        id="isbndb-purpose-zero-width",
        extra={"x-isbndb-purpose": "warm\u200b"},
    ),
    case(ISBNDB, "GET", "/author/%2E%2E", "..", id="isbndb-author-dotdot"),
    case(ISBNDB, "GET", "/author/Herbert?page=%00", "\x00", id="isbndb-author-page-nul"),
    case(ISBNDB, "GET", "/author/Herbert?page=" + "9" * 400, "9" * 20, id="isbndb-page-overlong"),
    case(ISBNDB, "GET", "/author/Herbert?pageSize=-5", "-5", id="isbndb-page-size-negative"),
    case(ISBNDB, "GET", "/author/Herbert?language=..%2F", "../", id="isbndb-language-traversal"),
    case(ISBNDB, "GET", "/author/Herbert?page=%FF", "%FF", id="isbndb-query-invalid-utf8"),
    # -- isbndb_worker: GET /book/{isbn} -----------------------------------------------------
    case(ISBNDB, "GET", "/book/..%2F..%2Fauthor%2Fx", "../", id="isbndb-book-encoded-slashes"),
    case(ISBNDB, "GET", "/book/978%000441013593", "978\x00", id="isbndb-book-nul"),
    case(ISBNDB, "GET", f"/book/{DUNE}%0D%0AX:%201", "\r\nX", id="isbndb-book-crlf"),
    case(ISBNDB, "GET", "/book/%EF%BC%99%EF%BC%97%EF%BC%98", "\uff19", id="isbndb-book-fullwidth"),
    case(ISBNDB, "GET", "/book/" + "9" * 3000, "9" * 65, id="isbndb-book-huge"),
    case(ISBNDB, "GET", "/book/%C0%AF", "%C0%AF", id="isbndb-book-overlong-utf8"),
    # -- isbndb_worker: POST /books ------------------------------------------------------------
    case(ISBNDB, "POST", "/books", "isbn13", body="isbn13\n9780441013593\n", id="isbndb-books-csv"),
    case(ISBNDB, "POST", "/books", "[[[", body=NESTED_JSON, id="isbndb-books-deep-json"),
    case(ISBNDB, "POST", "/books", "[[[", body=NESTED_OBJECT, id="isbndb-books-deep-object"),
    case(ISBNDB, "POST", "/books", "PNG", body=PNG, id="isbndb-books-binary"),
    case(ISBNDB, "POST", "/books", '"isbns"', body=b"", id="isbndb-books-empty"),
    case(
        ISBNDB,
        "POST",
        "/books",
        "x" * 64,
        body=json.dumps({"isbns": ["x" * 300_000]}),
        id="isbndb-books-huge-body",
    ),
    case(
        ISBNDB,
        "POST",
        "/books",
        DUNE,
        body=json.dumps({"isbns": [DUNE] * 1001}),
        id="isbndb-books-too-many",
    ),
    case(ISBNDB, "POST", "/books", "\ufffd", body=b'{"isbns": ["\xff"]}', id="isbndb-books-utf8"),
    case(ISBNDB, "POST", "/health", "health", body="x", id="isbndb-health-wrong-method"),
    case(ISBNDB, "DELETE", "/metrics", "metrics", id="isbndb-metrics-wrong-method"),
    case(ISBNDB, "GET", "/..%2F..%2Fetc%2Fpasswd", "passwd", id="isbndb-unknown-traversal"),
    # -- books_api_proxy -----------------------------------------------------------------------
    case(PROXY, "GET", "/search/auto", "q=", id="proxy-auto-missing-q"),
    case(PROXY, "GET", "/search/auto?q=", "q=", id="proxy-auto-empty-q"),
    case(PROXY, "GET", "/search/auto?q=du%00ne", "du\x00ne", id="proxy-auto-nul"),
    case(
        PROXY,
        "GET",
        "/search/auto?q=dune&maxResults=5%0D%0AX-Evil:%201",
        "X-Evil",
        id="proxy-auto-crlf",
    ),
    case(PROXY, "GET", "/search/auto?q=%07%08bell", "\x07", id="proxy-auto-control"),
    case(PROXY, "GET", "/search/auto?q=%FFdune", "%FF", id="proxy-auto-invalid-utf8"),
    case(PROXY, "GET", "/search/auto?q=%ED%B0%80", "%ED%B0%80", id="proxy-auto-lone-surrogate"),
    case(PROXY, "GET", "/search/auto?q=%EF%BF%BF", "\uffff", id="proxy-auto-noncharacter"),
    case(PROXY, "GET", "/search/auto?q=%EE%80%80x", "\ue000", id="proxy-auto-private-use"),
    case(PROXY, "GET", "/search/auto?q=" + HUGE, HUGE[:300], id="proxy-auto-overlong-query"),
    case(PROXY, "GET", "/search/auto?q=isbn:..%2F..%2F", "../", id="proxy-auto-isbn-traversal"),
    case(PROXY, "GET", "/search/auto?q=dune&maxResults=%00", "\x00", id="proxy-auto-max-nul"),
    case(
        PROXY,
        "GET",
        "/search/auto?q=dune&langRestrict=..%2Fen",
        "../en",
        id="proxy-auto-lang-traversal",
    ),
    case(
        PROXY,
        "GET",
        "/search/auto?q=dune&includeTranslations=%0D%0A",
        "\r\n",
        id="proxy-auto-bool-crlf",
    ),
    case(PROXY, "GET", "/search/isbn?isbn=..%2F..%2Fhealth", "../", id="proxy-isbn-traversal"),
    case(PROXY, "GET", "/search/isbn?isbn=%FF", "%FF", id="proxy-isbn-invalid-utf8"),
    case(PROXY, "GET", "/search/isbn?isbn=" + "9" * 5000, "9" * 33, id="proxy-isbn-huge"),
    case(PROXY, "GET", f"/search/isbn?isbn={DUNE}%00", f"{DUNE}\x00", id="proxy-isbn-nul"),
    case(PROXY, "GET", "/search/author?q=%E2%80%A8", "\u2028", id="proxy-author-line-separator"),
    case(
        PROXY,
        "GET",
        "/search/author?q=Herbert%1A",
        "Herbert\x1a",
        id="proxy-author-substitute-char",
    ),
    case(PROXY, "GET", "/search/title?q=" + "t" * 257, "t" * 257, id="proxy-title-too-long"),
    case(PROXY, "GET", "/search/title?q=Dune&maxResults=1e9", "1e9", id="proxy-title-max-exp"),
    case(PROXY, "POST", "/search/auto?q=dune", "dune", body=PNG, id="proxy-post-binary"),
    case(
        PROXY,
        "PUT",
        "/search/title?q=dune",
        "dune",
        body='{"q": "dune"}',
        content_type="application/json",
        id="proxy-put-json",
    ),
    case(PROXY, "GET", "/search/auto%2F..%2F..%2Fhealth", "health", id="proxy-encoded-slash"),
    case(PROXY, "GET", "/search/../../health?q=dune", "dune", id="proxy-dot-segments"),
    # -- cache_warmer: uploads -----------------------------------------------------------------
    case(
        WARMER, "POST", "/libraries", "PNG", body=PNG, content_type=CSV, auth=True, id="warmer-png"
    ),
    case(
        WARMER, "POST", "/libraries", "PK", body=ZIP, content_type=CSV, auth=True, id="warmer-zip"
    ),
    case(
        WARMER, "POST", "/libraries", "Dune", body=UTF16, content_type=CSV, auth=True, id="w-utf16"
    ),
    case(
        WARMER,
        "POST",
        "/libraries",
        "\xff",
        body=b"title,isbn13\nDune\xff,9780441013593\n",
        content_type=CSV,
        auth=True,
        id="warmer-invalid-utf8",
    ),
    case(
        WARMER,
        "POST",
        "/libraries",
        "Dune",
        body=json.dumps([{"isbn13": DUNE, "title": "Dune"}]),
        content_type=CSV,
        auth=True,
        id="warmer-json-as-csv",
    ),
    case(
        WARMER,
        "POST",
        "/libraries",
        "[[[",
        body=NESTED_JSON,
        content_type=CSV,
        auth=True,
        id="warmer-deep-json",
    ),
    case(
        WARMER,
        "POST",
        "/libraries",
        "title",
        body=b"title,author,isbn13\nDune,Frank Herbert,9780441013593\n",
        content_type="application/json",
        auth=True,
        id="warmer-wrong-content-type",
    ),
    case(
        WARMER,
        "POST",
        "/libraries",
        "title",
        body=b"title,author,isbn13\nDune,Frank Herbert,9780441013593\n",
        content_type="application/x-www-form-urlencoded",
        auth=True,
        id="warmer-form-urlencoded",
    ),
    case(
        WARMER,
        "POST",
        "/libraries",
        "LLLL",
        body=LONG_CSV_LINE,
        content_type=CSV,
        auth=True,
        id="warmer-long-csv-line",
    ),
    case(
        WARMER,
        "POST",
        "/libraries",
        "QQQQ",
        body=OPEN_QUOTE_CSV,
        content_type=CSV,
        auth=True,
        id="warmer-open-quote",
    ),
    case(
        WARMER,
        "POST",
        "/libraries",
        "foo",
        body=b"foo,bar\n1,2\n",
        content_type=CSV,
        auth=True,
        id="warmer-unknown-header",
    ),
    case(
        WARMER,
        "POST",
        "/libraries",
        "isbn13",
        body=b"title,author,isbn13\r\n",
        content_type=CSV,
        auth=True,
        id="warmer-header-only",
    ),
    case(
        WARMER,
        "POST",
        "/libraries",
        "\x00",
        body=b"title,isbn13\nDu\x00ne,9780441013593\n",
        content_type=CSV,
        auth=True,
        id="warmer-nul-byte",
    ),
    case(
        WARMER,
        "POST",
        "/libraries",
        "\r\n",
        body=b"\r\n\r\n \t\r\n",
        content_type=CSV,
        auth=True,
        id="warmer-only-crlf",
    ),
    case(
        WARMER,
        "POST",
        "/libraries",
        "hello",
        body=FORM_NO_FILE[0],
        content_type=FORM_NO_FILE[1],
        auth=True,
        id="warmer-form-without-file",
    ),
    case(
        WARMER,
        "POST",
        "/libraries",
        "PNG",
        body=FORM_BINARY[0],
        content_type=FORM_BINARY[1],
        auth=True,
        id="warmer-form-binary-file",
    ),
    case(
        WARMER,
        "POST",
        "/libraries",
        "Dune",
        body=b"title\nDune\n",
        content_type="multipart/form-data",
        auth=True,
        id="warmer-form-no-boundary",
    ),
    case(
        WARMER,
        "POST",
        "/libraries?filename=..%2F..%2Fx%0D%0A",
        "../",
        body=PNG,
        content_type=CSV,
        auth=True,
        id="warmer-filename-traversal",
    ),
    case(
        WARMER,
        "POST",
        "/libraries",
        "Dune",
        body=b"title,author,isbn13\nDune,Frank Herbert,9780441013593\n",
        content_type=CSV,
        id="warmer-upload-no-token",
    ),
    # -- cache_warmer: progress, warm, debug ---------------------------------------------------
    case(WARMER, "GET", "/libraries/..%2F..%2Fjob", "../", id="warmer-show-traversal"),
    case(WARMER, "GET", "/libraries/%FF", "%FF", id="warmer-show-invalid-utf8"),
    case(WARMER, "GET", "/libraries/job%00x", "\x00", id="warmer-show-nul"),
    case(WARMER, "GET", "/libraries/" + "j" * 4000, "j" * 65, id="warmer-show-huge-id"),
    case(WARMER, "POST", "/libraries/%2E%2E/warm", "..", auth=True, id="warmer-warm-dotdot"),
    case(WARMER, "POST", "/libraries/a%0D%0Ab/warm", "\r\n", auth=True, id="warmer-warm-crlf"),
    case(WARMER, "DELETE", "/libraries", "libraries", auth=True, id="warmer-delete"),
    case(WARMER, "PUT", "/libraries/x", "x", body=PNG, auth=True, id="warmer-put-binary"),
    case(
        WARMER,
        "GET",
        "/debug/proxy/search/auto?q=%00",
        "\x00",
        auth=True,
        id="warmer-debug-proxy-nul",
    ),
    case(
        WARMER,
        "GET",
        "/debug/isbndb/author/%FF",
        "%FF",
        auth=True,
        id="warmer-debug-isbndb-invalid-utf8",
    ),
    case(
        WARMER,
        "GET",
        "/debug/proxy/..%2F..%2Fsecrets",
        "secrets",
        auth=True,
        id="warmer-debug-encoded-traversal",
    ),
    case(
        WARMER,
        "POST",
        "/debug/rpc/isbndb/books",
        "[[[",
        body=NESTED_JSON,
        auth=True,
        id="warmer-debug-rpc-deep-json",
    ),
    case(
        WARMER,
        "POST",
        "/debug/rpc/proxy/search_auto",
        "dune",
        body='{"q": "dune"}',
        auth=True,
        id="warmer-debug-rpc-object",
    ),
    case(
        WARMER,
        "POST",
        "/debug/rpc/proxy/__init__",
        "__init__",
        body="[]",
        auth=True,
        id="warmer-debug-rpc-dunder",
    ),
    case(WARMER, "GET", "/debug/proxy/health", "health", id="warmer-debug-no-token"),
]


def _scan(text: str, raw: str) -> bool:
    return raw in text


@pytest.mark.parametrize(("worker", "method", "path", "headers", "body", "raw"), CORPUS)
async def test_hostile_input_is_a_4xx_json_error_and_never_reaches_an_upstream(
    worker: str,
    method: str,
    path: str,
    headers: dict[str, str],
    body: str | bytes | None,
    raw: str,
) -> None:
    """Each hostile request answers 4xx JSON {"error": {code, message}}; no upstream call."""
    system = make_system()
    with mocked() as up:
        resp = await system.fetch(worker, path, method=method, headers=headers, body=body)
        text = await resp.text()
    assert 400 <= resp.status < 500, (resp.status, text[:300])
    assert resp.headers["content-type"].startswith("application/json")
    error = json.loads(text)["error"]
    assert isinstance(error["code"], str)
    assert isinstance(error["message"], str)
    assert error["message"]
    assert error["code"] != "internal_error"
    for request in up.requests:
        sent = str(request.url) + request.content.decode("latin-1")
        assert not _scan(sent, raw), sent[:300]
    assert up.requests == []
    warmer_kv = system.kv(WARMER, "WARMING_CACHE").dump()
    assert not [k for k in warmer_kv if k.startswith("job:")]
    assert not [k for k in system.r2(WARMER, "LIBRARY_DATA").items if k.startswith("libraries/")]


def test_the_corpus_covers_every_worker_with_sixty_distinct_cases() -> None:
    """At least 60 cases, unique ids, and every worker represented."""
    ids = [p.id for p in CORPUS]
    assert len(ids) >= 60
    assert len(set(ids)) == len(ids)
    workers = {p.values[0] for p in CORPUS}
    assert workers == {ISBNDB, PROXY, WARMER}


RPC_CORPUS = [
    pytest.param(ISBNDB, "author", ["a\x00b", 1, 5, None], id="rpc-isbndb-author-nul"),
    pytest.param(ISBNDB, "author", ["Herbert", "1; DROP", 5, None], id="rpc-isbndb-page-text"),
    pytest.param(ISBNDB, "book", [["9780441013593"]], id="rpc-isbndb-book-list"),
    pytest.param(ISBNDB, "books", [{"isbns": [DUNE]}], id="rpc-isbndb-books-dict"),
    pytest.param(ISBNDB, "book", [DUNE, {"purpose": "warm"}], id="rpc-isbndb-purpose-dict"),
    pytest.param(ISBNDB, "books", [[DUNE], 1], id="rpc-isbndb-purpose-number"),
    pytest.param(PROXY, "search_auto", ["dune", "5\r\nX-Evil: 1", True, "en"], id="rpc-proxy-crlf"),
    pytest.param(PROXY, "search_isbn", [HUGE], id="rpc-proxy-isbn-huge"),
    pytest.param(PROXY, "warm_isbns", [[DUNE] * 1001], id="rpc-proxy-warm-too-many"),
    pytest.param(PROXY, "cache_status", [["k" * 600]], id="rpc-proxy-cache-status-long-key"),
    # Wrong argument counts (issue 13, item 6): missing required ones, surplus ones.
    pytest.param(ISBNDB, "author", [], id="rpc-isbndb-author-no-args"),
    pytest.param(ISBNDB, "book", [], id="rpc-isbndb-book-no-args"),
    pytest.param(ISBNDB, "books", [], id="rpc-isbndb-books-no-args"),
    pytest.param(ISBNDB, "book", [DUNE, "extra"], id="rpc-isbndb-book-extra-arg"),
    pytest.param(ISBNDB, "author", ["Herbert", 1, 5, "en", 0], id="rpc-isbndb-author-5-args"),
    pytest.param(ISBNDB, "health", [1], id="rpc-isbndb-health-extra-arg"),
    pytest.param(ISBNDB, "metrics", [None], id="rpc-isbndb-metrics-extra-arg"),
    pytest.param(PROXY, "search_auto", [], id="rpc-proxy-auto-no-args"),
    pytest.param(PROXY, "search_author", [], id="rpc-proxy-author-no-args"),
    pytest.param(PROXY, "search_title", [], id="rpc-proxy-title-no-args"),
    pytest.param(PROXY, "search_isbn", [], id="rpc-proxy-isbn-no-args"),
    pytest.param(PROXY, "search_auto", ["dune", 5, True, "en", 0, 1], id="rpc-proxy-auto-6-args"),
    pytest.param(PROXY, "search_auto", ["dune", 5, True, "en", -1], id="rpc-proxy-auto-bad-start"),
    pytest.param(PROXY, "warm_isbns", [], id="rpc-proxy-warm-no-args"),
    pytest.param(PROXY, "cache_status", [], id="rpc-proxy-cache-status-no-args"),
    pytest.param(PROXY, "cache_status", [[], []], id="rpc-proxy-cache-status-extra-arg"),
    pytest.param(PROXY, "health", ["x"], id="rpc-proxy-health-extra-arg"),
    pytest.param(PROXY, "metrics", [1, 2], id="rpc-proxy-metrics-extra-args"),
]


@pytest.mark.parametrize(("worker", "method", "args"), RPC_CORPUS)
async def test_hostile_rpc_arguments_return_a_4xx_error_dict(
    worker: str, method: str, args: list[Any]
) -> None:
    """Over RPC the same inputs come back as an error dict with a 4xx status, never raised."""
    system = make_system()
    with mocked() as up:
        result = await system.rpc(worker, method, *args)
    assert 400 <= result["error"]["status"] < 500
    assert result["error"]["code"] != "internal_error"
    assert up.requests == []


@pytest.mark.parametrize(
    ("worker", "path", "body", "content_type", "status"),
    [
        pytest.param(
            ISBNDB, "/books", '{"isbns":' + DEEP + "}", "application/json", 400, id="isbndb-books"
        ),
        pytest.param(WARMER, "/debug/rpc/isbndb/books", DEEP, "application/json", 400, id="rpc"),
        pytest.param(WARMER, "/debug/rpc/proxy/health", DEEP, "application/json", 400, id="rpc2"),
        pytest.param(WARMER, "/libraries", DEEP, CSV, 415, id="warmer-upload"),
    ],
)
async def test_deep_json_is_refused_by_the_nesting_scan_before_parsing(
    worker: str, path: str, body: str, content_type: str, status: int
) -> None:
    """A 100,000-level body is refused naming the nesting limit (json.loads never sees it)."""
    system = make_system()
    headers = {**AUTH, "content-type": content_type}
    with mocked() as up:
        resp = await system.fetch(worker, path, method="POST", headers=headers, body=body)
        error = json.loads(await resp.text())["error"]
    assert resp.status == status, error
    assert "nested deeper than 32 levels" in error["message"]
    assert up.requests == []


async def test_missing_trailing_rpc_arguments_take_their_defaults() -> None:
    """search_auto("x") and author("x") (the rest left out) answer like None arguments."""
    system = make_system()
    with mocked():
        auto = await system.rpc(PROXY, "search_auto", "Frank Herbert")
        author = await system.rpc(ISBNDB, "author", "Frank Herbert")
    assert auto["kind"] == "books#volumes"
    assert "error" not in auto
    assert author["author"] == "Frank Herbert"
    assert "error" not in author


async def test_a_wrong_argument_count_names_the_method_and_the_count() -> None:
    """A surplus argument is a 400 invalid_input on ``args`` saying how many are accepted."""
    system = make_system()
    result = await system.rpc(PROXY, "search_isbn", DUNE, "surplus")
    error = result["error"]
    assert (error["status"], error["code"], error["param"]) == (400, "invalid_input", "args")
    assert "search_isbn takes at most 1 argument, got 2" in error["message"]
