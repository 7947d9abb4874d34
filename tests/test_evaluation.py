"""Evaluation of saved runs: metrics agree with what the run reported, per-class and confusion tables add up, the
files are written, the most-wrong list is sorted by the confidence of the wrong label."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.evaluation import evaluate_run, format_evaluation, load_evaluation, score
from core.rundir import RunDir
from core.tasks import get_task
from tests.conftest import tiny_config, tiny_rows, write_tsv
from tests.test_trainer_run import _run_in_process

OFFLINE = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TOLERANCE = 1e-4  # measured: predictions through core.predict give the Trainer's own eval numbers


@pytest.fixture(scope="module")
def trained_run(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    root = tmp_path_factory.mktemp("eval-run")
    data = {"train": write_tsv(root / "train.tsv", tiny_rows(96, seed=1)),
            "test": write_tsv(root / "test.tsv", tiny_rows(24, seed=2))}
    # Few steps on purpose: a half-trained model makes mistakes, so the most-wrong list has something in it.
    raw = tiny_config(tiny_model, data, root / "run", max_steps=14, eval_strategy="no", save_strategy="no")
    raw["metrics"] = ["accuracy", "f1", "precision", "recall", "matthews_correlation"]
    return _run_in_process(raw)


# --- scoring -----------------------------------------------------------------------------------------------------

def test_score_tables_add_up() -> None:
    refs = [0, 0, 1, 1, 2, 2, 2]
    probs = np.array([[.9, .05, .05], [.2, .7, .1], [.1, .8, .1], [.6, .3, .1], [.1, .1, .8], [.3, .3, .4],
                      [.05, .9, .05]])
    ev = score(["a", "b", "c"], ["accuracy", "f1"], refs, probs)
    assert ev.confusion == [[1, 1, 0], [1, 1, 0], [0, 1, 2]]
    assert [c.support for c in ev.per_class] == [2, 2, 3]
    assert ev.metrics["accuracy"] == pytest.approx(4 / 7)
    by = {c.label: c for c in ev.per_class}
    assert by["c"].precision == 1.0 and by["c"].recall == pytest.approx(2 / 3)
    true_p = probs[np.arange(7), refs]
    assert ev.metrics["loss"] == pytest.approx(float(-np.log(true_p).mean()))


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 5).flatmap(lambda k: st.tuples(
    st.just(k), st.lists(st.integers(0, k - 1), min_size=1, max_size=40), st.integers(0, 2**31 - 1))))
def test_most_wrong_is_sorted_by_wrong_confidence(case: tuple[int, list[int], int]) -> None:
    k, refs, seed = case
    probs = np.random.default_rng(seed).dirichlet(np.ones(k), size=len(refs))
    most_wrong = get_task("text-classification").most_wrong
    found = most_wrong(np.asarray(refs), probs, limit=len(refs))
    preds = probs.argmax(axis=1)
    assert {i for i, _ in found} == {i for i in range(len(refs)) if preds[i] != refs[i]}
    confidences = [extra["confidence"] for _, extra in found]
    assert confidences == sorted(confidences, reverse=True)
    assert all(extra["confidence"] == pytest.approx(probs[i].max(), abs=1e-6) for i, extra in found)
    assert len(most_wrong(np.asarray(refs), probs, limit=2)) == min(2, len(found))


# --- a trained run ---------------------------------------------------------------------------------------------

def test_evaluate_run_matches_what_the_run_reported(trained_run: RunDir) -> None:
    reported = json.loads(trained_run.metrics_path.read_text())
    for split in ("validation", "test"):
        ev = evaluate_run(trained_run.path, split)
        wanted = {k: v for k, v in reported[split].items() if k in ev.metrics}
        assert set(wanted) == {"loss", "accuracy", "f1", "precision", "recall", "matthews_correlation",
                               "f1_macro", "precision_macro", "recall_macro"}  # two classes: macro averages too
        for name, value in wanted.items():
            assert ev.metrics[name] == pytest.approx(value, abs=TOLERANCE), (split, name)
        assert ev.size == sum(c.support for c in ev.per_class) == {"validation": 24, "test": 24}[split]
        assert [sum(row) for row in ev.confusion] == [c.support for c in ev.per_class]
        assert ev.labels == ["neg", "pos"]


def test_evaluation_files(trained_run: RunDir) -> None:
    before = json.loads(trained_run.metrics_path.read_text())
    ev = evaluate_run(trained_run.path, "validation")
    out = trained_run.path / "evaluation" / "validation"
    assert ev.directory == out
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["metrics"] == ev.metrics and saved["confusion_matrix"]["matrix"] == ev.confusion
    assert saved["per_class"]["pos"]["support"] == next(c.support for c in ev.per_class if c.label == "pos")

    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == ev.size
    assert all(set(r) >= {"text", "label", "predicted", "probabilities"} for r in rows)
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-4 for r in rows)
    assert sum(r["predicted"] == r["label"] for r in rows) / len(rows) == pytest.approx(ev.metrics["accuracy"])

    wrong = [json.loads(line) for line in (out / "most_wrong.jsonl").read_text().splitlines()]
    assert wrong, "a half-trained model gets something wrong"
    assert all(r["predicted"] != r["label"] for r in wrong)
    assert [r["confidence"] for r in wrong] == sorted((r["confidence"] for r in wrong), reverse=True)
    assert wrong[0]["confidence"] == max(r["probabilities"][r["predicted"]] for r in rows if not r["correct"])

    png = (out / "report.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 10_000

    summary = json.loads(trained_run.metrics_path.read_text())
    assert summary["validation"] == before["validation"] and summary["test"] == before["test"]  # kept
    assert summary["evaluation"]["validation"]["metrics"] == ev.metrics
    assert summary["evaluation"]["validation"]["dir"] == "evaluation/validation"

    loaded = load_evaluation(trained_run.path, "validation")
    assert loaded is not None and loaded.confusion == ev.confusion and loaded.most_wrong == ev.most_wrong
    text = format_evaluation(loaded)
    assert "confusion matrix" in text and "neg" in text and f"{ev.metrics['accuracy']:.4f}" in text


def test_cli_evaluate(trained_run: RunDir) -> None:
    result = _cli("evaluate", str(trained_run.path), "--split", "test")
    assert result.returncode == 0, result.stderr
    assert "test: 24 examples" in result.stdout and "precision" in result.stdout
    assert (trained_run.path / "evaluation" / "test" / "report.png").exists()


def test_evaluate_refuses_what_it_cannot_do(trained_run: RunDir, tmp_path: Path) -> None:
    from core.errors import UserError

    result = _cli("evaluate", str(tmp_path))
    assert result.returncode == 2 and "not a run directory" in result.stderr and "Traceback" not in result.stderr
    no_test = tmp_path / "no-test"
    no_test.mkdir()
    text = (trained_run.path / "config.yaml").read_text().replace("test_file: " , "test_file: null #")
    (no_test / "config.yaml").write_text(text)
    with pytest.raises(UserError, match="no test data"):
        evaluate_run(no_test, "test")


def test_evaluate_with_a_given_predictor_writes_everything(tiny_model: Path, tiny_data: dict, tmp_path: Path) -> None:
    """No model needed: the scoring and files around whatever the predictor says."""
    from core.config import parse_config, save_config

    run = tmp_path / "run"
    run.mkdir()
    save_config(parse_config(tiny_config(tiny_model, tiny_data, run)), run / "config.yaml")

    class Always:
        labels = ("pos", "neg")  # another order than the run's: columns must be matched by name
        task = get_task("text-classification")

        def scores(self, texts: list[str], pairs: Any = None, batch_size: int = 32) -> np.ndarray:
            return np.tile([0.8, 0.2], (len(texts), 1))

    ev = evaluate_run(run, "validation", predictor=Always(), report=False)
    assert ev.labels == ["neg", "pos"] and ev.size == 24
    assert ev.confusion == [[0, 12], [0, 12]]  # everything predicted pos
    assert ev.metrics["accuracy"] == 0.5 and len(ev.most_wrong) == 12
    assert all(r["confidence"] == 0.8 and r["predicted"] == "pos" for r in ev.most_wrong)
    assert not (run / "evaluation" / "validation" / "report.png").exists()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tui.cli", *args], capture_output=True, text=True, env=OFFLINE,
                          timeout=300)
