"""Small Arrow helpers every reader shares: building a Dataset, reading a column, naming a column's kind, and where
a split came from (for messages that point at file lines)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    from datasets import Dataset


@dataclass
class SplitSource:
    """Where a split came from, for messages: `desc` names it; `line_offset` turns data row i (0-based) into a
    file line (i + line_offset) when rows map to lines (csv/tsv without quoted newlines, jsonl); `notes` says how it
    was read when that was a choice (e.g. no quote processing)."""

    desc: str
    line_offset: int | None = None
    notes: list[str] = field(default_factory=list)
    header: bool | None = None  # csv/tsv: whether the first row named the columns
    quoting: str | None = None  # csv/tsv: "csv" or "none", as chosen for data.quoting
    row_lines: list[int] | None = None  # conll: the file line each row (sentence) starts on, where rows span lines


def file_key(path: Path, *settings: Any) -> str:
    """What a loaded file depends on: its path, size, modification time and how it was read."""
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{settings!r}"


def make_dataset(table: pa.Table, key: str, features: Any = None) -> Dataset:
    """An in-memory Dataset with a fingerprint from `key`: without one, datasets hashes the whole table."""
    from datasets import Dataset
    from datasets import DatasetInfo as HFDatasetInfo
    from datasets.table import InMemoryTable

    fingerprint = hashlib.sha256(key.encode()).hexdigest()[:32]
    info = HFDatasetInfo(features=features) if features is not None else None
    return Dataset(InMemoryTable(table), info=info, fingerprint=fingerprint)


def plain_strings(table: pa.Table) -> pa.Table:
    """large_string columns (pandas, some parquet writers) as string, which every other source gives. Cast in Arrow:
    Dataset.cast would run a map with a progress bar."""
    import pyarrow as pa

    if not any(f.type == pa.large_string() for f in table.schema):
        return table
    return table.cast(pa.schema([f.with_type(pa.string()) if f.type == pa.large_string() else f
                                 for f in table.schema]))


def arrow_column(ds: Dataset, name: str) -> pa.ChunkedArray:
    """One column as Arrow, through the Dataset's row mapping if it has one. Taken from the column itself: going
    through select_columns and the arrow formatter took 6 s and 560 MB for one int column of a million rows."""
    column = ds.data.column(name)
    indices = getattr(ds, "_indices", None)
    return column if indices is None else column.take(indices.column(0))


def column_array(column: pa.ChunkedArray) -> np.ndarray:
    """A column as NumPy: one value per row, or for a fixed-size list column (multi-label's multi-hot labels) a
    (rows, size) matrix, without a Python object per row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_fixed_size_list(column.type):
        return pc.list_flatten(column).to_numpy().reshape(-1, column.type.list_size)
    return column.to_numpy()


def column_kind(ds: Dataset, name: str) -> str:
    """"string", "class_label", "list", "bool", "int64", "float64", ... for one column of a Dataset."""
    from datasets import ClassLabel, Value

    feat = ds.features[name]
    if isinstance(feat, ClassLabel):
        return "class_label"
    if isinstance(feat, Value):
        return "string" if feat.dtype in ("string", "large_string") else feat.dtype
    return "list" if type(feat).__name__ in ("List", "Sequence", "LargeList") else type(feat).__name__.lower()


def true_rows(mask: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Row numbers where a boolean Arrow mask is true (nulls count as false)."""
    import numpy as np
    import pyarrow.compute as pc

    return np.flatnonzero(pc.fill_null(mask, False).to_numpy(zero_copy_only=False))


def where(indices: Any, src: SplitSource, limit: int = 5) -> str:
    """'data rows 3, 9 (1 = first data row); file lines 4, 10' for messages about bad rows."""
    indices = [int(i) for i in indices[:limit + 1]]
    more = ", ..." if len(indices) > limit else ""
    shown = ", ".join(str(i + 1) for i in indices[:limit]) + more
    text = f"data rows {shown} (1 = first data row)"
    if src.row_lines is not None:
        text += "; starting on file lines " + ", ".join(str(src.row_lines[i]) for i in indices[:limit]) + more
    elif src.line_offset is not None:
        text += "; file lines " + ", ".join(str(i + src.line_offset) for i in indices[:limit]) + more
    return text


def take_rows(ds: Dataset, indices: np.ndarray) -> Dataset:
    """ds.select(indices) for an unindexed in-memory Dataset, without select's detour through an Arrow writer (which
    holds the index column twice more: 40 MB at a million rows): the indices become the mapping as they are."""
    import numpy as np
    import pyarrow as pa
    from datasets import Dataset
    from datasets.table import InMemoryTable

    assert getattr(ds, "_indices", None) is None, "take_rows maps the rows of a Dataset without an indices mapping"
    mapping = pa.table({"indices": pa.array(np.asarray(indices, dtype=np.uint64))})
    rows = hashlib.sha256(mapping.column(0).chunk(0).buffers()[1]).hexdigest()
    fingerprint = hashlib.sha256(f"{ds._fingerprint}|{rows}".encode()).hexdigest()[:32]
    return Dataset(ds._data, info=ds.info.copy(), split=ds.split, indices_table=InMemoryTable(mapping),
                   fingerprint=fingerprint)


def own_rows(ds: Dataset) -> Dataset:
    """A Dataset mapping rows of a larger table (take_rows, select) as one holding only those rows, so the larger
    table can be freed; an unmapped one as it is."""
    from datasets import Dataset
    from datasets.table import InMemoryTable

    indices = getattr(ds, "_indices", None)
    if indices is None:
        return ds
    table = gather(ds.data.table, indices.column(0).to_numpy())
    return Dataset(InMemoryTable(table), info=ds.info.copy(), split=ds.split, fingerprint=ds._fingerprint)


def gather(table: pa.Table, indices: np.ndarray) -> pa.Table:
    """table.take(indices) batch by batch: Table.take first joins each column's chunks into one array, which for a
    million rows of text costs the whole column again (+180 MB) to pick out a tenth of it."""
    import numpy as np
    import pyarrow as pa

    batches = table.to_batches()
    starts = np.cumsum([0] + [b.num_rows for b in batches])
    order = np.argsort(indices, kind="stable")
    ordered = np.asarray(indices, dtype=np.int64)[order]
    bounds = np.searchsorted(ordered, starts)
    picked = [batch.take(pa.array(ordered[lo:hi] - start))
              for batch, start, lo, hi in zip(batches, starts[:-1], bounds[:-1], bounds[1:], strict=True) if hi > lo]
    joined = pa.Table.from_batches(picked, schema=table.schema).combine_chunks()
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return joined.take(pa.array(inverse))
