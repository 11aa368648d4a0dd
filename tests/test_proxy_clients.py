"""Per-client limits on the proxy's public edge (proxy_app/clients.py) through the harness."""

from __future__ import annotations

import asyncio
import math
import tomllib
from pathlib import Path
from typing import cast

import pytest
from test_proxy_support import DUNE, MESSIAH, Upstream, get, make_system, mocked

from bookmeta import Request, TooManyRequests, WorkerEnv
from bookmeta._clock import FakeClock
from bookmeta._env import Clocks
from harness.isbns import isbn_series
from proxy_app.clients import (
    INTERNAL,
    LIMIT_PERIOD_S,
    MISS_LIMITS,
    REQUEST_LIMITS,
    Client,
    Gate,
    Refusals,
    Scope,
    UnknownAppKey,
    identify,
    parse_app_keys,
)

CONFIG = Path(__file__).resolve().parents[1] / "wrangler.toml.d" / "books_api_proxy.toml"
TOP = tomllib.loads(CONFIG.read_text())
LIMITS = {b["name"]: b["simple"]["limit"] for b in TOP["ratelimits"]}
APP_KEY = "app-key-0123456789"


def _request(headers: dict[str, str]) -> Request:
    return Request("GET", "https://proxy.test/search/auto?q=x", headers)


@pytest.mark.parametrize(
    ("headers", "scope"),
    [
        ({}, Scope.INTERNAL),
        ({"authorization": f"Bearer {APP_KEY}"}, Scope.INTERNAL),
        ({"cf-connecting-ip": "198.51.100.4"}, Scope.IP),
        ({"cf-connecting-ip": "198.51.100.4", "authorization": f"Bearer {APP_KEY}"}, Scope.APP),
        ({"cf-connecting-ip": "198.51.100.4", "authorization": f"bearer  {APP_KEY} "}, Scope.APP),
        ({"cf-connecting-ip": "198.51.100.4", "authorization": "Basic abc"}, Scope.IP),
    ],
    ids=["binding", "binding-with-key", "ip", "app", "app-spacing", "not-bearer"],
)
def test_identify(headers: dict[str, str], scope: Scope) -> None:
    """No CF-Connecting-IP: internal; a known bearer key: app; else the IP."""
    client = identify(_request(headers), (APP_KEY,))
    assert client.scope is scope
    assert APP_KEY not in client.key  # counted under a digest, never the key itself


def test_unknown_app_key_is_refused_not_demoted() -> None:
    """A public request with a bearer token that is no app key is an error, not an IP client."""
    with pytest.raises(UnknownAppKey):
        identify(_request({"cf-connecting-ip": "1.2.3.4", "authorization": "Bearer nope"}), ())


def test_parse_app_keys() -> None:
    """Comma-separated, blanks dropped."""
    assert parse_app_keys(" a, ,b ,") == ("a", "b")
    assert parse_app_keys(None) == ()


@pytest.mark.parametrize("env", [None, "staging", "production", "fixtures"])
def test_every_environment_binds_the_four_limits(env: str | None) -> None:
    """Each environment repeats the four limits, 60 s periods, its own namespace ids;
    misses are limited tighter than requests, apps higher than IPs."""
    section = TOP if env is None else TOP["env"][env]
    limits = {b["name"]: b for b in section["ratelimits"]}
    assert set(limits) == set(REQUEST_LIMITS.values()) | set(MISS_LIMITS.values())
    assert all(b["simple"]["period"] == LIMIT_PERIOD_S for b in limits.values())
    numbers = {b["name"]: b["simple"]["limit"] for b in limits.values()}
    assert numbers["LIMIT_IP_MISSES"] < numbers["LIMIT_IP_REQUESTS"]
    assert numbers["LIMIT_APP_MISSES"] < numbers["LIMIT_APP_REQUESTS"]
    assert numbers["LIMIT_IP_MISSES"] < numbers["LIMIT_APP_MISSES"]
    ids = [b["namespace_id"] for b in limits.values()]
    assert len(set(ids)) == 4
    if env is not None:
        assert not set(ids) & {b["namespace_id"] for b in TOP["ratelimits"]}


def _window_left(now: float) -> str:
    """The Retry-After of a refusal at ``now``: whole seconds to the end of its window."""
    return str(max(1, math.ceil((now // LIMIT_PERIOD_S + 1) * LIMIT_PERIOD_S - now)))


def _distinct_isbns(n: int) -> list[str]:
    """n valid ISBN-13s nobody knows (each one a cache miss)."""
    return isbn_series("978", n)


async def test_misses_past_the_ip_limit_get_429_before_any_upstream_call() -> None:
    """One IP: misses up to LIMIT_IP_MISSES are answered; the next is a 429 with Retry-After and
    costs no upstream call; a cached answer is still served; the next period admits again."""
    limit = LIMITS["LIMIT_IP_MISSES"]
    system = make_system()
    isbns = _distinct_isbns(limit + 2)
    with mocked() as up:
        status, _, _ = await get(system, f"/search/auto?q={DUNE}")
        assert status == 200
        for isbn in isbns[: limit - 1]:
            status, _, _ = await get(system, f"/search/auto?q={isbn}")
            assert status == 200
        calls = len(up.requests)
        status, body, headers = await get(system, f"/search/auto?q={isbns[-1]}")
        assert status == 429
        assert body["error"]["code"] == "too_many_requests"
        assert body["error"]["limit"] == "ip cache misses"
        assert headers["retry-after"] == _window_left(system.clock())
        assert len(up.requests) == calls, "a refused miss must not reach any provider"
        counter = system.rate_limits[str(_namespace("LIMIT_IP_MISSES"))]
        asked = len(counter.calls)
        status, _, _ = await get(system, f"/search/auto?q={isbns[-3]}")
        assert status == 429
        assert len(counter.calls) == asked, "refused from memory: the binding is not asked"
        status, hit, _ = await get(system, f"/search/auto?q={DUNE}")
        assert (status, hit["cache"]) == (200, "kv")
        other, _, _ = await get(
            system, f"/search/auto?q={isbns[-1]}", headers={"cf-connecting-ip": "198.51.100.9"}
        )
        assert other == 200, "another IP has its own count"
        system.clock.advance(LIMIT_PERIOD_S)
        status, _, _ = await get(system, f"/search/auto?q={isbns[-2]}")
        assert status == 200


async def test_requests_past_the_ip_limit_get_429_even_for_hits() -> None:
    """Hits count against the (looser) request limit."""
    limit = LIMITS["LIMIT_IP_REQUESTS"]
    system = make_system()
    with mocked():
        statuses = [(await get(system, f"/search/auto?q={DUNE}"))[0] for _ in range(limit + 1)]
    assert statuses[:limit] == [200] * limit
    assert statuses[limit] == 429


async def test_app_keys_have_their_own_higher_limit() -> None:
    """A known app key is counted apart from its IP, with LIMIT_APP_MISSES; an unknown one: 401."""
    system = make_system(secrets={"ISBNDB_API_KEY": "k", "PROXY_APP_KEYS": f"other,{APP_KEY}"})
    isbns = _distinct_isbns(LIMITS["LIMIT_IP_MISSES"] + 5)
    auth = {"authorization": f"Bearer {APP_KEY}"}
    with mocked():
        statuses = [(await get(system, f"/search/isbn?isbn={i}", headers=auth))[0] for i in isbns]
        bad, body, _ = await get(
            system, f"/search/auto?q={DUNE}", headers={"authorization": "Bearer x"}
        )
    assert statuses == [200] * len(isbns)
    assert bad == 401
    assert body["error"]["code"] == "invalid_app_key"
    assert LIMITS["LIMIT_APP_MISSES"] > LIMITS["LIMIT_IP_MISSES"]


async def test_binding_and_rpc_calls_are_never_limited() -> None:
    """Calls without CF-Connecting-IP (service bindings) and RPC calls pass any number of times."""
    limit = LIMITS["LIMIT_IP_MISSES"]
    system = make_system()
    isbns = _distinct_isbns(limit + 3)
    with mocked():
        for isbn in isbns:
            status, _, _ = await get(
                system, f"/search/auto?q={isbn}", headers={"cf-connecting-ip": None}
            )
            assert status == 200
            result = await system.rpc("books_api_proxy", "search_isbn", isbn)
            assert "error" not in result
    assert INTERNAL.limited is False


async def test_a_limited_leader_does_not_refuse_the_joiners() -> None:
    """Two clients miss the same key at once; the first is over its limit: the second, which
    joined the first one's load, runs its own and is answered."""
    limit = LIMITS["LIMIT_IP_MISSES"]
    system = make_system()
    with mocked(Upstream(yield_first=True)) as up:
        for isbn in _distinct_isbns(limit):
            await get(system, f"/search/auto?q={isbn}")
        limited, fresh = await asyncio.gather(
            get(system, f"/search/auto?q={MESSIAH}"),
            get(system, f"/search/auto?q={MESSIAH}", headers={"cf-connecting-ip": "192.0.2.1"}),
        )
    assert limited[0] == 429
    assert fresh[0] == 200
    assert fresh[1]["items"]
    assert len([r for r in up.calls("google") if MESSIAH in str(r.url)]) == 1


async def test_health_and_metrics_polls_are_not_counted() -> None:
    """Monitors poll /health and /metrics: they cost no upstream call and are never limited."""
    system = make_system()
    statuses = {
        (await get(system, path))[0]
        for path in ["/health", "/metrics"] * (LIMITS["LIMIT_IP_REQUESTS"] // 2 + 5)
    }
    assert statuses == {200}
    with mocked():
        status, _, _ = await get(system, f"/search/auto?q={DUNE}")
    assert status == 200, "the polls left the search allowance untouched"


async def test_a_refused_client_is_remembered_until_its_window_ends() -> None:
    """Past its request limit, a client's further requests in the same window are refused by the
    isolate alone: no binding call, no cache read, Retry-After counting down to the window's end;
    the next window counts it again."""
    limit = LIMITS["LIMIT_IP_REQUESTS"]
    system = make_system()
    counter = system.rate_limits[str(_namespace("LIMIT_IP_REQUESTS"))]
    kv = system.kv("books_api_proxy", "CACHE")
    with mocked():
        statuses = [(await get(system, f"/search/auto?q={DUNE}"))[0] for _ in range(limit + 1)]
        assert statuses[-2:] == [200, 429]
        calls, reads = len(counter.calls), kv.ops.get("get", 0)
        for _ in range(50):
            status, body, headers = await get(system, f"/search/auto?q={DUNE}")
            assert (status, body["error"]["limit"]) == (429, "ip requests")
        system.clock.advance(7)
        _, _, headers = await get(system, f"/search/auto?q={DUNE}")
        assert headers["retry-after"] == _window_left(system.clock())
        assert (len(counter.calls), kv.ops.get("get", 0)) == (calls, reads)
        _, metrics, _ = await get(system, "/metrics")
        assert metrics["counters"]["limited.remembered"] == 51
        other, _, _ = await get(
            system, f"/search/auto?q={DUNE}", headers={"cf-connecting-ip": "192.0.2.7"}
        )
        assert other == 200, "another client is not refused with it"
        system.clock.advance(int(headers["retry-after"]))
        status, _, _ = await get(system, f"/search/auto?q={DUNE}")
    assert status == 200
    assert len(counter.calls) == calls + 2, "counted again in the next window"


def _namespace(binding: str) -> str:
    return next(b["namespace_id"] for b in TOP["ratelimits"] if b["name"] == binding)


def test_refusals_end_with_their_window_and_stay_bounded() -> None:
    """A refusal lasts to the end of the window it happened in; past ``max_entries`` the expired
    go first, then the oldest."""
    refusals = Refusals(period_s=60, max_entries=3)
    assert refusals.remember("L", "a", now=125.0) == 180.0
    assert refusals.until("L", "a", 179.9) == 180.0
    assert refusals.until("M", "a", 130.0) is None, "per binding"
    assert refusals.until("L", "a", 180.0) is None
    assert len(refusals) == 0
    for i, key in enumerate("abc"):
        refusals.remember("L", key, now=200.0 + i)
    refusals.remember("L", "d", now=203.0)
    assert len(refusals) == 3
    assert refusals.until("L", "a", 204.0) is None, "the oldest was forgotten"
    assert refusals.until("L", "d", 204.0) == 240.0
    refusals.remember("L", "e", now=250.0)  # b, c and d have expired: all go
    assert len(refusals) == 1
    refusals.remember("L", "e", now=251.0)
    refusals.remember("L", "f", now=252.0)
    assert len(refusals) == 2, "a client refused again is not a new entry"


class _SlowRefusal:
    """An env whose Rate Limiting binding refuses, answering 10 s after it was asked."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.clocks = Clocks(wall=clock, monotonic=clock, sleep=clock.sleep)

    def rate_limit(self, name: str) -> _SlowRefusal:
        return self

    async def allow(self, key: str) -> bool:
        self.clock.advance(10)
        return False


async def test_a_refusal_closes_the_window_it_was_asked_in_not_the_next() -> None:
    """Asked at :55, refused at :05 of the next minute: the client is free again at once (that
    next window was never refused), not a whole minute later."""
    env = _SlowRefusal(FakeClock(55.0))
    refusals = Refusals()
    gate = Gate(cast(WorkerEnv, env), Client(Scope.IP, "ip:192.0.2.1"), refusals)
    with pytest.raises(TooManyRequests):
        await gate.admit_request()
    assert env.clock() == 65.0
    assert refusals.until(REQUEST_LIMITS["ip"], "ip:192.0.2.1", env.clock()) is None
