"""The same tiny config trained by all three engines: the same events, falling losses, models that load back.

Each engine runs once (module fixture) through the real run process (core.worker) in this interpreter.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml

from core.config import parse_config, save_config
from core.errors import ModelError
from core.events import read_events
from core.launch import create_run, resolve_config
from core.predict import load_predictor
from core.rundir import RunDir
from core.worker import main as worker_main
from tests.conftest import tiny_config, tiny_rows, write_tsv
from tests.test_trainer_run import _cli

ENGINES = ["trainer", "torch-loop", "keras"]
STEP_FIELDS = {"step", "total_steps", "epoch", "loss", "learning_rate", "grad_norm", "samples_per_second",
               "tokens_per_second", "elapsed_s"}


def _needs(engine: str) -> None:
    if engine == "keras":
        pytest.importorskip("keras_hub", reason='the keras engine needs pip install "finetune-tui[keras]"')


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("parity-data")
    return {"train": write_tsv(d / "train.tsv", tiny_rows(96, seed=1)),
            "test": write_tsv(d / "test.tsv", tiny_rows(24, seed=2))}


@pytest.fixture(scope="module")
def runs(tiny_model: Path, data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunDir]:
    """engine -> its finished run: 6 epochs of 9 steps, a logged loss every 3 steps, an eval and a checkpoint
    each epoch, a test eval at the end."""
    session = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if session is None:
        return _train_all(tiny_model, data, tmp_path_factory.mktemp("parity-runs"))
    # Under pytest-xdist every worker would build this module fixture: the first trains, the others reuse its runs.
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp().parent / f"parity-runs-{session}"
    with FileLock(str(root) + ".lock"):
        if (root / "done").exists():
            return {engine: RunDir(root / engine) for engine in ENGINES if (root / engine).exists()}
        runs = _train_all(tiny_model, data, root)
        (root / "done").write_text("")
        return runs


def _train_all(tiny_model: Path, data: dict[str, Path], root: Path) -> dict[str, RunDir]:
    out: dict[str, RunDir] = {}
    for engine in ENGINES:
        if engine == "keras" and _missing_keras():
            continue
        # Seed 1: a start from which the tiny random model learns within 6 epochs under each engine's dropout.
        raw = tiny_config(tiny_model, data, root / engine, num_train_epochs=6, logging_steps=3, seed=1)
        raw["engine"] = engine
        run_dir = create_run(resolve_config(parse_config(raw)))
        assert worker_main([str(run_dir.path)]) == 0, run_dir.log_tail(40)
        out[engine] = run_dir
    return out


def _missing_keras() -> bool:
    import importlib.util

    return importlib.util.find_spec("keras_hub") is None


def _events(run: RunDir, kind: str | None = None) -> list[dict]:
    return [e for e in read_events(run.events_path) if e["type"] != "device" and (kind is None or e["type"] == kind)]


def _pattern(run: RunDir) -> list[tuple]:
    return [(e["type"], e.get("step"), e.get("split"), e.get("epoch")) for e in _events(run)
            if e["type"] not in ("run_started", "finished")]


@pytest.mark.parametrize("engine", ENGINES)
def test_engine_finishes_and_lowers_the_training_loss(runs: dict[str, RunDir], engine: str) -> None:
    _needs(engine)
    run = runs[engine]
    assert run.status() == "finished"
    steps = _events(run, "step")
    assert len(steps) == 18 and all(set(e) - {"type", "time"} == STEP_FIELDS for e in steps)
    losses = [e["loss"] for e in steps]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.05, losses
    finished = _events(run)[-1]
    assert finished["type"] == "finished" and {"loss", "accuracy", "f1", "test"} <= set(finished["metrics"])


@pytest.mark.parametrize("engine", ["torch-loop", "keras"])
def test_engine_writes_the_same_events_as_trainer(runs: dict[str, RunDir], engine: str) -> None:
    """Same types, steps, splits and epochs in the same order: step..., eval, checkpoint per epoch, test eval."""
    _needs(engine)
    expected = _pattern(runs["trainer"])
    assert [t for t, *_ in expected[:5]] == ["step", "step", "step", "eval", "checkpoint"]
    assert expected[-1][:3] == ("eval", 54, "test")
    assert _pattern(runs[engine]) == expected
    # One learning-rate schedule for all: transformers' get_scheduler, stepped the same way.
    trainer_lr = [e["learning_rate"] for e in _events(runs["trainer"], "step")]
    assert [e["learning_rate"] for e in _events(runs[engine], "step")] == pytest.approx(trainer_lr, rel=1e-6)
    # Trainer's checkpoint rotation (save_total_limit: 1): only the last checkpoint is left.
    assert [p.name for p in runs[engine].checkpoints_dir.iterdir()] == ["checkpoint-54"]


@pytest.mark.parametrize("engine", ENGINES)
def test_saved_model_predicts_what_the_run_measured(runs: dict[str, RunDir], data: dict[str, Path],
                                                    engine: str) -> None:
    """The model directory loads back through core.predict and gives the test accuracy the run reported."""
    _needs(engine)
    run = runs[engine]
    predictor = load_predictor(run.path)
    assert predictor.labels == ["neg", "pos"]
    rows = [line.split("\t") for line in data["test"].read_text().splitlines()[1:]]
    texts, labels = [r[0] for r in rows], [r[1] for r in rows]
    results = predictor.predict(texts, batch_size=5)
    assert all(r["label"] in {"neg", "pos"} and abs(sum(r["probabilities"].values()) - 1) < 1e-6 for r in results)
    accuracy = sum(r["label"] == gold for r, gold in zip(results, labels, strict=True)) / len(labels)
    reported = next(e for e in _events(run, "eval") if e["split"] == "test")["metrics"]["accuracy"]
    assert accuracy == pytest.approx(reported, abs=1 / len(labels) + 1e-9)
    # A model directory on its own works too, and names its max_length from the run's config.
    assert load_predictor(run.model_dir).settings.max_length == 32


def test_predict_refuses_what_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="holds no model"):
        load_predictor(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "events.jsonl").write_text("")
    with pytest.raises(ModelError, match="no trained model yet") as err:
        load_predictor(tmp_path / "run")
    assert "resume" in (err.value.fix or "")
    with pytest.raises(ModelError, match="does not exist"):
        load_predictor(tmp_path / "missing")


@pytest.mark.slow
def test_demo_accuracy_is_close_across_engines(tmp_path: Path) -> None:
    """README's demo and its `Engines compared`: the bundled MiniLM on the demo data, each engine well above chance
    (1/3) and within a few points of the others, after one of the demo's three epochs (the whole demo, three times
    over, would be a quarter of an hour on 2 cores; the README quotes the full runs). The trainer runs the README's
    way, `finetune-tui run` in its own process; the others run the same worker in this process."""
    repo = Path(__file__).resolve().parent.parent
    accuracy: dict[str, float] = {}
    for engine in ENGINES:
        _needs(engine)
        config = parse_config(yaml.safe_load((repo / "examples" / "demo.yaml").read_text()))
        config.engine = engine  # type: ignore[assignment]
        config.training.num_train_epochs = 1
        config.output_dir = tmp_path / engine
        path = save_config(config, repo / "examples" / f".test-demo-{engine}-{os.getpid()}.yaml")
        started = time.monotonic()
        try:
            if engine == "trainer":
                result = _cli("run", str(path), cwd=repo, timeout=900)
                assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
                run_dir = RunDir(tmp_path / engine)
            else:
                run_dir = create_run(resolve_config(config, path.parent))
        finally:
            path.unlink()
        if engine != "trainer":
            assert worker_main([str(run_dir.path)]) == 0, run_dir.log_tail(40)
        finished = _events(run_dir)[-1]
        assert finished["type"] == "finished"
        accuracy[engine] = finished["metrics"]["test"]["accuracy"]
        print(f"{engine}: test accuracy {accuracy[engine]:.3f} in {time.monotonic() - started:.0f} s")
    assert min(accuracy.values()) > 0.7, accuracy
    assert max(accuracy.values()) - min(accuracy.values()) <= 0.06, accuracy
