"""Step 3: the labelled data: where it is, a preview, which column holds what, and the splits."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pydantic import ValidationError
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Input, RadioButton, RadioSet, Static

from core.errors import UserError
from core.tasks import DEFAULT_TASK, TASKS, get_task
from tui.draft import choices
from tui.screens.steps.base import Step, heavy, say
from tui.widgets.balance_bar import BalanceBar
from tui.widgets.field_row import FieldRow
from tui.widgets.path_suggester import PathSuggester
from tui.widgets.spinner import Spinner

PREVIEW_ROWS = 5
CELL_CHARS = 40
LOCAL_PATHS = ("data.train_file", "data.validation_file", "data.test_file")
COLUMN_PATHS = ("data.text_column", "data.text_pair_column", "data.label_column")
HUB_DEFAULTS: dict[str, Any] = {"name": "", "config": None, "train_split": "train", "validation_split": None,
                                "test_split": None}


def _load(data: dict[str, Any], label_column: str | None, task: str) -> tuple[Any, Any]:
    from core.config import DataConfig
    from core.data import load_sources, source_notes

    config = DataConfig.model_validate(data)
    raw, sources = heavy(load_sources, config)
    notes = source_notes(sources)
    try:
        return raw, _reinspect(raw, label_column, config.label_names, notes, task)
    except UserError:
        if label_column is None:
            raise
        # The label column chosen for an earlier file may not exist in this one: describe it afresh.
        return raw, _reinspect(raw, None, config.label_names, notes, task)


def _reinspect(raw: Any, label_column: str | None, label_names: Any, notes: list[str], task: str) -> Any:
    from core.data import inspect_dataset
    from core.data.labels import read_label_names

    return heavy(inspect_dataset, raw, label_column, label_names=read_label_names(label_names), notes=notes,
                 task=task)


def _prepare(data: dict[str, Any], task: str) -> Any:
    from core.config import DataConfig
    from core.data import prepare_data

    return heavy(prepare_data, DataConfig.model_validate(data), task)


def task_fields(step: str) -> dict[str, Any]:
    """Every task's fields for a wizard step ("dataset", "training"), by config path: the step shows the current
    task's and hides the others'."""
    fields: dict[str, Any] = {}
    for name in TASKS:
        for f in get_task(name).wizard_fields:
            if f.step == step:
                fields.setdefault(f.path, f)
    return fields


def _cell(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):  # a sentence's words, or its tags
        value = " ".join(value)
    text = "" if value is None else str(value).replace("\n", " ")
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"


class DatasetStep(Step):
    TITLE = "Dataset"
    NAME = "dataset"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._hub_stash: dict[str, Any] = dict(HUB_DEFAULTS)
        self._local_stash: dict[str, Any] = {}

    # --- layout --------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        d = self.draft
        hub = d.hub_enabled()
        yield Static("Which labelled data should the model learn from?", classes="step-title")
        with RadioSet(id="data-source", compact=True):
            yield RadioButton("Local file", value=not hub, id="source-local")
            yield RadioButton("Hugging Face Hub dataset", value=hub, id="source-hub")
        with Vertical(id="local-fields", classes="source-group"):
            yield FieldRow(d, "data.train_file", label="Training file", placeholder="path/to/train.csv",
                           suggester=PathSuggester())
            yield FieldRow(d, "data.validation_file", label="Validation file", placeholder="none: split off train",
                           suggester=PathSuggester())
            yield FieldRow(d, "data.test_file", label="Test file", placeholder="none", suggester=PathSuggester())
            yield FieldRow(d, "data.quoting", label="Quoting (csv/tsv)", editor="select",
                           options=[(q, q) for q in ("auto", "csv", "none")])
        with Vertical(id="hub-fields", classes="source-group"):
            yield FieldRow(d, "data.hub.name", label="Hub dataset", placeholder="e.g. glue or imdb")
            yield FieldRow(d, "data.hub.config", label="Configuration", placeholder="e.g. mrpc; empty for none")
            yield FieldRow(d, "data.hub.train_split", label="Train split")
            yield FieldRow(d, "data.hub.validation_split", label="Validation split", placeholder="auto")
        with Horizontal(classes="button-row"):
            yield Button("Load preview", id="load-data", compact=True)
            yield Spinner(id="data-loading")
        yield Static("", id="data-status", markup=False)
        yield DataTable(id="data-preview", show_cursor=False, zebra_stripes=True)
        with Vertical(id="mapping"):
            yield Static("Columns", classes="section-title", id="columns-title")
            yield FieldRow(d, "data.text_column", label="Text", editor="select", options=[("detect", None)])
            yield FieldRow(d, "data.text_pair_column", label="Second text (pairs)", editor="select",
                           options=[("none (single texts)", None)])
            yield FieldRow(d, "data.label_column", label="Label", editor="select", options=[("detect", None)])
            with Vertical(id="task-hint"):
                yield Static("", id="task-hint-text", markup=False)
                yield Button("Switch task", id="switch-task", compact=True)
            yield Static("Labels", classes="section-title", id="labels-title")
            for f in task_fields("dataset").values():
                options = {"options": [(c, c) for c in choices(f.path)]} if f.editor == "select" else {}
                yield FieldRow(d, f.path, label=f.label, placeholder=f.placeholder, editor=f.editor,
                               id=f"field-{f.path.replace('.', '-')}",
                               suggester=PathSuggester() if f.editor == "input" else None, **options)
            yield Static("", id="balance-caption", classes="field-help", markup=False)
            yield BalanceBar(id="balance")
            yield Static("", id="balance-warning", markup=False)
        yield Static("Validation and subsets", classes="section-title")
        yield FieldRow(d, "data.validation_fraction", label="Validation fraction")
        yield FieldRow(d, "data.max_train_samples", label="Max train samples", placeholder="all")
        yield FieldRow(d, "data.max_eval_samples", label="Max eval samples", placeholder="all")

    def task_name(self) -> str:
        return str(self.draft.get("task") or DEFAULT_TASK)

    def _label_setting(self) -> str:
        return get_task(self.task_name()).label_setting

    def _show_task_fields(self) -> None:
        task = get_task(self.task_name())
        mine = {f.path for f in task.wizard_fields}
        for path in task_fields("dataset"):
            self.query_one(f"#field-{path.replace('.', '-')}", FieldRow).set_class(path not in mine, "-inactive")
        for row in self.query(FieldRow):
            if row.path in COLUMN_PATHS:
                row.set_class(row.path not in task.column_settings, "-inactive")
        self.query_one("#columns-title").display = bool(task.column_settings)

    def on_mount(self) -> None:
        self._show_task_fields()
        self.query_one("#data-status").display = False
        self.query_one("#balance-warning").display = False
        self.query_one("#task-hint").display = False
        self.query_one("#data-preview").display = False
        self.query_one("#mapping").display = False
        self._apply_source(hub=self.draft.hub_enabled())

    # --- the source: a local file or the Hub ---------------------------------------------------
    def _apply_source(self, *, hub: bool) -> None:
        self.query_one("#local-fields").set_class(hub, "-inactive")
        self.query_one("#hub-fields").set_class(not hub, "-inactive")

    def _sync_source(self) -> None:
        """Make the draft hold exactly one data source, the one the radio set shows."""
        hub = self.query_one("#source-hub", RadioButton).value
        if hub:
            for path in LOCAL_PATHS:
                value = self.draft.get(path)
                if value is not None:
                    self._local_stash[path] = value
                self.draft.set(path, None)
            current = self.draft.get("data.hub") or {}
            self.draft.set("data.hub", {**HUB_DEFAULTS, **self._hub_stash, **current})
        else:
            if self.draft.get("data.hub") is not None:
                self._hub_stash = dict(self.draft.get("data.hub"))
            self.draft.set("data.hub", None)
            for path, value in self._local_stash.items():
                if self.draft.get(path) is None:
                    self.draft.set(path, value)
            self._local_stash = {}  # restored once; a file cleared later must stay cleared

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        event.stop()
        hub = event.pressed.id == "source-hub"
        self._apply_source(hub=hub)
        self._sync_source()
        for row in self.query(FieldRow):
            if row.path.startswith("data.hub.") or row.path in LOCAL_PATHS:
                row.reload()

    # --- loading the preview -------------------------------------------------------------------
    def source_key(self) -> str:
        d = self.draft.get("data") or {}
        keys = ("train_file", "validation_file", "test_file", "hub", "format", "header", "column_names", "quoting")
        return json.dumps({k: d.get(k) for k in keys}, sort_keys=True, default=str)

    def on_enter(self) -> None:
        self._show_task_fields()
        if self.findings.raw_dataset is not None and self.findings.dataset_info is not None and \
                self.findings.dataset_task != self.task_name():  # the task changed on the first step
            self.reinspect(self.draft.get(self._label_setting()), self.draft.get("data.label_names"))
        self._sync_source()
        has_source = self.draft.get("data.train_file") or (self.draft.get("data.hub.name") or "")
        if has_source and self.findings.raw_key != self.source_key():
            self.load_preview()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "load-data":
            event.stop()
            self.load_preview()
        elif event.button.id == "switch-task":
            event.stop()
            self._switch_task()

    def on_field_row_changed(self, event: FieldRow.Changed) -> None:
        if event.problem is not None or self.findings.raw_dataset is None:
            return
        if event.path in (self._label_setting(), "data.label_names"):
            self.reinspect(self.draft.get(self._label_setting()), self.draft.get("data.label_names"))
        elif event.path == "data.quoting":
            self.load_preview()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        # Enter in a source field loads its preview: the quickest way to see whether the path is right.
        row = next((a for a in event.input.ancestors if isinstance(a, FieldRow)), None)
        if row is not None and (row.path in LOCAL_PATHS or row.path.startswith("data.hub.")):
            event.stop()
            self.load_preview()

    def _status(self, text: str, kind: str = "") -> None:
        say(self.query_one("#data-status", Static), text, kind)

    def _busy(self, busy: bool, what: str = "") -> None:
        self.query_one("#data-loading", Spinner).set_busy(busy)
        self.query_one("#load-data").disabled = busy
        if busy:
            self._status(what)

    def load_preview(self) -> None:
        self._sync_source()
        if self.field_problems():
            return
        self._busy(True, "Reading the data…")
        self._load_worker(self.draft.get("data"), self.draft.get(self._label_setting()), self.source_key(),
                          self.task_name())

    @work(thread=True, exclusive=True, group="dataset-load", exit_on_error=False)
    def _load_worker(self, data: dict[str, Any], label_column: str | None, key: str, task: str) -> None:
        try:
            raw, info = _load(data, label_column, task)
        except UserError as err:
            self.app.call_from_thread(self._load_failed, err.message)
            return
        except ValidationError as err:  # e.g. a validation file and no training file yet: the rule's own words
            first = err.errors()[0]
            self.app.call_from_thread(self._load_failed, str(first.get("msg", err)).removeprefix("Value error, "))
            return
        except Exception as err:  # a reader's own error (bad encoding, odd file): say it, keep the UI up
            self.app.call_from_thread(self._load_failed, f"cannot read the data: {type(err).__name__}: {err}")
            return
        self.findings.raw_dataset, self.findings.raw_key, self.findings.dataset_info = raw, key, info
        self.findings.dataset_task = task
        self.app.call_from_thread(self._show_preview, info)

    @work(thread=True, exclusive=True, group="dataset-inspect", exit_on_error=False)
    def reinspect(self, label_column: str | None, label_names: Any) -> None:
        notes = self.findings.dataset_info.notes if self.findings.dataset_info is not None else []
        task = self.task_name()
        try:
            from core.config import DataConfig

            names = DataConfig.model_validate({"train_file": "-", "label_names": label_names}).label_names
            info = _reinspect(self.findings.raw_dataset, label_column, names, notes, task)
        except UserError as err:
            self.app.call_from_thread(self._status, f"✗ {err.message}", "-error")
            return
        except Exception as err:  # e.g. a column whose values cannot be counted: say so, keep the UI up
            self.app.call_from_thread(self._status, f"✗ cannot count the labels: {type(err).__name__}: {err}",
                                      "-error")
            return
        self.findings.dataset_info, self.findings.dataset_task = info, task
        self.app.call_from_thread(self._show_labels, info)

    def _load_failed(self, message: str) -> None:
        self._busy(False)
        self._status(f"✗ {message}", "-error")
        # What is shown must belong to the source named above it.
        self.findings.raw_dataset = self.findings.raw_key = self.findings.dataset_info = None
        self.query_one("#data-preview").display = False
        self.query_one("#mapping").display = False

    def _show_preview(self, info: Any) -> None:
        self._busy(False)
        splits = ", ".join(f"{name} {rows:,} rows" for name, rows in info.splits.items())
        self._status("\n".join([f"✓ {splits}; {len(info.columns)} columns", *info.notes]), "-ok")
        table = self.query_one("#data-preview", DataTable)
        table.clear(columns=True)
        names = [c.name for c in info.columns]
        table.add_columns(*names)
        shown = info.sample_rows[:PREVIEW_ROWS]
        for row in shown:
            table.add_row(*(_cell(row.get(name)) for name in names))
        # A fixed height (header, rows, a line for the horizontal scrollbar): with height auto the table
        # sometimes kept the zero height it measured before its rows arrived.
        table.styles.height = len(shown) + 2
        table.display = True
        self.query_one("#mapping").display = True
        options = [(f"{c.name} ({c.dtype})", c.name) for c in info.columns]
        suggestion = info.suggestion
        picks = {
            "data.text_column": self.draft.get("data.text_column") or suggestion.text,
            "data.text_pair_column": self.draft.get("data.text_pair_column") or suggestion.text_pair,
            "data.label_column": self.draft.get("data.label_column") or suggestion.label,
        }
        blanks = {"data.text_column": "detect", "data.text_pair_column": "none (single texts)",
                  "data.label_column": "detect"}
        offered = get_task(self.task_name()).column_settings
        for row in self.query(FieldRow):
            if row.path in picks and row.path not in offered:  # the task names its columns its own way
                self.draft.set(row.path, None)
            elif row.path in picks:
                # A saved choice that is not a column of this file is dropped; Next would refuse it anyway.
                value = picks[row.path] if picks[row.path] in names else None
                self.draft.set(row.path, value)
                row.set_options([(blanks[row.path], None), *options], value)
        self._show_labels(info)

    def _show_labels(self, info: Any) -> None:
        self._show_balance(info.labels)
        self._show_task_hint(info.task_hint)

    def _show_task_hint(self, hint: Any) -> None:
        """Labels that call for another task (lists under text-classification): say so, with a one-press switch."""
        other = hint is not None and hint.task != self.task_name()
        self.query_one("#task-hint").display = other
        if other:
            self.query_one("#task-hint-text", Static).update(
                f"{hint.reason}: that is {TASKS[hint.task].title.lower()}, and the task is "
                f"{TASKS[self.task_name()].title.lower()}.")
            self.query_one("#switch-task", Button).label = f"Use {TASKS[hint.task].title.lower()}"

    def _switch_task(self) -> None:
        self.draft.set_task(self.findings.dataset_info.task_hint.task)  # the hint the button was shown for
        self._show_task_fields()
        self.query_one("#task-hint").display = False
        self.reinspect(self.draft.get(self._label_setting()), self.draft.get("data.label_names"))

    def _show_balance(self, overview: Any) -> None:
        """The task's overview of the label column: bars (classes, or scores), a caption and a warning."""
        self.query_one(BalanceBar).show(overview.counts if overview is not None else {})
        self.query_one("#labels-title", Static).update(overview.title if overview is not None else "Labels")
        say(self.query_one("#balance-caption", Static),
            "\n".join([overview.caption, *overview.examples]).strip() if overview is not None else "")
        warning = overview.warning if overview is not None else None
        # Advice already taken (e.g. class weights set in a loaded config, or on Back from the training step).
        if warning and overview.answered_by and self.draft.get(overview.answered_by) is not None:
            warning = None
        say(self.query_one("#balance-warning", Static), f"⚠ {warning}" if warning else "", "-warning")

    # --- checks --------------------------------------------------------------------------------
    def quick_problems(self) -> list[str]:
        self._sync_source()
        problems = self.field_problems()
        if self.draft.hub_enabled() and not (self.draft.get("data.hub.name") or "").strip():
            problems.append("Hub dataset: give a dataset id, e.g. imdb")
        return problems or self.section_problems("data")

    async def slow_problems(self) -> list[str]:
        key = json.dumps([self.task_name(), self.draft.get("data")], sort_keys=True, default=str)
        if self.findings.prepared_key == key:
            return []
        self._busy(True, "Checking the data: reading every split, mapping the columns and labels…")
        try:
            prepared = await asyncio.to_thread(_prepare, self.draft.get("data"), self.task_name())
        except UserError as err:
            self._busy(False)
            self._status(f"✗ {err.message}", "-error")
            return [err.message]
        self._busy(False)
        self.findings.prepared, self.findings.prepared_key = prepared, key
        sizes = ", ".join(f"{k} {v:,}" for k, v in prepared.sizes.items())
        self._status(f"✓ {get_task(prepared.task).summary(prepared)}; {sizes}", "-ok")
        return []
