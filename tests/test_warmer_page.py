"""A library's page (GET /libraries/{id} when Accept prefers HTML), through the harness.

Every state is reached by the real flow (upload, cron ticks, budgets, provider outages); the
JSON view stays what API clients get; without the token the page holds no library data.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest
from test_warmer_support import (
    AUTH,
    HTML,
    JOBS_NAMESPACE,
    UNLISTED_AUTHORS,
    WARMER,
    broken_upstreams,
    get_json,
    get_page,
    library,
    make_system,
    mock_upstreams,
    multipart,
    tick,
    upload,
)

from harness import System
from warmer_app.ui import PALETTE

DAY_S = 86_400.0
# One book the fixture providers know, one author none of them lists.
UNLISTED = b"title,author,isbn13\nDune,,9780441013593\nNo Such Book,Nobody Ever Wrote This,\n"


def state_of(page: str) -> str:
    """The page's state key (``data-state`` of its main region)."""
    found = re.search(r'<main id="view" data-view data-state="([a-z_]+)"', page)
    assert found, page[:500]
    return found.group(1)


def text_of(page: str, dom_id: str) -> str:
    """The text of the element with ``id`` (no nested markup in the ones asked for)."""
    found = re.search(rf'id="{dom_id}"[^>]*>([^<]*)<', page)
    assert found, dom_id
    return html.unescape(found.group(1))


def bars(page: str) -> dict[str, tuple[int, int, str]]:
    """Label -> (value, max, text) of each labelled <progress>."""
    out = {}
    pattern = (
        r'<label for="([^"]+)">([^<]+)(?:<span class="vh">[^<]*</span>)?</label>'
        r'<progress id="\1"[^>]* max="(\d+)" value="(\d+)"[^>]*>[^<]*</progress>'
        r'<span id="\1-text" class="muted">([^<]*)</span>'
    )
    for _id, label, top, value, text in re.findall(pattern, page):
        out[html.unescape(label)] = (int(value), int(top), html.unescape(text))
    return out


def rows(page: str, kind: str) -> list[list[str]]:
    """Cells of the table rows of class ``kind`` (``failure``, ``skipped``)."""
    return [
        [html.unescape(cell) for cell in re.findall(r"<td>([^<]*)</td>", row)]
        for row in re.findall(rf'<tr class="{kind}">(.*?)</tr>', page)
    ]


async def until(system: System, job: str, stop: str, *, ticks: int = 10) -> dict[str, Any]:
    """Fire the cron until the last run stopped by ``stop``; the full progress view."""
    for _ in range(ticks):
        await tick(system)
        _, progress = await get_json(system, f"/libraries/{job}")
        if (progress.get("lastRun") or {}).get("stoppedBy") == stop:
            return dict(progress)
    raise AssertionError(f"never stopped by {stop}: {progress}")


# -- the states ------------------------------------------------------------------------------


async def test_a_new_library_is_queued_until_a_run_works_it() -> None:
    """Imported, no batch warmed yet: queued, starting with the first batch; nothing looked up."""
    system = make_system()
    _, summary = await upload(system, library("goodreads_24.csv"))
    status, headers, page = await get_page(system, summary["id"])
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert state_of(page) == "queued"
    assert text_of(page, "state") == "queued: no batch has been warmed yet"
    assert text_of(page, "eta").startswith("starts when the first batch is delivered")
    assert text_of(page, "last-run") == "none yet"
    assert bars(page)["Books (ISBNs)"] == (0, 12, "0 of 12 looked up: 0 warmed, 0 failed")
    assert bars(page)["Authors"] == (0, 12, "0 of 12 looked up: 0 warmed, 0 failed")


async def test_a_library_part_way_is_warming_with_a_bar_per_kind_and_an_eta() -> None:
    """One queue batch (8 units) warms the ISBN chunks and some authors: warming, bars per
    kind, an ETA in human units at the pace measured so far, the last unit in words."""
    system = make_system(WARM_ISBN_CHUNK="10")
    with mock_upstreams():
        _, summary = await upload(system, library("goodreads_24.csv"))
        system.clock.advance(900)  # 00:15 UTC
        await system.deliver(max_batches=1)
    _, progress = await get_json(system, f"/libraries/{summary['id']}")
    _, _, page = await get_page(system, summary["id"])
    assert progress["status"] == "warming"
    assert progress["lastRun"]["stoppedBy"] == "complete"
    assert state_of(page) == "warming"
    assert text_of(page, "state") == "warming"
    assert re.fullmatch(r"(less than a minute|about \d+ minutes?) \(about 00:\d\d UTC\)",
                        text_of(page, "eta"))  # fmt: skip
    last_run = text_of(page, "last-run")
    assert last_run.startswith("2026-01-01 00:15 UTC: 1 item in 1 unit")
    found = bars(page)
    books, authors = found["Books (ISBNs)"], found["Authors"]
    assert books == (12, 12, "12 of 12 looked up: 12 warmed, 0 failed")
    assert authors[0] + books[0] == progress["done"] + progress["failed"]
    assert authors[1] == 12
    assert {"ISBNdb", "Google Books", "Open Library"} <= set(found)


async def test_a_spent_daily_budget_names_the_provider_and_when_warming_continues() -> None:
    """ISBNDB_DAILY_BUDGET=4: the run stops on it; the page waits for tomorrow's ISBNdb budget,
    shows the budget used, and once the UTC day turns says the budgets were renewed."""
    system = make_system(WARM_ISBN_CHUNK="10", ISBNDB_DAILY_BUDGET="4")
    with mock_upstreams():
        _, summary = await upload(system, library("goodreads_24.csv"))
        progress = await until(system, summary["id"], "daily_budget")
    assert progress["lastRun"]["detail"] == "isbndb"
    for auth in (True, False):
        _, _, page = await get_page(system, summary["id"], auth=auth)
        assert state_of(page) == "waiting_for_budget"
        assert text_of(page, "state") == "waiting for tomorrow's ISBNdb budget"
        assert text_of(page, "eta") == "tomorrow after 00:00 UTC, when the daily budgets reset"
        used = bars(page)["ISBNdb"]
        assert used == (4, 4, "4 of 4 calls used today (100%): spent until 00:00 UTC")
    system.clock.advance((system.clock() // DAY_S + 1) * DAY_S + 60 - system.clock())
    _, _, page = await get_page(system, summary["id"])
    assert state_of(page) == "warming"
    assert text_of(page, "state") == "warming: the daily budgets were renewed at 00:00 UTC"
    assert bars(page)["ISBNdb"] == (0, 4, "0 of 4 calls used today (0%)")


async def test_a_provider_outage_pauses_the_library_and_the_public_page_hides_the_detail() -> None:
    """Every provider answers 503: the run stops on a transient error; the page says it is
    paused and retried; without the token the error's detail is cut to its first clause."""
    system = make_system(WARM_ISBN_CHUNK="10")
    with broken_upstreams(503):
        _, summary = await upload(system, library("goodreads_24.csv"))
        progress = await until(system, summary["id"], "transient_error")
    _, _, page = await get_page(system, summary["id"])
    assert state_of(page) == "paused_after_error"
    assert text_of(page, "state") == "paused after an error; the next run tries again"
    assert progress["lastRun"]["detail"] in text_of(page, "last-run")
    _, _, public = await get_page(system, summary["id"], auth=False)
    assert state_of(public) == "paused_after_error"
    detail = progress["lastRun"]["detail"]
    assert detail.split(":", 1)[0] in text_of(public, "last-run")
    if ":" in detail:
        assert detail.split(":", 1)[1].strip() not in public


async def test_a_finished_library_lists_its_failed_items_and_skipped_rows() -> None:
    """Run to the end: done with the 4 authors nobody lists, each with its reason; the rows
    the import skipped with their lines and reasons (no ISBN, bad check digit)."""
    system = make_system(WARM_ISBN_CHUNK="10")
    with mock_upstreams():
        _, summary = await upload(system, library("goodreads_24.csv"))
        await until(system, summary["id"], "complete")
    _, _, page = await get_page(system, summary["id"])
    assert state_of(page) == "done_with_failures"
    assert text_of(page, "state") == "done, 4 items failed"
    assert text_of(page, "eta").startswith("nothing left (finished 2026-01-01 ")
    failures = rows(page, "failure")
    assert {item for item, _ in failures} == UNLISTED_AUTHORS
    assert {reason for _, reason in failures} == {"no results from any provider"}
    skipped = rows(page, "skipped")
    assert [line for line, _ in skipped] == ["17", "18", "20", "21", "23"]
    reasons = dict(skipped)
    assert "check digit mismatch" in reasons["20"]
    assert reasons["17"] == "no ISBN (its author is still warmed)"
    assert bars(page)["Authors"] == (12, 12, "12 of 12 looked up: 8 warmed, 4 failed")
    assert 'id="retry-failed">Retry 4 failed items</button>' in page
    assert 'id="warm-now" disabled>' in page


async def test_a_library_without_failures_is_done_and_offers_no_action() -> None:
    """Every item warmed: done, nothing failed, both actions disabled."""
    system = make_system()
    with mock_upstreams():
        _, summary = await upload(system, library("generic.csv"))
        await tick(system)
    _, _, page = await get_page(system, summary["id"])
    assert state_of(page) == "done"
    assert text_of(page, "state") == "done"
    assert "No item has failed." in page
    assert 'id="warm-now" disabled>' in page
    assert 'id="retry-failed" disabled>' in page


# -- JSON stays the default -------------------------------------------------------------------


@pytest.mark.parametrize(
    "accept",
    [
        pytest.param(None, id="none"),
        pytest.param("*/*", id="curl"),
        pytest.param("application/json", id="json"),
        pytest.param("application/json, text/html", id="tie"),
        pytest.param("text/html;q=0.5, application/json", id="json-preferred"),
        pytest.param("text/plain", id="other"),
    ],
)
@pytest.mark.parametrize("auth", [True, False], ids=["token", "no-token"])
async def test_api_clients_still_get_the_same_json(accept: str | None, auth: bool) -> None:
    """Whatever an API client's Accept says, unless it prefers HTML: the JSON view, as before."""
    system = make_system()
    with mock_upstreams():
        _, summary = await upload(system, library("generic.csv"))
        await tick(system)
    path = f"/libraries/{summary['id']}"
    plain = await system.fetch(WARMER, path, headers=AUTH if auth else None)
    headers = {**(AUTH if auth else {}), **({"accept": accept} if accept else {})}
    resp = await system.fetch(WARMER, path, headers=headers)
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.headers["vary"] == "accept"
    assert json.loads(await resp.text()) == json.loads(await plain.text())


async def test_an_unknown_library_page_is_a_json_404() -> None:
    """Errors stay JSON for browsers too."""
    system = make_system()
    for job in ("20990101t000000-abcdef", "NOT%20AN%20ID"):
        status, headers, text = await get_page(system, job)
        assert status == 404
        assert headers["content-type"].startswith("application/json")
        assert json.loads(text)["error"]["code"] == "not_found"


async def test_a_library_imported_before_this_version_still_has_a_page() -> None:
    """No per-kind counters and no import report (older jobs): one bar for all items and a
    note that skipped rows were not recorded."""
    system = make_system()
    _, summary = await upload(system, library("generic.csv"))
    (row,) = system.objects.query(JOBS_NAMESPACE, summary["id"], "SELECT state FROM job")
    old = json.loads(row["state"])
    del old["by_kind"]
    system.objects.query(JOBS_NAMESPACE, summary["id"], "UPDATE job SET state = ?", json.dumps(old))
    await system.r2(WARMER, "LIBRARY_DATA").delete(f"libraries/{summary['id']}/import.json")
    _, _, page = await get_page(system, summary["id"])
    assert list(bars(page)) == [
        "Books and authors",
        "ISBNdb",
        "Google Books",
        "Open Library",
        "KV",
    ]
    assert "Not recorded: this library was imported before import reports were kept." in page


# -- security --------------------------------------------------------------------------------


class RecordingR2:
    """The warmer's bucket, recording the keys it reads."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.read: list[str] = []

    async def get(self, key: str, *args: Any, **kwargs: Any) -> Any:
        self.read.append(key)
        return await self._inner.get(key, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


async def test_without_the_token_the_page_holds_no_library_data() -> None:
    """No file name, ISBN, author, failure reason or file contents without the token (the
    import report is not even read); with it, all of them (a warmed ISBN is not listed)."""
    system = make_system()
    with mock_upstreams():
        payload, content_type = multipart("alice-reading-list.csv", UNLISTED)
        _, summary = await upload(system, payload, content_type=content_type)
        await tick(system)
    job = summary["id"]
    secrets = (
        "alice-reading-list",
        "Nobody Ever Wrote This",
        "9780441013593",
        "no results from any provider",
        "Rows without a usable ISBN",
    )
    bucket = RecordingR2(system.envs[WARMER].LIBRARY_DATA)
    system.envs[WARMER].LIBRARY_DATA = bucket
    status, _, public = await get_page(system, job, auth=False)
    assert status == 200
    assert not [s for s in secrets if s in public], public
    assert bucket.read == []
    assert 'data-access="public"' in public
    assert f"<h1>Library {job}</h1>" in public
    assert "1 item failed. The admin token shows which, and why." in public
    assert next(iter(bars(public))) == "Books and authors"
    _, _, full = await get_page(system, job)
    assert [s for s in secrets if s in full] == [s for s in secrets if s != "9780441013593"]
    assert 'data-access="full"' in full
    assert bucket.read == [f"libraries/{job}/import.json"]
    dashboard = await (await system.fetch(WARMER, "/", headers=HTML)).text()
    assert not [s for s in secrets if s in dashboard]


async def test_hostile_names_and_cells_are_escaped_on_the_page() -> None:
    """A hostile file name, author and ISBN cell appear as text, never as markup."""
    system = make_system()
    evil_author = "<img src=x onerror=alert(1)>"
    evil_cell = "<script>alert(2)</script>"
    csv = f'title,author,isbn13\n"Book","{evil_author}","{evil_cell}"\n'.encode()
    with mock_upstreams():
        resp = await system.fetch(
            WARMER,
            "/libraries?filename=%3Cb%3Ebold%3C%2Fb%3E%22",
            method="POST",
            headers={**AUTH, "content-type": "text/csv"},
            body=csv,
        )
        job = json.loads(await resp.text())["id"]
        await tick(system)
    _, _, page = await get_page(system, job)
    for raw in (evil_author, evil_cell, "<b>bold</b>"):
        assert raw not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page
    assert "<h1>&lt;b&gt;bold&lt;/b&gt;&quot;</h1>" in page
    assert page.count("<script") == 1, "only the same-origin script tag"


async def test_the_page_has_the_dashboards_headers_and_no_external_asset() -> None:
    """Strict CSP (script and style from this origin or this page's hash only), nosniff,
    no-referrer, no-store, Vary: Accept; no URL to another origin."""
    system = make_system()
    _, summary = await upload(system, library("generic.csv"))
    _, headers, page = await get_page(system, summary["id"])
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert re.search(r"style-src 'sha256-[A-Za-z0-9+/]+=*';", csp)
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"
    assert headers["vary"] == "accept"
    assert not re.search(r"(?:src|href|action)=\"(?:https?:)?//", page)
    assert '<script src="/dashboard.js" defer></script>' in page


async def test_the_page_says_how_many_skipped_rows_the_report_left_out() -> None:
    """Past the 1,000 lines kept per kind, the page says how many more rows were skipped."""
    system = make_system()
    many = b"title,author\n" + b"".join(b"Book %d,Author %d\n" % (n, n % 7) for n in range(1200))
    _, summary = await upload(system, many)
    _, _, page = await get_page(system, summary["id"])
    skipped = rows(page, "skipped")
    assert len(skipped) == 1000
    assert skipped[0] == ["2", "no ISBN (its author is still warmed)"]
    assert "200 more rows not listed." in page


# -- contrast (WCAG 2.2) ----------------------------------------------------------------------


def luminance(rgb: tuple[int, int, int]) -> float:
    """WCAG relative luminance of an sRGB colour."""

    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    """WCAG contrast ratio of two colours (1 to 21)."""
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def hex_rgb(colour: str) -> tuple[int, int, int]:
    """``#1a7f37`` -> (26, 127, 55)."""
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def test_the_palette_meets_wcag_contrast() -> None:
    """Text 4.5:1 on the background; bar fills 3:1 against their track and the page."""
    bg = hex_rgb(PALETTE["background"])
    for name in ("text", "muted", "link"):
        assert contrast(hex_rgb(PALETTE[name]), bg) >= 4.5, name
    for fill in ("fill", "budget_fill"):
        assert contrast(hex_rgb(PALETTE[fill]), hex_rgb(PALETTE["track"])) >= 3.0, fill
        assert contrast(hex_rgb(PALETTE[fill]), bg) >= 3.0, fill
    assert contrast(hex_rgb(PALETTE["track_edge"]), bg) >= 3.0, "the bar's extent is visible"
