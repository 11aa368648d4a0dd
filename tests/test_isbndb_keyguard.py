"""The key guard through the harness: one Durable Object per key spaces every ISBNdb call of
every isolate, keeps the daily quota and the warming reserve, and stays off cached answers."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from test_isbndb_support import (
    DUNE13,
    KEY,
    MESSIAH13,
    WORKER,
    book_json,
    get,
    make_system,
    mock_isbndb,
)

from bookmeta import PURPOSE_HEADER, Clocks, FakeClock, Purpose
from bookmeta.runtime import RuntimeEnv, SqlBinding
from harness import FakeContext, FakeSqlStorage, System
from harness.durable import new_database
from harness.isbns import isbn13
from harness.system import FakeEnv
from isbndb_app import KeyGuardObject
from isbndb_app.config import SLOT_MAX_WAIT_S
from isbndb_app.keyguard import guard_name
from isbndb_app.policy import SLOT_SPACING_S, next_utc_midnight

NAMESPACE = "isbndb-biography-worker-production:IsbndbKeyGuard"


def isbn(n: int) -> str:
    """The n-th valid ISBN-13 of a test series (check digit computed)."""
    return isbn13(f"978100{n:06d}")


def stamping(times: list[float], clock: Callable[[], float]) -> Callable[..., httpx.Response]:
    """An ISBNdb /book answer that records when (on the fake clock) each call arrived."""

    def side_effect(request: httpx.Request) -> httpx.Response:
        times.append(clock())
        return httpx.Response(200, json={"book": book_json(request.url.path.rsplit("/", 1)[1])})

    return side_effect


def takes(system: System) -> int:
    """Slots asked of the guard object so far."""
    return sum(1 for c in system.objects.calls if c.method == "take")


def warm() -> dict[str, str]:
    """The header warming callers send."""
    return {PURPOSE_HEADER: "warm"}


# -- spacing -------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [1, 3])
async def test_calls_never_exceed_the_rate_in_any_second(rate: int) -> None:
    """Back-to-back look-ups go upstream no more than ISBNDB_RATE_PER_S per 1-second window."""
    system = make_system(worker_vars={"ISBNDB_RATE_PER_S": str(rate)})
    times: list[float] = []
    with mock_isbndb() as isbndb:
        isbndb.get(path__startswith="/book/").mock(side_effect=stamping(times, system.clock))
        for n in range(7):
            status, _, _ = await get(system, f"/book/{isbn(n)}", headers=warm())
            assert status == 200
    assert len(times) == 7
    for i, t in enumerate(times):
        assert sum(1 for u in times[i:] if u < t + 1.0) <= rate
    assert times[rate] - times[0] == pytest.approx(SLOT_SPACING_S)


@pytest.mark.parametrize("serialized", [True, False], ids=["call-gate", "interleaving"])
async def test_the_rate_holds_across_isolates(serialized: bool) -> None:
    """Two sets of isolates calling at once share one guard: calls stay a slot apart, also
    when the object lets calls interleave wherever it awaits (its take never awaits)."""
    first = make_system()
    first.objects.serialize_calls = serialized
    second = first.sibling()
    times: list[float] = []
    with mock_isbndb() as isbndb:
        isbndb.get(path__startswith="/book/").mock(side_effect=stamping(times, first.clock))
        results = await asyncio.gather(
            *(
                get(s, f"/book/{isbn(n)}", headers=warm())
                for n, s in zip(range(6), itertools.cycle([first, second]), strict=False)
            )
        )
    statuses = [status for status, _, _ in results]
    assert statuses.count(200) == len(times) >= 2
    assert set(statuses) <= {200, 503}  # the rest found no slot within their wait
    gaps = [b - a for a, b in itertools.pairwise(sorted(times))]
    assert all(gap >= 1.0 for gap in gaps)
    assert first.objects.names(NAMESPACE) == [guard_name(KEY)]


async def test_retries_take_slots_too() -> None:
    """Every attempt, retries included, waits for its own slot."""
    system = make_system()
    times: list[float] = []

    def failing(request: httpx.Request) -> httpx.Response:
        times.append(system.clock())
        return httpx.Response(500)

    with mock_isbndb() as isbndb:
        isbndb.get(f"/book/{DUNE13}").mock(side_effect=failing)
        status, _, _ = await get(system, f"/book/{DUNE13}")
    assert status == 502
    assert len(times) == 3
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= 1.0 for gap in gaps), gaps  # a slot apart (ms rounding aside)
    assert takes(system) == 3


async def test_a_slot_too_far_away_is_a_503_with_retry_after() -> None:
    """When the key's next slot is further than a public caller waits, no call is made."""
    system = make_system()
    stub = system.envs[WORKER].ISBNDB_GUARD.getByName(guard_name(KEY))
    for _ in range(3):  # warming holds the next three slots
        assert (await stub.take("warm", 10_000))["granted"] is True
    with mock_isbndb() as isbndb:
        status, body, headers = await get(system, f"/book/{DUNE13}")
    assert status == 503
    assert body["error"]["code"] == "rate_limited"
    assert int(headers["retry-after"]) == math.ceil(3 * SLOT_SPACING_S)
    assert not isbndb.calls


async def test_warming_cannot_queue_public_searches_out() -> None:
    """Warming waits less than public traffic, so however much of the key's rate warming
    claims, a public search still finds a slot within its own wait."""
    system = make_system()
    stub = system.envs[WORKER].ISBNDB_GUARD.getByName(guard_name(KEY))
    warm_wait_ms = round(SLOT_MAX_WAIT_S[Purpose.WARM] * 1000)
    while (await stub.take("warm", warm_wait_ms))["granted"]:
        pass  # warming holds every slot it is allowed to wait for
    with mock_isbndb() as isbndb:
        isbndb.get(f"/book/{DUNE13}").respond(200, json={"book": book_json(DUNE13)})
        status, _, _ = await get(system, f"/book/{DUNE13}")
    assert status == 200


# -- quota and reserve -----------------------------------------------------------------------


async def test_public_traffic_stops_at_its_share_and_warming_keeps_the_reserve() -> None:
    """Past quota - reserve, public calls answer 429 quota_exhausted until 00:00 UTC (and are
    then refused in the isolate without asking the guard); warming still gets the reserve."""
    system = make_system(worker_vars={"ISBNDB_DAILY_QUOTA": "3", "ISBNDB_WARM_RESERVE": "1"})
    times: list[float] = []
    with mock_isbndb() as isbndb:
        isbndb.get(path__startswith="/book/").mock(side_effect=stamping(times, system.clock))
        assert (await get(system, f"/book/{isbn(1)}"))[0] == 200
        assert (await get(system, f"/book/{isbn(2)}"))[0] == 200
        status, body, headers = await get(system, f"/book/{isbn(3)}")
        refused_at = system.clock()
        asked = takes(system)
        again = await get(system, f"/book/{isbn(4)}")
        assert takes(system) == asked  # remembered in the isolate: no guard request
        reserve = await get(system, f"/book/{isbn(3)}", headers=warm())
        spent = await get(system, f"/book/{isbn(4)}", headers=warm())
    assert status == 429
    assert body["error"]["code"] == "quota_exhausted"
    assert "public share" in body["error"]["message"]
    until_midnight = next_utc_midnight(refused_at) - refused_at
    assert int(headers["retry-after"]) == math.ceil(until_midnight)
    assert again[0] == 429
    assert reserve[0] == 200
    assert spent[0] == 429
    assert spent[1]["error"]["code"] == "quota_exhausted"
    assert len(times) == 3
    _, health, _ = await get(system, "/health")
    quota = health["quota"]
    assert (quota["used"], quota["left"]) == (3, 0)
    assert quota["public"] == {"used": 2, "left": 0}
    assert quota["warm"] == {"used": 1, "left": 0}
    assert set(health["refusedUntil"]) == {"public", "warm"}


async def test_the_quota_comes_back_at_midnight_utc() -> None:
    """A spent quota (and the isolate's memory of it) ends at the next UTC day."""
    system = make_system(worker_vars={"ISBNDB_DAILY_QUOTA": "1", "ISBNDB_WARM_RESERVE": "0"})
    with mock_isbndb() as isbndb:
        isbndb.get(path__startswith="/book/").mock(side_effect=stamping([], system.clock))
        assert (await get(system, f"/book/{isbn(1)}"))[0] == 200
        assert (await get(system, f"/book/{isbn(2)}"))[0] == 429
        system.clock.advance(next_utc_midnight(system.clock()) - system.clock())
        assert (await get(system, f"/book/{isbn(2)}"))[0] == 200
    _, health, _ = await get(system, "/health")
    assert (health["quota"]["day"], health["quota"]["used"]) == ("2026-01-02", 1)
    assert health["refusedUntil"] == {}


async def test_purpose_travels_over_rpc_and_is_validated() -> None:
    """RPC takes the purpose as the last argument; anything but public/warm is a 400."""
    system = make_system(worker_vars={"ISBNDB_DAILY_QUOTA": "1", "ISBNDB_WARM_RESERVE": "1"})
    with mock_isbndb() as isbndb:
        isbndb.get(path__startswith="/book/").mock(side_effect=stamping([], system.clock))
        public = await system.rpc(WORKER, "book", DUNE13)
        warmed = await system.rpc(WORKER, "book", DUNE13, "warm")
        bad = await system.rpc(WORKER, "book", MESSIAH13, "urgent")
        status, body, _ = await get(system, f"/book/{MESSIAH13}", headers={PURPOSE_HEADER: "x"})
    assert public["error"]["code"] == "quota_exhausted"
    assert public["error"]["status"] == 429
    assert public["error"]["retryAfter"] > 0
    assert warmed["book"]["isbn13"] == DUNE13
    assert bad["error"]["code"] == "invalid_input"
    assert bad["error"]["param"] == "purpose"
    assert (status, body["error"]["param"]) == (400, "purpose")


# -- off the cached path; failures of the guard ----------------------------------------------


async def test_cache_hits_never_touch_the_guard() -> None:
    """Only a call that goes upstream asks for a slot; an LRU hit asks nothing."""
    system = make_system()
    with mock_isbndb() as isbndb:
        isbndb.get(f"/book/{DUNE13}").mock(side_effect=stamping([], system.clock))
        await get(system, f"/book/{DUNE13}")
        await get(system, f"/book/{DUNE13}")
        await system.rpc(WORKER, "book", DUNE13)
    assert takes(system) == 1


async def test_the_guard_is_named_by_a_hash_of_the_key() -> None:
    """One object per key, whose name never contains the key."""
    system = make_system()
    with mock_isbndb() as isbndb:
        isbndb.get(f"/book/{DUNE13}").mock(side_effect=stamping([], system.clock))
        await get(system, f"/book/{DUNE13}")
    (name,) = system.objects.names(NAMESPACE)
    assert name == guard_name(KEY)
    assert KEY not in json.dumps([t.target + t.payload for t in system.traffic])


async def test_counts_survive_a_restart_of_the_guard_object() -> None:
    """The day's counts live in the object's SQLite, not in its memory."""
    system = make_system()
    with mock_isbndb() as isbndb:
        isbndb.get(path__startswith="/book/").mock(side_effect=stamping([], system.clock))
        await get(system, f"/book/{isbn(1)}")
        await get(system, f"/book/{isbn(2)}", headers=warm())
    system.objects.evict()
    _, health, _ = await get(system, "/health")
    assert (health["quota"]["public"]["used"], health["quota"]["warm"]["used"]) == (1, 1)
    rows = system.objects.query(NAMESPACE, guard_name(KEY), "SELECT * FROM guard_state")
    assert [(r["day"], r["public_used"], r["warm_used"]) for r in rows] == [("2026-01-01", 1, 1)]


class _BrokenStub:
    async def take(self, *args: Any) -> Any:
        raise RuntimeError("Durable Object reset because its code was updated")

    async def usage(self) -> Any:
        raise RuntimeError("Durable Object reset because its code was updated")


class _BrokenNamespace:
    def getByName(self, name: str) -> _BrokenStub:
        return _BrokenStub()


async def test_an_unreachable_guard_fails_closed() -> None:
    """If the guard cannot be asked, no ISBNdb call is made: 503 guard_unavailable."""
    system = make_system()
    system.envs[WORKER].ISBNDB_GUARD = _BrokenNamespace()
    with mock_isbndb() as isbndb:
        status, body, headers = await get(system, f"/book/{DUNE13}")
        _, health, _ = await get(system, "/health")
    assert status == 503
    assert body["error"]["code"] == "guard_unavailable"
    assert headers["retry-after"] == "1"
    assert not isbndb.calls
    assert "cannot be reached" in health["quota"]["error"]
    assert health["breaker"]["failures"] == 0  # ISBNdb itself is not blamed


async def test_a_missing_guard_binding_is_not_configured() -> None:
    """Without the ISBNDB_GUARD binding the worker refuses to call ISBNdb at all."""
    system = make_system()
    del system.envs[WORKER].ISBNDB_GUARD
    with mock_isbndb() as isbndb:
        status, body, _ = await get(system, f"/book/{DUNE13}")
    assert status == 503
    assert body["error"]["code"] == "not_configured"
    assert "ISBNDB_GUARD" in body["error"]["message"]
    assert not isbndb.calls


# -- the object itself, over the SQL fake -------------------------------------------------------


def _object(
    clock: FakeClock, conn: Any = None, **vars: str
) -> tuple[KeyGuardObject, FakeSqlStorage]:
    sql = FakeSqlStorage(conn or new_database())
    env = RuntimeEnv(
        FakeEnv(vars), FakeContext(), clocks=Clocks(wall=clock, monotonic=clock, sleep=clock.sleep)
    )
    return KeyGuardObject(SqlBinding(sql), env), sql


def test_object_answers_take_and_usage() -> None:
    """take grants with a wait and today's usage; usage reports the same counts."""
    clock = FakeClock(1_767_268_800.0)
    guard, _ = _object(clock, ISBNDB_RATE_PER_S="1")
    first = guard.take("public", 2000)
    second = guard.take("warm", 2000)
    assert (first["granted"], first["waitMs"]) == (True, 0)
    assert (second["granted"], second["waitMs"]) == (True, 1050)
    assert second["usage"]["used"] == 2
    assert guard.usage()["usage"]["public"]["used"] == 1


def test_object_state_outlives_the_instance() -> None:
    """A new instance over the same database continues the day's counts and slots."""
    clock = FakeClock(1_767_268_800.0)
    conn = new_database()
    guard, _ = _object(clock, conn)
    guard.take("public", 2000)
    again, _ = _object(clock, conn)
    answer = again.take("public", 2000)
    assert answer["waitMs"] == 1050
    assert answer["usage"]["public"]["used"] == 2


@pytest.mark.parametrize(
    ("purpose", "max_wait_ms"),
    [("admin", 1000), (None, "soon"), ("warm", float("nan")), ("warm", True)],
    ids=["bad-purpose", "text-wait", "nan-wait", "bool-wait"],
)
def test_object_refuses_malformed_requests(purpose: Any, max_wait_ms: Any) -> None:
    """A bad purpose or wait is refused as invalid and spends nothing."""
    guard, _ = _object(FakeClock(1_767_268_800.0))
    answer = guard.take(purpose, max_wait_ms)
    assert (answer["granted"], answer["reason"]) == (False, "invalid")
    assert answer["usage"]["used"] == 0


def test_object_with_malformed_vars_grants_nothing() -> None:
    """A malformed limit var makes every take a refusal naming it."""
    guard, _ = _object(FakeClock(1_767_268_800.0), ISBNDB_WARM_RESERVE="many")
    answer = guard.take("warm", 1000)
    assert (answer["granted"], answer["reason"]) == (False, "config")
    assert "ISBNDB_WARM_RESERVE" in answer["message"]
    assert "ISBNDB_WARM_RESERVE" in guard.usage()["error"]
