"""End-to-end session: the fixture upstream plus ONE `wrangler dev` running all three workers.

The warmer is the primary (the only worker with a URL); the proxy and the ISBNdb worker are
reached only through the warmer's service bindings, via its authenticated debug routes:

* ``GET  /debug/proxy/<path>?<query>``   -> ``BOOKS_API_PROXY.fetch`` (answer passed through)
* ``GET  /debug/isbndb/<path>?<query>``  -> ``ISBNDB_WORKER.fetch``
* ``POST /debug/rpc/<proxy|isbndb>/<method>`` with a JSON array of positional args
  -> ``{"result": <the RPC method's return value>}``

The runtime comes from devtools/workerd_runtime.py: the offline runtime (``../shared/runtime``
or ``$BOOKMETA_RUNTIME_DIR``) when there is one, with generated copies of the configs (dev flag,
this session's fixture port) in a temporary folder; else wrangler's own runtime, which downloads
its Python bundle at start. Only in that second case may the suite skip (with one reason, where
the download fails); with the offline runtime present, anything that stops the system from
starting is a failure.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import time
import tomllib
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest

from harness.devtools import fixture_upstream, workerd_runtime

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / "wrangler.toml.d"
WRANGLER = ROOT / "scripts" / "wrangler.sh"
WRANGLER_JS = ROOT / "node_modules" / "wrangler" / "bin" / "wrangler.js"
# The primary (the warmer) comes first: only it gets a URL in a multi-config session.
WORKERS = ("cache_warmer", "books_api_proxy", "isbndb_worker")
FIXTURE_HOST = "127.0.0.1"
READY_DEADLINE_S = 180.0  # first start of the downloading runtime fetches the Pyodide bundle
# Log lines that mean the runtime could not fetch what it needs (not a bug in this repo).
NETWORK_FAILURE = re.compile(
    r"pyodide bundle failed|failed to download|fetch failed|enotfound|getaddrinfo|eai_again"
    r"|name or service not known|failed to lookup address|temporary failure in name resolution"
    r"|network is unreachable|econnrefused|etimedout|could not resolve host|dns error",
    re.IGNORECASE,
)
RUNTIME_FAILED = re.compile(r"workers runtime failed to start", re.IGNORECASE)
SKIP_PREFIX = "e2e: "
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _clean(text: str) -> str:
    return _ANSI.sub("", text).strip()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _relevant_line(log: str, pattern: re.Pattern[str] = NETWORK_FAILURE) -> str:
    """The last log line matching pattern (plain text preferred to JSON), else the last line."""
    lines = [line for line in (_clean(raw) for raw in log.splitlines()) if line]
    matching = [line for line in lines if pattern.search(line)]
    plain = [line for line in matching if not line.startswith("{")]
    best = (plain or matching or lines or ["(no output)"])[-1]
    return best[:300]


def fixture_secrets() -> list[tuple[str, str]]:
    """(store_id, secret_name) of every Secrets Store binding in the configs' [env.fixtures]."""
    found: set[tuple[str, str]] = set()
    for worker in WORKERS:
        with (CONFIG_DIR / f"{worker}.toml").open("rb") as fh:
            table = tomllib.load(fh)["env"]["fixtures"]
        for secret in table.get("secrets_store_secrets", []):
            found.add((secret["store_id"], secret["secret_name"]))
    return sorted(found)


# --------------------------------------------------------------------------- preconditions


def _check_wrangler() -> None:
    """Fail (offline runtime present) or skip when the pinned wrangler is not installed."""
    if not WRANGLER_JS.is_file():
        _unavailable(
            "e2e: Workers runtime unavailable: node_modules/wrangler is not installed "
            "(run `make node_modules/.stamp`)"
        )


def _check_entries() -> None:
    """Skip while a worker's entry module does not exist yet."""
    missing = [w for w in WORKERS if not (ROOT / "workers" / w / "entry.py").is_file()]
    if missing:
        pytest.skip(f"e2e: workers/{{{','.join(missing)}}}/entry.py not written yet")


def _unavailable(reason: str) -> NoReturn:
    """Skip where only the downloading runtime exists (offline); fail where the offline one does."""
    if workerd_runtime().runtime_source() is not None:
        pytest.fail(f"{reason} (the offline runtime is present, so this is a failure)")
    pytest.skip(reason)


def _prepare(config_dir: Path, fixture_port: int) -> Any:
    """Runtime, python_modules and generated configs (devtools/workerd_runtime.py)."""
    runtime = workerd_runtime()
    try:
        return runtime.prepare(config_dir, port=fixture_port)
    except (runtime.PrepareError, OSError, subprocess.SubprocessError) as exc:
        _unavailable(f"e2e: Workers runtime unavailable: {exc}")


def _seed_secrets(persist: Path, env: dict[str, str]) -> None:
    """Put the API keys into the local Secrets Store emulation, as scripts/dev.sh does."""
    for store_id, name in fixture_secrets():
        cmd = [str(WRANGLER), "secrets-store", "secret", "create", store_id, "--name", name]
        cmd += ["--value", f"e2e-{name.lower()}", "--scopes", "workers"]
        cmd += ["--persist-to", str(persist)]
        result = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, check=False, timeout=120, env=env
        )
        if result.returncode != 0:
            pytest.fail(
                f"e2e: seeding the local Secrets Store ({name}) failed:\n"
                f"{_clean(result.stdout + result.stderr)[-2000:]}"
            )


# --------------------------------------------------------------------------- the session


@dataclass
class WorkersSession:
    """A running `wrangler dev` of the three workers, warmer first, against the fixture upstream."""

    base: str  # the warmer's URL
    fixture: str  # the fixture upstream's URL
    token: str  # WARMER_ADMIN_TOKEN
    client: httpx.Client
    log: Path
    dev: WranglerDev

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def warmer(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A request to the warmer itself (the primary worker)."""
        return self.client.request(method, f"{self.base}{path}", **kwargs)

    def _forward(self, worker: str, path: str, params: dict[str, Any] | None) -> httpx.Response:
        return self.client.get(
            f"{self.base}/debug/{worker}/{path.lstrip('/')}", params=params, headers=self.auth
        )

    def proxy(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        """GET on the books-api-proxy through the warmer's BOOKS_API_PROXY binding."""
        return self._forward("proxy", path, params)

    def isbndb(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        """GET on the ISBNdb worker through the warmer's ISBNDB_WORKER binding."""
        return self._forward("isbndb", path, params)

    def rpc(self, worker: str, method: str, *args: Any) -> Any:
        """An RPC over the warmer's binding to worker (proxy|isbndb): the method's return value."""
        response = self.client.post(
            f"{self.base}/debug/rpc/{worker}/{method}", json=list(args), headers=self.auth
        )
        assert response.status_code == 200, (worker, method, response.status_code, response.text)
        body = response.json()
        assert isinstance(body, dict), body
        assert "result" in body, body
        return body["result"]

    def upstream_calls(self) -> dict[str, int]:
        """The fixture upstream's per-provider call counts."""
        counts: dict[str, int] = httpx.get(f"{self.fixture}/__calls", timeout=10).json()["counts"]
        return counts

    def upstream_requests(self, provider: str, path_part: str) -> int:
        """How many requests the fixture upstream got from ``provider`` whose path holds
        ``path_part`` (counts that background warming of other books cannot disturb)."""
        requests = httpx.get(f"{self.fixture}/__calls", timeout=10).json()["requests"]
        return sum(1 for r in requests if r["provider"] == provider and path_part in r["path"])

    def scheduled(self, cron: str) -> httpx.Response:
        """Fire one cron tick on the warmer (wrangler dev's trigger endpoint)."""
        return self.client.get(
            f"{self.base}/cdn-cgi/handler/scheduled", params={"cron": cron, "format": "json"}
        )

    def log_tail(self, chars: int = 4000) -> str:
        return _clean(self.log.read_text(errors="replace"))[-chars:]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate wrangler and everything it started (workerd) via the process group."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
    # workerd may outlive node for a moment: make sure the group is gone.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _wait_ready(proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
    """Poll the warmer's /health until 200; skip if the runtime cannot start, fail otherwise."""
    deadline = time.monotonic() + READY_DEADLINE_S
    last_error = "no answer yet"
    while True:
        text = log.read_text(errors="replace")
        if RUNTIME_FAILED.search(text) or proc.poll() is not None:
            if NETWORK_FAILURE.search(text):
                _unavailable(
                    "e2e: Workers runtime cannot start (it downloads its Python runtime; "
                    f"offline?): {_relevant_line(text)}"
                )
            pytest.fail(
                f"e2e: `wrangler dev` stopped before it was ready (exit {proc.poll()}):\n"
                f"{_clean(text)[-4000:]}"
            )
        try:
            response = httpx.get(f"{base}/health", timeout=10)
            if response.status_code == 200:
                return
            last_error = f"GET /health -> {response.status_code}: {response.text[:300]}"
        except httpx.HTTPError as exc:
            last_error = f"GET /health -> {exc!r}"
        if time.monotonic() > deadline:
            if NETWORK_FAILURE.search(text):
                _unavailable(
                    f"e2e: Workers runtime not ready after {READY_DEADLINE_S:.0f} s (offline?): "
                    f"{_relevant_line(text)}"
                )
            pytest.fail(
                f"e2e: warmer not ready after {READY_DEADLINE_S:.0f} s ({last_error}):\n"
                f"{_clean(text)[-4000:]}"
            )
        time.sleep(0.5)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Report the session's skip at one place, so `-rs` prints its reason once, not per test."""
    report: pytest.TestReport = yield
    if (
        report.skipped
        and call.when == "setup"
        and item.get_closest_marker("e2e") is not None
        and isinstance(report.longrepr, tuple)
        and str(report.longrepr[2]).removeprefix("Skipped: ").startswith(SKIP_PREFIX)
    ):
        report.longrepr = (str(Path(__file__).relative_to(ROOT)), None, report.longrepr[2])
    return report


@pytest.fixture(scope="session")
def e2e(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkersSession]:
    """The running system; where it cannot start: one skip reason, or a failure (see module doc)."""
    _check_wrangler()
    _check_entries()
    tmp = tmp_path_factory.mktemp("e2e")
    with contextlib.ExitStack() as stack:
        fixture_port = _free_port()  # not 8790: a developer's `make dev` may hold it
        fixture_url = stack.enter_context(
            fixture_upstream().run_in_thread(port=fixture_port, host=FIXTURE_HOST)
        )
        prepared = _prepare(tmp / "configs", fixture_port)
        dev = WranglerDev(tmp, prepared)
        try:
            dev.start()
            with httpx.Client(timeout=60) as client:
                yield WorkersSession(dev.base, fixture_url, dev.token, client, dev.log, dev)
        finally:
            dev.stop()


class WranglerDev:
    """One `wrangler dev` of the three workers (warmer first) that can be stopped and restarted
    on the same port and persist folder (KV, R2 and Durable Object state survive a restart)."""

    def __init__(self, tmp: Path, prepared: Any) -> None:
        self.tmp = tmp
        self.prepared = prepared
        self.persist = tmp / "state"
        self.token = secrets.token_urlsafe(24)
        self.env_file = tmp / "e2e.env"  # also stops wrangler reading a developer's .dev.vars
        self.env_file.write_text(f"WARMER_ADMIN_TOKEN={self.token}\n")
        self.env = {
            **os.environ,
            **prepared.env(),
            "CI": "true",
            "WRANGLER_SEND_METRICS": "false",
            "CLOUDFLARE_INCLUDE_PROCESS_ENV": "false",
            "CLOUDFLARE_LOAD_DEV_VARS_FROM_DOT_ENV": "true",
            "NO_COLOR": "1",
            "FORCE_COLOR": "0",
        }
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "wrangler-dev.log"
        self.proc: subprocess.Popen[bytes] | None = None
        _seed_secrets(self.persist, self.env)

    def command(self) -> list[str]:
        cmd = [str(WRANGLER), "dev"]
        for worker in WORKERS:
            cmd += ["-c", str(self.prepared.config(worker))]
        cmd += ["--env", "fixtures", "--ip", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--inspector-port", str(_free_port()), "--persist-to", str(self.persist)]
        cmd += ["--env-file", str(self.env_file), "--var", f"WARMER_ADMIN_TOKEN:{self.token}"]
        cmd += ["--test-scheduled", "--show-interactive-dev-session=false", "--log-level", "info"]
        return cmd

    def start(self) -> None:
        """Start it and wait until the warmer's /health answers 200."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.command(),
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,  # its own process group: teardown kills workerd too
            )
        _wait_ready(self.proc, self.base, self.log)

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None

    def restart(self) -> None:
        """Stop and start again on the same port and persist folder."""
        self.stop()
        deadline = time.monotonic() + 30
        while _port_busy(self.port) and time.monotonic() < deadline:
            time.sleep(0.2)
        self.start()


def _port_busy(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
