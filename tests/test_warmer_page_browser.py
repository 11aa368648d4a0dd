"""The library's page in a real headless Chromium, served by the warmer in the harness.

Each state is reached by the real flow (upload, cron ticks, budgets); the browser shows the
page without the token, then with it (typed into the page's token form, as the owner would),
and runs the actions. Accessibility basics are checked in the live DOM and in Chromium's
accessibility tree; the bars' contrast is computed from the pixels Chromium paints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_warmer_page import contrast, hex_rgb
from test_warmer_support import (
    TOKEN,
    UNLISTED_AUTHORS,
    WARMER,
    get_json,
    library,
    make_system,
    mock_upstreams,
    tick,
    upload,
)

from harness import System
from harness.browser import Chromium, Page, chromium_binary, in_chromium
from warmer_app.ui import PALETTE

pytestmark = pytest.mark.browser

# Accessibility basics, in the live DOM: labelled bars and fields, named buttons, one h1 and
# no skipped heading level, header cells in tables, a page language, unique ids.
A11Y_PROBLEMS = """(() => {
  const bad = [];
  for (const p of document.querySelectorAll("progress")) {
    if (!p.labels.length || !p.labels[0].textContent.trim()) bad.push("unlabelled bar " + p.id);
  }
  for (const i of document.querySelectorAll("input")) {
    if (!i.labels.length) bad.push("unlabelled field " + i.id);
  }
  for (const b of document.querySelectorAll("button")) {
    if (!b.textContent.trim()) bad.push("button without a name");
  }
  const levels = [...document.querySelectorAll("h1,h2,h3,h4,h5,h6")].map(h => +h.tagName[1]);
  if (levels.filter(l => l === 1).length !== 1) bad.push("not exactly one h1");
  levels.forEach((l, i) => { if (i && l > levels[i - 1] + 1) bad.push("heading skips to h" + l); });
  for (const t of document.querySelectorAll("table")) {
    if (!t.querySelector("th[scope=col]")) bad.push("table without header cells");
  }
  if (!document.documentElement.lang) bad.push("no page language");
  const ids = [...document.querySelectorAll("[id]")].map(e => e.id);
  if (new Set(ids).size !== ids.length) bad.push("duplicate ids");
  return bad;
})()"""
BARS = (
    "[...document.querySelectorAll('progress')].map(p => [p.labels[0].textContent, p.value, p.max])"
)
TEXTS = "(sel) => [...document.querySelectorAll(sel)].map(e => e.textContent)"


def needs_chromium() -> str:
    """The Chromium binary, or skip (CI installs it)."""
    binary = chromium_binary()
    if binary is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium); CI installs it")
    return binary


def text(page: Page, dom_id: str) -> str:
    """The text content of the element with ``dom_id``."""
    return str(page.evaluate(f"document.getElementById({json.dumps(dom_id)}).textContent"))


def cells(page: Page, row_class: str) -> list[list[str]]:
    """Cell texts of the table rows of class ``row_class``."""
    return list(
        page.evaluate(
            f"[...document.querySelectorAll('tr.{row_class}')]"
            ".map(r => [...r.cells].map(c => c.textContent))"
        )
    )


def unlock(page: Page, token: str = TOKEN) -> None:
    """Type the token into the page's form and wait for the full view."""
    page.evaluate(
        f"document.getElementById('token').value = {json.dumps(token)};"
        "document.querySelector('#token-form button[type=submit]').click(); true"
    )
    page.wait_for("document.body.dataset.access === 'full'")


def progressbar_names(page: Page) -> list[str]:
    """The accessible names Chromium computed for the progress bars."""
    return [
        str(node.get("name", {}).get("value", ""))
        for node in page.ax_nodes()
        if node.get("role", {}).get("value") == "progressbar"
    ]


def check_accessibility(page: Page) -> None:
    """The basics hold in the DOM and every bar has a name in the accessibility tree."""
    assert page.evaluate(A11Y_PROBLEMS) == []
    names = progressbar_names(page)
    assert names, "the page has bars"
    assert all(n.strip() for n in names), names
    assert page.problems == [], "no script error, console error or CSP violation"


async def warming_library() -> tuple[System, str]:
    """Goodreads export after one queue batch (8 of 14 units): part way."""
    system = make_system(WARM_ISBN_CHUNK="10")
    with mock_upstreams():
        _, summary = await upload(system, library("goodreads_24.csv"))
        system.clock.advance(900)
        await system.deliver(max_batches=1)
    return system, summary["id"]


async def budget_library() -> tuple[System, str]:
    """ISBNDB_DAILY_BUDGET=4: ticks until a run stops on it."""
    system = make_system(WARM_ISBN_CHUNK="10", ISBNDB_DAILY_BUDGET="4")
    with mock_upstreams():
        _, summary = await upload(system, library("goodreads_24.csv"))
        for _ in range(5):
            await tick(system)
            _, progress = await get_json(system, f"/libraries/{summary['id']}")
            if progress["lastRun"]["stoppedBy"] == "daily_budget":
                break
    assert progress["lastRun"]["stoppedBy"] == "daily_budget"
    return system, summary["id"]


async def finished_library() -> tuple[System, str]:
    """Goodreads export run to the end: the 4 authors nobody lists failed."""
    system = make_system(WARM_ISBN_CHUNK="10")
    with mock_upstreams():
        _, summary = await upload(system, library("goodreads_24.csv"))
        for _ in range(4):
            await tick(system)
    return system, summary["id"]


async def test_a_warming_library_in_chromium(tmp_path: Path) -> None:
    """Part way: the state, the ETA at the queue's pace, labelled bars (one for all items without
    the token; books and authors with it); accessible either way."""
    binary = needs_chromium()
    system, job = await warming_library()

    def scenario(browser: Chromium, base: str) -> dict[str, Any]:
        page = browser.open(f"{base}/libraries/{job}")
        seen: dict[str, Any] = {
            "state": text(page, "state"),
            "eta": text(page, "eta"),
            "public_bars": page.evaluate(BARS),
            "public_names": progressbar_names(page),
        }
        check_accessibility(page)
        unlock(page)
        seen["full_bars"] = page.evaluate(BARS)
        seen["title"] = page.evaluate("document.querySelector('h1').textContent")
        check_accessibility(page)
        return seen

    seen = await in_chromium(system, WARMER, tmp_path / "profile", scenario, binary=binary)
    assert seen["state"] == "warming"
    assert seen["eta"] == "less than a minute (about 00:15 UTC)"  # the queue's pace: no cron wait
    assert seen["public_bars"][0][0] == "Books and authors"
    assert seen["public_bars"][0][2] == 24
    assert "Books and authors" in seen["public_names"][0]
    labels = [label for label, _, _ in seen["full_bars"]]
    assert labels[:2] == ["Books (ISBNs)", "Authors"]
    assert seen["full_bars"][0][1:] == [12, 12]
    assert seen["title"] == f"Library {job}"


async def test_a_library_waiting_for_its_budget_in_chromium(tmp_path: Path) -> None:
    """The ISBNdb budget is spent: the page says so in words, with when it continues, and
    shows today's use of each provider's budget as labelled bars."""
    binary = needs_chromium()
    system, job = await budget_library()

    def scenario(browser: Chromium, base: str) -> dict[str, Any]:
        page = browser.open(f"{base}/libraries/{job}")
        check_accessibility(page)
        return {
            "state": text(page, "state"),
            "eta": text(page, "eta"),
            "bars": page.evaluate(BARS),
            "budget_text": text(page, "budget-isbndb-text"),
        }

    seen = await in_chromium(system, WARMER, tmp_path / "profile", scenario, binary=binary)
    assert seen["state"] == "waiting for tomorrow's ISBNdb budget"
    assert seen["eta"] == "tomorrow after 00:00 UTC, when the daily budgets reset"
    budgets = {label.strip(): (value, top) for label, value, top in seen["bars"][1:]}
    assert set(budgets) == {"ISBNdb calls today", "Google Books calls today",
                            "Open Library calls today", "KV writes today"}  # fmt: skip
    assert budgets["ISBNdb calls today"][1] == 4
    assert seen["budget_text"] == "4 of 4 calls used today (100%): spent until 00:00 UTC"


async def test_a_finished_library_with_failures_in_chromium(tmp_path: Path) -> None:
    """Done with failures: without the token only how many failed; with it each failed item
    with its reason, and the rows the import skipped with their lines and reasons."""
    binary = needs_chromium()
    system, job = await finished_library()

    def scenario(browser: Chromium, base: str) -> dict[str, Any]:
        page = browser.open(f"{base}/libraries/{job}")
        seen: dict[str, Any] = {
            "state": text(page, "state"),
            "public_failures": cells(page, "failure"),
            "public_html": page.html(),
        }
        unlock(page)
        seen["failures"] = cells(page, "failure")
        seen["skipped"] = cells(page, "skipped")
        seen["retry"] = text(page, "retry-failed")
        seen["warm_disabled"] = page.evaluate("document.getElementById('warm-now').disabled")
        check_accessibility(page)
        return seen

    seen = await in_chromium(system, WARMER, tmp_path / "profile", scenario, binary=binary)
    assert seen["state"] == "done, 4 items failed"
    assert seen["public_failures"] == []
    assert not [a for a in UNLISTED_AUTHORS if a in seen["public_html"]]
    assert {item for item, _ in seen["failures"]} == UNLISTED_AUTHORS
    assert {reason for _, reason in seen["failures"]} == {"no results from any provider"}
    assert [line for line, _ in seen["skipped"]] == ["17", "18", "20", "21", "23"]
    assert "check digit mismatch" in dict(seen["skipped"])["20"]
    assert seen["retry"] == "Retry 4 failed items"
    assert seen["warm_disabled"] is True


async def test_warm_now_and_retry_failed_items_from_the_page(tmp_path: Path) -> None:
    """The owner types the token, presses Warm now (the library finishes, 4 failed), then
    Retry failed items (4 queued again), then Warm now (they fail again); the token stays
    in the tab across a reload until Forget token. A wrong token is refused."""
    binary = needs_chromium()
    system, job = await warming_library()

    def press(page: Page, button: str) -> str:
        page.evaluate(
            "document.getElementById('action-status').textContent = '';"
            f"document.getElementById({json.dumps(button)}).click(); true"
        )
        page.wait_for("document.getElementById('action-status').textContent.endsWith('.')")
        return text(page, "action-status")

    def scenario(browser: Chromium, base: str) -> dict[str, Any]:
        page = browser.open(f"{base}/libraries/{job}")
        seen: dict[str, Any] = {"without_token": press(page, "warm-now")}
        page.evaluate(
            "document.getElementById('token').value = 'wrong';"
            "document.querySelector('#token-form button[type=submit]').click(); true"
        )
        page.wait_for("document.getElementById('token-status').textContent.includes('not')")
        seen["wrong_token"] = text(page, "token-status")
        unlock(page)
        seen["warm"] = press(page, "warm-now")
        seen["after_warm"] = text(page, "state")
        seen["retry"] = press(page, "retry-failed")
        seen["after_retry"] = (text(page, "state"), page.evaluate(BARS)[1])
        seen["warm_again"] = press(page, "warm-now")
        seen["after_again"] = text(page, "state")
        page.goto(f"{base}/libraries/{job}")
        page.wait_for("document.body.dataset.access === 'full'")
        seen["kept"] = cells(page, "failure")
        page.evaluate("document.getElementById('forget-token').click(); true")
        page.wait_for(
            "document.readyState === 'complete' && document.body.dataset.access === 'public'"
        )
        seen["forgotten"] = page.evaluate("sessionStorage.length")
        assert page.problems == []
        return seen

    with mock_upstreams():  # the page's actions run batches
        seen = await in_chromium(system, WARMER, tmp_path / "profile", scenario, binary=binary)
    assert seen["without_token"] == "Enter the admin token above first."
    assert seen["wrong_token"] == "That token was not accepted: the page shows progress only."
    assert seen["warm"] == "6 units sent to the warming queue."
    assert seen["after_warm"] == "done, 4 items failed"
    assert seen["retry"] == ("4 failed items queued again: the warming queue takes them up now.")
    state, authors_bar = seen["after_retry"]
    assert state.startswith("warming")
    assert authors_bar == ["Authors", 8, 12]
    assert seen["warm_again"] == "4 units sent to the warming queue."
    assert seen["after_again"] == "done, 4 items failed"
    assert {item for item, _ in seen["kept"]} == UNLISTED_AUTHORS
    assert seen["forgotten"] == 0
    _, progress = await get_json(system, f"/libraries/{job}")
    assert (progress["total"], progress["done"], progress["failed"]) == (24, 20, 4)


async def test_the_bars_chromium_paints_have_enough_contrast(tmp_path: Path) -> None:
    """Pixels of a part-filled progress bar and a budget bar, as painted: the fill is the
    palette's and contrasts 3:1 with the track and the page (so the CSS reached them)."""
    binary = needs_chromium()
    system = make_system(WARM_ISBN_CHUNK="10", ISBNDB_DAILY_BUDGET="40")
    with mock_upstreams():
        _, summary = await upload(system, library("goodreads_24.csv"))
        system.clock.advance(900)
        await system.deliver(max_batches=1)  # 6 of 12 authors, ISBNdb part spent: part-filled
    job = summary["id"]

    def scenario(browser: Chromium, base: str) -> dict[str, Any]:
        page = browser.open(f"{base}/libraries/{job}")
        unlock(page)
        bars = {
            "progress": page.pixels("#bar-author"),
            "budget": page.pixels("#budget-isbndb"),
            "value": page.evaluate("document.getElementById('bar-author').position"),
        }
        colour = page.evaluate("getComputedStyle(document.body).backgroundColor")
        bars["background"] = tuple(int(c) for c in colour[4:-1].split(","))
        bars["texts"] = page.evaluate(
            "[...document.querySelectorAll('.muted, h1, a, td')].slice(0, 40)"
            ".map(e => getComputedStyle(e).color)"
        )
        return bars

    seen = await in_chromium(system, WARMER, tmp_path / "profile", scenario, binary=binary)
    background = seen["background"]
    rows = seen["progress"]
    middle = rows[len(rows) // 2]
    filled = 0 < seen["value"] < 0.9
    assert filled, seen["value"]
    fill, track = middle[len(middle) // 20 + 2], middle[-4]
    assert all(abs(a - b) <= 2 for a, b in zip(fill, hex_rgb(PALETTE["fill"]), strict=True)), fill
    assert all(abs(a - b) <= 2 for a, b in zip(track, hex_rgb(PALETTE["track"]), strict=True))
    assert contrast(fill, track) >= 3.0
    assert contrast(fill, background) >= 3.0
    budget_row = seen["budget"][len(seen["budget"]) // 2]
    budget_fill = budget_row[len(budget_row) // 4]
    assert all(
        abs(a - b) <= 2 for a, b in zip(budget_fill, hex_rgb(PALETTE["budget_fill"]), strict=True)
    ), budget_fill
    assert contrast(budget_fill, track) >= 3.0
    for colour in seen["texts"]:
        rgb = tuple(int(c) for c in colour[4:-1].split(","))
        assert contrast(rgb, background) >= 4.5, colour
