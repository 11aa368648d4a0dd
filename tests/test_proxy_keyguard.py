"""The proxy and the isbndb worker's key guard: purposes sent, a spent quota answered around."""

from __future__ import annotations

from test_proxy_support import DUNE, MESSIAH, WORKER, Upstream, get, make_system, mocked

from bookmeta import PURPOSE_HEADER, QuotaExhausted, UpstreamError, isbn_key
from harness import System
from proxy_app.search import DEFAULT_RETRY_AFTER_S, retry_after

ISBNDB = "isbndb_worker"


def quota(total: int, reserve: int) -> System:
    """The deployed wiring with a small ISBNdb quota and warming reserve."""
    return make_system(
        vars={ISBNDB: {"ISBNDB_DAILY_QUOTA": str(total), "ISBNDB_WARM_RESERVE": str(reserve)}}
    )


def purposes(system: System) -> list[tuple[str, str | None]]:
    """(method and path, purpose header) of every proxy call to the isbndb worker."""
    return [
        (t.target.split("internal", 1)[1].split("?")[0], t.headers.get(PURPOSE_HEADER))
        for t in system.traffic
        if t.caller == WORKER and t.binding == "ISBNDB_WORKER"
    ]


async def test_searches_say_public_and_warming_says_warm() -> None:
    """Public searches ask the isbndb worker as public traffic; warm_isbns as warming."""
    system = make_system()
    with mocked():
        await get(system, f"/search/auto?q={DUNE}")
        await get(system, "/search/auto?q=inauthor:Frank%20Herbert")
        await system.rpc(WORKER, "warm_isbns", [MESSIAH])
    assert purposes(system) == [
        (f"/book/{DUNE}", "public"),
        ("/author/frank%20herbert", "public"),
        ("/books", "warm"),
    ]


async def test_a_spent_public_share_is_answered_from_the_other_providers() -> None:
    """Past the public share, searches answer 200 from Google and Open Library, name ISBNdb
    in failedProviders, are kept only as a brief partial entry (repeats are hits), and do not
    trip the proxy's ISBNdb breaker."""
    system = quota(total=2, reserve=1)
    with mocked() as up:
        first = await get(system, f"/search/auto?q={DUNE}")
        assert "failedProviders" not in first[1]
        for n in range(4):
            status, body, headers = await get(system, f"/search/auto?q={MESSIAH}")
            assert status == 200
            assert body["failedProviders"] == ["isbndb"]
            assert body["items"][0]["providers"] == ["google", "openlibrary"]
            assert headers["x-cache"] == ("miss" if n == 0 else "kv")
    assert '"p":{"failed":["isbndb"]}' in system.kv(WORKER, "CACHE").dump()[isbn_key(MESSIAH)]
    assert len(up.calls("isbndb")) == 1
    _, health, _ = await get(system, "/health")
    assert health["breakers"]["isbndb"]["state"] == "closed"
    resp = await system.fetch(ISBNDB, "/health")
    guard = (await resp.json())["quota"]
    assert guard["public"] == {"used": 1, "left": 0}
    assert guard["warm"]["left"] == 1  # the reserve is still there for warming


async def test_warm_isbns_names_a_spent_quota() -> None:
    """warm_isbns reports quotaExhausted with the seconds to the reset, and still warms what
    Open Library and Google know."""
    system = quota(total=1, reserve=1)
    up = Upstream(knows={"isbndb": {DUNE, MESSIAH}, "openlibrary": {MESSIAH}, "google": set()})
    with mocked(up):
        first = await system.rpc(WORKER, "warm_isbns", [DUNE])
        second = await system.rpc(WORKER, "warm_isbns", [MESSIAH])
    assert first["quotaExhausted"] == {}
    assert first["warmed"] == [DUNE]
    assert list(second["quotaExhausted"]) == ["isbndb"]
    assert 0 < second["quotaExhausted"]["isbndb"] <= 86_400
    assert second["warmed"] == [MESSIAH]  # Open Library knew it
    assert len(up.calls("isbndb")) == 1


def test_a_spent_quota_is_no_retry_hint_for_the_other_providers() -> None:
    """When every provider fails, ISBNdb's hours-away quota reset does not become the 503's
    Retry-After: it says nothing about when Google or Open Library recover."""
    errors = [
        QuotaExhausted("isbndb", retry_after_s=40_000.0),
        UpstreamError("google", 503, "down"),
    ]
    assert retry_after(errors) == DEFAULT_RETRY_AFTER_S
