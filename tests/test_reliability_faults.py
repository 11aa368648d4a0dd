"""Faults per provider and per binding: the right status, breakers, stale data, deadlines.

Providers (ISBNdb upstream, Google Books, Open Library) fail with 500 storms, timeouts, 429s,
malformed or truncated JSON and slow answers; bindings (proxy -> ISBNDB_WORKER, warmer ->
BOOKS_API_PROXY and ISBNDB_WORKER) raise, answer 500 or garbage. Nothing escapes the harness
and no answer is the JSON 500 ``internal_error``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import respx
from test_isbndb_support import DUNE13, fixture, mock_isbndb, upstream_calls
from test_isbndb_support import WORKER as ISBNDB
from test_isbndb_support import get as isbndb_get
from test_isbndb_support import make_system as isbndb_system
from test_proxy_support import (
    CHILDREN,
    DUNE,
    ISBNDB_HOST,
    MESSIAH,
    WORKER,
    Upstream,
    get,
    make_system,
    mocked,
)
from test_warmer_support import AUTH, WARMER, get_json, tick, unknown_isbns, upload
from test_warmer_support import make_system as warmer_system
from test_warmer_support import mock_upstreams as warmer_upstreams
from workers import FetchResponse
from workers import Response as RuntimeResponse

from harness import System
from isbndb_app.config import RETRY_ATTEMPTS, RETRY_DEADLINE_S, TIMEOUT_S

OTHER_ISBNS = unknown_isbns(3)  # valid ISBN-13s nobody knows

Fault = Callable[[httpx.Request], Awaitable[httpx.Response]]
HOSTS = {"google": "www.googleapis.com", "openlibrary": "openlibrary.org", "isbndb": ISBNDB_HOST}
PROVIDERS = ["google", "isbndb", "openlibrary"]
SLOW_TIMEOUT_MS = "50"  # the proxy's provider timeout while a provider is slow (real time)
_DONOR = Upstream()


def _donor(provider: str) -> Callable[[httpx.Request], Awaitable[httpx.Response]]:
    handler: Callable[[httpx.Request], Awaitable[httpx.Response]] = getattr(_DONOR, provider)
    return handler


async def storm_500(request: httpx.Request) -> httpx.Response:
    return httpx.Response(500, json={"error": "internal"})


async def read_timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("read timed out", request=request)


async def connect_timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectTimeout("connect timed out", request=request)


async def too_many_requests(request: httpx.Request) -> httpx.Response:
    return httpx.Response(429, headers={"retry-after": "7"}, json={"error": "slow down"})


async def malformed_json(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        200, content=b'{"items": [{"id": oops}', headers={"content-type": "application/json"}
    )


async def truncated_body(request: httpx.Request) -> httpx.Response:
    provider = next(p for p, host in HOSTS.items() if host == request.url.host)
    whole = await _donor(provider)(request)
    cut = whole.content[: len(whole.content) // 2]
    return httpx.Response(200, content=cut, headers={"content-type": "application/json"})


async def very_slow(request: httpx.Request) -> httpx.Response:
    await asyncio.sleep(2.0)  # real time, far past SLOW_TIMEOUT_MS: the caller gives up first
    provider = next(p for p, host in HOSTS.items() if host == request.url.host)
    return await _donor(provider)(request)


FAULTS = [
    pytest.param(storm_500, id="500-storm"),
    pytest.param(read_timeout, id="read-timeout"),
    pytest.param(connect_timeout, id="connect-timeout"),
    pytest.param(too_many_requests, id="429-retry-after"),
    pytest.param(malformed_json, id="malformed-json"),
    pytest.param(truncated_body, id="truncated-body"),
    pytest.param(very_slow, id="very-slow"),
]


def proxy_system(fault: Fault) -> System:
    """The system; a slow fault shortens the proxy's provider timeout so tests stay fast."""
    if fault is very_slow:
        return make_system(vars={WORKER: {"PROVIDER_TIMEOUT_MS": SLOW_TIMEOUT_MS}})
    return make_system()


@contextmanager
def faulty(failing: dict[str, Fault], up: Upstream | None = None) -> Iterator[Upstream]:
    """Providers in ``failing`` answer with their fault, the others from ``up``; all recorded."""
    up = up or Upstream()

    def route(provider: str) -> Callable[[httpx.Request], Awaitable[httpx.Response]]:
        async def handler(request: httpx.Request) -> httpx.Response:
            fault = failing.get(provider)  # looked up per request: tests heal providers
            if fault is None:
                healthy: Callable[[httpx.Request], Awaitable[httpx.Response]]
                healthy = getattr(up, provider)
                return await healthy(request)
            up.requests.append(request)
            return await fault(request)

        return handler

    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        for provider, host in HOSTS.items():
            router.route(host=host).mock(side_effect=route(provider))
        yield up


def assert_no_crash(status: int, body: Any) -> None:
    """Never the JSON 500 of an unhandled exception."""
    assert status != 500
    if isinstance(body, dict) and "error" in body:
        assert body["error"]["code"] != "internal_error"


# -- one provider failing: the others answer ----------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("fault", FAULTS)
async def test_one_failing_provider_gives_a_partial_200(provider: str, fault: Fault) -> None:
    """The other two providers answer: 200 with failedProviders naming only the failing one."""
    system = proxy_system(fault)
    started = time.monotonic()
    with faulty({provider: fault}) as up:
        status, body, _ = await get(system, f"/search/isbn?isbn={DUNE}")
    assert_no_crash(status, body)
    assert status == 200
    assert body["failedProviders"] == [provider]
    [item] = body["items"]
    assert item["volumeInfo"]["title"] == "Dune"
    assert provider not in item["providers"]
    # bounded: the proxy calls Google and Open Library once, ISBNdb at most RETRY_ATTEMPTS times
    assert len(up.calls(provider)) <= (RETRY_ATTEMPTS if provider == "isbndb" else 1)
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize("fault", FAULTS)
async def test_every_provider_failing_without_cache_is_503_with_retry_after(fault: Fault) -> None:
    """Nothing can answer: 503 upstream_unavailable naming every provider, with Retry-After."""
    system = proxy_system(fault)
    with faulty(dict.fromkeys(PROVIDERS, fault)):
        status, body, headers = await get(system, f"/search/isbn?isbn={DUNE}")
    assert status == 503
    assert body["error"]["code"] == "upstream_unavailable"
    assert sorted(body["error"]["providers"]) == PROVIDERS
    assert int(headers["retry-after"]) >= 1


@pytest.mark.parametrize("fault", FAULTS)
async def test_stale_entry_is_served_when_every_provider_fails(fault: Fault) -> None:
    """Cached, then past the hot TTL, then every provider fails: the old answer, cache=stale."""
    system = proxy_system(fault)
    with mocked():
        status, fresh, _ = await get(system, f"/search/auto?q={DUNE}")
    assert (status, fresh["cache"]) == (200, "miss")
    system.clock.advance(3601)
    with faulty(dict.fromkeys(PROVIDERS, fault)) as up:
        status, body, headers = await get(system, f"/search/auto?q={DUNE}")
        after_first = len(up.requests)
        system.clock.advance(604_800)  # past the cold TTL too: still better than a 503
        again, old, _ = await get(system, f"/search/auto?q={DUNE}")
    assert (status, body["cache"], headers["x-cache"]) == (200, "stale", "stale")
    assert body["items"] == fresh["items"]
    assert after_first > 0, "the background refresh tried (and failed quietly)"
    assert (again, old["cache"]) == (200, "stale")
    assert old["items"] == fresh["items"]


# -- breakers: fail fast after the threshold, recover through half-open ----------------------


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(storm_500, id="500-storm"),
        pytest.param(read_timeout, id="read-timeout"),
        pytest.param(malformed_json, id="malformed-json"),
    ],
)
async def test_breaker_opens_after_three_failures_and_recovers(provider: str, fault: Fault) -> None:
    """Three failing requests open the provider's breaker; 31 s later one probe closes it."""
    system = make_system()
    failing: dict[str, Fault] = {provider: fault}
    # Distinct ISBNs: a repeat would be answered by the brief partial entry, not a provider.
    with faulty(failing) as up:
        for isbn in (DUNE, MESSIAH, CHILDREN):
            status, body, _ = await get(system, f"/search/isbn?isbn={isbn}")
            assert (status, body["failedProviders"]) == (200, [provider])
        _, health, _ = await get(system, "/health")
        assert health["breakers"][provider]["state"] == "open"
        calls = len(up.calls(provider))
        for isbn in OTHER_ISBNS:
            status, body, _ = await get(system, f"/search/isbn?isbn={isbn}")
            assert (status, body["failedProviders"]) == (200, [provider])
        assert len(up.calls(provider)) == calls, "an open breaker fails fast"
        failing.clear()  # the provider recovers
        system.clock.advance(61)  # past the breaker's 30 s and the partial entry's 60 s
        status, body, _ = await get(system, f"/search/isbn?isbn={DUNE}")
        assert len(up.calls(provider)) == calls + 1, "exactly one half-open probe"
        _, health, _ = await get(system, "/health")
    assert status == 200
    assert "failedProviders" not in body
    assert health["breakers"][provider]["state"] == "closed"


# -- the isbndb worker against ISBNdb itself ------------------------------------------------


ISBNDB_FAULTS = [
    pytest.param(storm_500, 502, "upstream_error", id="500-storm"),
    pytest.param(read_timeout, 502, "upstream_error", id="read-timeout"),
    pytest.param(connect_timeout, 502, "upstream_error", id="connect-timeout"),
    pytest.param(too_many_requests, 503, "rate_limited", id="429-retry-after"),
    pytest.param(malformed_json, 502, "upstream_error", id="malformed-json"),
    pytest.param(truncated_body, 502, "upstream_error", id="truncated-body"),
]


def _isbndb_fault(fault: Fault) -> Fault:
    """The fault, with truncated bodies cut from a real ISBNdb book answer."""
    if fault is not truncated_body:
        return fault

    async def cut(request: httpx.Request) -> httpx.Response:
        whole = json.dumps(fixture("book")).encode()
        return httpx.Response(200, content=whole[: len(whole) // 2])

    return cut


@pytest.mark.parametrize(("fault", "status", "code"), ISBNDB_FAULTS)
async def test_isbndb_worker_maps_upstream_faults_and_bounds_retries(
    fault: Fault, status: int, code: str
) -> None:
    """Each fault is a 502/503 JSON error after RETRY_ATTEMPTS calls, within the deadline."""
    system = isbndb_system()
    start = system.clock()
    with mock_isbndb() as isbndb:
        isbndb.get(f"/book/{DUNE13}").mock(side_effect=_isbndb_fault(fault))
        got, body, headers = await isbndb_get(system, f"/book/{DUNE13}")
        rpc = await system.rpc(ISBNDB, "book", DUNE13)
    assert_no_crash(got, body)
    assert (got, body["error"]["code"]) == (status, code)
    assert len(upstream_calls(isbndb)) == 2 * RETRY_ATTEMPTS
    assert system.clock() - start <= 2 * RETRY_DEADLINE_S
    assert rpc["error"]["status"] == status
    if fault is too_many_requests:
        assert int(headers["retry-after"]) >= 1
        assert rpc["error"]["retryAfter"] >= 1
        assert 5.0 in system.clock.sleeps, "Retry-After 7 s is honoured, capped at 5 s"


async def test_isbndb_worker_breaker_opens_and_recovers_through_half_open() -> None:
    """Three failed look-ups open ISBNdb's breaker (503 + Retry-After, no call); 31 s heal it."""
    system = isbndb_system()
    with mock_isbndb() as isbndb:
        route = isbndb.get(f"/book/{DUNE13}").mock(side_effect=storm_500)
        for _ in range(3):
            status, _, _ = await isbndb_get(system, f"/book/{DUNE13}")
            assert status == 502
        calls = len(upstream_calls(isbndb))
        status, body, headers = await isbndb_get(system, f"/book/{DUNE13}")
        assert (status, body["error"]["code"]) == (503, "upstream_unavailable")
        assert int(headers["retry-after"]) >= 1
        assert len(upstream_calls(isbndb)) == calls
        route.mock(side_effect=None, return_value=httpx.Response(200, json=fixture("book")))
        system.clock.advance(31)
        status, body, _ = await isbndb_get(system, f"/book/{DUNE13}")
        _, health, _ = await isbndb_get(system, "/health")
    assert status == 200
    assert len(upstream_calls(isbndb)) == calls + 1
    assert health["breaker"]["state"] == "closed"


async def test_slow_failing_isbndb_stops_retrying_at_the_deadline() -> None:
    """Each attempt takes 5 s (fake clock) then fails: the retries stop within the deadline."""
    system = isbndb_system()

    async def slow_500(request: httpx.Request) -> httpx.Response:
        await system.clock.sleep(5.0)
        return httpx.Response(503, text="busy")

    start = system.clock()
    with mock_isbndb() as isbndb:
        isbndb.get(f"/book/{DUNE13}").mock(side_effect=slow_500)
        status, body, _ = await isbndb_get(system, f"/book/{DUNE13}")
    assert (status, body["error"]["code"]) == (502, "upstream_error")
    assert len(upstream_calls(isbndb)) <= RETRY_ATTEMPTS
    assert system.clock() - start <= RETRY_DEADLINE_S + TIMEOUT_S


# -- bindings -----------------------------------------------------------------------------------


class FaultyBinding:
    """Wraps a service binding; while ``mode`` is set, fetch and RPC calls misbehave."""

    def __init__(self, inner: Any, mode: str | None) -> None:
        self._inner = inner
        self.mode = mode
        self.calls = 0

    async def _misbehave(self, url: str | None) -> Any:
        if self.mode == "raise":
            raise RuntimeError("Error: Network connection lost.")
        if self.mode == "hang":
            await asyncio.sleep(2.0)
        if self.mode == "500":
            if url is None:
                error = {"code": "internal_error", "message": "boom", "status": 500}
                return {"error": {**error, "retryAfter": None}}
            raw = RuntimeResponse(
                '{"error":{"code":"crashed","message":"boom"}}',
                status=500,
                headers={"content-type": "application/json"},
            )
            return FetchResponse(raw._body, raw.status, raw.headers, url)
        if url is None:
            return "<html>garbage</html>"
        raw = RuntimeResponse("<html>garbage</html>", status=200)
        return FetchResponse(raw._body, raw.status, raw.headers, url)

    async def fetch(self, resource: Any, **options: Any) -> Any:
        self.calls += 1
        if self.mode is not None:
            return await self._misbehave(str(resource))
        return await self._inner.fetch(resource, **options)

    def __getattr__(self, method: str) -> Any:
        async def rpc(*args: Any) -> Any:
            self.calls += 1
            if self.mode is not None:
                return await self._misbehave(None)
            return await getattr(self._inner, method)(*args)

        return rpc


def wrap(system: System, worker: str, binding: str, mode: str | None) -> FaultyBinding:
    """Replace ``worker``'s ``binding`` with a FaultyBinding around it."""
    env = system.envs[worker]
    wrapper = FaultyBinding(getattr(env, binding), mode)
    setattr(env, binding, wrapper)
    return wrapper


BINDING_MODES = ["raise", "500", "garbage", "hang"]


@pytest.mark.parametrize("mode", BINDING_MODES)
async def test_proxy_survives_a_failing_isbndb_binding_and_its_breaker_opens(mode: str) -> None:
    """proxy -> ISBNDB_WORKER misbehaving: partial 200s, then fail fast, then a probe heals."""
    system = make_system(vars={WORKER: {"PROVIDER_TIMEOUT_MS": SLOW_TIMEOUT_MS}})
    binding = wrap(system, WORKER, "ISBNDB_WORKER", mode)
    with mocked():
        for isbn in (DUNE, MESSIAH, CHILDREN):
            status, body, _ = await get(system, f"/search/isbn?isbn={isbn}")
            assert_no_crash(status, body)
            assert (status, body["failedProviders"]) == (200, ["isbndb"])
        assert binding.calls == 3
        status, body, _ = await get(system, f"/search/isbn?isbn={OTHER_ISBNS[0]}")
        assert (status, body["failedProviders"]) == (200, ["isbndb"])
        assert binding.calls == 3, "the open breaker keeps the binding quiet"
        binding.mode = None
        system.clock.advance(61)  # past the breaker's 30 s and the partial entry's 60 s
        status, body, _ = await get(system, f"/search/isbn?isbn={DUNE}")
        rpc = await system.rpc(WORKER, "search_isbn", DUNE)
    assert status == 200
    assert "isbndb" in body["items"][0]["providers"]
    assert binding.calls == 4
    assert rpc["items"][0]["volumeInfo"]["title"] == "Dune"


@pytest.mark.parametrize("mode", ["raise", "500", "garbage"])
async def test_warmer_debug_forward_over_a_failing_binding_is_a_json_error(mode: str) -> None:
    """The debug pass-through answers a failing binding with a 5xx JSON error, not a crash."""
    system = warmer_system()
    wrap(system, WARMER, "BOOKS_API_PROXY", mode)
    wrap(system, WARMER, "ISBNDB_WORKER", mode)
    for path in ("/debug/proxy/health", "/debug/isbndb/health"):
        resp = await system.fetch(WARMER, path, headers=AUTH)
        text = await resp.text()
        if mode == "garbage":
            assert (resp.status, text) == (200, "<html>garbage</html>")  # passed through
        elif mode == "500":
            assert resp.status == 500  # the target's own answer, passed through as received
            assert json.loads(text)["error"]["code"] == "crashed"
        else:
            assert resp.status == 502
            assert json.loads(text)["error"]["code"] == "upstream_error"
    rpc = await system.fetch(WARMER, "/debug/rpc/proxy/health", method="POST", headers=AUTH)
    body = json.loads(await rpc.text())
    assert_no_crash(rpc.status, body)
    if mode == "raise":
        assert (rpc.status, body["error"]["code"]) == (502, "upstream_error")
    else:
        assert rpc.status == 200  # the RPC result (an error dict or garbage) is relayed


@pytest.mark.parametrize("binding", ["BOOKS_API_PROXY", "ISBNDB_WORKER"])
@pytest.mark.parametrize("mode", ["raise", "500", "garbage"])
async def test_warmer_cron_survives_failing_bindings_and_resumes(binding: str, mode: str) -> None:
    """A misbehaving binding never escapes the cron; once it heals the job completes."""
    system = warmer_system()
    with warmer_upstreams():
        status, summary = await upload(system, LIBRARY)
        assert status == 201
        wrapper = wrap(system, WARMER, binding, mode)
        await tick(system)
        _, progress = await get_json(system, f"/libraries/{summary['id']}")
        assert progress["done"] + progress["failed"] + progress["remaining"] == progress["total"]
        if binding == "BOOKS_API_PROXY":
            assert progress["lastRun"]["stoppedBy"] == "transient_error"
            assert progress["done"] == 0
        wrapper.mode = None
        for _ in range(6):
            await tick(system)
        _, progress = await get_json(system, f"/libraries/{summary['id']}")
    assert progress["status"] == "done"
    assert progress["done"] + progress["failed"] == progress["total"]
    assert progress["failed"] == 0, progress["failures"]


LIBRARY = (
    b"title,author,isbn13\nDune,Frank Herbert,9780441013593\nMessiah,Frank Herbert,9780593098233\n"
)
