"""core.tokenization: loading tokenizers offline, padding modes, pairs, the collator, and length statistics."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from core.config import BUNDLED_MODEL, DataConfig, ModelConfig, TokenizerConfig
from core.data import PreparedData, prepare_data
from core.errors import ModelError
from core.tokenization import (
    MAP_BATCH,
    LengthStats,
    dataset_length_stats,
    length_stats,
    load_tokenizer,
    make_collator,
    tokenize_dataset,
)
from tests.fixtures_data import data_dir_fixture, tiny_tokenizer_dir_fixture  # noqa: F401

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@pytest.fixture
def tokenizer(tiny_tokenizer_dir: Path) -> PreTrainedTokenizerBase:
    return load_tokenizer(ModelConfig(name_or_path=str(tiny_tokenizer_dir)))


def test_load_tokenizer_from_local_dir(tokenizer: PreTrainedTokenizerBase) -> None:
    assert tokenizer.is_fast
    # [CLS] the movie was great [SEP]: every word is in the tiny vocabulary, none is [UNK]
    ids = tokenizer("the movie was great")["input_ids"]
    assert len(ids) == 6 and tokenizer.unk_token_id not in ids


def test_load_tokenizer_missing_dir_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        load_tokenizer(ModelConfig(name_or_path=str(tmp_path / "nope" / "model")))


def test_bundled_tokenizer_loads_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tok = load_tokenizer(ModelConfig(name_or_path=BUNDLED_MODEL))
    assert tok.is_fast and tok.pad_token is not None
    ids = tok("hello world")["input_ids"]
    assert ids[0] == tok.cls_token_id and tok.unk_token_id not in ids


def _prepared(data_dir: Path, name: str = "train.csv") -> PreparedData:
    return prepare_data(DataConfig(train_file=data_dir / name, validation_fraction=0.2))


def test_dynamic_padding_leaves_rows_unpadded(data_dir: Path, tokenizer: PreTrainedTokenizerBase) -> None:
    prepared = _prepared(data_dir)
    tokenized = tokenize_dataset(prepared, tokenizer, TokenizerConfig(padding="dynamic", max_length=32))
    train = tokenized["train"]
    assert set(train.column_names) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    lengths = {len(ids) for ids in train["input_ids"]}
    assert len(lengths) > 1  # variable lengths: the collator pads per batch
    assert train["labels"] == prepared.dataset["train"]["label"]
    assert train.features["labels"].dtype == "int64"
    assert all(0 not in mask for mask in train["attention_mask"])  # nothing padded


def test_max_length_padding_pads_every_row(data_dir: Path, tokenizer: PreTrainedTokenizerBase) -> None:
    tokenized = tokenize_dataset(_prepared(data_dir), tokenizer, TokenizerConfig(padding="max_length", max_length=16))
    for split in ("train", "validation"):
        assert {len(ids) for ids in tokenized[split]["input_ids"]} == {16}


def test_longest_padding_pads_each_map_batch_to_its_longest(data_dir: Path, tokenizer: PreTrainedTokenizerBase) -> None:
    prepared = _prepared(data_dir)
    assert len(prepared.dataset["train"]) < MAP_BATCH  # one map batch
    tokenized = tokenize_dataset(prepared, tokenizer, TokenizerConfig(padding="longest", max_length=64))
    unpadded = [len(tokenizer(t)["input_ids"]) for t in prepared.dataset["train"]["text"]]
    assert {len(ids) for ids in tokenized["train"]["input_ids"]} == {max(unpadded)}


def test_truncation_cuts_at_max_length(data_dir: Path, tokenizer: PreTrainedTokenizerBase) -> None:
    tokenized = tokenize_dataset(_prepared(data_dir), tokenizer, TokenizerConfig(max_length=8, truncation=True))
    lengths = [len(ids) for ids in tokenized["train"]["input_ids"]]
    assert max(lengths) == 8
    assert all(ids[-1] == tokenizer.sep_token_id for ids in tokenized["train"]["input_ids"])


def test_sentence_pairs_get_two_segments(data_dir: Path, tokenizer: PreTrainedTokenizerBase) -> None:
    prepared = _prepared(data_dir, "pairs.jsonl")
    tokenized = tokenize_dataset(prepared, tokenizer, TokenizerConfig(max_length=64))
    row = tokenized["train"][0]
    assert row["input_ids"].count(tokenizer.sep_token_id) == 2
    assert set(row["token_type_ids"]) == {0, 1}
    text, pair = prepared.dataset["train"][0]["text"], prepared.dataset["train"][0]["text_pair"]
    assert row["input_ids"] == tokenizer(text, pair)["input_ids"]


def test_tokenizing_does_not_hash_the_tokenizer(
    data_dir: Path, tokenizer: PreTrainedTokenizerBase, monkeypatch: pytest.MonkeyPatch
) -> None:
    # datasets would pickle the tokenizer to fingerprint the map (0.2 s for a real one, and a warning when it
    # cannot be pickled); tokenize_dataset passes its own fingerprint instead.
    from datasets.fingerprint import Hasher

    original = Hasher.hash
    hashed: list[object] = []

    def record(value: object) -> str:
        if callable(value):
            hashed.append(value)  # datasets swallows exceptions raised here, so record instead
        return original(value)

    prepared = _prepared(data_dir)
    monkeypatch.setattr(Hasher, "hash", staticmethod(record))
    tokenized = tokenize_dataset(prepared, tokenizer, TokenizerConfig())
    assert len(tokenized["train"]) == prepared.sizes["train"]
    assert hashed == []


def test_collator_pads_a_batch_to_its_longest(data_dir: Path, tokenizer: PreTrainedTokenizerBase) -> None:
    tokenized = tokenize_dataset(_prepared(data_dir), tokenizer, TokenizerConfig())
    rows = [tokenized["train"][i] for i in range(4)]
    batch = make_collator(tokenizer, "text-classification")(rows)
    longest = max(len(r["input_ids"]) for r in rows)
    assert tuple(batch["input_ids"].shape) == (4, longest)
    assert batch["labels"].tolist() == [r["labels"] for r in rows]
    assert int(batch["attention_mask"].sum()) == sum(len(r["input_ids"]) for r in rows)


# --- length statistics --------------------------------------------------------------------------------------

def test_length_stats_by_hand() -> None:
    stats = LengthStats.compute([2, 4, 6, 8], max_length=5, batch_size=2)
    assert stats.percentiles == {50: 4, 90: 8, 95: 8, 99: 8, 100: 8}  # nearest rank
    assert stats.share_truncated == 0.5 and stats.mean == 5
    # fed lengths after truncation: 2, 4, 5, 5 = 16 real tokens
    share = stats.padding_share
    assert share["max_length"] == pytest.approx(1 - 16 / 20)  # 4 rows x 5
    assert share["longest"] == pytest.approx(1 - 16 / 20)  # one map batch, longest 5
    assert share["dynamic+group_by_length"] == pytest.approx(1 - 16 / 18)  # batches [5, 5] and [4, 2]
    # random pairs of {2, 4, 5, 5}: E[max] = (1*4 + 2*5 + 3*5) / 6 = 29/6 against a mean of 4
    assert share["dynamic"] == pytest.approx(1 - 4 / (29 / 6))
    assert stats.histogram(3) == [(2, 4, 2), (5, 7, 1), (8, 10, 1)]


def test_dynamic_padding_expectation_matches_brute_force() -> None:
    from itertools import combinations

    lengths = [3, 7, 7, 10, 12, 20, 31]
    batches = list(combinations(lengths, 3))
    fed = sum(3 * max(b) for b in batches)
    real = sum(sum(b) for b in batches)
    stats = LengthStats.compute(lengths, max_length=64, batch_size=3)
    assert stats.padding_share["dynamic"] == pytest.approx(1 - real / fed)


def test_with_settings_recomputes_without_tokenizing() -> None:
    stats = LengthStats.compute([2, 4, 6, 8], max_length=5, batch_size=2)
    wider = stats.with_settings(max_length=8)
    assert wider.share_truncated == 0 and wider.lengths == stats.lengths
    assert wider.padding_share["max_length"] == pytest.approx(1 - 20 / 32)
    untruncated = stats.with_settings(truncation=False)
    assert untruncated.share_truncated == 0 and untruncated.share_longer == 0.5
    assert untruncated.padding_share["max_length"] == pytest.approx(1 - 20 / 24)  # 5, 5, 6, 8
    assert stats.with_settings(batch_size=1).padding_share["dynamic"] == 0  # a batch of one is never padded


def test_length_stats_on_texts_and_pairs(tokenizer: PreTrainedTokenizerBase) -> None:
    stats = length_stats(["the movie was great", "i loved it"], None, tokenizer, max_length=5)
    assert stats.lengths == [6, 5]  # [CLS] + words + [SEP]
    assert stats.share_truncated == 0.5 and not stats.sampled
    pairs = length_stats(["i loved it"], ["great film"], tokenizer, max_length=16)
    assert pairs.lengths == [8]  # [CLS] i loved it [SEP] great film [SEP]


def test_length_stats_samples_large_inputs(tokenizer: PreTrainedTokenizerBase) -> None:
    texts = ["the movie was great"] * 6000 + ["i loved it"] * 6000
    stats = length_stats(texts, None, tokenizer, max_length=32)
    assert len(stats.lengths) == 5000 and stats.total == 12000 and stats.sampled
    assert set(stats.lengths) == {5, 6}


def test_dataset_length_stats(data_dir: Path, tokenizer: PreTrainedTokenizerBase) -> None:
    prepared = _prepared(data_dir, "pairs.jsonl")
    train = prepared.dataset["train"]
    stats = dataset_length_stats(train, tokenizer, max_length=64, pair_column="text_pair")
    assert stats.lengths == [len(tokenizer(r["text"], r["text_pair"])["input_ids"]) for r in train]


def test_tokenized_splits_are_reopened_from_the_cache_until_something_they_depend_on_changes(
    data_dir: Path, tokenizer: PreTrainedTokenizerBase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datasets

    from core import tokenization

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    prepared = _prepared(data_dir)
    first = tokenize_dataset(prepared, tokenizer, TokenizerConfig(max_length=32))
    files = sorted(tokenization.tokenized_cache_dir().glob("*.arrow"))
    assert len(files) == len(prepared.dataset)  # one file per split

    calls = 0
    original = type(tokenizer).__call__

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(tokenizer), "__call__", counting)
    again = tokenize_dataset(_prepared(data_dir), tokenizer, TokenizerConfig(max_length=32))
    assert calls == 0, "the same data, tokenizer and settings must come from the cache"
    assert again["train"]["input_ids"] == first["train"]["input_ids"]

    tokenize_dataset(prepared, tokenizer, TokenizerConfig(max_length=16))  # another setting: tokenized again
    assert calls > 0
    assert len(list(tokenization.tokenized_cache_dir().glob("*.arrow"))) == 2 * len(prepared.dataset)
    calls = 0
    (data_dir / "train.csv").write_text((data_dir / "train.csv").read_text() + "one more row,positive\n")
    tokenize_dataset(_prepared(data_dir), tokenizer, TokenizerConfig(max_length=32))  # the file changed
    assert calls > 0


def test_an_unwritable_cache_only_means_tokenizing_in_memory(
    data_dir: Path, tokenizer: PreTrainedTokenizerBase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datasets

    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the cache directory would go")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(blocked))
    tokenized = tokenize_dataset(_prepared(data_dir), tokenizer, TokenizerConfig(max_length=32))
    assert len(tokenized["train"]) > 0
    assert tokenized["train"].cache_files == []


@pytest.mark.parametrize(("before", "processes", "during"), [("false", "1", "true"), (None, "1", "true"),
                                                              ("false", "2", "false")])
def test_tokenizing_uses_every_core_then_puts_the_setting_back(
    data_dir: Path, tokenizer: PreTrainedTokenizerBase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    before: str | None, processes: str, during: str,
) -> None:
    # The worker keeps TOKENIZERS_PARALLELISM=false for the processes it forks later; tokenizing alone may use every
    # core (the tutorials' default), unless several training processes share the machine.
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", processes)
    if before is None:
        monkeypatch.delenv("TOKENIZERS_PARALLELISM", raising=False)
    else:
        monkeypatch.setenv("TOKENIZERS_PARALLELISM", before)
    seen: list[str | None] = []
    original = type(tokenizer).__call__

    def recording(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(os.environ.get("TOKENIZERS_PARALLELISM"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(tokenizer), "__call__", recording)
    tokenize_dataset(_prepared(data_dir), tokenizer, TokenizerConfig(max_length=32))
    assert seen and set(seen) == {during}
    assert os.environ.get("TOKENIZERS_PARALLELISM") == before
