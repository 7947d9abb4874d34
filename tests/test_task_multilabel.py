"""task: multi-label-classification, end to end on the tiny model: labels read from lists, delimited text and 0/1
columns (and refused, by row, where they are wrong), the metrics against sklearn, thresholds tuned per label, one
weighted BCE on the three engines, and real runs whose saved model answers what the run measured through predict,
the evaluation report and transformers' pipeline."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.config import parse_config
from core.data import prepare_data
from core.errors import ConfigError, DataError
from core.rundir import RunDir
from core.tasks import get_task
from core.tasks.multi_label import shared
from tests.conftest import FILLER, run_example, tiny_config, write_tsv
from tests.test_class_weights import needs_keras
from tests.test_trainer_run import _run_in_process
from tui.cli import main

TASK = "multi-label-classification"
TAGS = ("cast", "complaint", "praise")  # sorted: the order string labels get
# Each tag follows its phrase, said twice in the comment: praise "great", complaint "awful", cast "actors". The tiny
# model learns one word per tag in a few dozen steps; a set of words per tag it learns for one tag and not the rest.
PHRASES = {"praise": "great", "complaint": "awful", "cast": "actors"}
PLAIN = [w for w in FILLER if w not in PHRASES.values()]
TEXTS = ["great film great actors actors", "awful plot awful", "the movie was a film"]
RATE = 0.3  # each tag is on about 30% of the comments, so about a third have none


def comments(n: int, seed: int = 0) -> list[tuple[str, list[str]]]:
    """Comments tagged with the tags whose phrases they hold; about a third have no tag at all."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        tags = [t for t in TAGS if rng.random() < RATE]
        words = rng.choices(PLAIN, k=rng.randint(2, 6)) + [PHRASES[t] for t in tags for _ in range(2)]
        rng.shuffle(words)
        rows.append((" ".join(words), tags))
    return rows


def write_jsonl(path: Path, rows: list[tuple[str, list[Any]]], column: str = "labels") -> Path:
    path.write_text("".join(json.dumps({"text": text, column: tags}) + "\n" for text, tags in rows), encoding="utf-8")
    return path


def write_joined(path: Path, rows: list[tuple[str, list[str]]], sep: str = "|") -> Path:
    return write_tsv(path, [(text, sep.join(tags)) for text, tags in rows], header=("text", "tags"))


def write_columns(path: Path, rows: list[tuple[str, list[str]]], names: tuple[str, ...] = TAGS) -> Path:
    return write_tsv(path, [(text, *("1" if n in tags else "0" for n in names)) for text, tags in rows],
                     header=("text", *names))


def _prepare(path: Path, **data: Any) -> Any:
    config = parse_config({"task": TASK, "data": {"train_file": str(path), **data}})
    return prepare_data(config.data, config.task)


def _matrix(prepared: Any, split: str = "train") -> np.ndarray:
    return np.asarray(prepared.dataset[split]["label"], dtype=np.float32)


def _expected(rows: list[tuple[str, list[str]]], names: tuple[str, ...] = TAGS) -> np.ndarray:
    return np.asarray([[1.0 if n in tags else 0.0 for n in names] for _, tags in rows], dtype=np.float32)


# --- config ---------------------------------------------------------------------------------------------------------

def test_the_task_brings_its_metrics_and_each_task_refuses_the_others_settings(tmp_path: Path) -> None:
    data = {"train_file": str(tmp_path / "t.jsonl")}
    config = parse_config({"task": TASK, "data": data})
    assert config.metrics[0] == "f1_micro" and set(config.metrics) == set(shared.MULTI_LABEL_METRICS)
    assert config.training.threshold == 0.5
    assert parse_config({"task": TASK, "data": data, "training": {"threshold": "auto"}}).training.threshold == "auto"
    assert parse_config({"task": TASK, "data": {**data, "label_columns": "a, b"}}).data.label_columns == ["a", "b"]
    for bad, words in [
        ({"task": TASK, "data": {**data, "label_scaling": "standard"}}, "scales the scores of text-regression"),
        ({"task": TASK, "metrics": ["accuracy"]}, "not reported for multi-label-classification"),
        ({"task": TASK, "data": {**data, "label_column": "tags", "label_columns": ["a", "b"]}},
         "label_column and data.label_columns both"),
        ({"task": TASK, "data": {**data, "label_columns": ["a", "b"], "label_names": ["x", "y"]}},
         "columns' names are the labels' names"),
        ({"task": TASK, "data": {**data, "label_columns": ["a", "a"]}}, "'a' more than once"),
        ({"task": TASK, "training": {"threshold": 1.0}}, "threshold.*between 0 and 1"),
        ({"task": TASK, "training": {"threshold": "often"}}, "threshold.*or auto"),
        ({"data": {**data, "label_columns": ["a", "b"]}}, "lists 0/1 columns of multi-label.*label_columns: null"),
        ({"data": {**data, "label_separator": "|"}}, "label_separator: null"),
        ({"data": data, "training": {"threshold": "auto"}}, "decides the labels.*threshold: 0.5"),
        ({"task": "text-regression", "data": {**data, "label_columns": ["a"]}}, "label_columns: null"),
        ({"task": "text-labelling"}, "multi-label-classification"),
    ]:
        with pytest.raises(ConfigError, match=words):
            parse_config({"data": data, **bad})


# --- labels in every format -----------------------------------------------------------------------------------------

def test_every_label_format_gives_the_same_multi_hot_labels(tmp_path: Path) -> None:
    import pandas as pd

    rows, valid = comments(60, seed=1), comments(12, seed=2)
    as_ids = [(text, [TAGS.index(t) for t in tags]) for text, tags in rows]
    pd.DataFrame({"text": [t for t, _ in as_ids], "labels": [ids for _, ids in as_ids]}).to_parquet(
        tmp_path / "ids.parquet")
    # pandas writes a list column to csv as Python's text for lists: ['a', 'b']
    pd.DataFrame({"text": [t for t, _ in rows], "tags": [tags for _, tags in rows]}).to_csv(tmp_path / "lists.csv",
                                                                                           index=False)
    variants = {
        "jsonl lists": (write_jsonl(tmp_path / "t.jsonl", rows), {}),
        "a|b text": (write_joined(tmp_path / "t.tsv", rows), {"label_column": "tags"}),
        "a;b text": (write_joined(tmp_path / "semi.tsv", rows, "; "), {"label_column": "tags"}),
        "0/1 columns": (write_columns(tmp_path / "cols.tsv", rows), {"label_columns": list(TAGS)}),
        "ids and names": (tmp_path / "ids.parquet", {"label_names": list(TAGS)}),
        "pandas list text": (tmp_path / "lists.csv", {"label_column": "tags"}),
    }
    expected = _expected(rows)
    for what, (path, data) in variants.items():
        column = data.get("label_column", "labels")
        validation = write_jsonl(tmp_path / f"valid-{path.stem}.jsonl", valid, column) \
            if "label_columns" not in data else write_columns(tmp_path / "valid-cols.tsv", valid)
        prepared = _prepare(path, validation_file=str(validation), **data)
        assert prepared.label_names == list(TAGS), what
        assert np.array_equal(_matrix(prepared), expected), what
        assert np.array_equal(_matrix(prepared, "validation"), _expected(valid)), what
        features = prepared.dataset["train"].features["label"]
        assert str(features.feature.dtype) == "float32" and features.length == 3, what
        untagged = int((expected.sum(axis=1) == 0).sum())
        assert untagged and f"{untagged} of the 60 training rows have no label" in " ".join(prepared.notes), what
        assert prepared.class_counts == expected.sum(axis=0).astype(int).tolist(), what
    assert prepared.label_column == "tags"
    assert _prepare(tmp_path / "cols.tsv", label_columns=list(TAGS)).label_column is None
    assert get_task(TASK).summary(prepared).startswith("3 labels, ")
    # What the wizard's dataset step shows of the raw file: rows per label.
    from core.data.files import load_file

    overview = get_task(TASK).label_overview(load_file(tmp_path / "t.tsv")[0], "tags", None)
    assert overview.counts == dict(zip(TAGS, expected.sum(axis=0).astype(int).tolist(), strict=True))
    assert "labels split at '|' (auto)" in overview.caption


def test_the_separator_is_found_in_most_rows_and_said(tmp_path: Path) -> None:
    rows = [(f"text {i} great", ["a", "b"] if i % 3 else ["c"]) for i in range(30)]
    prepared = _prepare(write_joined(tmp_path / "pipe.tsv", rows), label_column="tags")
    assert "labels split at '|' (auto)" in prepared.notes and prepared.label_names == ["a", "b", "c"]
    # A comma inside some names, a ; between labels in more rows: ; wins.
    mixed = [(f"text {i}", "x, y;z" if i % 2 else "z;w") for i in range(20)]
    prepared = _prepare(write_tsv(tmp_path / "semi.tsv", mixed, header=("text", "tags")), label_column="tags")
    assert "labels split at ';' (auto)" in prepared.notes and prepared.label_names == ["w", "x, y", "z"]
    # As many rows with | as with , : | wins the tie; a configured separator is used as given.
    tie = [(f"text {i}", "p|q" if i % 2 else "r,s") for i in range(20)]
    prepared = _prepare(write_tsv(tmp_path / "tie.tsv", tie, header=("text", "tags")), label_column="tags")
    assert prepared.label_names == ["p", "q", "r,s"]
    prepared = _prepare(tmp_path / "tie.tsv", label_column="tags", label_separator=",")
    assert "labels split at ',' (data.label_separator)" in prepared.notes
    assert prepared.label_names == ["p|q", "r", "s"]
    # JSON-shaped cells are lists whatever the separator; empty cells and pieces are no label.
    cells = [(f"text {i}", '["a", "b"]' if i % 3 == 0 else ("" if i % 3 == 1 else "a||c|")) for i in range(30)]
    prepared = _prepare(write_tsv(tmp_path / "json.tsv", cells, header=("text", "tags")), label_column="tags",
                        validation_fraction=0.2)
    assert prepared.label_names == ["a", "b", "c"]
    every = _prepare(tmp_path / "json.tsv", label_column="tags", validation_file=str(tmp_path / "json.tsv"))
    assert _matrix(every, "validation")[:3].tolist() == [[1, 1, 0], [0, 0, 0], [1, 0, 1]]


def test_hub_style_lists_of_class_labels_keep_the_dataset_names() -> None:
    from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value

    from core.data.arrow import SplitSource

    features = Features({"text": Value("string"), "labels": List(ClassLabel(names=["anger", "joy", "fear"]))})
    ds = Dataset.from_dict({"text": ["a", "b", "c"], "labels": [[1], [0, 2], []]}, features=features)
    cfg = parse_config({"task": TASK, "data": {"train_file": "x.jsonl"}}).data
    encoded = get_task(TASK).encode_labels(DatasetDict({"train": ds}), {"train": SplitSource("hub")}, "labels", cfg)
    assert encoded.names == ["anger", "joy", "fear"]
    assert encoded.arrays["train"].tolist() == [[0, 1, 0], [1, 0, 1], [0, 0, 0]]


@pytest.mark.parametrize(("kind", "words"), [
    ("unseen", r"validation data .* has label 'extra' in column 'labels' that the training data never has, at "
               r"data rows 3 .*file lines 3"),
    ("not named", r"has label 'extra' that data.label_names \(cast, complaint, praise\) does not name, at data rows 3"),
    ("bad id", r"label id 7 but data.label_names names only ids 0-2, at data rows 3"),
    ("bad 0/1", r"label column 'praise' \(data.label_columns\) in .* holds 2 at data rows 3 .*file lines 4"),
    ("missing 0/1", r"label column 'cast' \(data.label_columns\) in .* has 1 missing value, at data rows 3"),
    ("no labels", r"no row of the training data .* has a label"),
    ("one per row", r"holds one int64 value per row; multi-label-classification needs"),
    ("nested", r"holds lists of lists"),
    ("fraction", r"holds the number 1.5 in a list, at data rows 3"),
])
def test_bad_labels_are_named_with_their_row_and_fix(tmp_path: Path, kind: str, words: str) -> None:
    rows = comments(20, seed=4)
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    data: dict[str, Any] = {}
    if kind == "unseen":
        bad = [*rows[:2], (rows[2][0], ["praise", "extra"]), *rows[3:6]]
        data = {"validation_file": str(write_jsonl(tmp_path / "valid.jsonl", bad))}
    elif kind == "not named":
        bad = [*rows[:2], (rows[2][0], ["extra"]), *rows[3:]]
        train, data = write_jsonl(tmp_path / "train.jsonl", bad), {"label_names": list(TAGS)}
    elif kind == "bad id":
        ids = [(t, [TAGS.index(x) for x in tags]) for t, tags in rows]
        ids[2] = (ids[2][0], [0, 7])
        train, data = write_jsonl(tmp_path / "train.jsonl", ids), {"label_names": list(TAGS)}
    elif kind in ("bad 0/1", "missing 0/1"):
        train = write_columns(tmp_path / "cols.tsv", rows)
        lines = train.read_text().splitlines()
        cells = lines[3].split("\t")
        if kind == "bad 0/1":
            cells[3] = "2"
        else:
            cells[1] = ""
        lines[3] = "\t".join(cells)
        train.write_text("\n".join(lines) + "\n")
        data = {"label_columns": list(TAGS)}
    elif kind == "no labels":
        train = write_jsonl(tmp_path / "train.jsonl", [(t, []) for t, _ in rows])
    elif kind == "one per row":
        train = write_jsonl(tmp_path / "train.jsonl", [(t, i % 2) for i, (t, _) in enumerate(rows)])  # type: ignore
    elif kind == "nested":
        train = write_jsonl(tmp_path / "train.jsonl", [(t, [[1]]) for t, _ in rows])
    else:
        train = write_jsonl(tmp_path / "train.jsonl", [(t, [1, 1.5] if i == 2 else [1]) for i, (t, _) in
                                                       enumerate(rows)])
    with pytest.raises(DataError, match=words) as err:
        _prepare(train, **data)
    assert err.value.fix


def test_validate_refuses_bad_multi_label_data_and_suggests_the_task_for_lists(tiny_model: Path, tmp_path: Path,
                                                                              capsys: pytest.CaptureFixture[str],
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    train = write_jsonl(tmp_path / "train.jsonl", comments(40, seed=5))
    raw = {"model": {"name_or_path": str(tiny_model)}, "data": {"train_file": str(train)}}
    config = tmp_path / "c.json"
    config.write_text(json.dumps(raw))  # text-classification: a list column points at the multi-label task
    assert main(["validate", str(config)]) == 2
    err = capsys.readouterr().err
    assert "holds lists of labels" in err and "set task: multi-label-classification" in err and "Traceback" not in err

    config.write_text(json.dumps({**raw, "task": TASK}))
    assert main(["validate", str(config)]) == 0
    assert "fine" in capsys.readouterr().out
    config.write_text(json.dumps({**raw, "task": TASK, "data": {**raw["data"], "label_names": ["a", "b"]}}))
    assert main(["validate", str(config)]) == 2
    err = capsys.readouterr().err
    assert "that data.label_names (a, b) does not name" in err and "fix: add them to data.label_names" in err
    empty = write_jsonl(tmp_path / "empty.jsonl", [(t, []) for t, _ in comments(40, seed=5)])
    config.write_text(json.dumps({**raw, "task": TASK, "data": {"train_file": str(empty)}}))
    assert main(["validate", str(config)]) == 2
    assert "no row of the training data" in capsys.readouterr().err


# --- numbers ---------------------------------------------------------------------------------------------------------

def test_metrics_agree_with_sklearn() -> None:
    from sklearn.metrics import accuracy_score, f1_score, hamming_loss, precision_score, recall_score

    rng = np.random.default_rng(0)
    y = (rng.random((200, 5)) < 0.3).astype(np.float32)
    y[:, 4] = 0  # a label with no positives: zero_division=0
    probs = np.clip(y * 0.6 + rng.random((200, 5)) * 0.5, 0, 1)
    predicted = shared.predict_multi_hot(probs, 0.5)
    got = shared.multi_label_metrics(y, predicted, list(shared.MULTI_LABEL_METRICS))
    yi = y.astype(int)
    assert got == pytest.approx({
        "f1_micro": f1_score(yi, predicted, average="micro", zero_division=0),
        "f1_macro": f1_score(yi, predicted, average="macro", zero_division=0),
        "precision_micro": precision_score(yi, predicted, average="micro", zero_division=0),
        "recall_micro": recall_score(yi, predicted, average="micro", zero_division=0),
        "exact_match": accuracy_score(yi, predicted), "hamming_loss": hamming_loss(yi, predicted)})
    assert list(got) == list(shared.MULTI_LABEL_METRICS)
    per = shared.per_label_scores(y, predicted)
    assert per["f1"] == pytest.approx(f1_score(yi, predicted, average=None, zero_division=0).tolist())
    assert per["support"] == yi.sum(axis=0).tolist()
    from core.metrics import greater_is_better

    assert not greater_is_better("hamming_loss") and greater_is_better("f1_micro")
    # Through the task, from logits: the sigmoid at the run's threshold.
    logits = np.log(probs.clip(1e-6, 1 - 1e-6) / (1 - probs.clip(1e-6, 1 - 1e-6)))
    prepared = type("P", (), {"label_names": list("abcde")})()
    config = parse_config({"task": TASK, "data": {"train_file": "x"}, "training": {"threshold": 0.7}})
    at_07 = get_task(TASK).for_run(config).compute_metrics(logits, y, ["f1_micro"], prepared)
    assert at_07["f1_micro"] == pytest.approx(f1_score(yi, (probs >= 0.7).astype(int), average="micro"))
    assert get_task(TASK).eval_loss(logits, y) == pytest.approx(float(
        __import__("torch").nn.functional.binary_cross_entropy_with_logits(
            __import__("torch").tensor(logits), __import__("torch").tensor(y, dtype=__import__("torch").float64))),
        rel=1e-6)
    assert shared.multi_label_metrics(np.zeros((0, 3)), np.zeros((0, 3)), ["f1_micro"]) == {"f1_micro": 0.0}


def test_thresholds_are_tuned_per_label_with_ties_to_the_middle() -> None:
    rng = np.random.default_rng(1)
    n = 400
    y = np.zeros((n, 4))
    probs = np.zeros((n, 4))
    # Label 0: positives score 0.30-0.40, negatives 0.0-0.25: every threshold in (0.25, 0.30] separates them; 0.30.
    y[:, 0] = rng.random(n) < 0.3
    probs[:, 0] = np.where(y[:, 0] == 1, 0.30 + 0.1 * rng.random(n), 0.25 * rng.random(n))
    # Label 1: perfectly separated at any threshold from 0.05 to 0.95: the tie goes to 0.5.
    y[:, 1] = rng.random(n) < 0.5
    probs[:, 1] = np.where(y[:, 1] == 1, 0.99, 0.01)
    # Label 2: no positive in these rows: it keeps 0.5.
    probs[:, 2] = rng.random(n)
    # Label 3: positives at 0.8-0.9 and negatives at 0.6-0.7: 0.7, 0.75 and 0.8 all separate; 0.7 is nearest 0.5...
    y[:, 3] = rng.random(n) < 0.2
    probs[:, 3] = np.where(y[:, 3] == 1, 0.8 + 0.1 * rng.random(n), 0.6 + 0.1 * rng.random(n))
    tuned = shared.tune_thresholds(y, probs)
    assert tuned == pytest.approx([0.30, 0.5, 0.5, 0.7])
    # ... and every tuned F1 is the best the grid offers.
    for j in (0, 1, 3):
        def f1(t: float, j: int = j) -> float:
            return float(shared.per_label_scores(y[:, [j]], (probs[:, [j]] >= t).astype(int))["f1"][0])

        assert f1(tuned[j]) == pytest.approx(max(f1(t) for t in shared.THRESHOLD_GRID))
    # The best F1 wins over nearness; between equally good ones equally near 0.5, the lower.
    two = np.array([[1.0], [0.0]])
    assert shared.tune_thresholds(two, np.array([[0.9], [0.5]]), grid=(0.45, 0.55, 0.6)) == [0.55]
    assert shared.tune_thresholds(two, np.array([[0.9], [0.1]]), grid=(0.45, 0.55)) == [0.45]


def test_auto_positive_weights_are_negatives_over_positives_clipped() -> None:
    assert shared.positive_weights([10, 50, 0, 99, 1], 100) == pytest.approx([9.0, 1.0, 1.0, 1 / 50, 50.0])


# --- one weighted loss on every engine -------------------------------------------------------------------------------

def _batch() -> tuple[Any, Any, list[float]]:
    import torch

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 3, generator=generator) * 2
    labels = (torch.rand(16, 3, generator=generator) < 0.3).float()
    return logits, labels, [0.5, 3.0, 12.0]


def _trainer_loss(logits: Any, labels: Any, weights: list[float] | None, tmp_path: Path, *, training: bool) -> float:
    """The trainer engine's Trainer subclass asked for the loss of a multi-label model whose logits are these."""
    import torch
    from transformers import Trainer, TrainingArguments
    from transformers.modeling_outputs import SequenceClassifierOutput

    from core.engines.trainer import _trainer_class

    class FixedLogits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(()))

        def forward(self, input_ids: Any = None, labels: Any = None, **_: Any) -> Any:
            out = logits + self.anchor
            # What a multi_label_classification head returns: BCEWithLogitsLoss's plain mean.
            loss = torch.nn.functional.binary_cross_entropy_with_logits(out, labels) if labels is not None else None
            return SequenceClassifierOutput(loss=loss, logits=out)

    model = FixedLogits()
    args = TrainingArguments(output_dir=str(tmp_path / "trainer"), use_cpu=True, report_to="none")
    trainer = _trainer_class(Trainer)(model=model, args=args, class_weights=weights,
                                      weighted_loss=get_task(TASK).torch_loss)
    model.train(training)
    inputs = {"input_ids": torch.zeros(len(labels), 1, dtype=torch.long), "labels": labels}
    return float(trainer.compute_loss(model, inputs).detach())


@needs_keras
def test_the_three_engines_weigh_one_batch_alike(tmp_path: Path) -> None:
    import torch

    from core.engines import keras_callbacks as kc
    from core.engines.keras_convert import import_keras
    from core.engines.torch_loop import training_loss

    logits, labels, weights = _batch()
    reference = float(torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(weights))(logits, labels))
    plain = float(torch.nn.BCEWithLogitsLoss()(logits, labels))
    p = torch.sigmoid(logits)
    w = torch.tensor(weights)
    by_hand = -(w * labels * torch.log(p) + (1 - labels) * torch.log(1 - p)).mean()
    assert reference == pytest.approx(float(by_hand), abs=1e-5)  # the definition we promise

    keras = import_keras()
    task = get_task(TASK)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Identity()])
    model.compile(optimizer="sgd", loss=task.keras_loss(keras, weights), jit_compile=False)
    y, y_pred = task.keras_labels(labels.numpy()), logits.numpy()
    logged = kc.BatchLoss(class_weights=weights, task=TASK)
    logged.update_state(y, y_pred)
    outputs = type("Outputs", (), {"logits": logits, "loss": torch.tensor(plain)})()
    losses = {
        "trainer": _trainer_loss(logits, labels, weights, tmp_path, training=True),
        "torch-loop": float(training_loss(outputs, labels, torch.tensor(weights), task.torch_loss)),
        "keras": float(model.compute_loss(x=None, y=y, y_pred=y_pred)),
        "keras (logged)": float(logged.result()),
    }
    assert all(abs(value - reference) <= 1e-6 for value in losses.values()), (reference, losses)
    assert abs(reference - plain) > 0.05
    # Unweighted: the plain mean on each engine, and evaluation (model.eval()) stays unweighted.
    model.compile(optimizer="sgd", loss=task.keras_loss(keras, None), jit_compile=False)
    assert float(model.compute_loss(x=None, y=y, y_pred=y_pred)) == pytest.approx(plain, abs=1e-6)
    assert _trainer_loss(logits, labels, weights, tmp_path, training=False) == pytest.approx(plain, abs=1e-6)
    assert task.eval_loss(logits.numpy(), labels.numpy()) == pytest.approx(plain, abs=1e-6)


# --- training runs ---------------------------------------------------------------------------------------------------

def _config(model: Path, root: Path, engine: str = "trainer", **training: Any) -> dict:
    train = write_joined(root / "train.tsv", comments(160, seed=11))
    test = write_jsonl(root / "test.jsonl", comments(40, seed=12), column="tags")
    raw = tiny_config(model, {"train": train, "test": test}, root / f"run-{engine}", eval_strategy="epoch",
                      num_train_epochs=8, **training)
    raw["data"].update(label_column="tags", validation_fraction=0.25)
    del raw["metrics"]  # the task's defaults
    return {**raw, "task": TASK, "engine": engine}


@pytest.fixture(scope="module")
def runs(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunDir]:
    """trainer with thresholds tuned per label and auto label weights; torch-loop with a fixed threshold."""
    root = tmp_path_factory.mktemp("multilabel")
    return {"trainer": _run_in_process(_config(tiny_model, root, "trainer", threshold="auto", class_weights="auto")),
            "torch-loop": _run_in_process(_config(tiny_model, root, "torch-loop", threshold=0.4))}


def _rows(run: RunDir, split: str = "validation") -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run.path / "evaluation" / split / "predictions.jsonl").open()]


def _report(run: RunDir, split: str = "validation") -> dict[str, Any]:
    return json.loads((run.path / "evaluation" / split / "metrics.json").read_text())


def _all_tags_f1(run: RunDir, split: str) -> float:
    """The trivial baseline: every tag on every row (no tag at all scores 0)."""
    truth = np.asarray([[t in r["labels"] for t in TAGS] for r in _rows(run, split)], dtype=int)
    return shared.multi_label_metrics(truth, np.ones_like(truth), ["f1_micro"])["f1_micro"]


@pytest.mark.parametrize("engine", ["trainer", "torch-loop"])
def test_a_run_learns_the_tags(runs: dict[str, RunDir], engine: str) -> None:
    run = runs[engine]
    events = run.events()
    started = next(e for e in events if e["type"] == "run_started")
    assert started["task"] == TASK and started["labels"] == list(TAGS)
    assert started["label_summary"].startswith("3 labels, ")
    losses = [e["loss"] for e in events if e["type"] == "step"]
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3, losses
    finished = events[-1]
    assert finished["type"] == "finished", finished
    metrics = finished["metrics"]
    validation, test = _report(run)["metrics"], _report(run, "test")["metrics"]
    baseline = {split: _all_tags_f1(run, split) for split in ("validation", "test")}
    assert max(baseline.values()) < 0.55, baseline  # about 0.46: a tag is on 30% of the rows
    meta = json.loads((run.model_dir / "task.json").read_text())
    assert meta["task"] == TASK and meta["labels"] == list(TAGS)
    assert finished["thresholds"] == meta["thresholds"] and list(meta["thresholds"]) == list(TAGS)
    if engine == "torch-loop":  # one threshold for the run, the report and the saved model
        assert meta["thresholds"] == dict.fromkeys(TAGS, 0.4) and "threshold" not in finished
        assert validation == pytest.approx({k: v for k, v in metrics.items() if k != "test"})
        assert metrics["f1_micro"] > baseline["validation"] + 0.2 and test["f1_micro"] > baseline["test"] + 0.2, \
            (metrics, baseline)
    else:
        # Trained with positive weights (auto), so 0.5 lets in false positives; the thresholds tuned per label on
        # validation, which the saved model and the reports use, take them out again.
        assert finished["threshold"] == "auto" and all(t in shared.THRESHOLD_GRID for t in meta["thresholds"].values())
        assert metrics["f1_micro"] > baseline["validation"] + 0.1, (metrics, baseline)
        assert validation["f1_micro"] > baseline["validation"] + 0.3 and test["f1_micro"] > baseline["test"] + 0.3, \
            (validation, test, baseline)
        # Each label's F1 is the best the grid offers (0.5 included), so their mean is at least the run's at 0.5.
        assert validation["f1_macro"] >= metrics["f1_macro"] - 1e-9
        assert validation["loss"] == pytest.approx(metrics["loss"])  # the engine's own, threshold-free
    assert 0 <= validation["hamming_loss"] < 0.2 and validation["exact_match"] > 0.5, validation


@pytest.mark.parametrize("engine", ["trainer", "torch-loop"])
def test_the_saved_model_answers_what_the_run_measured(runs: dict[str, RunDir], engine: str) -> None:
    """predictions.jsonl holds the engine's own final outputs at the saved thresholds; the saved model gives the same
    probabilities and labels through predict and the same probabilities through transformers' pipeline."""
    from transformers import pipeline

    from core.predict import load_predictor

    run = runs[engine]
    rows = _rows(run)
    thresholds = json.loads((run.model_dir / "task.json").read_text())["thresholds"]
    predictor = load_predictor(run.path)
    probs = predictor.scores([r["text"] for r in rows])
    assert probs.shape == (len(rows), 3)
    assert np.allclose(probs, [[r["probabilities"][t] for t in TAGS] for r in rows], atol=1e-4)
    answers = predictor.predict([r["text"] for r in rows])
    assert [a["labels"] for a in answers] == [r["predicted"] for r in rows]
    assert all(set(r["predicted"]) == {t for t in TAGS if r["probabilities"][t] >= thresholds[t]} for r in rows)
    # The validation split's true tags follow their phrases.
    assert all(("actors" in r["text"].split()) == ("cast" in r["labels"]) for r in rows)

    scorer = pipeline("text-classification", model=str(run.model_dir), **get_task(TASK).pipeline_kwargs)
    assert get_task(TASK).pipeline_kwargs == {"function_to_apply": "sigmoid", "top_k": None}
    piped = scorer([r["text"] for r in rows[:5]])
    for out, expected in zip(piped, probs[:5], strict=True):
        assert np.allclose([{o["label"]: o["score"] for o in out}[t] for t in TAGS], expected, atol=1e-4)

    report = json.loads((run.path / "evaluation" / "validation" / "metrics.json").read_text())
    assert report["task"] == TASK and report["size"] == len(rows)
    assert [report["per_label"][t]["threshold"] for t in TAGS] == [thresholds[t] for t in TAGS]
    truth = np.asarray([[t in r["labels"] for t in TAGS] for r in rows], dtype=int)
    guessed = np.asarray([[t in r["predicted"] for t in TAGS] for r in rows], dtype=int)
    assert [report["per_label"][t]["support"] for t in TAGS] == truth.sum(axis=0).tolist()
    assert report["metrics"]["f1_micro"] == pytest.approx(
        shared.multi_label_metrics(truth, guessed, ["f1_micro"])["f1_micro"])
    assert report["label_grid"]["counts"] == (truth.T @ guessed).tolist()
    wrong = [json.loads(line) for line in (run.path / "evaluation" / "validation" / "most_wrong.jsonl").open()]
    errors = [sum(abs(r["probabilities"][t] - (t in r["labels"])) for t in TAGS) for r in rows]
    assert [w["error"] for w in wrong] == sorted((w["error"] for w in wrong), reverse=True)
    assert wrong[0]["error"] == pytest.approx(max(errors), abs=1e-5)


def test_predict_and_evaluate_print_labels(runs: dict[str, RunDir], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    run = runs["trainer"]
    thresholds = json.loads((run.model_dir / "task.json").read_text())["thresholds"]
    assert main(["predict", str(run.path), *TEXTS, "--json"]) == 0
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [set(a) for a in answers] == [{"text", "labels", "probabilities"}] * 3
    for answer in answers:  # the labels at or above their tuned thresholds, in label order
        assert answer["labels"] == [t for t in TAGS if answer["probabilities"][t] >= thresholds[t]], answer
    praised, panned, plain = (a["probabilities"] for a in answers)
    assert praised["praise"] > praised["complaint"] and panned["complaint"] > panned["praise"], answers
    assert plain["praise"] < praised["praise"] and plain["complaint"] < panned["complaint"], answers
    assert main(["predict", str(run.path), TEXTS[1]]) == 0
    labels, probabilities, text = capsys.readouterr().out.rstrip("\n").split("\t")
    assert labels == ("|".join(answers[1]["labels"]) or "(none)") and text == TEXTS[1]
    assert probabilities.startswith("(complaint 0.") and probabilities.count(",") == 2

    source = write_tsv(tmp_path / "in.tsv", [(t,) for t in TEXTS], header=("review",))
    assert main(["predict", str(run.path), "--input", str(source)]) == 0
    assert "complaint=" in capsys.readouterr().out
    written = [line.split("\t") for line in (tmp_path / "in.predictions.tsv").read_text().splitlines()]
    assert written[0] == ["review", "predicted", *(f"probability_{t}" for t in TAGS)] and len(written) == 4
    assert [row[1] for row in written[1:]] == ["|".join(a["labels"]) for a in answers]
    assert float(written[2][3]) == pytest.approx(panned["complaint"], abs=1e-6)

    assert main(["evaluate", str(run.path), "--split", "test"]) == 0
    out = capsys.readouterr().out
    assert "f1_micro" in out and "threshold" in out and "furthest from their labels" in out
    assert (run.path / "evaluation" / "test" / "report.png").stat().st_size > 10_000


@needs_keras
def test_keras_learns_the_tags_with_tuned_thresholds(tiny_model: Path, tmp_path: Path) -> None:
    from core.predict import load_predictor

    run = _run_in_process(_config(tiny_model, tmp_path, "keras", threshold="auto"))
    finished = run.events()[-1]
    assert finished["type"] == "finished", finished
    assert finished["threshold"] == "auto" and list(finished["thresholds"]) == list(TAGS)
    baseline = _all_tags_f1(run, "validation")
    report = _report(run)["metrics"]
    assert report["f1_micro"] > baseline + 0.2 and report["f1_macro"] >= finished["metrics"]["f1_macro"] - 1e-9, \
        (report, finished["metrics"], baseline)
    rows = _rows(run)
    predictor = load_predictor(run.path)
    probs = predictor.scores([r["text"] for r in rows])
    assert np.allclose(probs, [[r["probabilities"][t] for t in TAGS] for r in rows], atol=1e-3)
    assert [a["labels"] for a in predictor.predict([r["text"] for r in rows])] == [r["predicted"] for r in rows]


@pytest.mark.slow
def test_the_multi_label_demo_learns_the_tags_with_the_bundled_model(tmp_path: Path) -> None:
    """README's multi-label figures: examples/demo-multilabel.yaml (the task's own learning defaults) with the bundled
    MiniLM, run the README's way, `finetune-tui run` in its own process; 2 epochs here to keep CI short."""
    run = run_example("demo-multilabel.yaml", tmp_path / "run", epochs=2)
    finished = run.events()[-1]
    test = finished["metrics"]["test"]
    assert test["f1_micro"] > 0.8 and test["f1_macro"] > 0.6, test
    meta = json.loads((run.model_dir / "task.json").read_text())
    assert meta["task"] == "multi-label-classification"
    assert meta["labels"] == ["account", "billing", "bug", "praise", "shipping"]
