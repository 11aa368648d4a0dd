"""Vars and settings: int_var bounds and the per-isolate SettingsCache."""

from __future__ import annotations

from typing import Any

import pytest

from bookmeta import ConfigError, SettingsCache, int_var
from harness.envs import env_with


@pytest.mark.parametrize(
    ("raw", "message"),
    [("abc", "must be an integer"), ("0", "must be >= 1"), ("201", "must be <= 200")],
)
def test_int_var_bounds_raise_config_errors(raw: str, message: str) -> None:
    """Malformed or out-of-range vars are ConfigError naming the var."""
    with pytest.raises(ConfigError, match=message) as info:
        int_var(env_with(N=raw), "N", 5, minimum=1, maximum=200)
    assert info.value.name == "N"


def test_settings_cache_parses_once_per_var_values_and_keeps_no_context() -> None:
    """Same vars: parsed once; changed vars: parsed again; errors carry no traceback/context."""
    parsed: list[int] = []

    def parse(env: Any) -> int:
        value = int_var(env, "N", 5, minimum=1)
        parsed.append(value)
        return value

    cache: SettingsCache[int] = SettingsCache(["N"], parse)
    assert cache.get(env_with(N="3")) == 3
    assert cache.get(env_with(N="3")) == 3
    assert parsed == [3]
    error = cache.get(env_with(N="x"))
    assert isinstance(error, ConfigError)
    assert error.__traceback__ is None
    assert error.__context__ is None
    assert error.__cause__ is None
    assert cache.get(env_with(N="4")) == 4
