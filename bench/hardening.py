"""Cost of refusing hostile bodies (issue 13): the JSON nesting scan and the multipart parser.

Each figure is the median of a few runs of the pure function on a body of the issue's shape;
the goal is that refusing costs little next to the body's own size (linear, no recursion).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from bookmeta import json_depth
from warmer_app.multipart import MultipartError, read_file_part

RUNS = 5
CT = "multipart/form-data; boundary=B"


def _median_ms(work: Callable[[], object]) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000.0)
    return round(statistics.median(times), 2)


def _form(parts: list[bytes]) -> bytes:
    return b"".join(b"--B\r\n" + p + b"\r\n" for p in parts) + b"--B--\r\n"


def _refuse(body: bytes) -> None:
    try:
        read_file_part(body, CT)
    except MultipartError:
        return
    raise AssertionError("the form was not refused")


def measure() -> dict[str, Any]:
    """Milliseconds per operation, with each body's size."""
    deep = "[" * 100_000 + "]" * 100_000
    wide = "[" + "[]," * 3_300_000 + "[]]"  # ~10 MB of brackets, depth 2
    tiny = [b'Content-Disposition: form-data; name="x"\r\n\r\ny'] * 9_999
    file_head = b'Content-Disposition: form-data; name="file"; filename="lib.csv"\r\n\r\n'
    many_parts = _form([*tiny, file_head + b"x"])
    big_file = _form([file_head + b"title,isbn13\r\n" + b"Dune,9780441013593\r\n" * 500_000])
    return {
        "json_depth_100k_levels": {"bytes": len(deep), "ms": _median_ms(lambda: json_depth(deep))},
        "json_depth_10mb_of_brackets": {
            "bytes": len(wide),
            "ms": _median_ms(lambda: json_depth(wide)),
        },
        "multipart_10k_parts_refused": {
            "bytes": len(many_parts),
            "ms": _median_ms(lambda: _refuse(many_parts)),
            "before": "3,900 ms (e-mail parser, issue 13)",
        },
        "multipart_10mb_file_parsed": {
            "bytes": len(big_file),
            "ms": _median_ms(lambda: read_file_part(big_file, CT)),
        },
    }
