"""Stop and resume, early stopping, LoRA, a frozen encoder, the batch probe, torchrun and MirroredStrategy for each
task on each engine: text-regression (whole-number ratings, tests.test_task_regression) and
multi-label-classification (comments with several tags, tests.test_task_multilabel), and text-classification only
where its own tests (test_stop_resume, test_trainer_run, test_torch_loop, test_keras_engine, test_probe,
test_multiprocess) leave a combination out.

Every engine of core.engines.ENGINES runs every feature here: LoRA and freeze_encoder on the keras engine through
KerasHub, and several devices as torchrun processes (trainer, torch-loop) or as MirroredStrategy replicas in one
process (keras, EngineInfo.replicas_in_process). What the engines refuse is tested where it is refused.

Runs go through the run process's own entry point in this process (core.worker.main, as test_trainer_run), and
through `finetune-tui run` in a child process where several devices need one (as test_multiprocess)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.config import parse_config
from core.launch import create_run, resolve_config, resume_checkpoint
from core.rundir import RunDir
from core.tasks import get_task
from core.worker import main as worker_main
from tests.conftest import tiny_config, tiny_rows, without_dropout, write_tsv
from tests.test_multiprocess import _run
from tests.test_stop_resume import _stop_at
from tests.test_task_multilabel import TAGS, comments
from tests.test_task_regression import ratings
from tests.test_trainer_run import _run_in_process

REG, ML, CLS = "text-regression", "multi-label-classification", "text-classification"
TASKS = [REG, ML]
TORCH_ENGINES = ["trainer", "torch-loop"]
NEEDS_KERAS = pytest.mark.skipif(importlib.util.find_spec("keras_hub") is None,
                                 reason='the keras engine needs pip install "finetune-tui[keras]"')
OUTPUTS = {REG: 1, ML: len(TAGS), CLS: 2}  # the head's outputs: one score, one probability per label or class
PROBLEM_TYPE = {REG: "regression", ML: "multi_label_classification", CLS: "single_label_classification"}


# --- data and runs ----------------------------------------------------------------------------------------------------

def _data(task: str, root: Path) -> dict[str, Path]:
    """Train, validation and test files of a few dozen rows. The validation splits have an odd number of rows, so
    two processes or replicas split them unevenly, and their sizes are the files' (no split drawn from train)."""
    root.mkdir(parents=True, exist_ok=True)
    if task == REG:
        rows: list[tuple[str, ...]] = list(ratings(63, seed=1))
        header = ("text", "label")
    elif task == ML:
        rows = [(text, "|".join(tags)) for text, tags in comments(73, seed=11)]
        header = ("text", "tags")
    else:
        rows = list(tiny_rows(63, seed=1))
        header = ("text", "label")
    n_train, n_valid = (48, 15) if task == ML else (40, 13)
    splits = {"train": rows[:n_train], "validation": rows[n_train:n_train + n_valid],
              "test": rows[n_train + n_valid:]}
    return {split: write_tsv(root / f"{split}.tsv", part, header=header)
            for split, part in splits.items()}


def _raw(task: str, engine: str, model: Path, root: Path, name: str, **training: Any) -> dict[str, Any]:
    data = _data(task, root / "data")
    raw = tiny_config(model, data, root / name, **training)
    raw["data"]["validation_file"] = str(data["validation"])
    if task == ML:
        raw["data"]["label_column"] = "tags"
    if task != CLS:
        del raw["metrics"]  # the task's own
    return {**raw, "task": task, "engine": engine}


def _events(run: RunDir, kind: str, split: str | None = None) -> list[dict[str, Any]]:
    return [e for e in run.events() if e["type"] == kind and (split is None or e.get("split") == split)]


def _labels(run: RunDir) -> list[str]:
    return _events(run, "run_started")[0]["labels"]


def _check_answers(run: RunDir, task: str) -> None:
    """The saved model answers in the task's shape (a score per text, or a probability per label or class), and
    gives what the run's own final evaluation wrote into predictions.jsonl: the model saved is the one measured."""
    from core.predict import load_predictor

    rows = [json.loads(line) for line in (run.path / "evaluation" / "validation" / "predictions.jsonl").open()]
    assert len(rows) == _events(run, "run_started")[0]["sizes"]["validation"], "one answer per validation row"
    scores = load_predictor(run.path).scores([r["text"] for r in rows])
    labels = _labels(run)
    if task == REG:
        assert scores.shape == (len(rows),)
        expected = np.asarray([r["predicted"] for r in rows])
        assert 0.0 < float(np.mean(scores)) < 6.0, "scores in the ratings' units"
    else:
        assert scores.shape == (len(rows), OUTPUTS[task])
        expected = np.asarray([[r["probabilities"][name] for name in labels] for r in rows])
    keras = (run.model_dir / "model.keras").exists()
    assert np.allclose(scores, expected, atol=1e-3 if keras else 1e-4)


def _weights(directory: Path) -> dict[str, Any]:
    """A torch model's weights by their names in the base model (no `bert.` prefix), from model.safetensors."""
    from safetensors.torch import load_file

    return {k.removeprefix("bert."): v for k, v in load_file(directory / "model.safetensors").items()}


# --- stop and resume -------------------------------------------------------------------------------------------------

STEPS_PER_EPOCH = {REG: 5, ML: 6}  # 40 and 48 training rows in batches of 8


def _stop_on_the_epochs_last_step(monkeypatch: pytest.MonkeyPatch, run: RunDir, task: str, engine: str) -> None:
    """Ask for a stop so that the run stops on the last step of its first epoch, right before the epoch's
    evaluation: Trainer acts on a request at the step after the one whose log made it, the other engines at once."""
    _stop_at(monkeypatch, run, STEPS_PER_EPOCH[task] - (engine == "trainer"))


EARLY_STOPPING = {"num_train_epochs": 6, "early_stopping_patience": 1}  # checkpoints at the evaluations
# Without early stopping, Trainer's stop on an epoch's last step once saved before that epoch's evaluation, whose
# loader drew from the RNG: the resumed run's dropout masks were not the uninterrupted run's.
STEP_CHECKPOINTS = {"num_train_epochs": 2, "save_strategy": "steps", "save_steps": 4}


@pytest.mark.parametrize(("task", "engine", "settings"), [
    (REG, "trainer", STEP_CHECKPOINTS), (ML, "trainer", EARLY_STOPPING),
    (REG, "torch-loop", EARLY_STOPPING), (ML, "torch-loop", EARLY_STOPPING),
], ids=["text-regression-trainer-step_checkpoints", "multi-label-classification-trainer-early_stopping",
        "text-regression-torch-loop-early_stopping", "multi-label-classification-torch-loop-early_stopping"])
def test_a_stopped_run_resumes_from_its_checkpoint_and_lands_where_an_unbroken_one_does(
        task: str, engine: str, settings: dict[str, Any], tiny_model: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Stopped on an epoch's last step, resumed: every later step's loss, every evaluation (the stopped epoch's
    too, which early stopping counts) and the final metrics are those of an uninterrupted run, with the task's own
    state: regression's label scaling (folded into the saved head) and multi-label's thresholds tuned on the final
    validation outputs, which must be the resumed model's."""
    settings = {**settings, "logging_steps": 1}
    if task == ML:
        settings["threshold"] = "auto"

    def raw(name: str) -> dict[str, Any]:
        out = _raw(task, engine, tiny_model, tmp_path, name, **settings)
        if task == REG:
            out["data"]["label_scaling"] = "standard"
        return out

    straight = _run_in_process(raw("straight"))
    run = create_run(resolve_config(parse_config(raw("parts"))))
    with monkeypatch.context() as m:
        _stop_on_the_epochs_last_step(m, run, task, engine)
        assert worker_main([str(run.path)]) == 0, run.log_tail(40)
    assert run.status() == "stopped"
    checkpoint = resume_checkpoint(run)
    assert checkpoint.name == f"checkpoint-{STEPS_PER_EPOCH[task]}"

    assert worker_main([str(run.path), "--resume", str(checkpoint)]) == 0, run.log_tail(40)
    started = _events(run, "run_started")
    assert len(started) == 2 and started[1]["resumed_from"] == str(checkpoint)
    after = run.events()[run.events().index(started[1]):]
    steps = [(e["step"], e["loss"]) for e in after if e["type"] == "step"]
    expected_steps = [(e["step"], e["loss"]) for e in _events(straight, "step")]
    assert [s for s, _ in steps] == [s for s, _ in expected_steps if s > STEPS_PER_EPOCH[task]], \
        "the resumed run carries on from the checkpoint's step"
    assert [v for _, v in steps] == pytest.approx([v for s, v in expected_steps if s > STEPS_PER_EPOCH[task]],
                                                  abs=1e-6), "same data, dropout masks, optimizer and schedule"

    evals = [(e["step"], e["split"], e["metrics"]) for e in _events(run, "eval")]
    expected_evals = [(e["step"], e["split"], e["metrics"]) for e in _events(straight, "eval")]
    assert [e[:2] for e in evals] == [e[:2] for e in expected_evals], "the same evaluations, none skipped"
    for got, want in zip(evals, expected_evals, strict=True):
        assert got[2] == pytest.approx(want[2], abs=1e-6), (got, want)
    finished, expected = run.events()[-1], straight.events()[-1]
    assert finished["type"] == expected["type"] == "finished"
    got, want = dict(finished["metrics"]), dict(expected["metrics"])
    assert got.pop("test") == pytest.approx(want.pop("test"), abs=1e-6)
    assert got == pytest.approx(want, abs=1e-6)
    if task == ML:
        assert finished["thresholds"] == expected["thresholds"] and list(finished["thresholds"]) == list(TAGS)
    _check_answers(run, task)


@pytest.mark.parametrize(("task", "other"), [(REG, "f1_micro"), (ML, "rmse"), (CLS, "pearson")])
def test_a_best_model_metric_of_another_task_is_refused_with_the_tasks_choices(task: str, other: str,
                                                                               tiny_model: Path,
                                                                               tmp_path: Path) -> None:
    from core.errors import ConfigError

    raw = _raw(task, "trainer", tiny_model, tmp_path, "run", early_stopping_patience=1, metric_for_best_model=other)
    with pytest.raises(ConfigError, match=f"metric_for_best_model is '{other}'; choose one of") as err:
        parse_config(raw)
    assert all(name in str(err.value) for name in ("loss", *parse_config({**raw, "training": {}}).metrics))


# --- early stopping ---------------------------------------------------------------------------------------------------

# Each metric's direction, written out here rather than taken from core.metrics, so that a wrong table fails too.
HIGHER_IS_BETTER = {"pearson": True, "rmse": False, "f1_micro": True, "hamming_loss": False}
EARLY = [(REG, "pearson"), (REG, "rmse"), (ML, "f1_micro"), (ML, "hamming_loss")]


def _early_stopping_run(task: str, engine: str, metric: str, model: Path, root: Path) -> None:
    """Patience 1 over evaluations each epoch: the run ends at the first evaluation that is not better than the best
    so far in the metric's own direction, before the last of its 12 epochs, and keeps the best checkpoint's model."""
    extra = {"threshold": 0.3} if task == ML else {}  # at 0.5 the first epochs predict no tag: f1 0 and ties
    run = _run_in_process(_raw(task, engine, model, root, "run", num_train_epochs=12, early_stopping_patience=1,
                               metric_for_best_model=metric, **extra))
    _check_early_stopping(run, metric)
    _check_answers(run, task)  # the saved model is the best checkpoint's, as the final evaluation measured it


def _check_early_stopping(run: RunDir, metric: str) -> None:
    values = [e["metrics"][metric] for e in _events(run, "eval", "validation")]
    steps = [e["step"] for e in _events(run, "eval", "validation")]
    assert len(set(values)) > 1, f"{metric} never moved, so its direction was not put to the test: {values}"
    better = (lambda a, b: a > b) if HIGHER_IS_BETTER[metric] else (lambda a, b: a < b)
    best, stop = values[0], None
    for i, value in enumerate(values[1:], start=1):
        if better(value, best):
            best = value
        else:
            stop = i
            break
    assert stop == len(values) - 1, f"patience 1 stops at the first evaluation that is no better: {values}"
    assert steps[-1] < _events(run, "run_started")[0]["total_steps"], "stopped before the last epoch"
    finished = run.events()[-1]
    assert finished["type"] == "finished" and finished["metrics"][metric] == pytest.approx(best), (values, finished)


@pytest.mark.parametrize("engine", TORCH_ENGINES)
@pytest.mark.parametrize(("task", "metric"), EARLY)
def test_early_stopping_follows_the_direction_of_the_tasks_metric(task: str, metric: str, engine: str,
                                                                  tiny_model: Path, tmp_path: Path) -> None:
    _early_stopping_run(task, engine, metric, tiny_model, tmp_path)


# --- LoRA and a frozen encoder ----------------------------------------------------------------------------------------

LORA = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["query", "value"]}
WITH_CLS = [(task, engine) for task in TASKS for engine in TORCH_ENGINES] + [(CLS, "torch-loop")]


def _changed(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    import torch

    assert set(before) <= set(after), set(before) - set(after)
    return {k for k in before if not torch.equal(before[k], after[k])}


@pytest.mark.parametrize(("task", "engine"), WITH_CLS)
def test_lora_leaves_a_plain_model_with_the_tasks_head(task: str, engine: str, tiny_model: Path,
                                                       tmp_path: Path) -> None:
    """The adapters are merged into the targeted weights (only those changed), the head is the task's, and
    regression's label scaling is folded into it after the merge."""
    from transformers import AutoModelForSequenceClassification

    raw = _raw(task, engine, tiny_model, tmp_path, "run", lora=LORA, max_steps=6, eval_strategy="no",
               save_strategy="no")
    if task == REG:
        raw["data"]["label_scaling"] = "standard"
    run = _run_in_process(raw)
    config = json.loads((run.model_dir / "config.json").read_text())
    assert config["problem_type"] == PROBLEM_TYPE[task] and len(config["id2label"]) == OUTPUTS[task]
    model = AutoModelForSequenceClassification.from_pretrained(run.model_dir)
    assert not [n for n, _ in model.named_parameters() if "lora" in n or "modules_to_save" in n]
    assert model.classifier.out_features == OUTPUTS[task]
    changed = _changed(_weights(tiny_model), _weights(run.model_dir))
    assert changed == {f"encoder.layer.{i}.attention.self.{m}.weight" for i in range(2) for m in ("query", "value")}
    _check_answers(run, task)


@pytest.mark.parametrize(("task", "engine"), WITH_CLS)
def test_a_frozen_encoder_keeps_its_weights_while_the_head_trains(task: str, engine: str, tiny_model: Path,
                                                                  tmp_path: Path) -> None:
    run = _run_in_process(_raw(task, engine, tiny_model, tmp_path, "run", freeze_encoder=True, max_steps=8,
                               eval_strategy="no", save_strategy="steps", save_steps=4, save_total_limit=None))
    final = _weights(run.model_dir)
    assert not _changed(_weights(tiny_model), final), "the encoder (embeddings, layers, pooler) is unchanged"
    halfway = _weights(run.checkpoints_dir / "checkpoint-4")
    assert _changed({k: v for k, v in halfway.items() if k.startswith("classifier.")}, final) == {
        "classifier.weight", "classifier.bias"}, "the head trained from step 4 to step 8"
    assert final["classifier.weight"].shape[0] == OUTPUTS[task]
    _check_answers(run, task)


# --- the batch probe --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("setting", [{"freeze_encoder": True}, {"lora": LORA}], ids=["freeze_encoder", "lora"])
@pytest.mark.parametrize("task", TASKS)
def test_the_probe_trains_the_tasks_head_frozen_or_with_lora(task: str, setting: dict[str, Any], tiny_model: Path,
                                                             tmp_path: Path) -> None:
    """Forward, backward and an optimizer step on labels of the task's shape and dtype (test_probe tests the plain
    model); frozen or adapted, only some parameters reach the optimizer."""
    from core.probe import apply, probe

    config = parse_config(_raw(task, "trainer", tiny_model, tmp_path, "run", per_device_train_batch_size=2,
                               gradient_accumulation_steps=2, **setting))
    result = probe(config)
    assert [(r.batch_size, r.fits) for r in result.rows] == [(1, True), (2, True), (4, True)]
    assert all(r.seconds_per_step and r.peak_memory_mb for r in result.rows)
    layout = apply(config, result).training
    assert (layout.per_device_train_batch_size, layout.gradient_accumulation_steps) == (4, 1)


# --- the keras engine: stop and resume, early stopping and LoRA in one run ------------------------------------------

@NEEDS_KERAS
@pytest.mark.slow
@pytest.mark.parametrize(("task", "metric"), [(REG, "rmse"), (ML, "f1_micro")])
def test_keras_stops_resumes_and_stops_early_a_lora_run_into_a_plain_model_with_the_tasks_head(
        task: str, metric: str, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stop and resume, early stopping and LoRA share one keras run (a keras run costs several torch runs). The
    resume carries on from the checkpoint's step and misses no evaluation, early stopping follows the metric's
    direction across the resume (test_keras_engine shows for text-classification that a resumed run logs the very
    losses of an unbroken one), and the result, the best checkpoint's model, is a plain model whose backbone changed
    in the adapted layers only, with the task's head and its state (label scaling folded in, thresholds)."""
    settings: dict[str, Any] = {"lora": LORA, "num_train_epochs": 12, "early_stopping_patience": 1,
                                "metric_for_best_model": metric, "logging_steps": 1}
    if task == ML:
        # As in the early stopping tests, tags are predicted from the first epochs at 0.3; and the adapters and head
        # alone need a higher rate to move f1_micro within a few epochs (at 5e-3 it stays at the all-tags score).
        settings.update(threshold=0.3, learning_rate=2e-2)
    raw = _raw(task, "keras", tiny_model, tmp_path, "run", **settings)
    if task == REG:
        raw["data"]["label_scaling"] = "standard"
    run = create_run(resolve_config(parse_config(raw)))
    with monkeypatch.context() as m:
        _stop_on_the_epochs_last_step(m, run, task, "keras")
        assert worker_main([str(run.path)]) == 0, run.log_tail(40)
    assert run.status() == "stopped"
    checkpoint = resume_checkpoint(run)
    per_epoch = STEPS_PER_EPOCH[task]
    assert checkpoint.name == f"checkpoint-{per_epoch}" and (checkpoint / "lora.npz").is_file()
    assert worker_main([str(run.path), "--resume", str(checkpoint)]) == 0, run.log_tail(40)
    started = _events(run, "run_started")
    assert len(started) == 2 and started[1]["resumed_from"] == str(checkpoint)
    after = run.events()[run.events().index(started[1]):]
    steps = [e["step"] for e in after if e["type"] == "step"]
    assert steps[0] == per_epoch + 1 and steps == list(range(steps[0], steps[-1] + 1)), \
        "carries on from the checkpoint's step"
    evals = [e["step"] for e in _events(run, "eval", "validation")]
    assert evals == [per_epoch * (i + 1) for i in range(len(evals))], "every epoch's evaluation, the stopped one's too"
    _check_early_stopping(run, metric)
    if task == ML:
        assert run.events()[-1]["thresholds"] == dict.fromkeys(TAGS, 0.3)

    from core.predict import load_predictor

    model = load_predictor(run.path).model
    assert not any(getattr(layer, "lora_enabled", False) for layer in model._flatten_layers())
    assert model.output_dense.kernel.shape[-1] == OUTPUTS[task]
    changed, every = _keras_backbone(run.model_dir, tiny_model)
    adapted = {p for p in every if p.rsplit("/", 2)[-2] in ("query", "value")}
    kernels = {p for p in adapted if p.endswith("/kernel")}
    assert kernels <= changed <= adapted, "LoRA (merged) changed the query and value layers, and nothing else"
    _check_answers(run, task)


# --- several devices -------------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("engine", TORCH_ENGINES)
@pytest.mark.parametrize("task", TASKS)
def test_two_torchrun_processes_match_one_with_the_combined_batch(task: str, engine: str, tiny_model: Path,
                                                                  tmp_path: Path) -> None:
    """gloo on the CPU: each process takes half of every batch and of the validation split (an odd number of rows,
    so one process's share is padded and the padding must be dropped again), the labels a float score or a 0/1 row."""
    model = without_dropout(tiny_model, tmp_path / "model")  # dropout masks differ between one and two processes
    common = {"group_by_length": False, "save_strategy": "no", "eval_strategy": "no", "max_steps": 6}
    raw_one = _raw(task, engine, model, tmp_path, "one", per_device_train_batch_size=8, **common)
    one = _run_in_process(raw_one)
    two = _run(tmp_path, "two", _raw(task, engine, model, tmp_path, "two", per_device_train_batch_size=4,
                                     num_processes=2, **common))
    started = _events(two, "run_started")
    assert len(started) == 1 and started[0]["batch_layout"]["num_processes"] == 2
    losses_one = [(e["step"], e["loss"]) for e in _events(one, "step")]
    losses_two = [(e["step"], e["loss"]) for e in _events(two, "step")]
    assert [s for s, _ in losses_two] == [s for s, _ in losses_one]
    assert [v for _, v in losses_two] == pytest.approx([v for _, v in losses_one], abs=0.01)
    final_one, final_two = one.events()[-1]["metrics"], two.events()[-1]["metrics"]
    assert set(final_two) == set(final_one) >= {"loss", "test", *parse_config(raw_one).metrics}
    for metric in set(final_one) - {"test"}:
        assert final_two[metric] == pytest.approx(final_one[metric], abs=0.02), metric
    _check_answers(two, task)


@NEEDS_KERAS
@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_two_keras_replicas_train_a_frozen_encoders_head(task: str, tiny_model: Path, tmp_path: Path) -> None:
    """MirroredStrategy over two logical CPUs (a fresh process splits the CPU before TensorFlow starts), with
    freeze_encoder, which MirroredStrategy must keep frozen on both replicas: the task's metrics and answers, the
    backbone as converted from the checkpoint, and a head that trained (test_multiprocess compares one replica with
    two for text-classification; a keras run costs several torch runs)."""
    run = _run(tmp_path, "two", _raw(task, "keras", tiny_model, tmp_path, "two", per_device_train_batch_size=4,
                                     num_processes=2, freeze_encoder=True, max_steps=6, eval_strategy="no",
                                     save_strategy="steps", save_steps=3, save_total_limit=None, logging_steps=1))
    started = _events(run, "run_started")[0]
    assert started["batch_layout"]["num_processes"] == 2
    assert "MirroredStrategy over /cpu:0, /cpu:1" in run.stdout_path.read_text()
    finished = run.events()[-1]
    assert finished["type"] == "finished"
    assert set(finished["metrics"]) == {"loss", "test", *get_task(task).default_metrics}
    assert [e["step"] for e in _events(run, "step")] == list(range(1, 7))
    backbone, _ = _keras_backbone(run.model_dir, tiny_model)
    assert not backbone, f"the frozen backbone changed: {backbone}"
    head_now, head_then = _keras_head(run.model_dir), _keras_head(run.checkpoints_dir / "checkpoint-3")
    assert head_now[0].shape[-1] == OUTPUTS[task]
    assert not any(np.array_equal(a, b) for a, b in zip(head_now, head_then, strict=True)), "the head trained"
    _check_answers(run, task)


def _keras_head(directory: Path) -> list[np.ndarray]:
    """The classifier head's kernel and bias of the model.keras in a model directory or a checkpoint."""
    from core.engines import keras_callbacks  # noqa: F401  (registers what a checkpoint's optimizer refers to)
    from core.engines.keras_convert import import_keras

    model = import_keras().saving.load_model(str(directory / "model.keras"), compile=False)
    return [np.asarray(v) for v in model.output_dense.weights]


def _keras_backbone(model_dir: Path, source: Path) -> tuple[set[str], set[str]]:
    """(paths of the weights that differ, all paths) of a saved keras model's backbone against the checkpoint it was
    converted from."""
    import keras_hub

    from core.predict import load_predictor

    trained = load_predictor(model_dir).model.backbone.weights
    original = keras_hub.models.Backbone.from_preset(str(source)).weights
    assert [w.path for w in trained] == [w.path for w in original]
    changed = {w.path for w, o in zip(trained, original, strict=True) if not np.array_equal(np.asarray(w),
                                                                                            np.asarray(o))}
    return changed, {w.path for w in trained}
