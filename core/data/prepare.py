"""From a DataConfig to PreparedData: load every split, find the columns, check them, encode the labels, hold out
validation. Everything stays in Arrow: a million rows cost about their file's size, not a Python object per cell."""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.config import DataConfig
from core.data.arrow import SplitSource, arrow_column, column_kind, make_dataset, true_rows, where
from core.data.files import load_file
from core.data.inspection import LABEL_NAMES, data_hint, suggest_columns
from core.data.splitting import split_and_subset
from core.errors import DataError
from core.tasks import DEFAULT_TASK, get_task

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

    from core.tasks.base import LabelEncoding


@dataclass
class PreparedData:
    dataset: DatasetDict  # train, validation[, test]; columns text[, text_pair], label (as the task encodes it)
    label_names: list[str]  # the task's outputs: class names, or the score column's name
    text_column: str
    text_pair_column: str | None
    label_column: str | None  # None where several columns hold the labels (the task's label_columns)
    sizes: dict[str, int]
    source: str = ""  # "train.csv" or "hub glue/mrpc"
    validation_source: str = ""  # where validation came from, e.g. "10% of train (stratified)"
    notes: list[str] = field(default_factory=list)  # things the user may want to know (e.g. how a file was read)
    class_counts: list[int] = field(default_factory=list)  # training examples per class id (tasks with classes)
    task: str = DEFAULT_TASK
    label_stats: dict[str, Any] = field(default_factory=dict)  # the task's facts about the training labels

    @property
    def is_pair(self) -> bool:
        return self.text_pair_column is not None

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


def load_raw(cfg: DataConfig) -> DatasetDict:
    """The raw splits: "train" and, where given, "validation" and "test", with the file's own columns."""
    return load_sources(cfg)[0]


def load_sources(cfg: DataConfig) -> tuple[DatasetDict, dict[str, SplitSource]]:
    """The raw splits and where each came from (with notes on how it was read)."""
    from datasets import DatasetDict

    from core.data.hub_datasets import load_hub

    if cfg.hub is not None:
        return load_hub(cfg.hub)
    files = {"train": cfg.train_file, "validation": cfg.validation_file, "test": cfg.test_file}
    splits: dict[str, Dataset] = {}
    sources: dict[str, SplitSource] = {}
    for split, path in files.items():
        if path is None:
            continue
        splits[split], sources[split] = load_file(path, cfg.format, cfg.header, cfg.column_names, cfg.quoting,
                                                  cfg.tags_column_index)
    return DatasetDict(splits), sources


def source_notes(sources: dict[str, SplitSource]) -> list[str]:
    return list(dict.fromkeys(note for src in sources.values() for note in src.notes))


def prepare_data(cfg: DataConfig, task: str = DEFAULT_TASK) -> PreparedData:
    """Load, check and standardise: splits train/validation[/test], columns text[, text_pair], label (the task's
    encoding: class ids, scores).

    Columns left null in the config are detected; a detected text column brings its detected pair along
    (sentence1 + sentence2), while a configured text_column with no text_pair_column means single texts."""
    raw, sources = load_sources(cfg)
    for split, ds in raw.items():
        if len(ds) == 0:
            raise DataError(f"the {split} data {sources[split].desc} has no rows", f"give {split} data with examples")
    the_task = get_task(task)
    own = the_task.prepare_splits(cfg, raw, sources)
    if own is not None:
        standard, names, notes = own.splits, own.label_names, own.notes
        text, pair, label = own.text_column, None, None
    else:
        text, pair, label = the_task.columns(cfg, raw, sources) or _resolve_columns(cfg, raw, sources,
                                                                                  the_task.label_columns(cfg))
        labels = the_task.encode_labels(raw, sources, label, cfg)
        standard = {split: _standardise(ds, text, pair, labels.arrays[split], labels, task)
                    for split, ds in raw.items()}
        names, notes = labels.names, labels.notes
    del raw  # the file's other columns are not needed any more
    dataset, validation_source = split_and_subset(cfg, standard, sources, the_task.strata)
    if cfg.hub is not None:
        source = cfg.hub.name + (f"/{cfg.hub.config}" if cfg.hub.config else "")
    else:
        source = str(cfg.train_file)
    prepared = PreparedData(
        dataset=dataset, label_names=names, text_column=text, text_pair_column=pair, label_column=label,
        sizes={k: len(v) for k, v in dataset.items()}, source=source, validation_source=validation_source,
        notes=source_notes(sources) + notes, task=task, label_stats=the_task.prepared_stats(dataset["train"], names,
                                                                                          cfg),
    )
    prepared.class_counts = the_task.class_counts(prepared)
    return prepared


def _resolve_columns(cfg: DataConfig, raw: DatasetDict, sources: dict[str, SplitSource],
                     label_columns: list[str] | None = None) -> tuple[str, str | None, str | None]:
    """The text, pair and label columns, configured or detected; with `label_columns` (the task's, e.g.
    data.label_columns) those hold the labels and the label column is None."""
    train = raw["train"]
    label_needed = cfg.label_column is None and not label_columns
    suggestion = suggest_columns(train) if cfg.text_column is None or label_needed else None
    columns = ", ".join(train.column_names)
    if cfg.text_column is not None:
        text, pair = cfg.text_column, cfg.text_pair_column
    else:
        assert suggestion is not None
        text, pair = suggestion.text, cfg.text_pair_column or suggestion.text_pair
        if text is None:
            hint = data_hint(train)  # e.g. conversations, which are text-generation's, not a text to classify
            raise DataError(f"cannot tell which column of {sources['train'].desc} holds the text (columns: {columns})",
                            "set data.text_column to the column with the text"
                            + (f"; or, as {hint.reason}, set task: {hint.task}" if hint else ""))
    label: str | None
    if label_columns:
        label = None
    elif cfg.label_column is not None:
        label = cfg.label_column
    else:
        assert suggestion is not None
        label = suggestion.label
        if label is None:  # a list of labels per row, under a label's name (multi-label data)
            label = next((c for c in train.column_names
                          if c.lower() in LABEL_NAMES and column_kind(train, c) == "list"), None)
        if label is None or label in (text, pair):
            raise DataError(
                f"cannot tell which column of {sources['train'].desc} holds the labels (columns: {columns})",
                "set data.label_column to the column with the labels",
            )
    roles = [("data.text_column", text), ("data.text_pair_column", pair), ("data.label_column", label)]
    roles += [("data.label_columns", c) for c in label_columns or []]
    used = [c for _, c in roles if c is not None]
    if len(set(used)) < len(used):
        shown = f"label={label}" if label is not None else f"label_columns={', '.join(label_columns or [])}"
        raise DataError(f"the same column is used twice: text={text}, text_pair={pair}, {shown}",
                        "choose a different column for each role")
    for split, ds in raw.items():
        for key, col in roles:
            if col is not None and col not in ds.column_names:
                close = difflib.get_close_matches(col, ds.column_names, n=1, cutoff=0.5)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise DataError(
                    f"column '{col}' ({key}) is not in the {split} data {sources[split].desc}; "
                    f"its columns are: {', '.join(ds.column_names)}",
                    f"{hint}set {key} to one of those columns",
                )
        for key, col in roles[:2]:
            if col is not None:
                _check_text_column(ds, col, key, split, sources[split])
    return text, pair, label


def _check_text_column(ds: Dataset, col: str, key: str, split: str, src: SplitSource) -> None:
    import pyarrow.compute as pc

    kind = column_kind(ds, col)
    if kind != "string":
        values = arrow_column(ds, col).drop_null().slice(0, 3).to_pylist()
        what = "numbers" if kind.startswith(("int", "uint", "float", "double", "bool")) else f"{kind} values"
        raise DataError(
            f"column '{col}' ({key}) in {src.desc} holds {what} (e.g. {', '.join(map(str, values))}), not text",
            f"set {key} to the column with the text; the columns are: {', '.join(ds.column_names)}",
        )
    arr = arrow_column(ds, col)
    idx = true_rows(pc.is_null(arr)) if arr.null_count else []
    if len(idx):
        raise DataError(
            f"column '{col}' ({key}) in {src.desc} has {len(idx)} missing value{'s' if len(idx) > 1 else ''}, "
            f"at {where(idx, src)}",
            "fill in the text on those rows or delete them",
        )


def _standardise(ds: Dataset, text: str, pair: str | None, ids: Any, labels: LabelEncoding,
                 task: str) -> Dataset:
    import pyarrow as pa
    from datasets import Features, List, Value

    texts = arrow_column(ds, text)
    if pa.types.is_list(texts.type) or pa.types.is_large_list(texts.type):  # words per row (token-classification)
        columns = {"text": texts.cast(pa.list_(pa.string()))}
        features: dict[str, Any] = {"text": List(Value("string"))}
    else:
        columns = {"text": texts.cast(pa.string())}
        features = {"text": Value("string")}
    if pair is not None:
        columns["text_pair"] = arrow_column(ds, pair).cast(pa.string())
        features["text_pair"] = Value("string")
    if not hasattr(ids, "ndim"):  # an Arrow list per row, of its own length (token-classification's tag ids)
        columns["label"] = pa.chunked_array([ids])
        digest = hashlib.sha256(b"".join(b.to_pybytes() for b in ids.buffers() if b)).hexdigest() + str(len(ids))
    else:
        if ids.ndim == 2:  # a vector per row (multi-label's multi-hot labels): a fixed-size list, no object per row
            columns["label"] = pa.chunked_array([pa.FixedSizeListArray.from_arrays(pa.array(ids.reshape(-1)),
                                                                                   ids.shape[1])])
        else:
            columns["label"] = pa.chunked_array([pa.array(ids)])
        digest = hashlib.sha256(ids.tobytes()).hexdigest()
    features["label"] = labels.feature
    key = f"{ds._fingerprint}|{text}|{pair}|{task}|{labels.names}|{digest}"
    return make_dataset(pa.table(columns), key, Features(features))
