"""One `wrangler dev` session of some workers on a prepared runtime (stdlib only).

Shared by the e2e tests (tests/e2e/conftest.py) and the workerd bench (bench/workerd.py), so
both start, time and stop workerd the same way:

* ``WranglerDev(prepared, configs, tmp=...)``: the first config is the primary (the only
  worker with a URL in a multi-config session); free ports for the URL and the inspector; a
  persist folder (KV, R2, Durable Objects, the Secrets Store emulation) that survives
  ``restart()``; an env file (it also keeps a developer's ``.dev.vars`` out).
* ``start()`` waits until ``ready_path`` answers 200 and records how long the launch took to
  listen and to answer; a failure raises ``StartFailed`` (``network=True`` when the log says
  the runtime could not download what it needs: callers may skip instead of failing).
* ``stop()`` ends wrangler and workerd through their process group: nothing is left behind.

``prepared`` is devtools/workerd_runtime.py's ``Prepared`` (runtime wrapper + generated configs).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WRANGLER = ROOT / "scripts" / "wrangler.sh"
WRANGLER_JS = ROOT / "node_modules" / "wrangler" / "bin" / "wrangler.js"
READY_DEADLINE_S = 180.0  # first start of the downloading runtime fetches the Pyodide bundle
STOP_TIMEOUT_S = 15.0
# Log lines that mean the runtime could not fetch what it needs (not a bug in this repo).
NETWORK_FAILURE = re.compile(
    r"pyodide bundle failed|failed to download|fetch failed|enotfound|getaddrinfo|eai_again"
    r"|name or service not known|failed to lookup address|temporary failure in name resolution"
    r"|network is unreachable|econnrefused|etimedout|could not resolve host|dns error",
    re.IGNORECASE,
)
RUNTIME_FAILED = re.compile(r"workers runtime failed to start", re.IGNORECASE)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Quiet and reproducible: no metrics, no colours, no process env leaking into the workers.
BASE_ENV = {
    "CI": "true",
    "WRANGLER_SEND_METRICS": "false",
    "CLOUDFLARE_INCLUDE_PROCESS_ENV": "false",
    "CLOUDFLARE_LOAD_DEV_VARS_FROM_DOT_ENV": "true",
    "NO_COLOR": "1",
    "FORCE_COLOR": "0",
}


class StartFailed(Exception):  # noqa: N818 - reads as the outcome, like CircuitOpen
    """`wrangler dev` did not become ready; ``network`` says the runtime could not download."""

    def __init__(self, message: str, *, network: bool) -> None:
        super().__init__(message)
        self.network = network


def clean(text: str) -> str:
    """Log text without ANSI colour codes."""
    return _ANSI.sub("", text).strip()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_busy(port: int) -> bool:
    """Something accepts connections on 127.0.0.1:port."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def relevant_line(log: str, pattern: re.Pattern[str] = NETWORK_FAILURE) -> str:
    """The last log line matching pattern (plain text preferred to JSON), else the last line."""
    lines = [line for line in (clean(raw) for raw in log.splitlines()) if line]
    matching = [line for line in lines if pattern.search(line)]
    plain = [line for line in matching if not line.startswith("{")]
    best = (plain or matching or lines or ["(no output)"])[-1]
    return best[:300]


def store_secrets(configs: Iterable[Path], env_name: str) -> list[tuple[str, str]]:
    """(store_id, secret_name) of every Secrets Store binding of ``[env.<env_name>]``."""
    found: set[tuple[str, str]] = set()
    for config in configs:
        with config.open("rb") as fh:
            table = tomllib.load(fh).get("env", {}).get(env_name, {})
        for secret in table.get("secrets_store_secrets", []):
            found.add((secret["store_id"], secret["secret_name"]))
    return sorted(found)


def seed_secrets(
    persist: Path, env: Mapping[str, str], secrets: Iterable[tuple[str, str, str]]
) -> None:
    """Put (store_id, name, value) into the local Secrets Store emulation under ``persist``."""
    for store_id, name, value in secrets:
        cmd = [str(WRANGLER), "secrets-store", "secret", "create", store_id, "--name", name]
        cmd += ["--value", value, "--scopes", "workers", "--persist-to", str(persist)]
        result = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, check=False, timeout=120, env=dict(env)
        )
        if result.returncode != 0:
            raise StartFailed(
                f"seeding the local Secrets Store ({name}) failed:\n"
                f"{clean(result.stdout + result.stderr)[-2000:]}",
                network=False,
            )


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a process started with its own session and everything in its group."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=STOP_TIMEOUT_S)
    # workerd may outlive node for a moment: make sure the group is gone.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _get(url: str, timeout_s: float) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return int(response.status), response.read(300).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(300).decode("utf-8", "replace")


@dataclass
class Timing:
    """Seconds from launch until the port listened and until ``ready_path`` answered 200."""

    listening_s: float
    ready_s: float


class WranglerDev:
    """A `wrangler dev` of ``configs`` (the first is the primary) that can be stopped and
    restarted on the same port and persist folder (KV, R2 and Durable Object state survive)."""

    def __init__(
        self,
        prepared: Any,
        configs: Sequence[Path],
        *,
        tmp: Path,
        env_name: str | None = "fixtures",
        env_file: Mapping[str, str] | None = None,
        vars: Mapping[str, str] | None = None,
        ready_path: str = "/health",
        ready_deadline_s: float = READY_DEADLINE_S,
        name: str = "wrangler-dev",
        extra_args: Sequence[str] = (),
    ) -> None:
        self.prepared = prepared
        self.configs = list(configs)
        self.tmp = tmp
        self.env_name = env_name
        self.vars = dict(vars or {})
        self.ready_path = ready_path
        self.ready_deadline_s = ready_deadline_s
        self.extra_args = list(extra_args)
        self.persist = tmp / f"{name}-state"
        self.env_file = tmp / f"{name}.env"
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in (env_file or {}).items()))
        self.env = {**os.environ, **prepared.env(), **BASE_ENV}
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tmp / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.timing: Timing | None = None

    def seed(self, secrets: Iterable[tuple[str, str, str]]) -> None:
        """Seed the Secrets Store of this session's persist folder (before ``start``)."""
        seed_secrets(self.persist, self.env, secrets)

    def command(self) -> list[str]:
        cmd = [str(WRANGLER), "dev"]
        for config in self.configs:
            cmd += ["-c", str(config)]
        if self.env_name:
            cmd += ["--env", self.env_name]
        cmd += ["--ip", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--inspector-port", str(free_port()), "--persist-to", str(self.persist)]
        cmd += ["--env-file", str(self.env_file)]
        for key, value in self.vars.items():
            cmd += ["--var", f"{key}:{value}"]
        cmd += ["--show-interactive-dev-session=false", "--log-level", "info", *self.extra_args]
        return cmd

    def start(self) -> Timing:
        """Start it and wait until ``ready_path`` answers 200; raises StartFailed."""
        with self.log.open("ab") as out:
            launched = time.monotonic()
            self.proc = subprocess.Popen(
                self.command(),
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,  # its own process group: stop() ends workerd too
            )
        try:
            self.timing = self._wait_ready(self.proc, launched)
        except BaseException:
            self.stop()
            raise
        return self.timing

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
            self.proc = None

    def restart(self) -> Timing:
        """Stop and start again on the same port and persist folder."""
        self.stop()
        deadline = time.monotonic() + 30
        while port_busy(self.port) and time.monotonic() < deadline:
            time.sleep(0.2)
        return self.start()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def _wait_ready(self, proc: subprocess.Popen[bytes], launched: float) -> Timing:
        deadline = launched + self.ready_deadline_s
        listening: float | None = None
        last_error = "no answer yet"
        while True:
            text = self.log_text()
            if RUNTIME_FAILED.search(text) or proc.poll() is not None:
                if NETWORK_FAILURE.search(text):
                    raise StartFailed(
                        "Workers runtime cannot start (it downloads its Python runtime; "
                        f"offline?): {relevant_line(text)}",
                        network=True,
                    )
                raise StartFailed(
                    f"`wrangler dev` stopped before it was ready (exit {proc.poll()}):\n"
                    f"{clean(text)[-4000:]}",
                    network=False,
                )
            if listening is None and port_busy(self.port):
                listening = time.monotonic() - launched
            if listening is not None:
                try:
                    status, body = _get(self.base + self.ready_path, timeout_s=60)
                    if status == 200:
                        return Timing(listening, time.monotonic() - launched)
                    last_error = f"GET {self.ready_path} -> {status}: {body}"
                except OSError as exc:
                    last_error = f"GET {self.ready_path} -> {exc!r}"
            if time.monotonic() > deadline:
                raise StartFailed(
                    f"not ready after {self.ready_deadline_s:.0f} s ({last_error}):\n"
                    f"{clean(text)[-4000:]}",
                    network=bool(NETWORK_FAILURE.search(text)),
                )
            time.sleep(0.05)
