"""task: text-regression, end to end on the tiny model: scores read and checked, a stratified split, MSE training on
the trainer and torch-loop engines (and keras where installed), metrics in the score's units, label scaling folded
into the saved head, and the saved model's answers in predict, predict files, the pipeline and the evaluation."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from core.config import parse_config
from core.data import prepare_data
from core.errors import ConfigError, DataError
from core.rundir import RunDir
from core.tasks import get_task
from tests.conftest import FILLER, NEGATIVE, POSITIVE, run_example, tiny_config, write_tsv
from tests.test_class_weights import needs_keras
from tests.test_trainer_run import _run_in_process
from tui.cli import main

TEXTS = ["great lovely superb excellent nice", "awful terrible broken horrible ugly", "the movie was good and bad"]


def ratings(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Reviews rated 1 to 5 (whole numbers, as people store stars): a rating-r review holds r - 1 praising words
    and 5 - r damning ones among filler, so the score can be learned from the words."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        stars = 1 + i % 5
        words = rng.choices(POSITIVE, k=stars - 1) + rng.choices(NEGATIVE, k=5 - stars)
        words += rng.choices(FILLER, k=rng.randint(1, 5))
        rng.shuffle(words)
        rows.append((" ".join(words), str(stars)))
    return rows


def _config(model: Path, root: Path, engine: str = "trainer", **data: object) -> dict:
    train = write_tsv(root / "train.tsv", ratings(120, seed=1), header=("review", "stars"))
    test = write_tsv(root / "test.tsv", ratings(30, seed=2), header=("review", "stars"))
    raw = tiny_config(model, {"train": train, "test": test}, root / f"run-{engine}", eval_strategy="epoch",
                      num_train_epochs=10)
    raw["data"].update(text_column="review", label_column="stars", **data)
    del raw["metrics"]  # the task's defaults
    return {**raw, "task": "text-regression", "engine": engine}


@pytest.fixture(scope="module")
def runs(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunDir]:
    """trainer with label_scaling standard (the fold is exercised), torch-loop with scores as they are."""
    root = tmp_path_factory.mktemp("regression")
    return {"trainer": _run_in_process(_config(tiny_model, root, "trainer", label_scaling="standard")),
            "torch-loop": _run_in_process(_config(tiny_model, root, "torch-loop"))}


# --- config and data --------------------------------------------------------------------------------------------

def test_the_task_brings_its_own_metrics_and_refuses_settings_it_has_no_use_for(tiny_model: Path,
                                                                                 tmp_path: Path) -> None:
    raw = _config(tiny_model, tmp_path)
    config = parse_config(raw)
    assert config.metrics == ["pearson", "spearman", "mse", "rmse", "mae", "r2"]
    assert parse_config({**raw, "task": "text-classification"}).metrics == ["accuracy"]
    for bad, words in [({"metrics": ["accuracy"]}, "not reported for text-regression"),
                       ({"training": {"class_weights": "auto"}}, "class_weights weighs classes.*set "
                                                                 "training.class_weights: null"),
                       ({"data": {**raw["data"], "label_names": ["a", "b"]}}, "label_names names classes"),
                       ({"task": "text-classification", "data": {**raw["data"], "label_scaling": "standard"},
                         "metrics": ["accuracy"]}, "scales the scores of text-regression.*label_scaling: none"),
                       ({"task": "text-summarisation"}, "choose one of text-classification, text-regression")]:
        with pytest.raises(ConfigError, match=words):
            parse_config({**raw, **bad})


def test_scores_are_read_from_numbers_and_from_text_and_split_by_their_quantiles(tmp_path: Path) -> None:
    rows = [(text, f" {stars} " if i % 2 else stars) for i, (text, stars) in enumerate(ratings(200, seed=3))]
    path = write_tsv(tmp_path / "train.tsv", rows, header=("text", "label"))
    cfg = parse_config({"task": "text-regression", "data": {"train_file": str(path), "label_column": "label"}})
    prepared = prepare_data(cfg.data, cfg.task)
    assert prepared.label_names == ["label"] and prepared.task == "text-regression"
    assert str(prepared.dataset["train"].features["label"].dtype) == "float32"
    stats = prepared.label_stats
    assert (stats["min"], stats["max"], stats["median"], stats["whole"]) == (1.0, 5.0, 3.0, True)
    assert stats["scaling"] is None and sum(c for _, _, c in stats["histogram"]) == prepared.sizes["train"]
    # Stratified on the ratings: 20 validation rows, 4 of each rating, as 40 of each are in the file.
    assert sorted(np.bincount(np.asarray(prepared.dataset["validation"]["label"], dtype=int))[1:]) == [4] * 5
    assert get_task("text-regression").summary(prepared) == "scores 1 to 5 (median 3) in 'label'"


@pytest.mark.parametrize(("value", "words"), [
    ("great", r"holds text that is not a number \('great'\) at data rows 4 .*file lines 5"),
    ("inf", r"score that is not finite \(inf\) at data rows 4"),
    ("NaN", r"score that is not finite \(nan\) at data rows 4"),
    ("", "1 missing score, at data rows 4"),
])
def test_a_bad_score_is_named_by_its_row(tmp_path: Path, value: str, words: str) -> None:
    rows = ratings(12)
    rows[3] = (rows[3][0], value)
    path = write_tsv(tmp_path / "train.tsv", rows)
    with pytest.raises(DataError, match=words):
        prepare_data(parse_config({"task": "text-regression", "data": {"train_file": str(path)}}).data,
                     "text-regression")


def test_one_score_for_every_row_or_true_false_labels_are_refused(tmp_path: Path) -> None:
    path = write_tsv(tmp_path / "same.tsv", [(t, "3") for t, _ in ratings(12)])
    with pytest.raises(DataError, match=r"every score .* is 3"):
        prepare_data(parse_config({"data": {"train_file": str(path)}}).data, "text-regression")
    jsonl = tmp_path / "flags.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t, "label": i % 2 == 0}) + "\n" for i, (t, _) in
                             enumerate(ratings(12))))
    with pytest.raises(DataError, match=r"(?s)true/false values.*set task: text-classification"):
        prepare_data(parse_config({"data": {"train_file": str(jsonl)}}).data, "text-regression")


def test_fractional_labels_under_text_classification_point_at_the_regression_task(tmp_path: Path,
                                                                                   capsys: pytest.CaptureFixture
                                                                                   ) -> None:
    path = write_tsv(tmp_path / "train.tsv", [(t, f"{int(s) / 2}") for t, s in ratings(20)])
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"data": {"train_file": str(path)}}))
    assert main(["validate", str(config)]) == 2
    err = capsys.readouterr().err
    assert "fractional numbers" in err and "set task: text-regression" in err and "Traceback" not in err


# --- training runs ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("engine", ["trainer", "torch-loop"])
def test_a_run_learns_the_scores_and_reports_them_in_their_units(runs: dict[str, RunDir], engine: str) -> None:
    run = runs[engine]
    events = run.events()
    started = next(e for e in events if e["type"] == "run_started")
    assert started["task"] == "text-regression" and started["labels"] == ["stars"]
    assert started["label_summary"].startswith("scores 1 to 5 (median 3) in 'stars'")
    losses = [e["loss"] for e in events if e["type"] == "step"]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3, losses
    finished = events[-1]
    assert finished["type"] == "finished"
    metrics = finished["metrics"]
    assert metrics["pearson"] > 0.8 and metrics["test"]["pearson"] > 0.8, metrics
    assert metrics["rmse"] == pytest.approx(metrics["mse"] ** 0.5, rel=1e-6)
    meta = json.loads((run.model_dir / "task.json").read_text())
    assert meta["task"] == "text-regression" and meta["labels"] == ["stars"]
    assert ("label_scaling" in meta) == (engine == "trainer")


@pytest.mark.parametrize("engine", ["trainer", "torch-loop"])
def test_the_saved_model_answers_what_the_run_measured(runs: dict[str, RunDir], engine: str) -> None:
    """predictions.jsonl holds the engine's own final outputs (in raw units, scaling undone); the saved model (with
    the scaling folded into its head) gives the same scores through predict and through transformers' pipeline."""
    from transformers import pipeline

    from core.predict import load_predictor

    run = runs[engine]
    rows = [json.loads(line) for line in (run.path / "evaluation" / "validation" / "predictions.jsonl").open()]
    predictor = load_predictor(run.path)
    scores = predictor.scores([r["text"] for r in rows])
    assert scores.shape == (len(rows),)
    assert np.allclose(scores, [r["predicted"] for r in rows], atol=1e-4)
    assert all(r["error"] == pytest.approx(r["predicted"] - r["label"], abs=2e-6) for r in rows)
    assert 0.0 < float(np.mean(scores)) < 6.0  # raw units, not z-scores
    scorer = pipeline("text-classification", model=str(run.model_dir), function_to_apply="none")
    piped = [out["score"] for out in scorer([r["text"] for r in rows[:5]])]
    assert np.allclose(piped, scores[:5], atol=1e-4)
    assert scorer(rows[0]["text"])[0]["label"] == "stars"

    report = json.loads((run.path / "evaluation" / "validation" / "metrics.json").read_text())
    assert report["task"] == "text-regression" and "confusion_matrix" not in report
    assert sum(map(sum, report["scatter"]["counts"])) == report["size"] == len(rows)
    assert sum(report["residuals"]["counts"]) == len(rows)
    wrong = [json.loads(line) for line in (run.path / "evaluation" / "validation" / "most_wrong.jsonl").open()]
    assert [abs(r["error"]) for r in wrong] == sorted((abs(r["error"]) for r in wrong), reverse=True)
    assert abs(wrong[0]["error"]) == pytest.approx(max(abs(r["error"]) for r in rows))


def test_predict_and_evaluate_print_scores(runs: dict[str, RunDir], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    run = runs["trainer"]
    assert main(["predict", str(run.path), *TEXTS, "--json"]) == 0
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [set(a) for a in answers] == [{"text", "score"}] * 3
    assert answers[0]["score"] > answers[1]["score"] + 1.5, answers  # praise scores higher than scorn
    assert main(["predict", str(run.path), TEXTS[0]]) == 0
    score, text = capsys.readouterr().out.rstrip("\n").split("\t")
    assert float(score) == pytest.approx(answers[0]["score"], abs=1e-4) and text == TEXTS[0]

    source = write_tsv(tmp_path / "in.tsv", [(t,) for t in TEXTS], header=("review",))
    assert main(["predict", str(run.path), "--input", str(source)]) == 0
    assert "scores " in capsys.readouterr().out
    written = (tmp_path / "in.predictions.tsv").read_text().splitlines()
    assert written[0] == "review\tpredicted" and len(written) == 4

    assert main(["evaluate", str(run.path), "--split", "test"]) == 0
    out = capsys.readouterr().out
    assert "pearson" in out and "largest errors" in out and "true score (rows, from)" in out
    assert (run.path / "evaluation" / "test" / "report.png").stat().st_size > 10_000


@needs_keras
def test_keras_trains_scores_and_saves_raw_units(tiny_model: Path, tmp_path: Path) -> None:
    from core.predict import load_predictor

    run = _run_in_process(_config(tiny_model, tmp_path, "keras", label_scaling="standard"))
    finished = run.events()[-1]
    assert finished["type"] == "finished" and finished["metrics"]["pearson"] > 0.5, finished
    rows = [json.loads(line) for line in (run.path / "evaluation" / "validation" / "predictions.jsonl").open()]
    scores = load_predictor(run.path).scores([r["text"] for r in rows])
    assert np.allclose(scores, [r["predicted"] for r in rows], atol=1e-3)


@pytest.mark.slow
def test_the_regression_demo_learns_the_stars_with_the_bundled_model(tmp_path: Path) -> None:
    """README's text-regression figures: examples/demo-regression.yaml with the bundled MiniLM, here for 2 of its 4
    epochs (about a minute on 2 cores), run the README's way, `finetune-tui run` in its own process."""
    finished = run_example("demo-regression.yaml", tmp_path / "run", epochs=2).events()[-1]
    assert finished["metrics"]["test"]["pearson"] > 0.7, finished["metrics"]  # 0.81 measured (0.97 after 4 epochs)
