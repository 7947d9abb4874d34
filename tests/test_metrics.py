"""Metrics as the field reports them: the positive class with two labels, macro over every class id with more,
and the best value in the metric's own direction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.config import parse_config
from core.console import format_runs
from core.events import EventWriter
from core.metrics import LOWER_IS_BETTER, Metrics, best_value, greater_is_better
from core.rundir import RunDir, list_runs

ALL = ["accuracy", "f1", "precision", "recall", "matthews_correlation"]
# Two classes: class 1 has TP 1, FP 2, FN 1; class 0 has TP 2, FP 1, FN 2.
BINARY_REFS = [0, 0, 0, 0, 1, 1]
BINARY_PREDS = [0, 0, 1, 1, 1, 0]
# Three classes, but this split holds only classes 0 and 1 (in the references and the predictions).
MISSING_REFS = [0, 0, 1, 1]
MISSING_PREDS = [0, 1, 1, 1]


def test_two_classes_report_the_positive_class_and_the_macro_averages() -> None:
    from sklearn.metrics import f1_score

    scores = Metrics(ALL, num_labels=2).compute(predictions=BINARY_PREDS, references=BINARY_REFS)
    # Positive class: precision 1/3, recall 1/2, f1 2pr/(p+r) = 0.4 (what GLUE and evaluate's f1 report) ...
    assert scores["precision"] == pytest.approx(1 / 3)
    assert scores["recall"] == pytest.approx(1 / 2)
    assert scores["f1"] == pytest.approx(0.4)
    assert scores["f1"] == pytest.approx(f1_score(BINARY_REFS, BINARY_PREDS, pos_label=1))
    # ... and the macro averages beside them: class 0 has precision 2/3, recall 1/2, f1 4/7.
    assert scores["precision_macro"] == pytest.approx((1 / 3 + 2 / 3) / 2)
    assert scores["recall_macro"] == pytest.approx(1 / 2)
    assert scores["f1_macro"] == pytest.approx((0.4 + 4 / 7) / 2)
    assert scores["accuracy"] == pytest.approx(0.5)
    assert list(scores) == ["accuracy", "f1", "f1_macro", "precision", "precision_macro", "recall", "recall_macro",
                            "matthews_correlation"]


def test_more_classes_average_over_every_class_id_even_one_missing_from_the_split() -> None:
    scores = Metrics(["f1", "precision", "recall", "f1_macro"], num_labels=3).compute(
        predictions=MISSING_PREDS, references=MISSING_REFS)
    # Class 0: precision 1, recall 1/2, f1 2/3; class 1: precision 2/3, recall 1, f1 4/5; class 2: absent, all 0.
    # Over the two seen classes f1 would be (2/3 + 4/5) / 2 = 0.733; over all three it is 0.489.
    assert scores["f1"] == pytest.approx((2 / 3 + 4 / 5 + 0) / 3)
    assert scores["precision"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert scores["recall"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert scores["f1_macro"] == scores["f1"]
    assert set(scores) == {"f1", "precision", "recall", "f1_macro"}  # no extra *_macro beyond two classes


def test_the_evaluation_report_averages_over_every_class() -> None:
    from core.evaluation import score

    probs = np.eye(3)[MISSING_PREDS] * 0.8 + 0.2 / 3
    ev = score(["a", "b", "c"], ["f1"], MISSING_REFS, probs)
    assert ev.metrics["f1"] == pytest.approx((2 / 3 + 4 / 5 + 0) / 3)
    assert [c.f1 for c in ev.per_class] == pytest.approx([2 / 3, 4 / 5, 0])


@pytest.mark.parametrize(("num_labels", "refs", "preds"),
                         [(2, BINARY_REFS, BINARY_PREDS), (3, MISSING_REFS, MISSING_PREDS)])
def test_exported_scripts_compute_the_same_numbers(num_labels: int, refs: list[int], preds: list[int]) -> None:
    import sklearn.metrics

    from core.tasks.text_classification.script import scorers

    names = [*ALL, "recall_macro"]
    namespace = {**vars(sklearn.metrics), "labels": np.asarray(refs), "predictions": np.asarray(preds)}
    script = {name: float(eval(expression, namespace)) for name, expression in scorers(names, num_labels).items()}
    ours = Metrics(names, num_labels).compute(predictions=preds, references=refs)
    assert script == pytest.approx(ours) and list(script) == list(ours)


def test_a_macro_average_can_pick_the_best_model() -> None:
    config = parse_config({"data": {"train_file": "x.csv"}, "metrics": ["accuracy", "f1", "f1_macro"],
                           "training": {"metric_for_best_model": "f1_macro"}})
    assert config.training.metric_for_best_model == "f1_macro"


def test_direction_of_each_metric() -> None:
    assert not greater_is_better("loss") and not greater_is_better("eval_loss")
    assert all(greater_is_better(name) for name in [*ALL, "f1_macro"])


def test_errors_and_losses_are_best_when_lowest() -> None:
    lower = ["mse", "rmse", "mae", "hamming_loss", "perplexity", "eval_perplexity", "eval_mse", "test_rmse", "eval_mae",
             "eval_hamming_loss", "test_loss", "cross_entropy_loss"]
    higher = ["accuracy", "f1", "pearson", "r2", "eval_accuracy", "test_pearson", "eval_r2", "spearmanr"]
    assert {"loss", "mse", "rmse", "mae", "hamming_loss", "perplexity"} == LOWER_IS_BETTER
    assert [n for n in lower if greater_is_better(n)] == []
    assert [n for n in higher if not greater_is_better(n)] == []
    assert best_value("mse", [0.4, 0.1, 0.3]) == 0.1 and best_value("eval_r2", [0.4, 0.9, 0.3]) == 0.9
    assert best_value("mae", []) is None


@pytest.mark.parametrize(("primary", "values", "best", "improved"), [
    ("mse", [0.5, 0.2, 0.3, 0.1], 0.1, [True, True, False, True]),
    ("loss", [0.5, 0.6, 0.4], 0.4, [True, False, True]),
    ("hamming_loss", [0.3, 0.3, 0.2], 0.2, [True, False, True]),
    ("accuracy", [0.5, 0.4, 0.7], 0.7, [True, False, True]),
])
def test_early_stopping_keeps_the_best_value_in_the_metrics_direction(
    primary: str, values: list[float], best: float, improved: list[bool]
) -> None:
    from core.engines.torch_loop import LoopState

    state = LoopState()
    assert [state.track_best({primary: v, "other": 0.0}, primary) for v in values] == improved
    assert state.best_value == best
    assert state.bad_evals == (0 if improved[-1] else 1)


@pytest.mark.parametrize("engine", ["trainer", "torch-loop", "keras"])
def test_exported_scripts_render_the_direction_of_the_best_model_metric(
    engine: str, tiny_model: Path, tmp_path: Path
) -> None:
    from core.engines import ENGINES
    from core.export import export_config
    from tests.conftest import tiny_config, tiny_rows, write_tsv

    if not ENGINES[engine].available():
        pytest.skip(f"the {engine} engine is not installed here")
    data = {"train": write_tsv(tmp_path / "train.tsv", tiny_rows(40, seed=1))}
    for metric, expected in (("loss", "GREATER_IS_BETTER = False"), ("accuracy", "GREATER_IS_BETTER = True")):
        raw = tiny_config(tiny_model, data, tmp_path / "run", early_stopping_patience=2, eval_strategy="steps",
                          eval_steps=5, metric_for_best_model=metric)
        text = export_config(parse_config({**raw, "engine": engine}), "script").text
        if engine == "trainer":  # Trainer takes the direction as a TrainingArguments keyword
            assert f"greater_is_better={expected.endswith('True')}" in text, metric
        else:
            assert expected in text, metric
            assert 'BEST_METRIC == "loss"' not in text


def test_runs_shows_the_lowest_loss_when_loss_picks_the_best(tmp_path: Path) -> None:
    rd = RunDir(tmp_path / "by-loss")
    rd.prepare()
    w = EventWriter(rd.events_path)
    w.emit("run_started", engine="trainer", dataset="d.tsv", primary_metric="loss", total_steps=30)
    for step, loss in [(10, 0.52), (20, 0.31), (30, 0.44)]:
        w.emit("eval", step=step, split="validation", metrics={"loss": loss, "accuracy": 0.7})
    w.emit("eval", step=30, split="test", metrics={"loss": 0.05, "accuracy": 0.7})  # never picks the best
    w.emit("finished")
    assert rd.summary().best == 0.31
    assert "loss 0.3100" in format_runs(list_runs(tmp_path))
