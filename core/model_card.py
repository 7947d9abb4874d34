"""The model card: RUN/model/README.md in the Hub's format (YAML metadata, then Markdown), so a model directory
that is copied or pushed says what it is, what it was trained on, how well it does and how to load it.

The card is written from the run directory alone: config.yaml, the run_started event of events.jsonl (sizes,
labels, columns, versions), metrics.json and evaluation/<split>/metrics.json. So `finetune-tui push` can write one
for a run that finished before cards existed. What differs per task comes from the Task (pipeline_task,
pipeline_kwargs, report_sections); what differs per engine from the model directory's format
(core.predict.model_format). The metadata is built with huggingface_hub's ModelCardData, which validates the
model-index, and read back once before the card is written.

Nothing in a card names a path of this machine when it is pushed: local data files and a local base model are named
by their file names, and the loading code names the Hub repository (or, for a card that stays here, the model
directory).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import RunDirError
from core.rundir import RunDir, read_json

if TYPE_CHECKING:
    from huggingface_hub import ModelCard, ModelCardData

    from core.config import RunConfig
    from core.evaluation import Evaluation

CARD_FILE = "README.md"
STAMP = "written by finetune-tui; unedited while this matches: sha256 "
EVAL_SPLITS = ("validation", "test")  # the splits a run evaluates at its end (core.worker._evaluate)
LICENSE_TODO = ("**License: to do.** This card says `license: other` because finetune-tui cannot know the terms "
                "of the base model and of the training data. Set `license:` in the metadata above to the license "
                "this model may be shared under (e.g. `apache-2.0`, or `other` with `license_name` and "
                "`license_link`) before you share it.")
EXAMPLE_TEXT = "Your text here."


@dataclass
class RunRecord:
    """What a card says about a run, as its directory holds it."""

    run: RunDir
    config: RunConfig
    started: dict[str, Any]  # the last run_started event ({} for a run that never got that far)
    metrics: dict[str, dict[str, float]]  # split -> final metrics (metrics.json)
    evaluations: dict[str, Evaluation]  # split -> what the evaluation wrote under evaluation/<split>/
    model_format: str  # core.predict.model_format of RUN/model

    @property
    def base_model(self) -> str | None:
        """The base model's Hub id; None for a local one. The run recorded which it was (local_model in
        run_started), so a card written later, from another folder, still tells a relative path from a Hub id."""
        name = self.config.model.name_or_path
        if "local_model" in self.started:
            return None if self.started["local_model"] else hub_base_model(name)
        return hub_base_model(name)

    @property
    def labels(self) -> list[str]:
        return [str(name) for name in self.started.get("labels") or []]


# --- reading the run -----------------------------------------------------------------------------------------------

def read_run(run_dir: str | Path) -> RunRecord:
    """The run as its directory records it; a RunDirError naming the directory when there is no model to describe."""
    from core.config import load_config
    from core.evaluation import load_evaluation
    from core.predict import model_format

    run = RunDir(run_dir)
    if not run.config_path.is_file():
        raise RunDirError(f"{run.path} is not a run directory (no config.yaml in it)",
                          "give a folder that `finetune-tui run` made; `finetune-tui runs` lists them")
    fmt = model_format(run.model_dir) if run.model_dir.is_dir() else None
    if fmt is None:
        raise RunDirError(f"the run {run.path} has no saved model (no model/ directory with a model in it)",
                          "wait until the run has finished, or resume it with `finetune-tui resume`")
    # The last segment's: a resumed run's model was saved by it, with its versions.
    started = next((e for e in reversed(run.events()) if e["type"] == "run_started"), {})
    summary = read_json(run.metrics_path)
    metrics = {split: _numbers(summary.get(split)) for split in EVAL_SPLITS if isinstance(summary.get(split), dict)}
    evaluations = {split: ev for split in EVAL_SPLITS if (ev := load_evaluation(run.path, split)) is not None}
    return RunRecord(run, load_config(run.config_path), started, metrics, evaluations, fmt)


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    # NaN/inf have no place in the Hub's model-index; a run that diverged shows them in the body's table instead.
    return {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}


# --- writing -------------------------------------------------------------------------------------------------------

def write_model_card(run_dir: str | Path, repo_id: str | None = None) -> Path:
    """RUN/model/README.md for the run in `run_dir`; its loading code names `repo_id` when given (the Hub repository
    it is pushed to), else the model directory. Returns the card's path."""
    record = read_run(run_dir)
    path = record.run.model_dir / CARD_FILE
    text = str(build_model_card(record, repo_id))
    # The stamp tells a card as written from one edited since, however the run was moved or finetune-tui changed.
    path.write_text(f"{text}\n<!-- {STAMP}{_digest(text)} -->\n", encoding="utf-8")
    return path


def card_is_generated(run_dir: str | Path) -> bool:
    """Whether RUN/model/README.md is as finetune-tui wrote it: a card someone edited (a license set, a paragraph
    added) is theirs, and must not be written over."""
    try:
        text = (RunDir(run_dir).model_dir / CARD_FILE).read_text(encoding="utf-8")
    except OSError:
        return False
    body, _, stamp = text.rstrip("\n").rpartition(f"\n<!-- {STAMP}")
    return bool(body) and stamp == f"{_digest(body)} -->"


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def build_model_card(record: RunRecord, repo_id: str | None = None) -> ModelCard:
    from huggingface_hub import ModelCard

    data = card_data(record, repo_id)
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n{card_body(record, repo_id)}")
    # What the Hub will read: the metadata parsed back from the text must be what was built.
    if card.data.to_dict() != data.to_dict():
        raise ValueError("the model card's metadata does not read back as it was written")
    return card


# --- metadata ------------------------------------------------------------------------------------------------------

def card_data(record: RunRecord, repo_id: str | None = None) -> ModelCardData:
    from huggingface_hub import ModelCardData

    from core.tasks import get_task

    config = record.config
    task = get_task(config.task)
    hub = config.data.hub
    metrics = sorted({name for values in record.metrics.values() for name in values if name != "loss"})
    return ModelCardData(
        base_model=record.base_model,
        datasets=[hub.name] if hub is not None else None,
        pipeline_tag=task.pipeline_task,
        library_name=_FORMATS[record.model_format].library,
        license="other",
        tags=["finetune-tui", task.name, *_FORMATS[record.model_format].tags],
        metrics=metrics or None,
        model_name=model_name(record, repo_id),
        eval_results=eval_results(record) or None,
        labels=record.labels or None,
    )


def model_name(record: RunRecord, repo_id: str | None) -> str:
    return repo_id.split("/")[-1] if repo_id else record.run.path.resolve().name


def hub_base_model(name_or_path: str) -> str | None:
    """The base model's Hub id, or None for a model that is a local directory (the Hub only takes ids)."""
    from core.models import BUNDLED_ALIASES

    if name_or_path in BUNDLED_ALIASES:
        return "sentence-transformers/all-MiniLM-L6-v2"  # the bundled package is a copy of this repository
    if Path(name_or_path).expanduser().exists() or name_or_path.startswith(("/", ".", "~")):
        return None
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name_or_path)
    except HFValidationError:
        return None
    return name_or_path


def eval_results(record: RunRecord) -> list[Any]:
    """The model-index: every final metric of every evaluated split, as metrics.json holds it."""
    from huggingface_hub import EvalResult

    from core.tasks import TASKS, get_task

    task = get_task(record.config.task)
    return [EvalResult(task_type=task.pipeline_task, task_name=TASKS[task.name].title, metric_type=name,
                       metric_value=value, metric_name=f"{split} {name}", **_dataset_fields(record, split))
            for split, values in record.metrics.items() for name, value in values.items()
            if math.isfinite(value)]


def _dataset_fields(record: RunRecord, split: str) -> dict[str, Any]:
    hub = record.config.data.hub
    if hub is None:
        train = record.config.data.train_file
        return {"dataset_type": "local", "dataset_name": f"local files ({Path(str(train)).name})",
                "dataset_split": split}
    source = {"validation": hub.validation_split, "test": hub.test_split}.get(split)
    return {"dataset_type": hub.name, "dataset_name": hub.name, "dataset_config": hub.config,
            "dataset_split": source or f"{hub.train_split} (held out)"}


# --- body ----------------------------------------------------------------------------------------------------------

def card_body(record: RunRecord, repo_id: str | None = None) -> str:
    parts = [_intro(record, repo_id), LICENSE_TODO, _labels_section(record), _data_section(record),
             _training_section(record), _results_section(record), _usage_section(record, repo_id),
             _made_section(record)]
    return "\n\n".join(part for part in parts if part) + "\n"


def _intro(record: RunRecord, repo_id: str | None) -> str:
    from core.tasks import TASKS

    info = TASKS[record.config.task]
    when = info.when.rstrip(".")
    return (f"# {model_name(record, repo_id)}\n\n{_base_model_text(record)} fine-tuned for "
            f"**{info.title.lower()}** ({when[0].lower()}{when[1:]}) on {_data_source(record)}, with finetune-tui.")


def _base_model_text(record: RunRecord) -> str:
    hub_id = record.base_model
    if hub_id is not None:
        return f"[{hub_id}](https://huggingface.co/{hub_id})"
    return f"A local model (`{Path(record.config.model.name_or_path).name}`)"


def _data_source(record: RunRecord) -> str:
    hub = record.config.data.hub
    if hub is not None:
        config = f" (configuration `{hub.config}`)" if hub.config else ""
        return f"the Hub dataset [{hub.name}](https://huggingface.co/datasets/{hub.name}){config}"
    return f"local files (`{Path(str(record.config.data.train_file)).name}` and the others below; not on the Hub)"


def _labels_section(record: RunRecord) -> str:
    if not record.labels:
        return ""
    summary = record.started.get("label_summary")
    names = ", ".join(f"`{name}`" for name in record.labels)
    return "## Labels\n\n" + names + (f"\n\n({summary})" if summary else "")


def _data_section(record: RunRecord) -> str:
    data = record.config.data
    sizes = record.started.get("sizes") or {}
    rows = [(split, f"{sizes[split]:,}", _split_origin(record, split)) for split in ("train", *EVAL_SPLITS)
            if split in sizes]
    columns = [f"{what} `{record.started[key]}`" for key, what in
               (("text_column", "text"), ("text_pair_column", "second text"), ("label_column", "labels"))
               if record.started.get(key)]
    lines = [f"Trained on {_data_source(record)}."]
    if columns:
        lines.append("Columns: " + ", ".join(columns) + ".")
    for key, what in (("max_train_samples", "training"), ("max_eval_samples", "evaluation")):
        if getattr(data, key) is not None:
            lines.append(f"At most {getattr(data, key):,} {what} examples were used (`data.{key}`).")
    return "## Data\n\n" + " ".join(lines) + ("\n\n" + _table(("split", "examples", "from"), rows) if rows else "")


def _split_origin(record: RunRecord, split: str) -> str:
    data = record.config.data
    if data.hub is not None:
        source = {"train": data.hub.train_split, "validation": data.hub.validation_split,
                  "test": data.hub.test_split}[split]
        if source:
            return f"split `{source}`"
    else:
        file = {"train": data.train_file, "validation": data.validation_file, "test": data.test_file}[split]
        if file is not None:
            return f"`{Path(str(file)).name}`"
    return f"{data.validation_fraction:.0%} of the training data, held out (seed {data.shuffle_seed})"


def _training_section(record: RunRecord) -> str:
    import yaml

    from core.engines import ENGINES

    c = record.config
    t = c.training
    layout = record.started.get("batch_layout") or {}
    processes = int(layout.get("num_processes") or 1)
    effective = t.per_device_train_batch_size * t.gradient_accumulation_steps * processes
    lora = (f"r {t.lora.r}, alpha {t.lora.alpha}, dropout {t.lora.dropout}, modules "
            f"{', '.join(t.lora.target_modules) if t.lora.target_modules else 'the default ones'} (merged into the "
            "saved weights)") if t.lora is not None else "no"
    rows = [
        ("engine", f"{c.engine} ({ENGINES[c.engine].title})" if c.engine in ENGINES else c.engine),
        ("base model", _base_model_name(record) + (f" @ {c.model.revision}" if c.model.revision
                                                                  else "")),
        ("learning rate", f"{t.learning_rate:g} ({t.lr_scheduler_type}, warmup {t.warmup_ratio:g})"),
        ("epochs", f"{t.num_train_epochs:g}" + (f" (stopped at max_steps {t.max_steps})" if t.max_steps > 0 else "")),
        ("optimizer steps", str(record.started.get("total_steps", "?"))),
        ("batch", f"{t.per_device_train_batch_size} per device x {t.gradient_accumulation_steps} accumulation x "
                  f"{processes} process{'es' if processes != 1 else ''} = {effective}"),
        ("weight decay", f"{t.weight_decay:g}"),
        ("max length", f"{c.tokenizer.max_length} tokens" + (", truncated" if c.tokenizer.truncation else "")),
        ("mixed precision", t.mixed_precision),
        ("LoRA", lora),
        ("frozen encoder", "yes" if t.freeze_encoder else "no"),
        ("seed", str(t.seed)),
    ]
    if t.class_weights is not None:
        rows.insert(-1, ("class weights", str(t.class_weights)))
    settings = yaml.safe_dump({"tokenizer": c.tokenizer.model_dump(mode="json"),
                               "training": t.model_dump(mode="json"), "metrics": list(c.metrics)},
                              sort_keys=False).strip()
    return ("## Training\n\n" + _table(("setting", "value"), rows)
            + f"\n\n<details><summary>All settings (config.yaml)</summary>\n\n```yaml\n{settings}\n```\n\n</details>")


def _base_model_name(record: RunRecord) -> str:
    hub_id = record.base_model
    return hub_id if hub_id is not None else f"{Path(record.config.model.name_or_path).name} (local)"


def _results_section(record: RunRecord) -> str:
    if not record.metrics:
        return ""
    names = list(dict.fromkeys(name for values in record.metrics.values() for name in values))
    rows = [(split, *(_number(values.get(name)) for name in names)) for split, values in record.metrics.items()]
    return "\n\n".join(["## Results", _table(("split", *names), rows),
                        *(_report(ev) for ev in record.evaluations.values())])


def _report(ev: Evaluation) -> str:
    """The task's report of one split (per-class table, confusion matrix, ...), as `finetune-tui evaluate` prints
    it."""
    from core.tasks import get_task

    blocks = [f"### {ev.split} ({ev.size:,} examples)"]
    for section in get_task(ev.task).report_sections(ev):
        text = "\n".join(line for line, _ in section.lines)
        blocks.append((f"{section.title[0].upper()}{section.title[1:]}:\n\n" if section.title else "")
                      + f"```text\n{text}\n```")
    return "\n\n".join(blocks)


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


def _usage_section(record: RunRecord, repo_id: str | None) -> str:
    model = repo_id or str(record.run.model_dir.resolve())
    return "## How to use\n\n" + _FORMATS[record.model_format].usage(record, model, repo_id is not None)


def hf_usage(record: RunRecord, model: str, on_hub: bool) -> str:
    """transformers' pipeline with the task's own arguments: what `finetune-tui predict` answers."""
    from core.tasks import get_task

    task = get_task(record.config.task)
    kwargs = "".join(f", {key}={_py(value)}" for key, value in task.pipeline_kwargs.items())
    text = (_py({"text": EXAMPLE_TEXT, "text_pair": "A second text."}) if record.started.get("text_pair_column")
            else _py(EXAMPLE_TEXT))
    code = (f"from transformers import pipeline\n\n"
            f"pipe = pipeline({_py(task.pipeline_task)}, model={_py(model)}{kwargs})\nprint(pipe({text}))")
    return (f"```python\n{code}\n```\n\nOr with finetune-tui (`pip install finetune-tui`), which reads the outputs as "
            f"the run's evaluation did:\n\n{_predict_command(model, on_hub)}")


def keras_usage(record: RunRecord, model: str, on_hub: bool) -> str:
    """The keras engine's directory (model.keras, the tokenizer, labels.json, keras_model.json) is read by
    finetune-tui's predictor, which tokenizes and reads the outputs as training did."""
    imports = "from core.predict import load_predictor  # pip install \"finetune-tui[keras]\"\n"
    if on_hub:
        imports += "from huggingface_hub import snapshot_download\n"
    where = f"snapshot_download({_py(model)})" if on_hub else _py(model)
    code = (f"{imports}\nmodel_dir = {where}\npredictor = load_predictor(model_dir)\n"
            f"print(predictor.predict([{_py(EXAMPLE_TEXT)}]))")
    return (f"A Keras 3 model on TensorFlow (KerasHub backbone), saved as `model.keras` with a transformers tokenizer, "
            f"`labels.json` (output index to label) and `keras_model.json` (the model's inputs and max length). "
            f"Load it with finetune-tui:\n\n```python\n{code}\n```\n\nor from a shell:\n\n"
            f"{_predict_command(model, on_hub)}")


def _py(value: Any) -> str:
    """A Python literal in the double quotes code usually has (JSON's, for strings and dicts of them)."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str | dict) else repr(value)


def _predict_command(model: str, on_hub: bool) -> str:
    """`finetune-tui predict` on the model: a Hub repository is downloaded into a folder of its name first."""
    import shlex

    lines = []
    if on_hub:
        folder = model.split("/")[-1]
        lines.append(f"hf download {shlex.quote(model)} --local-dir {shlex.quote(folder)}")
        model = folder
    lines.append(f'finetune-tui predict {shlex.quote(model)} "{EXAMPLE_TEXT}"')
    return "```bash\n" + "\n".join(lines) + "\n```"


def _made_section(record: RunRecord) -> str:
    versions = record.started.get("versions") or {}
    device = record.started.get("device") or {}
    when = record.started.get("time")
    lines = [f"Trained with finetune-tui {versions.get('finetune-tui', '(unknown version)')}, engine "
             f"`{record.config.engine}`"
             + (f", on {device.get('name')} ({device.get('type')})" if device else "")
             + (f", started {datetime.fromtimestamp(when, UTC):%Y-%m-%d %H:%M} UTC" if isinstance(when, int | float)
                else "") + "."]
    if versions:
        lines.append("Installed when the run started:\n\n"
                     + _table(("library", "version"), [(k, str(v)) for k, v in versions.items()
                                                       if k != "finetune-tui"]))
    return "## How it was made\n\n" + "\n\n".join(lines)


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([line(header), "|" + "|".join("---" for _ in header) + "|", *(line(row) for row in rows)])


@dataclass(frozen=True)
class _Format:
    """What a card says for one model format (EngineInfo.model_format): the Hub's library_name, extra tags, and
    the loading code."""

    library: str | None
    tags: tuple[str, ...]
    usage: Callable[[RunRecord, str, bool], str]


# library_name is left out for keras: the Hub's Keras snippet loads a keras.saving preset, not this directory.
_FORMATS: dict[str, _Format] = {
    "hf": _Format("transformers", (), hf_usage),
    "keras": _Format(None, ("keras", "tensorflow"), keras_usage),
}
