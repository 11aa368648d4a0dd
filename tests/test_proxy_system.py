"""The proxy through the harness: caching tiers, breakers, outages, warming, RPC and CORS."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote

import httpx
import pytest
import respx
from test_proxy_support import (
    CHILDREN,
    DUNE,
    ISBNDB_HOST,
    MESSIAH,
    UNKNOWN,
    WORKER,
    Upstream,
    get,
    make_system,
    mocked,
)

from bookmeta import author_warm_key, isbn_key, search_key
from bookmeta._env import use_clocks
from bookmeta.runtime import RuntimeEnv
from harness import FakeContext
from proxy_app import build_app
from proxy_app.validation import SearchParams


async def test_isbn_search_merges_every_provider_then_hits_kv() -> None:
    """An ISBN-10 query is looked up as ISBN-13 everywhere, merged, then served from KV."""
    system = make_system()
    with mocked() as up:
        status, body, headers = await get(system, "/search/auto?q=0-441-01359-7")
        assert status == 200
        assert headers["x-cache"] == "miss"
        assert "x-response-time" in headers
        [item] = body["items"]
        assert item["providers"] == ["google", "isbndb", "openlibrary"]
        assert body["totalItems"] == 1
        [google] = up.calls("google")
        assert google.url.params["q"] == f"isbn:{DUNE}"
        [ol] = up.calls("openlibrary")
        assert ol.url.params["bibkeys"] == f"ISBN:{DUNE}"
        assert "books-api@example.com" in ol.headers["user-agent"]
        before = len(up.requests)
        status, again, headers = await get(system, f"/search/isbn?isbn={DUNE}")
    assert (status, headers["x-cache"], again["cache"]) == (200, "kv", "kv")
    assert again["items"] == body["items"]
    assert len(up.requests) == before


async def test_equivalent_queries_share_one_entry() -> None:
    """Case and spacing variants of one author search are one cache entry."""
    system = make_system()
    with mocked() as up:
        await get(system, "/search/author?q=%20%20Frank%20%20%20HERBERT%20")
        before = len(up.requests)
        status, body, _ = await get(system, "/search/author?q=frank%20herbert")
    assert (status, body["cache"]) == (200, "kv")
    assert len(up.requests) == before
    assert body["totalItems"] == 3


async def test_cold_hit_is_promoted_to_kv() -> None:
    """With KV empty, R2 answers (cache: r2) and the entry is copied back to KV."""
    system = make_system()
    kv = system.kv(WORKER, "CACHE")
    with mocked() as up:
        await get(system, f"/search/auto?q={DUNE}")
        kv.items.clear()
        system.clock.advance(2)
        before = len(up.requests)
        _, body, headers = await get(system, f"/search/auto?q={DUNE}")
        assert (body["cache"], headers["x-cache"]) == ("r2", "r2")
        assert isbn_key(DUNE) in kv.dump()
        _, body, _ = await get(system, f"/search/auto?q={DUNE}")
    assert body["cache"] == "kv"
    assert len(up.requests) == before


async def test_stale_entry_is_served_and_refreshed_in_background() -> None:
    """Past the hot TTL the old answer is served at once and refreshed via waitUntil."""
    system = make_system()
    with mocked() as up:
        await get(system, f"/search/auto?q={DUNE}")
        system.clock.advance(3601)
        before = len(up.requests)
        _, body, _ = await get(system, f"/search/auto?q={DUNE}")
        assert body["cache"] == "stale"
        assert len(up.requests) > before  # the background refresh ran (drained by the harness)
        _, body, _ = await get(system, f"/search/auto?q={DUNE}")
    assert body["cache"] == "kv"


async def test_not_found_is_cached_briefly() -> None:
    """An ISBN nobody has is an empty answer, negatively cached for minutes only."""
    system = make_system()
    with mocked() as up:
        _, body, _ = await get(system, f"/search/isbn?isbn={UNKNOWN}")
        assert (body["totalItems"], body["cache"]) == (0, "miss")
        before = len(up.requests)
        _, body, _ = await get(system, f"/search/isbn?isbn={UNKNOWN}")
        assert (body["totalItems"], body["cache"]) == (0, "kv")
        assert len(up.requests) == before
        system.clock.advance(301)
        _, body, _ = await get(system, f"/search/isbn?isbn={UNKNOWN}")
    assert body["cache"] == "miss"


async def test_partial_answer_is_served_but_not_cached() -> None:
    """When one provider fails the others' answer is returned, flagged, and not stored."""
    system = make_system()
    with mocked(Upstream(down={"google"})):
        status, body, _ = await get(system, f"/search/auto?q={DUNE}")
    assert status == 200
    assert body["failedProviders"] == ["google"]
    assert body["items"][0]["providers"] == ["isbndb", "openlibrary"]
    assert isbn_key(DUNE) not in system.kv(WORKER, "CACHE").dump()


async def test_all_providers_down_without_cache_is_503_with_retry_after() -> None:
    """Nothing cached and every provider failing: 503 JSON with Retry-After."""
    system = make_system()
    with mocked(Upstream(down={"google", "isbndb", "openlibrary"})):
        status, body, headers = await get(system, f"/search/auto?q={DUNE}")
    assert status == 503
    assert body["error"]["code"] == "upstream_unavailable"
    assert int(headers["retry-after"]) >= 1


async def test_all_providers_down_serves_an_expired_entry_as_stale() -> None:
    """Even past its cold TTL, a cached answer beats a 503 when every provider is down."""
    system = make_system()
    up = Upstream()
    with mocked(up):
        await get(system, f"/search/auto?q={DUNE}")
        system.clock.advance(604_800 + 10)
        up.down = {"google", "isbndb", "openlibrary"}
        status, body, _ = await get(system, f"/search/auto?q={DUNE}")
    assert (status, body["cache"]) == (200, "stale")
    assert body["items"][0]["volumeInfo"]["title"] == "Dune"


async def test_breaker_opens_after_three_failures_and_recovers() -> None:
    """Google failing 3 times opens its breaker (no more calls); after 30 s a probe closes it."""
    system = make_system()
    up = Upstream(down={"google"})
    with mocked(up):
        for _ in range(3):
            await get(system, f"/search/auto?q={DUNE}")
        assert len(up.calls("google")) == 3
        _, health, _ = await get(system, "/health")
        assert health["breakers"]["google"]["state"] == "open"
        _, body, _ = await get(system, f"/search/auto?q={DUNE}")
        assert len(up.calls("google")) == 3  # failed fast
        assert body["failedProviders"] == ["google"]
        up.down = set()
        system.clock.advance(31)
        _, body, _ = await get(system, f"/search/auto?q={DUNE}")
        assert len(up.calls("google")) == 4
        assert "failedProviders" not in body
        _, health, _ = await get(system, "/health")
    assert health["breakers"]["google"]["state"] == "closed"


async def test_concurrent_identical_misses_share_one_load() -> None:
    """Two simultaneous misses for one key make one upstream call per provider."""
    system = make_system()
    with mocked(Upstream(yield_first=True)) as up:
        results = await asyncio.gather(
            get(system, f"/search/auto?q={DUNE}"), get(system, f"/search/auto?q={DUNE}")
        )
    assert [r[0] for r in results] == [200, 200]
    assert results[0][1]["items"] == results[1][1]["items"]
    assert len(up.calls("google")) == 1


async def test_author_guess_falls_back_to_text_search() -> None:
    """A name-like query with no author hit is retried as a text search."""
    system = make_system()
    with mocked() as up:
        _, body, _ = await get(system, "/search/auto?q=" + quote("Children Dune"))
    queries = [r.url.params.get("q") for r in up.calls("google")]
    assert queries == ['inauthor:"Children Dune"', "Children Dune"]
    assert [i["volumeInfo"]["title"] for i in body["items"]] == ["Children of Dune"]


async def test_include_translations_false_drops_other_languages() -> None:
    """includeTranslations=false keeps only langRestrict's language and asks Google for it."""
    system = make_system()
    up = Upstream()
    with mocked(up):
        _, body, _ = await get(
            system, "/search/title?q=Dune&includeTranslations=false&langRestrict=fr"
        )
    assert body["totalItems"] == 0
    assert up.calls("google")[0].url.params["langRestrict"] == "fr"


async def test_warm_isbns_uses_fewest_calls_then_searches_hit() -> None:
    """Warming: ISBNdb bulk, then one Open Library batch, then Google; later searches hit KV."""
    system = make_system()
    up = Upstream(knows={"isbndb": {DUNE}, "openlibrary": {MESSIAH}, "google": {CHILDREN}})
    with mocked(up):
        report = await system.rpc(
            WORKER, "warm_isbns", [DUNE, "0441013597", MESSIAH, CHILDREN, UNKNOWN, "nope"]
        )
        assert report["warmed"] == [DUNE, MESSIAH, CHILDREN]
        assert report["notFound"] == [UNKNOWN]
        assert report["invalid"] == ["nope"]
        assert report["alreadyCached"] == []
        assert report["failed"] == []
        assert report["upstreamCalls"] == {"isbndb": 1, "openlibrary": 1, "google": 2}
        before = len(up.requests)
        for isbn in (DUNE, MESSIAH, CHILDREN):
            _, body, headers = await get(system, f"/search/auto?q={isbn}&maxResults=1")
            assert headers["x-cache"] == "kv"
            assert body["totalItems"] == 1
        _, body, _ = await get(system, f"/search/auto?q={UNKNOWN}")
        assert (body["cache"], body["totalItems"]) == ("kv", 0)
        assert len(up.requests) == before
        system.clock.advance(2)
        again = await system.rpc(WORKER, "warm_isbns", [DUNE, MESSIAH])
    assert again["alreadyCached"] == [DUNE, MESSIAH]
    assert again["upstreamCalls"] == {"isbndb": 0, "openlibrary": 0, "google": 0}


async def test_warm_reports_failures_without_negative_entries() -> None:
    """An ISBN missing while a provider failed is reported failed, not cached as not found."""
    system = make_system()
    with mocked(
        Upstream(down={"google"}, knows={"isbndb": set(), "openlibrary": set(), "google": set()})
    ):
        report = await system.rpc(WORKER, "warm_isbns", [UNKNOWN])
    assert report["notFound"] == []
    assert report["failed"][0]["isbn"] == UNKNOWN
    assert "google" in report["failed"][0]["reason"]
    assert isbn_key(UNKNOWN) not in system.kv(WORKER, "CACHE").dump()


async def test_cache_status_reports_tiers() -> None:
    """cache_status names the tier and freshness of each key."""
    system = make_system()
    with mocked():
        await get(system, f"/search/auto?q={DUNE}")
    missing = search_key("author", "nobody", max_results=40, lang="en", translations=True)
    status = await system.rpc(WORKER, "cache_status", [isbn_key(DUNE), missing])
    hit = status["keys"][isbn_key(DUNE)]
    assert hit["tier"] == "kv"
    assert hit["freshUntil"] == system.clock() + 3600
    assert status["keys"][missing] == {"tier": None, "freshUntil": None, "expiresAt": None}


async def test_rpc_search_matches_http_and_returns_errors() -> None:
    """RPC searches return the HTTP body; bad input comes back as an error dict."""
    system = make_system()
    with mocked():
        body = await system.rpc(WORKER, "search_auto", DUNE, 1, True, "en")
        isbn_body = await system.rpc(WORKER, "search_isbn", "0441013597")
        author = await system.rpc(WORKER, "search_author", "Frank Herbert", 2, None, None)
        title = await system.rpc(WORKER, "search_title", "Messiah", None, False, "en")
    assert body["items"] == isbn_body["items"]
    assert author["totalItems"] == 2
    assert title["items"][0]["volumeInfo"]["title"] == "Dune Messiah"
    error = await system.rpc(WORKER, "search_auto", "", 41, "yes", "english")
    assert error["error"]["status"] == 400
    assert error["error"]["code"] == "invalid_input"
    assert error["error"]["retryAfter"] is None
    bad = await system.rpc(WORKER, "warm_isbns", "9780441013593")
    assert bad["error"]["param"] == "isbns"


async def test_cors_preflight_and_allowed_origins() -> None:
    """OPTIONS answers 204 with CORS headers; a restricted list echoes only its origins."""
    system = make_system()
    status, _, headers = await get(
        system, "/search/auto", method="OPTIONS", headers={"origin": "https://x.example"}
    )
    assert status == 204
    assert headers["access-control-allow-origin"] == "*"
    assert "GET" in headers["access-control-allow-methods"]
    strict = make_system(
        vars={WORKER: {"CORS_ALLOWED_ORIGINS": "https://app.example, https://b.example"}}
    )
    ok = {"origin": "https://app.example"}
    status, _, headers = await get(strict, "/health", headers=ok)
    assert headers["access-control-allow-origin"] == "https://app.example"
    assert headers["vary"] == "Origin"
    status, _, headers = await get(strict, "/health", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in headers
    status, body, _ = await get(
        strict, "/health", method="OPTIONS", headers={"origin": "https://evil.example"}
    )
    assert (status, body["error"]["code"]) == (403, "cors_forbidden")


async def test_health_and_metrics() -> None:
    """/health reports configuration without secrets; /metrics counts cache sources."""
    system = make_system(secrets={"ISBNDB_API_KEY": "k", "GOOGLE_BOOKS_API_KEY": "gkey"})
    with mocked() as up:
        await get(system, f"/search/auto?q={DUNE}")
        await get(system, f"/search/auto?q={DUNE}")
    assert up.calls("google")[0].url.params["key"] == "gkey"
    _, health, _ = await get(system, "/health")
    assert health["googleKeyConfigured"] is True
    assert health["isbndbBinding"] is True
    assert "gkey" not in str(health)
    _, metrics, _ = await get(system, "/metrics")
    assert metrics["counters"]["cache.miss"] == 1
    assert metrics["counters"]["cache.kv"] == 1
    assert metrics["counters"]["upstream.google.calls"] == 1


async def test_cache_hits_and_polls_write_no_log_line(capsys: pytest.CaptureFixture[str]) -> None:
    """A miss and a bad request each log a request line; a KV hit, /health,
    /metrics and a preflight do not (they are counted in /metrics)."""
    system = make_system()

    def request_lines() -> list[tuple[str, int]]:
        out = capsys.readouterr().out.splitlines()
        records = [json.loads(line) for line in out if line.startswith("{")]
        return [
            (r["path"], r["status"])
            for r in records
            if r.get("event") == "request" and r["worker"] == WORKER
        ]

    with mocked():
        await get(system, f"/search/auto?q={DUNE}")
        assert request_lines() == [("/search/auto", 200)]
        status, _, headers = await get(system, f"/search/auto?q={DUNE}")
        assert (status, headers["x-cache"]) == (200, "kv")
        await get(system, "/health")
        await get(system, "/metrics")
        await get(system, "/search/auto", method="OPTIONS", headers={"origin": "https://a.b"})
        assert request_lines() == []
        await get(system, "/search/auto?q=")
        assert request_lines() == [("/search/auto", 400)]
    _, metrics, _ = await get(system, "/metrics")
    assert metrics["counters"]["cache.kv"] == 1
    assert metrics["latency"]["http.request"]["count"] == 6


async def test_health_reads_the_google_key_once_a_minute() -> None:
    """/health and misses reuse the Google key for 60 s instead of reading the store each time."""
    system = make_system(secrets={"ISBNDB_API_KEY": "k", "GOOGLE_BOOKS_API_KEY": "gkey"})
    secret = system.envs[WORKER].GOOGLE_BOOKS_API_KEY
    for _ in range(3):
        _, health, _ = await get(system, "/health")
        assert health["googleKeyConfigured"] is True
    with mocked() as up:
        await get(system, f"/search/auto?q={DUNE}")
    assert up.calls("google")[0].url.params["key"] == "gkey"
    assert secret.reads == 1
    system.clock.advance(60.0)
    secret.value = None
    _, health, _ = await get(system, "/health")
    assert health["googleKeyConfigured"] is False
    assert secret.reads == 2


async def test_metrics_report_latency_per_provider_and_binding() -> None:
    """After a search, /metrics has latency for each provider and the ISBNDB_WORKER binding."""
    system = make_system()
    with mocked():
        status, _, _ = await get(system, "/search/auto?q=Frank%20Herbert&maxResults=5")
        assert status == 200
        _, body, _ = await get(system, "/metrics")
    assert {"upstream.google", "upstream.openlibrary", "upstream.isbndb"} <= set(body["latency"])
    assert body["latency"]["binding.ISBNDB_WORKER"]["count"] >= 1


# -- review fixes -----------------------------------------------------------------------------


async def test_malformed_var_is_a_json_500_naming_it_over_http_and_rpc() -> None:
    """CACHE_HOT_TTL=1h: data calls answer config_error naming the var; /health still answers."""
    system = make_system(vars={WORKER: {"CACHE_HOT_TTL": "1h"}})
    with mocked() as up:
        status, body, headers = await get(system, f"/search/auto?q={DUNE}")
        assert (status, body["error"]["code"], body["error"]["var"]) == (
            500,
            "config_error",
            "CACHE_HOT_TTL",
        )
        assert headers["content-type"].startswith("application/json")
        rpc = await system.rpc(WORKER, "search_auto", DUNE, 1, True, "en")
        warm = await system.rpc(WORKER, "warm_isbns", [DUNE])
    assert rpc["error"] == {
        "code": "config_error",
        "message": body["error"]["message"],
        "var": "CACHE_HOT_TTL",
        "status": 500,
        "retryAfter": None,
    }
    assert warm["error"]["code"] == "config_error"
    assert up.requests == []
    status, health, _ = await get(system, "/health")
    assert status == 200
    assert "CACHE_HOT_TTL" in health["configError"]
    assert "CACHE_HOT_TTL" in (await system.rpc(WORKER, "health"))["configError"]
    assert "configError" not in (await get(make_system(), "/health"))[1]


@pytest.mark.parametrize(
    ("page_count", "expected"),
    [("412", 412), ("²", None), ("7" * 5000, None)],
    ids=["digits", "superscript-two", "5000-digits"],
)
async def test_odd_page_counts_read_as_missing_not_a_failure(
    page_count: str, expected: int | None
) -> None:
    """pageCount "²" (isdigit, yet not int()-able) or 5,000 digits reads as no count."""
    system = make_system()
    up = Upstream(knows={"google": {DUNE}, "isbndb": set(), "openlibrary": set()})

    async def google(request: httpx.Request) -> httpx.Response:
        body = json.loads((await up.google(request)).content)
        for item in body.get("items", []):
            item["volumeInfo"]["pageCount"] = page_count
        return httpx.Response(200, json=body)

    with respx.mock(assert_all_called=False) as router:
        router.route(host="www.googleapis.com").mock(side_effect=google)
        router.route(host="openlibrary.org").mock(side_effect=up.openlibrary)
        router.route(host=ISBNDB_HOST).mock(side_effect=up.isbndb)
        status, body, _ = await get(system, f"/search/isbn?isbn={DUNE}")
    assert status == 200
    assert "failedProviders" not in body
    [item] = body["items"]
    assert item["providers"] == ["google"]
    assert item["volumeInfo"].get("pageCount") == expected


async def test_a_parser_crash_is_that_providers_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any exception while parsing Google's answer is google's UpstreamError, breaker-counted."""
    from proxy_app.providers import google

    def crash(item: object) -> None:
        raise ValueError("odd data")

    monkeypatch.setattr(google, "parse_item", crash)
    system = make_system()
    with mocked():
        status, body, _ = await get(system, f"/search/auto?q={DUNE}")
        author = await system.rpc(WORKER, "search_author", "Frank Herbert", 5, None, None)
    assert status == 200
    assert body["failedProviders"] == ["google"]
    assert body["items"][0]["providers"] == ["isbndb", "openlibrary"]
    assert author["failedProviders"] == ["google"]
    _, health, _ = await get(system, "/health")
    assert health["breakers"]["google"]["failures"] == 2
    _, metrics, _ = await get(system, "/metrics")
    assert metrics["counters"]["upstream.google.unparseable"] == 2


async def test_warm_finds_an_isbn_isbndb_lists_under_another_book() -> None:
    """ISBNdb answers X with book Y (X in its other_isbns): X is warmed and then a cache hit."""
    system = make_system()
    up = Upstream(
        knows={"isbndb": {DUNE}, "openlibrary": set(), "google": set()},
        isbndb_aliases={UNKNOWN: DUNE},
    )
    with mocked(up):
        report = await system.rpc(WORKER, "warm_isbns", [UNKNOWN])
        assert report["warmed"] == [UNKNOWN]
        assert report["notFound"] == []
        assert report["upstreamCalls"] == {"isbndb": 1, "openlibrary": 0, "google": 0}
        before = len(up.requests)
        status, body, headers = await get(system, f"/search/auto?q={UNKNOWN}&maxResults=1")
    assert (status, headers["x-cache"]) == (200, "kv")
    assert body["items"][0]["volumeInfo"]["title"] == "Dune"
    assert len(up.requests) == before


async def test_warm_isbns_caps_the_list_and_cuts_echoed_inputs() -> None:
    """At most 200 ISBNs per call; an invalid input is echoed back cut to 80 characters."""
    system = make_system()
    with mocked():
        report = await system.rpc(WORKER, "warm_isbns", ["x" * 10_000, 12, [1] * 1000])
        too_many = await system.rpc(WORKER, "warm_isbns", [DUNE] * 201)
        at_cap = await system.rpc(WORKER, "warm_isbns", [DUNE] * 200)
    assert report["invalid"] == ["x" * 80, "12", repr([1] * 1000)[:80]]
    assert (too_many["error"]["param"], too_many["error"]["status"]) == ("isbns", 400)
    assert "200" in too_many["error"]["message"]
    assert at_cap["warmed"] == [DUNE]


async def test_full_width_author_prefix_is_explicit_not_retried_as_text() -> None:
    """A full-width inauthor: prefix is explicit, as classify sees it after NFKC: no text retry."""
    system = make_system()
    app = build_app(RuntimeEnv(system.envs[WORKER], FakeContext()), system.module(WORKER)._ISOLATE)
    full_width = "".join(chr(ord(ch) + 0xFEE0) for ch in "inauthor:")  # U+FF49 U+FF4E ... U+FF1A
    params = SearchParams(full_width + "Nobody Known", 10, True, "en")
    with mocked() as up, use_clocks(system.clocks):
        result = await app.searcher.auto(params)
    assert result.items == []
    assert [r.url.params["q"] for r in up.calls("google")] == ['inauthor:"Nobody Known"']


async def test_included_translations_share_one_entry_whatever_the_language() -> None:
    """With includeTranslations=true langRestrict filters nothing, so it does not split the key."""
    system = make_system()
    with mocked() as up:
        await get(system, "/search/author?q=Frank%20Herbert&langRestrict=fr")
        before = len(up.requests)
        _, body, _ = await get(system, "/search/author?q=Frank%20Herbert&langRestrict=de")
    assert body["cache"] == "kv"
    assert len(up.requests) == before
    key = search_key("author", "Frank Herbert", max_results=40, translations=True)
    assert key in system.kv(WORKER, "CACHE").dump()


async def test_the_warmers_author_search_is_stored_under_author_warm_key() -> None:
    """q=inauthor:<name>&maxResults=40&includeTranslations=false writes author_warm_key(name)."""
    system = make_system()
    with mocked():
        status, _, _ = await get(
            system,
            "/search/auto?q=inauthor%3AFrank%20Herbert&maxResults=40&includeTranslations=false",
        )
    assert status == 200
    written = set(system.kv(WORKER, "CACHE").dump())
    assert author_warm_key("Frank Herbert") in written
    assert written == {author_warm_key("Frank Herbert")}
