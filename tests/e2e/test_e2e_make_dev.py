"""README's first command, run as a user would: `make dev UPSTREAM=fixtures` serves README's
example search (and, with PRIMARY=warmer, one upload and one cron), then stops cleanly: no
process left behind, both ports free again.

Each test starts its own `make dev` on free ports with a temporary state folder, so it neither
disturbs nor depends on a developer's running session.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from harness.devtools import wrangler_dev
from harness.isbns import isbn_series

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
READY_DEADLINE_S = 180.0
STOP_DEADLINE_S = 30.0
README_SEARCH = "/search/auto?q=0-441-01359-7&maxResults=1"  # README's first example
CRON_URL = "/cdn-cgi/handler/scheduled?cron=*/15+*+*+*+*"


def _free_port() -> int:
    port: int = wrangler_dev().free_port()
    return port


def _port_free(port: int) -> bool:
    return not wrangler_dev().port_busy(port)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class MakeDev:
    proc: subprocess.Popen[bytes]
    base: str
    port: int
    fixture_port: int
    log: Path
    started: float
    ready_s: float = 0.0

    def text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def _token() -> str:
    for line in (ROOT / ".dev.vars").read_text().splitlines():
        if line.startswith("WARMER_ADMIN_TOKEN="):
            return line.partition("=")[2]
    raise AssertionError(".dev.vars has no WARMER_ADMIN_TOKEN")


@contextlib.contextmanager
def make_dev(tmp: Path, primary: str) -> Iterator[MakeDev]:
    """`make dev UPSTREAM=fixtures PRIMARY=<primary>` until the block ends, then Ctrl-C."""
    port, fixture_port = _free_port(), _free_port()
    log = tmp / f"make-dev-{primary}.log"
    env = {
        **os.environ,
        "UPSTREAM": "fixtures",
        "PRIMARY": primary,
        "PORT": str(port),
        "FIXTURE_PORT": str(fixture_port),
        "PERSIST": str(tmp / f"state-{primary}"),
        "NO_COLOR": "1",
    }
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["make", "dev"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal's foreground process group, as for a user
        )
    run = MakeDev(proc, f"http://127.0.0.1:{port}", port, fixture_port, log, started)
    try:
        deadline = started + READY_DEADLINE_S
        while True:
            assert proc.poll() is None, f"make dev exited {proc.returncode}:\n{run.text()}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{run.base}/health", timeout=5).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"not serving after {READY_DEADLINE_S} s"
            time.sleep(0.3)
        run.ready_s = time.monotonic() - started
        yield run
    finally:
        _interrupt(run)
        shutil.rmtree(ROOT / "wrangler.toml.d" / f".dev-{fixture_port}", ignore_errors=True)


def _interrupt(run: MakeDev) -> None:
    """Ctrl-C (SIGINT to the process group); SIGKILL only if it does not stop in time."""
    pgid = run.proc.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGINT)
    deadline = time.monotonic() + STOP_DEADLINE_S
    while time.monotonic() < deadline:
        run.proc.poll()  # reap make itself: a zombie still counts as a member of the group
        if not _group_alive(pgid):
            break
        time.sleep(0.2)
    leftover = _group_alive(pgid)
    if leftover:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    run.proc.wait(timeout=10)
    assert not leftover, f"processes left behind after Ctrl-C:\n{run.text()}"


def test_make_dev_serves_readmes_search(tmp_path: Path) -> None:
    """README's first command answers README's example search, then stops and frees its ports."""
    with make_dev(tmp_path, "proxy") as run:
        response = httpx.get(f"{run.base}{README_SEARCH}", timeout=60)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["kind"] == "books#volumes"
        [item] = body["items"]
        assert item["volumeInfo"]["title"] == "Dune"
        ids = {i["identifier"] for i in item["volumeInfo"]["industryIdentifiers"]}
        assert "9780441013593" in ids
        assert set(item["providers"]) == {"google", "isbndb", "openlibrary"}, body
        assert response.headers["x-cache"] == "miss"
        again = httpx.get(f"{run.base}{README_SEARCH}", timeout=60)
        assert again.headers["x-cache"] != "miss"
        _burst_of_misses_is_limited(run)
    assert _port_free(run.port), "the dev port is still taken"
    assert _port_free(run.fixture_port), "the fixture upstream's port is still taken"
    print(f"make dev (proxy): serving {run.ready_s:.1f} s after launch")


def _burst_of_misses_is_limited(run: MakeDev) -> None:
    """The Rate Limiting binding on workerd: one client's misses past LIMIT_IP_MISSES get 429.

    Its counts live in fixed 60 s windows: a burst may cross one boundary, so it runs for up to
    two limits' worth and checks that no 429 came before a whole limit had been admitted."""
    config = tomllib.loads((ROOT / "wrangler.toml.d" / "books_api_proxy.toml").read_text())
    fixtures = config["env"]["fixtures"]["ratelimits"]
    limit = next(b["simple"]["limit"] for b in fixtures if b["name"] == "LIMIT_IP_MISSES")
    statuses = []
    window_left = 0
    for isbn in isbn_series("978", 2 * limit + 2):
        response = httpx.get(f"{run.base}/search/auto?q={isbn}&maxResults=1", timeout=60)
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert response.json()["error"]["code"] == "too_many_requests"
            window_left = int(response.headers["retry-after"])
            assert 0 < window_left <= 60
            break
        assert response.status_code == 200, response.text
    assert statuses[-1] == 429, f"no 429 after {len(statuses)} misses"
    assert len(statuses) >= limit - 1, statuses  # README's search above was one miss already
    if window_left < 3:  # the window ends before three more misses can be sent: a new count
        return
    # The isolate remembers the refusal to the window's end: answered without the binding.
    for isbn in isbn_series("979", 3):
        response = httpx.get(f"{run.base}/search/auto?q={isbn}&maxResults=1", timeout=60)
        assert response.status_code == 429, response.text
        assert 0 < int(response.headers["retry-after"]) <= 60
    counters = httpx.get(f"{run.base}/metrics", timeout=60).json()["counters"]
    assert counters.get("limited.remembered", 0) >= 3, counters


def test_make_dev_warmer_upload_and_cron(tmp_path: Path) -> None:
    """PRIMARY=warmer: one upload with the token from .dev.vars warms through the queue; a cron
    tick answers too."""
    with make_dev(tmp_path, "warmer") as run:
        token = _token()
        csv = "Title,Author,ISBN\r\nNeuromancer,William Gibson,9780441569595\r\n"
        upload = httpx.post(
            f"{run.base}/libraries",
            content=csv,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "text/csv"},
            timeout=60,
        )
        assert upload.status_code in (200, 201, 202), upload.text
        library = upload.json()["id"]
        tick = httpx.get(f"{run.base}{CRON_URL}", timeout=120)
        assert tick.status_code == 200, tick.text
        deadline = time.monotonic() + 60  # the upload queued its units: they warm on their own
        while True:
            progress = httpx.get(
                f"{run.base}/libraries/{library}",
                headers={"Authorization": f"Bearer {token}"},
                timeout=60,
            )
            assert progress.status_code == 200, progress.text
            if progress.json()["done"] > 0:
                break
            assert time.monotonic() < deadline, progress.json()
            time.sleep(0.5)
    assert _port_free(run.port)
    assert _port_free(run.fixture_port)
    print(f"make dev (warmer): serving {run.ready_s:.1f} s after launch")
