"""json, jsonl and parquet files. JSON lines go through pyarrow's JSON reader straight into Arrow; a file it cannot
take (a JSON array, a column holding both numbers and text, a line that is not JSON) is read with the json module,
whose errors name the line. Parquet is memory-mapped."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.data.arrow import SplitSource, file_key, make_dataset, plain_strings
from core.data.files import count_lines, raise_bad_utf8
from core.errors import DataError

if TYPE_CHECKING:
    import pandas as pd
    from datasets import Dataset


def load_json(path: Path, fmt: str) -> tuple[Dataset, SplitSource]:
    if fmt == "jsonl":
        table = _arrow_jsonl(path)
        if table is not None:
            # pyarrow skips blank lines: rows map to lines only when there are none
            lines_are_rows = table.num_rows == count_lines(path)
            return (make_dataset(plain_strings(table), file_key(path, fmt)),
                    SplitSource(str(path), line_offset=1 if lines_are_rows else None))
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise_bad_utf8(path)
        raise
    return _load_json_text(path, text, fmt)


def _arrow_jsonl(path: Path) -> Any:
    """The file as an Arrow table through pyarrow, or None where the json module must read it (to unmix types or to
    name a bad line)."""
    import pyarrow as pa
    import pyarrow.json as pajson

    try:
        table = pajson.read_json(path)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError):
        return None
    if table.num_rows == 0 or any(pa.types.is_temporal(f.type) for f in table.schema):
        return None  # empty, or a date-like text that pyarrow made a timestamp: the json module keeps it as text
    return table


_ONE_OBJECT = 'each line must be one JSON object, e.g. {"text": "great film", "label": "pos"}'


def _load_json_text(path: Path, text: str, fmt: str) -> tuple[Dataset, SplitSource]:
    import pandas as pd
    import pyarrow as pa

    records: list[Any] | None = None
    line_offset: int | None = None
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            if err.msg == "Extra data" and err.lineno > 1:
                fmt = "jsonl"  # one object per line in a .json file: read it as JSON lines
            else:
                raise DataError(f"{path} is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}",
                                "fix the JSON there (a list of objects, one per example, is expected)") from None
        else:
            records = _json_records(path, data)
    if fmt == "jsonl":
        records = json_lines(path, text)
        line_offset = 1 if all(ln.strip() for ln in text.splitlines()) else None
    if not records:
        raise DataError(f"{path} holds no examples", "add JSON objects, one per example")
    df = pd.DataFrame.from_records(records)
    for name in df.columns:
        df[name] = _unmix(df[name])
    try:
        return _from_pandas(df, file_key(path, fmt)), SplitSource(str(path), line_offset=line_offset)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise _mixed_shapes(path, df, err, line_offset) from None


def _shape(value: Any, depth: int = 0) -> str:
    """How a JSON value is built, for telling rows apart: 'text', 'number', 'list of object(content: text, ...)'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    if depth > 2:
        return type(value).__name__
    if isinstance(value, list):
        inner = sorted({_shape(v, depth + 1) for v in value})
        return f"list of {' or '.join(inner)}" if inner else "empty list"
    if isinstance(value, dict):
        return "object(" + ", ".join(f"{k}: {_shape(v, depth + 1)}" for k, v in sorted(value.items())) + ")"
    return type(value).__name__


def _mixed_shapes(path: Path, df: Any, err: Exception, line_offset: int | None) -> DataError:
    """Arrow refuses a column whose rows are built differently (a list in some rows, text in others; a turn's
    content text here and a number there): the column, the first row unlike the most common shape, and both."""
    from collections import Counter

    for name in df.columns:
        shapes = [_shape(v) for v in df[name]]
        counts = Counter(s for s in shapes if s != "null")
        if len(counts) < 2:
            continue
        common = counts.most_common(1)[0][0]
        odd = next(i for i, s in enumerate(shapes) if s not in (common, "null"))
        where = f"row {odd + 1}" + (f" (line {odd + line_offset})" if line_offset is not None else "")
        return DataError(f"{path}: column '{name}' holds values built differently from row to row: {where} "
                         f"holds {shapes[odd]}, where most rows hold {common}",
                         f"give '{name}' the same shape on every row (chat data: a list of {{role, content}} "
                         "turns whose content is text)")
    return DataError(f"{path} cannot be read into columns: {err}", "give every row the same keys and value types")


def json_lines(path: Path, text: str, example: str = _ONE_OBJECT) -> list[dict[str, Any]]:
    """The objects of a JSON-lines text, blank lines skipped; a line that is not one object is named by number."""
    records = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path} line {n} is not valid JSON: {err.msg} (column {err.colno})", example) from None
        if not isinstance(obj, dict):
            raise DataError(f"{path} line {n} holds a JSON {type(obj).__name__}, not an object", example)
        records.append(obj)
    return records


def _json_records(path: Path, data: Any) -> list[Any]:
    example = 'e.g. [{"text": "great film", "label": "pos"}, ...]'
    if isinstance(data, list):
        bad = next((i for i, r in enumerate(data) if not isinstance(r, dict)), None)
        if bad is not None:
            raise DataError(f"{path}: item {bad} of the list is a {type(data[bad]).__name__}, not an object",
                            f"give one JSON object per example, {example}")
        return data
    if isinstance(data, dict):
        lists = {k: v for k, v in data.items() if isinstance(v, list)}
        if lists and len(lists) == len(data) and len({len(v) for v in lists.values()}) == 1:
            n = len(next(iter(lists.values())))
            if not all(isinstance(x, dict) for v in lists.values() for x in v[:1]):
                return [{k: v[i] for k, v in lists.items()} for i in range(n)]  # columns: {"text": [...], ...}
        nested = [v for v in lists.values() if v and all(isinstance(x, dict) for x in v)]
        if len(nested) == 1:
            return nested[0]  # {"data": [{...}, ...]}
    raise DataError(f"{path} does not hold a list of examples", f"give a JSON list of objects, {example}")


def _unmix(col: pd.Series) -> pd.Series:
    """A JSON column with several value types (1 and "1") becomes text, which Arrow can store."""
    if col.dtype != object:
        return col
    kinds = {type(v) for v in col if v is not None and not (isinstance(v, float) and math.isnan(v))}
    if len(kinds) > 1 and not kinds <= {int, float} and not kinds & {list, dict}:
        return col.map(lambda v: v if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    return col


def _from_pandas(df: pd.DataFrame, key: str) -> Dataset:
    import pyarrow as pa

    return make_dataset(plain_strings(pa.Table.from_pandas(df, preserve_index=False)), key)


def load_parquet(path: Path) -> Dataset:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, memory_map=True)
    except (pa.ArrowInvalid, OSError) as err:
        raise DataError(f"{path} is not a valid parquet file: {str(err).splitlines()[0]}",
                        "give a parquet file written by pandas/pyarrow, or a csv/jsonl file") from None
    if table.num_rows == 0:
        raise DataError(f"{path} has columns ({', '.join(table.column_names)}) but no rows", "add labelled examples")
    return make_dataset(plain_strings(table), file_key(path, "parquet"))
