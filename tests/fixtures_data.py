"""Fixtures for the data and tokenization tests: a tiny BERT tokenizer and small data files of every format.

Use them in a test module with `from tests.fixtures_data import data_dir_fixture  # noqa: F401` (and/or
tiny_tokenizer_dir_fixture); tests then ask for `data_dir` / `tiny_tokenizer_dir`. The functions are registered
under those names so that test parameters do not shadow the import (ruff F811).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

WORDS = ["the", "a", "movie", "film", "was", "is", "good", "great", "bad", "awful", "plot", "acting", "i", "loved",
         "hated", "it", "very", "and", "boring", "fun", "what", "who", "why", "yes", "no"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

POS = ["the movie was great", "i loved it", "great acting and a fun plot", "a very good film", "fun fun fun",
       "the plot is good", "i loved the acting", "great film", "very good", "it was fun"]
NEG = ["the movie was bad", "i hated it", "awful acting and a boring plot", "a very bad film", "boring",
       "the plot is awful", "i hated the acting", "bad film", "very boring", "it was awful"]


def build_tiny_tokenizer(directory: Path) -> Path:
    """A BERT WordPiece tokenizer over WORDS plus a tiny BertConfig, so core.models.resolve_model accepts the dir."""
    from transformers import BertConfig, BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    vocab = directory / "vocab.txt"
    vocab.write_text("\n".join(SPECIAL + WORDS) + "\n", encoding="utf-8")
    # transformers 5 takes the vocab as `vocab=` (a path or a dict); `vocab_file=` is silently ignored.
    tokenizer = BertTokenizerFast(vocab=str(vocab), do_lower_case=True)
    tokenizer.model_max_length = 64
    tokenizer.save_pretrained(directory)
    BertConfig(vocab_size=len(SPECIAL) + len(WORDS), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=16, max_position_embeddings=64).save_pretrained(directory)
    return directory


@pytest.fixture(scope="session", name="tiny_tokenizer_dir")
def tiny_tokenizer_dir_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_tokenizer(tmp_path_factory.mktemp("tiny-tokenizer"))


def rows(n: int = 20) -> list[tuple[str, str]]:
    """n (text, label) rows alternating pos and neg."""
    return [(POS[i // 2 % len(POS)], "pos") if i % 2 == 0 else (NEG[i // 2 % len(NEG)], "neg") for i in range(n)]


def write_delimited(
    path: Path, data: list[tuple[str, ...]], sep: str = ",", header: tuple[str, ...] | None = None
) -> Path:
    lines = ([sep.join(header)] if header else []) + [sep.join(r) for r in data]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(name="data_dir")
def data_dir_fixture(tmp_path: Path) -> Path:
    """Small files of every format, all 20 rows of movie reviews labelled pos/neg unless the name says otherwise:

    train.csv (header text,label)    headerless.csv (no header)    train.tsv (header sentence,label)
    notes.txt (tab-separated)        train.jsonl                   train.json (list of objects)
    columns.json (column lists)      train.parquet                 pairs.jsonl (sentence1, sentence2, label 0/1)
    valid.csv (6 rows)               test.csv (4 rows)             ints.csv (labels 0/1/2, 30 rows)
    glue.tsv (GLUE's quoting quirks, a sentence pair, labels 0/1)
    """
    import pandas as pd

    data = rows(20)
    write_delimited(tmp_path / "train.csv", data, header=("text", "label"))
    write_delimited(tmp_path / "headerless.csv", data)
    write_delimited(tmp_path / "train.tsv", data, sep="\t", header=("sentence", "label"))
    write_delimited(tmp_path / "notes.txt", data, sep="\t", header=("text", "label"))
    (tmp_path / "train.jsonl").write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in data))
    (tmp_path / "train.json").write_text(json.dumps([{"review": t, "sentiment": y} for t, y in data]))
    (tmp_path / "columns.json").write_text(json.dumps({"text": [t for t, _ in data], "label": [y for _, y in data]}))
    pd.DataFrame({"content": [t for t, _ in data], "category": [y for _, y in data]}).to_parquet(
        tmp_path / "train.parquet", index=False)
    pairs = [{"sentence1": POS[i % 10], "sentence2": POS[(i + 1) % 10] if i % 2 == 0 else NEG[i % 10],
              "label": int(i % 2 == 0)} for i in range(20)]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    write_delimited(tmp_path / "valid.csv", rows(6), header=("text", "label"))
    write_delimited(tmp_path / "test.csv", rows(4), header=("text", "label"))
    write_delimited(tmp_path / "ints.csv", [(POS[i % 10], str(i % 3)) for i in range(30)], header=("text", "label"))
    # GLUE's quirks: BOM, CRLF, fields that start with a " that is no CSV quote, "" inside text, a whitespace-only line.
    glue = ["\ufeffQuality\t#1 String\t#2 String"]
    glue += [f'{i % 2}\t"{POS[i % 10]} , he said .\t{NEG[i % 10]} with "" in it' for i in range(20)]
    glue.insert(7, " \t \t ")
    (tmp_path / "glue.tsv").write_bytes("\r\n".join(glue).encode() + b"\r\n")
    return tmp_path
