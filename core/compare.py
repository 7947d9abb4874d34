"""Two or more runs side by side: their config differences, final metrics and curves, read from their run directories.

The runs screen's comparison and `finetune-tui runs --compare` both show what this module builds, so the two never
disagree on which keys differ or which value is final.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import flatten
from core.errors import RunDirError, UserError
from core.events import number
from core.metrics import best_value
from core.rundir import RunDir, Status, is_run_dir

TRAIN_LOSS, EVAL_LOSS = "train loss", "eval loss"
SPLITS = ("validation", "test")
MISSING = "-"
# Every run has its own output_dir: a row saying so would only repeat the column headers.
NOT_COMPARED = frozenset({"output_dir"})


@dataclass
class Curve:
    steps: list[float]
    values: list[float]  # NaN where a logged value was not a number


@dataclass
class ComparedRun:
    path: Path
    label: str  # the column header: the directory's name, with its parents where two names clash
    status: Status
    config: dict[str, Any] | None  # flattened; None when the run has no readable config.yaml
    curves: dict[str, Curve]
    final: dict[str, dict[str, Any]]  # split -> metric -> value


@dataclass
class MetricRow:
    split: str
    name: str
    cells: list[str]
    best: set[int] = field(default_factory=set)  # the columns holding the best value, when the values differ


@dataclass
class Comparison:
    runs: list[ComparedRun]
    notes: list[str] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return [run.label for run in self.runs]

    def curve_names(self) -> list[str]:
        """Train loss, eval loss, then every validation metric any of the runs logged, in the order they came."""
        names = [TRAIN_LOSS, EVAL_LOSS]
        for run in self.runs:
            names.extend(name for name in run.curves if name not in names)
        return names

    def config_rows(self) -> list[tuple[str, list[str]]]:
        return config_differences([run.config for run in self.runs])

    def metric_rows(self) -> list[MetricRow]:
        rows: list[MetricRow] = []
        for split in SPLITS:
            names: list[str] = []
            for run in self.runs:
                names.extend(name for name in run.final.get(split, {}) if name not in names)
            for name in names:
                raw = [run.final.get(split, {}).get(name) for run in self.runs]
                numbers = [number(value) for value in raw]
                finite = [n for n in numbers if n is not None and math.isfinite(n)]
                best = best_value(name, finite) if len(set(finite)) > 1 else None
                rows.append(MetricRow(split, name, [format_metric(value) for value in raw],
                                      {i for i, n in enumerate(numbers) if best is not None and n == best}))
        return rows


# --- reading ---------------------------------------------------------------------------------------

def load_comparison(paths: list[Path]) -> Comparison:
    """The runs at `paths`, in that order; a UserError names a path that is no run, or too few runs."""
    if len(paths) < 2:
        raise UserError(f"comparing needs two or more runs, {len(paths)} given",
                        "give two or more run directories: finetune-tui runs --compare RUN_A RUN_B")
    seen: set[Path] = set()
    for path in paths:
        if not path.is_dir() or not is_run_dir(path):
            raise RunDirError(f"{path} is not a run directory (no events.jsonl or run.pid)",
                              "give folders that `finetune-tui run` made; `finetune-tui runs` lists them")
        if path.resolve() in seen:
            raise UserError(f"{path} is given twice", "give each run once")
        seen.add(path.resolve())
    labels = run_labels(paths)
    runs = [load_run(path, label) for path, label in zip(paths, labels, strict=True)]
    notes: list[str] = []
    unread = [run.label for run in runs if run.config is None]
    if unread:
        has = "has" if len(unread) == 1 else "have"
        notes.append(f"{', '.join(unread)} {has} no readable config.yaml: config cells show {MISSING}")
    notes.extend(f"{run.label} {run.status} before the end: its metrics are from its last evaluation"
                 for run in runs if run.status != "finished" and run.final)
    return Comparison(runs, notes)


def load_run(path: Path, label: str | None = None) -> ComparedRun:
    run = RunDir(path)
    events = run.events()
    return ComparedRun(path=path, label=label or path.name, status=run.status(events), config=read_config(run),
                       curves=extract_curves(events), final=final_metrics(events))


def read_config(run: RunDir) -> dict[str, Any] | None:
    """The run's config.yaml, flattened, with this version's defaults for the keys it predates (a run of an older
    version does not differ from a new one by a key neither set); as written when it no longer validates, so such a
    run still compares."""
    import yaml

    from core.config import parse_config
    from core.errors import ConfigError

    try:
        raw = yaml.safe_load(run.config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if not isinstance(raw, dict):
        return None
    try:
        return flatten(parse_config(raw).model_dump(mode="json"))
    except ConfigError:
        return flatten(raw)


def run_labels(paths: list[Path]) -> list[str]:
    """Each run's directory name, with as many parent folders as it takes to tell the runs apart."""
    parts = [path.resolve().parts for path in paths]
    depths = [1] * len(paths)
    while True:
        labels = ["/".join(p[-d:]) for p, d in zip(parts, depths, strict=True)]
        clashing = [i for i, label in enumerate(labels) if labels.count(label) > 1 and depths[i] < len(parts[i])]
        if not clashing:
            return labels
        for i in clashing:
            depths[i] += 1


def config_differences(configs: list[dict[str, Any] | None]) -> list[tuple[str, list[str]]]:
    """(dotted key, a cell per run) for every key whose value is not the same in all the runs that have a config;
    keys in the order the configs list them. A run without a config takes no part and shows MISSING."""
    known = [c for c in configs if c is not None]
    keys: list[str] = []
    for config in known:
        keys.extend(key for key in config if key not in keys)
    rows = []
    for key in keys:
        if key in NOT_COMPARED:
            continue
        values = [config.get(key, _ABSENT) for config in known]
        if all(v == values[0] and type(v) is type(values[0]) for v in values):
            continue
        rows.append((key, [MISSING if c is None else format_value(c.get(key, _ABSENT)) for c in configs]))
    return rows


_ABSENT = object()


def extract_curves(events: list[dict[str, Any]]) -> dict[str, Curve]:
    """Train loss per logged step, and per validation evaluation its loss and each metric.

    A resumed run logs again from its checkpoint's step: the later value of a step replaces the earlier one, so a
    curve never runs backwards."""
    points: dict[str, dict[float, float]] = {TRAIN_LOSS: {}, EVAL_LOSS: {}}
    for event in events:
        step = number(event.get("step"))
        if step is None:
            continue
        if event.get("type") == "step" and "loss" in event:
            points[TRAIN_LOSS][step] = _or_nan(event["loss"])
        elif event.get("type") == "eval" and event.get("split", "validation") == "validation":
            metrics = event.get("metrics")
            for name, value in (metrics.items() if isinstance(metrics, dict) else ()):
                curve = EVAL_LOSS if name == "loss" else name
                points.setdefault(curve, {})[step] = _or_nan(value)
    return {name: Curve(sorted(by_step), [by_step[s] for s in sorted(by_step)]) for name, by_step in points.items()}


def final_metrics(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """split -> metric -> value: the last `finished` event's metrics; a run that never finished has its last
    evaluation of each split instead (what it reached, not what it would have)."""
    finished = next((e for e in reversed(events) if e.get("type") == "finished"), None)
    if finished is not None and isinstance(finished.get("metrics"), dict):
        metrics = dict(finished["metrics"])
        test = metrics.pop("test", None)
        return {"validation": metrics, **({"test": test} if isinstance(test, dict) else {})}
    out: dict[str, dict[str, Any]] = {}
    for event in events:
        if event.get("type") == "eval" and isinstance(event.get("metrics"), dict):
            out[str(event.get("split", "validation"))] = dict(event["metrics"])
    return out


def _or_nan(value: Any) -> float:
    n = number(value)
    return math.nan if n is None else n


# --- showing ---------------------------------------------------------------------------------------

def format_value(value: Any) -> str:
    """A config value as config.yaml spells it."""
    if value is _ABSENT:
        return MISSING
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{}" if not value else str(value)
    return str(value)


def format_metric(value: Any, missing: str = MISSING) -> str:
    """A metric as every table shows it: 4 decimals, whole numbers from 1000 on, NaN/inf as written."""
    n = number(value)
    if n is None:
        return missing if value is None else str(value)
    if not math.isfinite(n):
        return str(value)
    return f"{n:.4f}" if abs(n) < 1000 else f"{n:.0f}"


def table_rows(comparison: Comparison) -> list[tuple[str, list[str], set[int]] | str]:
    """What both the screen and the CLI show: a section title (a str), then (key, a cell per run, best columns)
    rows under it."""
    out: list[tuple[str, list[str], set[int]] | str] = []
    config = comparison.config_rows()
    if sum(run.config is not None for run in comparison.runs) < 2:
        out.append("config differences: fewer than two runs have a config.yaml")
    else:
        out.append("config differences" if config else "config differences: none")
    out.extend((key, cells, set()) for key, cells in config)
    rows = comparison.metric_rows()
    for split in SPLITS:
        in_split = [row for row in rows if row.split == split]
        if in_split:
            out.append(f"final metrics: {split}")
            out.extend((row.name, row.cells, row.best) for row in in_split)
    if not rows:
        out.append("final metrics: none yet")
    return out


def format_comparison(comparison: Comparison) -> str:
    """The comparison as plain text, a column per run; * marks the best value of a metric where the runs differ."""
    lines = [f"comparing {len(comparison.runs)} runs:"]
    width = max(len(run.label) for run in comparison.runs)
    lines.extend(f"  {run.label.ljust(width)}  {run.status:<8}  {run.path}" for run in comparison.runs)
    lines.extend(f"note: {note}" for note in comparison.notes)
    table: list[list[str]] = [["", *comparison.labels]]
    for row in table_rows(comparison):
        if isinstance(row, str):
            table.append([row])
            continue
        key, cells, best = row
        table.append([f"  {key}", *(cell + ("*" if i in best else "") for i, cell in enumerate(cells))])
    widths = [max(len(r[i]) for r in table if len(r) > i and len(r) > 1) for i in range(len(table[0]))]
    lines.append("")
    for r in table:
        if len(r) == 1:
            lines.append(r[0])
        else:
            lines.append("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    if any(row.best for row in comparison.metric_rows()):
        lines.append("\n* the best value of the metric")
    return "\n".join(lines)
