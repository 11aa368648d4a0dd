"""End-to-end on workerd: what the workers stored survives a restart of `wrangler dev` on the
same persist folder (the proxy's KV tier, the warmer's libraries in R2 and their progress)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # tests/e2e/conftest.py: a conftest is not importable by name at runtime
    from conftest import WorkersSession

pytestmark = pytest.mark.e2e

AUTHOR = "Isaac Asimov"
FOUNDATION = "9780553293357"
LIBRARY_CSV = f"Title,Author,ISBN\r\nFoundation,{AUTHOR},{FOUNDATION}\r\n"


def test_cache_and_libraries_survive_a_restart(e2e: WorkersSession) -> None:
    """A cached search is still a hit after a restart, and an uploaded library still shows."""
    params = {"q": AUTHOR, "maxResults": 10}
    first = e2e.proxy("search/auto", params)
    assert first.status_code == 200, first.text
    upload = e2e.upload(LIBRARY_CSV)
    assert upload.status_code in (200, 201, 202), upload.text
    library = upload.json()["id"]
    before = e2e.warmer("GET", f"/libraries/{library}", headers=e2e.auth).json()

    e2e.dev.restart()

    calls = e2e.upstream_calls()
    again = e2e.proxy("search/auto", params)
    assert again.status_code == 200, again.text
    assert again.json()["cache"] != "miss", again.json()["cache"]
    assert again.json()["items"] == first.json()["items"]
    assert e2e.upstream_calls() == calls, "a restart must not empty the cache"
    after = e2e.warmer("GET", f"/libraries/{library}", headers=e2e.auth)
    assert after.status_code == 200, after.text
    assert after.json()["id"] == library
    assert after.json()["total"] == before["total"]
