"""Step 2: the pretrained model, checked by loading its config only (no weights)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.timer import Timer
from textual.widgets import Button, Select, Static
from textual.worker import Worker, WorkerCancelled, WorkerFailed, get_current_worker

from core.errors import UserError
from core.memory import count
from tui.screens.steps.base import Step, heavy, in_background, say
from tui.widgets.field_row import FieldRow
from tui.widgets.path_suggester import PathSuggester
from tui.widgets.spinner import Spinner

DEBOUNCE_S = 0.7


def _inspect(model: dict[str, Any], task: str) -> Any:
    """ModelInfo, or the ModelError/UserError that explains why the model cannot be used (for the task too)."""
    from core.config import ModelConfig
    from core.models import inspect_model, load_model_config
    from core.tasks import get_task

    try:
        config = ModelConfig.model_validate(model)
        info = heavy(inspect_model, config)
        get_task(task).check_hf_model(load_model_config(config), config.name_or_path)
        return info
    except UserError as err:
        return err


class ModelStep(Step):
    TITLE = "Model"
    NAME = "model"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._debounce: Timer | None = None
        self._checking: Worker[None] | None = None
        self._checking_key: str | None = None

    def compose(self) -> ComposeResult:
        from core.config import BUNDLED_MODEL

        yield Static("Which pretrained model should be fine-tuned?", classes="step-title")
        yield Static(
            f"A Hub id (e.g. bert-base-cased) or a local directory. {BUNDLED_MODEL} ships with "
            "finetune-tui and works offline.",
            classes="step-intro",
        )
        yield FieldRow(self.draft, "model.name_or_path", label="Model",
                       placeholder=BUNDLED_MODEL, suggester=PathSuggester(None, dirs_only=True))
        with Horizontal(classes="button-row"):
            yield Button("Use the bundled model", id="use-bundled", compact=True)
            yield Button("Check now", id="check-model", compact=True)
        yield Static("", id="model-suggestions", classes="field-help", markup=False)
        yield Select([], id="suggested-model", prompt="Well-known choices", compact=True)
        yield FieldRow(self.draft, "model.revision", label="Revision", placeholder="default branch")
        yield FieldRow(self.draft, "model.trust_remote_code", label="Trust remote code", editor="checkbox")
        yield Spinner(id="model-loading")
        yield Static("", id="model-info", markup=False)

    def on_mount(self) -> None:
        self.query_one("#model-info").display = False

    def _task_name(self) -> str:
        from core.tasks import DEFAULT_TASK

        return str(self.draft.get("task") or DEFAULT_TASK)

    def key(self) -> str:
        return json.dumps([self._task_name(), self.draft.get("model")], sort_keys=True)

    def _offer(self) -> None:
        """The task's well-known models (Task.suggested_models), where it names some."""
        from core.tasks import get_task

        task = get_task(self._task_name())
        choices = self.query_one("#suggested-model", Select)
        hint = self.query_one("#model-suggestions", Static)
        choices.display = hint.display = bool(task.suggested_models)
        if task.suggested_models:
            choices.set_options([(f"{name} ({size})", name) for name, size in task.suggested_models])
            say(hint, f"{task.title} needs a decoder LM; well-known small instruction models (downloaded from "
                      "the Hub):")

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id != "suggested-model" or not isinstance(event.value, str):
            return
        event.stop()
        self.draft.set("model.name_or_path", event.value)
        next(r for r in self.query(FieldRow) if r.path == "model.name_or_path").reload()
        self.check()

    def on_enter(self) -> None:
        self._offer()
        if self.key() not in self.findings.model_results:
            self.check()
        else:
            self._show(self.findings.model_results[self.key()])

    def on_field_row_changed(self, event: FieldRow.Changed) -> None:
        if event.problem is not None:
            return
        # Wait for a pause in typing: each check imports transformers and reads a config.
        if self._debounce is not None:
            self._debounce.stop()
        if self.key() in self.findings.model_results:
            self._show(self.findings.model_results[self.key()])
        elif self.current:
            self._debounce = self.set_timer(DEBOUNCE_S, self.check)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "use-bundled":
            from core.config import BUNDLED_MODEL

            event.stop()
            self.draft.set("model.name_or_path", BUNDLED_MODEL)
            next(r for r in self.query(FieldRow) if r.path == "model.name_or_path").reload()
            self.check()
        elif event.button.id == "check-model":
            event.stop()
            self.check()

    def check(self) -> None:
        """Check the model now (in a thread), unless a check of these very values is already running."""
        if self._checking is not None and not self._checking.is_finished and self._checking_key == self.key():
            return
        self._checking_key = self.key()
        self._checking = self._check_worker()

    @work(exclusive=True, group="model-inspect", exit_on_error=False)
    async def _check_worker(self) -> None:
        key = self.key()
        model = self.draft.get("model")
        self._busy(True)
        try:
            # A daemon thread, not a thread worker: Ctrl+Q must not wait for a slow check (in_background says why).
            result = await in_background(_inspect, model, self._task_name())
        finally:
            if self._checking is None or self._checking is get_current_worker():  # not a newer check's spinner
                self._busy(False)
        self.findings.model_results[key] = result
        if key == self.key():
            self._show(result)

    def _busy(self, busy: bool) -> None:
        self.query_one("#model-loading", Spinner).set_busy(busy)
        if busy:
            say(self.query_one("#model-info", Static), "Reading the model's config…")

    def _show(self, result: Any) -> None:
        info = self.query_one("#model-info", Static)
        if isinstance(result, UserError):
            say(info, f"✗ {result.message}", "-error")
            return
        params = count(result.parameters) if result.parameters else "unknown"
        say(info,
            f"✓ {result.architecture} ({result.model_type})\n"
            f"  parameters: {params}   max length: {result.max_length or '?'} tokens   "
            f"layers: {result.layers or '?'}   hidden size: {result.hidden_size or '?'}",
            "-ok")

    def quick_problems(self) -> list[str]:
        return self.field_problems() + self.section_problems("model")

    async def slow_problems(self) -> list[str]:
        if self._debounce is not None:
            self._debounce.stop()
        key = self.key()
        if self._checking is not None and not self._checking.is_finished:
            # The check started on entry or after typing is probably for this very value.
            with contextlib.suppress(WorkerCancelled, WorkerFailed):
                await self._checking.wait()
        result = self.findings.model_results.get(key)
        if result is None:
            self._busy(True)
            try:
                result = await in_background(_inspect, self.draft.get("model"), self._task_name())
            finally:
                self._busy(False)
            self.findings.model_results[key] = result
        self._show(result)
        if isinstance(result, UserError):
            return [result.message]
        self.findings.model_info = result
        return []
