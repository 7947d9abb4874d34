"""`finetune-tui init --plain`: the wizard's questions as plain prompts (questionary), for any terminal.

It fills the same Draft as the full-screen wizard, with the same defaults, choices and validation (tui.draft
and core), checks the model and the data the same way, and writes the same config file.
Each prompt is a Question; `ask` answers one, so a test can answer them without a terminal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

from core.config import BUNDLED_MODEL, save_config
from core.errors import ConfigError, UserError
from tui.draft import (
    DEFAULT_SAVE_PATH,
    ENGINES,
    Draft,
    FieldProblem,
    as_text,
    choices,
    help_for,
    parse_value,
    review_warnings,
    run_command,
)

Kind = Literal["select", "text", "path", "confirm"]
NONE = "(none)"
_NULL = "\x00none"


class Option(NamedTuple):
    title: str
    value: Any
    disabled: str | None = None  # why it cannot be chosen here
    description: str | None = None


@dataclass
class Question:
    key: str  # the draft path it fills, or a name such as "overwrite"
    message: str
    kind: Kind = "text"
    default: Any = None
    choices: list[Option] = field(default_factory=list)
    validate: Callable[[str], str | None] | None = None  # the problem with a typed answer, or None
    help: str = ""  # one line on what it does (core.config.field_help)


Ask = Callable[[Question], Any]
Echo = Callable[[str], None]


class Cancelled(UserError):
    """The person pressed ctrl+c or ctrl+d at a prompt."""


def field_check(path: str) -> Callable[[str], str | None]:
    def check(text: str) -> str | None:
        try:
            parse_value(path, text)
        except FieldProblem as err:
            return str(err)
        return None

    return check


def questionary_ask(question: Question) -> Any:
    """Ask one question in the terminal with questionary."""
    import questionary

    if question.help:
        questionary.print(f"  {question.help}", style="fg:ansibrightblack")
    if question.kind == "select":
        # questionary turns a None value into the title, so "none" travels as a sentinel
        options = [questionary.Choice(o.title, value=_NULL if o.value is None else o.value, disabled=o.disabled,
                                      description=o.description) for o in question.choices]
        wanted = _NULL if question.default is None else question.default
        default = next((c for c in options if c.value == wanted and not c.disabled), None)
        prompt = questionary.select(question.message, choices=options, default=default)
    elif question.kind == "confirm":
        prompt = questionary.confirm(question.message, default=bool(question.default))
    else:
        def validate(text: str) -> bool | str:
            problem = question.validate(text) if question.validate else None
            return problem or True

        factory = questionary.path if question.kind == "path" else questionary.text
        prompt = factory(question.message, default="" if question.default is None else str(question.default),
                         validate=validate)
    answer = prompt.ask()
    if answer is None:  # questionary's way of saying ctrl+c
        raise Cancelled("cancelled; no config was written")
    return None if answer == _NULL else answer


class PlainWizard:
    """The questions, in the wizard's order, each validated before the next."""

    def __init__(self, ask: Ask, echo: Echo, draft: Draft | None = None) -> None:
        self.ask_raw = ask
        self.echo = echo
        self.draft = draft or Draft()
        self.model_info: Any = None
        self.prepared: Any = None
        self.answer_later: str | None = None  # a setting that acts on the dataset step's warning (class weights)

    def ask(self, question: Question) -> Any:
        while True:
            answer = self.ask_raw(question)
            problem = question.validate(str(answer)) if question.validate and question.kind in ("text", "path") \
                else None
            if problem is None:
                return answer
            self.echo(f"  ✗ {problem}")

    def text(self, path: str, message: str, *, kind: Kind = "text", help: str = "") -> Any:
        current = self.draft.get(path)
        answer = self.ask(Question(path, message, kind, default=as_text(current, path),
                                   validate=field_check(path), help=help or help_for(path)))
        return self.draft.set_text(path, answer)

    def select(self, path: str, message: str, options: list[Option] | None = None) -> Any:
        options = options or [Option(c, c) for c in choices(path)]
        value = self.ask(Question(path, message, "select", default=self.draft.get(path), choices=options,
                                  help=help_for(path)))
        self.draft.set(path, value)
        return value

    # --- the steps -----------------------------------------------------------------------------
    def framework(self) -> None:
        from core.tasks import TASKS

        tasks = [Option(t.title, t.name, None, t.when) for t in TASKS.values()]
        value = self.ask(Question("task", "Task", "select", default=self.draft.get("task"), choices=tasks,
                                  help=help_for("task")))
        self.draft.set_task(value)
        options = [Option(e.title, e.name, None if e.available() else f"not installed: {e.install_hint}", e.when)
                   for e in ENGINES]
        self.select("engine", "Framework", options)

    def model(self) -> None:
        from core.config import ModelConfig
        from core.models import inspect_model

        while True:
            self.text("model.name_or_path", "Model (Hub id or local directory)",
                      help=f"A Hub id or a local directory; {BUNDLED_MODEL} ships with finetune-tui and works offline.")
            self.echo("  reading the model's config…")
            try:
                self.model_info = inspect_model(ModelConfig.model_validate(self.draft.get("model")))
            except UserError as err:
                self.echo(f"  ✗ {err.message}")
                continue
            self.echo(f"  ✓ {self.model_info.describe()}")
            return

    def dataset(self) -> None:
        from core.config import DataConfig
        from core.data import inspect_dataset, load_raw, prepare_data
        from core.tasks import DEFAULT_TASK, get_task

        task = get_task(self.draft.get("task") or DEFAULT_TASK)
        while True:
            self.text("data.train_file", "Training data file", kind="path")
            try:
                raw = load_raw(DataConfig.model_validate(self.draft.get("data")))
                info = inspect_dataset(raw)
            except UserError as err:
                self.echo(f"  ✗ {err.message}")
                continue
            rows = ", ".join(f"{k} {v:,}" for k, v in info.splits.items())
            self.echo(f"  ✓ {rows} rows; columns: {', '.join(c.name for c in info.columns)}")
            names = [c.name for c in info.columns]
            suggestion = info.suggestion
            for path, message, suggested, optional in (
                ("data.text_column", "Column with the text", suggestion.text, False),
                ("data.text_pair_column", "Column with the second text (sentence pairs)", suggestion.text_pair, True),
                ("data.label_column", "Column with the label", suggestion.label, False),
            ):
                if path not in task.column_settings:  # the task names its columns its own way (wizard_fields)
                    self.draft.set(path, None)
                    continue
                if self.draft.get(path) not in names:
                    self.draft.set(path, suggested)
                options = ([Option(NONE, None)] if optional else []) + [Option(n, n) for n in names]
                self.select(path, message, options)
            overview = inspect_dataset(raw, label_column=self.draft.get(task.label_setting), task=task.name).labels
            if overview is not None:
                self.echo(f"  {overview.title.lower()}: " + ", ".join(f"{k} {v}" for k, v in overview.counts.items())
                          + (f" ({overview.caption})" if overview.caption else ""))
                for example in overview.examples:
                    self.echo(f"    {example}")
                if overview.warning:
                    self.echo(f"  ⚠ {overview.warning}")
                # The training step then asks for the setting that acts on the warning (e.g. class weights).
                self.answer_later = overview.answered_by if overview.warning else None
            self.text("data.validation_file", "Validation data file (empty: split it off the training data)",
                      kind="path")
            if self.draft.get("data.validation_file") is None:
                self.text("data.validation_fraction", "Share of the training data held out for validation")
            self.text("data.max_train_samples", "Train on at most this many examples (empty: all)")
            self.echo("  checking the data…")
            try:
                self.prepared = prepare_data(DataConfig.model_validate(self.draft.get("data")), self.draft.get("task"))
            except UserError as err:
                self.echo(f"  ✗ {err.message}")
                continue
            from core.tasks import get_task

            sizes = ", ".join(f"{k} {v:,}" for k, v in self.prepared.sizes.items())
            self.echo(f"  ✓ {get_task(self.prepared.task).summary(self.prepared)}; {sizes}")
            return

    def tokenizer(self) -> None:
        self.echo_lengths()
        self.text("tokenizer.max_length", "Max length in tokens")
        self.select("tokenizer.padding", "Padding")

    def echo_lengths(self) -> None:
        """The same measurement as the wizard's histogram, as one line, to choose max_length from."""
        from core.config import ModelConfig
        from core.tasks import get_task
        from core.tokenization import load_tokenizer

        if self.prepared is None:
            return
        try:
            tokenizer = load_tokenizer(ModelConfig.model_validate(self.draft.get("model")))
            stats = get_task(self.prepared.task).measure_lengths(self.prepared, tokenizer,
                                                                 int(self.draft.get("tokenizer.max_length")))
        except UserError as err:
            self.echo(f"  (token lengths unavailable: {err.message})")
            return
        p = stats.percentiles
        self.echo(f"  tokens per example: median {p[50]}, 95% ≤ {p[95]}, longest {p[100]}")

    def training(self) -> None:
        self.text("training.num_train_epochs", "Epochs")
        self.text("training.learning_rate", "Learning rate")
        self.text("training.per_device_train_batch_size", "Batch size")
        self.select("training.eval_strategy", "Evaluate")
        if self.draft.get("training.eval_strategy") == "steps":
            self.text("training.eval_steps", "Evaluate every how many steps")
        from core.tasks import get_task

        for f in get_task(self.draft.get("task")).wizard_fields:
            # A task's extra training setting is asked when the data called for it, or it is already set.
            if f.step == "training" and (f.path == self.answer_later or self.draft.get(f.path) is not None):
                self.text(f.path, f.label + (f" ({f.placeholder})" if f.placeholder else ""))

    def run(self, output: Path) -> Path:
        self.framework()
        self.model()
        self.dataset()
        self.tokenizer()
        self.training()
        try:
            config = self.draft.build()
        except ConfigError as err:  # each answer was checked; this is a rule across answers
            raise ConfigError(err.problem, "run `finetune-tui init --plain` again, or edit the values in the wizard") \
                from None
        for warning in review_warnings(
            config,
            model_max_length=getattr(self.model_info, "max_length", None),
            model_parameters=getattr(self.model_info, "parameters", None),
            train_rows=self.prepared.sizes.get("train") if self.prepared is not None else None,
        ):
            self.echo(f"  ⚠ {warning}")
        overwrite = False
        if output.exists():
            overwrite = bool(self.ask(Question("overwrite", f"{output} exists. Replace it?", "confirm", default=False)))
            if not overwrite:
                raise Cancelled(f"{output} exists and was kept; no config was written",
                                "run again with another --output path")
        save_config(config, output, overwrite=overwrite)
        self.echo(f"✓ wrote {output}\n  start it with: {run_command(output)}")
        return output


def run_plain(output: Path = DEFAULT_SAVE_PATH, *, ask: Ask | None = None, echo: Echo = print) -> Path:
    """Ask the wizard's questions in plain prompts and write the config to `output`; returns its path."""
    return PlainWizard(ask or questionary_ask, echo).run(Path(output))
