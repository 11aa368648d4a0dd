"""devtools/fixture_upstream.py as an importable module (devtools/ is not on sys.path)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parents[2] / "devtools" / "fixture_upstream.py"
_NAME = "fixture_upstream"


def fixture_upstream() -> ModuleType:
    """The fixture upstream module, loaded once per process."""
    module = sys.modules.get(_NAME)
    if module is None:
        spec = importlib.util.spec_from_file_location(_NAME, SCRIPT)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[_NAME] = module  # dataclasses in it look their module up by name
        spec.loader.exec_module(module)
    return module
