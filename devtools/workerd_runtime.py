"""Prepare a local Workers runtime for the three Python Workers (stdlib only).

Used by `make dev` (scripts/dev.sh), the e2e tests and the workerd bench, so all three start the
workers the same way:

1. **Runtime.** Where an offline runtime folder exists (``$BOOKMETA_RUNTIME_DIR``, else
   ``../shared/runtime`` beside the repo, holding ``build.sh``), build its Pyodide bundle and
   workerd wrapper into ``.cache/pyruntime`` (git-ignored) and hand the wrapper to wrangler as
   ``MINIFLARE_WORKERD_PATH``. Otherwise wrangler's own runtime is used (it downloads its
   Pyodide bundle at start: needs network). ``BOOKMETA_RUNTIME_DIR=download`` forces that.
2. **Vendoring.** ``wrangler.toml.d/python_modules`` must hold the workers' runtime dependencies.
   ``pywrangler sync`` first (how deployments vendor); where it cannot run (offline: it downloads
   a Python), the locked runtime dependencies (exact ``uv.lock`` versions) are installed as pure
   wheels, plus ``workers-runtime-sdk`` at the version ``uv.lock`` pins (the one pywrangler
   vendors), plus ``bookmeta``. Re-done only when its inputs change; ``bookmeta`` is refreshed on
   every call so the runtime never runs a stale copy. ``python_modules/.vendor.json`` says which
   path was taken.
3. **Configs.** Generated copies of ``wrangler.toml.d/*.toml`` in a folder of the caller's
   (git-ignored), with the compat flag ``python_workers_development`` that the offline bundle
   needs, and optionally another fixture-upstream port. The deployable configs never carry it.

CLI: ``python devtools/workerd_runtime.py prepare --configs DIR [--fixture-port N]`` prints
``KEY=value`` lines (``MINIFLARE_WORKERD_PATH``, ``CONFIG_DIR``, ``VENDORED_BY``, ``RUNTIME``);
``vendor`` only vendors (``make vendor``); ``refresh-bookmeta`` only copies ``bookmeta`` (deploys).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "wrangler.toml.d"
PYTHON_MODULES = CONFIG_DIR / "python_modules"
WORKERS = ("isbndb_worker", "books_api_proxy", "cache_warmer")
DEV_FLAG = "python_workers_development"
FIXTURE_PORT = 8790  # the deployable configs' [env.fixtures] name it
RUNTIME_OUT = ROOT / ".cache" / "pyruntime"
SDK_PACKAGE = "workers-runtime-sdk"
PYWRANGLER_TIMEOUT_S = 300.0
_FLAGS_LINE = re.compile(r"^(compatibility_flags\s*=\s*\[)([^\]]*)(\])", re.MULTILINE)
_MAIN_LINE = re.compile(r'^main\s*=\s*"([^"]+)"', re.MULTILINE)
_RATE_LIMIT = re.compile(r"(simple\s*=\s*\{\s*limit\s*=\s*)(\d+)")


class PrepareError(Exception):
    """The runtime could not be prepared; the message says why and what to do."""


@dataclass(frozen=True)
class Prepared:
    """What a caller needs to start `wrangler dev` on the chosen runtime."""

    workerd: Path | None  # the offline wrapper, or None: wrangler's downloading runtime
    config_dir: Path  # where the generated configs are
    vendored_by: str  # "pywrangler", "offline-wheels" or "existing"

    @property
    def runtime(self) -> str:
        return "offline" if self.workerd else "download"

    def env(self) -> dict[str, str]:
        """Environment variables for wrangler (empty for the downloading runtime)."""
        return {"MINIFLARE_WORKERD_PATH": str(self.workerd)} if self.workerd else {}

    def config(self, worker: str) -> Path:
        return self.config_dir / f"{worker}.toml"


# --------------------------------------------------------------------------- tools


def uv_binary() -> str:
    """An absolute path to uv: on PATH, or the Makefile's .tools/bin/uv."""
    found = shutil.which("uv")
    if found:
        return str(Path(found).resolve())
    local = ROOT / ".tools" / "bin" / "uv"
    if local.is_file():
        return str(local)
    raise PrepareError("uv not found (run `make .venv/.synced`, which installs it)")


def pinned_workerd() -> Path:
    """The workerd binary the pinned wrangler ships (node_modules)."""
    node = ROOT / "node_modules" / ".bin" / "node"
    node_cmd = str(node) if node.is_file() else (shutil.which("node") or "node")
    try:
        out = subprocess.run(
            [node_cmd, "-p", "require('workerd').default"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise PrepareError(f"cannot locate the pinned workerd (npm ci first?): {exc}") from exc
    return Path(out)


def runtime_source() -> Path | None:
    """The offline runtime folder to build from, or None for wrangler's downloading runtime."""
    named = os.environ.get("BOOKMETA_RUNTIME_DIR", "").strip()
    if named == "download":
        return None
    folder = Path(named) if named else ROOT.parent / "shared" / "runtime"
    if (folder / "build.sh").is_file():
        return folder.resolve()
    if named:
        raise PrepareError(f"BOOKMETA_RUNTIME_DIR={named} has no build.sh")
    return None


def build_runtime(source: Path, out: Path = RUNTIME_OUT) -> Path:
    """Run the offline runtime's build.sh (idempotent); the wrapper's path."""
    out.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["bash", str(source / "build.sh"), str(out), str(pinned_workerd())],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if result.returncode != 0:
        raise PrepareError(
            f"{source / 'build.sh'} exited {result.returncode}:\n{result.stderr[-3000:]}"
        )
    wrapper = Path(result.stdout.strip().splitlines()[-1])
    if not os.access(wrapper, os.X_OK):
        raise PrepareError(f"{source / 'build.sh'} printed {wrapper}, not an executable")
    return wrapper


# --------------------------------------------------------------------------- vendoring


def _vendor_inputs_digest() -> str:
    digest = hashlib.sha256()
    for path in (ROOT / "uv.lock", CONFIG_DIR / "pyproject.toml", ROOT / "shared/pyproject.toml"):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def locked_version(package: str) -> str:
    """The version uv.lock pins for package."""
    text = (ROOT / "uv.lock").read_text()
    match = re.search(
        rf'^\[\[package\]\]\nname = "{re.escape(package)}"\nversion = "([^"]+)"', text, re.M
    )
    if not match:
        raise PrepareError(f"{package} is not in uv.lock")
    return match.group(1)


def _vendor_record() -> dict[str, str]:
    try:
        data = json.loads((PYTHON_MODULES / ".vendor.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _pywrangler_sync(uv: str) -> tuple[bool, str]:
    env = {**os.environ, "PATH": f"{Path(uv).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    try:
        result = subprocess.run(
            [uv, "run", "--frozen", "--project", "..", "pywrangler", "sync"],
            cwd=CONFIG_DIR,
            capture_output=True,
            text=True,
            check=False,
            timeout=PYWRANGLER_TIMEOUT_S,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return False, f"did not finish in {PYWRANGLER_TIMEOUT_S:.0f} s"
    tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
    return result.returncode == 0 and PYTHON_MODULES.is_dir(), " / ".join(tail)


def _offline_wheels(uv: str) -> None:
    """Locked runtime deps as pure wheels + the runtime SDK, into python_modules (atomically)."""
    exported = subprocess.run(
        [uv, "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    requirements = [
        line
        for line in exported.splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "-e"))
    ]
    requirements.append(f"{SDK_PACKAGE}=={locked_version(SDK_PACKAGE)}")
    staging = Path(tempfile.mkdtemp(prefix="python_modules.", dir=CONFIG_DIR))
    try:
        req_file = staging / ".requirements.txt"
        req_file.write_text("\n".join(requirements) + "\n")
        install = [uv, "pip", "install", "--quiet", "--no-deps", "--only-binary", ":all:"]
        subprocess.run(
            [*install, "--python-version", "3.13", "--target", str(staging), "-r", str(req_file)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        req_file.unlink()
        for leftover in (staging / "bin", staging / ".lock"):  # console scripts, uv's lock
            if leftover.is_dir():
                shutil.rmtree(leftover)
            elif leftover.exists():
                leftover.unlink()
        staging.chmod(0o755)
        if PYTHON_MODULES.exists():
            shutil.rmtree(PYTHON_MODULES)
        staging.rename(PYTHON_MODULES)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise PrepareError(f"offline vendoring failed: {exc.stderr[-2000:]}") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def refresh_bookmeta() -> None:
    """Copy shared/bookmeta into python_modules as it is now (never a stale copy)."""
    target = PYTHON_MODULES / "bookmeta"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(
        ROOT / "shared" / "bookmeta", target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )


def vendor(*, log: bool = True) -> str:
    """Fill wrangler.toml.d/python_modules; which path was taken."""
    digest = _vendor_inputs_digest()
    record = _vendor_record()
    if record.get("inputs") == digest and PYTHON_MODULES.is_dir():
        how = "existing"
    else:
        uv = uv_binary()
        ok, why = _pywrangler_sync(uv)
        if ok:
            how = "pywrangler"
        else:
            if log:
                print(
                    f"workerd_runtime: pywrangler sync cannot run here ({why}); "
                    "vendoring the locked pure wheels instead",
                    file=sys.stderr,
                )
            _offline_wheels(uv)
            how = "offline-wheels"
        (PYTHON_MODULES / ".vendor.json").write_text(
            json.dumps({"inputs": digest, "vendoredBy": how}) + "\n"
        )
    refresh_bookmeta()
    if log:
        print(f"workerd_runtime: python_modules vendored by {how}", file=sys.stderr)
    return how


# --------------------------------------------------------------------------- configs


def dev_config_text(
    text: str, source: Path, out_dir: Path, *, dev_flag: bool, port: int, rate_limit_scale: int = 1
) -> str:
    """A deployable config's text adapted for out_dir: main path, dev flag, fixture port, and
    the ``[[ratelimits]]`` limits times ``rate_limit_scale`` (a bench sends thousands of
    requests from one address; the limiter is still called on every request)."""
    main = _MAIN_LINE.search(text)
    if main is None:
        raise PrepareError(f"{source}: no main = line")
    entry = (source.parent / main.group(1)).resolve()
    rel = os.path.relpath(entry, out_dir)
    text = text[: main.start(1)] + rel + text[main.end(1) :]
    if dev_flag:
        flags = _FLAGS_LINE.search(text)
        if flags is None:
            raise PrepareError(f"{source}: no compatibility_flags line to add {DEV_FLAG} to")
        if DEV_FLAG not in flags.group(2):
            text = f'{text[: flags.end(2)]}, "{DEV_FLAG}"{text[flags.end(2) :]}'
    if port != FIXTURE_PORT:
        text = text.replace(f"127.0.0.1:{FIXTURE_PORT}/", f"127.0.0.1:{port}/")
    if rate_limit_scale != 1:
        text = _RATE_LIMIT.sub(lambda m: f"{m.group(1)}{int(m.group(2)) * rate_limit_scale}", text)
    return text


def write_dev_configs(
    out_dir: Path, *, dev_flag: bool, port: int = FIXTURE_PORT, rate_limit_scale: int = 1
) -> Path:
    """Generated copies of the three configs in out_dir, python_modules linked beside them."""
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    for worker in WORKERS:
        source = CONFIG_DIR / f"{worker}.toml"
        text = dev_config_text(
            source.read_text(),
            source,
            out_dir,
            dev_flag=dev_flag,
            port=port,
            rate_limit_scale=rate_limit_scale,
        )
        (out_dir / f"{worker}.toml").write_text(text)
    if out_dir != CONFIG_DIR:
        link = out_dir / "python_modules"
        if link.is_symlink() or link.exists():
            if link.is_symlink() and link.resolve() == PYTHON_MODULES.resolve():
                return out_dir
            if link.is_dir() and not link.is_symlink():
                shutil.rmtree(link)
            else:
                link.unlink()
        link.symlink_to(os.path.relpath(PYTHON_MODULES, out_dir), target_is_directory=True)
    return out_dir


def prepare(
    config_dir: Path, *, port: int = FIXTURE_PORT, log: bool = True, rate_limit_scale: int = 1
) -> Prepared:
    """Runtime, python_modules and configs, ready for `wrangler dev -c <config_dir>/<w>.toml`."""
    source = runtime_source()
    workerd = build_runtime(source) if source else None
    if log:
        where = f"offline runtime from {source}" if source else "wrangler's downloading runtime"
        print(f"workerd_runtime: {where}", file=sys.stderr)
    how = vendor(log=log)
    write_dev_configs(
        config_dir, dev_flag=workerd is not None, port=port, rate_limit_scale=rate_limit_scale
    )
    return Prepared(workerd, config_dir.resolve(), how)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="runtime + python_modules + generated configs")
    prep.add_argument("--configs", type=Path, required=True, help="folder for the config copies")
    prep.add_argument("--fixture-port", type=int, default=FIXTURE_PORT)
    sub.add_parser("vendor", help="only fill wrangler.toml.d/python_modules")
    sub.add_parser("refresh-bookmeta", help="copy shared/bookmeta into python_modules")
    args = parser.parse_args(argv)
    try:
        if args.command == "vendor":
            print(f"VENDORED_BY={vendor()}")
            return 0
        if args.command == "refresh-bookmeta":
            refresh_bookmeta()
            return 0
        prepared = prepare(args.configs, port=args.fixture_port)
    except (PrepareError, OSError, subprocess.SubprocessError) as exc:
        print(f"workerd_runtime: {exc}", file=sys.stderr)
        return 1
    print(f"MINIFLARE_WORKERD_PATH={prepared.workerd or ''}")
    print(f"CONFIG_DIR={prepared.config_dir}")
    print(f"VENDORED_BY={prepared.vendored_by}")
    print(f"RUNTIME={prepared.runtime}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
