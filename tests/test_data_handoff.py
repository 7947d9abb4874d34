"""Under torchrun only rank 0 prepares and tokenizes; the other ranks map the splits it wrote (core.data.handoff).

The ranks are played in turn in this process by setting torchrun's variables; test_multiprocess runs the real
torchrun end to end."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from core.config import DataConfig, TokenizerConfig
from core.data import handoff
from core.data.prepare import PreparedData
from core.tokenization import load_tokenizer, tokenize_dataset


@pytest.fixture
def ranks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "launch-1")
    return monkeypatch


def _tokenize(model: Path):
    from core.config import ModelConfig

    tokenizer = load_tokenizer(ModelConfig(name_or_path=str(model)))
    return lambda prepared: tokenize_dataset(prepared, tokenizer, TokenizerConfig(max_length=32))


def _rank(monkeypatch: pytest.MonkeyPatch, rank: int) -> None:
    monkeypatch.setenv("RANK", str(rank))


def test_other_ranks_map_rank_zeros_splits_and_never_read_the_data(ranks: pytest.MonkeyPatch, tiny_model: Path,
                                                                   tiny_data: dict, tmp_path: Path) -> None:
    data = DataConfig(train_file=tiny_data["train"], test_file=tiny_data["test"], validation_fraction=0.25)
    seen: list[PreparedData] = []
    _rank(ranks, 0)
    prepared, tokenized = handoff.prepare_and_tokenize(data, tmp_path, _tokenize(tiny_model), seen.append)
    assert seen == [prepared] and (tmp_path / handoff.HANDOFF_FILE).exists()

    _rank(ranks, 1)
    ranks.setattr(handoff, "prepare_data", lambda _: pytest.fail("rank 1 read the data itself"))
    other, other_tokenized = handoff.prepare_and_tokenize(data, tmp_path, lambda _: pytest.fail("rank 1 tokenized"))
    assert other.label_names == prepared.label_names and other.sizes == prepared.sizes
    assert other.class_counts == prepared.class_counts and sum(other.class_counts) == prepared.sizes["train"]
    assert set(other_tokenized) == set(tokenized) == {"train", "validation", "test"}
    for split, ds in tokenized.items():
        assert other_tokenized[split]["input_ids"] == ds["input_ids"]
        assert other_tokenized[split]["labels"] == ds["labels"]
        assert other_tokenized[split].cache_files, "memory-mapped from rank 0's file, not a copy"


def test_a_handoff_from_an_earlier_launch_is_not_taken(ranks: pytest.MonkeyPatch, tiny_model: Path, tiny_data: dict,
                                                       tmp_path: Path) -> None:
    data = DataConfig(train_file=tiny_data["train"])
    _rank(ranks, 0)
    handoff.prepare_and_tokenize(data, tmp_path, _tokenize(tiny_model))  # launch-1, e.g. before a resume
    ranks.setenv("TORCHELASTIC_RUN_ID", "launch-2")
    _rank(ranks, 1)
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(handoff.receive(tmp_path / handoff.HANDOFF_FILE)),
                              daemon=True)
    waiter.start()
    time.sleep(1.0)
    assert waiter.is_alive() and not got, "rank 1 must wait for this launch's rank 0"
    _rank(ranks, 0)
    handoff.prepare_and_tokenize(data, tmp_path, _tokenize(tiny_model))
    waiter.join(timeout=10)
    assert got and got[0] is not None


def test_without_a_writable_cache_each_rank_prepares_for_itself(ranks: pytest.MonkeyPatch, tiny_model: Path,
                                                                tiny_data: dict, tmp_path: Path) -> None:
    import datasets

    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache directory would be")
    ranks.setattr(datasets.config, "HF_DATASETS_CACHE", str(blocked))
    data = DataConfig(train_file=tiny_data["train"])
    _rank(ranks, 0)
    prepared, _ = handoff.prepare_and_tokenize(data, tmp_path, _tokenize(tiny_model))
    _rank(ranks, 1)
    other, tokenized = handoff.prepare_and_tokenize(data, tmp_path, _tokenize(tiny_model))
    assert other.sizes == prepared.sizes and len(tokenized["train"]) == prepared.sizes["train"]


def test_the_run_keeps_only_the_texts_it_reports_on_in_tables_of_their_own(
        monkeypatch: pytest.MonkeyPatch, tiny_model: Path, tiny_data: dict, tmp_path: Path) -> None:
    """Validation held out of the training file maps rows of the file's whole table: kept as it was, the training
    texts (a million rows: ~140 MB) stayed in memory for the whole run although only the tokenized rows train."""
    import datasets

    from core.data.prepare import prepare_data

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    data = DataConfig(train_file=tiny_data["train"], test_file=tiny_data["test"], validation_fraction=0.25)
    expected = prepare_data(data).dataset
    prepared, tokenized = handoff.prepare_and_tokenize(data, tmp_path, _tokenize(tiny_model))
    assert set(prepared.dataset) == {"validation", "test"} and set(tokenized) == {"train", "validation", "test"}
    for split, ds in prepared.dataset.items():
        assert getattr(ds, "_indices", None) is None and ds.data.num_rows == len(expected[split])
        assert ds["text"] == expected[split]["text"] and ds["label"] == expected[split]["label"]
        assert ds.features == expected[split].features


def test_gather_takes_rows_in_the_order_given_batch_by_batch() -> None:
    import numpy as np
    import pyarrow as pa

    from core.data.arrow import gather

    table = pa.Table.from_batches([pa.record_batch({"n": list(range(i * 10, i * 10 + 10)),
                                                    "s": [str(x) for x in range(i * 10, i * 10 + 10)]})
                                   for i in range(7)])
    for size in (0, 1, 9, 10, 33, 70):
        indices = np.random.default_rng(size).permutation(70)[:size]
        assert gather(table, indices).equals(table.combine_chunks().take(pa.array(indices, type=pa.int64())))
