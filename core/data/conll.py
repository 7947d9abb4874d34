"""CoNLL files (data.format: conll): one token a line with its columns separated by whitespace or tabs, a blank line
(or one holding only whitespace) between sentences, `-DOCSTART-` lines skipped.

CoNLL-2003 has four columns (token, part of speech, chunk, entity tag); WNUT and most exports have two. The token is
the first column and the tags the last unless data.tags_column_index names another. A UTF-8 byte order mark is
dropped wherever it sits (files joined with `cat` carry one per part), CRLF line ends and a missing last newline are
read as any other. Each sentence becomes a row with `tokens` and `tags` lists; the line it starts on is kept so that
messages about a sentence can name it (SplitSource.row_lines).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from core.data.arrow import SplitSource, file_key, make_dataset
from core.data.files import raise_bad_utf8
from core.errors import DataError

if TYPE_CHECKING:
    from datasets import Dataset

DOCSTART = "-DOCSTART-"
TOKENS, TAGS = "tokens", "tags"  # the columns a CoNLL file is read into


def load_conll(path: Path, tags_column_index: int | None = None) -> tuple[Dataset, SplitSource]:
    import pyarrow as pa
    from datasets import Features, List, Value

    tokens: list[list[str]] = []
    tags: list[list[str]] = []
    starts: list[int] = []
    sentence_tokens: list[str] = []
    sentence_tags: list[str] = []
    width = 0  # columns per line in the current sentence
    width_line = 0

    def close() -> None:
        nonlocal sentence_tokens, sentence_tags, width
        if sentence_tokens:
            tokens.append(sentence_tokens)
            tags.append(sentence_tags)
        sentence_tokens, sentence_tags, width = [], [], 0

    try:
        with open(path, encoding="utf-8", newline="") as f:
            for number, raw in enumerate(f, start=1):
                line = raw.replace("\ufeff", "").rstrip("\r\n")
                if not line.strip():
                    close()
                    continue
                fields = line.split("\t") if "\t" in line else line.split()
                fields = [field.strip() for field in fields]
                if fields[0] == DOCSTART:
                    close()
                    continue
                if len(fields) < 2:
                    raise DataError(f"{path} line {number} holds one column ({line.strip()!r}); a CoNLL file needs a "
                                    "token and its tag on each line", "separate the token and the tag with a tab or "
                                    "spaces, or give the file in another format")
                if not sentence_tokens:
                    width, width_line = len(fields), number
                    starts.append(number)
                elif len(fields) != width:
                    raise DataError(f"{path} line {number} has {len(fields)} columns, but the sentence it belongs to "
                                    f"(from line {width_line}) has {width}",
                                    "give every line of a sentence the same columns, or end the sentence with a "
                                    "blank line before it")
                index = -1 if tags_column_index is None else tags_column_index
                if not -width <= index < width or index in (0, -width):
                    raise DataError(f"data.tags_column_index is {tags_column_index}, but {path} line {number} has "
                                    f"{width} columns (the tokens are column 0)",
                                    f"set data.tags_column_index between 1 and {width - 1}, or leave it out for the "
                                    "last column")
                sentence_tokens.append(fields[0])
                sentence_tags.append(fields[index])
    except UnicodeDecodeError:
        raise_bad_utf8(path)
        raise
    close()
    if not tokens:
        raise DataError(f"{path} holds no sentences (only blank or -DOCSTART- lines)",
                        "give a CoNLL file with one token and its tag per line and a blank line between sentences")
    table = pa.table({TOKENS: pa.array(tokens, pa.list_(pa.string())), TAGS: pa.array(tags, pa.list_(pa.string()))})
    features = Features({TOKENS: List(Value("string")), TAGS: List(Value("string"))})
    dataset = make_dataset(table, file_key(path, "conll", tags_column_index), features)
    return dataset, SplitSource(str(path), row_lines=starts, notes=[f"{path.name}: CoNLL, {len(tokens)} sentences"])
