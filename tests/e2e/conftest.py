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
import secrets
import subprocess
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest

from harness.devtools import fixture_upstream, workerd_runtime, wrangler_dev

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / "wrangler.toml.d"
# The primary (the warmer) comes first: only it gets a URL in a multi-config session.
WORKERS = ("cache_warmer", "books_api_proxy", "isbndb_worker")
FIXTURE_HOST = "127.0.0.1"
SKIP_PREFIX = "e2e: "


def fixture_secrets() -> list[tuple[str, str]]:
    """(store_id, secret_name) of every Secrets Store binding in the configs' [env.fixtures]."""
    configs = [CONFIG_DIR / f"{worker}.toml" for worker in WORKERS]
    return wrangler_dev().store_secrets(configs, "fixtures")


# --------------------------------------------------------------------------- preconditions


def _check_wrangler() -> None:
    """Fail (offline runtime present) or skip when the pinned wrangler is not installed."""
    if not wrangler_dev().WRANGLER_JS.is_file():
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


def _seed_secrets(dev: Any) -> None:
    """Put the API keys into the local Secrets Store emulation, as scripts/dev.sh does."""
    seeds = [(store, name, f"e2e-{name.lower()}") for store, name in fixture_secrets()]
    try:
        dev.seed(seeds)
    except wrangler_dev().StartFailed as exc:
        pytest.fail(f"e2e: {exc}")


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

    def upload(self, csv: str, *, filename: str | None = None) -> httpx.Response:
        """POST /libraries with the token: one CSV export (named ``filename``, if given)."""
        path = "/libraries" + (f"?filename={filename}" if filename else "")
        headers = {**self.auth, "content-type": "text/csv"}
        return self.warmer("POST", path, content=csv, headers=headers)

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
        return str(wrangler_dev().clean(self.log.read_text(errors="replace")))[-chars:]


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
        fixture_port = wrangler_dev().free_port()  # not 8790: a developer's `make dev` may hold it
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
    """The session's `wrangler dev` (devtools/wrangler_dev.py) of the three workers, warmer
    first, with a fresh admin token; ``restart()`` keeps its port and persist folder (KV, R2
    and Durable Object state survive). Starting skips or fails as the module doc says."""

    def __init__(self, tmp: Path, prepared: Any) -> None:
        self.token = secrets.token_urlsafe(24)
        self.session = wrangler_dev().WranglerDev(
            prepared,
            [prepared.config(worker) for worker in WORKERS],
            tmp=tmp,
            env_file={"WARMER_ADMIN_TOKEN": self.token},  # also keeps a .dev.vars out
            vars={"WARMER_ADMIN_TOKEN": self.token},
            extra_args=["--test-scheduled"],
        )
        self.base: str = self.session.base
        self.log: Path = self.session.log
        _seed_secrets(self.session)

    def start(self) -> None:
        """Start it and wait until the warmer's /health answers 200."""
        self._started(self.session.start)

    def restart(self) -> None:
        """Stop and start again on the same port and persist folder."""
        self._started(self.session.restart)

    def stop(self) -> None:
        self.session.stop()

    @staticmethod
    def _started(start: Any) -> None:
        try:
            start()
        except wrangler_dev().StartFailed as exc:
            if exc.network:
                _unavailable(f"e2e: {exc}")
            pytest.fail(f"e2e: {exc}")
