"""Progress of a run: a bar with step/total, then epoch, elapsed time, ETA and throughput.

Everything is computed from the events (elapsed_s, step, total_steps), never from the wall clock, so a
replayed run shows the same numbers as the live one did.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import ProgressBar, Static

from core.device import mfu
from core.events import number


def format_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def format_rate(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:.1f}"


class ProgressPanel(Widget):
    DEFAULT_CSS = """
    ProgressPanel {
        height: auto;
        padding: 0 1;
    }
    ProgressPanel > Horizontal {
        height: 1;
    }
    ProgressPanel ProgressBar {
        width: 1fr;
    }
    ProgressPanel ProgressBar > Bar {
        width: 1fr;
    }
    ProgressPanel .progress-steps {
        width: auto;
        padding-left: 1;
    }
    ProgressPanel .progress-stats {
        height: auto;
        color: $text-muted;
    }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.step = 0
        self.total: int | None = None
        self.epochs: float | None = None
        self.status = "starting"
        self.parameters: int | None = None
        self.peak_tflops: float | None = None
        self._last: dict[str, Any] = {}

    def compose(self) -> ComposeResult:
        with Horizontal():
            # Textual's own ETA reads the wall clock; ours comes from the events (see module docstring).
            yield ProgressBar(show_eta=False)
            yield Static("step 0/?", classes="progress-steps")
        yield Static("waiting for the first step…", classes="progress-stats")

    def set_plan(self, total_steps: Any, epochs: Any, parameters: Any = None, peak_tflops: Any = None) -> None:
        total = number(total_steps)
        self.total = int(total) if total and total > 0 else None
        self.epochs = number(epochs)
        count = number(parameters)
        self.parameters = int(count) if count else None
        self.peak_tflops = number(peak_tflops)
        self._render_progress()

    def update_step(self, event: dict[str, Any]) -> None:
        step = number(event.get("step"))
        if step is not None:
            self.step = int(step)
        if self.total is None and (total := number(event.get("total_steps"))):
            self.total = int(total)
        self._last = event
        self._render_progress()

    def reach(self, step: int) -> None:
        """A step the run logged something else at (an evaluation), which may come after its last step event."""
        if step > self.step:
            self.step = step
            self._render_progress()

    def set_status(self, status: str) -> None:
        self.status = status
        self._render_progress()

    @property
    def steps_text(self) -> str:
        return str(self.query_one(".progress-steps", Static).content)

    @property
    def stats_text(self) -> str:
        return str(self.query_one(".progress-stats", Static).content)

    def _render_progress(self) -> None:
        bar = self.query_one(ProgressBar)
        done = self.status == "finished"
        if self.total:
            bar.update(total=self.total, progress=self.total if done else min(self.step, self.total))
        elif done:
            bar.update(total=1, progress=1)
        self.query_one(".progress-steps", Static).update(f"step {self.step}/{self.total or '?'}")
        self.query_one(".progress-stats", Static).update(self._stats())

    def _stats(self) -> str:
        event = self._last
        parts: list[str] = []
        epoch = number(event.get("epoch"))
        if epoch is not None:
            parts.append(f"epoch {epoch:.2f}/{self.epochs:g}" if self.epochs else f"epoch {epoch:.2f}")
        elapsed = number(event.get("elapsed_s"))
        if elapsed is not None:
            parts.append(f"elapsed {format_duration(elapsed)}")
        if self.status == "finished":
            parts.append("done")
        elif self.status in ("starting", "running") and elapsed and self.step and self.total:
            parts.append(f"ETA {format_duration(elapsed / self.step * max(0, self.total - self.step))}")
        samples = number(event.get("samples_per_second"))
        if samples is not None and samples == samples:
            parts.append(f"{format_rate(samples)} samples/s")
        tokens = number(event.get("tokens_per_second", event.get("train_tokens_per_second")))
        if tokens is not None and tokens == tokens:
            parts.append(f"{format_rate(tokens)} tokens/s")
            utilisation = mfu(self.parameters, tokens, self.peak_tflops)
            if utilisation is not None:
                parts.append(f"MFU {utilisation:.0%}")
        return " · ".join(parts) if parts else "waiting for the first step…"
