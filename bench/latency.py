"""Cache-hit latency of /search/auto through the in-process harness, against a bare KV read.

Both sides run the same way: a fresh `Default(ctx, env)` per request, `fetch(request)` on a
stub runtime request, over the same KV fake. The bare handler only reads the cached value
and returns it, so the ratio is what routing, validation, the cache envelope and response
shaping cost on a hit.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any
from urllib.parse import quote

from workers import Request, Response, WorkerEntrypoint

from bench import upstream
from bookmeta import classify, isbn_key, search_key, use_clocks
from harness import FakeContext, System

REQUESTS = 2000


def _percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


async def _time(make_entry: Any, url: str) -> dict[str, float]:
    samples = []
    started = time.perf_counter()
    for _ in range(REQUESTS):
        t0 = time.perf_counter()
        resp = await make_entry().fetch(Request(url))
        await resp.bytes()
        samples.append((time.perf_counter() - t0) * 1000.0)
    wall = time.perf_counter() - started
    return {
        "p50_ms": round(statistics.median(samples), 4),
        "p99_ms": round(_percentile(samples, 99), 4),
        "rps": round(REQUESTS / wall, 1),
    }


async def measure() -> dict[str, Any]:
    """Hit latency for the ISBN and author forms, and the bare-read floor for each."""
    books = upstream.catalogue_from_csv(_tiny_library())
    out: dict[str, Any] = {}
    with upstream.serve(books) as base:
        system = System(secrets={"ISBNDB_API_KEY": "bench-key"}, vars=upstream.upstream_vars(base))
        isbn = books[0]["isbn13"]
        author = books[0]["authors"][0]
        forms = {
            "isbn": f"/search/auto?q={isbn}&maxResults=1",
            "author": f"/search/auto?q={quote(author)}&maxResults=40&includeTranslations=false",
        }
        module = system.module("books_api_proxy")
        env = system.envs["books_api_proxy"]
        kv = system.kv("books_api_proxy", "CACHE")
        reads = {"isbn": [isbn_key(isbn)], "author": _search_reads(author, 40)}
        for name, path in forms.items():
            before = set(kv.items)
            first = await system.fetch("books_api_proxy", path)
            assert first.status == 200, await first.text()
            hit = await system.fetch("books_api_proxy", path)
            assert hit.headers.get("x-cache") == "kv", hit.headers.get("x-cache")
            key = _key_for(kv, before, reads[name])
            url = f"https://books-api-proxy.test{path}"

            class Bare(WorkerEntrypoint):
                async def fetch(self, request: Any, _key: str = key) -> Any:
                    value = await self.env.CACHE.get(_key)
                    return Response(value, headers={"content-type": "application/json"})

            with use_clocks(system.clocks):
                ours = await _time(lambda: module.Default(FakeContext(), env), url)
                bare = await _time(lambda: Bare(FakeContext(), env), url)
            out[name] = {
                "ours": ours,
                "bare_kv_read": bare,
                "p50_ratio": round(ours["p50_ms"] / bare["p50_ms"], 2),
                "p99_ratio": round(ours["p99_ms"] / bare["p99_ms"], 2),
            }
    return out


def _search_reads(q: str, max_results: int) -> list[str]:
    """The key ``/search/auto`` reads for a non-ISBN ``q`` without ``langRestrict`` and with
    ``includeTranslations=false``: its kind's (an unprefixed name is a text search whose page
    may hold the author search it was promoted to)."""
    kind = classify(q).kind
    return [search_key(kind.value, q, max_results=max_results, lang="en", translations=False)]


def _key_for(kv: Any, before: set[str], reads: list[str]) -> str:
    """The key whose entry answers the form: the last of ``reads`` (the keys the proxy reads
    for it, in order) that the form's first (miss) request wrote."""
    written = [k for k in reads if k in kv.items and k not in before]
    if not written:
        raise LookupError(f"the first request wrote none of {reads}")
    return written[-1]


async def single_flight(concurrency: int = 100) -> dict[str, Any]:
    """Concurrent identical misses for one ISBN: how many upstream calls they cost."""
    books = upstream.catalogue_from_csv(_tiny_library())
    isbn = next(b["isbn13"] for b in books if set(b["providers"]) >= {"isbndb", "google"})
    with upstream.serve(books) as base:
        system = System(secrets={"ISBNDB_API_KEY": "bench-key"}, vars=upstream.upstream_vars(base))
        upstream.control(base, "/__faults", {"google": {"delay_ms": 50}})
        module = system.module("books_api_proxy")
        env = system.envs["books_api_proxy"]
        url = f"https://books-api-proxy.test/search/auto?q={isbn}&maxResults=1"

        async def one() -> int:
            resp = await module.Default(FakeContext(), env).fetch(Request(url))
            return int(resp.status)

        with use_clocks(system.clocks):
            statuses = await asyncio.gather(*(one() for _ in range(concurrency)))
        calls = upstream.control(base, "/__calls")["counts"]
    return {
        "concurrent_requests": concurrency,
        "ok": sum(1 for s in statuses if s == 200),
        "upstream_calls": calls,
        "upstream_calls_total": sum(calls.values()),
    }


def _tiny_library() -> str:
    from bench.library_gen import goodreads_export

    return goodreads_export(40, isbn_share=1.0, authors=10)
