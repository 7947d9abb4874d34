"""What the wizard and `finetune-tui inspect` show about data before anything is trained: rows per split, each
column's kind and examples, the suggested text / pair / label columns, and the task's overview of the labels (the
class balance, or the scores' spread)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.data.arrow import arrow_column, column_kind
from core.tasks import DEFAULT_TASK, TASKS, get_task

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

    from core.tasks.base import LabelOverview

# Names people give columns, most specific first. Pairs are matched before single texts.
PAIR_NAMES = [
    ("sentence1", "sentence2"), ("premise", "hypothesis"), ("question", "answer"), ("question1", "question2"),
    ("question", "sentence"), ("question", "passage"), ("question", "context"), ("query", "passage"),
    ("query", "document"), ("text_a", "text_b"), ("text1", "text2"), ("sentence_a", "sentence_b"),
    ("sentence", "sentence2"), ("anchor", "positive"),
]
TEXT_NAMES = [
    "text", "sentence", "review", "content", "document", "body", "comment", "tweet", "message", "utterance",
    "review_text", "sms", "abstract", "description", "question", "title", "input", "prompt",
]
LABEL_NAMES = [
    "label", "labels", "class", "category", "target", "sentiment", "gold_label", "intent", "topic", "emotion",
    "y", "class_label", "stars", "rating", "score", "similarity", "tags", "emotions", "topics", "categories",
]


@dataclass
class ColumnSuggestion:
    text: str | None
    text_pair: str | None
    label: str | None
    reasons: dict[str, str] = field(default_factory=dict)  # role -> why, e.g. "named 'label'"


@dataclass
class ColumnInfo:
    name: str
    dtype: str  # "string", "int64", "float64", "bool", "class_label", "list", ...
    missing: int
    unique: int | None  # None where values cannot be compared (lists, structs)
    examples: list[str]
    mean_chars: float | None  # mean length of the text, for string columns
    class_names: list[str] | None = None  # for a ClassLabel column
    mean_words: float | None = None  # mean number of words, for string columns

    def holds_turns(self) -> bool:
        """Lists of {role, content} objects: a conversation per row (chat data), not lists of labels."""
        return self.dtype == "list" and bool(self.examples) and all(
            "'role'" in e and "'content'" in e for e in self.examples)

    def looks_like_prose(self, rows: int) -> bool:
        """Sentences rather than ids, codes or labels: several words a value, and values that rarely repeat."""
        return (self.dtype == "string" and (self.mean_words or 0) >= 3 and (self.mean_chars or 0) >= 15
                and self.unique is not None and self.unique >= 0.5 * max(rows - self.missing, 1))


@dataclass
class TaskHint:
    task: str
    reason: str  # "'tags' holds lists of labels"


@dataclass
class DatasetInfo:
    splits: dict[str, int]
    columns: list[ColumnInfo]
    sample_rows: list[dict[str, Any]]
    suggestion: ColumnSuggestion
    labels: LabelOverview | None  # the task's view of the label column (class balance, scores)
    label_column: str | None = None
    notes: list[str] = field(default_factory=list)  # how the files were read, e.g. with no quote processing
    task_hint: TaskHint | None = None  # the task the label column's values call for, and why

    @property
    def class_balance(self) -> dict[str, int]:
        """Rows per bar of the label overview: per class for text-classification."""
        return dict(self.labels.counts) if self.labels is not None else {}

    def column(self, name: str) -> ColumnInfo | None:
        return next((c for c in self.columns if c.name == name), None)


def _train(ds: DatasetDict | Dataset) -> Dataset:
    if hasattr(ds, "features"):
        return ds  # a Dataset
    return ds["train"] if "train" in ds else next(iter(ds.values()))


def _column_info(ds: Dataset, name: str) -> ColumnInfo:
    import pyarrow.compute as pc

    col = arrow_column(ds, name)
    kind = column_kind(ds, name)
    missing = col.null_count
    unique: int | None
    mean_chars = mean_words = None
    try:
        unique = pc.count_distinct(col).as_py()
    except (NotImplementedError, ValueError, TypeError):
        unique = None
    values = col.drop_null().slice(0, 200).to_pylist()
    if kind == "string":
        blank = pc.sum(pc.equal(pc.utf8_trim_whitespace(col), "")).as_py() or 0
        missing += blank
        mean_chars = pc.mean(pc.utf8_length(col)).as_py()
        mean_words = pc.mean(pc.count_substring_regex(pc.utf8_trim_whitespace(col), r"\s+")).as_py()
        mean_words = None if mean_words is None else mean_words + 1
    names = ds.features[name].names if kind == "class_label" else None
    examples: list[str] = []
    for v in values:
        shown = names[v] if names is not None and isinstance(v, int) and 0 <= v < len(names) else v
        text = str(shown)
        if text not in examples:
            examples.append(text if len(text) <= 80 else text[:77] + "...")
        if len(examples) == 3:
            break
    return ColumnInfo(name, kind, missing, unique, examples, mean_chars, names, mean_words)


def suggest_columns(ds: DatasetDict | Dataset) -> ColumnSuggestion:
    """Guess the text, pair and label columns: by name first, then by content (label: few distinct values;
    text: the longest strings)."""
    train = _train(ds)
    infos = {name: _column_info(train, name) for name in train.column_names}
    return _suggest(infos, len(train))


def _suggest(infos: dict[str, ColumnInfo], rows: int) -> ColumnSuggestion:
    by_norm = {_norm(n): n for n in infos}
    strings = [n for n, c in infos.items() if c.dtype == "string"]
    reasons: dict[str, str] = {}

    label = next((by_norm[n] for n in LABEL_NAMES if n in by_norm and _can_be_label(infos[by_norm[n]])), None)
    if label is not None:
        reasons["label"] = f"named '{label}'"
    else:
        label = next((n for n, c in infos.items() if c.dtype == "class_label"), None)
        if label is not None:
            reasons["label"] = "a class-label column"
    if label is None:
        label = next((n for n, c in infos.items() if c.dtype == "list"), None)
        if label is not None:
            reasons["label"] = "a column of lists"
    if label is None:
        limit = max(2, min(100, rows // 2))
        candidates = [
            (c.unique, -(c.mean_chars or 0), n) for n, c in infos.items()
            if _can_be_label(c) and c.unique is not None and 2 <= c.unique <= limit and (c.mean_chars or 0) < 40
        ]
        if candidates:
            label = min(candidates)[2]
            reasons["label"] = f"few distinct values ({infos[label].unique})"

    text = pair = None
    for a, b in PAIR_NAMES:
        if a in by_norm and b in by_norm and {by_norm[a], by_norm[b]} <= set(strings):
            text, pair = by_norm[a], by_norm[b]
            reasons["text"] = reasons["text_pair"] = f"a sentence pair named '{text}' and '{pair}'"
            break
    if text is None:
        text = next((by_norm[n] for n in TEXT_NAMES if n in by_norm and by_norm[n] in strings and by_norm[n] != label),
                    None)
        if text is not None:
            reasons["text"] = f"named '{text}'"
    if pair is None:
        # Names say nothing of a pair, but two columns of sentences (and no third) are one: premise/hypothesis under
        # other names, a question and its passage. The first in the file is the text, as in every GLUE task.
        prose = [n for n in strings if n != label and infos[n].looks_like_prose(rows)]
        if len(prose) == 2 and text in (None, *prose):
            text, pair = prose
            reasons["text"] = reasons["text_pair"] = (f"two columns of sentences, '{text}' and '{pair}' "
                                                      f"(about {infos[text].mean_words or 0:.0f} and "
                                                      f"{infos[pair].mean_words or 0:.0f} words)")
    if text is None:
        rest = [n for n in strings if n != label]
        if rest:
            text = max(rest, key=lambda n: infos[n].mean_chars or 0)
            reasons["text"] = f"the longest texts (about {infos[text].mean_chars or 0:.0f} characters)"
    return ColumnSuggestion(text, pair, label, reasons)


def _norm(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def _can_be_label(c: ColumnInfo) -> bool:
    return c.dtype in ("string", "class_label", "bool", "list") or c.dtype.startswith(("int", "uint", "float"))


def inspect_dataset(ds: DatasetDict, label_column: str | None = None, sample: int = 5, *,
                    label_names: list[str] | None = None, notes: list[str] | None = None,
                    task: str = DEFAULT_TASK) -> DatasetInfo:
    """What the wizard shows about the data: rows per split, columns, first rows, suggested columns, the task's
    overview of the labels (text-classification: class balance, integer labels by their `label_names` where
    given), and `notes` on how the files were read."""
    train = _train(ds)
    infos = {name: _column_info(train, name) for name in train.column_names}
    suggestion = _suggest(infos, len(train))
    label = label_column if label_column in infos else (get_task(task).suggest_label(list(infos)) or suggestion.label)
    splits = {name: len(split) for name, split in ds.items()} if not hasattr(ds, "features") else {"train": len(ds)}
    rows = train.select(range(min(sample, len(train)))).to_list() if len(train) else []
    overview = get_task(task).label_overview(train, label, label_names) if label else None
    return DatasetInfo(splits, list(infos.values()), rows, suggestion, overview, label, list(notes or []),
                       task_hint(infos[label]) if label else None)


def data_hint(ds: Dataset) -> TaskHint | None:
    """The first column whose values call for a task of their own (task_hint), for a message about the whole data."""
    for name in ds.column_names:
        hint = task_hint(_column_info(ds, name))
        if hint is not None:
            return hint
    return None


def task_hint(info: ColumnInfo) -> TaskHint | None:
    """The task whose labels a column holds, when its values say so (lists: multi-label; fractions: regression)."""
    for name in TASKS:
        reason = get_task(name).claims_column(info)
        if reason:
            return TaskHint(name, reason)
    return None


def class_balance(ds: Dataset, column: str, label_names: list[str] | None = None) -> dict[str, int]:
    """Examples per label value, most frequent first; ClassLabel ids shown by name, and integer ids by
    `label_names` (data.label_names) where given; missing values as '(missing)'."""
    import pyarrow.compute as pc

    col = arrow_column(ds, column)
    feat = ds.features[column]
    names = getattr(feat, "names", None)
    if names is None and label_names and column_kind(ds, column).startswith(("int", "uint")):
        names = label_names
    counts: dict[str, int] = {}
    try:
        pairs = pc.value_counts(col).to_pylist()
    except (NotImplementedError, ValueError, TypeError):
        return {}
    for item in pairs:
        value, n = item["values"], item["counts"]
        if value is None or (isinstance(value, str) and not value.strip()) or (names is not None and value == -1):
            key = "(missing)"
        elif names is not None:
            key = names[value] if 0 <= value < len(names) else str(value)
        else:
            key = str(value).strip()
        counts[key] = counts.get(key, 0) + n
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
