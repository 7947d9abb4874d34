"""Batch prediction: a csv, tsv, jsonl or plain text file of texts in, the same rows with the task's answer out
(text-classification: the predicted label and each label's probability; token-classification: the entities with
their offsets). Predictions come from core.predict, so it works for a model of every engine.

Output, in the input's format (json input and .txt, one text per line, give jsonl):
    csv/tsv   the input's columns, then the task's columns (Task.file_columns)
    jsonl     each input object (a .txt line: {"text": line}) with the task's answer added (Task.answer_json)
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

INPUT_FORMATS = ("csv", "tsv", "jsonl", "json", "lines")
_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json",
             ".txt": "lines"}
_DIGITS = 6


@dataclass
class FileResult:
    output: Path
    rows: int
    text_column: str
    text_pair_column: str | None
    summary: str = ""  # the task's line on the answers, e.g. "neg=30, pos=12"


def default_output(input_path: Path) -> Path:
    fmt = _format(input_path)
    suffix = ".jsonl" if fmt in ("json", "jsonl", "lines") else input_path.suffix
    return input_path.with_name(f"{input_path.stem}.predictions{suffix}")


def predict_file(
    model: str | Path, input_path: str | Path, output_path: str | Path | None = None, *, predictor: Any = None,
    text_column: str | None = None, text_pair_column: str | None = None, batch_size: int = 32,
    overwrite: bool = False,
) -> FileResult:
    """Predict every row of input_path and write output_path (default: <input>.predictions.<ext>)."""
    input_path = Path(input_path).expanduser()
    output = Path(output_path).expanduser() if output_path is not None else default_output(input_path)
    if output.resolve() == input_path.resolve():
        raise DataError(f"the output file {output} is the input file", "give another --output path")
    if output.exists() and not overwrite:
        raise DataError(f"the output file {output} already exists", "give another --output path, or pass --overwrite")
    fmt = _format(input_path)
    table = read_table(input_path, fmt)
    if predictor is None:
        from core.predict import load_predictor

        predictor = load_predictor(model)
    trained_text, trained_pair = training_columns(model, predictor)
    text_col = _pick_text(table, text_column, trained_text, input_path)
    pair_col = _pick_pair(table, text_pair_column, trained_pair, text_col, input_path)
    texts = [_text(v) for v in table[text_col].tolist()]
    pairs = [_text(v) for v in table[pair_col].tolist()] if pair_col is not None else None
    answers = predictor.predict(texts, pairs, batch_size=batch_size)
    _write(output, "jsonl" if fmt in ("json", "lines") else fmt, table, predictor, answers)
    return FileResult(output, len(texts), text_col, pair_col, predictor.task.answers_summary(answers))


def training_columns(model: str | Path, predictor: Any) -> tuple[str | None, str | None]:
    """The text and pair column names the model was trained with, when known: a run directory records them in its
    config.yaml, beside the model/ directory the predictor loaded."""
    from core.config import load_config
    from core.errors import ConfigError

    places = [Path(model) / "config.yaml"]
    if getattr(predictor, "path", None) is not None:
        places.append(Path(predictor.path).parent / "config.yaml")
    for config_path in places:
        if config_path.is_file():
            try:
                data = load_config(config_path).data
            except ConfigError:
                continue
            return data.text_column, data.text_pair_column
    return None, None


def _format(path: Path) -> str:
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"cannot tell the format of {path} from its extension '{path.suffix or '(none)'}'",
                        "give a .csv, .tsv, .jsonl or .txt (one text per line) file")
    return fmt


def read_table(path: Path, fmt: str) -> pd.DataFrame:
    """The rows of a csv/tsv (header row detected) or json/jsonl file, every value kept as written."""
    import pandas as pd

    if not path.is_file():
        raise DataError(f"input file {path} does not exist" if not path.exists() else f"{path} is not a file",
                        "check the path given to --input")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text", "save it as UTF-8 (e.g. 'CSV UTF-8' in a spreadsheet)") from None
    if not text.strip():
        raise DataError(f"input file {path} is empty", "give a file with one text per row")
    if fmt == "lines":
        return pd.DataFrame({"text": [line.strip() for line in text.splitlines() if line.strip()]})
    if fmt in ("csv", "tsv"):
        from core.data import looks_like_header

        sep = "\t" if fmt == "tsv" else ","
        head = [r for r in csv.reader(io.StringIO(text[:1 << 18]), delimiter=sep) if r][:50]
        header = looks_like_header(head) if len(head) > 1 else False
        try:
            table = pd.read_csv(io.StringIO(text), sep=sep, header=0 if header else None, dtype=str,
                                keep_default_na=False)
        except (pd.errors.ParserError, csv.Error) as err:
            raise DataError(f"{path} cannot be parsed: {str(err).strip().splitlines()[-1]}",
                            "put double quotes around texts that contain the separator") from None
        if not header:
            table.columns = [f"column_{i}" for i in range(table.shape[1])]
        table.columns = [str(c).strip() for c in table.columns]
        return table
    records = _json_records(path, text, fmt)
    return pd.DataFrame.from_records(records)


def _json_records(path: Path, text: str, fmt: str) -> list[dict[str, Any]]:
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            fmt = "jsonl"  # one object per line in a .json file
        else:
            if isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
                return data
            raise DataError(f"{path} does not hold a list of objects",
                            'give e.g. [{"text": "great film"}, ...] or one object per line (jsonl)')
    from core.data.json_files import json_lines

    return json_lines(path, text, 'each line must be one JSON object, e.g. {"text": "great film"}')


def _pick_text(table: pd.DataFrame, given: str | None, trained: str | None, path: Path) -> str:
    columns = [str(c) for c in table.columns]
    if given is not None:
        if given not in columns:
            raise DataError(f"column '{given}' is not in {path}; its columns are: {', '.join(columns)}",
                            "give one of those to --text-column")
        return given
    for name in (trained, "text", "sentence"):
        if name is not None and name in columns:
            return name
    if len(columns) == 1:
        return columns[0]
    texts = [c for c in columns if table[c].map(lambda v: isinstance(v, str)).all()]
    if texts:  # the longest texts are the ones to classify
        return max(texts, key=lambda c: table[c].str.len().mean())
    raise DataError(f"cannot tell which column of {path} holds the texts (columns: {', '.join(columns)})",
                    "name it with --text-column")


def _pick_pair(table: pd.DataFrame, given: str | None, trained: str | None, text: str, path: Path) -> str | None:
    columns = [str(c) for c in table.columns]
    if given is not None:
        if given not in columns:
            raise DataError(f"column '{given}' is not in {path}; its columns are: {', '.join(columns)}",
                            "give one of those to --pair-column")
        return given
    if trained is None:
        return None
    if trained in columns and trained != text:
        return trained
    raise DataError(f"this model was trained on text pairs, but {path} has no column '{trained}' for the second text",
                    "name the second text's column with --pair-column")


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return value if isinstance(value, str) else str(value)


def _write(output: Path, fmt: str, table: pd.DataFrame, predictor: Any, answers: list[dict[str, Any]]) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    if fmt in ("csv", "tsv"):
        out = table.copy()
        for name, values in predictor.task.file_columns(answers, predictor.meta).items():
            out[name] = values
        out.to_csv(tmp, sep="\t" if fmt == "tsv" else ",", index=False)
    else:
        with open(tmp, "w", encoding="utf-8") as f:
            for record, answer in zip(table.to_dict("records"), answers, strict=True):
                out_row = {k: v for k, v in record.items() if not (isinstance(v, float) and v != v)}  # absent keys
                out_row.update(predictor.task.answer_json(answer))
                f.write(json.dumps(out_row, ensure_ascii=False) + "\n")
    tmp.replace(output)
