"""A local data file: checked (exists, not a directory, not binary, UTF-8), its format told, and read by the reader
for that format. Only the first HEAD_BYTES are read here; the readers stream or memory-map the rest, so a file is
never held twice in memory."""

from __future__ import annotations

import codecs
import difflib
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, NoReturn

from core.data.arrow import SplitSource
from core.errors import DataError

if TYPE_CHECKING:
    from datasets import Dataset

FILE_FORMATS = ("csv", "tsv", "json", "jsonl", "parquet", "conll")
EXTENSIONS = {
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl",
    ".parquet": "parquet", ".pq": "parquet", ".conll": "conll",
}
HEAD_BYTES = 1 << 18  # read up front: the magic bytes, the header and the rows that detect it
_MAGIC = {b"PAR1": "a parquet file", b"PK\x03\x04": "a zip archive (or an Excel .xlsx workbook)",
          b"\x1f\x8b": "a gzip archive", b"\xd0\xcf\x11\xe0": "an old Excel .xls workbook", b"%PDF": "a PDF"}
_UTF8_FIX = "save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 in > out`, or 'CSV UTF-8' in a spreadsheet)"


def detect_format(path: Path, text_head: str | None = None) -> str:
    """The file format from the extension; a .txt is tsv when its first line has tabs, csv when it has commas."""
    suffix = path.suffix.lower()
    if suffix in EXTENSIONS:
        return EXTENSIONS[suffix]
    if suffix in (".txt", ".dat", "") and text_head is not None:
        first = text_head.split("\n", 1)[0]
        if "\t" in first:
            return "tsv"
        if "," in first:
            return "csv"
    raise DataError(
        f"cannot tell the format of {path} from its extension '{suffix or '(none)'}'",
        f"name the file .csv, .tsv, .json, .jsonl, .parquet or .conll, or set data.format to one of "
        f"{', '.join(FILE_FORMATS)}",
    )


def load_file(
    path: str | Path, fmt: str = "auto", header: bool | str = "auto", column_names: list[str] | None = None,
    quoting: str = "auto", tags_column_index: int | None = None,
) -> tuple[Dataset, SplitSource]:
    """One local file as a Dataset, with checks that name the file and the fix."""
    from core.data.conll import load_conll
    from core.data.delimited import load_delimited
    from core.data.json_files import load_json, load_parquet

    path = Path(path).expanduser()
    _check_path(path)
    head = read_head(path)
    if fmt == "auto" and path.suffix.lower() in (".parquet", ".pq"):
        fmt = "parquet"
    if fmt == "parquet":
        return load_parquet(path), SplitSource(str(path))
    text_head = decode_head(path, head)
    if fmt == "auto":
        fmt = detect_format(path, text_head[:4096])
    if fmt == "conll":
        return load_conll(path, tags_column_index)
    if fmt in ("csv", "tsv"):
        return load_delimited(path, text_head, "\t" if fmt == "tsv" else ",", header, column_names, quoting)
    return load_json(path, fmt)


def _check_path(path: Path) -> None:
    try:
        _check_path_exists(path)
    except OSError as err:  # e.g. a name longer than the file system allows
        raise DataError(f"cannot use data file {str(path)[:200]}: {err.strerror}",
                        "check the path in the config") from None


def _check_path_exists(path: Path) -> None:
    if path.is_dir():
        inside = sorted(p.name for p in path.iterdir() if p.suffix.lower() in {*EXTENSIONS, ".txt"})
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


def read_head(path: Path) -> bytes:
    """The first HEAD_BYTES of the file; an empty or blank file is an error here."""
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
            if head.isspace():
                while (more := f.read(HEAD_BYTES)) and more.isspace():
                    pass
                head = head if not more else head + more
    except OSError as err:
        raise DataError(f"cannot read data file {path}: {err.strerror}",
                        "check that the file is readable by you") from None
    if not head or head.isspace():
        raise DataError(f"data file {path} is empty", "give a file with a header row and labelled examples")
    return head


def decode_head(path: Path, head: bytes) -> str:
    """The head as text, after refusing UTF-16 and binary files. A multi-byte character cut at the end of the head is
    dropped; invalid UTF-8 inside it is reported with its line and byte."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(f"{path} is UTF-16 text; finetune-tui reads UTF-8",
                        "save it as UTF-8 (e.g. `iconv -f utf-16 -t utf-8 in > out`, or 'CSV UTF-8' in a spreadsheet)")
    for magic, what in _MAGIC.items():
        if head.startswith(magic):
            fix = ("name it .parquet or set data.format: parquet" if magic == b"PAR1"
                   else "export the data as csv, tsv, json, jsonl or parquet")
            raise DataError(f"{path} is {what}, not a text data file", fix)
    if b"\x00" in head[:8192]:
        raise DataError(f"{path} is a binary file, not text", "give a csv, tsv, json, jsonl or parquet file")
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        return decoder.decode(head, final=len(head) < HEAD_BYTES)
    except UnicodeDecodeError:
        raise_bad_utf8(path)
        raise


def count_lines(path: Path) -> int:
    """Lines in the file (a last line without a newline counts), streaming through one small buffer."""
    count, last, buf = 0, b"", bytearray(1 << 20)  # one small buffer, reused: a big file is not held
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            count += buf.count(b"\n", 0, n)
            last = buf[n - 1:n]
    return count + (last != b"\n")


def raise_bad_utf8(path: Path) -> None:
    """Find the first byte of the file that is not UTF-8 (streaming, so a big file is not held) and report it by line
    and byte. Called only once a reader has met bad text."""
    base, pending = 0, b""
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 22)
            data = pending + chunk
            if not data:
                return
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as err:
                if chunk and err.end == len(data) and len(data) - err.start <= 3:
                    pending, base = data[err.start:], base + err.start  # a character cut by the chunk's end
                    continue
                _report_bad_byte(path, f, base + err.start)
            if not chunk:
                return
            pending, base = b"", base + len(data)


def _report_bad_byte(path: Path, f: BinaryIO, offset: int) -> NoReturn:
    f.seek(0)
    line, line_start, pos = 1, 0, 0
    while pos < offset and (chunk := f.read(min(1 << 22, offset - pos))):
        line += chunk.count(b"\n")
        if (last := chunk.rfind(b"\n")) >= 0:
            line_start = pos + last + 1
        pos += len(chunk)
    f.seek(offset)
    byte = f.read(1)[0]
    raise DataError(f"{path} is not valid UTF-8: byte 0x{byte:02x} at line {line}, byte {offset - line_start + 1} of "
                    f"that line (offset {offset})", _UTF8_FIX)
