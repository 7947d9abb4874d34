"""training.class_weights: the weights from the training labels, one loss on all three engines (torch's
CrossEntropyLoss(weight=w): sum(w[y] * nll) / sum(w[y]) per batch, evaluation unweighted), the exported scripts, the
refusals, and the warning about imbalanced classes in `finetune-tui validate`."""

from __future__ import annotations

import importlib.util
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.class_weights import auto_class_weights, imbalance_warning, resolve_class_weights, run_class_weights
from core.config import parse_config
from core.errors import ConfigError
from tests.conftest import tiny_config, tiny_rows, write_tsv
from tests.fixtures_model import in_workdir_fixture, workdir_fixture  # noqa: F401

NO_KERAS = importlib.util.find_spec("keras_hub") is None
needs_keras = pytest.mark.skipif(NO_KERAS, reason='the keras engine needs pip install "finetune-tui[keras]"')
OFFLINE = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
AGREEMENT = 1e-6  # measured on CPU: the three engines' weighted losses of the test batch are bit-identical


def _imbalanced(folder: Path, neg: int = 88, pos: int = 8) -> dict[str, Path]:
    """Mostly neg: with validation_fraction 0.25 the training split holds 66 neg and 6 pos (auto: 0.5455 and 6)."""
    rows = tiny_rows(4 * (neg + pos), seed=1)
    mixed = [r for r in rows if r[1] == "neg"][:neg] + [r for r in rows if r[1] == "pos"][:pos]
    random.Random(0).shuffle(mixed)
    folder.mkdir(parents=True, exist_ok=True)
    return {"train": write_tsv(folder / "train.tsv", mixed), "test": write_tsv(folder / "test.tsv", tiny_rows(24, 2))}


# --- the weights ---------------------------------------------------------------------------------------------------

def test_auto_weights_are_inverse_frequency_with_mean_one_per_example(tmp_path: Path) -> None:
    counts = [80, 15, 5]
    weights = auto_class_weights(counts)
    assert weights == pytest.approx([100 / (3 * 80), 100 / (3 * 15), 100 / (3 * 5)])  # sklearn's "balanced"
    assert sum(n * w for n, w in zip(counts, weights, strict=True)) == pytest.approx(sum(counts))
    # A class a subset dropped from training never meets the loss: it gets 1, the others are normalised without it.
    assert auto_class_weights([30, 0, 10]) == pytest.approx([40 / 60, 1.0, 40 / 20])

    # From a prepared training split (validation given as a file, so the training counts are exactly the file's).
    rows = [(f"text {i}", "big") for i in range(80)] + [(f"t {i}", "mid") for i in range(15)] \
        + [(f"x {i}", "small") for i in range(5)]
    train = write_tsv(tmp_path / "train.tsv", rows)
    valid = write_tsv(tmp_path / "valid.tsv", [("a", "big"), ("b", "mid"), ("c", "small")])
    from core.data import prepare_data

    config = parse_config({"data": {"train_file": str(train), "validation_file": str(valid)},
                           "training": {"class_weights": "auto"}})
    prepared = prepare_data(config.data)
    by_name = dict(zip(prepared.label_names, run_class_weights(config, prepared), strict=True))
    assert by_name == pytest.approx({"big": 100 / 240, "mid": 100 / 45, "small": 100 / 15})
    config.training.class_weights = [1, 2, 3]
    assert run_class_weights(config, prepared) == [1.0, 2.0, 3.0]  # a list is used as given, in label id order
    config.training.class_weights = None
    assert run_class_weights(config, prepared) is None


def test_the_config_takes_auto_or_positive_weights_and_names_the_key_otherwise() -> None:
    def weights(value: Any) -> Any:
        return parse_config({"data": {"train_file": "x.tsv"}, "training": {"class_weights": value}}) \
            .training.class_weights

    assert weights(None) is None and weights("auto") == "auto" and weights([1, 2.5]) == [1.0, 2.5]
    for bad in ([0, 1], [1, -2], [1, float("inf")], [1, float("nan")], [], "often", [True, 1], {"neg": 1}):
        with pytest.raises(ConfigError) as err:
            weights(bad)
        assert "training.class_weights" in err.value.problem, bad
    # What a person types into the wizard's field or a plain-mode prompt.
    from tui.draft import as_text, parse_value

    assert parse_value("training.class_weights", "1, 4.5") == [1.0, 4.5]
    assert parse_value("training.class_weights", as_text([1.0, 4.5])) == [1.0, 4.5]
    assert parse_value("training.class_weights", "auto") == "auto"
    assert parse_value("training.class_weights", "") is None


def test_a_list_of_the_wrong_length_names_the_classes(tiny_model: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as err:
        resolve_class_weights([1.0, 2.0, 3.0], [1, 2], ["neg", "pos"])
    assert "training.class_weights has 3 weight(s)" in err.value.problem and "2 classes: neg, pos" in err.value.problem
    assert "give 2 weights" in (err.value.fix or "")

    # Through `finetune-tui validate`: exit 2 with the problem and the fix, before any run directory exists.
    from tui.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    raw = tiny_config(tiny_model, _imbalanced(tmp_path / "data"), tmp_path / "run", class_weights=[1.0, 2.0, 3.0])
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["validate", str(path)]) == 2
    err_text = capsys.readouterr().err
    assert "training.class_weights has 3 weight(s), but the data has 2 classes: neg, pos" in err_text
    assert "fix: give 2 weights" in err_text and "Traceback" not in err_text
    assert not (tmp_path / "run").exists()


# --- the warning ---------------------------------------------------------------------------------------------------

def test_the_warning_starts_below_a_tenth() -> None:
    assert imbalance_warning({"a": 100, "b": 10}) is None  # exactly a tenth: no warning
    warning = imbalance_warning({"a": 100, "b": 9, "c": 50})
    assert warning is not None and "'b' has 9" in warning and "'a' 100" in warning
    assert "training.class_weights: auto" in warning
    assert imbalance_warning({"a": 5}) is None and imbalance_warning({}) is None


def test_validate_warns_about_imbalanced_data(tiny_model: Path, tiny_data: dict, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    data = _imbalanced(tmp_path / "data")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tiny_model, data, tmp_path / "run")))
    result = subprocess.run([sys.executable, "-m", "tui.cli", "validate", str(path)], capture_output=True, text=True,
                            env=OFFLINE, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "warning: the classes are imbalanced: 'pos' has 6 examples and 'neg' 66" in result.stdout
    assert "set training.class_weights: auto" in result.stdout
    assert "config, data and model are fine" in result.stdout

    # Not when the weights are set, nor for balanced data.
    from tui.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for raw in (tiny_config(tiny_model, data, tmp_path / "run", class_weights="auto"),
                tiny_config(tiny_model, tiny_data, tmp_path / "run")):
        path.write_text(yaml.safe_dump(raw))
        assert main(["validate", str(path)]) == 0
        out = capsys.readouterr().out
        assert "fine" in out and "imbalanced" not in out


# --- one loss on every engine --------------------------------------------------------------------------------------

def _batch() -> tuple[Any, Any, list[float]]:
    import torch

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 3, generator=generator) * 2
    labels = torch.tensor([0] * 10 + [1] * 4 + [2] * 2)[torch.randperm(16, generator=generator)]
    return logits, labels, [0.4, 1.7, 5.0]


def _trainer_loss(logits: Any, labels: Any, weights: list[float] | None, tmp_path: Path, *, training: bool) -> float:
    """The trainer engine's Trainer subclass, asked for the loss of a model whose logits are these."""
    import torch
    from transformers import Trainer, TrainingArguments
    from transformers.modeling_outputs import SequenceClassifierOutput

    from core.engines.trainer import _trainer_class
    from core.tasks import get_task

    class FixedLogits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(()))

        def forward(self, input_ids: Any = None, labels: Any = None, **_: Any) -> Any:
            out = logits + self.anchor
            # What the *ForSequenceClassification heads return: their own plain mean loss when given labels.
            loss = torch.nn.functional.cross_entropy(out, labels) if labels is not None else None
            return SequenceClassifierOutput(loss=loss, logits=out)

    model = FixedLogits()
    args = TrainingArguments(output_dir=str(tmp_path / "trainer"), use_cpu=True, report_to="none")
    trainer = _trainer_class(Trainer)(model=model, args=args, class_weights=weights,
                                      weighted_loss=get_task("text-classification").torch_loss)
    model.train(training)
    inputs = {"input_ids": torch.zeros(len(labels), 1, dtype=torch.long), "labels": labels}
    return float(trainer.compute_loss(model, inputs).detach())


def _keras_losses(logits: Any, labels: Any, weights: list[float]) -> tuple[float, float]:
    """The keras engine's compiled loss (through Keras's own compute_loss) and its logged per-batch loss."""
    from core.engines import keras_callbacks as kc
    from core.engines.keras_convert import import_keras
    from core.tasks import get_task

    keras = import_keras()
    model = keras.Sequential([keras.Input((logits.shape[1],)), keras.layers.Identity()])
    model.compile(optimizer="sgd", loss=get_task("text-classification").keras_loss(keras, weights), jit_compile=False)
    y, y_pred = labels.numpy().astype("int32"), logits.numpy()
    compiled = float(model.compute_loss(x=None, y=y, y_pred=y_pred))
    logged = kc.BatchLoss(class_weights=weights)
    logged.update_state(y, y_pred)
    return compiled, float(logged.result())


@needs_keras
def test_the_three_engines_weigh_one_batch_alike(tmp_path: Path) -> None:
    import torch

    from core.engines.torch_loop import training_loss
    from core.tasks import get_task

    logits, labels, weights = _batch()
    reference = float(torch.nn.CrossEntropyLoss(weight=torch.tensor(weights))(logits, labels))
    plain = float(torch.nn.CrossEntropyLoss()(logits, labels))
    nll = -torch.log_softmax(logits, dim=-1)[torch.arange(16), labels]
    w = torch.tensor(weights)[labels]
    assert reference == pytest.approx(float((w * nll).sum() / w.sum()), abs=1e-6)  # the definition we promise

    outputs = type("Outputs", (), {"logits": logits, "loss": torch.tensor(plain)})()
    keras_compiled, keras_logged = _keras_losses(logits, labels, weights)
    losses = {
        "trainer": _trainer_loss(logits, labels, weights, tmp_path, training=True),
        "torch-loop": float(training_loss(outputs, labels, torch.tensor(weights),
                                          get_task("text-classification").torch_loss)),
        "keras": keras_compiled,
        "keras (logged)": keras_logged,
    }
    print({name: abs(value - reference) for name, value in losses.items()})
    assert all(abs(value - reference) <= AGREEMENT for value in losses.values()), (reference, losses)
    assert abs(reference - plain) > 0.01  # the weights change the loss (by 0.039 here), 10^4 times the tolerance
    # Without weights each engine keeps its plain mean; evaluation (model.eval()) is unweighted, as on the others.
    assert _trainer_loss(logits, labels, None, tmp_path, training=True) == pytest.approx(plain, abs=1e-6)
    assert _trainer_loss(logits, labels, weights, tmp_path, training=False) == pytest.approx(plain, abs=1e-6)
    assert float(training_loss(outputs, labels, None)) == pytest.approx(plain, abs=1e-6)


KERAS_REPLICAS = textwrap.dedent("""
    import os
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import torch
    from core.engines import keras_callbacks as kc

    weights = [0.5, 4.0]
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    y = np.array([0, 0, 0, 1, 0, 0, 1, 1], dtype="int32")

    def keras_step(strategy):
        with strategy.scope():
            model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, kernel_initializer="ones")])
            model.compile(optimizer=keras.optimizers.SGD(1.0), loss=kc.WeightedCrossEntropy(weights),
                          jit_compile=False)
        before = model.get_weights()[0].copy()
        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        return before - model.get_weights()[0]  # the gradient, with learning rate 1

    def torch_gradient(rows):
        kernel = torch.ones(3, 2, requires_grad=True)
        loss = torch.nn.functional.cross_entropy(torch.tensor(x[rows]) @ kernel, torch.tensor(y[rows]).long(),
                                                 weight=torch.tensor(weights))
        loss.backward()
        return kernel.grad.numpy()

    one = keras_step(tf.distribute.get_strategy())
    two = keras_step(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    halves = (torch_gradient(slice(0, 4)) + torch_gradient(slice(4, 8))) / 2  # what DDP does with two processes
    print("one", float(np.abs(one - torch_gradient(slice(0, 8))).max()))
    print("two", float(np.abs(two - halves).max()))
""")


@needs_keras
def test_keras_replicas_average_their_weighted_means_as_ddp_does(tmp_path: Path) -> None:
    """Under MirroredStrategy each replica's weighted mean counts once (Keras divides by the replicas), as each
    PyTorch process's does under DDP; a loss that returned a scalar would skip that division and double the step."""
    script = tmp_path / "replicas.py"
    script.write_text(KERAS_REPLICAS)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                            env={**OFFLINE, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert result.returncode == 0, result.stderr[-3000:]
    found = dict(line.split() for line in result.stdout.splitlines() if line.startswith(("one ", "two ")))
    assert float(found["one"]) < 1e-6 and float(found["two"]) < 1e-6, found


# --- real runs -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("engine", ["torch-loop", "trainer",
                                    pytest.param("keras", marks=[needs_keras, pytest.mark.slow])])
def test_a_short_run_with_auto_weights_trains_on_the_weighted_loss(engine: str, tiny_model: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import without_dropout
    from tests.test_trainer_run import _run_in_process

    model = without_dropout(tiny_model, tmp_path / "model")
    data = _imbalanced(tmp_path / "data")
    losses = {}
    for weights in (None, "auto"):
        raw = tiny_config(model, data, tmp_path / f"run-{weights}", max_steps=3, logging_steps=1,
                          eval_strategy="no", save_strategy="no", class_weights=weights)
        run = _run_in_process({**raw, "engine": engine})
        assert run.status() == "finished"
        losses[weights] = [e["loss"] for e in run.events() if e["type"] == "step"]
        log = capsys.readouterr().out  # the run's log: this test runs the worker in its own process
        assert ("class weights: neg 0.5455, pos 6" in log) == (weights == "auto"), log[-2000:]
    assert len(losses["auto"]) == 3
    # The same start and batches: the first logged losses differ only by the weighting.
    assert abs(losses["auto"][0] - losses[None][0]) > 1e-4, losses


@pytest.mark.parametrize("engine", ["torch-loop", "trainer",
                                    pytest.param("keras", marks=[needs_keras, pytest.mark.slow])])
def test_exported_script_with_class_weights_reproduces_the_run(engine: str, tiny_model: Path,
                                                                tmp_path: Path) -> None:
    import tests.test_export as export_tests  # a module attribute, so its tests are not collected here again

    export_tests.test_exported_script_reproduces_the_run(
        engine, {"class_weights": "auto", "max_steps": 12}, tiny_model, _imbalanced(tmp_path / "data"), tmp_path)
    text = (tmp_path / "train.py").read_text()
    assert 'CLASS_WEIGHTS = "auto"' in text and "def class_weights(" in text


def test_exported_scripts_compute_the_weights_finetune_tui_computes(tiny_model: Path, tmp_path: Path) -> None:
    from core.data import prepare_data
    from tests.test_export import _render, _script_namespace

    data = _imbalanced(tmp_path / "data")
    engines = ["trainer", "torch-loop"] + ([] if NO_KERAS else ["keras"])
    for engine in engines:
        for weights in ("auto", [1.0, 3.0]):
            raw = {**tiny_config(tiny_model, data, tmp_path / "run", class_weights=weights), "engine": engine}
            text = _render(raw)  # compiles, and imports nothing of finetune-tui
            assert "cross_entropy" in text or "WeightedCrossEntropy" in text, engine
            ns = _script_namespace(text, tmp_path)
            config = parse_config(raw)
            labels = ns["load_data"]()["train"]["label"]
            assert ns["class_weights"](labels) == pytest.approx(run_class_weights(config, prepare_data(config.data)))
    plain = _render({**tiny_config(tiny_model, data, tmp_path / "run"), "engine": "torch-loop"})
    assert "CLASS_WEIGHTS" not in plain and "loss = model(**batch).loss" in plain


# --- the wizard and plain mode -------------------------------------------------------------------------------------

def _skewed_reviews(path: Path) -> Path:
    """40 neg and 3 pos reviews of the wizard's work directory kind (tests.fixtures_model)."""
    from tests.fixtures_data import write_delimited
    from tests.fixtures_model import reviews

    rows = reviews(80)
    return write_delimited(path, [r for r in rows if r[1] == "neg"][:40] + [r for r in rows if r[1] == "pos"][:3],
                           header=("text", "label"))


async def test_wizard_warns_in_the_dataset_step_and_takes_weights_in_the_training_step(in_workdir: Path,
                                                                                        tmp_path: Path) -> None:
    from textual.widgets import Static

    import tests.test_wizard as w
    from tui.app import make_app

    skewed = _skewed_reviews(tmp_path / "skewed.csv")  # outside the shared work directory the snapshots show
    app = make_app()
    async with app.run_test(size=w.SIZE) as pilot:
        await w.to_dataset(pilot)  # reviews.csv: 20 pos, 20 neg
        box = w.wizard(pilot).query_one("#balance-warning", Static)
        assert not box.display
        await w.type_into(pilot, "data.train_file", str(skewed))
        await pilot.press("enter")
        await w.settle(pilot)
        await w.wait_until(pilot, lambda: box.display)
        assert "'pos' has 3 examples and 'neg' 40" in str(box.render())
        assert "training.class_weights: auto" in str(box.render())

        await w.type_into(pilot, "data.validation_fraction", "0.25")
        await w.next_step(pilot)
        await w.type_into(pilot, "tokenizer.max_length", "16")
        await w.next_step(pilot)
        assert w.current(pilot) == "training", w.problems(pilot)
        await w.type_into(pilot, "training.class_weights", "[1, 2, 3]")
        await w.next_step(pilot)  # three weights for two classes: Next refuses, naming the classes
        assert w.current(pilot) == "training"
        assert "2 classes: neg, pos" in w.problems(pilot)
        await w.type_into(pilot, "training.class_weights", "often")
        assert "give auto, or one positive weight per class" in (w.row(pilot, "training.class_weights").problem or "")
        await w.type_into(pilot, "training.class_weights", "auto")
        assert w.row(pilot, "training.class_weights").problem is None
        assert w.wizard(pilot).draft.get("training.class_weights") == "auto"


def test_plain_mode_warns_and_offers_class_weights_for_imbalanced_data(in_workdir: Path, tmp_path: Path) -> None:
    from core.config import load_config
    from tests.test_plain import BASIC, Script
    from tui.plain import run_plain

    skewed = _skewed_reviews(tmp_path / "skewed.csv")
    script = Script({**BASIC, "data.train_file": str(skewed), "training.class_weights": "auto"})
    lines: list[str] = []
    out = run_plain(tmp_path / "plain.yaml", ask=script, echo=lines.append)
    assert any("⚠ the classes are imbalanced: 'pos' has 3 examples" in line for line in lines), lines
    asked = next(q for q in script.asked if q.key == "training.class_weights")
    assert "inverse class frequency" in asked.help
    assert load_config(out).training.class_weights == "auto"

    balanced = Script(BASIC)  # reviews.csv: no warning, and no extra question
    run_plain(tmp_path / "balanced.yaml", ask=balanced, echo=lambda _: None)
    assert all(q.key != "training.class_weights" for q in balanced.asked)
