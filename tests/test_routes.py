"""Route tables are immutable module constants: no request builds a router."""

from __future__ import annotations

import pytest

from bookmeta import Router
from harness import System

WORKERS = {
    "isbndb_worker": ("/health", "/book/9780441013593", "/nope"),
    "books_api_proxy": ("/health", "/metrics", "/search/auto", "/nope"),
    "cache_warmer": ("/health", "/metrics", "/libraries", "/nope"),
}


@pytest.mark.parametrize("worker", sorted(WORKERS))
async def test_requests_reuse_the_module_route_table(
    worker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each app module has one ROUTES table; serving requests constructs no Router."""
    import isbndb_app.app
    import proxy_app.app
    import warmer_app.app

    modules = {
        "isbndb_worker": isbndb_app.app,
        "books_api_proxy": proxy_app.app,
        "cache_warmer": warmer_app.app,
    }
    assert isinstance(modules[worker].ROUTES, Router)
    built: list[Router] = []
    original = Router.__init__

    def counting(self: Router) -> None:
        built.append(self)
        original(self)

    monkeypatch.setattr(Router, "__init__", counting)
    system = System(secrets={"WARMER_ADMIN_TOKEN": "t"})
    for path in WORKERS[worker]:
        resp = await system.fetch(worker, path)
        assert resp.status != 500  # answered (503 = no ISBNdb key configured), never crashed
    assert built == []
