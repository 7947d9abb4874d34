"""Labels of multi-label-classification read from a file, in Arrow and NumPy (no Python loop per row): every split
becomes a multi-hot float32 matrix (rows, labels).

Three ways to give each row its labels:
- a list column (JSON/JSONL/Parquet list<string> or list<int>, a Hub dataset's list of ClassLabel);
- a delimited string (`a|b`): data.label_separator, or the one of `,` `;` `|` found in most rows (ties prefer `|`,
  then `;`); a cell shaped like a list (`["a", "b"]`, `['a', 'b']`, as pandas writes a list column to csv) is read
  as that list;
- several 0/1 columns, data.label_columns (bool, 0/1 numbers, or the text 0/1/true/false).
Integer labels are ids into data.label_names where given. Names are ordered as data.label_names gives them, else
integers in numeric order, else strings sorted; label_columns keep their order. A row may have no label (all
negative), a training split must have some.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.data.arrow import SplitSource, arrow_column, column_kind, true_rows, where
from core.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from core.config import DataConfig

SEPARATORS = ("|", ";", ",")  # auto's choices, in the order ties are broken
_LIST_CELL = r"^\[.*\]$"  # a trimmed cell shaped like a list
_WHOLE = r"^-?\d+$"
_WHOLE_RE = re.compile(_WHOLE)
_TRUE_FALSE = {"1": 1.0, "0": 0.0, "true": 1.0, "false": 0.0, "1.0": 1.0, "0.0": 0.0}


@dataclass
class _Split:
    """One split's labels as (row, value) pairs: `rows[i]` holds `values[i]` (strings or int64)."""

    rows: np.ndarray
    values: pa.Array
    n: int
    class_names: list[str] | None = None  # a list of ClassLabel: the names its ids stand for


def read_multi_labels(raw: Any, sources: dict[str, SplitSource], label: str | None, cfg: DataConfig,
                      label_names: list[str] | None) -> tuple[list[str], dict[str, np.ndarray], list[str]]:
    """Label names, each split's multi-hot float32 matrix, and notes for the user."""
    if cfg.label_columns:
        names, matrices, notes = list(cfg.label_columns), _from_columns(raw, sources, list(cfg.label_columns)), []
    else:
        assert label is not None
        names, matrices, notes = _from_one_column(raw, sources, label, cfg, label_names)
    _check_training(matrices["train"], sources["train"], label, cfg)
    train = matrices["train"]
    empty = int((train.sum(axis=1) == 0).sum())
    if empty:
        notes.append(f"{empty} of the {len(train)} training rows have no label (every label negative)")
    return names, matrices, notes


def _check_training(matrix: np.ndarray, src: SplitSource, label: str | None, cfg: DataConfig) -> None:
    if matrix.shape[1] == 0 or not matrix.any():
        where_ = f"label column '{label}'" if label else f"the label columns ({', '.join(cfg.label_columns or [])})"
        raise DataError(f"no row of the training data {src.desc} has a label in {where_}; a model cannot learn "
                        "labels it never sees",
                        "give the rows their labels, or check data.label_column, data.label_columns and "
                        "data.label_separator")


# --- several 0/1 columns -----------------------------------------------------------------------------------------

def _from_columns(raw: Any, sources: dict[str, SplitSource], columns: list[str]) -> dict[str, np.ndarray]:
    import numpy as np

    out = {}
    for split, ds in raw.items():
        matrix = np.zeros((len(ds), len(columns)), dtype=np.float32)
        for j, column in enumerate(columns):
            matrix[:, j] = _zero_one(ds, column, sources[split])
        out[split] = matrix
    return out


def _zero_one(ds: Any, column: str, src: SplitSource) -> np.ndarray:
    """One label column as 0.0/1.0, refusing missing values and anything but 0/1/true/false, by row."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column_kind(ds, column)
    col = arrow_column(ds, column)
    what = f"label column '{column}' (data.label_columns) in {src.desc}"
    fix = "give 0 or 1 (or true/false) in every row of each label column"
    if kind == "string":
        col = pc.utf8_lower(pc.utf8_trim_whitespace(col))
        missing = pc.or_kleene(pc.is_null(col), pc.equal(col, ""))
    elif kind == "bool" or kind.startswith(("int", "uint", "float", "double")):
        missing = pc.is_null(col, nan_is_null=True)
    else:
        raise DataError(f"{what} holds {kind} values; each label column needs 0 or 1 per row", fix)
    rows = true_rows(missing)
    if len(rows):
        raise DataError(f"{what} has {len(rows)} missing value{'s' if len(rows) > 1 else ''}, at "
                        f"{where(rows, src)}", fix)
    if kind == "string":
        known = pa.array(list(_TRUE_FALSE))
        bad = true_rows(pc.invert(pc.is_in(col, value_set=known)))
        if len(bad):
            raise DataError(f"{what} holds {col[int(bad[0])].as_py()!r} at {where(bad, src)}; each label column "
                            "needs 0 or 1 per row", fix)
        index = pc.index_in(col, value_set=known).to_numpy(zero_copy_only=False)
        return np.asarray(list(_TRUE_FALSE.values()), dtype=np.float32)[index]
    values = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
    bad = np.flatnonzero((values != 0) & (values != 1))
    if len(bad):
        raise DataError(f"{what} holds {values[bad[0]]:g} at {where(bad, src)}; each label column needs 0 or 1 "
                        "per row", fix)
    return values.astype(np.float32)


# --- one column: lists or delimited text -------------------------------------------------------------------------

def _from_one_column(raw: Any, sources: dict[str, SplitSource], label: str, cfg: DataConfig,
                     label_names: list[str] | None) -> tuple[list[str], dict[str, np.ndarray], list[str]]:
    splits, names, by_id, _, notes = _read_one_column(raw, sources, label, cfg, label_names)
    matrices = {split: _multi_hot(parsed, names, by_id, split, label, sources[split], label_names)
                for split, parsed in splits.items()}
    return names, matrices, notes


def script_label_format(raw: Any, sources: dict[str, SplitSource], label: str | None, cfg: DataConfig,
                        label_names: list[str] | None) -> dict[str, Any]:
    """What an exported script must know to read these labels as finetune-tui does, decided here from the data:
    label_columns (the 0/1 columns, or None), separator (between the labels of a text cell: data.label_separator or
    the one auto finds; None: one label per cell) and by_id (whole numbers are positions in the label names)."""
    if cfg.label_columns:
        return {"label_columns": list(cfg.label_columns), "separator": None, "by_id": False}
    assert label is not None
    _, _, by_id, separator, _ = _read_one_column(raw, sources, label, cfg, label_names)
    return {"label_columns": None, "separator": separator, "by_id": by_id}


def _read_one_column(raw: Any, sources: dict[str, SplitSource], label: str, cfg: DataConfig,
                     label_names: list[str] | None
                     ) -> tuple[dict[str, _Split], list[str], bool, str | None, list[str]]:
    """Each split's (row, label) pairs, the label names, whether whole numbers are ids into them, the separator and
    notes for the user."""
    import pyarrow as pa

    notes: list[str] = []
    strings = {}
    for split, ds in raw.items():
        kind = column_kind(ds, label)
        if kind == "string":
            strings[split] = _trimmed(ds, label)
        elif kind != "list":
            raise DataError(
                f"label column '{label}' in {sources[split].desc} holds one {kind} value per row; "
                "multi-label-classification needs the labels of each row as a list, as text such as 'a|b', or as "
                "0/1 columns",
                "give each row's labels as a list or as text joined by | (data.label_separator), list 0/1 columns "
                "in data.label_columns, or set task: text-classification for one class per row")
    separator, how = _separator(strings, cfg.label_separator)
    if strings:
        notes.append(f"labels split at {separator!r} ({how})" if separator else
                     f"one label per text cell in '{label}' (no {', '.join(map(repr, SEPARATORS))} found)")
    splits = {}
    for split, ds in raw.items():
        if split in strings:
            splits[split], listed = _from_text(strings[split], separator)
            if listed:
                notes.append(f"{listed} label cells of {sources[split].desc} were read as lists (e.g. [\"a\", \"b\"])")
        else:
            splits[split] = _from_list(ds, label, sources[split])
    train = splits["train"]
    if train.class_names is not None:
        names = _renamed(train.class_names, label_names, label, sources["train"])
        by_id = True
    elif _are_ids(train.values, label_names):
        by_id = label_names is not None
        if by_id:
            assert label_names is not None
            names = label_names
        else:
            import pyarrow.compute as pc

            names = [str(v) for v in sorted(pc.unique(pc.cast(train.values, pa.int64())).to_pylist())]
    else:
        by_id = False
        if label_names is not None:
            names = label_names
        else:
            import pyarrow.compute as pc

            names = sorted(pc.unique(train.values).to_pylist())
    return splits, names, by_id, separator, notes


def _trimmed(ds: Any, label: str) -> pa.ChunkedArray:
    import pyarrow.compute as pc

    return pc.utf8_trim_whitespace(arrow_column(ds, label))


def _separator(strings: dict[str, pa.ChunkedArray], configured: str | None) -> tuple[str | None, str]:
    """data.label_separator, or the separator found in most text cells that are not lists (ties: | ; ,)."""
    if configured:
        return configured, "data.label_separator"
    import pyarrow.compute as pc

    counts = dict.fromkeys(SEPARATORS, 0)
    for col in strings.values():
        plain = col.filter(pc.invert(pc.fill_null(pc.match_substring_regex(col, _LIST_CELL), False)))
        for sep in SEPARATORS:
            counts[sep] += int(pc.sum(pc.match_substring(plain, sep)).as_py() or 0)
    best = max(SEPARATORS, key=lambda sep: counts[sep])  # max keeps the first of equal counts: | before ; before ,
    return (best, "auto") if counts[best] else (None, "auto")


def _from_text(col: pa.ChunkedArray, separator: str | None) -> tuple[_Split, int]:
    """Trimmed text cells as (row, label) pairs: list-shaped cells split at their commas (quotes dropped), the others
    at `separator`; empty pieces are no label. Also how many cells were lists."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(col)
    is_list = pc.fill_null(pc.match_substring_regex(col, _LIST_CELL), False).to_numpy(zero_copy_only=False)
    list_rows, plain_rows = np.flatnonzero(is_list), np.flatnonzero(~is_list)
    parts_rows, parts_values = [], []
    if len(list_rows):
        cells = col.take(pa.array(list_rows))
        inner = pc.replace_substring_regex(cells, r"^\[|\]$", "")
        pieces = pc.split_pattern(inner, ",")
        values = pc.utf8_trim_whitespace(pc.list_flatten(pieces))
        values = pc.replace_substring_regex(values, r"^\"(.*)\"$|^'(.*)'$", r"\1\2")
        parts_rows.append(list_rows[pc.list_parent_indices(pieces).to_numpy(zero_copy_only=False)])
        parts_values.append(values)
    if len(plain_rows):
        cells = col.take(pa.array(plain_rows))
        pieces = pc.split_pattern(cells, separator) if separator else _as_lists(cells)
        parts_rows.append(plain_rows[pc.list_parent_indices(pieces).to_numpy(zero_copy_only=False)])
        parts_values.append(pc.utf8_trim_whitespace(pc.list_flatten(pieces)))
    rows = np.concatenate(parts_rows) if parts_rows else np.zeros(0, dtype=np.int64)
    values = _chunks(parts_values, pa.string())
    return _kept(rows, values, n), len(list_rows)


def _as_lists(cells: pa.ChunkedArray) -> pa.ChunkedArray:
    """Each cell as a list of itself (no separator): nulls stay null."""
    import pyarrow.compute as pc

    return pc.split_pattern(cells, "\x00")  # a character no label holds: one piece per cell


def _chunks(arrays: list[Any], type_: pa.DataType) -> pa.Array:
    import pyarrow as pa

    flat = []
    for array in arrays:
        flat += array.chunks if isinstance(array, pa.ChunkedArray) else [array]
    return pa.concat_arrays([a.cast(type_) for a in flat]) if flat else pa.array([], type=type_)


def _kept(rows: np.ndarray, values: pa.Array, n: int, class_names: list[str] | None = None) -> _Split:
    """Drop missing and empty labels (a row with none left is all negative)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    keep = pc.invert(pc.is_null(values))
    if pa.types.is_string(values.type):
        keep = pc.and_(keep, pc.not_equal(pc.fill_null(values, ""), ""))
    mask = pc.fill_null(keep, False).to_numpy(zero_copy_only=False)
    return _Split(np.asarray(rows, dtype=np.int64)[mask], values.filter(pa.array(mask)), n, class_names)


def _from_list(ds: Any, label: str, src: SplitSource) -> _Split:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    from datasets import ClassLabel

    col = arrow_column(ds, label)
    inner = getattr(ds.features[label], "feature", None)
    values = pc.list_flatten(col)
    rows = pc.list_parent_indices(col).to_numpy(zero_copy_only=False)
    vtype = values.type
    class_names = list(inner.names) if isinstance(inner, ClassLabel) else None
    if pa.types.is_null(vtype):  # every list empty (or null): no labels at all
        return _kept(rows, pa.array([None] * len(values), type=pa.string()), len(col))
    if pa.types.is_string(vtype) or pa.types.is_large_string(vtype):
        values = pc.utf8_trim_whitespace(values)
        return _kept(rows, _chunks([values], pa.string()), len(col))
    if pa.types.is_integer(vtype):
        return _kept(rows, _chunks([values], pa.int64()), len(col), class_names)
    if pa.types.is_floating(vtype):
        flat = _chunks([values], pa.float64())
        numbers = flat.to_numpy(zero_copy_only=False)
        bad = np.flatnonzero(~np.isnan(numbers) & (numbers != np.floor(numbers)))
        if len(bad):
            raise DataError(f"label column '{label}' in {src.desc} holds the number {numbers[bad[0]]:g} in a list, "
                            f"at {where(rows[bad], src)}; multi-label labels are names or whole-number ids",
                            "give the labels as names, or as ids 0, 1, 2, ... named by data.label_names")
        return _kept(rows, pc.cast(flat, pa.int64()), len(col))
    what = "lists of lists" if pa.types.is_list(vtype) or pa.types.is_large_list(vtype) else f"lists of {vtype}"
    raise DataError(f"label column '{label}' in {src.desc} holds {what}; multi-label-classification needs a list of "
                    "label names or ids per row",
                    "give each row's labels as a list of names (or of ids named by data.label_names)")


def _are_ids(values: pa.Array, label_names: list[str] | None) -> bool:
    """Integer labels, or text labels that are all whole numbers and not names in data.label_names."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_integer(values.type):
        return True
    if not len(values) or not pc.all(pc.match_substring_regex(values, _WHOLE)).as_py():
        return False
    return label_names is None or not set(pc.unique(values).to_pylist()) & set(label_names)


def _renamed(class_names: list[str], label_names: list[str] | None, label: str, src: SplitSource) -> list[str]:
    if label_names is None:
        return class_names
    if len(label_names) != len(class_names):
        raise DataError(f"data.label_names gives {len(label_names)} names but the label column '{label}' of "
                        f"{src.desc} has {len(class_names)} labels ({', '.join(class_names)})",
                        f"give {len(class_names)} names, or remove data.label_names to keep the dataset's own")
    return label_names


def _multi_hot(parsed: _Split, names: list[str], by_id: bool, split: str, label: str, src: SplitSource,
               label_names: list[str] | None) -> np.ndarray:
    """The (rows, labels) float32 matrix; a label the names do not hold is refused with its rows."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    values = parsed.values
    ids = np.full(len(values), -1, dtype=np.int64)
    if pa.types.is_integer(values.type):
        numbers = values.to_numpy(zero_copy_only=False)
        if by_id:
            ids = numbers
        else:
            ids = pc.index_in(pc.cast(values, pa.string()), value_set=pa.array(names)).to_numpy(zero_copy_only=False)
    else:
        whole = pc.fill_null(pc.match_substring_regex(values, _WHOLE), False).to_numpy(zero_copy_only=False)
        named = pc.index_in(values, value_set=pa.array(names, type=pa.string()))
        ids = pc.fill_null(named, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        if by_id and whole.any():
            from_ids = pc.cast(values.filter(pa.array(whole)), pa.int64()).to_numpy(zero_copy_only=False)
            ids[whole] = from_ids
        elif not by_id and whole.any() and all(_WHOLE_RE.fullmatch(n) for n in names):
            # "01" or " 1" against names from integers: compare as numbers
            numbers = pc.cast(values.filter(pa.array(whole)), pa.int64()).to_numpy(zero_copy_only=False)
            ids[whole] = pc.fill_null(pc.index_in(pa.array(numbers.astype(str)), value_set=pa.array(names)),
                                      -1).to_numpy(zero_copy_only=False)
    bad = np.flatnonzero((ids < 0) | (ids >= len(names)))
    if len(bad):
        _unknown(values, bad, parsed.rows, names, by_id, split, label, src, label_names)
    matrix = np.zeros((parsed.n, len(names)), dtype=np.float32)
    matrix[parsed.rows, ids] = 1.0
    return matrix


def _unknown(values: pa.Array, bad: np.ndarray, rows: np.ndarray, names: list[str], by_id: bool, split: str,
             label: str, src: SplitSource, label_names: list[str] | None) -> None:
    import numpy as np

    first = values[int(bad[0])].as_py()
    at = np.unique(rows[bad])
    unknown = sorted({values[int(i)].as_py() for i in bad[:200]}, key=str)
    shown = ", ".join(repr(u) for u in unknown[:10])
    several = len(unknown) > 1
    if by_id and (isinstance(first, int) or _WHOLE_RE.fullmatch(str(first))):
        raise DataError(f"label column '{label}' in {src.desc} has label id{'s' if several else ''} {shown} but "
                        f"{'data.label_names' if label_names else 'the dataset'} names only ids 0-{len(names) - 1}, "
                        f"at {where(at, src)}",
                        "give a name for every id in data.label_names, or fix those labels")
    if label_names is not None:
        raise DataError(f"label column '{label}' in {src.desc} has label{'s' if several else ''} {shown} that "
                        f"data.label_names ({', '.join(label_names[:20])}) does not name, at {where(at, src)}",
                        "add them to data.label_names, or remove data.label_names to name labels by their values")
    raise DataError(f"the {split} data {src.desc} has label{'s' if several else ''} {shown} in column '{label}' that "
                    f"the training data never has, at {where(at, src)}",
                    f"add training examples with {'those labels' if several else 'that label'}, or remove "
                    f"{'them' if several else 'it'} from those rows of the {split} data")
