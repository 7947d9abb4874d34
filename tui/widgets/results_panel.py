"""What the run has achieved so far: the latest evaluation while it trains, and its outcome once it ends.

finished: final metrics (validation and test side by side) and where the model is;
failed: the error and the hint to fix it; stopped: the checkpoint to resume from; died: what that means.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from core.compare import format_metric as core_format_metric
from core.events import number
from core.metrics import greater_is_better
from tui.widgets.progress_panel import format_duration


def format_metric(value: Any) -> str:
    return core_format_metric(value, missing="?")


def wrap_path(path: str, width: int) -> list[str]:
    """Break a long path after its slashes, so a narrow panel shows `.../runs/` + `name/model`, not `mode` + `l`."""
    if width <= 0 or len(path) <= width:
        return [path]
    parts = [p + "/" for p in path.split("/")[:-1]] + [path.split("/")[-1]]
    lines = [""]
    for part in parts:
        if lines[-1] and len(lines[-1]) + len(part) > width:
            lines.append("")
        lines[-1] += part
    out: list[str] = []
    for line in lines:  # a single name longer than the panel is cut where it must be
        out.extend(line[i : i + width] for i in range(0, len(line), width))
    return out


def _metric_order(names: list[str], primary: str) -> list[str]:
    """Primary metric first, loss last, the rest between in the order the run reports them (the config's, which
    follows the task's: pearson beside spearman, f1_micro beside f1_macro)."""
    rest = [n for n in names if n not in (primary, "loss")]
    return [n for n in (primary,) if n in names] + rest + [n for n in ("loss",) if n in names]


def _numeric(metrics: Any) -> dict[str, Any]:
    if not isinstance(metrics, dict):
        return {}
    return {k: v for k, v in metrics.items() if not isinstance(v, dict | list)}


class ResultsPanel(Static):
    DEFAULT_CSS = """
    ResultsPanel {
        height: auto;
    }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__("", name=name, id=id, classes=classes)
        self.metric = "accuracy"
        self.status = "starting"
        self.evals: list[dict[str, Any]] = []
        self.checkpoint: dict[str, Any] | None = None
        self.terminal: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        return self._text().plain

    @property
    def model_dir(self) -> str | None:
        """Where the finished run saved its model (from the `finished` event)."""
        if self.terminal and self.terminal.get("type") == "finished" and self.terminal.get("model_dir"):
            return str(self.terminal["model_dir"])
        return None

    def on_mount(self) -> None:
        self._refresh_text()

    def on_resize(self) -> None:
        self._refresh_text()  # the model path is wrapped to the panel's width

    def set_metric(self, metric: str) -> None:
        self.metric = metric
        self._refresh_text()

    def add_evals(self, events: list[dict[str, Any]]) -> None:
        self.evals.extend(e for e in events if e.get("split", "validation") == "validation")
        self._refresh_text()

    def set_checkpoint(self, event: dict[str, Any]) -> None:
        self.checkpoint = event
        self._refresh_text()

    def set_terminal(self, event: dict[str, Any]) -> None:
        self.terminal = event
        self._refresh_text()

    def set_status(self, status: str) -> None:
        if status != self.status:
            self.status = status
            self._refresh_text()

    def _refresh_text(self) -> None:
        self.update(self._text())
        self.border_title, self.border_subtitle = self._titles()

    def _titles(self) -> tuple[str, str]:
        """The eval's step and the newest checkpoint go in the border, leaving the inside for metrics."""
        checkpoint = f"checkpoint @ step {self.checkpoint.get('step', '?')}" if self.checkpoint else ""
        if self.terminal is not None or self.status in ("finished", "failed", "stopped"):
            return "Results", ""
        if not self.evals:
            return "Evaluation", checkpoint
        last = self.evals[-1]
        epoch = number(last.get("epoch"))
        title = f"Eval · step {last.get('step', '?')}" + (f" · epoch {epoch:.2f}" if epoch is not None else "")
        return title, checkpoint

    # --- text ------------------------------------------------------------------------------------
    def _text(self) -> Text:
        kind = self.terminal.get("type") if self.terminal else self.status
        if kind == "finished":
            return self._finished()
        if kind == "failed":
            return self._failed()
        if kind == "stopped":
            return self._stopped()
        out = Text()
        if kind == "died":
            out.append("✘ Died\n", style="bold red")
            out.append(
                "The process is gone without a final event (killed, out of memory, or a restart). See the log.\n\n"
            )
        out.append_text(self._progress_so_far())
        return out

    def _progress_so_far(self) -> Text:
        out = Text()
        if not self.evals:
            out.append("No evaluation yet.", style="dim")
        else:
            out.append_text(self._table({"": _numeric(self.evals[-1].get("metrics"))}))
            best = self._best()
            if best is not None:
                out.append("\n best ", style="dim")
                out.append(format_metric(best[1]), style="bold green")
                out.append(f" at step {best[0]}", style="dim")
        return out

    def _best(self) -> tuple[Any, float] | None:
        scored = [
            (e.get("step"), value)
            for e in self.evals
            if (value := number((e.get("metrics") or {}).get(self.metric))) is not None and value == value
        ]
        if not scored:
            return None
        pick = max if greater_is_better(self.metric) else min  # a loss is best when lowest
        return pick(scored, key=lambda pair: pair[1])

    def _table(self, columns: dict[str, dict[str, Any]]) -> Text:
        """Metric names down, one column per split; a header row only when there is more than one column."""
        names = _metric_order(list(dict.fromkeys(n for metrics in columns.values() for n in metrics)), self.metric)
        width = max((len(n) for n in names), default=0)
        out = Text()
        if len(columns) > 1:
            out.append(" " * (width + 1))
            for title in columns:
                out.append(f" {title:>8}", style="dim")
            out.append("\n")
        for name in names:
            out.append(f" {name:<{width}}", style="bold" if name == self.metric else "")
            for metrics in columns.values():
                value = format_metric(metrics[name]) if name in metrics else "-"
                out.append(f" {value:>8}", style="bold green" if name == self.metric else "")
            out.append("\n")
        out.rstrip()
        return out

    def _finished(self) -> Text:
        event = self.terminal or {}
        out = Text()
        out.append("✔ Finished", style="bold green")
        runtime = number(event.get("runtime_s"))
        out.append(f" in {format_duration(runtime)}\n" if runtime is not None else "\n", style="bold green")
        metrics = event.get("metrics") if isinstance(event.get("metrics"), dict) else {}
        columns = {"val": _numeric(metrics)}
        if isinstance(metrics.get("test"), dict):
            columns["test"] = _numeric(metrics["test"])
        if any(columns.values()):
            out.append_text(self._table(columns))
            out.append("\n")
        out.append("Model saved in", style="bold")
        for line in wrap_path(str(event.get("model_dir") or "?"), self.content_size.width - 1):
            out.append(f"\n {line}")
        return out

    def _failed(self) -> Text:
        event = self.terminal or {}
        out = Text()
        kind = event.get("error_type")
        out.append(f"✘ Failed{': ' + str(kind) if kind else ''}\n", style="bold red")
        out.append(f"{event.get('error') or 'no error message was recorded'}\n")
        hint = event.get("hint")
        if hint:
            out.append("\nFix: ", style="bold yellow")
            out.append(str(hint), style="yellow")
        return out

    def _stopped(self) -> Text:
        event = self.terminal or {}
        out = Text()
        out.append(f"■ Stopped at step {event.get('step', '?')}\n", style="bold yellow")
        checkpoint = event.get("checkpoint")
        if checkpoint:
            out.append("Checkpoint to resume from", style="bold")
            for line in wrap_path(str(checkpoint), self.content_size.width - 1):
                out.append(f"\n {line}")
            out.append("\n")
        else:
            out.append("No checkpoint was saved.\n", style="dim")
        if self.evals:
            out.append(f"\nLast eval at step {self.evals[-1].get('step', '?')}\n", style="bold")
            out.append_text(self._progress_so_far())
        return out
