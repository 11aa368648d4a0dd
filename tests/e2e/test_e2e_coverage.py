"""End-to-end on workerd: every call of the original design, every RPC method, auth refusals,
one upstream fault per provider, the dashboard, both crons, and state kept across a restart."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from bookmeta import isbn_key

if TYPE_CHECKING:  # tests/e2e/conftest.py: a conftest is not importable by name at runtime
    from conftest import WorkersSession

pytestmark = pytest.mark.e2e

# Catalogue books (devtools/fixtures/catalogue.json) no other e2e file touches: each test here
# starts from a cold cache for its own book.
HOBBIT = "9780547928227"
FOUNDATION = "9780553293357"
MARTIAN = "9780804139021"
HAIL_MARY_TITLE = "Project Hail Mary"
HAIL_MARY = "9780593135204"
DUNE_MESSIAH = "9780593098233"
CHILDREN_OF_DUNE = "9780593098240"
WARM_CRON = "*/15 * * * *"
VERIFY_CRON = "0 2 * * *"


def _isbn13s(body: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for item in body.get("items", []):
        for ident in item["volumeInfo"].get("industryIdentifiers") or []:
            if ident.get("type") == "ISBN_13":
                found.add(ident["identifier"])
    return found


@contextlib.contextmanager
def fault(e2e: WorkersSession, provider: str, status: int) -> Iterator[None]:
    """The fixture upstream answers `status` for provider until the block ends."""
    set_ = httpx.post(f"{e2e.fixture}/__faults", json={provider: {"status": status}}, timeout=10)
    assert set_.status_code == 200, set_.text
    try:
        yield
    finally:
        httpx.post(f"{e2e.fixture}/__faults", json={provider: None}, timeout=10)


def test_title_search(e2e: WorkersSession) -> None:
    """/search/auto?q=<title> finds the book by its title, merged across providers."""
    response = e2e.proxy("search/auto", {"q": HAIL_MARY_TITLE, "maxResults": 10})
    assert response.status_code == 200, response.text
    body = response.json()
    assert HAIL_MARY in _isbn13s(body), body
    titles = [item["volumeInfo"]["title"] for item in body["items"]]
    assert HAIL_MARY_TITLE in titles


@pytest.mark.parametrize(
    ("provider", "isbn"), [("google", HOBBIT), ("isbndb", FOUNDATION), ("openlibrary", MARTIAN)]
)
def test_one_provider_down_still_answers(e2e: WorkersSession, provider: str, isbn: str) -> None:
    """With one upstream answering 500 the search still finds the book and names the failure."""
    with fault(e2e, provider, 500):
        response = e2e.proxy("search/auto", {"q": isbn, "maxResults": 1})
    assert response.status_code == 200, response.text
    body = response.json()
    assert isbn in _isbn13s(body), body
    assert provider in body.get("failedProviders", []), body
    assert provider not in body["items"][0].get("providers", []), body


def test_every_rpc_method(e2e: WorkersSession) -> None:
    """Each RPC method the warmer may call answers over the real runtime's RPC (``warm_isbns``
    is left to the warming test: the debug route refuses it, it spends budgeted quota)."""
    isbn = e2e.rpc("proxy", "search_isbn", "0-593-09823-4")  # Dune Messiah, hyphenated ISBN-10
    assert "error" not in isbn, isbn
    assert DUNE_MESSIAH in _isbn13s(isbn), json.dumps(isbn)
    author = e2e.rpc("proxy", "search_author", "Andy Weir", 10, True, None)
    assert "error" not in author, author
    assert {MARTIAN, HAIL_MARY} <= _isbn13s(author), json.dumps(author)
    title = e2e.rpc("proxy", "search_title", "Children of Dune", 5, True, None)
    assert "error" not in title, title
    assert CHILDREN_OF_DUNE in _isbn13s(title), json.dumps(title)
    assert e2e.rpc("proxy", "metrics")["worker"] == "books_api_proxy"
    status = e2e.rpc("proxy", "cache_status", [isbn_key(DUNE_MESSIAH)])
    assert status["keys"][isbn_key(DUNE_MESSIAH)]["tier"] == "kv", status

    bulk = e2e.rpc("isbndb", "books", [DUNE_MESSIAH, "9780000000002"])
    assert "error" not in bulk, bulk
    assert DUNE_MESSIAH in {b["isbn13"] for b in bulk["books"]}
    assert e2e.rpc("isbndb", "metrics")["worker"] == "isbndb_worker"


def test_admin_routes_refuse_without_the_token(e2e: WorkersSession) -> None:
    """Debug pass-through, warm-now and the full progress view need the bearer token."""
    for path in ("/debug/proxy/health", "/debug/isbndb/health"):
        response = e2e.warmer("GET", path)
        assert response.status_code == 401, (path, response.text)
        assert response.json()["error"]["code"] == "unauthorized"
    wrong = e2e.warmer("GET", "/debug/proxy/health", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401, wrong.text
    rpc = e2e.warmer("POST", "/debug/rpc/proxy/health", json=[])
    assert rpc.status_code == 401, rpc.text
    warm = e2e.warmer("POST", "/libraries/anything/warm")
    assert warm.status_code == 401, warm.text


def test_dashboard_is_html_with_a_policy(e2e: WorkersSession) -> None:
    """GET / is the dashboard: HTML, a content security policy, and no third-party script."""
    response = e2e.warmer("GET", "/", headers={"Accept": "text/html"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src" in response.headers.get("content-security-policy", "")
    assert "<html" in response.text.lower()
    assert 'src="http' not in response.text  # no CDN: scripts and styles from this origin only


def test_both_crons_run(e2e: WorkersSession) -> None:
    """The warming cron and the nightly verification cron both run to completion."""
    for cron in (WARM_CRON, VERIFY_CRON):
        tick = e2e.scheduled(cron)
        assert tick.status_code == 200, f"{cron}: {tick.text}\n{e2e.log_tail()}"
    assert "Traceback" not in e2e.log_tail(20000)


def test_library_page_is_html_for_browsers_and_json_for_clients(e2e: WorkersSession) -> None:
    """/libraries/{id}: HTML when the browser asks for it first (no library data without the
    token), the same JSON as before for API clients; the page's script is same-origin."""
    csv = "Title,Author,ISBN\r\nThe Hobbit,J.R.R. Tolkien,9780547928227\r\n"
    upload = e2e.upload(csv, filename="secret-shelf.csv")
    assert upload.status_code == 201, upload.text
    library = upload.json()["id"]
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    public = e2e.warmer("GET", f"/libraries/{library}", headers=browser)
    assert public.status_code == 200, public.text
    assert public.headers["content-type"].startswith("text/html")
    assert "script-src" in public.headers["content-security-policy"]
    assert public.headers["x-content-type-options"] == "nosniff"
    assert "secret-shelf" not in public.text
    full = e2e.warmer("GET", f"/libraries/{library}", headers={**browser, **e2e.auth})
    assert "secret-shelf" in full.text
    api = e2e.warmer("GET", f"/libraries/{library}", headers=e2e.auth)
    assert api.headers["content-type"].startswith("application/json")
    assert api.json()["id"] == library
    script = e2e.warmer("GET", "/dashboard.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")


def test_the_cold_tier_sweep_runs_on_r2(e2e: WorkersSession) -> None:
    """sweep_cache lists R2 with custom metadata and deletes in one call per page on workerd:
    it walks the whole cold tier and deletes nothing still inside its TTL."""
    warmed = e2e.proxy("search/auto", {"q": DUNE_MESSIAH, "maxResults": 1})
    assert warmed.status_code == 200, warmed.text
    report = e2e.rpc("proxy", "sweep_cache", 5)
    assert "error" not in report, report
    assert report["scanned"] >= 1
    assert report["deleted"] == 0
    assert report["complete"] is True
    again = e2e.proxy("search/auto", {"q": DUNE_MESSIAH, "maxResults": 1})
    assert again.json()["cache"] != "miss"
