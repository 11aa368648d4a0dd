"""Vars, settings and secrets: int_var bounds, the per-isolate SettingsCache and SecretCache."""

from __future__ import annotations

from typing import Any

import pytest

from bookmeta import ConfigError, FakeClock, SecretCache, SettingsCache, int_var
from bookmeta.runtime import RuntimeEnv
from harness import FakeContext, FakeSecret
from harness.envs import env_with
from harness.system import FakeEnv


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


async def test_secret_cache_reads_the_store_once_per_ttl() -> None:
    """A secret is read once per ttl_s, an unset one too; a changed value shows after the TTL."""
    clock = FakeClock(100.0)
    key, unset = FakeSecret("v1"), FakeSecret(None)
    env = RuntimeEnv(FakeEnv({"KEY": key, "UNSET": unset}), FakeContext())
    cache = SecretCache(ttl_s=60.0, clock=clock)
    assert await cache.get(env, "KEY") == "v1"
    key.value = "v2"
    clock.advance(59.9)
    assert await cache.get(env, "KEY") == "v1"
    assert await cache.get(env, "UNSET") is None
    assert await cache.get(env, "UNSET") is None
    assert (key.reads, unset.reads) == (1, 1)
    clock.advance(0.1)
    assert await cache.get(env, "KEY") == "v2"
    assert key.reads == 2
