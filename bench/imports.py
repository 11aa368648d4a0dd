"""Import cost of each worker's entry module (cold, `python -X importtime`) against httpx alone."""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STUB = ROOT / "tests" / "harness" / "stub"
WORKERS = ("isbndb_worker", "books_api_proxy", "cache_warmer")
RUNS = 7


def _importtime(code: str, extra_path: list[Path]) -> tuple[float, int]:
    """Milliseconds (sum of self times) and module count of one cold import."""
    prelude = "import sys; sys.path[:0] = %r; " % [str(p) for p in extra_path]
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", prelude + code],
        capture_output=True,
        text=True,
        check=True,
    )
    self_us = 0
    count = 0
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        fields = line.split("|")
        self_us += int(fields[0].split(":")[1])
        count += 1
    return self_us / 1000.0, count


def _baseline_modules() -> tuple[float, int]:
    # The interpreter's own start-up imports (site, encodings...) are in every run: subtract them.
    return _median([_importtime("pass", []) for _ in range(RUNS)])


def _median(samples: list[tuple[float, int]]) -> tuple[float, int]:
    return statistics.median(s[0] for s in samples), int(statistics.median(s[1] for s in samples))


def measure() -> dict[str, Any]:
    """Import figures for httpx and each entry module, net of interpreter start-up."""
    base_ms, base_n = _baseline_modules()
    httpx_ms, httpx_n = _median([_importtime("import httpx", []) for _ in range(RUNS)])
    out: dict[str, Any] = {
        "httpx": {"ms": round(httpx_ms - base_ms, 2), "modules": httpx_n - base_n},
    }
    floor = httpx_ms - base_ms
    for worker in WORKERS:
        folder = ROOT / "workers" / worker
        code = (
            "import importlib.util as u; "
            f"s = u.spec_from_file_location('entry', {str(folder / 'entry.py')!r}); "
            "m = u.module_from_spec(s); s.loader.exec_module(m)"
        )
        ms, n = _median([_importtime(code, [STUB, ROOT / "shared", folder]) for _ in range(RUNS)])
        net = ms - base_ms
        out[worker] = {
            "ms": round(net, 2),
            "modules": n - base_n,
            "ratio_to_httpx": round(net / floor, 2),
        }
    return out
