"""devtools/workerd_runtime.py: runtime selection, offline vendoring inputs, generated configs."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest

from harness.devtools import workerd_runtime

RT = workerd_runtime()
ROOT = Path(__file__).resolve().parents[1]
WORKERS = ("isbndb_worker", "books_api_proxy", "cache_warmer")


def test_deployable_configs_never_carry_the_dev_flag() -> None:
    """The offline runtime's compat flag lives only in generated copies, never in what deploys."""
    tracked = subprocess.run(
        ["git", "ls-files", "wrangler.toml.d"], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    configs = [ROOT / p for p in tracked if p.endswith(".toml")] or list(
        (ROOT / "wrangler.toml.d").glob("*.toml")
    )
    assert configs
    for config in configs:
        assert RT.DEV_FLAG not in config.read_text(), config


def test_generated_configs_add_the_flag_and_keep_the_entry(tmp_path: Path) -> None:
    """Copies elsewhere: main still names the same entry, the flag added once, the rest equal."""
    out = RT.write_dev_configs(tmp_path / "gen", dev_flag=True)
    for worker in WORKERS:
        original = tomllib.loads((RT.CONFIG_DIR / f"{worker}.toml").read_text())
        copy = tomllib.loads((out / f"{worker}.toml").read_text())
        assert (out / copy["main"]).resolve() == (RT.CONFIG_DIR / original["main"]).resolve()
        assert copy["compatibility_flags"] == [*original["compatibility_flags"], RT.DEV_FLAG]
        for key in set(original) - {"main", "compatibility_flags"}:
            assert copy[key] == original[key], (worker, key)
    link = out / "python_modules"
    assert link.is_symlink()
    assert link.resolve() == RT.PYTHON_MODULES.resolve()


def test_generated_configs_are_idempotent_and_flagless_for_the_download_runtime(
    tmp_path: Path,
) -> None:
    """A second write changes nothing; without the offline runtime no flag is added."""
    first = RT.write_dev_configs(tmp_path / "a", dev_flag=True)
    text = (first / "cache_warmer.toml").read_text()
    RT.write_dev_configs(tmp_path / "a", dev_flag=True)
    assert (first / "cache_warmer.toml").read_text() == text
    plain = RT.write_dev_configs(tmp_path / "b", dev_flag=False)
    assert RT.DEV_FLAG not in (plain / "cache_warmer.toml").read_text()


def test_fixture_port_replaced_only_in_fixture_urls(tmp_path: Path) -> None:
    """Another fixture port moves every [env.fixtures] base URL and nothing else."""
    out = RT.write_dev_configs(tmp_path, dev_flag=False, port=9123)
    copy = tomllib.loads((out / "books_api_proxy.toml").read_text())
    original = tomllib.loads((RT.CONFIG_DIR / "books_api_proxy.toml").read_text())
    fixtures = copy["env"]["fixtures"]["vars"]
    assert fixtures["GOOGLE_BOOKS_BASE_URL"] == "http://127.0.0.1:9123/google/books/v1"
    assert fixtures["OPEN_LIBRARY_BASE_URL"] == "http://127.0.0.1:9123/openlibrary"
    assert copy["env"]["production"] == original["env"]["production"]
    isbndb = tomllib.loads((out / "isbndb_worker.toml").read_text())
    assert isbndb["env"]["fixtures"]["vars"]["ISBNDB_BASE_URL"] == "http://127.0.0.1:9123/isbndb"


def test_runtime_selection(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """BOOKMETA_RUNTIME_DIR names the runtime; 'download' forces wrangler's; a bad folder fails."""
    monkeypatch.setenv("BOOKMETA_RUNTIME_DIR", "download")
    assert RT.runtime_source() is None
    monkeypatch.setenv("BOOKMETA_RUNTIME_DIR", str(tmp_path))
    with pytest.raises(RT.PrepareError, match=r"no build\.sh"):
        RT.runtime_source()
    (tmp_path / "build.sh").write_text("#!/bin/sh\n")
    assert RT.runtime_source() == tmp_path.resolve()
    monkeypatch.delenv("BOOKMETA_RUNTIME_DIR")
    shared = ROOT.parent / "shared" / "runtime"
    expected = shared.resolve() if (shared / "build.sh").is_file() else None
    assert RT.runtime_source() == expected


def test_offline_vendoring_pins_the_locked_sdk() -> None:
    """The runtime SDK is vendored at the version uv.lock pins (the one pywrangler vendors)."""
    version = RT.locked_version("workers-runtime-sdk")
    assert version.count(".") == 2
    assert RT.locked_version("httpx")
    with pytest.raises(RT.PrepareError):
        RT.locked_version("no-such-package")


def test_rate_limits_can_be_raised_for_a_bench(tmp_path: Path) -> None:
    """rate_limit_scale multiplies every [[ratelimits]] limit and changes nothing else."""
    out = RT.write_dev_configs(tmp_path, dev_flag=False, rate_limit_scale=1000)
    copy = tomllib.loads((out / "books_api_proxy.toml").read_text())
    original = tomllib.loads((RT.CONFIG_DIR / "books_api_proxy.toml").read_text())
    for env in (None, "fixtures"):
        ours = copy if env is None else copy["env"][env]
        theirs = original if env is None else original["env"][env]
        assert [b["simple"]["limit"] for b in ours["ratelimits"]] == [
            1000 * b["simple"]["limit"] for b in theirs["ratelimits"]
        ]
        assert [b["name"] for b in ours["ratelimits"]] == [b["name"] for b in theirs["ratelimits"]]
