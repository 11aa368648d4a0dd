"""The proxy through the harness: caching tiers, breakers, outages, warming, RPC and CORS."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote

import httpx
import pytest
import respx
from test_proxy_support import (
    BOOKS,
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

from bookmeta import FakeClock, author_warm_key, isbn_key, search_key
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


async def test_partial_answer_is_kept_briefly_in_kv_only() -> None:
    """When one provider fails the others' answer is returned, flagged, and kept in KV (not R2)
    for KV's minimum, flagged partial, so cache_status does not count it as warmed."""
    system = make_system()
    with mocked(Upstream(down={"google"})):
        status, body, headers = await get(system, f"/search/auto?q={DUNE}")
    assert status == 200
    assert body["failedProviders"] == ["google"]
    assert headers["x-cache"] == "miss"
    assert body["items"][0]["providers"] == ["isbndb", "openlibrary"]
    stored = json.loads(system.kv(WORKER, "CACHE").dump()[isbn_key(DUNE)])
    assert stored["p"] == {"failed": ["google"]}
    assert stored["f"] - stored["s"] == 60
    assert not system.r2(WORKER, "API_CACHE_COLD").items
    status = await system.rpc(WORKER, "cache_status", [isbn_key(DUNE)])
    assert status["keys"][isbn_key(DUNE)]["tier"] is None


async def test_during_an_outage_repeats_cost_no_call_then_the_full_answer_replaces_it() -> None:
    """The issue's goal: any number of identical searches in the partial's window cost one
    call per healthy provider; once it lapses and the provider is back, the full answer
    replaces the partial one."""
    system = make_system()
    up = Upstream(down={"google"})
    with mocked(up):
        for _ in range(5):
            status, body, headers = await get(system, f"/search/auto?q={DUNE}&maxResults=1")
            assert status == 200
            assert body["failedProviders"] == ["google"]
        assert len(up.calls("isbndb")) == 1
        assert len(up.calls("openlibrary")) == 1
        assert headers["x-cache"] == "kv"
        up.down.clear()
        system.clock.advance(61)
        status, body, headers = await get(system, f"/search/auto?q={DUNE}&maxResults=1")
        assert (status, headers["x-cache"]) == (200, "miss")
        assert "failedProviders" not in body
        assert body["items"][0]["providers"] == ["google", "isbndb", "openlibrary"]
        _, again, headers = await get(system, f"/search/auto?q={DUNE}&maxResults=1")
    assert headers["x-cache"] == "kv"
    assert "failedProviders" not in again
    assert isbn_key(DUNE) in {
        k.removeprefix("cache/") for k in system.r2(WORKER, "API_CACHE_COLD").items
    }


async def test_a_stale_full_entry_is_preferred_to_a_partial_answer() -> None:
    """A full entry past its hot TTL is served (stale) when the refresh comes back partial, and
    the partial answer never overwrites it."""
    system = make_system()
    up = Upstream()
    with mocked(up):
        await get(system, f"/search/auto?q={DUNE}")
        system.clock.advance(3601)  # past KV's hour: R2 still holds the full entry
        up.down.add("google")
        status, body, headers = await get(system, f"/search/auto?q={DUNE}")
    assert (status, headers["x-cache"]) == (200, "stale")
    assert "failedProviders" not in body
    assert body["items"][0]["providers"] == ["google", "isbndb", "openlibrary"]
    stored = system.kv(WORKER, "CACHE").dump().get(isbn_key(DUNE))
    assert stored is None or '"p"' not in stored


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
    """Google failing 3 times opens its breaker (no more calls); after 30 s a probe closes it.
    (Distinct searches: an identical one would be answered by the partial entry.)"""
    system = make_system()
    up = Upstream(down={"google"})
    with mocked(up):
        for isbn in (DUNE, MESSIAH, CHILDREN):
            await get(system, f"/search/auto?q={isbn}")
        assert len(up.calls("google")) == 3
        _, health, _ = await get(system, "/health")
        assert health["breakers"]["google"]["state"] == "open"
        _, body, _ = await get(system, f"/search/auto?q={UNKNOWN}")
        assert len(up.calls("google")) == 3  # failed fast
        assert body["failedProviders"] == ["google"]
        up.down = set()
        system.clock.advance(31)
        _, body, _ = await get(system, "/search/auto?q=intitle:dune")
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


async def test_a_name_typed_any_way_is_promoted_to_an_author_search() -> None:
    """`frank herbert` and `Frank  HERBERT` are one search: text first, then (the best matches'
    author is the query) an author search with ISBNdb's bibliography; the same upstream calls,
    one cache entry, and the second is a hit."""
    system = make_system()
    with mocked() as up:
        _, body, headers = await get(system, "/search/auto?q=" + quote("frank herbert"))
        calls = [str(r.url) for r in up.requests]
        _, again, again_headers = await get(system, "/search/auto?q=" + quote(" Frank  HERBERT "))
    assert headers["x-cache"] == "miss"
    assert again_headers["x-cache"] == "kv"
    assert again["items"] == body["items"]
    assert [str(r.url) for r in up.requests] == calls, "the variant costs no upstream call"
    google = [r.url.params["q"] for r in up.calls("google")]
    assert google == ["frank herbert", 'inauthor:"frank herbert"']
    assert [r.url.path for r in up.calls("isbndb")] == ["/author/frank herbert"]
    assert {i["volumeInfo"]["title"] for i in body["items"]} == {
        "Dune",
        "Dune Messiah",
        "Children of Dune",
    }


async def test_a_title_typed_in_capitals_stays_a_title_search() -> None:
    """`Children Dune` (title case, once read as a name) finds its book by text: its author is
    not the query, so there is no author search."""
    system = make_system()
    with mocked() as up:
        _, body, _ = await get(system, "/search/auto?q=" + quote("Children Dune"))
    assert [r.url.params.get("q") for r in up.calls("google")] == ["children dune"]
    assert [i["volumeInfo"]["title"] for i in body["items"]] == ["Children of Dune"]
    assert not up.calls("isbndb")


async def test_a_later_page_follows_the_first_pages_decision() -> None:
    """Page 2 of a promoted name query pages through the author search."""
    system = make_system()
    with mocked() as up:
        _, page2, _ = await get(system, "/search/auto?q=frank%20herbert&maxResults=1&startIndex=1")
    google = [r.url.params["q"] for r in up.calls("google")]
    assert google.count('inauthor:"frank herbert"') == 2  # page 1's promotion, then page 2
    assert len(page2["items"]) == 1
    assert page2["totalItems"] >= 2


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


class SlowIsbndb(Upstream):
    """ISBNdb's bulk answer takes ``seconds`` on the harness clock (it advances while serving)."""

    clock: FakeClock | None = None
    seconds: float = 0.0

    async def isbndb(self, request: httpx.Request) -> httpx.Response:
        assert self.clock is not None
        self.clock.advance(self.seconds)
        return await super().isbndb(request)


async def test_warm_isbns_asks_nothing_more_once_the_callers_deadline_passed() -> None:
    """Past budget_ms no step starts: found books are stored, the rest fails as 'deadline'."""
    system = make_system()
    up = SlowIsbndb(knows={"isbndb": {DUNE}, "openlibrary": set(BOOKS), "google": set(BOOKS)})
    up.clock, up.seconds = system.clock, 2.0
    with mocked(up):
        report = await system.rpc(WORKER, "warm_isbns", [DUNE, MESSIAH, CHILDREN], 1000)
    assert report["warmed"] == [DUNE]
    assert [f["isbn"] for f in report["failed"]] == [MESSIAH, CHILDREN]
    assert all(
        f["reason"] == "deadline: the caller's 1000 ms ran out first; retry later"
        for f in report["failed"]
    )
    assert (up.calls("openlibrary"), up.calls("google")) == ([], [])
    assert report["upstreamCalls"] == {"isbndb": 1, "openlibrary": 0, "google": 0}
    assert isbn_key(DUNE) in system.kv(WORKER, "CACHE").dump()
    assert isbn_key(MESSIAH) not in system.kv(WORKER, "CACHE").dump()


async def test_warm_isbns_within_its_budget_is_unchanged() -> None:
    """A budget that is not spent changes nothing: every step runs."""
    system = make_system()
    up = Upstream(knows={"isbndb": {DUNE}, "openlibrary": {MESSIAH}, "google": {CHILDREN}})
    with mocked(up):
        report = await system.rpc(WORKER, "warm_isbns", [DUNE, MESSIAH, CHILDREN], 10_000)
    assert report["warmed"] == [DUNE, MESSIAH, CHILDREN]
    assert report["failed"] == []


async def test_a_step_still_running_at_the_deadline_is_cut() -> None:
    """Google hanging past the deadline is cancelled; its ISBNs fail as 'deadline' at once."""
    system = make_system()
    up = Upstream(knows={"isbndb": set(), "openlibrary": set(), "google": set(BOOKS)})

    async def hang(request: httpx.Request) -> httpx.Response:
        up.requests.append(request)
        await asyncio.sleep(30)  # real time: only the deadline (1.5 s) ends it
        raise AssertionError("not cancelled at the deadline")

    with respx.mock(assert_all_called=False) as router:
        router.route(host="www.googleapis.com").mock(side_effect=hang)
        router.route(host="openlibrary.org").mock(side_effect=up.openlibrary)
        router.route(host=ISBNDB_HOST).mock(side_effect=up.isbndb)
        report = await system.rpc(WORKER, "warm_isbns", [DUNE], 1500)
    assert len(up.calls("google")) == 1
    assert report["failed"] == [
        {"isbn": DUNE, "reason": "deadline: the caller's 1500 ms ran out first; retry later"}
    ]


@pytest.mark.parametrize("budget", [0, -5, 600_001, "1000", True, 1.5], ids=repr)
async def test_a_bad_budget_is_a_400_on_budget_ms(budget: object) -> None:
    """budget_ms is whole milliseconds from 1 to 600,000 (or None: no deadline)."""
    system = make_system()
    report = await system.rpc(WORKER, "warm_isbns", [DUNE], budget)
    assert (report["error"]["status"], report["error"]["param"]) == (400, "budget_ms")


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
    assert (len(author["items"]), author["totalItems"]) == (2, 3)  # a page of the 3 matches
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


async def test_warm_keeps_a_books_own_record_over_an_alias_listed_first() -> None:
    """ISBNdb lists Messiah (other_isbns: Dune) before Dune: Dune is cached as Dune."""
    system = make_system()
    up = Upstream(
        knows={"isbndb": {DUNE, MESSIAH}, "openlibrary": set(), "google": set()},
        isbndb_other_isbns={MESSIAH: [DUNE]},
    )
    with mocked(up):
        report = await system.rpc(WORKER, "warm_isbns", [MESSIAH, DUNE])
        assert report["warmed"] == [MESSIAH, DUNE]
        _, body, headers = await get(system, f"/search/auto?q={DUNE}&maxResults=1")
    assert headers["x-cache"] == "kv"
    [item] = body["items"]
    assert item["volumeInfo"]["title"] == "Dune"
    assert {"type": "ISBN_13", "identifier": DUNE} in item["volumeInfo"]["industryIdentifiers"]


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
    assert [r.url.params["q"] for r in up.calls("google")] == ['inauthor:"nobody known"']


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


async def test_a_failing_kv_write_never_turns_an_answer_into_a_500() -> None:
    """KV puts throwing: the search still answers 200 after one call per provider; counted."""
    system = make_system()
    system.kv(WORKER, "CACHE").failing.add("put")
    with mocked() as up:
        status, body, _ = await get(system, f"/search/auto?q={DUNE}")
        assert (status, body["cache"], body["totalItems"]) == (200, "miss", 1)
        assert [len(up.calls(p)) for p in ("google", "isbndb", "openlibrary")] == [1, 1, 1]
        _, metrics, _ = await get(system, "/metrics")
    assert metrics["counters"]["cache.write_failed.kv"] == 1
    assert "cache.write_failed.r2" not in metrics["counters"]
    assert f"cache/{isbn_key(DUNE)}" in system.r2(WORKER, "API_CACHE_COLD").items


async def test_callers_racing_another_isolates_write_share_one_fan_out() -> None:
    """Another isolate wrote the key this second (KV 429): 5 concurrent callers, 1 fan-out."""
    system = make_system()
    kv = system.kv(WORKER, "CACHE")
    kv.last_write[isbn_key(DUNE)] = system.clock()  # warm_isbns in another isolate just wrote
    with mocked(Upstream(yield_first=True)) as up:
        results = await asyncio.gather(*(get(system, f"/search/auto?q={DUNE}") for _ in range(5)))
    assert [r[0] for r in results] == [200] * 5
    assert all(r[1]["items"] == results[0][1]["items"] for r in results)
    assert [len(up.calls(p)) for p in ("google", "isbndb", "openlibrary")] == [1, 1, 1]


async def test_warm_isbns_reports_a_failed_cache_write_per_isbn() -> None:
    """warm_isbns with KV puts throwing answers normally: those ISBNs are failed, to retry."""
    system = make_system()
    system.kv(WORKER, "CACHE").failing.add("put")
    with mocked():
        report = await system.rpc(WORKER, "warm_isbns", [DUNE, UNKNOWN])
    assert "error" not in report
    assert (report["warmed"], report["notFound"]) == ([], [])
    assert [f["isbn"] for f in report["failed"]] == [DUNE, UNKNOWN]
    assert all("cache write failed" in f["reason"] for f in report["failed"])


async def test_different_upstream_queries_never_share_an_entry() -> None:
    """C++ Primer then C# Primer: the second is its own miss, asked upstream in its key form
    (case folded, + and # kept)."""
    system = make_system()
    with mocked() as up:
        _, first, _ = await get(system, "/search/title?q=C%2B%2B%20Primer")
        _, second, _ = await get(system, "/search/title?q=C%23%20Primer")
    assert (first["cache"], second["cache"]) == ("miss", "miss")
    queries = [r.url.params["q"] for r in up.calls("google")]
    assert queries == ['intitle:"c++ primer"', 'intitle:"c# primer"']


async def test_an_open_library_work_never_overrides_the_edition_it_folds_into() -> None:
    """Google's 2005 Dune with the 1965 work of 3 authors: the item is the 2005 edition."""
    system = make_system()
    up = Upstream(
        knows={"google": {DUNE}, "isbndb": set(), "openlibrary": {DUNE}},
        ol_doc_fields={
            DUNE: {
                "author_name": ["Frank Herbert", "Brian Herbert", "Kevin J. Anderson"],
                "first_publish_year": 1965,
                "isbn": ["9782266233200", DUNE],
                "language": ["fre", "eng"],
            }
        },
    )
    with mocked(up):
        _, body, _ = await get(system, "/search/title?q=Dune")
    [item] = body["items"]
    info = item["volumeInfo"]
    assert (info["publishedDate"], info["authors"]) == ("2005-08-02", ["Frank Herbert"])
    assert item["providers"] == ["google", "openlibrary"]


async def test_a_work_of_unknown_language_is_not_counted_as_the_language_asked() -> None:
    """includeTranslations=false: an Open Library work in several languages is left out."""
    system = make_system()
    up = Upstream(
        knows={"google": set(), "isbndb": set(), "openlibrary": {DUNE}},
        ol_doc_fields={DUNE: {"isbn": ["9782266233200", DUNE], "language": ["fre", "eng"]}},
    )
    with mocked(up):
        _, body, _ = await get(system, "/search/title?q=Dune&includeTranslations=false")
    assert body["items"] == []


async def test_a_book_isbndb_found_for_the_language_asked_keeps_that_language() -> None:
    """ISBNdb filtered the author page by language: a book listing none counts as that one."""
    system = make_system()
    up = Upstream(
        knows={"google": set(), "isbndb": {DUNE}, "openlibrary": set()},
        isbndb_fields={DUNE: {"language": None}},
    )
    with mocked(up):
        _, body, _ = await get(system, "/search/author?q=Frank%20Herbert&includeTranslations=false")
    [item] = body["items"]
    assert item["volumeInfo"]["language"] == "en"
    assert up.calls("isbndb")[0].url.params["language"] == "en"


async def test_start_index_pages_through_the_matches_google_style() -> None:
    """maxResults=1 from startIndex 0, 1, 2, 3: each book once, totalItems the match count."""
    system = make_system()
    with mocked() as up:
        pages = [
            (await get(system, f"/search/author?q=Frank%20Herbert&maxResults=1&startIndex={i}"))[1]
            for i in range(4)
        ]
        google = [r.url.params.get("startIndex") for r in up.calls("google")]
        offsets = [r.url.params.get("offset") for r in up.calls("openlibrary")]
    titles = [[item["volumeInfo"]["title"] for item in page["items"]] for page in pages]
    assert sorted(t for page in titles for t in page) == [
        "Children of Dune",
        "Dune",
        "Dune Messiah",
    ]
    assert titles[3] == []
    assert [page["totalItems"] for page in pages] == [3, 3, 3, 3]
    assert [page["cache"] for page in pages] == ["miss"] * 4  # each page its own key
    assert google == [None, "1", "2", "3"]
    assert offsets == [None, "1", "2", "3"]


async def test_total_items_counts_matches_not_the_page() -> None:
    """totalItems is the match count as far as the providers report it, not the page length."""
    system = make_system()
    with mocked():
        _, body, _ = await get(system, "/search/title?q=Dune&maxResults=1")
        _, cached, _ = await get(system, "/search/title?q=Dune&maxResults=1")
    assert len(body["items"]) == 1
    assert body["totalItems"] == 3
    assert (cached["cache"], cached["totalItems"]) == ("kv", 3)


async def test_an_isbn_search_has_its_one_item_at_index_zero() -> None:
    """startIndex 1 of an ISBN search is empty but still counts the one match."""
    system = make_system()
    with mocked():
        _, first, _ = await get(system, f"/search/auto?q={DUNE}")
        _, second, _ = await get(system, f"/search/auto?q={DUNE}&startIndex=1")
    assert (len(first["items"]), first["totalItems"]) == (1, 1)
    assert (second["items"], second["totalItems"], second["cache"]) == ([], 1, "kv")


async def test_rpc_searches_take_start_index_as_a_fifth_argument() -> None:
    """search_author(q, max, translations, lang, start_index); four arguments still work."""
    system = make_system()
    with mocked():
        page = await system.rpc(WORKER, "search_author", "Frank Herbert", 1, True, "en", 1)
        first = await system.rpc(WORKER, "search_author", "Frank Herbert", 1, True, "en")
        bad = await system.rpc(WORKER, "search_author", "Frank Herbert", 1, True, "en", -1)
    assert (page["totalItems"], first["totalItems"]) == (3, 3)
    assert page["items"] != first["items"]
    assert bad["error"]["param"] == "startIndex"


async def test_warm_isbns_does_not_ask_again_about_a_settled_not_found() -> None:
    """An ISBN with a fresh not-found entry is reported notFound without a provider call."""
    system = make_system()
    with mocked() as up:
        first = await system.rpc(WORKER, "warm_isbns", [UNKNOWN])
        before = len(up.requests)
        system.clock.advance(60)
        again = await system.rpc(WORKER, "warm_isbns", [UNKNOWN])
    assert first["notFound"] == again["notFound"] == [UNKNOWN]
    assert again["upstreamCalls"] == {"isbndb": 0, "openlibrary": 0, "google": 0}
    assert len(up.requests) == before


async def test_warm_isbns_lists_the_isbns_it_deferred() -> None:
    """ISBNs past the 20 Google look-ups per call are in `deferred` (and, for older
    callers, in `failed`): not asked, not failed."""
    system = make_system()
    nobody = {"google": set(), "isbndb": set(), "openlibrary": set()}
    bodies = [f"9798000000{n:02d}" for n in range(30)]
    isbns = [
        b + str(-sum(int(d) * (1 + 2 * (k % 2)) for k, d in enumerate(b)) % 10) for b in bodies
    ]
    with mocked(Upstream(knows=nobody)):
        report = await system.rpc(WORKER, "warm_isbns", isbns)
    assert report["notFound"] == isbns[:20]
    assert report["deferred"] == isbns[20:]
    assert [f["isbn"] for f in report["failed"]] == isbns[20:]


async def test_sweep_cache_rpc_deletes_expired_cold_entries_and_walks_on() -> None:
    """sweep_cache(max_pages): expired R2 entries go; the walk resumes from a stored cursor."""
    system = make_system()
    bucket = system.r2(WORKER, "API_CACHE_COLD")
    with mocked():
        for isbn in (DUNE, MESSIAH, CHILDREN):
            await get(system, f"/search/auto?q={isbn}")
    await bucket.put("libraries/x/source.csv", "a,b")  # the warmer's objects share the bucket
    system.clock.advance(604_800 + 1)
    report = await system.rpc(WORKER, "sweep_cache", 1)
    assert report == {"scanned": 3, "deleted": 3, "complete": True}
    assert [k for k in bucket.items if k.startswith("cache/")] == []
    assert "libraries/x/source.csv" in bucket.items
    bad = await system.rpc(WORKER, "sweep_cache", 0)
    assert bad["error"]["param"] == "maxPages"


async def test_sweep_cache_resumes_the_next_night_where_it_stopped() -> None:
    """One page per call: 1,500 expired entries take two sweeps, the cursor kept in KV."""
    system = make_system()
    bucket = system.r2(WORKER, "API_CACHE_COLD")
    expired = {"stored_at": "0", "fresh_until": "1", "expires_at": "2"}
    for n in range(1500):
        await bucket.put(f"cache/v2:isbn:isbn={n:013d}", "{}", customMetadata=expired)
    first = await system.rpc(WORKER, "sweep_cache", 1)
    assert first == {"scanned": 1000, "deleted": 1000, "complete": False}
    assert "sweep:cold-cursor" in system.kv(WORKER, "CACHE").dump()
    second = await system.rpc(WORKER, "sweep_cache", 1)
    assert second == {"scanned": 500, "deleted": 500, "complete": True}
    assert "sweep:cold-cursor" not in system.kv(WORKER, "CACHE").dump()
    assert not bucket.items
