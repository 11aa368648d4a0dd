"""Small RuntimeEnv builders for tests that exercise an app without a whole System."""

from __future__ import annotations

from typing import Any

from bookmeta.runtime import RuntimeEnv

from .bindings import FakeContext
from .system import FakeEnv


class RecordingEnv(RuntimeEnv):
    """A RuntimeEnv over plain bindings that remembers which vars were read."""

    def __init__(self, bindings: dict[str, Any]) -> None:
        super().__init__(FakeEnv(bindings), FakeContext())
        self.read: list[str] = []

    def var(self, name: str, default: str) -> str:
        self.read.append(name)
        return super().var(name, default)


def env_with(**vars: str) -> RuntimeEnv:
    """A RuntimeEnv holding only ``vars``."""
    return RuntimeEnv(FakeEnv(vars), FakeContext())
