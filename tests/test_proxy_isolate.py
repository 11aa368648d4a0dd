"""Per-isolate parts of the proxy: settings keyed by the vars' values, one route table."""

from __future__ import annotations

import pytest

from bookmeta import ConfigError
from harness.envs import RecordingEnv, env_with
from proxy_app import Isolate, build_app
from proxy_app.config import VAR_NAMES, Settings, load_settings
from proxy_app.validation import _ASCII_REFUSED_RE, _refused


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
    assert isinstance(changed, Settings)
    assert changed.hot_ttl_s == 240
    default = isolate.settings(env_with())
    assert isinstance(default, Settings)
    assert default.hot_ttl_s == 3600


def test_an_absent_var_and_an_empty_one_are_different_keys() -> None:
    """An empty numeric var is malformed even after the absent one was parsed."""
    isolate = Isolate()
    isolate.settings(env_with())
    assert isinstance(isolate.settings(env_with(CACHE_HOT_TTL="")), ConfigError)


def test_a_malformed_var_is_reported_until_fixed() -> None:
    """The ConfigError is returned (not raised) for every invocation with the bad value."""
    isolate = Isolate()
    for _ in range(2):
        got = isolate.settings(env_with(RATE_LIMIT_MS="fast"))
        assert isinstance(got, ConfigError)
        assert got.name == "RATE_LIMIT_MS"
        assert got.__traceback__ is None
    assert isinstance(isolate.settings(env_with(RATE_LIMIT_MS="10")), Settings)


def test_a_malformed_var_still_builds_the_app() -> None:
    """build_app never raises ConfigError: it keeps the error and runs on default settings."""
    app = build_app(env_with(CACHE_HOT_TTL="1h"), Isolate())
    assert app.config_error is not None
    assert app.config_error.name == "CACHE_HOT_TTL"
    assert app.settings == Settings()


@pytest.mark.parametrize("code", range(128), ids=lambda c: f"U+{c:04X}")
def test_ascii_fast_path_refuses_exactly_what_the_general_rule_refuses(code: int) -> None:
    """The ASCII regex and the per-character rule agree on every ASCII character."""
    ch = chr(code)
    assert (_ASCII_REFUSED_RE.search(f"a{ch}b") is not None) is _refused(ch)
