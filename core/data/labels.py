"""Label columns to class ids, in Arrow (no Python object per row): the class names, each split's ids, and notes.

Names come from, in this order: data.label_names (ids 0..n-1 named, or the order of string labels), a ClassLabel
feature (Hub and datasets-saved data), or the values themselves (strings sorted, numerically when they are all whole
numbers; integers in their own order).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.data.arrow import SplitSource, arrow_column, column_kind, true_rows, where
from core.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    from datasets import Dataset, DatasetDict

_WHOLE = re.compile(r"-?\d+")


def read_label_names(value: list[str] | str | Path | None) -> list[str] | None:
    """data.label_names as a list: given inline, or read from a text file with one name per line."""
    if value is None:
        return None
    if isinstance(value, list):
        names, where_ = [str(v).strip() for v in value], "data.label_names"
    else:
        path = Path(value).expanduser()
        try:
            lines = path.read_text(encoding="utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            reason = getattr(err, "strerror", None) or "it is not UTF-8 text"
            raise DataError(f"cannot read the label names file {path} (data.label_names): {reason}",
                            "give a text file with one class name per line, or the names as a list") from None
        while lines and not lines[-1].strip():
            lines.pop()
        names, where_ = [line.strip() for line in lines], f"the label names file {path}"
    blank = [i + 1 for i, n in enumerate(names) if not n]
    if blank:
        raise DataError(f"{where_} has an empty name at position {blank[0]}", "give one non-empty name per class")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(f"{where_} names {', '.join(map(repr, dupes))} more than once", "give each class one name")
    if len(names) < 2:
        raise DataError(f"{where_} gives {len(names)} name(s); a classifier needs at least two classes",
                        "give one name per class, for ids 0, 1, 2, ...")
    return names


def encode_labels(
    raw: DatasetDict, sources: dict[str, SplitSource], label: str, label_names: list[str] | None = None,
) -> tuple[list[str], dict[str, np.ndarray], list[str]]:
    """Class names, each split's labels as int64 ids into them, and notes for the user."""
    from datasets import ClassLabel

    values = {split: _label_values(ds, label, split, sources[split]) for split, ds in raw.items()}
    train_feat = raw["train"].features[label]
    notes: list[str] = []
    if isinstance(train_feat, ClassLabel):
        names, ids = _class_label_ids(raw, sources, label, values, label_names)
    else:
        names, ids, notes = _value_ids(sources, label, values, label_names)
    import numpy as np

    present = len(np.unique(ids["train"]))
    if present < 2:
        only = names[int(ids["train"][0])] if len(ids["train"]) else "?"
        raise DataError(
            f"label column '{label}' in {sources['train'].desc} has only one class ({only!r}); a classifier needs two",
            "add examples of the other classes, or check that data.label_column is the right column",
        )
    return names, ids, notes


def _label_values(ds: Dataset, label: str, split: str, src: SplitSource) -> pa.ChunkedArray:
    """The label column, checked for missing values: trimmed strings, int64 (whole floats too), or ClassLabel ids."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column_kind(ds, label)
    if kind not in ("string", "class_label", "bool") and not kind.startswith(("int", "uint", "float", "double")):
        if kind == "list":
            raise DataError(f"label column '{label}' in {src.desc} holds lists of labels; text-classification needs "
                            "one class per example",
                            "set task: multi-label-classification to learn several labels per example, or give one "
                            "label per example")
        raise DataError(f"label column '{label}' in {src.desc} holds {kind} values; each example needs one class",
                        "give one label per example, or set task: multi-label-classification for several")
    col = arrow_column(ds, label)
    if kind == "string":
        col = pc.utf8_trim_whitespace(col)
        missing = pc.or_kleene(pc.is_null(col), pc.equal(col, ""))
    elif kind == "bool":
        col = pc.cast(col, pa.string())
        missing = pc.is_null(col)
    elif kind.startswith(("float", "double")):
        missing = pc.is_null(col, nan_is_null=True)
    elif kind == "class_label":
        missing = pc.or_kleene(pc.is_null(col), pc.less(col, 0))
    else:
        missing = pc.is_null(col)
    rows = true_rows(missing)
    if len(rows):
        n = len(rows)
        fix = "fill in the labels on those rows or delete them"
        if kind == "class_label" and split != "train":
            fix = f"this split has no labels (they are -1); choose another {split} split, or none"
        raise DataError(
            f"label column '{label}' in {src.desc} has {n} missing value{'s' if n > 1 else ''}, at {where(rows, src)}",
            fix,
        )
    if kind.startswith(("float", "double")):
        whole = pc.equal(col, pc.floor(col))
        if not pc.all(whole).as_py():
            bad = col.filter(pc.invert(whole))[0].as_py()
            raise DataError(f"label column '{label}' in {src.desc} holds fractional numbers (e.g. {bad}), and "
                            "text-classification needs a class per row",
                            "set task: text-regression to predict the numbers, or give class labels (words or whole "
                            "numbers), or choose another data.label_column")
        col = pc.cast(col, pa.int64())  # 1.0 from a column with a missing value somewhere else
    elif kind.startswith(("int", "uint")):
        col = pc.cast(col, pa.int64())
    return col


def _class_label_ids(raw: DatasetDict, sources: dict[str, SplitSource], label: str,
                     values: dict[str, pa.ChunkedArray], label_names: list[str] | None,
                     ) -> tuple[list[str], dict[str, np.ndarray]]:
    from datasets import ClassLabel

    names = list(raw["train"].features[label].names)
    if label_names is not None:
        if len(label_names) != len(names):
            raise DataError(f"data.label_names gives {len(label_names)} names but the label column '{label}' of "
                            f"{sources['train'].desc} has {len(names)} classes ({', '.join(names)})",
                            f"give {len(names)} names, or remove data.label_names to keep the dataset's own")
        renamed = label_names
    else:
        renamed = names
    ids = {}
    for split, col in values.items():
        feat = raw[split].features[label]
        if isinstance(feat, ClassLabel) and list(feat.names) == names:
            ids[split] = col.to_numpy()
            continue
        # e.g. a csv validation file beside a parquet saved by datasets: class names, or ids into them
        if isinstance(feat, ClassLabel):
            as_names = [feat.names[v] for v in col.to_pylist()]
        else:
            as_names = [names[v] if isinstance(v, int) and 0 <= v < len(names) else str(v) for v in col.to_pylist()]
        index = {n: i for i, n in enumerate(names)}
        unseen = sorted(set(as_names) - set(index))
        if unseen:
            _unseen(split, sources[split], label, unseen)
        import numpy as np

        ids[split] = np.array([index[n] for n in as_names], dtype=np.int64)
    return renamed, ids


def _value_ids(sources: dict[str, SplitSource], label: str, values: dict[str, pa.ChunkedArray],
               label_names: list[str] | None) -> tuple[list[str], dict[str, np.ndarray], list[str]]:
    import pyarrow as pa
    import pyarrow.compute as pc

    train = values["train"]
    notes: list[str] = []
    distinct = pc.unique(train).to_pylist()
    is_int = pa.types.is_integer(train.type)
    if label_names is not None and not is_int and not set(distinct) & set(label_names) \
            and all(_WHOLE.fullmatch(v) for v in distinct):
        values = {split: pc.cast(col, pa.int64()) for split, col in values.items()}  # "0"/"1" as text: still ids
        train, is_int = values["train"], True
        distinct = pc.unique(train).to_pylist()
    if label_names is not None and is_int:
        names = label_names
        for split, col in values.items():
            out_of_range = true_rows(pc.or_kleene(pc.less(col, 0), pc.greater_equal(col, len(names))))
            if len(out_of_range):
                bad = sorted({int(v) for v in col.take(out_of_range[:100]).to_pylist()})
                raise DataError(
                    f"label column '{label}' in {sources[split].desc} has id{'s' if len(bad) > 1 else ''} "
                    f"{', '.join(map(str, bad[:10]))} but data.label_names names only ids 0-{len(names) - 1}, at "
                    f"{where(out_of_range, sources[split])}",
                    f"give {max(bad) + 1} or more names in data.label_names, or fix those labels",
                )
        return names, {split: col.to_numpy(zero_copy_only=False) for split, col in values.items()}, notes
    if label_names is not None:
        unknown = sorted(set(distinct) - set(label_names))
        if unknown:
            raise DataError(
                f"label column '{label}' in {sources['train'].desc} has labels {', '.join(map(repr, unknown[:10]))} "
                f"that data.label_names ({', '.join(label_names)}) does not name",
                "add them to data.label_names, or remove data.label_names to name classes by their values",
            )
        ordered: list[Any] = list(label_names)
    elif is_int:
        ordered = sorted(distinct)
        if ordered != list(range(len(ordered))):
            notes.append(f"labels {ordered[:10]} are numbered 0..{len(ordered) - 1} in this order")
    elif all(_WHOLE.fullmatch(v) for v in distinct):
        ordered = sorted(distinct, key=int)
    else:
        ordered = sorted(distinct)
    names = [str(v) for v in ordered]
    value_set = pa.array(ordered, type=train.type)
    ids = {}
    for split, col in values.items():
        if col.type != train.type:  # e.g. numbers in a csv validation file beside text labels in train
            try:
                col = pc.cast(col, train.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                _unseen(split, sources[split], label, sorted({str(v) for v in pc.unique(col).to_pylist()}))
        index = pc.index_in(col, value_set=value_set)
        if index.null_count:
            unseen = sorted({str(v) for v in pc.unique(col.filter(pc.is_null(index))).to_pylist()})
            _unseen(split, sources[split], label, unseen)
        ids[split] = pc.cast(index, pa.int64()).to_numpy(zero_copy_only=False)
    return names, ids, notes


def _unseen(split: str, src: SplitSource, label: str, unseen: list[str]) -> None:
    shown = ", ".join(repr(u) for u in unseen[:10])
    raise DataError(
        f"the {split} data {src.desc} has label{'s' if len(unseen) > 1 else ''} {shown} in column '{label}' "
        "that the training data never has",
        f"add training examples with {'those labels' if len(unseen) > 1 else 'that label'}, "
        f"or remove those rows from the {split} data",
    )
