"""Test setup: the `workers` stand-in goes on sys.path (tests only), before anything imports it."""

from __future__ import annotations

import sys
from pathlib import Path

_STUB = str(Path(__file__).parent / "harness" / "stub")
if _STUB not in sys.path:
    sys.path.insert(0, _STUB)
