"""The run config: one typed, validated description of everything a run needs.

Field names under `training` follow `transformers.TrainingArguments` so people can carry their habits over.
Every field has a description: the wizard shows it as help and the YAML export writes it as a comment.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.class_weights import check_weights
from core.engines import DEFAULT_ENGINE
from core.errors import ConfigError
from core.tasks import DEFAULT_TASK, TASKS

SCHEMA_VERSION = 1
BUNDLED_MODEL = "bundled:all-MiniLM-L6-v2"

Engine = Literal["trainer", "torch-loop", "keras"]
Padding = Literal["dynamic", "max_length", "longest"]
DataFormat = Literal["auto", "csv", "tsv", "json", "jsonl", "parquet", "conll"]
TagScheme = Literal["auto", "iob1", "iob2", "iobes"]
Quoting = Literal["auto", "csv", "none"]
Precision = Literal["no", "fp16", "bf16"]
Strategy = Literal["no", "steps", "epoch"]
Tracker = Literal["tensorboard", "mlflow", "wandb"]
# In the annotation, not a field_validator, so the wizard's per-field parsing (tui.draft.parse_value) runs it too.
ClassWeights = Annotated[Literal["auto"] | list[float] | None, BeforeValidator(check_weights)]


def _check_threshold(value: Any) -> Any:
    """training.threshold: a number strictly between 0 and 1, or auto; also as text ("0.3", "auto")."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "auto":
            return "auto"
        try:
            value = float(text)
        except ValueError:
            raise ValueError("give a number between 0 and 1 such as 0.5, or auto") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise ValueError("must be between 0 and 1 (exclusive), or auto to tune one per label on validation")
    return float(value)


Threshold = Annotated[float | Literal["auto"], BeforeValidator(_check_threshold)]
Scheduler = Literal[
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "cosine_with_min_lr",
]


class _Section(BaseModel):
    # defer_build: the schemas are built on first use, not at import, so the wizard's first frame does not wait
    # for them (bench/startup.py).
    model_config = ConfigDict(extra="forbid", validate_assignment=True, defer_build=True)


class ModelConfig(_Section):
    name_or_path: str = Field(
        BUNDLED_MODEL,
        description="Hub id (e.g. bert-base-cased) or a local model directory; "
        f"'{BUNDLED_MODEL}' is the small model that ships with finetune-tui and works offline.",
    )
    revision: str | None = Field(None, description="Hub branch, tag or commit to load; null for the default.")
    trust_remote_code: bool = Field(
        False, description="Run Python code that the model's repository ships. Only for repositories you trust."
    )


class HubDataset(_Section):
    name: str = Field(description="Hub dataset id, e.g. glue or imdb.")
    config: str | None = Field(None, description="Dataset configuration, e.g. mrpc for glue.")
    train_split: str = Field("train", description="Split to train on.")
    validation_split: str | None = Field(
        None,
        description="Split to evaluate on; null uses 'validation' when the dataset has one, else a fraction of train.",
    )
    test_split: str | None = Field(None, description="Split for the final test; null for none.")


class DataConfig(_Section):
    train_file: Path | None = Field(
        None, description="Training data file (csv, tsv, json, jsonl, parquet or conll)."
    )
    hub: HubDataset | None = Field(None, description="A dataset from the Hugging Face Hub instead of local files.")
    validation_file: Path | None = Field(
        None, description="Validation data file; null splits validation_fraction off the training data."
    )
    test_file: Path | None = Field(None, description="Test data file, evaluated once at the end; null for none.")
    format: DataFormat = Field("auto", description="File format; auto decides from the file extension.")
    header: Literal["auto"] | bool = Field(
        "auto", description="Whether csv/tsv files start with a header row; auto detects it."
    )
    column_names: list[str] | None = Field(
        None, description="Names for the columns of a headerless file; null names them column_0, column_1, ..."
    )
    quoting: Quoting = Field(
        "auto",
        description="How csv/tsv files quote: csv reads \"quoted\" fields; none treats every \" as text (GLUE's "
        "TSVs); auto is csv, or none for a TSV whose fields start with a \" that is not a quote.",
    )
    text_column: str | None = Field(None, description="Column with the text; null detects it.")
    text_pair_column: str | None = Field(
        None, description="Column with the second text, for sentence-pair tasks; null for single texts."
    )
    label_column: str | None = Field(
        None,
        description="Column with the labels; null detects it. multi-label-classification: a list of labels per row "
        "(JSON/JSONL/Parquet), or text such as 'a|b' (see label_separator).",
    )
    label_columns: list[str] | None = Field(
        None,
        description="multi-label-classification: one 0/1 (or true/false) column per label, e.g. [toxic, insult, "
        "threat], instead of label_column; the column names are the label names, in this order. null: the labels "
        "are in label_column.",
    )
    label_separator: str | None = Field(
        None,
        description="multi-label-classification: what joins the labels in a text label cell, e.g. '|' for 'a|b'; "
        "null picks the one of , ; | found in most rows. A cell shaped like a list (['a', 'b']) is read as one.",
    )
    label_names: list[str] | Path | None = Field(
        None,
        description="Class names for integer labels 0, 1, 2, ... (a list, or a text file with one name per line); "
        "for text labels, their order. null names classes by their values. multi-label-classification: the same, "
        "for the ids in each row's list.",
    )
    tokens_column: str | None = Field(
        None,
        description="token-classification: the column with each sentence's words as a list (JSON/JSONL/Parquet); null "
        "detects it (tokens, words). A CoNLL file's tokens are always its first column.",
    )
    tags_column: str | None = Field(
        None,
        description="token-classification: the column with one tag per word as a list (strings, or ids with "
        "label_names); null detects it (ner_tags, tags, labels).",
    )
    tags_column_index: int | None = Field(
        None,
        description="token-classification, CoNLL files: which column holds the tags (0 = the tokens, so 1 or more; "
        "CoNLL-2003's entity tags are 3); null takes the last column.",
    )
    tag_scheme: TagScheme = Field(
        "auto",
        description="token-classification: how tags mark entities. iob2 (B-/I-) and iobes (B-/I-/E-/S-) are read as "
        "given; iob1 (I- starts an entity, B- only between two of one type) is converted to iob2; auto tells them "
        "apart from the tags.",
    )
    label_scaling: Literal["none", "standard"] = Field(
        "none",
        description="text-regression: standard trains on z-scored labels (the training data's mean and std), which "
        "helps when scores are large or far from 0; the saved model still gives raw scores. none trains on the "
        "scores as they are.",
    )
    prompt_template: str | None = Field(
        None,
        description="text-generation, instruction data: the prompt made of the row's columns, e.g. "
        "'{instruction}\\n\\n{input}\\n\\n### Response:\\n' (an empty field drops out with the text before "
        "it); the model learns to write response_column after it.",
    )
    response_column: str | None = Field(
        None, description="text-generation, instruction data: the column with the answer to learn."
    )
    messages_column: str | None = Field(
        None,
        description="text-generation, chat data: the column with each row's conversation, a list of {role, content} "
        "turns (roles system, user, assistant).",
    )
    chat_template: str | None = Field(
        None,
        description="text-generation, chat data: how conversations are written out; null uses the tokenizer's own "
        "template, chatml the ChatML format (<|im_start|>role ... <|im_end|>), or give a Jinja chat template.",
    )
    validation_fraction: float = Field(
        0.1, gt=0, lt=1,
        description="Share of the training data held out for validation when no validation data is given.",
    )
    max_train_samples: int | None = Field(
        None, ge=1, description="Train on a shuffled subset of this many examples; null for all."
    )
    max_eval_samples: int | None = Field(
        None, ge=1, description="Evaluate on a shuffled subset of this many examples; null for all."
    )
    shuffle_seed: int = Field(42, description="Seed for the validation split and the subsets.")

    @field_validator("label_columns", mode="before")
    @classmethod
    def _columns_as_text(cls, value: Any) -> Any:
        # "toxic, insult" (the wizard's field, plain mode) is a list of column names.
        if isinstance(value, str):
            parts = [part.strip().strip("'\"") for part in value.strip().strip("[]").split(",") if part.strip()]
            return parts or None
        return value

    @field_validator("label_columns")
    @classmethod
    def _distinct_columns(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("give one column per label, or null to read the labels from label_column")
        dupes = sorted({c for c in value if value.count(c) > 1})
        if dupes:
            raise ValueError(f"names {', '.join(map(repr, dupes))} more than once; give each label column once")
        return value

    @field_validator("label_separator", mode="before")
    @classmethod
    def _separator(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("label_names", mode="before")
    @classmethod
    def _names_as_text(cls, value: Any) -> Any:
        # "neg, pos" (the wizard's field, plain mode) is a list of names; any other text is a file's path.
        if isinstance(value, str) and ("," in value or value.strip().startswith("[")):
            return [part.strip().strip("'\"") for part in value.strip().strip("[]").split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        if self.train_file is None and self.hub is None:
            raise ValueError("give data.train_file (a local file) or data.hub (a Hub dataset)")
        if self.train_file is not None and self.hub is not None:
            raise ValueError("give either data.train_file or data.hub, not both")
        return self


class TokenizerConfig(_Section):
    padding: Padding = Field(
        "dynamic",
        description="dynamic pads each batch to its longest example (fastest); max_length pads every example "
        "to max_length; longest pads each tokenization batch of 1000 to its longest.",
    )
    truncation: bool = Field(True, description="Cut texts longer than max_length.")
    label_all_tokens: bool = Field(
        False,
        description="token-classification: train on every sub-token of a word (B- becomes I- after the first); false "
        "trains on each word's first sub-token only. Evaluation always reads each word's first sub-token.",
    )
    max_length: int = Field(128, ge=8, le=131072, description="Longest input in tokens; longer texts are truncated.")


class LoraSettings(_Section):
    r: int = Field(8, ge=1, le=1024, description="Rank of the low-rank update matrices.")
    alpha: int = Field(16, ge=1, description="Scaling of the update (alpha / r).")
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout on the LoRA layers.")
    target_modules: list[str] | None = Field(
        None, description="Module names to adapt, e.g. [query, value]; [all-linear] adapts every linear layer but the "
        "output head; null picks the usual ones for the model."
    )


class TrainingConfig(_Section):
    num_train_epochs: float = Field(3, gt=0, le=1000, description="Passes over the training data.")
    learning_rate: float = Field(1e-4, gt=0, le=1, description="Peak learning rate of AdamW.")
    per_device_train_batch_size: int = Field(16, ge=1, le=65536, description="Training examples per step per device.")
    per_device_eval_batch_size: int = Field(64, ge=1, le=65536, description="Evaluation examples per step per device.")
    gradient_accumulation_steps: int = Field(
        1, ge=1, le=4096, description="Steps whose gradients add up before each update (bigger effective batch)."
    )
    weight_decay: float = Field(
        0.01, ge=0, le=1, description="AdamW weight decay (not applied to biases and LayerNorm)."
    )
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="Share of the steps spent warming the learning rate up.")
    lr_scheduler_type: Scheduler = Field("linear", description="How the learning rate changes after warmup.")
    max_grad_norm: float = Field(1.0, ge=0, description="Clip gradients to this norm; 0 turns clipping off.")
    mixed_precision: Precision = Field(
        "no", description="fp16 or bf16 compute on a GPU that supports it; no for full precision."
    )
    eval_strategy: Strategy = Field("epoch", description="When to evaluate: every epoch, every eval_steps, or never.")
    eval_steps: int | None = Field(None, ge=1, description="Steps between evaluations when eval_strategy is steps.")
    save_strategy: Strategy = Field(
        "epoch", description="When to save a checkpoint: every epoch, every save_steps, or never."
    )
    save_steps: int | None = Field(None, ge=1, description="Steps between checkpoints when save_strategy is steps.")
    save_total_limit: int | None = Field(2, ge=1, description="Keep at most this many checkpoints; null keeps all.")
    logging_steps: int = Field(10, ge=1, description="Steps between logged training losses.")
    max_steps: int = Field(-1, ge=-1, description="Stop after this many update steps; -1 trains num_train_epochs.")
    group_by_length: bool = Field(
        True, description="Batch examples of similar length together, so dynamic padding pads less (faster)."
    )
    early_stopping_patience: int | None = Field(
        None, ge=1, description="Stop when the validation metric has not improved for this many evaluations."
    )
    metric_for_best_model: str | None = Field(
        None, description="Metric that picks the best checkpoint for early stopping; null uses the first metric."
    )
    class_weights: ClassWeights = Field(
        None,
        description="Weigh the training loss per class for imbalanced data: auto (inverse class frequency, "
        "n / (classes x n_class)), or one positive weight per class in label order, e.g. [1, 4.5]; null weighs every "
        "example the same. The evaluation loss stays unweighted. multi-label-classification: a positive weight "
        "per label (BCE pos_weight): auto is negatives / positives of each label, clipped to 1/50..50.",
    )
    threshold: Threshold = Field(
        0.5,
        description="multi-label-classification: a label is predicted when its probability is at least this "
        "(between 0 and 1). auto: 0.5 while training, then one threshold per label tuned on the validation split "
        "(best F1 per label), saved with the model for predict and the evaluation report.",
    )
    freeze_encoder: bool = Field(False, description="Train only the classification head; the encoder stays fixed.")
    lora: LoraSettings | None = Field(
        None, description="Train low-rank adapters with peft instead of all weights; null trains all weights."
    )
    train_on_prompt: bool = Field(
        False,
        description="text-generation: learn the prompt's (and user turns') tokens too; false puts the loss only on "
        "responses and assistant turns.",
    )
    packing: bool = Field(
        False,
        description="text-generation: pack several training examples into each max_length sequence (no attention "
        "across examples; position ids restart per example), so short examples waste no padding.",
    )
    quantization: Literal["4bit", "8bit"] | None = Field(
        None,
        description="text-generation on a CUDA GPU: load the model's weights in 4 or 8 bits (QLoRA, with bitsandbytes) "
        "and train LoRA adapters over them; null loads them in full precision.",
    )
    gradient_checkpointing: bool = Field(
        False,
        description="Recompute activations in the backward pass instead of keeping them: much less memory for about "
        "a third more time per step.",
    )
    fsdp: bool = Field(
        False,
        description="Shard the weights, gradients and optimizer state over the run's processes (PyTorch's FSDP2, "
        "one shard per GPU, each decoder layer its own unit) for a model whose training does not fit one GPU; needs "
        "num_processes of 2 or more (or null, with 2+ GPUs) and the trainer or torch-loop engine.",
    )
    seed: int = Field(42, description="Random seed for initialisation and data order.")
    num_processes: int | None = Field(
        1, ge=1, le=1024,
        description="Data-parallel copies on this machine, one per GPU: torchrun processes, or keras replicas"
                    " (MirroredStrategy); null uses every local GPU.",
    )
    report_to: list[Tracker] = Field(
        default_factory=list,
        description="Trackers that receive the run's scalars as it trains, besides events.jsonl: tensorboard "
                    "(files in RUN/tensorboard), mlflow (MLFLOW_TRACKING_URI, else ./mlruns), wandb (honours "
                    "WANDB_MODE=offline); [] for none.",
    )
    push_to_hub: bool = Field(
        False, description="Upload the model directory with its card to the Hub when the run finishes (the token "
                           "comes from HF_TOKEN or `hf auth login`).")
    hub_model_id: str | None = Field(
        None, description="Hub repository for push_to_hub, e.g. me/sentiment-minilm; null uses the run's name "
                          "under your account.")
    hub_private_repo: bool = Field(False, description="Create the Hub repository as private when it does not exist.")

    @field_validator("mixed_precision", mode="before")
    @classmethod
    def _yaml_no(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare `no` as false; people mean the string.
        return "no" if value is False else value

    @field_validator("eval_strategy", "save_strategy", mode="before")
    @classmethod
    def _yaml_no_strategy(cls, value: Any) -> Any:
        return "no" if value is False else value

    @field_validator("report_to", mode="before")
    @classmethod
    def _trackers(cls, value: Any) -> Any:
        # TrainingArguments' spellings: one name, "none", or "all".
        if value is None or value == "none":
            return []
        if value == "all":
            return ["tensorboard", "mlflow", "wandb"]
        return [value] if isinstance(value, str) else value

    @field_validator("hub_model_id")
    @classmethod
    def _repo_id(cls, value: str | None) -> str | None:
        from core.errors import UserError
        from core.push import check_repo_id  # huggingface_hub's rules, imported only when a repository is named

        if value is not None:
            try:
                check_repo_id(value)
            except UserError as err:
                raise ValueError(f"{err.problem}; {err.fix}") from None
        return value

    @field_validator("max_steps")
    @classmethod
    def _max_steps(cls, value: int) -> int:
        if value == 0:
            raise ValueError("must be -1 (train num_train_epochs) or a positive number of steps")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TrainingConfig:
        if self.eval_strategy == "steps" and self.eval_steps is None:
            raise ValueError("eval_strategy is steps but eval_steps is not set; set training.eval_steps")
        if self.save_strategy == "steps" and self.save_steps is None:
            raise ValueError("save_strategy is steps but save_steps is not set; set training.save_steps")
        if self.early_stopping_patience is not None and self.eval_strategy == "no":
            raise ValueError("early_stopping_patience needs evaluations; set training.eval_strategy to epoch or steps")
        if self.freeze_encoder and self.lora is not None:
            raise ValueError("freeze_encoder and lora both limit what trains; choose one")
        if self.quantization is not None and self.lora is None:
            raise ValueError(f"quantization {self.quantization} keeps the weights in {self.quantization[0]} bits, "
                             "which cannot be trained; set training.lora (QLoRA trains adapters over them), or "
                             "quantization: null")
        if self.fsdp:
            if self.num_processes == 1:
                raise ValueError("fsdp shards the model over the run's processes, and num_processes is 1; set "
                                 "training.num_processes to the number of GPUs (null: every local GPU), or fsdp: false")
            if self.quantization is not None:
                raise ValueError(f"fsdp and quantization {self.quantization} are not combined in this version; "
                                 "set quantization: null (FSDP's shards already divide the weights' memory), or "
                                 "fsdp: false")
            if self.gradient_checkpointing:
                raise ValueError("fsdp and gradient_checkpointing are not combined in this version; set "
                                 "gradient_checkpointing: false, or fsdp: false")
        twice = sorted({name for name in self.report_to if self.report_to.count(name) > 1})
        if twice:
            raise ValueError(f"report_to lists {', '.join(twice)} more than once; list each tracker once")
        return self


class RunConfig(_Section):
    schema_version: int = Field(SCHEMA_VERSION, description="Version of this config format.")
    task: str = Field(
        DEFAULT_TASK,
        description="What the model learns: " + "; ".join(f"{t.name} ({t.when[0].lower() + t.when[1:-1]})"
                                                          for t in TASKS.values()) + ".",
    )
    engine: Engine = Field(
        DEFAULT_ENGINE,
        description="trainer (Hugging Face Trainer), torch-loop (plain PyTorch loop) or keras (Keras 3 + KerasHub).",
    )
    model: ModelConfig = Field(default_factory=ModelConfig, description="The pretrained model to fine-tune.")
    data: DataConfig = Field(description="Where the labelled data comes from and which columns hold what.")
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig, description="How texts become tokens.")
    training: TrainingConfig = Field(default_factory=TrainingConfig, description="Optimisation settings.")
    metrics: list[str] = Field(
        default_factory=lambda: list(default_metrics(DEFAULT_TASK)),
        min_length=1,
        description="Metrics to report; the first picks the best model unless training.metric_for_best_model says. "
        "text-classification: accuracy, f1, precision, recall, matthews_correlation, f1_macro, precision_macro, "
        "recall_macro (with two classes f1/precision/recall are the positive class's, label id 1, and come with "
        "their *_macro averages; with more they are macro averages over all classes). text-regression: pearson, "
        "spearman, mse, rmse, mae, r2. multi-label-classification: f1_micro, f1_macro, precision_micro, "
        "recall_micro, exact_match (every label of a row right), hamming_loss (share of wrong labels, lower is "
        "better). Left out: the task's defaults.",
    )
    output_dir: Path | None = Field(
        None, description="Run directory; null makes runs/<engine>-<data>-<time>. An existing run is never overwritten."
    )

    @field_validator("schema_version")
    @classmethod
    def _version(cls, value: int) -> int:
        if value > SCHEMA_VERSION:
            raise ValueError(
                f"this config is schema_version {value}, newer than this finetune-tui understands "
                f"({SCHEMA_VERSION}); upgrade finetune-tui"
            )
        if value < 1:
            raise ValueError(f"schema_version starts at 1; this finetune-tui writes {SCHEMA_VERSION}")
        return value

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str) -> str:
        if value not in TASKS:
            raise ValueError(f"choose one of {', '.join(TASKS)}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _task_defaults(cls, data: Any) -> Any:
        # Metrics and settings a config leaves out come from its task (core.tasks.task_defaults): pydantic's field
        # defaults cannot see the task. A setting given, even as null, stays.
        if not isinstance(data, dict) or data.get("task", DEFAULT_TASK) not in TASKS:
            return data
        from core.tasks import task_defaults

        data = {"metrics": list(default_metrics(data.get("task", DEFAULT_TASK))), **data}
        for path, value in task_defaults(data.get("task", DEFAULT_TASK)).items():
            section, key = path.split(".")
            given = data.get(section, {})
            if isinstance(given, dict):
                data[section] = {key: value, **given}
            elif isinstance(given, BaseModel) and key not in given.model_fields_set:
                data[section] = given.model_copy(update={key: getattr(SECTIONS[section].model_validate({key: value}),
                                                                      key)})
        return data

    @field_validator("metrics")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _task_settings(self) -> RunConfig:
        known = metric_names(self.task)
        unknown = [m for m in self.metrics if m not in known]
        if unknown:
            raise ValueError(f"metrics {unknown} are not reported for {self.task}; choose from {', '.join(known)}")
        from core.tasks import get_task

        get_task(self.task).check_config(self)
        return self

    @model_validator(mode="after")
    def _best_metric(self) -> RunConfig:
        best = self.training.metric_for_best_model
        allowed = ["loss", *self.metrics]
        if best is not None and best not in allowed:
            raise ValueError(f"training.metric_for_best_model is {best!r}; choose one of {allowed}")
        return self

    # --- conversions -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


def metric_names(task: str) -> tuple[str, ...]:
    from core.tasks import get_task

    return get_task(task).metric_names


def default_metrics(task: str) -> tuple[str, ...]:
    from core.tasks import get_task

    return get_task(task).default_metrics


# --- loading and saving ----------------------------------------------------------------------------

def parse_config(raw: Any, source: str = "config") -> RunConfig:
    """Validate a mapping into a RunConfig, turning pydantic's errors into one readable ConfigError."""
    if raw is None:
        raise ConfigError(f"{source} is empty",
                          "write a config, e.g. with `finetune-tui init` or from examples/demo.yaml")
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source} must be a mapping of keys to values, but it holds a {type(raw).__name__}",
            "start from `finetune-tui init` or examples/demo.yaml",
        )
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(f"{source} has {_count(err)}:\n" + "\n".join(_describe(e) for e in err.errors()),
                          "correct the values above; `finetune-tui init` writes a valid config") from None


def load_config(path: str | Path) -> RunConfig:
    """Read a YAML or JSON config file (safe loader only)."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist", "check the path, or write one with `finetune-tui init`")
    if path.is_dir():
        raise ConfigError(f"{path} is a directory, not a config file", "give the path of a .yaml or .json file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text file (not UTF-8)", "give a YAML or JSON config file") from None
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror}", "check the file's permissions") from None
    try:
        raw = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as err:
        where = ""
        mark = getattr(err, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        elif isinstance(err, json.JSONDecodeError):
            where = f" at line {err.lineno}, column {err.colno}"
        kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
        raise ConfigError(f"{path} is not valid {kind}{where}", f"fix the {kind} syntax there") from None
    return parse_config(raw, source=str(path))


def save_config(config: RunConfig, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write YAML (or JSON for a .json path). Refuses to replace a file unless asked."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} already exists", "choose another file name, or pass --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(config.to_dict(), indent=2) + "\n" if path.suffix.lower() == ".json" else config.to_yaml()
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


# Dotted section path -> the model that validates it.
SECTIONS: dict[str, type[BaseModel]] = {
    "": RunConfig, "model": ModelConfig, "data": DataConfig, "tokenizer": TokenizerConfig,
    "training": TrainingConfig, "training.lora": LoraSettings, "data.hub": HubDataset,
}


def default_at(path: str) -> Any:
    """The schema's default of a dotted config path, e.g. default_at('training.lora') (None)."""
    section, _, name = path.rpartition(".")
    info = SECTIONS[section].model_fields[name]
    value = info.get_default(call_default_factory=True)
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


def field_help(section: str, name: str) -> str:
    """The one-line description of a config field, e.g. field_help('training', 'learning_rate');
    `section` is a dotted path of SECTIONS ('' for the top level, 'training.lora')."""
    return SECTIONS[section].model_fields[name].description or ""


# --- error messages --------------------------------------------------------------------------------

def _count(err: ValidationError) -> str:
    n = err.error_count()
    return "1 problem" if n == 1 else f"{n} problems"


def _describe(e: Any) -> str:
    loc = ".".join(str(p) for p in e["loc"])
    kind = e["type"]
    value = e.get("input")
    if kind == "extra_forbidden":
        parent = ".".join(str(p) for p in e["loc"][:-1])
        key = str(e["loc"][-1])
        allowed = list(SECTIONS[parent].model_fields) if parent in SECTIONS else []
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return f"  - {loc}: unknown key; {hint}allowed here: {', '.join(allowed)}"
    if kind == "missing":
        return f"  - {loc}: required but missing"
    msg = e["msg"]
    if kind == "literal_error":
        allowed = e.get("ctx", {}).get("expected", "")
        return f"  - {loc}: {value!r} is not allowed; choose {allowed}"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    where = f"{loc}: " if loc else ""
    shown = f"{value!r} is not valid: " if loc and not isinstance(value, dict) else ""
    return f"  - {where}{shown}{msg}"


def flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"training": {"learning_rate": 1e-4}} -> {"training.learning_rate": 1e-4}; lists stay values, and an empty
    section stays a key so that a section present in one run only still shows."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out
