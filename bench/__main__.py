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

from bench import cost, hardening, imports, keyguard, latency, workerd

RESULTS = Path(__file__).resolve().parent / "results.json"


def _row(*cells: object) -> str:
    return "  ".join(f"{c!s:>12}" for c in cells)


def _print_cost(c: dict[str, Any]) -> None:
    lib = c["library"]
    print(f"\n== Cost: warming a {lib['rows']}-book library ({lib['isbns']} ISBNs, "
          f"{lib['authors']} authors), upstream calls ==")  # fmt: skip
    t = c["time_to_warm"]
    print(f"   time to warm (simulated, ISBNdb 1 req/s): queue {t['queue_s'] / 60:.1f} min vs "
          f"cron design {t['cron_design_ticks']} ticks = {t['cron_design_s'] / 3600:.2f} h "
          f"(ratio {t['ratio']}x; goal <= {t['goal_s'] / 60:.0f} min: {t['met']}); "
          f"progress {c['progress_percent']}%")  # fmt: skip
    if "free_plan_kv_writes" in c:
        f = c["free_plan_kv_writes"]
        print(f"   within the default KV_DAILY_WRITE_BUDGET (Free plan, 1,000 KV writes a day): "
              f"{f['seconds'] / 3600:.1f} h ({f['days']} days), progress "
              f"{f['progress_percent']}%")  # fmt: skip
    m, d = c["queue_messages"], c["duplicates"]
    print(f"   queue: {m['sent']} messages sent, {m['delivered']} delivered, ~{m['ops']} ops")
    print(f"   every message delivered twice: {d['messages']['delivered']} deliveries, "
          f"ISBN part {d['isbn_part_calls']} calls, ISBNdb author calls "
          f"{d['isbndb_author_calls']}, same calls as once: {d['same_calls_as_once']}, "
          f"{d['seconds'] / 60:.1f} min")  # fmt: skip
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


def _print_key_guard(kg: dict[str, Any]) -> None:
    print(f"\n== The key's rate across isolates: {kg['isolates']} isolates x "
          f"{kg['clients_per_isolate']} clients (public + warm), {kg['requests_offered']} "
          f"look-ups, quota {kg['daily_quota']}/day "
          f"({kg['warm_reserve']} kept for warming) ==")  # fmt: skip
    print(_row("plan", "rate/s", "ours max/1s", "today max/1s", "(plan ivl)", "ours calls",
               "today calls", "public", "warm", "met"))  # fmt: skip
    for plan, f in kg["plans"].items():
        ours, today, best = f["ours"], f["today_as_configured"], f["today_at_plan_interval"]
        print(_row(plan, f["rate_per_s"], ours["max_calls_in_1s"], today["max_calls_in_1s"],
                   best["max_calls_in_1s"], ours["calls"], today["calls"], ours["public_calls"],
                   ours["warm_calls"], f["rate_met"] and f["quota_met"]))  # fmt: skip
    print("   today = per-isolate RateLimiter (RATE_LIMIT_MS 100 as configured; 'plan ivl' at the")
    print("   plan's interval) and no count of the day across isolates: every look-up is a call")


def _print_imports(imp: dict[str, Any]) -> None:
    print("\n== Import cost of entry modules (cold, python -X importtime, median of 7) ==")
    print(_row("module", "ms", "modules", "x httpx"))
    for name, f in imp.items():
        print(_row(name, f["ms"], f["modules"], f.get("ratio_to_httpx", 1.0)))


def _print_hardening(h: dict[str, Any]) -> None:
    print("\n== Refusing hostile bodies (pure functions, median of 5) ==")
    print(_row("operation", "bytes", "ms"))
    for name, f in h.items():
        print(f"   {name:<32}{f['bytes']:>12,}{f['ms']:>12}")


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
    for name in ("isbn_hit", "author_hit"):
        f = w["latency"][name]
        if "limited_floor" in f:
            print(f"-- {name} against the floor that also counts its caller "
                  f"({f['limited_floor']}): p50 ratio {f['p50_ratio_limited']}")  # fmt: skip
    t = w["throughput"]
    print(f"-- {t['clients']} clients, A-B-C-C-B-A runs of {t['seconds_per_run']} s per round: "
          f"ISBN hits {t['isbn_hit_rps']} req/s, KV floor {t['floor_kv_rps']} req/s, "
          f"ratio {t['ratio']} (rounds {t['round_ratios']}); KV floor counting its caller "
          f"{t.get('floor_kv_limited_rps')} req/s, ratio {t.get('ratio_limited')}; "
          f"session CPU ms/request {t['session_cpu_ms_per_request']}")  # fmt: skip
    m = w["merged_miss"]
    print(f"-- merged miss (3 providers): p50 {m['p50_ms']} ms, p99 {m['p99_ms']} ms, "
          f"session CPU {m['session_cpu_ms_per_miss']} ms per miss "
          f"{m.get('session_cpu_ms_per_miss_by_process', '')}")  # fmt: skip
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
        elif "python_ms_per_miss" in f:
            print(f"-- inside workerd, merged miss ({f['misses']} fresh ISBNs, the proxy's "
                  f"invocation): event loop busy {f.get('busy_ms_per_miss')} ms per miss; "
                  f"{f['python_ms_per_miss']} ms under cProfile (inflated by it), "
                  f"{f['wall_ms_per_miss']} ms wall; answers {f['statuses']}")  # fmt: skip
            print("\n".join(f["tottime"][:30]))
        elif "tottime" in f:
            print(f"-- cProfile of {name}:")
            print("\n".join(f["tottime"]))
    for label, key in (("goals", "goals"), ("goals, counted caller", "goals_limited")):
        print(f"-- {label}: " + ", ".join(
            f"{k} {g['ratio']} ({'<=' if k != 'throughput' else '>='} {g['goal']}: "
            f"{'met' if g['met'] else 'NOT met'})" for k, g in w.get(key, {}).items()))  # fmt: skip


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
        results["hardening"] = hardening.measure()
        _print_hardening(results["hardening"])
        results["key_guard"] = asyncio.run(_measure_quietly(keyguard.measure()))
        _print_key_guard(results["key_guard"])
        results["imports"] = imports.measure()
        _print_imports(results["imports"])
    if not args.no_workerd:
        results["workerd"] = _workerd(args)
        _print_workerd(results["workerd"])
    elif RESULTS.exists() and "workerd" in (last := json.loads(RESULTS.read_text())):
        results["workerd"] = last["workerd"]  # keep the workerd section's last figures
    results["seconds"] = round(time.perf_counter() - started, 1)
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwrote {RESULTS} in {results['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
