"""`python -m bench.readme [RESULTS]`: the README's `## Benchmarks` section, written from a results.json.

The README quotes figures from bench/results.json through this, so the two never disagree.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.common import BENCH_DIR


def _verdict(passed: bool | None) -> str:
    return {True: "pass", False: "**fail**", None: "n/a"}[passed]


def _load_note(before: float, cores: int) -> str:
    if before < 0.5 * cores:
        return ("nothing else ran on the machine, yet on this virtual machine two runs of the same work still differ "
                "by up to 10% (see the overhead pairs), so single ratios near a target are within noise")
    return ("the machine was still busy when the bench started (the load average also counts work that had just "
            "ended), so small ratios carry a few percent of noise")


def _markdown_table(table: dict[str, Any] | None) -> list[str]:
    """A benchmark's per-case table (figures.markdown_table: columns and rows of text), where it has one."""
    if not table:
        return []
    lines = ["| " + " | ".join(table["columns"]) + " |", "|" + "---|" * len(table["columns"])]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in table["rows"]]
    return [*lines, ""]


def render(report: dict[str, Any]) -> str:
    m = report["machine"]
    v = m["versions"]
    gpus = ", ".join(m["gpus"]) or "no GPU"
    load = report["load_average"]
    lines = [
        "## Benchmarks",
        "",
        f"`python -m bench` runs {len(report['benchmarks'])} benchmarks side by side on one machine in one go (about "
        "an hour on a 2-core",
        "CPU), prints a table and writes `bench/results.json` with every figure, its target and the machine;",
        "`--only NAME` runs one, `--quick` checks the bench itself, `--wait-idle SECONDS` waits for a quiet machine",
        "before each measured run. They are run on demand, never as timed tests. The figures below are from",
        f"`bench/results.json` ({report['date'][:10]}, `{report['command']}`), on: {m['cpu']}, "
        f"{m['logical_cores']} cores, {m['ram_gb']:g} GB RAM, {gpus}; {m['os']}, Python {m['python']}, "
        f"torch {v.get('torch')}, transformers {v.get('transformers')}, datasets {v.get('datasets')}, "
        f"textual {v.get('textual')}. Load average (1 min) {load['before']['1min']} before, "
        f"{load['after']['1min']} after: {_load_note(load['before']['1min'], m['logical_cores'])}.",
        "",
        "| benchmark | figure | target | result |",
        "|---|---|---|---|",
    ]
    benches = report["benchmarks"]
    for name, bench in benches.items():
        for t in bench["targets"]:
            value = "-" if t["value"] is None else f"{t['value']:g}{t['unit']}"
            lines.append(f"| {name} | {t['what']}: {value} | {t['target']} | {_verdict(t['passed'])} |")
    lines += ["", "How each is measured is in the docstring of its module (`bench/overhead.py`, ...); the figures:", ""]
    for name, bench in benches.items():
        lines.append(f"**{bench['title']}** (`bench/{name}.py`)")
        lines.append("")
        again = bench.get("remeasured")
        if again:
            verb, why = ("Measured", "as a benchmark added since the full run") if again.get("added") else \
                ("Re-measured", "after a change to what it measures")
            lines += [f"{verb} on the same machine on {again['date'][:10]} with `{again['command']} --merge` "
                      f"(load average {again['load_average']['before']['1min']} before) {why}; the other figures are "
                      "the full run's.", ""]
        lines += [f"- {label}: {value}" for label, value in bench.get("table", [])]
        lines.append("")
        lines += _markdown_table(bench.get("figures", {}).get("markdown_table"))
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else BENCH_DIR / "results.json"
    sys.stdout.write(render(json.loads(path.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
