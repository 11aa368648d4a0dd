"""Per-isolate parts of the ISBNdb worker: settings keyed by the vars' values, one route table."""

from __future__ import annotations

import pytest

from bookmeta import ConfigError
from harness.envs import RecordingEnv, env_with
from isbndb_app import Isolate
from isbndb_app.config import VAR_NAMES, Settings


def test_var_names_are_every_var_settings_read() -> None:
    """The cache key covers every var the settings depend on."""
    env = RecordingEnv({})
    Settings.from_env(env)
    assert sorted(set(env.read)) == sorted(VAR_NAMES)


def test_settings_are_parsed_once_while_the_vars_stay_the_same() -> None:
    """Two invocations with equal vars share one Settings; a changed var is parsed again."""
    isolate = Isolate()
    first = isolate.settings(env_with(ISBNDB_RATE_PER_S="3"))
    assert isolate.settings(env_with(ISBNDB_RATE_PER_S="3")) is first
    changed = isolate.settings(env_with(ISBNDB_RATE_PER_S="5"))
    assert isinstance(changed, Settings)
    assert changed.limits.rate_per_s == 5


def test_a_malformed_var_is_reported_until_fixed() -> None:
    """The ConfigError is returned for every invocation with the bad value, then cleared."""
    isolate = Isolate()
    for _ in range(2):
        got = isolate.settings(env_with(ISBNDB_RATE_PER_S="fast"))
        assert isinstance(got, ConfigError)
        assert got.name == "ISBNDB_RATE_PER_S"
        assert got.__traceback__ is None  # the cached error holds no frame (nor its env)
    assert isinstance(isolate.settings(env_with(ISBNDB_RATE_PER_S="1")), Settings)


@pytest.mark.parametrize(
    ("vars", "name"),
    [
        ({"ISBNDB_RATE_PER_S": "0"}, "ISBNDB_RATE_PER_S"),
        ({"ISBNDB_DAILY_QUOTA": "0"}, "ISBNDB_DAILY_QUOTA"),
        ({"ISBNDB_WARM_RESERVE": "-1"}, "ISBNDB_WARM_RESERVE"),
        ({"ISBNDB_DAILY_QUOTA": "100", "ISBNDB_WARM_RESERVE": "101"}, "ISBNDB_WARM_RESERVE"),
    ],
    ids=["no-rate", "no-quota", "negative-reserve", "reserve-over-quota"],
)
def test_guard_limits_are_checked(vars: dict[str, str], name: str) -> None:
    """A rate or quota below 1, or a reserve outside 0..quota, is a ConfigError naming it."""
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env_with(**vars))
    assert info.value.name == name


def test_guard_limits_default_to_the_basic_plan() -> None:
    """Without vars: 1 request/s, 2,000 calls a day, 1,000 of them kept for warming."""
    limits = Settings.from_env(env_with()).limits
    assert (limits.rate_per_s, limits.daily_quota, limits.warm_reserve) == (1, 2000, 1000)
    assert limits.public_quota == 1000
