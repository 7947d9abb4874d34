"""A one-page PNG of a run: loss curves from events.jsonl and the task's panel of an evaluation (e.g. the
confusion matrix).

Made for people who copy results off a GPU box without a display: matplotlib's Agg backend through the Figure API
(no pyplot), so it needs no display and keeps no global state, and is safe from a worker thread.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.events import number

if TYPE_CHECKING:
    from core.evaluation import Evaluation


def _number(value: Any) -> float | None:
    """A finite number from an event, else None (NaN/inf are not drawn)."""
    n = number(value)
    return n if n is not None and math.isfinite(n) else None


def loss_curves(events: list[dict[str, Any]]) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(training loss, validation loss) as (step, loss) points; NaN and inf left out."""
    train, val = [], []
    for e in events:
        if e.get("type") == "step" and (loss := _number(e.get("loss"))) is not None:
            train.append((int(e.get("step", 0)), loss))
        elif e.get("type") == "eval" and e.get("split", "validation") == "validation":
            loss = _number((e.get("metrics") or {}).get("loss"))
            if loss is not None:
                val.append((int(e.get("step", 0)), loss))
    return train, val


def write_report(path: str | Path, events: list[dict[str, Any]], evaluation: Evaluation | None = None) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    n = len(evaluation.labels) if evaluation is not None else 0
    side = max(4.5, min(14.0, 0.45 * n + 3.0))
    fig = Figure(figsize=(6.0 + side, max(4.5, side)), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    loss_ax, matrix_ax = fig.subplots(1, 2, width_ratios=[6.0, side])
    _plot_losses(loss_ax, events)
    if evaluation is not None:
        from core.tasks import get_task

        get_task(evaluation.task).plot_report(fig, matrix_ax, evaluation)
    else:
        matrix_ax.set_axis_off()
        matrix_ax.text(0.5, 0.5, "no evaluation", ha="center", va="center")
    started = next((e for e in events if e.get("type") == "run_started"), {})
    model = str(started.get("model") or "")
    model = Path(model).name if len(model) > 40 else model  # a local path: its folder name says enough
    title = " · ".join(str(x) for x in (started.get("run_id"), model, started.get("dataset")) if x)
    if title:
        fig.suptitle(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, format="png")
    tmp.replace(path)
    return path


def _plot_losses(ax: Any, events: list[dict[str, Any]]) -> None:
    train, val = loss_curves(events)
    if train:
        ax.plot(*zip(*train, strict=True), label="training loss", color="tab:blue", linewidth=1.2)
    if val:
        ax.plot(*zip(*val, strict=True), label="validation loss", color="tab:orange", marker="o", linewidth=1.2)
    if not train and not val:
        ax.text(0.5, 0.5, "no losses logged", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.legend()
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("Loss")
    ax.grid(alpha=0.3)
