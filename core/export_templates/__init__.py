"""Standalone training scripts: one Jinja template per engine, filled with every resolved option of a config.

The engine templates here hold the engine-shaped code (optimizer, schedule, loop, checkpoints, sampler); what a task
adds (its labels, metrics, head, loss, the last changes before saving) are fragments in the task's own folder
(core/tasks/<task>/export/, Task.export_dir), which the templates include as "task/<file>", with values the task
decides at export time (Task.script_context) as `task.<key>`.

The script needs only the libraries (transformers/datasets/torch, or keras/keras-hub), never finetune-tui. To
reproduce a run it must do what the engine does, so everything finetune-tui decides from the data is decided here,
at export time, and written out: the columns, the class names and their order, whether a csv has a header row, and
the local path a bundled or cached Hub model resolves to. The rest (the validation split, the subsets, tokenization,
padding, optimizer and schedule) is written as plain code in the template.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from core.config import RunConfig
from core.engines import ENGINES
from core.engines.hf_model import frozen_dtype, lora_target_modules
from core.errors import ConfigError
from core.metrics import greater_is_better
from core.tasks import TASKS, get_task
from core.tasks.base import Task
from core.tracking import PROJECT as TRACKER_PROJECT
from core.tracking import TENSORBOARD_DIR

if TYPE_CHECKING:
    from core.data import SplitSource

TEMPLATE_DIR = Path(__file__).parent
BUNDLED_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass
class SplitFile:
    split: str
    path: str
    reader: str  # the Python expression that reads it, e.g. pd.read_csv(...)
    class_label: bool = False  # the label column is a datasets ClassLabel (ids with names)


@dataclass
class ScriptContext:
    config: RunConfig
    model_path: str
    model_note: str
    text_column: str
    text_pair_column: str | None
    label_column: str
    labels: list[str]
    files: list[SplitFile] = field(default_factory=list)
    hub: dict[str, Any] | None = None  # name, config, splits {ours: theirs}
    class_label: bool = False
    training_args: list[tuple[str, Any, str]] = field(default_factory=list)  # name, value, comment
    task_title: str = ""  # "text classification": what the script trains, in its docstring
    task: dict[str, Any] = field(default_factory=dict)  # Task.script_context: `task.<key>` in the templates
    output_dir: str = ""
    # KerasHub's model class for the checkpoint's backbone (keras engine): its TextClassifier, or its CausalLM for a
    # task that trains a causal LM (keras_causal_lm, Task.keras_kind)
    keras_classifier: str = ""
    keras_dropout: tuple[float | None, float | None] = (None, None)  # the checkpoint's (encoder, head) rates
    keras_causal_lm: bool = False  # the task trains the decoder's own causal LM (Task.keras_kind "causal_lm")
    keras_backbone_settings: dict[str, Any] = field(default_factory=dict)  # from_preset keywords, as the engine's
    keras_lora_layers: list[str] | None = None  # a causal LM's LoRA targets, KerasHub's names; None: its default
    own_keras_save: bool = False  # the task saves the Keras model in a format of its own (Task.save_keras_model)
    greater_is_better: bool = True  # the best-model metric's direction (core.metrics.greater_is_better)
    auto_model: str = "AutoModelForSequenceClassification"  # the task's model class (Task.auto_model_class)
    collator: str = "DataCollatorWithPadding"  # the task's batch padder (Task.collator_class)
    peft_task: str = "SEQ_CLS"  # peft's TaskType for LoRA (Task.peft_task_type)
    own_tokenize: bool = False  # the task tokenizes its own way (task/tokenize.py.j2)
    own_standardise: bool = False  # the task makes its own columns from a table (task/standardise.py.j2)
    loss_only: bool = False  # the task is evaluated by its loss alone (Task.keeps_outputs False): no outputs kept
    trainer_module: str = "transformers"  # where the trainer engine's classes come from (Task.trainer_classes)
    trainer_class: str = "Trainer"
    arguments_class: str = "TrainingArguments"
    load_dtype: str = "torch.float32"  # the dtype the pretrained weights load in (core.engines.hf_model.frozen_dtype)
    lora_targets: Any = None  # LoraConfig's target_modules as the engines pass them ("all-linear" is peft's string)
    own_keras_model: bool = False  # the task puts its own head on the backbone (build_model in task/keras.py.j2)
    tracker_project: str = TRACKER_PROJECT  # MLflow experiment and W&B project, as finetune-tui's runs use
    tensorboard_dir: str = TENSORBOARD_DIR  # under OUTPUT_DIR, as RUN/tensorboard

    @property
    def trainer_title(self) -> str:
        """What the trainer engine's script trains with, in its docstring."""
        if self.trainer_module == "transformers":
            return "the Hugging Face Trainer"
        return f"{self.trainer_module.upper()}'s {self.trainer_class}"

    @property
    def json_lines(self) -> bool:
        """Whether the script needs its small JSON-lines reader."""
        return any("read_json_lines" in f.reader for f in self.files)

    @property
    def conll(self) -> bool:
        """Whether the script needs its CoNLL reader."""
        return any(f.reader.startswith("read_conll") for f in self.files)

    @property
    def delimited(self) -> bool:
        return any(f.reader.startswith("read_delimited") for f in self.files)

    @property
    def datasets_imports(self) -> str:
        """What the script imports from datasets: the data's, the task's (Value, ...) and the Hub loader."""
        names = {"Dataset", "DatasetDict", *self.task.get("datasets_imports", [])}
        if self.class_label:
            names.add("ClassLabel")
        classes = sorted(n for n in names if n[:1].isupper())
        return ", ".join(classes + (["load_dataset"] if self.hub else []))


def render_script(config: RunConfig) -> str:
    """The engine's standalone script for this config. Reads the data once, to resolve what `auto` means."""
    import jinja2

    info = ENGINES.get(config.engine)
    template_name = info.script_template if info is not None else None
    if template_name is None or not (TEMPLATE_DIR / template_name).exists():
        raise ConfigError(f"there is no script export for engine {config.engine!r} yet",
                          "export the yaml or the command instead, or choose engine: trainer")
    if config.training.fsdp:
        raise ConfigError("the exported scripts do not shard the model (training.fsdp) in this version",
                          "run the config with finetune-tui run, or export it with training.fsdp: false")
    # "task/<file>" is the task's fragment (core/tasks/<task>/export/<file>); any other name, a template here.
    task_dir = get_task(config.task).export_dir()
    if not (task_dir / "labels.py.j2").is_file():
        raise ConfigError(f"there is no script export for task {config.task!r} yet",
                          "export the yaml or the command instead")
    if info is not None and info.model_format == "keras" and not (task_dir / "keras.py.j2").is_file():
        raise ConfigError(f"there is no keras script export for task {config.task!r} yet",
                          "export the yaml or the command instead, or choose engine: trainer or torch-loop")
    loader = jinja2.ChoiceLoader([
        jinja2.PrefixLoader({"task": jinja2.FileSystemLoader(str(task_dir))}),
        jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
    ])
    env = jinja2.Environment(
        loader=loader, undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False,
    )
    env.filters["py"] = _py
    ctx = build_context(config)
    return env.get_template(template_name).render(c=ctx, cfg=config, t=config.training, tok=config.tokenizer,
                                                  d=config.data, engine=config.engine,
                                                  task=SimpleNamespace(**ctx.task))


def build_context(config: RunConfig) -> ScriptContext:
    from core.data import prepare_data

    prepared = prepare_data(config.data, config.task)
    model_path, model_note = model_location(config)
    ctx = ScriptContext(
        config=config, model_path=model_path, model_note=model_note, text_column=prepared.text_column,
        text_pair_column=prepared.text_pair_column, label_column=prepared.label_column,
        labels=list(prepared.label_names),
    )
    if config.data.hub is not None:
        ctx.hub = _hub_context(config)
        ctx.class_label = ctx.hub["class_label"]
    else:
        ctx.files = _file_readers(config)
        ctx.class_label = any(f.class_label for f in ctx.files)
    task = get_task(config.task)
    if ENGINES[config.engine].model_format == "keras":  # KerasHub converts the checkpoint: its local dir and class
        from core.engines.keras_convert import backbone_settings, checkpoint_dropouts, lora_layer_names

        ctx.model_path, ctx.keras_classifier = _keras_model(config)
        ctx.keras_dropout = checkpoint_dropouts(Path(ctx.model_path))
        ctx.keras_causal_lm = task.keras_kind == "causal_lm"
        if ctx.keras_causal_lm:
            ctx.keras_backbone_settings = backbone_settings(Path(ctx.model_path), task)
            lora = config.training.lora
            ctx.keras_lora_layers = lora_layer_names(lora.target_modules if lora else None, decoder=True)
    ctx.training_args = trainer_arguments(config)
    ctx.greater_is_better = greater_is_better(config.training.metric_for_best_model or config.metrics[0])
    ctx.task_title = TASKS[config.task].title.lower()
    ctx.task = task.script_context(config, prepared)
    ctx.auto_model, ctx.collator, ctx.peft_task = task.auto_model_class, task.collator_class, task.peft_task_type
    ctx.own_tokenize = (task.export_dir() / "tokenize.py.j2").is_file()
    ctx.own_standardise = (task.export_dir() / "standardise.py.j2").is_file()
    ctx.loss_only = not task.keeps_outputs
    trainer_cls, arguments_cls, _ = task.trainer_classes()
    ctx.trainer_module = trainer_cls.__module__.split(".")[0]  # the package exports both at its top level
    ctx.trainer_class, ctx.arguments_class = trainer_cls.__name__, arguments_cls.__name__
    ctx.load_dtype = str(frozen_dtype(config))
    lora = config.training.lora
    ctx.lora_targets = lora_target_modules(lora.target_modules) if lora is not None else None
    ctx.own_keras_model = type(task).keras_model is not Task.keras_model
    ctx.own_keras_save = type(task).save_keras_model is not Task.save_keras_model
    ctx.output_dir = str(config.output_dir) if config.output_dir else _default_output(config)
    return ctx


def _default_output(config: RunConfig) -> str:
    data = config.data
    source = data.hub.name.split("/")[-1] if data.hub else Path(str(data.train_file)).stem
    return f"runs/{config.engine}-{source}-script"


def model_location(config: RunConfig) -> tuple[str, str]:
    """(what from_pretrained should load, a comment saying where it comes from)."""
    from core.models import BUNDLED_ALIASES, resolve_model

    name = config.model.name_or_path
    where = resolve_model(name)
    if name in BUNDLED_ALIASES:
        return where, f"the model bundled with finetune-tui; Hub id: {BUNDLED_HUB_ID}"
    if Path(where).is_dir():
        return where, "a local model directory"
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(where, "config.json", revision=config.model.revision)
    if isinstance(cached, str):
        return str(Path(cached).parent), f"the local Hub cache of {where}; on another machine use {where!r}"
    return where, "a Hub id: downloaded on first use"


def _keras_model(config: RunConfig) -> tuple[str, str]:
    """(the local checkpoint directory KerasHub converts, the name of the KerasHub class the task trains on its
    backbone: its TextClassifier, or its CausalLM for a task of Task.keras_kind "causal_lm")."""
    from core.engines.keras_convert import check_convertible, checkpoint_dir, import_keras, model_class

    checkpoint = check_convertible(config)
    import_keras()
    from keras_hub.src.utils.transformers.preset_loader import TransformersPresetLoader

    backbone = TransformersPresetLoader(None, {"model_type": checkpoint.model_type}).converter.backbone_cls
    head = model_class(backbone, causal=get_task(config.task).keras_kind == "causal_lm")
    return str(checkpoint_dir(config)), head.__name__


def _file_readers(config: RunConfig) -> list[SplitFile]:
    from datasets import ClassLabel

    from core.data import load_file

    d = config.data
    out = []
    label = d.label_column
    for split, path in (("train", d.train_file), ("validation", d.validation_file), ("test", d.test_file)):
        if path is None:
            continue
        ds, source = load_file(path, d.format, d.header, d.column_names, d.quoting, d.tags_column_index)
        fmt = _format(Path(path), d.format)
        feature = ds.features.get(label) if label else None
        reader = _reader(Path(path), fmt, ds.column_names, source, d.column_names is not None)
        # Integer labels named by data.label_names are ids into LABELS, as a ClassLabel's are.
        named_ids = isinstance(feature, ClassLabel) or d.label_names is not None
        out.append(SplitFile(split, str(Path(path).expanduser().resolve()), reader, named_ids))
    return out


def _format(path: Path, fmt: str) -> str:
    from core.data import detect_format

    if fmt != "auto":
        return fmt
    if path.suffix.lower() in (".parquet", ".pq"):
        return "parquet"
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        head = f.read(4096)
    return detect_format(path, head)


def _reader(path: Path, fmt: str, columns: list[str], source: SplitSource, named: bool) -> str:
    """A call that reads the file into the same columns finetune-tui reads (helpers in the _data template)."""
    p = _py(str(path.expanduser().resolve()))
    if fmt in ("csv", "tsv"):
        sep = _py("\t" if fmt == "tsv" else ",")
        quoting = ", quotes_are_text=True" if source.quoting == "none" else ""
        if source.header and not named:
            return f"read_delimited({p}, sep={sep}{quoting})"
        return f"read_delimited({p}, sep={sep}, names={_py(columns)}, skip_header={bool(source.header)}{quoting})"
    if fmt == "parquet":
        return f"Dataset.from_parquet({p})"
    if fmt == "conll":
        return f"read_conll({p})"
    if fmt == "jsonl":
        return f"pd.DataFrame.from_records(read_json_lines({p}))"
    return f"pd.DataFrame.from_records({_json_shape(path)})"


def _json_shape(path: Path) -> str:
    """How the examples sit in a .json file: a list, {"data": [...]}, columns {"text": [...]}, or JSON lines."""
    p = _py(str(path.expanduser().resolve()))
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError:
        return f"read_json_lines({p})"  # one object per line in a .json file
    if isinstance(data, dict):
        lists = {k: v for k, v in data.items() if isinstance(v, list)}
        nested = [k for k, v in lists.items() if v and all(isinstance(x, dict) for x in v)]
        if len(lists) == len(data) and not nested:
            return f'pd.DataFrame(json.loads(Path({p}).read_text(encoding="utf-8-sig"))).to_dict("records")'
        if len(nested) == 1:
            return f'json.loads(Path({p}).read_text(encoding="utf-8-sig"))[{_py(nested[0])}]'
    return f'json.loads(Path({p}).read_text(encoding="utf-8-sig"))'


def _hub_context(config: RunConfig) -> dict[str, Any]:
    from datasets import ClassLabel

    from core.data import load_raw

    hub = config.data.hub
    assert hub is not None
    raw = load_raw(config.data)
    splits = {"train": hub.train_split}
    if "validation" in raw:  # load_raw has already picked it: the named split, or the Hub's own "validation"
        splits["validation"] = hub.validation_split or "validation"
    if hub.test_split is not None:
        splits["test"] = hub.test_split
    label = config.data.label_column
    feature = raw["train"].features.get(label) if label else None
    return {"name": hub.name, "config": hub.config, "splits": splits, "class_label": isinstance(feature, ClassLabel)}


def trainer_arguments(config: RunConfig) -> list[tuple[str, Any, str]]:
    """TrainingArguments keywords exactly as core.engines.trainer sets them, each with a note where it helps."""
    t = config.training
    task = get_task(config.task)
    extra = task.trainer_classes()[2]
    primary = t.metric_for_best_model or config.metrics[0]
    early = t.early_stopping_patience is not None
    sampling = "group_by_length" if t.group_by_length else "random"
    return [
        ("num_train_epochs", t.num_train_epochs, ""),
        ("max_steps", t.max_steps, "-1: train num_train_epochs" if t.max_steps == -1 else ""),
        ("learning_rate", t.learning_rate, ""),
        ("per_device_train_batch_size", t.per_device_train_batch_size, ""),
        ("per_device_eval_batch_size", t.per_device_eval_batch_size, ""),
        ("gradient_accumulation_steps", t.gradient_accumulation_steps, ""),
        ("weight_decay", t.weight_decay, "AdamW (Trainer's default optimizer); not on biases and LayerNorm"),
        ("warmup_steps", t.warmup_ratio, "a float below 1 is a share of the steps (transformers 5)"),
        ("lr_scheduler_type", t.lr_scheduler_type, ""),
        ("max_grad_norm", t.max_grad_norm, ""),
        ("fp16", t.mixed_precision == "fp16", ""),
        ("bf16", t.mixed_precision == "bf16", ""),
        ("eval_strategy", t.eval_strategy, ""),
        ("eval_steps", t.eval_steps, ""),
        ("save_strategy", t.eval_strategy if early else t.save_strategy,
         "early stopping keeps the best model, so saves follow evaluations" if early else ""),
        ("save_steps", t.eval_steps if early else t.save_steps, ""),
        ("save_total_limit", t.save_total_limit, ""),
        ("load_best_model_at_end", early, ""),
        ("metric_for_best_model", f"eval_{primary}" if early else None, ""),
        ("greater_is_better", greater_is_better(primary) if early else None, ""),
        ("logging_steps", t.logging_steps, ""),
        ("logging_nan_inf_filter", False, "a NaN step loss is logged as NaN, not as the window's finite mean"),
        ("train_sampling_strategy", sampling, "similar lengths batched together" if t.group_by_length else ""),
        ("seed", t.seed, ""),
        ("data_seed", t.seed, "the order of the training examples"),
        ("report_to", t.report_to or "none",
         "Trainer's own tracker integrations (their names, e.g. eval_accuracy, on MLflow)" if t.report_to else ""),
        ("dataloader_num_workers", 0, ""),
        ("prediction_loss_only", not task.keeps_outputs,
         "evaluated by the loss alone (the outputs are vocabulary-sized per token)" if not task.keeps_outputs else ""),
        *((name, value, "the rows are tokenized above, as finetune-tui tokenizes them")
          for name, value in extra.items()),
    ]


def _py(value: Any) -> str:
    """A Python literal for a value, strings in double quotes (paths as strings)."""
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON string escapes are valid Python escapes
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_py(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_py(k)}: {_py(v)}" for k, v in value.items()) + "}"
    return repr(value)
