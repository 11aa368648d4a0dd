"""devtools/wrangler_dev.py: how a `wrangler dev` session is put together and stopped."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

from harness.devtools import wrangler_dev

WD = wrangler_dev()
ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [ROOT / "wrangler.toml.d" / f"{w}.toml" for w in ("cache_warmer", "books_api_proxy")]


def _prepared() -> SimpleNamespace:
    return SimpleNamespace(env=lambda: {"MINIFLARE_WORKERD_PATH": "/x/workerd"})


def test_store_secrets_lists_the_environments_bindings() -> None:
    """The Secrets Store bindings of [env.fixtures] are found, once each."""
    found = WD.store_secrets(CONFIGS, "fixtures")
    names = [name for _, name in found]
    assert "Google_books_hardoooe" in names
    assert len(found) == len(set(found))
    assert WD.store_secrets(CONFIGS, "no-such-env") == []


def test_command_puts_the_primary_first_and_keeps_secrets_in_the_env_file(tmp_path: Path) -> None:
    """-c in the given order, the environment, vars, an env file, free ports, quiet logs."""
    dev = WD.WranglerDev(
        _prepared(),
        CONFIGS,
        tmp=tmp_path,
        env_file={"TOKEN": "t0k"},
        vars={"A": "1"},
        extra_args=["--test-scheduled"],
        name="s",
    )
    cmd = dev.command()
    configs = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "-c"]
    assert configs == [str(c) for c in CONFIGS]
    assert cmd[cmd.index("--env") + 1] == "fixtures"
    assert cmd[cmd.index("--port") + 1] == str(dev.port)
    assert cmd[cmd.index("--var") + 1] == "A:1"
    assert cmd[-1] == "--test-scheduled"
    assert dev.env_file.read_text() == "TOKEN=t0k\n"
    assert dev.env["MINIFLARE_WORKERD_PATH"] == "/x/workerd"
    assert dev.base == f"http://127.0.0.1:{dev.port}"
    bare = WD.WranglerDev(_prepared(), CONFIGS[:1], tmp=tmp_path, env_name=None, name="b")
    assert "--env" not in bare.command()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; only its parent has not reaped it yet


def test_stop_group_ends_the_process_and_its_children() -> None:
    """The whole process group goes, children included (as workerd under node)."""
    proc = subprocess.Popen(
        ["sh", "-c", "sleep 60 & echo $!; sleep 60"],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None
    with proc.stdout:
        child = int(proc.stdout.readline())
    WD.stop_group(proc)
    assert proc.poll() is not None
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the child outlived its group"
