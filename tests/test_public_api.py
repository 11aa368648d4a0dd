"""The shared package's public doorway is pinned: changing it is a deliberate act."""

from __future__ import annotations

import ast
from pathlib import Path

import bookmeta

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_MODULES = {"workers", "js", "pyodide"}


def test_exported_names_are_pinned() -> None:
    """`__all__` is sorted, complete and importable."""

    def isort_style(name: str) -> tuple[int, str]:
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert list(bookmeta.__all__) == sorted(bookmeta.__all__, key=isort_style)
    for name in bookmeta.__all__:
        assert hasattr(bookmeta, name), name
    assert {"TwoTierCache", "CircuitBreaker", "classify", "canonical", "isbn_key"} <= set(
        bookmeta.__all__
    )


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_runtime_glue_is_confined_to_the_adapter_and_entry_modules() -> None:
    """Only bookmeta/runtime.py and each worker's entry.py import the runtime SDK."""
    offenders = []
    for path in [*ROOT.glob("shared/bookmeta/**/*.py"), *ROOT.glob("workers/**/*.py")]:
        if path.name == "entry.py" or path == ROOT / "shared/bookmeta/runtime.py":
            continue
        if _imports(path) & RUNTIME_MODULES:
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_workers_folder_never_shadows_the_sdk() -> None:
    """No `__init__.py` makes the top-level `workers/` folder an importable package."""
    assert not (ROOT / "workers" / "__init__.py").exists()
    assert not list(ROOT.glob("workers/*/__init__.py"))
