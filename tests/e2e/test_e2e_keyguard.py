"""End-to-end on workerd: the isbndb worker's key guard (a SQLite Durable Object) and its KV.

Through the warmer's debug routes: a book look-up that reaches ISBNdb takes one slot from the
key guard, /health shows it as used (and one less left), and a repeat (a cache hit) takes none.
Counts are compared before and after, since other e2e tests share the session's guard.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # tests/e2e/conftest.py: a conftest is not importable by name at runtime
    from conftest import WorkersSession

pytestmark = pytest.mark.e2e

# In the devtools catalogue, known to ISBNdb; no other e2e test asks for them or their authors
# (an author page would put its books in the isbndb worker's caches).
BOOK = "9780756404741"  # The Name of the Wind
WARM_BOOK = "9780807083697"  # Kindred


def _quota(e2e: WorkersSession) -> dict[str, Any]:
    health = e2e.isbndb("health")
    assert health.status_code == 200, health.text
    quota = health.json()["quota"]
    assert "error" not in quota, quota
    return dict(quota)


def test_health_shows_the_key_guards_quota(e2e: WorkersSession) -> None:
    """/health of the isbndb worker reports today's quota from the Durable Object."""
    quota = _quota(e2e)
    assert quota["ratePerSecond"] == 1
    assert quota["dailyQuota"] == 2000
    assert quota["warmReserve"] == 1000
    assert quota["used"] + quota["left"] == quota["dailyQuota"]
    assert set(quota["public"]) == {"used", "left"}


def test_a_call_to_isbndb_is_counted_once_and_a_hit_not_at_all(e2e: WorkersSession) -> None:
    """GET /book goes to ISBNdb through one guard slot (public); the repeat is a cache hit.
    (Public counts and this book's requests only: queued warming of other libraries may spend
    warm slots meanwhile.)"""
    before = _quota(e2e)
    first = e2e.isbndb(f"book/{BOOK}")
    assert first.status_code == 200, first.text
    after = _quota(e2e)
    assert after["public"]["used"] == before["public"]["used"] + 1
    assert after["public"]["left"] == before["public"]["left"] - 1
    assert after["used"] >= before["used"] + 1
    assert e2e.upstream_requests("isbndb", f"/book/{BOOK}") == 1
    again = e2e.isbndb(f"book/{BOOK}")
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert _quota(e2e)["public"]["used"] == after["public"]["used"]
    assert e2e.upstream_requests("isbndb", f"/book/{BOOK}") == 1


def test_warming_over_rpc_spends_the_warm_share(e2e: WorkersSession) -> None:
    """book(isbn, "warm") over RPC is counted as warming, not public traffic."""
    before = _quota(e2e)
    result = e2e.rpc("isbndb", "book", WARM_BOOK, "warm")
    assert "error" not in result, result
    assert result["book"]["isbn13"] == WARM_BOOK
    after = _quota(e2e)
    assert after["warm"]["used"] == before["warm"]["used"] + 1
    assert after["public"]["used"] == before["public"]["used"]
