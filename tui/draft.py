"""The wizard's draft: one RunConfig-shaped dict, filled step by step and validated with core.config.

The Textual wizard and the plain (questionary) mode both work on a Draft, so they share the defaults,
the choices and the validation; neither has a copy of the schema. Nothing here imports textual, torch,
transformers or datasets.
"""

from __future__ import annotations

import copy
import json
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from core.engines import ENGINES as ENGINE_REGISTRY
from core.engines import EngineInfo
from core.errors import ConfigError

if TYPE_CHECKING:
    from core.config import RunConfig

# core.config (pydantic and the schema) is imported by the functions that need it, not here: the wizard's first
# frame needs only the engine list, and importing the schema is a fifth of the time to it (bench/startup.py).

DEFAULT_SAVE_PATH = Path("finetune.yaml")


class FieldProblem(ValueError):
    """A value typed for one field is not valid; str(self) is the pydantic message."""


# --- engines ---------------------------------------------------------------------------------------
# The wizard lists core's registry in its order; one place holds each engine's wording and install hint.
ENGINES: tuple[EngineInfo, ...] = tuple(ENGINE_REGISTRY.values())


# --- the draft -------------------------------------------------------------------------------------

def _defaults() -> dict[str, Any]:
    from core.config import DataConfig, RunConfig

    # model_construct fills defaults without running validators: DataConfig needs a data source that the
    # person has not given yet.
    return RunConfig.model_construct(data=DataConfig.model_construct()).model_dump(mode="json")


def _split(path: str) -> tuple[str, str]:
    section, _, name = path.rpartition(".")
    return section, name


def field_info(path: str) -> Any:
    from core.config import SECTIONS

    section, name = _split(path)
    return SECTIONS[section].model_fields[name]


def help_for(path: str) -> str:
    """The one-line description of a field, from core.config.field_help."""
    from core.config import field_help

    return field_help(*_split(path))


def choices(path: str) -> list[str]:
    """The allowed values of a Literal field, in schema order (e.g. the padding strategies)."""
    annotation = field_info(path).annotation
    found: list[str] = []
    for arg in (typing.get_args(annotation) or (annotation,)):
        if typing.get_origin(arg) is typing.Literal:
            found.extend(typing.get_args(arg))
    if typing.get_origin(annotation) is typing.Literal:
        found = list(typing.get_args(annotation))
    return found


def allows_none(path: str) -> bool:
    return type(None) in typing.get_args(field_info(path).annotation)


def parse_value(path: str, raw: Any) -> Any:
    """Turn what a person typed into a field's value (JSON form), or raise FieldProblem with pydantic's message.

    Empty text means null where the field allows it (e.g. max_train_samples), else it is a problem.
    """
    from pydantic import TypeAdapter, ValidationError

    info = field_info(path)
    if isinstance(raw, str):
        raw = raw.strip()
        if raw == "":
            if allows_none(path):
                return None
            raise FieldProblem("a value is required")
        if path in MULTILINE:
            raw = raw.replace("\\n", "\n").replace("\\t", "\t")
    target = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
    adapter: TypeAdapter[Any] = TypeAdapter(target)
    try:
        value = adapter.validate_python(raw)
    except ValidationError as err:
        raise FieldProblem(_message(err.errors()[0])) from None
    return adapter.dump_python(value, mode="json")


# Text settings whose values span lines (a prompt template): a one-line field shows and takes a newline as \n and a
# tab as \t, as the YAML and the README write them.
MULTILINE = frozenset({"data.prompt_template", "data.chat_template"})


def as_text(value: Any, path: str | None = None) -> str:
    """A value as a person would type it: empty for null, 3 rather than 3.0, a MULTILINE path's newlines as \n."""
    if value is None:
        return ""
    if path in MULTILINE and isinstance(value, str):
        return value.replace("\n", "\\n").replace("\t", "\\t")
    if isinstance(value, list):
        return ", ".join(as_text(v) for v in value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e6:
        return str(int(value))
    return str(value)


def _message(error: Any) -> str:
    msg = str(error["msg"])
    return msg.removeprefix("Value error, ")


def _loc(error: Any) -> str:
    return ".".join(str(p) for p in error["loc"])


class Draft:
    """A RunConfig-shaped dict that may be incomplete; `build()` turns it into a RunConfig.

    A new draft fills in the schema's defaults when it is first read, so creating one costs nothing.
    """

    def __init__(self, values: dict[str, Any] | None = None) -> None:
        self._values = values

    @property
    def loaded(self) -> bool:
        """False for a new draft nobody has read yet (its defaults are not filled in)."""
        return self._values is not None

    @property
    def values(self) -> dict[str, Any]:
        if self._values is None:
            self._values = _defaults()
        return self._values

    @classmethod
    def from_config(cls, config: RunConfig) -> Draft:
        values = _defaults()
        for key, value in config.to_dict().items():
            values[key] = value
        return cls(values)

    def fingerprint(self) -> str:
        """Changes whenever any value changes; cheap enough to compare before and after a check."""
        return json.dumps(self.values, sort_keys=True, default=str)

    def copy(self) -> Draft:
        return Draft(copy.deepcopy(self.values))

    def set_task(self, name: str) -> None:
        """Switch the draft to another task: its metrics become the new task's defaults unless the person chose
        some the new task also reports, a best-model metric it does not report is cleared, and settings the new task
        has no use for go back to their neutral values (Task.unused_settings). Learning settings still at the old
        task's defaults take the new task's (TaskInfo.training_defaults); one the person changed stays."""
        from core.config import default_at
        from core.tasks import DEFAULT_TASK, get_task, task_defaults

        old_name = self.get("task") or DEFAULT_TASK
        old, new = get_task(old_name), get_task(name)
        self.set("task", name)
        before, after = task_defaults(old_name), task_defaults(name)
        for path in {*before, *after}:
            base = default_at(path)
            if self.get(path) == before.get(path, base):
                self.set(path, after.get(path, base))
        chosen = [m for m in self.get("metrics") or [] if m in new.metric_names]
        if not chosen or list(self.get("metrics") or []) == list(old.default_metrics):
            chosen = list(new.default_metrics)
        self.set("metrics", chosen)
        if self.get("training.metric_for_best_model") not in (None, "loss", *chosen):
            self.set("training.metric_for_best_model", None)
        for path, (neutral, _) in new.unused_settings.items():
            self.set(path, neutral)

    def metric_choices(self) -> list[str]:
        """The metrics the draft's task can report, in the task's order (its primary first)."""
        from core.tasks import DEFAULT_TASK, get_task

        return list(get_task(self.get("task") or DEFAULT_TASK).metric_names)

    def get(self, path: str) -> Any:
        node: Any = self.values
        for part in path.split("."):
            if not isinstance(node, dict):
                return None
            node = node.get(part)
        return node

    def set(self, path: str, value: Any) -> None:
        parts = path.split(".")
        node = self.values
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value

    def set_text(self, path: str, raw: Any) -> Any:
        """parse_value then set; raises FieldProblem and leaves the draft unchanged when invalid."""
        value = parse_value(path, raw)
        self.set(path, value)
        return value

    # --- sections used by the steps ------------------------------------------------------------
    def section_problems(self, section: str) -> list[tuple[str, str]]:
        """Pydantic's complaints about one section as (field path or section, message) pairs."""
        from pydantic import ValidationError

        from core.config import SECTIONS

        model = SECTIONS[section]
        raw = self.get(section) if section else self.values
        try:
            model.model_validate(raw if raw is not None else {})
        except ValidationError as err:
            out = []
            for e in err.errors():
                where = ".".join(p for p in (section, _loc(e)) if p)
                out.append((where, _message(e)))
            return out
        return []

    def hub_enabled(self) -> bool:
        return self.get("data.hub") is not None

    def lora_enabled(self) -> bool:
        return self.get("training.lora") is not None

    def enable_lora(self, on: bool) -> None:
        if on and not self.lora_enabled():
            from core.config import LoraSettings

            self.set("training.lora", LoraSettings().model_dump(mode="json"))
        elif not on:
            self.set("training.lora", None)

    def build(self) -> RunConfig:
        """The full RunConfig; raises core.errors.ConfigError listing every problem."""
        from core.config import parse_config

        return parse_config(copy.deepcopy(self.values), source="the wizard's config")

    def problems(self) -> list[str]:
        try:
            self.build()
        except ConfigError as err:
            return [line.strip().removeprefix("- ") for line in err.problem.splitlines()[1:]] or [err.problem]
        return []


# --- review warnings -------------------------------------------------------------------------------

LARGE_MODEL_PARAMETERS = 200_000_000
TINY_TRAIN_SET = 100


def review_warnings(
    config: RunConfig,
    *,
    model_max_length: int | None = None,
    model_parameters: int | None = None,
    train_rows: int | None = None,
    device: str | None = None,
) -> list[str]:
    """Things that are valid but probably not what the person wants; shown before Start."""
    out: list[str] = []
    if config.model.trust_remote_code:
        out.append("trust_remote_code is on: Python code from the model's repository will run on this machine with "
                   "your permissions. Turn it off unless you trust that repository.")
    tok = config.tokenizer
    if model_max_length and tok.max_length > model_max_length:
        out.append(
            f"max_length {tok.max_length} is above the model's limit of {model_max_length} tokens; "
            f"texts longer than {model_max_length} will fail. Set tokenizer.max_length to {model_max_length} or less."
        )
    if not tok.truncation and tok.padding == "max_length":
        out.append("padding to max_length without truncation: longer texts will not fit in the batch.")
    if train_rows is not None and train_rows < TINY_TRAIN_SET:
        out.append(f"only {train_rows} training examples: expect noisy, unreliable metrics.")
    if device == "cpu" and model_parameters and model_parameters >= LARGE_MODEL_PARAMETERS:
        out.append(
            f"no GPU found and the model has {model_parameters / 1e6:.0f}M parameters: training on CPU will be very "
            "slow. Choose a smaller model or run on a GPU machine."
        )
    tr = config.training
    if tr.eval_strategy == "no":
        # (early stopping with no evaluations is refused by the schema itself, so it never reaches here)
        out.append("eval_strategy is no: you will see no validation metrics until the end.")
    if tr.max_steps > 0:
        out.append(f"max_steps {tr.max_steps} overrides num_train_epochs ({tr.num_train_epochs:g}).")
    if tr.mixed_precision != "no" and device == "cpu":
        out.append(f"mixed_precision {tr.mixed_precision} needs a GPU; it will be ignored on CPU.")
    return out


def run_command(saved: Path) -> str:
    """The command that starts this config without the wizard."""
    import shlex

    return f"finetune-tui run {shlex.quote(str(saved))}"
