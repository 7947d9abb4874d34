"""Labelled text in, a clean DatasetDict out: local files or Hub datasets, checked with messages that say the fix.

How files are read, and why not `datasets.load_dataset("csv", ...)`:
    each file is parsed in this process (pandas for csv/tsv, the json module for json/jsonl, pyarrow for parquet)
    and wrapped as an in-memory `datasets.Dataset`. load_dataset's packaged builders write an Arrow copy of every
    file into ~/.cache, print "Generating train split" bars and cost ~0.3 s each; worse, their errors
    (pyarrow's "CSV parse error: Expected 2 columns, got 3") name no file and no fix. Parsing ourselves lets every
    DataError name the file, the line or byte, and the fix, and a small file loads in milliseconds. Hub datasets do go
    through load_dataset, which is what its cache is for.

After loading, everything is `datasets` (Arrow), so the training engines see one kind of object whatever the source.
Heavy libraries are imported inside functions: the UI imports this module at start-up.
"""

from __future__ import annotations

import contextlib
import csv
import difflib
import hashlib
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.config import DataConfig, HubDataset
from core.errors import DataError
from core.hub import hub_reachable, require_hub

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    from datasets import Dataset, DatasetDict

FILE_FORMATS = ("csv", "tsv", "json", "jsonl", "parquet")
_EXTENSIONS = {
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl",
    ".parquet": "parquet", ".pq": "parquet",
}
_SAMPLE_ROWS = 50  # rows looked at to detect a header and check the field count before the full parse
_SAMPLE_CHARS = 1 << 18  # of the text those rows are read from

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
    "y", "class_label", "stars", "rating",
]


# --- results ---------------------------------------------------------------------------------------

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


@dataclass
class DatasetInfo:
    splits: dict[str, int]
    columns: list[ColumnInfo]
    sample_rows: list[dict[str, Any]]
    suggestion: ColumnSuggestion
    class_balance: dict[str, int]
    label_column: str | None = None

    def column(self, name: str) -> ColumnInfo | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclass
class PreparedData:
    dataset: DatasetDict  # train, validation[, test]; columns text[, text_pair], label (ClassLabel)
    label_names: list[str]
    text_column: str
    text_pair_column: str | None
    label_column: str
    sizes: dict[str, int]
    source: str = ""  # "train.csv" or "hub glue/mrpc"
    validation_source: str = ""  # where validation came from, e.g. "10% of train (stratified)"
    notes: list[str] = field(default_factory=list)  # things the user may want to know (e.g. labels remapped)

    @property
    def is_pair(self) -> bool:
        return self.text_pair_column is not None

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


@dataclass
class SplitSource:
    """Where a split came from, for messages: `desc` names it; `line_offset` turns data row i (0-based) into a
    file line (i + line_offset) when rows map to lines (csv/tsv without quoted newlines, jsonl)."""

    desc: str
    line_offset: int | None = None


# --- loading ---------------------------------------------------------------------------------------

def load_raw(cfg: DataConfig) -> DatasetDict:
    """The raw splits: "train" and, where given, "validation" and "test", with the file's own columns."""
    return _load_raw(cfg)[0]


def _load_raw(cfg: DataConfig) -> tuple[DatasetDict, dict[str, SplitSource]]:
    from datasets import DatasetDict

    if cfg.hub is not None:
        return _load_hub(cfg.hub)
    files = {"train": cfg.train_file, "validation": cfg.validation_file, "test": cfg.test_file}
    splits: dict[str, Dataset] = {}
    sources: dict[str, SplitSource] = {}
    for split, path in files.items():
        if path is None:
            continue
        splits[split], sources[split] = load_file(path, cfg.format, cfg.header, cfg.column_names)
    return DatasetDict(splits), sources


def detect_format(path: Path, text_head: str | None = None) -> str:
    """The file format from the extension; a .txt is tsv when its first line has tabs, csv when it has commas."""
    suffix = path.suffix.lower()
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    if suffix in (".txt", ".dat", "") and text_head is not None:
        first = text_head.split("\n", 1)[0]
        if "\t" in first:
            return "tsv"
        if "," in first:
            return "csv"
    raise DataError(
        f"cannot tell the format of {path} from its extension '{suffix or '(none)'}'",
        f"name the file .csv, .tsv, .json, .jsonl or .parquet, or set data.format to one of {', '.join(FILE_FORMATS)}",
    )


def load_file(
    path: str | Path, fmt: str = "auto", header: bool | str = "auto", column_names: list[str] | None = None
) -> tuple[Dataset, SplitSource]:
    """One local file as an in-memory Dataset, with checks that name the file and the fix."""
    path = Path(path).expanduser()
    _check_path(path)
    raw = _read_bytes(path)
    if fmt == "auto" and path.suffix.lower() in (".parquet", ".pq"):
        fmt = "parquet"
    if fmt == "parquet":
        return _load_parquet(path, raw), SplitSource(str(path))
    text = _decode(path, raw)
    if fmt == "auto":
        fmt = detect_format(path, text[:4096])
    if fmt in ("csv", "tsv"):
        return _load_delimited(path, raw, text, "\t" if fmt == "tsv" else ",", header, column_names)
    return _load_json(path, text, fmt)


def _check_path(path: Path) -> None:
    try:
        _check_path_exists(path)
    except OSError as err:  # e.g. a name longer than the file system allows
        raise DataError(f"cannot use data file {str(path)[:200]}: {err.strerror}",
                        "check the path in the config") from None


def _check_path_exists(path: Path) -> None:
    if path.is_dir():
        inside = sorted(p.name for p in path.iterdir() if p.suffix.lower() in {*_EXTENSIONS, ".txt"})
        example = f", e.g. {path / inside[0]}" if inside else ""
        raise DataError(f"{path} is a directory, not a data file", f"give the path of one file inside it{example}")
    if not path.exists():
        fix = "check the path; relative paths start from the directory you run finetune-tui in"
        parent = path.parent if path.parent.is_dir() else None
        if parent is not None:
            close = difflib.get_close_matches(path.name, [p.name for p in parent.iterdir()], n=1, cutoff=0.6)
            if close:
                fix = f"did you mean {parent / close[0]}? " + fix
        raise DataError(f"data file {path} does not exist", fix)


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read data file {path}: {err.strerror}",
                        "check that the file is readable by you") from None
    if not raw or raw.isspace():
        raise DataError(f"data file {path} is empty", "give a file with a header row and labelled examples")
    return raw


_MAGIC = {b"PAR1": "a parquet file", b"PK\x03\x04": "a zip archive (or an Excel .xlsx workbook)",
          b"\x1f\x8b": "a gzip archive", b"\xd0\xcf\x11\xe0": "an old Excel .xls workbook", b"%PDF": "a PDF"}


def _decode(path: Path, raw: bytes) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(f"{path} is UTF-16 text; finetune-tui reads UTF-8",
                        "save it as UTF-8 (e.g. `iconv -f utf-16 -t utf-8 in > out`, or 'CSV UTF-8' in a spreadsheet)")
    for magic, what in _MAGIC.items():
        if raw.startswith(magic):
            fix = ("name it .parquet or set data.format: parquet" if magic == b"PAR1"
                   else "export the data as csv, tsv, json, jsonl or parquet")
            raise DataError(f"{path} is {what}, not a text data file", fix)
    if b"\x00" in raw[:8192]:
        raise DataError(f"{path} is a binary file, not text", "give a csv, tsv, json, jsonl or parquet file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        col = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise DataError(
            f"{path} is not valid UTF-8: byte 0x{raw[err.start]:02x} at line {line}, byte {col} of that line "
            f"(offset {err.start})",
            "save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 in > out`, or 'CSV UTF-8' in a spreadsheet)",
        ) from None


# --- csv / tsv ---------------------------------------------------------------------------------------

def _load_delimited(
    path: Path, raw: bytes, text: str, delimiter: str, header: bool | str, column_names: list[str] | None
) -> tuple[Dataset, SplitSource]:
    import pandas as pd

    head = text[:_SAMPLE_CHARS]
    cut = len(head) < len(text)  # then the last row read may be cut off: it is not looked at
    reader = csv.reader(io.StringIO(head), delimiter=delimiter)
    rows: list[list[str]] = []
    lines: list[int] = []  # the file line each sampled row ends on, for messages
    try:
        for row in reader:
            if row:
                rows.append(row)
                lines.append(reader.line_num)
            if len(rows) > _SAMPLE_ROWS:
                break
        else:
            if cut and len(rows) > 1:
                rows.pop()
                lines.pop()
    except csv.Error as err:
        if not cut:
            raise DataError(f"{path} cannot be parsed near line {reader.line_num}: {err}",
                            "check the quoting on that line") from None
    if not rows and cut:
        raise DataError(f"{path} starts with a line of more than {_SAMPLE_CHARS:,} characters",
                        "give one example per line: a header row, then one labelled example a line")
    if not rows:
        raise DataError(f"data file {path} is empty", "give a file with a header row and labelled examples")
    _check_columns_found(path, text, rows, delimiter)
    has_header = looks_like_header(rows) if header == "auto" else bool(header)
    width = len(rows[0])
    for line, row in zip(lines[1:], rows[1:], strict=True):
        if len(row) != width:
            _ragged(path, line, len(row), width, delimiter, has_header)

    if has_header and column_names is None:
        names = [c.strip() or f"column_{i}" for i, c in enumerate(rows[0])]
        if len(rows) == 1:
            raise DataError(f"{path} has a header row ({', '.join(names)}) but no data rows",
                            "add labelled examples below the header" + (
                                "; if this row is data, set data.header: false" if header == "auto" else ""))
    elif column_names is not None:
        if len(column_names) != width:
            raise DataError(
                f"data.column_names gives {len(column_names)} names ({', '.join(column_names)}) but {path} has "
                f"{width} columns",
                f"give exactly {width} names in data.column_names",
            )
        names = list(column_names)
    else:
        names = [f"column_{i}" for i in range(width)]
    try:
        df = pd.read_csv(
            io.BytesIO(raw), encoding="utf-8-sig", sep=delimiter, header=None, names=names,
            skiprows=1 if has_header else 0,
            keep_default_na=False, na_values=[""],  # "NA", "None", "null" are words, not missing values
            skip_blank_lines=True, index_col=False, dtype_backend="numpy_nullable",
        )
    except pd.errors.ParserError as err:
        _parser_error(path, err, width, delimiter, has_header)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} has a header row but no data rows", "add labelled examples below the header") from None
    if df.empty:
        raise DataError(f"{path} has a header row ({', '.join(names)}) but no data rows",
                        "add labelled examples below the header")
    return _from_pandas(df, _key(path, delimiter, has_header, names)), SplitSource(str(path), 2 if has_header else 1)


def _check_columns_found(path: Path, text: str, rows: list[list[str]], delimiter: str) -> None:
    if max(len(r) for r in rows) > 1:
        return
    name = "tab" if delimiter == "\t" else repr(delimiter)
    other = None
    with contextlib.suppress(csv.Error):
        other = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|").delimiter
    if other == "\t":
        fix = "the rows are tab-separated: name the file .tsv or set data.format: tsv"
    elif other == ",":
        fix = "the rows are comma-separated: name the file .csv or set data.format: csv"
    elif other:
        fix = f"the rows look separated by {other!r}: save the file with commas (csv) or tabs (tsv)"
    else:
        fix = "give a file with a text column and a label column, separated by commas (csv) or tabs (tsv)"
    raise DataError(f"{path} has only one column: no {name} separates its fields (a text and a label are needed)", fix)


def _ragged(path: Path, line: int, got: int, want: int, delimiter: str, has_header: bool) -> None:
    first = "the header" if has_header else "line 1"
    sep = "tab" if delimiter == "\t" else f"'{delimiter}'"
    raise DataError(
        f"{path} is malformed: line {line} has {got} fields but {first} has {want}",
        f"put double quotes around text that contains a {sep} (\"like{delimiter} this\"), "
        f"or fix line {line} so that every row has {want} fields",
    )


def _parser_error(path: Path, err: Exception, width: int, delimiter: str, has_header: bool) -> None:
    msg = str(err)
    m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", msg)
    if m:
        _ragged(path, int(m.group(2)), int(m.group(3)), int(m.group(1)), delimiter, has_header)
    m = re.search(r"EOF inside string starting at row (\d+)", msg)
    if m:
        raise DataError(f"{path} is malformed: a quote (\") opened near data row {int(m.group(1)) + 1} is never closed",
                        "close the quote, or double quotes that are part of the text (\"\")") from None
    raise DataError(f"{path} cannot be parsed: {msg.strip().splitlines()[-1]}",
                    "check that it is a valid csv/tsv file") from None


def _is_number(cell: str) -> bool:
    try:
        float(cell.strip().replace("_", "x"))  # "1_000" is a word here, not a number
    except ValueError:
        return False
    return cell.strip().lower() not in ("nan", "inf", "-inf", "infinity")


def looks_like_header(rows: list[list[str]]) -> bool:
    """Whether the first row names the columns: a header has no numbers, its cells are unique, and they differ in
    kind from the values below (numbers under a word, a word never seen among few repeated values, a short name over
    longer texts). csv.Sniffer's own length/type vote breaks ties."""
    first, data = rows[0], [r for r in rows[1:] if len(r) == len(rows[0])]
    cells = [c.strip() for c in first]
    if any(_is_number(c) for c in cells if c) or len(set(cells)) < len(cells):
        return False
    if not data:
        # One row only: a header when it reads like names (short, no sentences); the caller reports no data.
        return all(len(c) <= 40 and len(c.split()) <= 4 for c in cells)
    votes = 0
    for j, head in enumerate(cells):
        column = [r[j].strip() for r in data if r[j].strip()]
        if not column:
            continue
        if all(_is_number(v) for v in column):
            if head:
                return True  # a word above numbers: the clearest sign there is
            continue
        distinct = set(column)
        if head in distinct:
            votes -= 1  # the first value repeats below: it is data
        elif len(distinct) <= max(2, len(column) // 2):
            votes += 1  # a few repeated values (labels) and a name that is not one of them
        mean = sum(len(v) for v in column) / len(column)
        if len(head.split()) > 5:
            votes -= 2  # a sentence, not a name
        elif mean > len(head) + 8 and len(head.split()) <= 3:
            votes += 1  # a short name over longer texts
    if votes:
        return votes > 0
    with contextlib.suppress(csv.Error):  # no evidence either way: let the Sniffer's length/type vote decide
        return csv.Sniffer().has_header("\n".join(",".join(f'"{c}"' for c in r) for r in rows))
    return False


# --- json / jsonl / parquet ------------------------------------------------------------------------------

_ONE_OBJECT = 'each line must be one JSON object, e.g. {"text": "great film", "label": "pos"}'


def _load_json(path: Path, text: str, fmt: str) -> tuple[Dataset, SplitSource]:
    import pandas as pd

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
        records = []
        lines = text.splitlines()
        line_offset = 1 if all(ln.strip() for ln in lines) else None
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path} line {n} is not valid JSON: {err.msg} (column {err.colno})",
                                _ONE_OBJECT) from None
            if not isinstance(obj, dict):
                raise DataError(f"{path} line {n} holds a JSON {type(obj).__name__}, not an object", _ONE_OBJECT)
            records.append(obj)
    if not records:
        raise DataError(f"{path} holds no examples", "add JSON objects, one per example")
    df = pd.DataFrame.from_records(records)
    for name in df.columns:
        df[name] = _unmix(df[name])
    return _from_pandas(df, _key(path, fmt)), SplitSource(str(path), line_offset=line_offset)


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


def _key(path: Path, *settings: Any) -> str:
    """What a loaded file depends on: its path, size, modification time and how it was read."""
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{settings!r}"


def _dataset(table: pa.Table, key: str, features: Any = None) -> Dataset:
    """An in-memory Dataset with a fingerprint from `key`: without one, datasets hashes the whole table."""
    from datasets import Dataset
    from datasets import DatasetInfo as HFDatasetInfo
    from datasets.table import InMemoryTable

    fingerprint = hashlib.sha256(key.encode()).hexdigest()[:32]
    info = HFDatasetInfo(features=features) if features is not None else None
    return Dataset(InMemoryTable(table), info=info, fingerprint=fingerprint)


def _from_pandas(df: pd.DataFrame, key: str) -> Dataset:
    import pyarrow as pa

    table = pa.Table.from_pandas(df, preserve_index=False)
    # pandas' strings arrive as large_string; plain string is what every other source gives. Cast in Arrow:
    # Dataset.cast would run a map with a progress bar.
    schema = pa.schema([f.with_type(pa.string()) if f.type == pa.large_string() else f for f in table.schema])
    return _dataset(table.cast(schema), key)


def _load_parquet(path: Path, raw: bytes) -> Dataset:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(raw))
    except (pa.ArrowInvalid, OSError) as err:
        raise DataError(f"{path} is not a valid parquet file: {str(err).splitlines()[0]}",
                        "give a parquet file written by pandas/pyarrow, or a csv/jsonl file") from None
    if table.num_rows == 0:
        raise DataError(f"{path} has columns ({', '.join(table.column_names)}) but no rows", "add labelled examples")
    return _dataset(table, _key(path, "parquet"))


# --- Hub --------------------------------------------------------------------------------------------

def hub_dataset_cached(name: str) -> bool:
    """Whether `datasets` has prepared this dataset before (its cache layout: <ns>___<name>/<config>/<ver>/<hash>)."""
    import datasets.config
    from datasets.naming import camelcase_to_snakecase

    parts = name.split("/")
    parts[-1] = camelcase_to_snakecase(parts[-1])
    root = Path(datasets.config.HF_DATASETS_CACHE).expanduser() / "___".join(parts)
    return root.is_dir() and any(p.is_dir() for p in root.glob("*/*/*"))


def _load_hub(hub: HubDataset) -> tuple[DatasetDict, dict[str, SplitSource]]:
    import datasets
    from datasets import DatasetDict

    cached = hub_dataset_cached(hub.name)
    if not cached:
        require_hub("dataset", hub.name, DataError)
    offline = cached and not hub_reachable()
    label = hub.name + (f"/{hub.config}" if hub.config else "")
    old = datasets.config.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = offline or old  # cached and no network: read the cache, no 25 s of retries
    try:
        loaded = datasets.load_dataset(hub.name, hub.config)
    except datasets.exceptions.DatasetNotFoundError as err:
        raise DataError(
            f"Hub dataset {hub.name!r} cannot be found: {err}",
            "check the id on huggingface.co/datasets (and log in with `hf auth login` if it is gated)",
        ) from None
    except ValueError as err:
        msg = str(err)
        if "config" in msg.lower():
            raise DataError(f"Hub dataset {hub.name!r}: {msg}",
                            "set data.hub.config to one of the configurations named above") from None
        raise DataError(f"cannot load Hub dataset {label}: {msg}", "check data.hub") from None
    except ConnectionError as err:
        raise DataError(f"cannot reach the Hub for dataset {label}: {err}", "run where the Hub is reachable") from None
    finally:
        datasets.config.HF_HUB_OFFLINE = old
    if not isinstance(loaded, DatasetDict):
        loaded = DatasetDict({hub.train_split: loaded})
    available = list(loaded)

    def pick(split: str, key: str) -> Dataset:
        if split not in loaded:
            raise DataError(f"Hub dataset {label} has no split {split!r}; it has {', '.join(available)}",
                            f"set data.hub.{key} to one of {', '.join(available)}")
        return loaded[split]

    out = {"train": pick(hub.train_split, "train_split")}
    sources = {"train": SplitSource(f"{label} split {hub.train_split!r}")}
    validation = hub.validation_split or ("validation" if "validation" in loaded else None)
    if validation is not None:
        out["validation"] = pick(validation, "validation_split")
        sources["validation"] = SplitSource(f"{label} split {validation!r}")
    if hub.test_split is not None:
        out["test"] = pick(hub.test_split, "test_split")
        sources["test"] = SplitSource(f"{label} split {hub.test_split!r}")
    return DatasetDict(out), sources


# --- inspection -----------------------------------------------------------------------------------------

def _arrow_column(ds: Dataset, name: str) -> pa.ChunkedArray:
    if getattr(ds, "_indices", None) is None:
        return ds.data.column(name)
    return ds.select_columns([name]).with_format("arrow")[:][name]


def _kind(ds: Dataset, name: str) -> str:
    from datasets import ClassLabel, Value

    feat = ds.features[name]
    if isinstance(feat, ClassLabel):
        return "class_label"
    if isinstance(feat, Value):
        return "string" if feat.dtype in ("string", "large_string") else feat.dtype
    return "list" if type(feat).__name__ in ("List", "Sequence", "LargeList") else type(feat).__name__.lower()


def _train(ds: DatasetDict | Dataset) -> Dataset:
    if hasattr(ds, "features"):
        return ds  # a Dataset
    return ds["train"] if "train" in ds else next(iter(ds.values()))


def _column_info(ds: Dataset, name: str) -> ColumnInfo:
    import pyarrow.compute as pc

    col = _arrow_column(ds, name)
    kind = _kind(ds, name)
    missing = col.null_count
    unique: int | None
    mean_chars = None
    try:
        unique = pc.count_distinct(col).as_py()
    except (NotImplementedError, ValueError, TypeError):
        unique = None
    values = col.drop_null().slice(0, 200).to_pylist()
    if kind == "string":
        blank = pc.sum(pc.equal(pc.utf8_trim_whitespace(col), "")).as_py() or 0
        missing += blank
        mean_chars = pc.mean(pc.utf8_length(col)).as_py()
    names = ds.features[name].names if kind == "class_label" else None
    examples: list[str] = []
    for v in values:
        shown = names[v] if names is not None and isinstance(v, int) and 0 <= v < len(names) else v
        text = str(shown)
        if text not in examples:
            examples.append(text if len(text) <= 80 else text[:77] + "...")
        if len(examples) == 3:
            break
    return ColumnInfo(name, kind, missing, unique, examples, mean_chars, names)


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
    if text is None:
        rest = [n for n in strings if n != label]
        if rest:
            text = max(rest, key=lambda n: infos[n].mean_chars or 0)
            reasons["text"] = f"the longest texts (about {infos[text].mean_chars or 0:.0f} characters)"
    return ColumnSuggestion(text, pair, label, reasons)


def _norm(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def _can_be_label(c: ColumnInfo) -> bool:
    return c.dtype in ("string", "class_label", "bool") or c.dtype.startswith(("int", "uint", "float"))


def inspect_dataset(ds: DatasetDict, label_column: str | None = None, sample: int = 5) -> DatasetInfo:
    """What the wizard shows about the data: rows per split, columns, first rows, suggested columns, class balance."""
    train = _train(ds)
    infos = {name: _column_info(train, name) for name in train.column_names}
    suggestion = _suggest(infos, len(train))
    label = label_column if label_column in infos else suggestion.label
    splits = {name: len(split) for name, split in ds.items()} if not hasattr(ds, "features") else {"train": len(ds)}
    rows = train.select(range(min(sample, len(train)))).to_list() if len(train) else []
    return DatasetInfo(splits, list(infos.values()), rows, suggestion,
                       class_balance(train, label) if label else {}, label)


def class_balance(ds: Dataset, column: str) -> dict[str, int]:
    """Examples per label value, most frequent first; ClassLabel ids shown by name; missing values as '(missing)'."""
    import pyarrow.compute as pc

    col = _arrow_column(ds, column)
    feat = ds.features[column]
    names = getattr(feat, "names", None)
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
            key = names[value]
        else:
            key = str(value).strip()
        counts[key] = counts.get(key, 0) + n
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


# --- preparation -------------------------------------------------------------------------------------------

def prepare_data(cfg: DataConfig) -> PreparedData:
    """Load, check and standardise: splits train/validation[/test], columns text[, text_pair], label (ClassLabel).

    Columns left null in the config are detected; a detected text column brings its detected pair along
    (sentence1 + sentence2), while a configured text_column with no text_pair_column means single texts."""
    raw, sources = _load_raw(cfg)
    for split, ds in raw.items():
        if len(ds) == 0:
            raise DataError(f"the {split} data {sources[split].desc} has no rows", f"give {split} data with examples")
    text, pair, label = _resolve_columns(cfg, raw, sources)
    label_names, label_ids, notes = _encode_labels(raw, sources, label)

    standard = {}
    for split, ds in raw.items():
        standard[split] = _standardise(ds, text, pair, label_ids[split], label_names)
    dataset, validation_source = _split_and_subset(cfg, standard, sources, label_names)
    if cfg.hub is not None:
        source = cfg.hub.name + (f"/{cfg.hub.config}" if cfg.hub.config else "")
    else:
        source = str(cfg.train_file)
    return PreparedData(
        dataset=dataset, label_names=label_names, text_column=text, text_pair_column=pair, label_column=label,
        sizes={k: len(v) for k, v in dataset.items()}, source=source, validation_source=validation_source, notes=notes,
    )


def _resolve_columns(cfg: DataConfig, raw: DatasetDict, sources: dict[str, SplitSource]) -> tuple[str, str | None, str]:
    train = raw["train"]
    suggestion = suggest_columns(train) if cfg.text_column is None or cfg.label_column is None else None
    columns = ", ".join(train.column_names)
    if cfg.text_column is not None:
        text, pair = cfg.text_column, cfg.text_pair_column
    else:
        assert suggestion is not None
        text, pair = suggestion.text, cfg.text_pair_column or suggestion.text_pair
        if text is None:
            raise DataError(f"cannot tell which column of {sources['train'].desc} holds the text (columns: {columns})",
                            "set data.text_column to the column with the text")
    if cfg.label_column is not None:
        label = cfg.label_column
    else:
        assert suggestion is not None
        label = suggestion.label
        if label is None or label in (text, pair):
            raise DataError(
                f"cannot tell which column of {sources['train'].desc} holds the labels (columns: {columns})",
                "set data.label_column to the column with the labels",
            )
    roles = [("data.text_column", text), ("data.text_pair_column", pair), ("data.label_column", label)]
    used = [c for _, c in roles if c is not None]
    if len(set(used)) < len(used):
        raise DataError(f"the same column is used twice: text={text}, text_pair={pair}, label={label}",
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


def _rows(indices: list[int], src: SplitSource, limit: int = 5) -> str:
    shown = ", ".join(str(i + 1) for i in indices[:limit]) + (", ..." if len(indices) > limit else "")
    where = f"data rows {shown} (1 = first data row)"
    if src.line_offset is not None:
        lines = ", ".join(str(i + src.line_offset) for i in indices[:limit]) + (", ..." if len(indices) > limit else "")
        where += f"; file lines {lines}"
    return where


def _check_text_column(ds: Dataset, col: str, key: str, split: str, src: SplitSource) -> None:
    import pyarrow.compute as pc

    kind = _kind(ds, col)
    if kind != "string":
        values = _arrow_column(ds, col).drop_null().slice(0, 3).to_pylist()
        what = "numbers" if kind.startswith(("int", "uint", "float", "double", "bool")) else f"{kind} values"
        raise DataError(
            f"column '{col}' ({key}) in {src.desc} holds {what} (e.g. {', '.join(map(str, values))}), not text",
            f"set {key} to the column with the text; the columns are: {', '.join(ds.column_names)}",
        )
    arr = _arrow_column(ds, col)
    missing = pc.is_null(arr)
    idx = [i for i, m in enumerate(missing.to_pylist()) if m] if arr.null_count else []
    if idx:
        raise DataError(
            f"column '{col}' ({key}) in {src.desc} has {len(idx)} missing value{'s' if len(idx) > 1 else ''}, "
            f"at {_rows(idx, src)}",
            "fill in the text on those rows or delete them",
        )


def _label_values(ds: Dataset, label: str, split: str, src: SplitSource) -> list[Any]:
    """Label values as Python objects, after checking that none is missing."""
    kind = _kind(ds, label)
    if kind not in ("string", "class_label", "bool") and not kind.startswith(("int", "uint", "float")):
        raise DataError(f"label column '{label}' in {src.desc} holds {kind} values; each example needs one class",
                        "give one label per example (multi-label data is not supported)")
    values = _arrow_column(ds, label).to_pylist()
    if kind == "string":
        values = [v.strip() if v is not None else None for v in values]
    missing = [i for i, v in enumerate(values) if v is None or v == "" or (isinstance(v, float) and math.isnan(v))
               or (kind == "class_label" and v < 0)]
    if missing:
        n = len(missing)
        fix = "fill in the labels on those rows or delete them"
        if kind == "class_label" and split != "train":
            fix = f"this split has no labels (they are -1); choose another {split} split, or none"
        raise DataError(
            f"label column '{label}' in {src.desc} has {n} missing value{'s' if n > 1 else ''}, "
            f"at {_rows(missing, src)}",
            fix,
        )
    return values


def _encode_labels(
    raw: DatasetDict, sources: dict[str, SplitSource], label: str
) -> tuple[list[str], dict[str, list[int]], list[str]]:
    """Class names and each split's labels as ids into them: strings sorted (numerically when they are all whole
    numbers), integers in their own order, a ClassLabel's names kept."""
    from datasets import ClassLabel

    values = {split: _label_values(ds, label, split, sources[split]) for split, ds in raw.items()}
    train_feat = raw["train"].features[label]
    notes: list[str] = []
    if isinstance(train_feat, ClassLabel):
        names = list(train_feat.names)
        ids = {}
        index = {n: i for i, n in enumerate(names)}
        for split, vals in values.items():
            feat = raw[split].features[label]
            if isinstance(feat, ClassLabel):
                if list(feat.names) == names:
                    ids[split] = vals
                    continue
                as_names = [feat.names[v] for v in vals]
            else:
                # e.g. a csv validation file beside a parquet saved by datasets: class names, or ids into them
                as_names = [names[v] if isinstance(v, int) and 0 <= v < len(names) else str(_canon(v)) for v in vals]
            unseen = sorted(set(as_names) - set(index))
            if unseen:
                _unseen(split, sources[split], label, unseen)
            ids[split] = [index[n] for n in as_names]
        present = sorted(set(ids["train"]))
    else:
        kinds = {_label_kind(v) for vals in values.values() for v in vals}
        if "float" in kinds:
            bad = next(v for vals in values.values() for v in vals if _label_kind(v) == "float")
            raise DataError(f"label column '{label}' in {sources['train'].desc} holds fractional numbers (e.g. {bad}); "
                            "finetune-tui trains classifiers, not regressors",
                            "give class labels (words or whole numbers), or choose another data.label_column")
        canon = {split: [_canon(v) for v in vals] for split, vals in values.items()}
        train_values = set(canon["train"])
        if all(isinstance(v, int) for v in train_values):
            ordered = sorted(train_values)
            if ordered != list(range(len(ordered))):
                notes.append(f"labels {ordered[:10]} are numbered 0..{len(ordered) - 1} in this order")
        elif all(re.fullmatch(r"-?\d+", str(v)) for v in train_values):
            ordered = sorted(train_values, key=lambda v: int(str(v)))
        else:
            ordered = sorted(train_values, key=str)
        names = [str(v) for v in ordered]
        index = {v: i for i, v in enumerate(ordered)}
        ids = {}
        for split, vals in canon.items():
            unseen = sorted({str(v) for v in vals if v not in index})
            if unseen:
                _unseen(split, sources[split], label, unseen)
            ids[split] = [index[v] for v in vals]
        present = list(range(len(names)))
    if len(present) < 2:
        only = names[present[0]] if present else "?"
        raise DataError(
            f"label column '{label}' in {sources['train'].desc} has only one class ({only!r}); a classifier needs two",
            "add examples of the other classes, or check that data.label_column is the right column",
        )
    return names, ids, notes


def _label_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, float):
        return "int" if v.is_integer() else "float"
    return "int" if isinstance(v, int) else "str"


def _canon(v: Any) -> Any:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float) and v.is_integer():
        return int(v)  # 1.0 from a column pandas made float
    return v


def _unseen(split: str, src: SplitSource, label: str, unseen: list[str]) -> None:
    shown = ", ".join(repr(u) for u in unseen[:10])
    raise DataError(
        f"the {split} data {src.desc} has label{'s' if len(unseen) > 1 else ''} {shown} in column '{label}' "
        "that the training data never has",
        f"add training examples with {'those labels' if len(unseen) > 1 else 'that label'}, "
        f"or remove those rows from the {split} data",
    )


def _standardise(ds: Dataset, text: str, pair: str | None, ids: list[int], names: list[str]) -> Dataset:
    import pyarrow as pa
    from datasets import ClassLabel, Features, Value

    columns = {"text": _arrow_column(ds, text).cast(pa.string())}
    features = {"text": Value("string")}
    if pair is not None:
        columns["text_pair"] = _arrow_column(ds, pair).cast(pa.string())
        features["text_pair"] = Value("string")
    columns["label"] = pa.chunked_array([pa.array(ids, type=pa.int64())])
    features["label"] = ClassLabel(names=names)
    key = f"{ds._fingerprint}|{text}|{pair}|{names}|{hash(tuple(ids))}"
    return _dataset(pa.table(columns), key, Features(features))


def _split_and_subset(
    cfg: DataConfig, splits: dict[str, Dataset], sources: dict[str, SplitSource], names: list[str]
) -> tuple[DatasetDict, str]:
    from datasets import DatasetDict

    train = splits["train"]
    if "validation" in splits:
        validation = splits["validation"]
        how = sources["validation"].desc
    else:
        n = len(train)
        n_val = math.ceil(cfg.validation_fraction * n)
        if n - n_val < 1 or n < 2:
            raise DataError(
                f"the training data {sources['train'].desc} has only {n} row{'s' if n != 1 else ''}: too few to "
                f"hold out {cfg.validation_fraction:.0%} for validation",
                "add examples, or give a validation file (data.validation_file)",
            )
        labels = _arrow_column(train, "label").to_numpy()
        train_idx, val_idx, stratified = split_indices(labels, n_val, cfg.shuffle_seed)
        train, validation = train.select(train_idx), train.select(val_idx)
        how = f"{cfg.validation_fraction:.0%} of the training data" + (" (stratified)" if stratified else "")
    out = {"train": train, "validation": validation}
    if "test" in splits:
        out["test"] = splits["test"]
    if cfg.max_train_samples is not None:
        out["train"] = _subset(out["train"], cfg.max_train_samples, cfg.shuffle_seed)
    if cfg.max_eval_samples is not None:
        for split in ("validation", "test"):
            if split in out:
                out[split] = _subset(out[split], cfg.max_eval_samples, cfg.shuffle_seed)
    return DatasetDict(out), how


def split_indices(labels: Any, n_val: int, seed: int) -> tuple[list[int], list[int], bool]:
    """Shuffled train and validation row indices, n_val of them for validation; stratified (every class in both, in
    proportion) when each class has two or more examples. Our own ~20 lines because datasets' stratified
    train_test_split walks the rows in Python (a minute for 200k rows) and sklearn costs 2 s to import."""
    import numpy as np

    labels = np.asarray(labels)
    n = len(labels)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    if counts.min() < 2 or n_val < len(classes) or n - n_val < len(classes):
        order = rng.permutation(n)
        return order[n_val:].tolist(), order[:n_val].tolist(), False
    exact = counts * n_val / n
    take = np.clip(np.floor(exact).astype(int), 1, counts - 1)
    while take.sum() != n_val:  # largest remainders get the rows left over (or give up the rows too many)
        short = take.sum() < n_val
        room = take < counts - 1 if short else take > 1
        gap = np.where(room, exact - take, -np.inf if short else np.inf)
        i = int(np.argmax(gap)) if short else int(np.argmin(gap))
        take[i] += 1 if short else -1
    val = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take, strict=True)])
    rest = np.setdiff1d(np.arange(n), val)
    return rng.permutation(rest).tolist(), rng.permutation(val).tolist(), True


def _subset(ds: Dataset, n: int, seed: int) -> Dataset:
    if n >= len(ds):
        return ds
    return ds.shuffle(seed=seed).select(range(n))
