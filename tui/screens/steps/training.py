"""Step 5: training settings: the basics first, the rest under Advanced; each field says what it does."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Checkbox, Collapsible, Label, SelectionList, Static

from core.errors import ConfigError
from core.lr_range import rate_label
from core.tasks import DEFAULT_TASK, TASKS, get_task
from core.tracking import TRACKERS, check_trackers, installed_trackers
from tui.draft import allows_none, choices, help_for
from tui.screens.steps.base import Step, heavy, in_background, say
from tui.screens.steps.dataset import task_fields
from tui.widgets.field_row import FieldRow
from tui.widgets.path_suggester import PathSuggester

MEMORY_DEBOUNCE_S = 0.6  # the estimate builds a meta-device model: once typing pauses
LORA_PATHS = ("training.lora.r", "training.lora.alpha", "training.lora.dropout")


def tracker_options(chosen: list[str]) -> list[tuple[str, str, bool]]:
    ready = installed_trackers()
    return [(name if name in ready else f"{name} (not installed)", name, name in chosen) for name in TRACKERS]


def _precisions() -> list[str]:
    from core.device import supported_precisions

    return supported_precisions()


class TrainingStep(Step):
    TITLE = "Training"
    NAME = "training"

    def compose(self) -> ComposeResult:
        d = self.draft

        def row(path: str, label: str, **kw: Any) -> FieldRow:
            if "options" not in kw and kw.get("editor") == "select":
                # A setting that may be null (training.quantization) offers that as the select's blank.
                kw["options"] = [(c, c) for c in choices(path)] + ([("none", None)] if allows_none(path) else [])
            return FieldRow(d, path, label=label, id=f"field-{path.replace('.', '-')}", **kw)

        yield Static("How should it train?", classes="step-title")
        yield Static("", id="task-defaults", markup=False)
        yield row("training.num_train_epochs", "Epochs")
        yield row("training.learning_rate", "Learning rate")
        yield row("training.per_device_train_batch_size", "Batch size")
        with Horizontal(classes="field-line probe-line", id="probe-line"):
            yield Button("Probe batch size", id="probe", compact=True)
            yield Static("", id="probe-status", classes="field-help", markup=False)
        yield Static("", id="memory-estimate", classes="field-help", markup=False)
        # Under the batch probe, not beside the rate: the rate that suits depends on the batch, so that comes first.
        with Vertical(id="lr-tool"):
            with Horizontal(classes="field-line", id="lr-line"):
                yield Button("Find learning rate", id="lr-find", compact=True)
                yield Button("Use", id="lr-use", compact=True)
            yield Static("", id="lr-status", markup=False)
        yield Collapsible(title="Loss against learning rate", id="lr-curve", collapsed=False)  # the chart goes in
        yield row("training.eval_strategy", "Evaluate", editor="select")
        yield row("training.eval_steps", "Eval every (steps)", placeholder="only for eval_strategy steps")
        with Collapsible(title="Advanced", id="advanced", collapsed=True):
            yield row("training.warmup_ratio", "Warmup ratio")
            yield row("training.lr_scheduler_type", "Scheduler", editor="select")
            yield row("training.weight_decay", "Weight decay")
            yield row("training.gradient_accumulation_steps", "Accumulation steps")
            yield row("training.mixed_precision", "Mixed precision", editor="select",
                      options=self._precision_options(["no"]))
            yield row("training.early_stopping_patience", "Early stopping patience", placeholder="off")
            metrics = d.metric_choices()
            with Vertical(classes="field-row"):
                with Horizontal(classes="field-line"):
                    yield Label("Metrics", classes="field-label")
                    yield SelectionList[str](*[(m, m, m in (d.get("metrics") or [])) for m in metrics],
                                             id="metrics", compact=True)
                yield Static(help_for("metrics"), classes="field-help", markup=False)
            yield row("training.metric_for_best_model", "Best-model metric", editor="select",
                      options=[("first metric", None), ("loss", "loss"), *[(m, m) for m in metrics]])
            for f in task_fields("training").values():  # the current task's are shown (on_mount, on_enter)
                yield row(f.path, f.label, editor=f.editor, placeholder=f.placeholder)
            yield row("training.freeze_encoder", "Freeze encoder", editor="checkbox")
            with Vertical(classes="field-row"):
                yield Checkbox("Use LoRA adapters (peft)", d.lora_enabled(), id="use-lora", compact=True)
                yield Static(help_for("training.lora"), classes="field-help", markup=False)
            with Vertical(id="lora-fields"):
                yield row("training.lora.r", "LoRA r")
                yield row("training.lora.alpha", "LoRA alpha")
                yield row("training.lora.dropout", "LoRA dropout")
            yield row("training.group_by_length", "Group by length", editor="checkbox")
            yield row("training.seed", "Seed")
            yield row("training.max_steps", "Max steps")
            yield row("training.logging_steps", "Logging steps")
            yield row("training.save_strategy", "Save checkpoints", editor="select")
            yield row("training.save_steps", "Save every (steps)", placeholder="only for save_strategy steps")
            yield row("training.save_total_limit", "Checkpoints kept", placeholder="all")
            yield row("training.per_device_eval_batch_size", "Eval batch size")
            yield row("training.num_processes", "Processes (GPUs)", placeholder="one per local GPU")
            yield row("training.fsdp", "Shard the model (FSDP)", editor="checkbox")
            yield row("training.max_grad_norm", "Max grad norm")
            with Vertical(classes="field-row"):
                with Horizontal(classes="field-line"):
                    yield Label("Trackers", classes="field-label")
                    yield SelectionList[str](*tracker_options(d.get("training.report_to") or []), id="report-to",
                                             compact=True)
                yield Static(help_for("training.report_to"), classes="field-help", markup=False)
            yield row("training.push_to_hub", "Push to the Hub", editor="checkbox")
            yield row("training.hub_model_id", "Hub repository", placeholder="<you>/<run name>")
            yield row("training.hub_private_repo", "Private repository", editor="checkbox")
            yield row("output_dir", "Output directory", placeholder="runs/<engine>-<data>-<time>",
                      suggester=PathSuggester(None, dirs_only=True))

    def on_mount(self) -> None:
        self._show_lora(self.draft.lora_enabled())
        self._sync_task()
        self._lr_result: dict[str, Any] | None = None
        self._lr_process: Any = None  # the range test's subprocess while it runs
        self.query_one("#lr-use").display = False
        self.query_one("#lr-curve").display = False
        say(self.query_one("#lr-status", Static), "")

    def on_enter(self) -> None:
        self._estimate_later(0.0)
        self._sync_task()
        if self.findings.precisions is None:
            self.load_precisions()

    def _sync_task(self) -> None:
        """Show the current task's fields and offer its metrics (the task may change on the first step)."""
        name = self.draft.get("task") or DEFAULT_TASK
        task = get_task(name)
        # Why this task starts from its own learning rate and epochs (set on the first step by Draft.set_task).
        defaults = TASKS[name].training_defaults
        own = [key for key, value in defaults.items() if self.draft.get(f"training.{key}") != value]
        say(self.query_one("#task-defaults", Static), TASKS[name].defaults_why
            + (f" This config sets its own {', '.join(own)}." if own else ""))
        for key in TASKS[name].training_defaults:
            self.query_one(f"#field-training-{key}", FieldRow).reload()
        mine = {f.path for f in task.wizard_fields}
        for path in task_fields("training"):
            self.query_one(f"#field-{path.replace('.', '-')}", FieldRow).set_class(path not in mine, "-inactive")
        metrics = self.query_one("#metrics", SelectionList)
        offered = [metrics.get_option_at_index(i).value for i in range(metrics.option_count)]
        if offered != list(task.metric_names):
            chosen = self.draft.get("metrics") or []
            metrics.clear_options()
            metrics.add_options([(m, m, m in chosen) for m in task.metric_names])
            best = self.query_one("#field-training-metric_for_best_model", FieldRow)
            best.set_options([("first metric", None), ("loss", "loss"), *[(m, m) for m in task.metric_names]],
                             self.draft.get("training.metric_for_best_model"))

    def _precision_options(self, supported: list[str]) -> list[tuple[str, Any]]:
        current = self.draft.get("training.mixed_precision")
        offered = list(dict.fromkeys([*supported, *([current] if current else [])]))
        return [(p if p in supported else f"{p} (not supported here)", p) for p in offered]

    @work(thread=True, exclusive=True, group="precisions", exit_on_error=False)
    def load_precisions(self) -> None:
        try:
            supported = _precisions()
        except Exception:  # no driver library, odd machine: full precision always works
            supported = ["no"]
        self.findings.precisions = supported
        self.app.call_from_thread(self._set_precisions, supported)

    def _set_precisions(self, supported: list[str]) -> None:
        row = self.query_one("#field-training-mixed_precision", FieldRow)
        row.set_options(self._precision_options(supported), self.draft.get("training.mixed_precision"))

    def _show_lora(self, on: bool) -> None:
        lora = self.query_one("#lora-fields")
        lora.set_class(not on, "-inactive")
        for row in lora.query(FieldRow):
            row.reload()

    # --- memory estimate --------------------------------------------------------------------------
    def on_field_row_changed(self, event: FieldRow.Changed) -> None:
        if event.problem is None:
            self._estimate_later(MEMORY_DEBOUNCE_S)

    def _estimate_later(self, delay: float) -> None:
        timer = getattr(self, "_memory_timer", None)
        if timer is not None:
            timer.stop()
        self._memory_timer = self.set_timer(delay, self._estimate) if delay else None
        if not delay:
            self._estimate()

    @work(exclusive=True, group="memory", exit_on_error=False)
    async def _estimate(self) -> None:
        """core.memory's estimate for the settings as they stand (a meta-device model: no weights, no device)."""
        from core.memory import report

        try:
            config = self.draft.build()
        except ConfigError:
            return  # the fields say what is wrong; the estimate waits for a valid config
        estimate, lines = await in_background(heavy, report, config)
        status = self.query_one("#memory-estimate", Static)
        status.set_class(estimate is not None and estimate.fits is False, "-error")
        say(status, "\n".join(line.removeprefix("warning: ") for line in lines))

    # --- batch-size probe -------------------------------------------------------------------------
    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id in ("lr-find", "lr-use"):
            event.stop()
            self._lr_pressed(event.button)
            return
        if event.button.id != "probe":
            return
        event.stop()
        problems = self.draft.problems()
        status = self.query_one("#probe-status", Static)
        if problems:
            say(status, f"fix first: {problems[0]}", "-error")
            return
        say(status, "probing: forward and backward at max_length with growing batches…", "-warning")
        event.button.disabled = True
        self.probe(self.draft.build())

    @work(thread=True, exclusive=True, group="probe", exit_on_error=False)
    def probe(self, config: Any) -> None:
        """`finetune-tui probe` in its own process: the UI never runs the model itself."""
        import json
        import subprocess
        import sys
        import tempfile
        from pathlib import Path

        from core.config import save_config

        with tempfile.TemporaryDirectory(prefix="finetune-tui-probe-") as folder:
            path = save_config(config, Path(folder) / "probe.yaml")
            done = subprocess.run([sys.executable, "-m", "tui.cli", "probe", str(path), "--json"],
                                  capture_output=True, text=True, cwd=Path.cwd())
        if done.returncode != 0:
            message = (done.stderr.strip().splitlines() or ["the probe failed"])[0]
            self.app.call_from_thread(self._probed, None, message)
            return
        self.app.call_from_thread(self._probed, json.loads(done.stdout.strip().splitlines()[-1]), "")

    def _probed(self, result: dict[str, Any] | None, error: str) -> None:
        self.query_one("#probe", Button).disabled = False
        status = self.query_one("#probe-status", Static)
        if result is None:
            say(status, error, "-error")
            return
        batch, accumulation = result["per_device_train_batch_size"], result["gradient_accumulation_steps"]
        self.draft.set("training.per_device_train_batch_size", batch)
        self.draft.set("training.gradient_accumulation_steps", accumulation)
        for path in ("training.per_device_train_batch_size", "training.gradient_accumulation_steps"):
            self.query_one(f"#field-{path.replace('.', '-')}", FieldRow).reload()
        last = next((r for r in reversed(result["rows"]) if r["fits"]), None)
        cost = ""
        if last is not None:
            cost = (f", {last['peak_memory_mb']:,.0f} MB peak" if result["device"] == "cuda"
                    else f", {last['seconds_per_step']:.2f} s a step")
        say(status, f"batch {batch} × accumulation {accumulation} keeps the effective batch of "
                    f"{result['effective_batch_size']} on {result['device']}{cost}", "-ok")

    # --- learning-rate range test ---------------------------------------------------------------------
    def _lr_pressed(self, button: Button) -> None:
        status = self.query_one("#lr-status", Static)
        if button.id == "lr-use":
            rate = (self._lr_result or {}).get("suggested_lr")
            if rate is not None:
                self.draft.set("training.learning_rate", rate)
                self.query_one("#field-training-learning_rate", FieldRow).reload()
                say(status, f"learning rate set to {rate:g}", "-ok")
            return
        problems = self.draft.problems()
        if problems:
            say(status, f"fix first: {problems[0]}", "-error")
            return
        say(status, "finding a learning rate: a few dozen steps with a rising rate on the training data…",
            "-warning")
        button.disabled = True
        self.query_one("#lr-use").display = False
        self.find_lr(self.draft.build())

    @work(thread=True, exclusive=True, group="lr-range", exit_on_error=False)
    def find_lr(self, config: Any) -> None:
        """`finetune-tui probe --lr` in its own process (the UI never runs the model itself), read a line at a time:
        a JSON object per step, then the result."""
        import json
        import subprocess
        import sys
        import tempfile
        from pathlib import Path

        from textual.worker import get_current_worker

        from core.config import save_config

        worker = get_current_worker()
        result: dict[str, Any] | None = None
        with tempfile.TemporaryDirectory(prefix="finetune-tui-lr-") as folder:
            path = save_config(config, Path(folder) / "lr.yaml")
            # stderr to a file, not a pipe: transformers' warnings could fill a pipe nobody reads while stdout is.
            with open(Path(folder) / "stderr.txt", "w+", encoding="utf-8") as errors:
                process = subprocess.Popen([sys.executable, "-m", "tui.cli", "probe", str(path), "--lr", "--json"],
                                           stdout=subprocess.PIPE, stderr=errors, text=True, cwd=Path.cwd())
                self._lr_process = process
                assert process.stdout is not None
                for line in process.stdout:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue  # a library's own print
                    if not isinstance(record, dict) or worker.is_cancelled:
                        continue
                    if "progress" in record:
                        self.app.call_from_thread(self._lr_progress, record["progress"])
                    else:
                        result = record
                code = process.wait()
                self._lr_process = None
                errors.seek(0)
                failure = _failure(errors.read())
        if worker.is_cancelled:  # the step went away (the app quit): nobody to tell
            return
        self.app.call_from_thread(self._lr_done, result if code == 0 else None, failure)

    def on_unmount(self) -> None:
        process = getattr(self, "_lr_process", None)
        if process is not None and process.poll() is None:
            process.terminate()  # else quitting would wait for the test: Textual joins its worker threads

    def _lr_progress(self, point: dict[str, Any]) -> None:
        say(self.query_one("#lr-status", Static),
            f"step {point['step']} of at most {point['steps']}: rate {rate_label(point['lr'])}, "
            f"loss {point['loss']:.3g}", "-warning")

    def _lr_done(self, result: dict[str, Any] | None, error: str) -> None:
        self.query_one("#lr-find", Button).disabled = False
        status = self.query_one("#lr-status", Static)
        if result is None:
            say(status, error or "the range test failed", "-error")
            return
        self._lr_result = result
        rate = result.get("suggested_lr")
        use = self.query_one("#lr-use", Button)
        use.display = rate is not None
        if rate is not None:
            use.label = f"Use {rate_label(rate)}"
            say(status, f"{rate_label(rate)} suggested: the loss was lowest at {rate_label(result['min_loss_lr'])}",
                "-ok")
        else:
            say(status, f"no suggestion: {result['reason']}", "-warning")
        from tui.widgets.lr_chart import LrChart  # numpy and the chart only once there is a curve

        curve = self.query_one("#lr-curve", Collapsible)
        curve.title = f"Loss against learning rate: {len(result['points'])} steps on {result['device']}"
        contents = curve.query_one(Collapsible.Contents)
        contents.remove_children()
        contents.mount(LrChart(result, id="lr-chart"))
        curve.display = True
        curve.collapsed = False
        # Once the chart has its height; no animation, so the Use button is where it shows when it is clicked.
        self.call_after_refresh(self.scroll_to_widget, self.query_one("#lr-tool"), top=True, animate=False)

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        if event.checkbox.id == "use-lora":
            event.stop()
            self.draft.enable_lora(event.value)
            self._show_lora(event.value)

    def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged[str]) -> None:
        event.stop()
        picked = set(event.selection_list.selected)
        if event.selection_list.id == "report-to":
            self.draft.set("training.report_to", [name for name in TRACKERS if name in picked])
            return
        # Keep the schema's order so the YAML (and the first metric, the default best one) stay stable.
        self.draft.set("metrics", [m for m in self.draft.metric_choices() if m in picked])

    def quick_problems(self) -> list[str]:
        problems = self.field_problems()
        if not self.draft.get("metrics"):
            problems.append("Metrics: choose at least one")
        if problems:
            return problems
        problems = self.section_problems("training")
        try:
            check_trackers(self.draft.get("training.report_to") or [])
        except ConfigError as err:
            problems.append(f"Trackers: {err.problem}; {err.fix}")
        if self.draft.lora_enabled():
            problems += self.section_problems("training.lora")
        # Checks across sections (e.g. the best-model metric must be one of the metrics) need the whole config.
        return problems or self.draft.problems() or self._class_weights_problems()

    def _class_weights_problems(self) -> list[str]:
        """A list of class weights needs one weight per class of the data the dataset step prepared."""
        from core.class_weights import resolve_class_weights
        from core.errors import UserError

        weights, prepared = self.draft.get("training.class_weights"), self.findings.prepared
        if not isinstance(weights, list) or prepared is None:
            return []
        try:
            resolve_class_weights(weights, [], prepared.label_names)  # a list: only its length is checked
        except UserError as err:
            self.query_one("#field-training-class_weights", FieldRow).show_problem(err.problem)
            return [f"Class weights: {err.problem}"]
        return []


def _failure(stderr: str) -> str:
    """What to show of a failed `finetune-tui probe --lr`: its error and fix lines, not the warnings before them."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if line.startswith(("error:", "internal error:")):
            fix = lines[i + 1] if i + 1 < len(lines) and lines[i + 1].startswith("fix:") else ""
            return f"{line} ({fix})" if fix else line
    return lines[-1] if lines else ""
