"""The live monitor of one run: loss chart, progress, device, results and log tail, plus Stop and Kill.

It reads the run directory and nothing else, so it can attach to any run at any time (even one started
from another terminal) and leaving it never touches the training process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState, get_current_worker

from core.events import number
from core.rundir import RunDir, Status
from tui.run_watch import RunUpdate, RunWatcher
from tui.screens.confirm import ConfirmScreen
from tui.widgets.confusion_matrix import ConfusionMatrix
from tui.widgets.device_panel import DevicePanel
from tui.widgets.log_tail import LogTail
from tui.widgets.loss_chart import LossChart
from tui.widgets.progress_panel import ProgressPanel
from tui.widgets.results_panel import ResultsPanel
from tui.widgets.samples_panel import SamplesPanel

STATUS_STYLES: dict[str, tuple[str, str]] = {
    "starting": ("◌", "bold yellow"),
    "running": ("●", "bold cyan"),
    "finished": ("✔", "bold green"),
    "failed": ("✘", "bold red"),
    "stopped": ("■", "bold yellow"),
    "died": ("✘", "bold red"),
}
ENDED = ("finished", "failed", "stopped", "died")


def status_text(status: str) -> Text:
    icon, style = STATUS_STYLES.get(status, ("?", "bold"))
    return Text(f"{icon} {status}", style=style)


def leave_screen(screen: Screen[Any]) -> None:
    """Back to the screen beneath, or quit when this screen is the app's first (e.g. `finetune-tui monitor`)."""
    if len(screen.app.screen_stack) > 1:
        screen.dismiss()
    else:
        screen.app.exit()


class MonitorScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "stop", "Stop"),
        Binding("k", "kill", "Kill"),
        Binding("t", "try_model", "Try model"),
        Binding("escape,q", "back", "Back"),
    ]
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]] | None] = [(0, "-narrow"), (100, "-wide")]
    VERTICAL_BREAKPOINTS: ClassVar[list[tuple[int, str]] | None] = [(0, "-short"), (30, "-tall")]

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = RunDir(run_dir)
        self.status: Status = "starting"
        self.events_seen = 0
        self.started: dict[str, Any] = {}
        self._watcher = RunWatcher(self.run_dir, self.post_message)

    def compose(self) -> ComposeResult:
        yield Static(id="monitor-title")
        yield ProgressPanel(id="monitor-progress")
        with Horizontal(id="monitor-body"):
            yield LossChart(id="monitor-chart")
            yield SamplesPanel(id="monitor-samples")
            with Vertical(id="monitor-side"):
                yield DevicePanel(id="monitor-device")
                yield ResultsPanel(id="monitor-results")
                yield ConfusionMatrix(id="monitor-confusion")
        yield LogTail(id="monitor-log")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DevicePanel).border_title = "Device"
        self.query_one(ConfusionMatrix).display = False  # until the finished run's evaluation is read
        self.query_one(LossChart).border_subtitle = ""
        log = self.query_one(LogTail)
        log.border_title = "Log"
        log.border_subtitle = "stdout.log + stderr.log"
        self._show_title()
        self._watch()

    def on_unmount(self) -> None:
        self._watcher.stop()

    @work(thread=True, exclusive=True, group="run-watch", exit_on_error=False)
    def _watch(self) -> None:
        worker = get_current_worker()
        self._watcher.run(lambda: worker.is_cancelled)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "run-watch" and event.state == WorkerState.ERROR:
            self.notify(f"Stopped reading the run directory: {event.worker.error}", severity="error", timeout=30)

    # --- news from the run -----------------------------------------------------------------------
    def on_run_update(self, message: RunUpdate) -> None:
        message.stop()
        batch = message.batch
        if batch is not None:
            self.events_seen += batch.count
            if batch.started:
                self._apply_started(batch.started)
            chart = self.query_one(LossChart)
            if batch.train_steps:
                chart.add_train(batch.train_steps, batch.train_losses)
            validation = [e for e in batch.evals if e.get("split", "validation") == "validation"]
            for event in validation:
                metrics = event.get("metrics") if isinstance(event.get("metrics"), dict) else {}
                step = number(event.get("step"))
                if step is not None:
                    chart.add_eval(step, number(metrics.get("loss")), number(metrics.get(chart.metric)))
            results = self.query_one(ResultsPanel)
            if validation:
                results.add_evals(validation)
            if batch.checkpoints:
                results.set_checkpoint(batch.checkpoints[-1])
            if batch.samples is not None:
                self.query_one(SamplesPanel).show_samples(batch.samples)
            if batch.terminal:
                results.set_terminal(batch.terminal)
                if batch.terminal.get("type") == "finished" and isinstance(batch.terminal.get("evaluation"), dict):
                    self._load_evaluation(list(batch.terminal["evaluation"]))
            progress = self.query_one(ProgressPanel)
            if batch.last_step:
                progress.update_step(batch.last_step)
            for event in batch.evals:  # the final evaluation comes after the last logged step (96 after 95)
                if (step := number(event.get("step"))) is not None:
                    progress.reach(int(step))
            if batch.device:
                self.query_one(DevicePanel).update_snapshot(batch.device)
            if batch.warnings:
                self.query_one(LogTail).add_warnings(batch.warnings)
                self.notify(batch.warnings[-1], title="Skipped a bad event line", severity="warning")
        if message.log_lines is not None:
            self.query_one(LogTail).set_lines(message.log_lines)
        self._set_status(message.status)

    def _apply_started(self, event: dict[str, Any]) -> None:
        self.started = event
        metric = str(event.get("primary_metric") or "accuracy")
        self.query_one(LossChart).set_metric(metric)
        self.query_one(ResultsPanel).set_metric(metric)
        self.query_one(ProgressPanel).set_plan(event.get("total_steps"), event.get("num_train_epochs"),
                                               event.get("parameters"), event.get("peak_tflops"))
        self._show_title()

    def _set_status(self, status: Status) -> None:
        changed = status != self.status
        self.status = status
        self.set_class(status in ENDED, "-ended")
        self.set_class(status == "failed", "-failed")
        self.query_one(ProgressPanel).set_status(status)
        self.query_one(ResultsPanel).set_status(status)
        if changed:
            self._show_title()
            self.refresh_bindings()

    def _show_title(self) -> None:
        title = status_text(self.status)
        title.append(f"  {self.run_dir.path.name}", style="bold")
        details = [str(self.started[k]) for k in ("model", "dataset", "engine") if self.started.get(k)]
        if details:
            title.append("  " + " · ".join(details), style="dim")
        self.query_one("#monitor-title", Static).update(title)

    @work(thread=True, exclusive=True, group="evaluation", exit_on_error=False)
    def _load_evaluation(self, splits: list[str]) -> None:
        from core.evaluation import load_evaluation

        split = "test" if "test" in splits else "validation"
        evaluation = load_evaluation(self.run_dir.path, split)
        if evaluation is not None:
            self.app.call_from_thread(self._show_evaluation, evaluation)

    def _show_evaluation(self, evaluation: Any) -> None:
        from core.tasks import get_task

        grid = get_task(evaluation.task).results_grid(evaluation)
        if grid is None:
            return
        matrix = self.query_one(ConfusionMatrix)
        matrix.set_grid(grid)
        matrix.display = True
        self.add_class("-evaluated")

    # --- actions ---------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # A run that has ended shows Stop/Kill greyed out rather than hiding them, so the footer keeps its shape.
        if action == "stop":
            return None if self.status in ("finished", "failed", "stopped") else True
        if action == "kill":
            return True if self.status in ("starting", "running") else None
        if action == "try_model":
            return True if self.status == "finished" else None
        return True

    def action_try_model(self) -> None:
        from tui.screens.try_model import TryModelScreen

        self.app.push_screen(TryModelScreen(self.run_dir.path))

    def action_stop(self) -> None:
        note = (
            "It saves a checkpoint, writes its final events and exits; this can take a little while."
            if self.status != "died"
            else "No live process holds this run's lock. A STOP file is still written in case it is just starting."
        )
        self.app.push_screen(
            ConfirmScreen(f"Stop {self.run_dir.path.name}?", note, confirm_label="Stop"), self._stop_confirmed
        )

    def _stop_confirmed(self, confirmed: bool | None) -> None:
        if not confirmed:
            return
        try:
            self.run_dir.request_stop()
        except OSError as err:
            self.notify(f"Could not ask the run to stop: {err}", severity="error")
            return
        self.notify("Stop requested: the run will checkpoint and exit.", title="Stopping")

    def action_kill(self) -> None:
        self.app.push_screen(
            ConfirmScreen(
                f"Kill {self.run_dir.path.name} now?",
                "Its processes end at once: nothing more is saved, and training since the last checkpoint is lost.",
                confirm_label="Kill",
                danger=True,
            ),
            self._kill_confirmed,
        )

    def _kill_confirmed(self, confirmed: bool | None) -> None:
        if not confirmed:
            return
        try:
            self.run_dir.kill()
        except OSError as err:
            self.notify(f"Could not kill the run: {err}", severity="error")
            return
        self.notify("Kill sent: the run's processes were ended.", title="Killed", severity="warning")

    def action_back(self) -> None:
        leave_screen(self)
