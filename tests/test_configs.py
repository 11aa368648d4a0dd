"""Checks of wrangler.toml.d/*.toml: binding matrix, per-env repetition, wrangler dry-runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "wrangler.toml.d"
WRANGLER = ROOT / "scripts" / "wrangler.sh"
ENVS = ("staging", "production", "fixtures")
DEPLOY_ENVS = ("staging", "production")
COMPAT_DATE = "2026-11-01"

CONFIGS = {
    "isbndb": "isbndb_worker",
    "proxy": "books_api_proxy",
    "warmer": "cache_warmer",
}
NAMES = {
    "isbndb": {
        None: "isbndb-biography-worker-production",
        "staging": "isbndb-biography-worker-production-staging",
        "production": "isbndb-biography-worker-production",
        "fixtures": "isbndb-biography-worker-production",
    },
    "proxy": {
        None: "books-api-proxy",
        "staging": "books-api-proxy-staging",
        "production": "books-api-proxy",
        "fixtures": "books-api-proxy",
    },
    "warmer": {
        None: "personal-library-cache-warmer",
        "staging": "personal-library-cache-warmer-staging",
        "production": "personal-library-cache-warmer",
        "fixtures": "personal-library-cache-warmer",
    },
}
# worker -> binding -> worker it must point at (the binding matrix; edges only go "down").
SERVICES = {
    "isbndb": {},
    "proxy": {"ISBNDB_WORKER": "isbndb"},
    "warmer": {"BOOKS_API_PROXY": "proxy", "ISBNDB_WORKER": "isbndb"},
}
KV = {"isbndb": {"ISBNDB_CACHE"}, "proxy": {"CACHE"}, "warmer": {"WARMING_CACHE"}}
R2 = {"isbndb": set(), "proxy": {"API_CACHE_COLD"}, "warmer": {"LIBRARY_DATA"}}
SECRETS_STORE = {"isbndb": {"ISBNDB_API_KEY"}, "proxy": {"GOOGLE_BOOKS_API_KEY"}, "warmer": set()}
# worker -> Durable Object binding -> class (defined by that worker, SQLite-backed).
DURABLE_OBJECTS = {
    "isbndb": {"ISBNDB_GUARD": "IsbndbKeyGuard"},
    "proxy": {},
    "warmer": {"LIBRARY_JOBS": "LibraryJob"},
}
# The warming queue per env (its dead-letter queue is "<name>-dlq"); only the warmer has one.
WARM_QUEUES = {
    None: "library-warming",
    "staging": "library-warming-staging",
    "production": "library-warming",
    "fixtures": "library-warming-fixtures",
}
VARS = {
    "isbndb": {
        "ISBNDB_RATE_PER_S",
        "ISBNDB_DAILY_QUOTA",
        "ISBNDB_WARM_RESERVE",
        "MAX_BOOKS_PER_AUTHOR",
        "ISBNDB_BASE_URL",
        "ISBNDB_BULK_LIMIT",
    },
    "proxy": {
        "CACHE_HOT_TTL",
        "CACHE_COLD_TTL",
        "MAX_RESULTS_DEFAULT",
        "RATE_LIMIT_MS",
        "GOOGLE_BOOKS_BASE_URL",
        "OPEN_LIBRARY_BASE_URL",
        "CONTACT_EMAIL",
        "CORS_ALLOWED_ORIGINS",
        "PROVIDER_TIMEOUT_MS",
    },
    "warmer": {
        "WARM_MAX_SUBREQUESTS",
        "WARM_MAX_SECONDS",
        "MAX_UPLOAD_BYTES",
        "ISBNDB_DAILY_BUDGET",
        "KV_DAILY_WRITE_BUDGET",
        "GOOGLE_DAILY_BUDGET",
        "OPEN_LIBRARY_DAILY_BUDGET",
    },
}
PRODUCTION_KV = {
    "CACHE": "b9cade63b6db48fd80c109a013f38fdb",
    "WARMING_CACHE": "69949ba5a5b44214b7a2e40c1b687c35",
}
BINDING_KEYS = (
    "services",
    "kv_namespaces",
    "r2_buckets",
    "secrets_store_secrets",
    "durable_objects",
    "vars",
)

Config = dict[str, Any]


def load(worker: str) -> Config:
    """Parse one worker's config."""
    with (CONFIG_DIR / f"{CONFIGS[worker]}.toml").open("rb") as fh:
        return tomllib.load(fh)


def section(config: Config, env: str | None) -> Config:
    """The table that holds bindings for env (None = top level, the local dev config)."""
    return config if env is None else config["env"][env]


ALL_ENVS: tuple[str | None, ...] = (None, *ENVS)
WORKER_ENV = [(w, e) for w in CONFIGS for e in ALL_ENVS]


def _id(value: object) -> str:
    return "dev" if value is None else str(value)


def test_config_files_present() -> None:
    """Exactly the three worker configs plus pywrangler's wrangler.toml live in wrangler.toml.d."""
    found = {p.name for p in CONFIG_DIR.glob("*.toml")}
    assert found == {f"{c}.toml" for c in CONFIGS.values()} | {"wrangler.toml", "pyproject.toml"}


@pytest.mark.parametrize("worker", list(CONFIGS))
def test_top_level_settings(worker: str) -> None:
    """main points at the worker's entry.py; date, flags and observability are set."""
    config = load(worker)
    assert config["main"] == f"../workers/{CONFIGS[worker]}/entry.py"
    assert config["compatibility_date"] == COMPAT_DATE
    assert config["compatibility_flags"] == ["python_workers"]
    assert config["observability"] == {"enabled": True}
    assert set(config["env"]) == set(ENVS)


@pytest.mark.parametrize("worker", list(CONFIGS))
def test_no_cpu_limit_so_a_free_plan_account_can_deploy(worker: str) -> None:
    """`limits` (cpu_ms) is refused at deploy on the Free plan (error 100328): it is only a
    commented paid-plan option, in no table of any config."""
    config = load(worker)
    for env in ALL_ENVS:
        assert "limits" not in section(config, env), env
    text = (CONFIG_DIR / f"{CONFIGS[worker]}.toml").read_text()
    assert "# limits = { cpu_ms = 30000 }" in text


def test_pywrangler_config_matches_workers() -> None:
    """pywrangler's wrangler.toml picks the same Python as the worker configs."""
    with (CONFIG_DIR / "wrangler.toml").open("rb") as fh:
        pyw = tomllib.load(fh)
    for worker in CONFIGS:
        config = load(worker)
        assert pyw["compatibility_date"] == config["compatibility_date"]
        assert pyw["compatibility_flags"] == config["compatibility_flags"]
    assert "main" not in pyw


def test_vendoring_project() -> None:
    """The vendoring project installs bookmeta (non-editable, from ../shared) and httpx."""
    with (CONFIG_DIR / "pyproject.toml").open("rb") as fh:
        project = tomllib.load(fh)
    deps = project["project"]["dependencies"]
    assert "bookmeta" in deps
    assert any(d.startswith("httpx") for d in deps)
    assert project["tool"]["uv"]["sources"]["bookmeta"] == {"path": "../shared", "editable": False}


@pytest.mark.parametrize(
    ("worker", "env"), WORKER_ENV, ids=[f"{w}-{_id(e)}" for w, e in WORKER_ENV]
)
def test_names_per_env(worker: str, env: str | None) -> None:
    """Each env deploys the expected worker name."""
    assert section(load(worker), env)["name"] == NAMES[worker][env]


@pytest.mark.parametrize(
    ("worker", "env"), WORKER_ENV, ids=[f"{w}-{_id(e)}" for w, e in WORKER_ENV]
)
def test_binding_matrix(worker: str, env: str | None) -> None:
    """Every env repeats exactly the matrix's bindings, pointing at the same env's workers."""
    table = section(load(worker), env)
    services = {s["binding"]: s["service"] for s in table.get("services", [])}
    assert services == {b: NAMES[target][env] for b, target in SERVICES[worker].items()}
    assert {k["binding"] for k in table.get("kv_namespaces", [])} == KV[worker]
    assert {r["binding"] for r in table.get("r2_buckets", [])} == R2[worker]
    assert {s["binding"] for s in table.get("secrets_store_secrets", [])} == SECRETS_STORE[worker]
    objects = table.get("durable_objects", {}).get("bindings", [])
    assert {b["name"]: b["class_name"] for b in objects} == DURABLE_OBJECTS[worker]
    assert all("script_name" not in b for b in objects)  # each class lives in its own worker
    assert set(table["vars"]) == VARS[worker]
    assert all(isinstance(v, str) for v in table["vars"].values())


@pytest.mark.parametrize(
    ("worker", "env"), WORKER_ENV, ids=[f"{w}-{_id(e)}" for w, e in WORKER_ENV]
)
def test_queues_per_env(worker: str, env: str | None) -> None:
    """The warmer produces to its env's warming queue and consumes it and its dead-letter
    queue (retries before the dead-letter queue); the other workers have no queue."""
    queues = section(load(worker), env).get("queues", {})
    if worker != "warmer":
        assert queues == {}
        return
    name = WARM_QUEUES[env]
    assert queues["producers"] == [{"binding": "WARM_QUEUE", "queue": name}]
    consumers = {c["queue"]: c for c in queues["consumers"]}
    assert set(consumers) == {name, f"{name}-dlq"}
    assert consumers[name]["dead_letter_queue"] == f"{name}-dlq"
    assert consumers[name]["max_retries"] > 3  # items give up after 3 tries of their own first
    assert "dead_letter_queue" not in consumers[f"{name}-dlq"]


@pytest.mark.parametrize("env", ALL_ENVS, ids=_id)
def test_the_isbndb_leaf_is_never_public(env: str | None) -> None:
    """The leaf has no workers.dev URL, no preview URLs and no routes in any environment."""
    table = section(load("isbndb"), env)
    assert table.get("workers_dev") is False
    assert table.get("preview_urls") is False
    assert not {"route", "routes"} & set(table)


@pytest.mark.parametrize(
    ("worker", "env"), WORKER_ENV, ids=[f"{w}-{_id(e)}" for w, e in WORKER_ENV]
)
def test_every_env_migrates_its_durable_objects_to_sqlite(worker: str, env: str | None) -> None:
    """Each env repeats the migrations; every bound class is SQLite-backed (Free plan), none
    KV-backed, and tags are unique and in order."""
    table = section(load(worker), env)
    migrations = table.get("migrations", [])
    sqlite = {c for m in migrations for c in m.get("new_sqlite_classes", [])}
    assert sqlite == set(DURABLE_OBJECTS[worker].values())
    assert not any(m.get("new_classes") for m in migrations)
    tags = [m["tag"] for m in migrations]
    assert tags == sorted(set(tags))
    assert section(load(worker), None).get("migrations", []) == migrations


def test_no_back_edges() -> None:
    """Service bindings only go down the chain warmer -> proxy -> isbndb; the leaf binds nothing."""
    order = ["isbndb", "proxy", "warmer"]
    for worker in CONFIGS:
        config = load(worker)
        for env in ALL_ENVS:
            table = section(config, env)
            for svc in table.get("services", []):
                target = next(w for w in CONFIGS if NAMES[w][env] == svc["service"])
                assert order.index(target) < order.index(worker), (worker, env, svc)
    isbndb = load("isbndb")
    for env in ALL_ENVS:
        for key in ("services", "r2_buckets"):
            assert key not in section(isbndb, env), (env, key)


@pytest.mark.parametrize("worker", list(CONFIGS))
def test_vars_same_across_envs_except_fixture_urls(worker: str) -> None:
    """Vars are identical in every env, except the upstream base URLs of [env.fixtures]."""
    config = load(worker)
    base = config["vars"]
    for env in ENVS:
        env_vars = config["env"][env]["vars"]
        for key, value in env_vars.items():
            if env == "fixtures" and key.endswith("_BASE_URL"):
                assert value.startswith("http://127.0.0.1:8790/"), key
            else:
                assert value == base[key], (env, key)


def test_var_values() -> None:
    """Spot-check the vars the workers rely on."""
    assert load("isbndb")["vars"]["ISBNDB_BASE_URL"] == "https://api2.isbndb.com"
    assert load("isbndb")["vars"]["MAX_BOOKS_PER_AUTHOR"] == "50"
    proxy = load("proxy")["vars"]
    assert proxy["CACHE_HOT_TTL"] == "3600"
    assert proxy["CACHE_COLD_TTL"] == "604800"
    assert proxy["GOOGLE_BOOKS_BASE_URL"] == "https://www.googleapis.com/books/v1"
    assert "@" in proxy["CONTACT_EMAIL"]
    warmer = load("warmer")["vars"]
    assert warmer["WARM_MAX_SUBREQUESTS"] == "45"
    assert warmer["MAX_UPLOAD_BYTES"] == "10485760"
    fixtures = load("proxy")["env"]["fixtures"]["vars"]
    assert fixtures["OPEN_LIBRARY_BASE_URL"] == "http://127.0.0.1:8790/openlibrary"
    assert fixtures["GOOGLE_BOOKS_BASE_URL"] == "http://127.0.0.1:8790/google/books/v1"
    isb = load("isbndb")["env"]["fixtures"]["vars"]
    assert isb["ISBNDB_BASE_URL"] == "http://127.0.0.1:8790/isbndb"


@pytest.mark.parametrize("env", ALL_ENVS, ids=_id)
def test_warmer_crons(env: str | None) -> None:
    """The warmer has both crons in every env; nothing else has triggers."""
    assert section(load("warmer"), env)["triggers"]["crons"] == ["*/15 * * * *", "0 2 * * *"]
    for worker in ("isbndb", "proxy"):
        assert "triggers" not in section(load(worker), env)


def test_kv_ids_differ_between_envs() -> None:
    """No two envs (nor two workers) share a KV namespace id."""
    ids = [
        kv["id"]
        for worker in CONFIGS
        for env in ALL_ENVS
        for kv in section(load(worker), env).get("kv_namespaces", [])
    ]
    assert len(ids) == len(set(ids))


def test_production_resources() -> None:
    """Production uses the original design's KV ids and bucket; other envs never do."""
    for worker in ("proxy", "warmer"):
        config = load(worker)
        for env in ALL_ENVS:
            table = section(config, env)
            for kv in table["kv_namespaces"]:
                is_prod = kv["id"] == PRODUCTION_KV[kv["binding"]]
                assert is_prod == (env == "production"), (worker, env, kv)
            for r2 in table["r2_buckets"]:
                is_prod = r2["bucket_name"] == "personal-library-data"
                assert is_prod == (env == "production"), (worker, env, r2)


def test_dev_vars_example_lists_every_secret() -> None:
    """.dev.vars.example names every secret; .dev.vars itself is git-ignored."""
    text = (ROOT / ".dev.vars.example").read_text()
    for name in ("ISBNDB_API_KEY", "GOOGLE_BOOKS_API_KEY", "WARMER_ADMIN_TOKEN", "PROXY_APP_KEYS"):
        assert f"\n{name}=" in f"\n{text}"
    for path in (".dev.vars", "wrangler.toml.d/.dev.vars", ".dev.vars.staging"):
        ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, check=False)
        assert ignored.returncode == 0, path
    kept = subprocess.run(["git", "check-ignore", "-q", ".dev.vars.example"], cwd=ROOT, check=False)
    assert kept.returncode == 1


# --------------------------------------------------------------------------- wrangler dry-run


def _wrangler_available() -> str | None:
    """None when the pinned wrangler can run; otherwise why not."""
    if (ROOT / "node_modules" / "wrangler" / "bin" / "wrangler.js").is_file():
        return None
    if shutil.which("npm") is None:
        return "node_modules not installed and npm is not available to install it"
    result = subprocess.run(
        ["make", "-s", "node_modules/.stamp"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return f"node_modules not installed and `make node_modules/.stamp` failed: {result.stderr}"
    return None


DRY_RUN_CASES = [(w, e) for w in CONFIGS for e in (None, *DEPLOY_ENVS, "fixtures")]


@pytest.mark.parametrize(
    ("worker", "env"), DRY_RUN_CASES, ids=[f"{w}-{_id(e)}" for w, e in DRY_RUN_CASES]
)
def test_wrangler_dry_run(worker: str, env: str | None, tmp_path: Path) -> None:
    """`wrangler deploy --dry-run` accepts the config (python_modules/ is not needed for it)."""
    entry = ROOT / "workers" / CONFIGS[worker] / "entry.py"
    if not entry.is_file():
        pytest.skip(f"{entry.relative_to(ROOT)} not written yet")
    reason = _wrangler_available()
    if reason is not None:
        pytest.skip(reason)
    cmd = [str(WRANGLER), "deploy", "--dry-run", "--outdir", str(tmp_path / "out")]
    cmd += ["-c", str(CONFIG_DIR / f"{CONFIGS[worker]}.toml")]
    if env is not None:
        cmd += ["--env", env]
    result = subprocess.run(
        cmd,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "WRANGLER_SEND_METRICS": "false", "CI": "true"},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "--dry-run: exiting now." in output
    assert "nexpected field" not in output  # a misspelt or misplaced key is only a warning
    assert (tmp_path / "out" / "entry.py").is_file()
    for binding in SERVICES[worker]:
        assert f"env.{binding} ({NAMES[SERVICES[worker][binding]][env]})" in output
    for binding, class_name in DURABLE_OBJECTS[worker].items():
        assert f"env.{binding} ({class_name})" in output
