"""`make bench`: print every figure side by side and write bench/results.json."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

from bench import cost, imports, latency, workerd

RESULTS = Path(__file__).resolve().parent / "results.json"


def _row(*cells: object) -> str:
    return "  ".join(f"{c!s:>12}" for c in cells)


def _print_cost(c: dict[str, Any]) -> None:
    lib = c["library"]
    print(f"\n== Cost: warming a {lib['rows']}-book library ({lib['isbns']} ISBNs, "
          f"{lib['authors']} authors), upstream calls ==")  # fmt: skip
    print(f"   ours finished in {c['cron_ticks']} cron ticks, progress {c['progress_percent']}%")
    for part in ("isbn_part", "author_part"):
        print(f"-- {part.replace('_', ' ')}")
        print(_row("provider", "baseline", "ours", "ratio", "floor", "goal (<=)", "met"))
        for provider, f in c[part].items():
            print(_row(provider, f["baseline"], f["ours"], f["ratio"], f["floor"], f["goal"],
                       f["met"]))  # fmt: skip
    t = c["isbn_part_total"]
    print(_row("ISBN total", t["baseline"], t["ours"], t["ratio"], "", f"ratio>={t['goal_ratio']}",
               t["ratio"] is not None and t["ratio"] >= t["goal_ratio"]))  # fmt: skip


def _print_latency(lat: dict[str, Any]) -> None:
    print("\n== Cache-hit latency of /search/auto (in-process, per request) ==")
    print(_row("form", "p50 ms", "p99 ms", "req/s", "p50 ratio", "p99 ratio"))
    for form, f in lat.items():
        ours, bare = f["ours"], f["bare_kv_read"]
        print(_row(form, ours["p50_ms"], ours["p99_ms"], ours["rps"], f["p50_ratio"],
                   f["p99_ratio"]))  # fmt: skip
        print(_row(f"{form} floor", bare["p50_ms"], bare["p99_ms"], bare["rps"], "", ""))


def _print_single_flight(sf: dict[str, Any]) -> None:
    print("\n== Single-flight: concurrent identical misses ==")
    print(f"   {sf['concurrent_requests']} requests, {sf['ok']} answered 200, upstream calls "
          f"{sf['upstream_calls']} (total {sf['upstream_calls_total']})")  # fmt: skip


def _print_imports(imp: dict[str, Any]) -> None:
    print("\n== Import cost of entry modules (cold, python -X importtime, median of 7) ==")
    print(_row("module", "ms", "modules", "x httpx"))
    for name, f in imp.items():
        print(_row(name, f["ms"], f["modules"], f.get("ratio_to_httpx", 1.0)))


async def _measure_quietly(coro: Any) -> Any:
    # The workers log one JSON line per request to stdout; keep the report readable.
    with contextlib.redirect_stdout(io.StringIO()):
        return await coro


def _print_workerd(w: dict[str, Any]) -> None:
    if "skipped" in w:
        print(f"\n== workerd: skipped ({w['skipped']}) ==")
        return
    print(f"\n== workerd ({w['runtime']} runtime): hot path against Python floors, "
          f"{w['rounds']} rounds x {w['requests_per_round']} requests ==")  # fmt: skip
    print(_row("target", "p50 ms", "p99 ms", "floor", "p50 ratio", "p99 ratio"))
    for name, f in w["latency"].items():
        print(_row(name, f["p50_ms"], f["p99_ms"], f.get("floor", ""), f.get("p50_ratio", ""),
                   f.get("p99_ratio", "")))  # fmt: skip
    t = w["throughput"]
    print(f"-- {t['clients']} clients, A-B-B-A runs of {t['seconds_per_run']} s per round: "
          f"ISBN hits {t['isbn_hit_rps']} req/s, KV floor {t['floor_kv_rps']} req/s, "
          f"ratio {t['ratio']} (rounds {t['round_ratios']}); session CPU ms/request "
          f"{t['session_cpu_ms_per_request']}")  # fmt: skip
    m = w["merged_miss"]
    print(f"-- merged miss (3 providers): p50 {m['p50_ms']} ms, p99 {m['p99_ms']} ms, "
          f"session CPU {m['session_cpu_ms_per_miss']} ms per miss")  # fmt: skip
    for name, f in w["session_start_s"].items():
        print(f"-- session start, {name}: listening {f['listening_s']} s, "
              f"first answer {f['first_answer_s']} s")  # fmt: skip
    if "startup" in w:
        print("-- start-up, each alone (medians of runs; ratios per run to the constant worker): "
              "launch to listening, to first answer; session CPU until then")  # fmt: skip
        print(_row("worker", "listening s", "answer s", "ratio", "CPU s", "CPU ratio"))
        for name, f in w["startup"].items():
            print(_row(name, f["listening_s"], f["first_answer_s"], f.get("ratio", ""),
                       f["cpu_s"], f.get("cpu_ratio", "")))  # fmt: skip
        imp = w["imports"]
        print(f"-- imports inside workerd (clock resolution {imp['clock_resolution_ms']} ms): "
              f"steps {imp['steps_ms']}; {imp['modules']} modules; slowest own times "
              f"{imp['self_ms']}")  # fmt: skip
    for name, f in w.get("profile", {}).items():
        if "stages_us" in f:
            print(f"-- inside workerd, {name}: {f['total_us']} us/request; stages {f['stages_us']}")
            print(f"   probes {f['probes_us']}")
        elif "tottime" in f:
            print(f"-- cProfile of {name}:")
            print("\n".join(f["tottime"]))
    print("-- goals: " + ", ".join(
        f"{k} {g['ratio']} ({'<=' if k != 'throughput' else '>='} {g['goal']}: "
        f"{'met' if g['met'] else 'NOT met'})" for k, g in w["goals"].items()))  # fmt: skip


def _workerd(args: argparse.Namespace) -> dict[str, Any]:
    try:
        return workerd.measure(
            profile=args.profile, cprofile=args.cprofile, startup=not args.no_startup
        )
    except workerd.BenchUnavailable as exc:
        return {"skipped": str(exc)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workerd-only", action="store_true", help="only the workerd section")
    parser.add_argument("--no-workerd", action="store_true", help="skip the workerd section")
    parser.add_argument("--profile", action="store_true", help="workerd: stage profile of a hit")
    parser.add_argument("--cprofile", action="store_true", help="workerd: cProfile of a hit")
    parser.add_argument("--no-startup", action="store_true", help="workerd: skip start-up")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    if args.workerd_only and RESULTS.exists():  # keep the other sections' last figures
        results = {**json.loads(RESULTS.read_text()), **results}
    else:
        results["cost"] = asyncio.run(_measure_quietly(cost.measure()))
        _print_cost(results["cost"])
        results["latency"] = asyncio.run(_measure_quietly(latency.measure()))
        _print_latency(results["latency"])
        results["single_flight"] = asyncio.run(_measure_quietly(latency.single_flight()))
        _print_single_flight(results["single_flight"])
        results["imports"] = imports.measure()
        _print_imports(results["imports"])
    if not args.no_workerd:
        results["workerd"] = _workerd(args)
        _print_workerd(results["workerd"])
    results["seconds"] = round(time.perf_counter() - started, 1)
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwrote {RESULTS} in {results['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
