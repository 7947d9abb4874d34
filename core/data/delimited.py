"""csv and tsv files, read by pyarrow's CSV reader straight into Arrow (no Python object per cell, no copy of the
file as text), with the quirks of real files: a BOM, CRLF, headerless files, blank and whitespace-only lines, `""`
escapes inside quoted text, and TSVs whose fields start with a `"` that is not a CSV quote (the GLUE files).

data.quoting: `csv` reads "quoted" fields (with "" for a quote inside); `none` treats every " as text, so each line
is one row; `auto` is csv, except for a TSV that has a field starting with " where the quoted read breaks or merges
lines: then it is none, and the source's notes say so.

The first rows are parsed with the csv module to detect the header; bad rows found by pyarrow are located again with
the csv module, so a message names the file's real line.
"""

from __future__ import annotations

import contextlib
import csv
import io
import mmap
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from core.data.arrow import SplitSource, file_key, make_dataset
from core.data.files import count_lines, raise_bad_utf8
from core.errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa
    from datasets import Dataset

SAMPLE_ROWS = 50  # rows looked at to detect a header
_BLOCK = 1 << 20  # pyarrow's read block (its default); more in flight at once only raises the peak


@dataclass
class _Attempt:
    """One read of the file with one quoting: the table, or the problem that stopped it; `rows` counts the rows it
    found, good and bad, to tell which quoting kept the file's lines apart."""

    quoting: str
    table: pa.Table | None = None
    problem: DataError | None = None
    rows: int = 0
    has_header: bool = False
    notes: list[str] = field(default_factory=list)


def load_delimited(
    path: Path, head: str, delimiter: str, header: bool | str, column_names: list[str] | None, quoting: str
) -> tuple[Dataset, SplitSource]:
    """A csv/tsv file as a Dataset; `head` is the file's first part as text (core.data.files.decode_head)."""
    attempts = [_read(path, head, delimiter, header, column_names, q)
                for q in _quotings(path, delimiter, quoting)]
    chosen = attempts[0]
    if len(attempts) == 2:
        quoted, unquoted = attempts
        # The quoted read merged lines (a " that opens a field and is never a CSV quote), or broke: no quoting.
        chosen = unquoted if unquoted.rows > quoted.rows or (quoted.problem and not unquoted.problem) else quoted
        if chosen is unquoted and unquoted.table is not None:
            chosen.notes.append(f"read with no quote processing (data.quoting: none): fields in {path.name} start "
                                "with a \" that is not a CSV quote, as in the GLUE files")
    if chosen.problem is not None:
        raise chosen.problem
    assert chosen.table is not None
    table = _drop_blank_rows(chosen.table)
    key = file_key(path, delimiter, chosen.has_header, table.column_names, chosen.quoting)
    # Data row i is file line i + offset only when every line is one row: no blank lines, no quoted line breaks.
    lines_are_rows = table.num_rows + chosen.has_header == count_lines(path)
    source = SplitSource(str(path), (2 if chosen.has_header else 1) if lines_are_rows else None, notes=chosen.notes,
                         header=chosen.has_header, quoting=chosen.quoting)
    return make_dataset(_numbers(table), key), source


def _drop_blank_rows(table: pa.Table) -> pa.Table:
    """Rows whose every cell is empty or whitespace (a separator line of tabs and spaces) are blank lines."""
    import pyarrow.compute as pc

    blank = None
    for col in table.columns:
        empty = pc.or_kleene(pc.is_null(col), pc.utf8_is_space(col))
        blank = empty if blank is None else pc.and_kleene(blank, empty)
    if blank is None or not pc.any(blank).as_py():
        return table
    return table.filter(pc.invert(blank))


def _quotings(path: Path, delimiter: str, quoting: str) -> list[str]:
    if quoting != "auto":
        return [quoting]
    if delimiter != "\t" or not _field_starts_with_quote(path):
        return ["csv"]
    return ["csv", "none"]


def _field_starts_with_quote(path: Path) -> bool:
    with open(path, "rb") as f, contextlib.suppress(ValueError), mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        return re.search(rb'(?:^|\t)"', m, re.MULTILINE) is not None
    return False


def _sample(head: str, cut: bool, delimiter: str, quoting: str) -> tuple[list[list[str]], csv.Error | None]:
    """The first rows of the head (the last one dropped when the head is `cut` from a longer file)."""
    reader = csv.reader(io.StringIO(head), delimiter=delimiter,
                        quoting=csv.QUOTE_NONE if quoting == "none" else csv.QUOTE_MINIMAL)
    rows: list[list[str]] = []
    try:
        for row in reader:
            if row and any(c.strip() for c in row):
                rows.append(row)
            if len(rows) > SAMPLE_ROWS:
                return rows[:-1], None
    except csv.Error as err:
        return rows, err
    if cut and len(rows) > 1:
        rows.pop()
    return rows, None


def _read(path: Path, head: str, delimiter: str, header: bool | str, column_names: list[str] | None,
          quoting: str) -> _Attempt:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    attempt = _Attempt(quoting)
    cut = path.stat().st_size > len(head.encode()) + 3  # + a BOM, which decoding dropped
    rows, error = _sample(head, cut, delimiter, quoting)
    if not rows:
        if cut and "\n" not in head:
            raise DataError(f"{path} starts with a line of more than {len(head):,} characters",
                            "give one example per line: a header row, then one labelled example a line")
        if error is not None:
            attempt.problem = DataError(f"{path} cannot be parsed near its start: {error}",
                                        "check the quoting there, or set data.quoting: none")
            return attempt
        raise DataError(f"data file {path} is empty", "give a file with a header row and labelled examples")
    _check_columns_found(path, head, rows, delimiter)
    has_header = looks_like_header(rows) if header == "auto" else bool(header)
    attempt.has_header = has_header
    width = len(rows[0])
    if column_names is not None:
        if len(column_names) != width:
            raise DataError(
                f"data.column_names gives {len(column_names)} names ({', '.join(column_names)}) but {path} has "
                f"{width} columns",
                f"give exactly {width} names in data.column_names",
            )
        names = list(column_names)
    elif has_header:
        names = [c.strip() or f"column_{i}" for i, c in enumerate(rows[0])]
        names = [n if names.index(n) == i else f"{n}_{i}" for i, n in enumerate(names)]
    else:
        names = [f"column_{i}" for i in range(width)]

    bad: list[int] = []  # pyarrow's bad rows: counted here, located by line afterwards

    def on_bad_row(row: pacsv.InvalidRow) -> str:
        if row.text.strip():
            bad.append(row.actual_columns)
        return "skip"  # a whitespace-only line is a blank line

    quoted = quoting != "none"
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1 if has_header else 0, block_size=_BLOCK),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, quote_char='"' if quoted else False,
                                             double_quote=True, newlines_in_values=quoted,
                                             invalid_row_handler=on_bad_row),
            # Every column as text; _numbers finds the numeric ones. Only an empty cell is missing: "NA", "None"
            # and "null" are words.
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()), null_values=[""],
                                                 strings_can_be_null=True, quoted_strings_can_be_null=True),
        )
    except pa.ArrowInvalid as err:
        if "UTF8" in str(err) or "UTF-8" in str(err):
            raise_bad_utf8(path)
        attempt.problem = DataError(f"{path} cannot be parsed: {str(err).strip().splitlines()[0]}",
                                    "check that it is a valid csv/tsv file")
        return attempt
    attempt.rows = table.num_rows + len(bad)
    if bad:
        attempt.problem = _locate_bad_row(path, delimiter, quoting, width, has_header)
        return attempt
    if table.num_rows == 0:
        raise DataError(f"{path} has a header row ({', '.join(names)}) but no data rows",
                        "add labelled examples below the header" + (
                            "; if this row is data, set data.header: false" if header == "auto" else ""))
    attempt.table = table
    return attempt


def _locate_bad_row(path: Path, delimiter: str, quoting: str, width: int, has_header: bool) -> DataError:
    """The first row whose field count is not `width`, by its line in the file (streaming: only on the error path)."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter, quoting=csv.QUOTE_NONE if quoting == "none" else csv.QUOTE_MINIMAL)
        start = reader.line_num
        try:
            for i, row in enumerate(reader):
                if (i == 0 and has_header) or not any(c.strip() for c in row):
                    start = reader.line_num
                    continue
                if len(row) != width:
                    return _ragged(path, start + 1, reader.line_num, len(row), width, delimiter, has_header, quoting)
                start = reader.line_num
        except csv.Error as err:
            return DataError(f"{path} cannot be parsed at line {reader.line_num}: {err}",
                             "check the quoting on that line, or set data.quoting: none")
    if quoting != "none":
        return DataError(f"{path} is malformed: a quote (\") opened after line {start} is never closed",
                         "close the quote, double quotes that are part of the text (\"\"), or set data.quoting: none "
                         "if a \" at the start of a field is text")
    return DataError(f"{path} is malformed: a row does not have {width} fields", "check the file's separators")


def _ragged(path: Path, first: int, last: int, got: int, want: int, delimiter: str, has_header: bool,
            quoting: str) -> DataError:
    which = "the header" if has_header else "line 1"
    sep = "tab" if delimiter == "\t" else f"'{delimiter}'"
    lines = f"line {first}" if first == last else f"lines {first}-{last} (one quoted row)"
    if quoting == "none":
        fix = f"fix line {first} so that it has {want} fields (a {sep} inside the text splits it)"
    else:
        fix = (f"put double quotes around text that contains a {sep} (\"like{delimiter} this\"), "
               f"or fix {lines} so that every row has {want} fields")
        if first != last:
            fix += "; if a \" at the start of a field is text, set data.quoting: none"
    return DataError(f"{path} is malformed: {lines} has {got} fields but {which} has {want}", fix)


def _numbers(table: pa.Table) -> pa.Table:
    """Columns whose every value is a whole number become int64, and decimal numbers float64; the rest stay text."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for i, name in enumerate(table.column_names):
        col = table.column(i)
        if col.null_count == len(col):
            continue
        for kind in (pa.int64(), pa.float64()):
            try:
                cast = pc.cast(col, kind)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue
            if kind == pa.float64() and not pc.all(pc.is_finite(cast)).as_py():
                break  # "nan" and "inf" are words here
            table = table.set_column(i, name, cast)
            break
    return table


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


