"""Run the benchmarks side by side on this machine, print a table, write bench/results.json.

    python -m bench                      # everything (about an hour on a 2-core CPU)
    python -m bench --only padding       # one benchmark (repeat --only or give a comma list for more)
    python -m bench --quick              # smaller sizes, to check the bench itself works

A full run writes bench/results.json; --quick or --only write bench/results.partial.json (not committed);
--only NAME --merge puts the re-measured NAME into bench/results.json, marked as such.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/run.py`: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common
from bench.common import BENCH_DIR, Result, load, log, machine

BENCHMARKS = {
    "overhead": "bench.overhead",
    "padding": "bench.padding",
    "startup": "bench.startup",
    "watching": "bench.watching",
    "long_runs": "bench.long_runs",
    "data": "bench.data",
    "million_rows": "bench.million_rows",
    "end_to_end": "bench.end_to_end",
    "task_defaults": "bench.task_defaults",
    "sft": "bench.sft",
    "memory_estimate": "bench.memory_estimate",
}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--only", action="append", default=[], metavar="NAME",
                   help=f"run only these benchmarks: {', '.join(BENCHMARKS)} (repeat or comma-separate)")
    p.add_argument("--quick", action="store_true", help="small sizes: checks the bench, figures are not meaningful")
    p.add_argument("--output", type=Path, help="results file (default: bench/results.json for a full run, "
                                               "bench/results.partial.json otherwise)")
    p.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                   help="before each measured run wait up to SECONDS for the machine's CPU use to drop below "
                        "20%% (for shared machines); the waits are recorded in the results")
    p.add_argument("--keep", action="store_true", help="keep the working directory (runs, data) for inspection")
    p.add_argument("--merge", action="store_true",
                   help="with --only: put these benchmarks' new results into bench/results.json in place of their "
                        "old ones, each marked with its own date and command (the others keep the full run's)")
    return p.parse_args(argv)


def _selected(only: list[str]) -> list[str]:
    names = [n.strip() for item in only for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    return names or list(BENCHMARKS)


def _verdict(passed: bool | None) -> str:
    return {True: "PASS", False: "FAIL", None: "n/a"}[passed]


def format_table(results: list[Result], errors: dict[str, str]) -> str:
    """One block per benchmark: its title, then figure | value | target | verdict rows."""
    blocks: list[tuple[str, list[tuple[str, str, str, str]]]] = []
    for r in results:
        rows = [(label, value, "", "") for label, value in r.table]
        for t in r.targets:
            value = "-" if t.value is None else f"{t.value:g}{t.unit}"
            rows.append((f"target: {t.what}", value, f"{t.op} {t.limit:g}{t.unit}", _verdict(t.passed)))
        blocks.append((f"{r.title}  ({r.seconds:.0f} s)", rows))
    for name, error in errors.items():
        blocks.append((f"{name}: ERROR", [("error", error.strip().splitlines()[-1][:100], "", "FAIL")]))
    every = [row for _, rows in blocks for row in rows] or [("", "", "", "")]
    widths = [max(len(row[i]) for row in every) for i in range(4)]
    rule = "-" * (sum(widths) + 3 * 3)
    lines = [rule]
    for title, rows in blocks:
        lines.append(title)
        lines += ["  " + " | ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip() for row in rows]
        lines.append(rule)
    return "\n".join(lines)


def merge(full: dict[str, Any], partial: dict[str, Any]) -> dict[str, Any]:
    """The full run's report with the partial run's benchmarks in place of its own; each replaced one records when,
    how and under what load it was measured, and the summary counts the targets as they now stand. A benchmark
    re-measured on another machine would mix machines in one table, so that is refused."""
    if partial["machine"]["cpu"] != full["machine"]["cpu"] or \
            partial["machine"]["logical_cores"] != full["machine"]["logical_cores"]:
        raise SystemExit("--merge: this machine is not the one bench/results.json was measured on; run the full bench")
    merged = dict(full)
    merged["benchmarks"] = dict(full["benchmarks"])
    for name, bench in partial["benchmarks"].items():
        merged["benchmarks"][name] = {**bench, "remeasured": {"date": partial["date"], "command": partial["command"],
                                                               "load_average": partial["load_average"],
                                                               "added": name not in full["benchmarks"]}}
    targets = [t for b in merged["benchmarks"].values() for t in b["targets"]]
    errors = sorted(set(full["summary"]["errors"]) - set(partial["benchmarks"]) | set(partial["summary"]["errors"]))
    merged["summary"] = {"targets": len(targets), "passed": sum(t["passed"] is True for t in targets),
                         "failed": sum(t["passed"] is False for t in targets), "errors": errors}
    return merged


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    names = _selected(args.only)
    full = not args.quick and not args.only
    common.IDLE_WAIT_S = args.wait_idle
    output = args.output or BENCH_DIR / ("results.json" if full else "results.partial.json")
    work = Path(tempfile.mkdtemp(prefix="finetune-tui-bench-"))
    log(f"working in {work}; benchmarks: {', '.join(names)}{' (quick)' if args.quick else ''}")
    load_before = load()
    started = time.time()
    results: list[Result] = []
    errors: dict[str, str] = {}
    try:
        for name in names:
            module = importlib.import_module(BENCHMARKS[name])
            (work / name).mkdir()
            t0 = time.perf_counter()
            before = load()
            try:
                result = module.run(work / name, args.quick)
            except Exception:
                errors[name] = traceback.format_exc()
                log(f"{name} failed:\n{errors[name]}")
                continue
            result.seconds = time.perf_counter() - t0
            result.load_average = {"before": before, "after": load()}
            results.append(result)
            log(f"{name} done in {result.seconds:.0f} s")
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    targets = [t for r in results for t in r.targets]
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench" + (" --quick" if args.quick else "") + "".join(f" --only {n}" for n in args.only),
        "quick": args.quick,
        "machine": machine(),
        "load_average": {"before": load_before, "after": load()},
        "duration_s": round(time.time() - started, 1),
        "wait_idle": {"max_wait_s": args.wait_idle, "cpu_pct_threshold": common.IDLE_CPU_PCT,
                      "waits": common.idle_waits},
        "summary": {"targets": len(targets), "passed": sum(t.passed is True for t in targets),
                    "failed": sum(t.passed is False for t in targets), "errors": sorted(errors)},
        "benchmarks": {r.name: r.as_dict() for r in results},
        "errors": errors,
    }
    if args.merge and args.only and not args.quick:
        output = BENCH_DIR / "results.json"
        report = merge(json.loads(output.read_text()), report)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(format_table(results, errors))
    m = report["machine"]
    gpus = ", ".join(m["gpus"]) or "none"
    print(f"machine: {m['cpu']}, {m['logical_cores']} cores, {m['ram_gb']} GB RAM, GPU: {gpus}; "
          f"load average before {load_before['1min']}, after {report['load_average']['after']['1min']}")
    print(f"wrote {output}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
