"""Import probe of the workerd bench: what each module of the workers costs to import in workerd.

bench/workerd.py runs it beside fresh copies of the three app packages. On its first request
it imports, in order, the runtime SDK, httpx, bookmeta, ``bookmeta.runtime`` and each app
package, timing every module's own execution (self time, as ``python -X importtime``
reports it) and each step's total; ``GET /`` answers the figures as JSON. Not at start-up:
the clock stands still while module top levels run there (the workers' own imports happen
then, so these figures are what their start-up spends importing). No I/O, no randomness.
"""

import importlib
import json
import sys
import time

from workers import Response, WorkerEntrypoint

STEPS = (
    "workers",
    "httpx",
    "bookmeta",
    "bookmeta.runtime",
    "proxy_app",
    "isbndb_app",
    "warmer_app",
)


class _TimedLoader:
    """Wraps a module's loader: times exec_module, minus the modules it imports (self time)."""

    stack = []  # noqa: RUF012 - one probe per isolate
    self_ms = {}  # noqa: RUF012

    def __init__(self, inner, name):
        self._inner = inner
        self._name = name

    def __getattr__(self, attr):
        return getattr(self._inner, attr)

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module):
        stack = _TimedLoader.stack
        stack.append(0.0)
        started = time.perf_counter()
        try:
            self._inner.exec_module(module)
        finally:
            total = (time.perf_counter() - started) * 1000.0
            children = stack.pop()
            _TimedLoader.self_ms[self._name] = round(total - children, 2)
            if stack:
                stack[-1] += total


class _TimingFinder:
    """A meta path finder that asks the others and wraps the loader they find."""

    def find_spec(self, name, path, target=None):
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _TimedLoader(spec.loader, name)
                return spec
        return None


def _resolution_ms():
    """The clock's step (None when it did not move within 100,000 reads: time is frozen)."""
    start = time.perf_counter()
    for _ in range(100_000):
        now = time.perf_counter()
        if now != start:
            return round((now - start) * 1000.0, 3)
    return None


def _measure():
    """Import every step, timed; in a request: at start-up the clock does not move."""
    finder = _TimingFinder()
    sys.meta_path.insert(0, finder)
    before = set(sys.modules)
    steps = {}
    try:
        for step in STEPS:
            started = time.perf_counter()
            importlib.import_module(step)
            steps[step] = round((time.perf_counter() - started) * 1000.0, 2)
    finally:
        sys.meta_path.remove(finder)
    return {
        "clock_resolution_ms": _resolution_ms(),
        "steps_ms": steps,
        "modules": len(set(sys.modules) - before),
        "self_ms": dict(sorted(_TimedLoader.self_ms.items(), key=lambda kv: -kv[1])),
    }


_FIGURES = []


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        if not _FIGURES:
            _FIGURES.append(json.dumps(_measure()))
        return Response(_FIGURES[0], headers={"content-type": "application/json"})
