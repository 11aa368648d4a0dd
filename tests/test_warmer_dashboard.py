"""The dashboard HTML: pure rendering, and a real headless Chromium reading the progress bar."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from test_warmer_support import WARMER, get_json, library, make_system, mock_upstreams, tick, upload

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


@contextmanager
def serve_html(html: bytes) -> Iterator[str]:
    """Serve ``html`` at / on 127.0.0.1 from a thread; yields the URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(html)))
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def chromium() -> str | None:
    """The Chromium binary, if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.browser
async def test_headless_chromium_renders_the_progress_bar(tmp_path: Path) -> None:
    """A real browser loads the worker's dashboard and shows the library at 100%."""
    browser = chromium()
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium); CI installs it")
    system = make_system()
    with mock_upstreams():
        _, summary = await upload(system, library("generic.csv"))
        await tick(system)
    _, progress = await get_json(system, f"/libraries/{summary['id']}")
    assert progress["percent"] == 100.0
    page = await system.fetch(WARMER, "/")
    html = (await page.text()).encode("utf-8")
    with serve_html(html) as url:
        done = await asyncio.to_thread(
            subprocess.run,
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
                "--no-first-run",
                f"--user-data-dir={tmp_path / 'profile'}",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert f'id="lib-{summary["id"]}"' in dom
    assert '<progress max="100" value="100.0"' in dom
    assert 'class="percent">100.0%</span>' in dom
