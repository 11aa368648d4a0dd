"""Entry modules import without randomness or network (Workers forbid both at global scope,
and production snapshots what the imports built: nothing drawn or fetched may end up in it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STUB = ROOT / "tests" / "harness" / "stub"
WORKERS = ("isbndb_worker", "books_api_proxy", "cache_warmer")

# httpx imports its command-line extras (rich, click) when they are installed, as in this dev
# environment; they are not vendored for the runtime (python_modules), so not imported there.
_REFUSE = """
import os, random, secrets, socket, sys, uuid
for extra in ("rich", "click", "pygments"):
    sys.modules[extra] = None
def make(name):
    def stop(*args, **kwargs):
        raise SystemExit(f"{name} called at import")
    return stop
for module, names in (
    (random, ["random", "uniform", "randint", "randrange", "choice", "getrandbits", "seed"]),
    (uuid, ["uuid1", "uuid4"]),
    (os, ["urandom"]),
    (secrets, ["token_bytes", "token_hex", "token_urlsafe", "randbelow", "choice"]),
):
    for name in names:
        setattr(module, name, make(f"{module.__name__}.{name}"))
socket.socket.connect = make("socket.connect")
socket.create_connection = make("socket.create_connection")
socket.getaddrinfo = make("socket.getaddrinfo")
"""


@pytest.mark.parametrize("worker", WORKERS)
def test_entry_module_imports_without_randomness_or_network(worker: str) -> None:
    """Loading workers/<worker>/entry.py draws no random numbers and opens no connection."""
    folder = ROOT / "workers" / worker
    paths = [str(STUB), str(ROOT / "shared"), str(folder)]
    code = (
        f"import sys; sys.path[:0] = {paths!r}\n"
        + _REFUSE
        + "import importlib.util as u\n"
        + f"s = u.spec_from_file_location('entry', {str(folder / 'entry.py')!r})\n"
        + "m = u.module_from_spec(s); s.loader.exec_module(m)\n"
        + "assert hasattr(m, 'Default')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
