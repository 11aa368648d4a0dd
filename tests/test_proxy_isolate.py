"""Per-isolate parts of the proxy: settings keyed by the vars' values, one route table."""

from __future__ import annotations

from typing import Any

import pytest

from bookmeta import ConfigError
from bookmeta.runtime import RuntimeEnv
from harness import FakeContext
from harness.system import FakeEnv
from proxy_app import Isolate, build_app
from proxy_app.config import VAR_NAMES, load_settings
from proxy_app.validation import _ASCII_REFUSED_RE, _refused


class RecordingEnv(RuntimeEnv):
    """A RuntimeEnv that remembers which vars were read."""

    def __init__(self, bindings: dict[str, Any]) -> None:
        super().__init__(FakeEnv(bindings), FakeContext())
        self.read: list[str] = []

    def var(self, name: str, default: str) -> str:
        self.read.append(name)
        return super().var(name, default)


def env_with(**vars: str) -> RuntimeEnv:
    return RuntimeEnv(FakeEnv(vars), FakeContext())


def test_var_names_are_every_var_load_settings_reads() -> None:
    """The cache key covers every var the settings depend on."""
    env = RecordingEnv({})
    load_settings(env)
    assert sorted(set(env.read)) == sorted(VAR_NAMES)


def test_settings_are_parsed_once_while_the_vars_stay_the_same() -> None:
    """Two invocations with equal vars share one Settings; a changed var is parsed again."""
    isolate = Isolate()
    first = isolate.settings(env_with(CACHE_HOT_TTL="120"))
    assert isolate.settings(env_with(CACHE_HOT_TTL="120")) is first
    changed = isolate.settings(env_with(CACHE_HOT_TTL="240"))
    assert changed.hot_ttl_s == 240
    assert isolate.settings(env_with()).hot_ttl_s == 3600


def test_an_absent_var_and_an_empty_one_are_different_keys() -> None:
    """An empty numeric var is malformed even after the absent one was parsed."""
    isolate = Isolate()
    isolate.settings(env_with())
    with pytest.raises(ConfigError):
        isolate.settings(env_with(CACHE_HOT_TTL=""))


def test_a_malformed_var_raises_on_every_invocation() -> None:
    """A ConfigError is never cached as settings."""
    isolate = Isolate()
    for _ in range(2):
        with pytest.raises(ConfigError):
            isolate.settings(env_with(RATE_LIMIT_MS="fast"))


def test_the_route_table_is_built_once_per_isolate() -> None:
    """Apps of one isolate share its router; another isolate has its own."""
    isolate = Isolate()
    one, two = build_app(env_with(), isolate), build_app(env_with(), isolate)
    assert one.router is two.router
    assert build_app(env_with(), Isolate()).router is not one.router


@pytest.mark.parametrize("code", range(128), ids=lambda c: f"U+{c:04X}")
def test_ascii_fast_path_refuses_exactly_what_the_general_rule_refuses(code: int) -> None:
    """The ASCII regex and the per-character rule agree on every ASCII character."""
    ch = chr(code)
    assert (_ASCII_REFUSED_RE.search(f"a{ch}b") is not None) is _refused(ch)
