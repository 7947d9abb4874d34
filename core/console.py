"""Plain-text views of events and runs, for `finetune-tui run` and `finetune-tui runs` (no Textual)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.rundir import RunSummary


def _num(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else str(value)


def format_metrics(metrics: dict[str, Any]) -> str:
    return " ".join(f"{k}={_num(v)}" for k, v in metrics.items() if not isinstance(v, dict))


def format_event(event: dict[str, Any]) -> str | None:
    kind = event.get("type")
    if kind == "run_started":
        sizes = event.get("sizes", {})
        warnings = "".join(f"\nwarning: {w}" for w in event.get("warnings") or [])
        labels = event.get("label_summary") or f"{len(event.get('labels', []))} labels"  # runs before tasks: none
        trackers = "".join(f"\n  {name}: {where}" for name, where in (event.get("report_to") or {}).items())
        return (f"started {event.get('engine')} on {event.get('device', {}).get('type')}: model {event.get('model')}, "
                f"{labels}, sizes {sizes}, {event.get('total_steps')} steps{trackers}{warnings}")
    if kind == "step":
        return (f"step {event.get('step')}/{event.get('total_steps')} epoch {_num(event.get('epoch'), 2)} "
                f"loss {_num(event.get('loss'))} lr {_num(event.get('learning_rate'), 7)} "
                f"{_num(event.get('samples_per_second'), 1)} samples/s"
                + (f" {_num(event.get('tokens_per_second'), 0)} tokens/s" if event.get("tokens_per_second") else ""))
    if kind == "eval":
        return f"eval ({event.get('split')}) step {event.get('step')}: {format_metrics(event.get('metrics', {}))}"
    if kind == "sample":
        samples = event.get("samples") or []
        return "\n".join(f"  sample: {one_line(s.get('prompt'))} => {one_line(s.get('generated'))}"
                         for s in samples[:2])
    if kind == "checkpoint":
        return f"checkpoint {event.get('path')}"
    if kind == "finished":
        metrics = event.get("metrics", {})
        test = metrics.get("test")
        text = f"finished in {_num(event.get('runtime_s'), 1)} s: {format_metrics(metrics)}"
        if isinstance(test, dict):
            text += f"\n  test: {format_metrics(test)}"
        text += f"\n  model: {event.get('model_dir')}"
        if event.get("hub_url"):
            text += f"\n  pushed: {event['hub_url']}"
        if event.get("push_error"):
            text += f"\n  not pushed: {event['push_error']}"
        return text
    if kind == "failed":
        hint = event.get("hint")
        return f"failed: {event.get('error')}" + (f"\n  fix: {hint}" if hint else "")
    if kind == "stopped":
        return f"stopped at step {event.get('step')}; checkpoint {event.get('checkpoint')}"
    return None


def one_line(text: object, width: int = 40) -> str:
    """Text on one line (whitespace runs as single spaces), cut to `width` with "..."."""
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= width else flat[:width - 3] + "..."


def format_runs(runs: list[RunSummary]) -> str:
    if not runs:
        return "no runs yet"
    header = ("STARTED", "STATUS", "ENGINE", "DATASET", "BEST", "STEP", "RUN DIR")
    rows = [header]
    for r in runs:
        started = datetime.fromtimestamp(r.started).strftime("%Y-%m-%d %H:%M") if r.started else "-"
        best = f"{r.metric} {r.best:.4f}" if r.best is not None else "-"
        step = f"{r.step}/{r.total_steps}" if r.total_steps else str(r.step)
        rows.append((started, r.status, r.engine, r.dataset, best, step, str(r.path)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)
