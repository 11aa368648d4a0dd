"""Modules of devtools/ made importable (devtools/ is not a package and not on sys.path)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

DEVTOOLS = Path(__file__).resolve().parents[2] / "devtools"


def devtools_module(name: str) -> ModuleType:
    """devtools/<name>.py as a module, loaded once per process."""
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, DEVTOOLS / f"{name}.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses in it look their module up by name
        spec.loader.exec_module(module)
    return module


def fixture_upstream() -> ModuleType:
    """devtools/fixture_upstream.py: the fake Google Books / ISBNdb / Open Library server."""
    return devtools_module("fixture_upstream")


def workerd_runtime() -> ModuleType:
    """devtools/workerd_runtime.py: runtime selection, vendoring and generated configs."""
    return devtools_module("workerd_runtime")


def wrangler_dev() -> ModuleType:
    """devtools/wrangler_dev.py: start, time and stop a `wrangler dev` session."""
    return devtools_module("wrangler_dev")
