"""core.data: every file format, header detection, label encoding, validation splits, subsets, and each DataError."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from core.config import DataConfig, HubDataset
from core.data import inspect_dataset, load_file, load_raw, looks_like_header, prepare_data, suggest_columns
from core.errors import DataError
from tests.fixtures_data import NEG, POS, data_dir_fixture, rows, write_delimited  # noqa: F401


def cfg(path: Path, **kw: object) -> DataConfig:
    return DataConfig(train_file=path, **kw)


def raises(config: DataConfig, *needles: str) -> DataError:
    """prepare_data fails with a DataError whose message holds every needle (and a fix)."""
    with pytest.raises(DataError) as info:
        prepare_data(config)
    err = info.value
    assert err.fix, f"no fix in: {err.message}"
    for needle in needles:
        assert needle in err.message, f"{needle!r} not in: {err.message}"
    return err


# --- formats ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("name", "text", "label"),
    [("train.csv", "text", "label"), ("train.tsv", "sentence", "label"), ("notes.txt", "text", "label"),
     ("train.jsonl", "text", "label"), ("train.json", "review", "sentiment"), ("columns.json", "text", "label"),
     ("train.parquet", "content", "category")],
)
def test_every_format_loads_and_prepares(data_dir: Path, name: str, text: str, label: str) -> None:
    prepared = prepare_data(cfg(data_dir / name))
    assert (prepared.text_column, prepared.label_column, prepared.text_pair_column) == (text, label, None)
    assert prepared.label_names == ["neg", "pos"]
    train = prepared.dataset["train"]
    assert train.column_names == ["text", "label"]
    assert train.features["label"].names == ["neg", "pos"]
    assert prepared.sizes == {"train": 18, "validation": 2}
    row = train[0]
    assert row["text"] in POS + NEG
    assert (row["label"] == 1) == (row["text"] in POS)  # labels survive the encoding


def test_explicit_format_overrides_extension(data_dir: Path) -> None:
    odd = data_dir / "data.records"
    odd.write_text((data_dir / "train.jsonl").read_text())
    with pytest.raises(DataError, match="cannot tell the format"):
        load_raw(cfg(odd))
    assert load_raw(cfg(odd, format="jsonl"))["train"].column_names == ["text", "label"]


def test_json_file_holding_json_lines_is_read_as_jsonl(data_dir: Path) -> None:
    lines = data_dir / "lines.json"
    lines.write_text((data_dir / "train.jsonl").read_text())
    assert len(load_raw(cfg(lines))["train"]) == 20


# --- headers ------------------------------------------------------------------------------------------------

def test_header_auto_detects_header_and_no_header(data_dir: Path) -> None:
    assert load_raw(cfg(data_dir / "train.csv"))["train"].column_names == ["text", "label"]
    headerless = load_raw(cfg(data_dir / "headerless.csv"))["train"]
    assert headerless.column_names == ["column_0", "column_1"]
    assert len(headerless) == 20  # the first row is data, not lost
    prepared = prepare_data(cfg(data_dir / "headerless.csv"))
    assert (prepared.text_column, prepared.label_column) == ("column_0", "column_1")


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ([["text", "label"], ["i loved it", "1"], ["bad", "0"]], True),  # a word above numbers
        ([["i loved it", "1"], ["bad", "0"], ["fine", "1"]], False),  # a number in the first row
        ([["review", "sentiment"], ["what a great film this was", "pos"], ["awful and boring plot", "neg"],
          ["good", "pos"]], True),
        ([["what a great film this was", "pos"], ["awful and boring plot", "neg"], ["good", "pos"]], False),
        ([["a", "a"], ["b", "c"]], False),  # duplicate names are not a header
    ],
)
def test_looks_like_header(table: list[list[str]], expected: bool) -> None:
    assert looks_like_header(table) is expected


def test_headerless_with_column_names(data_dir: Path) -> None:
    prepared = prepare_data(cfg(data_dir / "headerless.csv", header=False, column_names=["review", "stars"]))
    assert (prepared.text_column, prepared.label_column) == ("review", "stars")
    assert sum(prepared.sizes.values()) == 20


def test_header_true_keeps_first_row_as_names(data_dir: Path) -> None:
    raw = load_raw(cfg(data_dir / "headerless.csv", header=True))["train"]
    assert len(raw) == 19 and raw.column_names == [POS[0], "pos"]


def test_column_names_count_must_match(data_dir: Path) -> None:
    raises(cfg(data_dir / "headerless.csv", header=False, column_names=["a", "b", "c"]),
           "3 names", "2 columns", "headerless.csv")


# --- labels -----------------------------------------------------------------------------------------------------

def test_integer_labels_keep_their_order(data_dir: Path) -> None:
    prepared = prepare_data(cfg(data_dir / "ints.csv"))
    assert prepared.label_names == ["0", "1", "2"]
    train = prepared.dataset["train"]
    for row in train:
        assert row["text"] in POS  # every text; the label is i % 3 from the fixture
    assert sorted(set(train["label"])) == [0, 1, 2]


def test_sparse_integer_labels_are_numbered_in_order(tmp_path: Path) -> None:
    path = write_delimited(tmp_path / "stars.csv", [(POS[i % 10], ("1", "5", "3")[i % 3]) for i in range(30)],
                           header=("text", "stars"))
    prepared = prepare_data(cfg(path))
    assert prepared.label_names == ["1", "3", "5"]
    assert prepared.notes and "numbered" in prepared.notes[0]


def test_numeric_string_labels_sort_numerically(tmp_path: Path) -> None:
    path = tmp_path / "n.jsonl"
    path.write_text("".join(json.dumps({"text": POS[i % 10], "label": ("2", "10")[i % 2]}) + "\n" for i in range(10)))
    assert prepare_data(cfg(path)).label_names == ["2", "10"]


def test_mixed_json_label_types_become_text(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps({"text": POS[i % 10], "label": (1, "two")[i % 2]}) + "\n" for i in range(10)))
    assert prepare_data(cfg(path)).label_names == ["1", "two"]


def test_fractional_labels_are_refused(tmp_path: Path) -> None:
    data = [(POS[i % 10], str(i / 7)) for i in range(10)]
    path = write_delimited(tmp_path / "reg.csv", data, header=("text", "score"))
    raises(cfg(path, label_column="score"), "fractional", "'score'", "reg.csv")


def test_string_labels_are_stripped(tmp_path: Path) -> None:
    path = write_delimited(tmp_path / "sp.csv", [(POS[i % 10], (" pos", "neg ")[i % 2]) for i in range(10)],
                           header=("text", "label"))
    assert prepare_data(cfg(path)).label_names == ["neg", "pos"]


def test_parquet_saved_by_datasets_keeps_class_names(data_dir: Path) -> None:
    from datasets import ClassLabel, Dataset, Features, Value

    features = Features({"text": Value("string"), "label": ClassLabel(names=["negative", "positive"])})
    data = rows(20)
    Dataset.from_dict({"text": [t for t, _ in data], "label": [int(y == "pos") for _, y in data]},
                      features=features).to_parquet(data_dir / "hf.parquet")
    valid = write_delimited(data_dir / "v.csv", [(t, "positive" if y == "pos" else "negative") for t, y in rows(4)],
                            header=("text", "label"))
    prepared = prepare_data(cfg(data_dir / "hf.parquet", validation_file=valid))
    assert prepared.label_names == ["negative", "positive"]
    assert prepared.dataset["validation"]["label"] == [1, 0, 1, 0]


# --- validation split and subsets --------------------------------------------------------------------------

def test_validation_split_is_made_stratified_and_repeatable(data_dir: Path) -> None:
    config = cfg(data_dir / "train.csv", validation_fraction=0.2, shuffle_seed=7)
    prepared = prepare_data(config)
    validation = prepared.dataset["validation"]
    assert prepared.sizes == {"train": 16, "validation": 4}
    assert sorted(validation["label"]) == [0, 0, 1, 1]  # 2 of each class: stratified
    assert "stratified" in prepared.validation_source
    assert prepare_data(config).dataset["validation"]["text"] == validation["text"]
    other = prepare_data(cfg(data_dir / "train.csv", validation_fraction=0.2, shuffle_seed=8))
    assert other.dataset["validation"]["text"] != validation["text"]


def test_validation_not_stratified_when_a_class_has_one_example(tmp_path: Path) -> None:
    data = [*rows(18), ("what", "other")]
    prepared = prepare_data(cfg(write_delimited(tmp_path / "t.csv", data, header=("text", "label"))))
    assert "stratified" not in prepared.validation_source
    assert prepared.label_names == ["neg", "other", "pos"]


def test_validation_and_test_files_are_used(data_dir: Path) -> None:
    prepared = prepare_data(cfg(data_dir / "train.csv", validation_file=data_dir / "valid.csv",
                                test_file=data_dir / "test.csv"))
    assert prepared.sizes == {"train": 20, "validation": 6, "test": 4}
    assert prepared.validation_source.endswith("valid.csv")
    assert prepared.dataset["test"].features["label"].names == ["neg", "pos"]


def test_subsets_are_seeded_shuffles(data_dir: Path) -> None:
    config = cfg(data_dir / "train.csv", validation_file=data_dir / "valid.csv", test_file=data_dir / "test.csv",
                 max_train_samples=5, max_eval_samples=3, shuffle_seed=3)
    prepared = prepare_data(config)
    assert prepared.sizes == {"train": 5, "validation": 3, "test": 3}
    full = prepare_data(cfg(data_dir / "train.csv", validation_file=data_dir / "valid.csv"))
    expected = full.dataset["train"].shuffle(seed=3).select(range(5))
    assert prepared.dataset["train"]["text"] == expected["text"]


def test_sentence_pairs_are_detected(data_dir: Path) -> None:
    prepared = prepare_data(cfg(data_dir / "pairs.jsonl"))
    assert (prepared.text_column, prepared.text_pair_column) == ("sentence1", "sentence2")
    assert prepared.dataset["train"].column_names == ["text", "text_pair", "label"]
    assert prepared.is_pair and prepared.label_names == ["0", "1"]


def test_configured_text_column_without_pair_means_single_texts(data_dir: Path) -> None:
    prepared = prepare_data(cfg(data_dir / "pairs.jsonl", text_column="sentence2", label_column="label"))
    assert prepared.text_pair_column is None
    assert prepared.dataset["train"].column_names == ["text", "label"]


# --- inspection -------------------------------------------------------------------------------------------------

def test_inspect_dataset_reports_columns_balance_and_suggestion(data_dir: Path) -> None:
    raw = load_raw(cfg(data_dir / "train.json", validation_file=data_dir / "valid.csv"))
    info = inspect_dataset(raw)
    assert info.splits == {"train": 20, "validation": 6}
    assert [c.name for c in info.columns] == ["review", "sentiment"]
    sentiment = info.column("sentiment")
    assert sentiment is not None and sentiment.unique == 2 and sentiment.dtype == "string"
    review = info.column("review")
    assert review is not None and review.mean_chars == pytest.approx(sum(len(t) for t, _ in rows(20)) / 20)
    assert (info.suggestion.text, info.suggestion.label) == ("review", "sentiment")
    assert info.class_balance == {"neg": 10, "pos": 10}
    assert info.sample_rows[0] == {"review": POS[0], "sentiment": "pos"}


def test_suggestion_by_content_when_names_say_nothing(tmp_path: Path) -> None:
    data = [(str(i), t, y) for i, (t, y) in enumerate(rows(20))]
    path = write_delimited(tmp_path / "odd.csv", data, header=("id", "blob", "kind"))
    suggestion = suggest_columns(load_raw(cfg(path)))
    assert (suggestion.text, suggestion.label, suggestion.text_pair) == ("blob", "kind", None)
    assert "few distinct" in suggestion.reasons["label"]


def test_class_balance_counts_missing_labels(tmp_path: Path) -> None:
    path = write_delimited(tmp_path / "m.csv", [*rows(4), ("i loved it", "")], header=("text", "label"))
    assert inspect_dataset(load_raw(cfg(path))).class_balance == {"neg": 2, "pos": 2, "(missing)": 1}


# --- Hub ------------------------------------------------------------------------------------------------------------

def _fake_hub(monkeypatch: pytest.MonkeyPatch, splits: dict[str, int]) -> None:
    import datasets
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    features = Features({"sentence": Value("string"), "label": ClassLabel(names=["negative", "positive"])})
    fake = DatasetDict({
        name: Dataset.from_dict({"sentence": [t for t, _ in rows(n)], "label": [int(y == "pos") for _, y in rows(n)]},
                                features=features)
        for name, n in splits.items()
    })
    monkeypatch.setattr("core.data.hub_datasets.hub_dataset_cached", lambda name: True)
    monkeypatch.setattr("core.data.hub_datasets.hub_reachable", lambda: False)
    monkeypatch.setattr(datasets, "load_dataset", lambda name, config=None: fake)


def test_hub_dataset_keeps_class_names_and_uses_its_validation_split(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_hub(monkeypatch, {"train": 20, "validation": 6, "test": 4})
    prepared = prepare_data(DataConfig(hub=HubDataset(name="someone/reviews", test_split="test")))
    assert prepared.label_names == ["negative", "positive"]
    assert prepared.sizes == {"train": 20, "validation": 6, "test": 4}
    assert "'validation'" in prepared.validation_source


def test_hub_dataset_without_validation_splits_train(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_hub(monkeypatch, {"train": 20})
    prepared = prepare_data(DataConfig(hub=HubDataset(name="someone/reviews")))
    assert prepared.sizes == {"train": 18, "validation": 2}


def test_hub_missing_split_lists_the_splits(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_hub(monkeypatch, {"train": 20, "dev": 4})
    raises(DataConfig(hub=HubDataset(name="someone/reviews", validation_split="validation")),
           "no split 'validation'", "train, dev", "data.hub.validation_split")


def test_hub_empty_split(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_hub(monkeypatch, {"train": 20, "validation": 0})
    raises(DataConfig(hub=HubDataset(name="someone/reviews")), "validation", "no rows")


def test_hub_offline_and_not_cached_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    from core import hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.hub_reachable.cache_clear()
    start = time.perf_counter()
    try:
        raises(DataConfig(hub=HubDataset(name="nobody/not-a-cached-dataset-xyz")),
               "nobody/not-a-cached-dataset-xyz", "not in the local cache")
    finally:
        hub.hub_reachable.cache_clear()
    assert time.perf_counter() - start < 3


# --- errors, one by one -----------------------------------------------------------------------------------------

def test_missing_file_suggests_close_name(data_dir: Path) -> None:
    err = raises(cfg(data_dir / "trian.csv"), "trian.csv", "does not exist")
    assert "did you mean" in (err.fix or "") and "train.csv" in (err.fix or "")


def test_directory_instead_of_file(data_dir: Path) -> None:
    raises(cfg(data_dir), "is a directory", str(data_dir))


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_text("")
    (tmp_path / "blank.jsonl").write_text("\n  \n")
    raises(cfg(tmp_path / "e.csv"), "e.csv", "is empty")
    raises(cfg(tmp_path / "blank.jsonl"), "blank.jsonl", "is empty")


def test_header_only_file(tmp_path: Path) -> None:
    (tmp_path / "h.csv").write_text("text,label\n")
    raises(cfg(tmp_path / "h.csv"), "h.csv", "header row", "no data rows")


def test_invalid_utf8_names_line_and_byte(tmp_path: Path) -> None:
    (tmp_path / "latin.csv").write_bytes("text,label\ngood,pos\ncaf\xe9 was bad,neg\n".encode("latin-1"))
    err = raises(cfg(tmp_path / "latin.csv"), "latin.csv", "not valid UTF-8", "line 3", "byte 4", "0xe9")
    assert "UTF-8" in (err.fix or "")


def test_binary_files(tmp_path: Path) -> None:
    (tmp_path / "b.csv").write_bytes(b"text,label\n\x00\x01\x02\x03")
    raises(cfg(tmp_path / "b.csv"), "b.csv", "binary")
    (tmp_path / "sheet.csv").write_bytes(b"PK\x03\x04rest-of-a-zip")
    raises(cfg(tmp_path / "sheet.csv"), "sheet.csv", "zip", "xlsx")


def test_broken_parquet(tmp_path: Path) -> None:
    (tmp_path / "p.parquet").write_bytes(b"this is not parquet at all")
    raises(cfg(tmp_path / "p.parquet"), "p.parquet", "not a valid parquet")


def test_ragged_rows_name_the_line(tmp_path: Path) -> None:
    path = write_delimited(tmp_path / "r.csv", [*rows(5), ("oh, no", "pos")], header=("text", "label"))
    err = raises(cfg(path), "r.csv", "line 7 has 3 fields", "header has 2")
    assert "double quotes" in (err.fix or "")


def test_ragged_row_after_the_sample_names_the_line(tmp_path: Path) -> None:
    path = write_delimited(tmp_path / "r.csv", [*rows(80), ("oh", "no", "pos"), *rows(4)], header=("text", "label"))
    raises(cfg(path), "r.csv", "line 82 has 3 fields")


def test_unclosed_quote(tmp_path: Path) -> None:
    (tmp_path / "q.csv").write_text('text,label\n"good,pos\nbad,neg\n' + "fine,pos\n" * 60)
    raises(cfg(tmp_path / "q.csv"), "q.csv", "quote")


def test_wrong_delimiter_finds_one_column(tmp_path: Path) -> None:
    path = write_delimited(tmp_path / "semi.csv", rows(10), sep=";", header=("text", "label"))
    err = raises(cfg(path), "semi.csv", "only one column")
    assert "';'" in (err.fix or "")
    tabs = write_delimited(tmp_path / "tabs.csv", rows(10), sep="\t", header=("text", "label"))
    err = raises(cfg(tabs), "tabs.csv", "only one column")
    assert "data.format: tsv" in (err.fix or "")


def test_malformed_json_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text('{"text": "good", "label": "pos"}\n{"text": "bad" "label": "neg"}\n')
    raises(cfg(tmp_path / "bad.jsonl"), "bad.jsonl", "line 2", "not valid JSON")
    (tmp_path / "bad.json").write_text('[{"text": "good", "label": "pos"},\n {"text": }]')
    raises(cfg(tmp_path / "bad.json"), "bad.json", "line 2")
    (tmp_path / "scalar.json").write_text('"just a string"')
    raises(cfg(tmp_path / "scalar.json"), "scalar.json", "list of examples")


def test_missing_column_lists_columns_and_suggests(data_dir: Path) -> None:
    err = raises(cfg(data_dir / "train.csv", text_column="txt", label_column="label"),
                 "'txt'", "data.text_column", "train.csv", "text, label")
    assert "did you mean 'text'" in (err.fix or "")


def test_missing_column_in_validation_file_names_that_file(data_dir: Path, tmp_path: Path) -> None:
    other = write_delimited(tmp_path / "v.csv", rows(4), header=("sentence", "label"))
    raises(cfg(data_dir / "train.csv", validation_file=other), "'text'", "v.csv", "sentence, label")


def test_missing_labels_say_how_many_and_where(tmp_path: Path) -> None:
    data = [*rows(6), ("i loved it", ""), *rows(3), ("bad film", "")]
    path = write_delimited(tmp_path / "m.csv", data, header=("text", "label"))
    raises(cfg(path), "m.csv", "'label'", "2 missing values", "data rows 7, 11", "file lines 8, 12")


def test_missing_text_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps({"text": None if i == 3 else t, "label": y}) + "\n"
                            for i, (t, y) in enumerate(rows(10))))
    raises(cfg(path), "t.jsonl", "'text'", "1 missing value", "data rows 4")


def test_only_one_class(tmp_path: Path) -> None:
    path = write_delimited(tmp_path / "one.csv", [(t, "pos") for t in POS], header=("text", "label"))
    raises(cfg(path), "one.csv", "only one class", "'pos'")


def test_text_column_of_numbers(tmp_path: Path) -> None:
    path = write_delimited(tmp_path / "num.csv", [(str(i), y) for i, (_, y) in enumerate(rows(10))],
                           header=("text", "label"))
    raises(cfg(path, text_column="text", label_column="label"), "num.csv", "'text'", "holds numbers")


def test_validation_label_never_seen_in_train(data_dir: Path, tmp_path: Path) -> None:
    valid = write_delimited(tmp_path / "v.csv", [*rows(4), ("it was fun", "meh")], header=("text", "label"))
    raises(cfg(data_dir / "train.csv", validation_file=valid), "v.csv", "'meh'", "never has")


def test_empty_parquet(tmp_path: Path) -> None:
    import pandas as pd

    empty = pd.DataFrame({"text": pd.Series([], dtype=str), "label": pd.Series([], dtype=str)})
    empty.to_parquet(tmp_path / "e.parquet")
    raises(cfg(tmp_path / "e.parquet"), "e.parquet", "no rows")


def test_too_few_rows_for_a_validation_split(tmp_path: Path) -> None:
    # Two classes, so it is the split that is refused (one row would fail earlier, on "only one class").
    path = write_delimited(tmp_path / "tiny.csv", [("good", "pos"), ("bad", "neg")], header=("text", "label"))
    err = raises(cfg(path, validation_fraction=0.9), "tiny.csv", "has only 2 rows: too few to hold out 90% for "
                 "validation")
    assert "data.validation_file" in (err.fix or "")
    assert prepare_data(cfg(path, validation_fraction=0.5)).sizes == {"train": 1, "validation": 1}


def test_load_file_reports_line_offsets(data_dir: Path) -> None:
    _, source = load_file(data_dir / "train.csv")
    assert source.line_offset == 2
    _, source = load_file(data_dir / "headerless.csv")
    assert source.line_offset == 1
