"""The dashboard HTML: pure rendering, and a real headless Chromium reading the progress bar."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_warmer_support import WARMER, get_json, library, make_system, mock_upstreams, tick, upload

from harness.browser import Chromium, chromium_binary, in_chromium
from warmer_app.dashboard import render_dashboard


def test_render_shows_percent_as_progress_element_css_width_and_text() -> None:
    """Progress reads without JavaScript: <progress>, a CSS width and the number."""
    page = render_dashboard(
        [{"id": "lib-1", "filename": "a.csv", "percent": 42.5, "status": "warming"}],
        max_upload_bytes=10 * 1024 * 1024,
    )
    assert '<progress max="100" value="42.5"' in page
    assert "width:42.5%" in page
    assert "42.5%</span>" in page
    assert "10 MiB" in page
    assert "http" not in page.replace("http-equiv", ""), "no external assets"


def test_render_escapes_every_user_string() -> None:
    """Filename, format and id are escaped."""
    page = render_dashboard(
        [{"id": "x", "filename": "<script>alert(1)</script>", "format": "<b>", "percent": 0}],
        max_upload_bytes=1,
    )
    assert "<script>alert" not in page
    assert "&lt;script&gt;" in page
    assert "&lt;b&gt;" in page


@pytest.mark.browser
async def test_headless_chromium_renders_the_progress_bar(tmp_path: Path) -> None:
    """A real browser loads the worker's dashboard (served by the harness) and shows the
    library at 100%, with no script error, console error or CSP violation."""
    browser = chromium_binary()
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium); CI installs it")
    system = make_system()
    with mock_upstreams():
        _, summary = await upload(system, library("generic.csv"))
        await tick(system)
    _, progress = await get_json(system, f"/libraries/{summary['id']}")
    assert progress["percent"] == 100.0

    def scenario(chromium: Chromium, base: str) -> tuple[str, list[str]]:
        page = chromium.open(f"{base}/")
        return page.html(), page.problems

    dom, problems = await in_chromium(
        system, WARMER, tmp_path / "profile", scenario, binary=browser
    )
    assert problems == []
    assert f'id="lib-{summary["id"]}"' in dom
    assert '<progress max="100" value="100.0"' in dom
    assert 'class="percent">100.0%</span>' in dom
