"""The dashboard: pure rendering, and a real headless Chromium reading and using it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_warmer_page_browser import BARS, check_accessibility, needs_chromium, unlock
from test_warmer_support import (
    LIBRARIES,
    WARMER,
    library,
    make_system,
    mock_upstreams,
    multipart,
    tick,
    upload,
)

from harness.browser import Chromium, in_chromium
from warmer_app.dashboard import render_dashboard
from warmer_app.views import Bar, LibraryRow, State, Status


def row(**overrides: Any) -> LibraryRow:
    """A dashboard line with plain defaults."""
    values: dict[str, Any] = {
        "id": "20260101t000000-abcdef",
        "title": "a.csv",
        "source": "CSV export",
        "status": Status(State.WARMING, "warming", "about 15 minutes (about 00:30 UTC)"),
        "bars": (Bar("isbns", "Books (ISBNs)", 5, 10, "5 of 10 looked up"),),
    }
    return LibraryRow(**{**values, **overrides})


def test_render_shows_a_labelled_bar_the_state_in_words_and_a_link() -> None:
    """Each library: a link to its page, its state and ETA in words, a labelled <progress>
    with its numbers in text; no external asset."""
    page = render_dashboard([row()], max_upload_bytes=10 * 1024 * 1024)
    assert '<a href="/libraries/20260101t000000-abcdef">a.csv</a>' in page
    assert '<span class="state">warming</span>' in page
    assert "Expected: about 15 minutes (about 00:30 UTC)" in page
    assert (
        '<label for="bar-20260101t000000-abcdef-isbns">Books (ISBNs)'
        '<span class="vh"> in a.csv</span></label>'
        '<progress id="bar-20260101t000000-abcdef-isbns" max="10" value="5"'
    ) in page
    assert "5 of 10 looked up</span>" in page
    assert "10 MiB" in page
    assert "http" not in page, "no external assets"


def test_render_escapes_every_user_string() -> None:
    """Title, source, state words and bar texts are escaped."""
    evil = "<script>alert(1)</script>"
    page = render_dashboard(
        [
            row(
                title=evil,
                source="<b>",
                status=Status(State.WARMING, evil, evil),
                bars=(Bar("items", evil, 1, 2, evil),),
            )
        ],
        max_upload_bytes=1,
    )
    assert "<script>alert" not in page
    assert "&lt;script&gt;" in page
    assert "&lt;b&gt;" in page


@pytest.mark.browser
async def test_the_dashboard_in_chromium_lists_imports_and_unlocks(tmp_path: Path) -> None:
    """Without the token: each library by id, its state in words, one labelled bar, a link to
    its page. With the token typed in: file names and a bar per kind. An upload through the
    form (the token from the token field) appears in the list."""
    binary = needs_chromium()
    system = make_system()
    with mock_upstreams():
        payload, content_type = multipart("my library.csv", library("generic.csv"))
        _, summary = await upload(system, payload, content_type=content_type)
        await tick(system)
    job = summary["id"]

    def scenario(browser: Chromium, base: str) -> dict[str, Any]:
        page = browser.open(f"{base}/")
        seen: dict[str, Any] = {
            "public": page.evaluate(
                f"(() => {{ const r = document.getElementById('lib-{job}');"
                " return [r.querySelector('a').textContent, r.querySelector('a').href,"
                " r.querySelector('.state').textContent]; })()"
            ),
            "public_bars": page.evaluate(BARS),
        }
        check_accessibility(page)
        unlock(page)
        seen["full_title"] = page.evaluate(f"document.querySelector('#lib-{job} a').textContent")
        seen["full_bars"] = page.evaluate(BARS)
        check_accessibility(page)
        page.set_files("#file", [str(LIBRARIES / "storygraph.csv")])
        page.evaluate("document.querySelector('#upload button').click(); true")
        page.wait_for("document.getElementById('upload-result').textContent.startsWith('Imp')")
        seen["upload"] = page.evaluate("document.getElementById('upload-result').textContent")
        seen["rows"] = page.evaluate("document.querySelectorAll('tbody tr').length")
        seen["newest"] = page.evaluate("document.querySelector('tbody tr a').textContent")
        assert page.problems == []
        return seen

    seen = await in_chromium(system, WARMER, tmp_path / "profile", scenario, binary=binary)
    title, href, state = seen["public"]
    assert (title, state) == (f"Library {job}", "done")
    assert href.endswith(f"/libraries/{job}")
    assert [(label.strip(), value, top) for label, value, top in seen["public_bars"]] == [
        (f"Books and authors in Library {job}", 4, 4)
    ]
    assert seen["full_title"] == "my library.csv"
    assert [label.split(" in ")[0] for label, _, _ in seen["full_bars"]] == [
        "Books (ISBNs)",
        "Authors",
    ]
    assert seen["upload"].startswith("Imported storygraph: ")
    assert seen["rows"] == 2
    assert seen["newest"] == "storygraph.csv"
    listing = json.loads(await (await system.fetch(WARMER, "/libraries")).text())["libraries"]
    assert len(listing) == 2
