"""Per-isolate parts of the ISBNdb worker: settings keyed by the vars' values, one route table."""

from __future__ import annotations

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
    first = isolate.settings(env_with(RATE_LIMIT_MS="50"))
    assert isolate.settings(env_with(RATE_LIMIT_MS="50")) is first
    changed = isolate.settings(env_with(RATE_LIMIT_MS="75"))
    assert isinstance(changed, Settings)
    assert changed.rate_limit_ms == 75


def test_a_malformed_var_is_reported_until_fixed() -> None:
    """The ConfigError is returned for every invocation with the bad value, then cleared."""
    isolate = Isolate()
    for _ in range(2):
        got = isolate.settings(env_with(RATE_LIMIT_MS="fast"))
        assert isinstance(got, ConfigError)
        assert got.name == "RATE_LIMIT_MS"
        assert got.__traceback__ is None  # the cached error holds no frame (nor its env)
    assert isinstance(isolate.settings(env_with(RATE_LIMIT_MS="10")), Settings)
