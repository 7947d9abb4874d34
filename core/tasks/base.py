"""What a task is to the rest of finetune-tui: the one interface engines, the worker, evaluation, predict and export
ask, so that none of them branches on a task's name.

`Task` holds the members every task must define and defaults that fit a task taking one text (or a text pair) to
one output vector through a transformers *ForSequenceClassification head (text-classification, text-regression).
A task whose shape differs (token classification, generation) overrides those defaults in its own folder.
Nothing here imports torch, numpy or datasets at module level: the config and the wizard read task attributes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    import numpy as np

    from core.config import DataConfig, RunConfig
    from core.data.arrow import SplitSource
    from core.data.inspection import ColumnInfo
    from core.data.prepare import PreparedData
    from core.evaluation import Evaluation

TASK_FILE = "task.json"  # beside a saved model: {"task", "labels", ...} (Task.model_meta), read by predict


@dataclass
class LabelEncoding:
    """A task's labels for every split, as the training data stores them."""

    names: list[str]  # what the outputs are called: class names, or the score column's name
    arrays: dict[str, np.ndarray]  # split -> one label per row (class ids, or float scores)
    feature: Any  # the datasets feature of the standardised `label` column
    notes: list[str] = field(default_factory=list)


@dataclass
class LabelOverview:
    """What the wizard's dataset step, plain mode and `inspect` show about a label column before training: rows
    per bar (classes, or ranges of scores), a caption, and a warning worth acting on."""

    title: str
    counts: dict[str, int]
    caption: str = ""
    warning: str | None = None
    answered_by: str | None = None  # a config path that, once set, acts on the warning (it is then not shown)
    examples: list[str] = field(default_factory=list)  # a few rows as the task reads them (entities marked)


@dataclass
class Grid:
    """Counts in a grid of true (rows) against predicted (columns), the diagonal being right: the confusion matrix,
    or true against predicted scores in ranges. The monitor draws it, colouring cells by their share of the row."""

    title: str
    row_labels: list[str]
    col_labels: list[str]
    cells: list[list[int]]
    subtitle: str = ""


@dataclass
class TryView:
    """The Try-the-model screen's answer for one text: bars (name, value 0 to 1, highlighted) and/or a line."""

    title: str
    bars: list[tuple[str, float, bool]] = field(default_factory=list)
    line: str = ""


@dataclass
class TaskSplits:
    """A task's own standardised splits (Task.prepare_splits), for a task whose rows are not text + label."""

    splits: dict[str, Any]  # split -> datasets.Dataset of the task's columns
    label_names: list[str]
    text_column: str  # the column that holds most of what a row says, for logs and screens
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class WizardField:
    """A config field only some tasks use, as the wizard's dataset or training step shows it for those tasks."""

    path: str
    label: str
    step: str  # "dataset" or "training"
    editor: str = "input"  # "input", "select" (the choices come from the config schema) or "checkbox"
    placeholder: str = ""


@dataclass(frozen=True)
class ReportSection:
    """Part of an evaluation's terminal text, as (text, role) lines; role: "strong", "ok", "warning" or "dim"."""

    title: str
    lines: list[tuple[str, str]]


class Task(ABC):
    name: ClassVar[str]
    metric_names: ClassVar[tuple[str, ...]]  # every metric this task can report
    default_metrics: ClassVar[tuple[str, ...]]  # `metrics:` when a config leaves it out; the first is the primary
    problem_type: ClassVar[str]  # transformers' config.problem_type: picks the head's loss
    auto_model_class: ClassVar[str] = "AutoModelForSequenceClassification"
    peft_task_type: ClassVar[str] = "SEQ_CLS"  # peft.TaskType member for LoRA
    # pipeline(pipeline_task, model=DIR, **pipeline_kwargs) gives this task's answers (README, model card, tests);
    # pipeline_task is also the Hub's pipeline_tag in the model card's metadata.
    pipeline_task: ClassVar[str] = "text-classification"
    pipeline_kwargs: ClassVar[dict[str, Any]] = {}
    label_dtype: ClassVar[str] = "int64"  # of the tokenized `labels` column, as the loss wants it
    collator_class: ClassVar[str] = "DataCollatorWithPadding"  # transformers' padder, named in exported scripts
    # False: the engines keep no per-row outputs of an evaluation (a language model's are vocabulary-sized per token):
    # its metrics are the loss and metrics_from_loss, and the task's evaluate_model makes its report.
    keeps_outputs: ClassVar[bool] = True

    title: ClassVar[str]
    wizard_fields: ClassVar[tuple[WizardField, ...]] = ()  # shown in the wizard for this task only
    # (Hub id, size) of well-known models the wizard's model step offers for this task; () offers none.
    suggested_models: ClassVar[tuple[tuple[str, str], ...]] = ()
    # Settings that mean nothing for this task: dotted config path -> (the value that leaves it unused, why). A config
    # that sets one otherwise is refused (check_config), and the wizard puts it back when the task changes.
    unused_settings: ClassVar[dict[str, tuple[Any, str]]] = {}
    # The generic column settings the wizard's dataset step offers (and fills from what it detects) for this task,
    # and the one that names the labels (what the label overview reads).
    column_settings: ClassVar[tuple[str, ...]] = ("data.text_column", "data.text_pair_column", "data.label_column")
    label_setting: ClassVar[str] = "data.label_column"
    # Settings only this task reads, in the same form: every other task refuses them unless they are left neutral.
    own_settings: ClassVar[dict[str, tuple[Any, str]]] = {}

    # --- config --------------------------------------------------------------------------------------------------
    def check_config(self, config: RunConfig) -> None:
        """Refuse settings that mean nothing for this task, with the fix (a ValueError, shown under the config)."""
        from core.tasks import TASKS, get_task

        others = {path: (neutral, f"{what} of {name}") for name in TASKS if name != self.name
                  for path, (neutral, what) in get_task(name).own_settings.items()}
        for path, (neutral, why) in {**others, **self.unused_settings}.items():
            node: Any = config
            for part in path.split("."):
                node = getattr(node, part)
            if node != neutral:
                shown = "null" if neutral is None else str(neutral).lower() if isinstance(neutral, bool) else neutral
                raise ValueError(f"{path} {why}, and this config's task is {self.name}; set {path}: {shown}, or "
                                 "choose the task it belongs to")

    def reported_names(self, metrics: list[str], num_outputs: int) -> list[str]:
        """The metric names a run reports for the configured ones (some bring companions along)."""
        return list(metrics)

    def for_run(self, config: RunConfig) -> Task:
        """This task as a run's settings shape how its outputs are read during training (multi-label: the
        decision threshold, training.threshold); the engines ask it for their metrics. The task itself by default."""
        return self

    def for_model(self, meta: dict[str, Any]) -> Task:
        """This task as a saved model's task.json (Task.model_meta, after_training) shapes how its outputs are read
        (multi-label: the thresholds per label); evaluation asks it. The task itself by default."""
        return self

    # --- data ----------------------------------------------------------------------------------------------------
    @abstractmethod
    def encode_labels(self, raw: Any, sources: dict[str, SplitSource], label: str, cfg: DataConfig) -> LabelEncoding:
        """Every split's label column checked and encoded (vectorised); errors name file, row and fix. `label` is
        None only for a task whose label_columns() names the columns instead."""

    def prepare_splits(self, cfg: DataConfig, raw: Any, sources: dict[str, SplitSource]) -> TaskSplits | None:
        """Every raw split checked and standardised the task's own way (text-generation: prompt + completion,
        messages or text); None: core.data.prepare finds text and label columns and encode_labels encodes them."""
        return None

    def prepared_stats(self, train: Any, names: list[str], cfg: DataConfig) -> dict[str, Any]:
        """label_stats of the prepared training split (a Dataset), kept in PreparedData."""
        from core.data.arrow import arrow_column, column_array

        return self.label_stats(column_array(arrow_column(train, "label")), names, cfg)

    def label_columns(self, cfg: DataConfig) -> list[str] | None:
        """Columns that together hold each row's labels, where the config names several (multi-label's
        data.label_columns); then data.label_column is neither needed nor detected. None: one label column."""
        return None

    def columns(self, cfg: DataConfig, raw: Any, sources: dict[str, SplitSource]) -> tuple[str, str | None, str] | None:
        """The (text, text pair, label) columns where this task finds them its own way (token-classification: lists
        of words and of tags); None: core.data.prepare finds text and label columns as for classification."""
        return None

    def found_columns(self, prepared: PreparedData) -> dict[str, str | None]:
        """The data settings (keys of DataConfig) that name the columns a run found, written into its config.yaml so
        the run directory says exactly what was trained on."""
        return {"text_column": prepared.text_column, "text_pair_column": prepared.text_pair_column,
                "label_column": prepared.label_column}

    def references(self, column: list[Any]) -> Any:
        """A split's stored labels (PreparedData's `label` column, as a list) as evaluate() and example() take them."""
        import numpy as np

        return np.asarray(column)

    @abstractmethod
    def strata(self, labels: np.ndarray) -> np.ndarray | None:
        """What the held-out validation split is stratified on (None: a plain shuffle)."""

    @abstractmethod
    def label_stats(self, train_labels: np.ndarray, names: list[str], cfg: DataConfig) -> dict[str, Any]:
        """Plain-JSON facts about the training labels (counts, or a score's distribution and its scaling), kept in
        PreparedData (and so in the handoff to other processes)."""

    @abstractmethod
    def summary(self, prepared: PreparedData) -> str:
        """One line on the labels for logs and screens: "3 labels", "scores 1 to 5 (median 4) in 'stars'"."""

    @abstractmethod
    def label_overview(self, ds: Any, column: str, label_names: list[str] | None) -> LabelOverview:
        """The label column of raw training data (before prepare_data), for the dataset step and `inspect`."""

    def suggest_label(self, columns: list[str]) -> str | None:
        """The column this task would take its labels (or answers) from by its name alone, for the dataset step
        and `inspect` when none is set; None: the generic guess (core.data.inspection)."""
        return None

    def claims_column(self, info: ColumnInfo) -> str | None:
        """Why a label column's values look like this task's and not another's ("'tags' holds lists of labels"), or
        None: the dataset step and `inspect` suggest the task from it. The default task claims nothing."""
        return None

    def check_prepared(self, config: RunConfig, prepared: PreparedData) -> list[str]:
        """Warnings about the prepared data for these settings; raises for settings the data rules out."""
        return []

    def class_counts(self, prepared: PreparedData) -> list[int]:
        """Training examples per output, where that means something (class weights, the wizard's balance bars)."""
        return []

    # --- tokens --------------------------------------------------------------------------------------------------
    def label_transform(self, prepared: PreparedData) -> Any:
        """A function applied to each batch of labels as they are tokenized (None: stored as they are)."""
        return None

    def encode_batch(self, tokenizer: Any, batch: dict[str, list[Any]], tok: Any, padding: Any, transform: Any,
                     split: str) -> dict[str, Any]:
        """One Dataset.map batch of the standard columns (text[, text_pair], label) as model inputs and `labels`."""
        enc = tokenizer(batch["text"], batch.get("text_pair"), truncation=tok.truncation, max_length=tok.max_length,
                        padding=padding, verbose=False)
        out = dict(enc)
        out["labels"] = batch["label"] if transform is None else transform(batch["label"])
        return out

    def measure_lengths(self, prepared: PreparedData, tokenizer: Any, max_length: int, batch_size: int = 16,
                        truncation: bool = True, facts: Any = None) -> Any:
        """core.tokenization.LengthStats of (a sample of) the training examples as the model reads them, for the
        tokenizer step and plain mode: the texts (and pairs) by default. `facts`: this task's length_facts when
        they are measured already, for a task whose lengths are among them (so they are not measured twice)."""
        from core.tokenization import dataset_length_stats

        train = prepared.dataset["train"]
        pair = "text_pair" if "text_pair" in train.column_names else None
        return dataset_length_stats(train, tokenizer, max_length, batch_size=batch_size, truncation=truncation,
                                    text_column="text", pair_column=pair)

    def first_example_ids(self, prepared: PreparedData, tokenizer: Any) -> list[int]:
        """The first training example's token ids, untruncated, with the special tokens the model sees."""
        train = prepared.dataset["train"]
        if not len(train):
            return []
        first = train[0]
        pair = first.get("text_pair")
        words = isinstance(first["text"], list)  # a sentence as its words (token-classification)
        return list(tokenizer(first["text"], pair, truncation=False, is_split_into_words=words)["input_ids"])

    def length_facts(self, prepared: PreparedData, tokenizer: Any) -> Any:
        """What this task needs to know about the training texts' token lengths beyond LengthStats, measured once
        when the tokenizer step opens (token-classification: where each entity ends). None by default."""
        return None

    def describe_lengths(self, facts: Any, max_length: int, truncation: bool) -> list[str]:
        """Lines for the tokenizer step about what max_length does to this task's labels, from length_facts; cheap
        (called as max_length is typed)."""
        return []

    def collator(self, tokenizer: Any, pad_to_multiple_of: int | None, return_tensors: str) -> Any:
        """What pads a batch of tokenized rows (and, where labels are sequences, the labels)."""
        import transformers

        return getattr(transformers, self.collator_class)(tokenizer, padding="longest",
                                                          pad_to_multiple_of=pad_to_multiple_of,
                                                          return_tensors=return_tensors)

    def gather_outputs(self, outputs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """An evaluation's raw outputs and labels (rows in the split's order, padded alike where they are sequences)
        as compute_metrics, the evaluation report and after_training read them. As they are by default;
        token-classification keeps each word's first sub-token."""
        return outputs, labels

    def cache_key(self, prepared: PreparedData) -> str:
        """What the tokenized labels depend on besides the data, for the tokenized-split cache's name."""
        return self.name

    # --- model ---------------------------------------------------------------------------------------------------
    def num_outputs(self, prepared: PreparedData) -> int:
        return len(prepared.label_names)

    def label_shape(self, batch: int, names: list[str], length: int) -> tuple[int, ...]:
        """The shape of a batch of labels for inputs of `length` tokens, as the model takes them (of dtype
        label_dtype), e.g. for the batch probe."""
        return (batch,)

    def head_config(self, names: list[str]) -> dict[str, Any]:
        """Keyword arguments for from_pretrained that shape the head: size, label names and problem_type."""
        id2label = dict(enumerate(names))
        return {"num_labels": len(names), "id2label": id2label, "label2id": {n: i for i, n in id2label.items()},
                "problem_type": self.problem_type}

    def check_hf_model(self, model_config: Any, name: str) -> None:
        """Refuse, before any work, a model type transformers has no head for this task for."""
        from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES

        from core.errors import ModelError

        model_type = getattr(model_config, "model_type", None)
        if model_type not in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES:
            raise ModelError(
                f"model {name} ({model_type}) has no sequence-classification head in transformers, which "
                f"{self.name} trains",
                "choose a text encoder such as bert, distilbert, roberta, deberta-v2 or xlm-roberta",
            )

    def trainer_classes(self) -> tuple[Any, Any, dict[str, Any]]:
        """(the Trainer class, its arguments class, arguments of that class beyond TrainingArguments') the trainer
        engine trains this task with: transformers' Trainer by default; text-generation: TRL's SFTTrainer."""
        from transformers import Trainer, TrainingArguments

        return Trainer, TrainingArguments, {}

    def training_weights(self, config: RunConfig, prepared: PreparedData) -> list[float] | None:
        """training.class_weights resolved for this data (None: the loss weighs every example alike)."""
        return None

    def describe_weights(self, weights: list[float], prepared: PreparedData) -> str:
        return ", ".join(f"{w:.3g}" for w in weights)

    def torch_loss(self, logits: Any, labels: Any, weight: Any) -> Any:
        """The weighted training loss in float32 (only called with weights; the model's own loss otherwise)."""
        raise NotImplementedError(f"{self.name} has no weighted loss")

    def finalize_model(self, model: Any, prepared: PreparedData) -> None:  # noqa: B027
        """Last changes to the trained torch model before it is saved (after LoRA is merged)."""

    def finalize_saved(self, model: Any, tokenizer: Any) -> None:  # noqa: B027
        """Settings of the saved model and tokenizer that generation from the directory reads (text-generation:
        where an answer ends); nothing by default."""

    def prepare_tokenizer(self, tokenizer: Any) -> None:  # noqa: B027
        """Changes to the run's tokenizer before it tokenizes anything (text-generation: data.chat_template becomes
        its own, and is saved with it). Called on the task for_run gives."""

    checks_tokenizer: ClassVar[bool] = False  # check_tokenizer refuses something: `validate` loads the tokenizer

    def check_tokenizer(self, config: RunConfig, tokenizer: Any) -> None:  # noqa: B027
        """Refuse a tokenizer that cannot write this config's data (a ModelError naming the fix), before a run:
        core.launch.preflight (`validate`, the wizard) calls it for a task that checks_tokenizer."""

    def outputs_as_saved(self, outputs: np.ndarray, prepared: PreparedData) -> np.ndarray:
        """Outputs of the model as it trains, as the saved model gives them (text-regression folds its label
        scaling into the head only when saving)."""
        return outputs

    def model_meta(self, prepared: PreparedData) -> dict[str, Any]:
        """What predict needs to know about a saved model beyond its weights: written as task.json."""
        return {"task": self.name, "labels": list(prepared.label_names)}

    def after_training(self, outputs: np.ndarray | None, prepared: PreparedData, config: RunConfig) -> dict[str, Any]:
        """What the final model's validation outputs settle about it (multi-label: thresholds tuned per label).
        The run process calls it once the model is saved, with the raw outputs (logits) of the engine's final
        validation in the split's row order (None when there are none), and merges the plain-JSON result into the
        model's task.json and into the `finished` event, before the evaluation report is made. Nothing by default."""
        return {}

    # --- keras ---------------------------------------------------------------------------------------------------
    # What the keras engine trains on a KerasHub backbone, which decides the model types it converts
    # (core.engines.keras_convert): "classifier" (an encoder with a head, keras_model's) or "causal_lm" (a decoder
    # with its own LM head).
    keras_kind: ClassVar[str] = "classifier"

    def keras_model(self, backbone: Any, num_outputs: int, dropout: float | None) -> Any:
        """The Keras model this task trains on a KerasHub backbone; None: KerasHub's TextClassifier (one output
        vector per text), which fits every task with a sequence-classification head."""
        return None

    @abstractmethod
    def keras_loss(self, keras: Any, weights: list[float] | None) -> Any:
        """The Keras training loss (weighted where weights are given)."""

    def keras_labels(self, labels: np.ndarray) -> np.ndarray:
        """Labels as Keras fit wants them next to the model's outputs (see keras_label_spec)."""
        return labels.astype("int32")

    def keras_label_spec(self) -> tuple[tuple[int | None, ...], str]:
        """The shape and dtype of a batch of keras_labels."""
        return (None,), "int32"

    def finalize_keras_model(self, model: Any, prepared: PreparedData) -> None:  # noqa: B027
        """Last changes to the trained Keras model before it is saved."""

    def save_keras_model(self, model: Any, source: Path, out_dir: Path, tokenizer: Any, prepared: PreparedData) -> bool:
        """Write the trained Keras model into out_dir in a format of the task's own and return True (text-generation:
        transformers format, converted back, so the saved model reads as the PyTorch engines leave it); `source` is
        the checkpoint directory it was converted from. False (the default): the engine saves model.keras with
        keras_model.json, which core.predict reads."""
        return False

    # --- outputs -------------------------------------------------------------------------------------------------
    @abstractmethod
    def compute_metrics(self, outputs: np.ndarray, labels: np.ndarray, metrics: list[str],
                        prepared: PreparedData) -> dict[str, float]:
        """The configured metrics of a whole split from the model's raw outputs (logits) and the stored labels."""

    def metrics_from_loss(self, loss: float) -> dict[str, float]:
        """Metrics that follow from an evaluation's mean loss alone (text-generation: perplexity)."""
        return {}

    def validation_samples(self, model: Any, tokenizer: Any, prepared: PreparedData) -> list[dict[str, Any]] | None:
        """What the model answers at an evaluation, for people to read as it learns (text-generation: greedy answers
        to a few fixed validation prompts, with the data's answers): the engines write them as a `sample` event
        after each validation evaluation, from the main process. None: nothing."""
        return None

    def evaluate_model(self, predictor: Any, prepared: PreparedData, split: str, metric_names: list[str],
                       metrics: dict[str, float] | None, limit: int) -> tuple[Evaluation, list[dict[str, Any]]] | None:
        """For a task that keeps no outputs: the Evaluation of a split (its metrics given by the engine, or measured
        with the predictor's model when None) and the rows of its predictions.jsonl. None: scored from outputs."""
        return None

    @abstractmethod
    def eval_loss(self, outputs: np.ndarray, labels: np.ndarray) -> float:
        """The mean evaluation loss from raw outputs, as the torch models compute it (for Keras' evaluation)."""

    def text_scores(self, predictor: Any, texts: list[Any], pairs: list[str] | None, batch_size: int) -> Any:
        """scores() for texts (or pairs) a core.predict.Predictor answers: tokenized as in training, in batches."""
        import numpy as np

        if not all(isinstance(t, str) for t in [*texts, *(pairs or [])]):
            raise TypeError("texts and pairs must be strings")
        chunks = []
        step = max(1, int(batch_size))
        for start in range(0, len(texts), step):
            enc = predictor.tokenizer(
                texts[start:start + step], list(pairs[start:start + step]) if pairs is not None else None,
                truncation=predictor.settings.truncation, max_length=predictor.settings.max_length, padding=True,
                return_tensors="np",
            )
            chunks.append(self.scores(np.asarray(predictor.logits(enc), dtype=np.float64)))
        if not chunks:
            return self.scores(np.zeros((0, len(predictor.labels)), dtype=np.float64))
        return np.concatenate(chunks)

    @abstractmethod
    def scores(self, outputs: np.ndarray) -> np.ndarray:
        """Raw outputs as people read them: probabilities, or scores."""

    @abstractmethod
    def answers(self, scores: np.ndarray, meta: dict[str, Any]) -> list[dict[str, Any]]:
        """One answer per row from scores(), e.g. {label, score, probabilities} or {score}. meta is the model's
        task.json, with "inputs": the texts answered, for answers that point into them (entities)."""

    @abstractmethod
    def format_answer(self, answer: dict[str, Any], text: str) -> str:
        """One line of `finetune-tui predict` output for a text (tab-separated, the answer first)."""

    @abstractmethod
    def answer_json(self, answer: dict[str, Any]) -> dict[str, Any]:
        """The answer's keys in `finetune-tui predict --json` and in `predict --input` JSONL rows."""

    @abstractmethod
    def file_columns(self, answers: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, list[Any]]:
        """Columns `predict --input` adds to a csv/tsv file."""

    @abstractmethod
    def answers_summary(self, answers: list[dict[str, Any]]) -> str:
        """One line on a file's answers: "pos=12, neg=30", "scores 1.2 to 4.9 (mean 3.1)"."""

    # --- evaluation ----------------------------------------------------------------------------------------------
    @abstractmethod
    def evaluate(self, names: list[str], metrics: list[str], labels: np.ndarray, scores: np.ndarray) -> Evaluation:
        """Metrics and the task's report details for one split (Evaluation without rows, split or model)."""

    @abstractmethod
    def example(self, names: list[str], label: Any, scores: np.ndarray) -> dict[str, Any]:
        """One row's label, prediction and confidence for predictions.jsonl (beside index and text)."""

    @abstractmethod
    def most_wrong(self, labels: np.ndarray, scores: np.ndarray, limit: int) -> list[tuple[int, dict[str, Any]]]:
        """(row, extra fields) of the worst predictions, worst first."""

    @abstractmethod
    def report_sections(self, ev: Evaluation) -> list[ReportSection]:
        """The task's part of `finetune-tui evaluate`'s text (after the metrics)."""

    def mistakes_title(self) -> str:
        return "worst predictions"

    @abstractmethod
    def mistake_line(self, row: dict[str, Any]) -> str:
        """How one most_wrong row is introduced in the text report, before its text."""

    @abstractmethod
    def plot_report(self, fig: Any, ax: Any, ev: Evaluation) -> None:
        """The report.png panel beside the loss curves."""

    # --- screens -------------------------------------------------------------------------------------------------
    @abstractmethod
    def results_grid(self, ev: Evaluation) -> Grid | None:
        """The monitor's view of a finished run's evaluation."""

    streams_answers: ClassVar[bool] = False  # the Try screen answers on Enter, piece by piece (stream_answer)

    def stream_answer(self, predictor: Any, text: str, stop: Any) -> Iterator[str]:
        """The answer to one text as it is made, piece by piece, ending early once stop() is True (tasks that
        stream_answers; the others answer at once through predict)."""
        raise NotImplementedError(f"{self.name} answers at once")

    @abstractmethod
    def try_intro(self, meta: dict[str, Any]) -> str:
        """The Try-the-model screen's line once the model is loaded."""

    @abstractmethod
    def try_view(self, answer: dict[str, Any], meta: dict[str, Any]) -> TryView:
        """The Try-the-model screen's view of one answer."""

    # --- exported scripts ----------------------------------------------------------------------------------------
    def export_dir(self) -> Path:
        """The task's Jinja fragments for `finetune-tui export --to script`: the export/ folder beside its module.

        The engine templates (core/export_templates) include them as "task/<file>", so a script's task-specific
        code comes from here and its engine-shaped code (optimizer, schedule, loop, checkpoints) from there:
        labels.py.j2   module constants after LABEL_COLUMN: LABELS (what the outputs are called) and the task's own
        data.py.j2     module functions: label_values(table) (a split's label column as the task stores it),
                       validation_strata(labels), write_task_file(directory) (task.json, as model_meta)
        metrics.py.j2  METRICS and compute_metrics(outputs, labels) (raw outputs, labels as the model trains on them)
        head.py.j2     the head's from_pretrained keyword lines (the transformers engines)
        torch.py.j2    finish(model, directory) before the model is saved; weighted_loss(logits, labels, weight)
                       where training.class_weights applies (the transformers engines)
        keras.py.j2    NUM_CLASSES, LABEL_SPEC, keras_labels(labels), training_loss(train), eval_loss(outputs,
                       labels) and finish(model, directory) (the keras engine); a task evaluated by its loss
                       alone needs no NUM_CLASSES or eval_loss, and one with keras_kind causal_lm saves its own
                       format in finish (Task.save_keras_model's)
        and, where the task needs them, imports.py.j2 (import lines), tokenized.py.j2 (lines of main() right
        after tokenization, with `data` and `tokenized` in scope), tokenize.py.j2 (main()'s tokenization itself,
        making `tokenized` from `data`) and standardise.py.j2 (standardise(table): a split's columns, in place of
        text[, text_pair] and label). A task evaluated by its loss alone (keeps_outputs False) gives, in
        metrics.py.j2, loss_metrics(loss) in place of compute_metrics."""
        import sys
        from pathlib import Path

        module = sys.modules[type(self).__module__]
        return Path(str(module.__file__)).parent / "export"

    def script_context(self, config: RunConfig, prepared: PreparedData) -> dict[str, Any]:
        """What the task's fragments read as `task.<key>`, decided at export time: at least `libraries` (what the
        script needs beyond the engine's) and `datasets_imports` (names the script imports from datasets). The
        engine templates also read, where a task gives them: `collator` (the expression that makes the batch
        collator, in place of Task.collator_class(tokenizer)) and `tokenized_labels` (its tokenize.py.j2 names the
        labels column `labels` itself)."""
        return {"libraries": [], "datasets_imports": []}


def inlined_source(module: Any) -> str:
    """A plain-Python module's source without its docstring, for an exported script to inline (so the script computes
    with this very code, not a copy kept by hand)."""
    import ast
    from pathlib import Path

    source = Path(module.__file__).read_text(encoding="utf-8")
    body = ast.parse(source).body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        source = "\n".join(source.splitlines()[body[0].end_lineno or 0:])
    return source.strip("\n")


def report_title(ev: Evaluation) -> str:
    """The title of a task's report.png panel: the split, its size and its metrics."""
    shown = ", ".join(f"{k} {v:.3f}" for k, v in ev.metrics.items())
    return f"{ev.split} ({ev.size}): {shown}"
