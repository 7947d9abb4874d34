"""The end of a run passes over the evaluation data once: the report comes from the engine's own final evaluation.

Before, a run evaluated the validation split in the training loop, again for the final metrics (trainer), and a
third time from the saved model for the report, in fp32, one process, unsorted. Here every engine's passes over
each split are counted, the saved model is never loaded back during the run, and the report's per-row predictions
are checked against the saved model's (so the kept logits are the final model's, in the split's row order).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from core.config import parse_config
from core.evaluation import evaluate_run
from core.launch import create_run, resolve_config
from core.rundir import RunDir
from core.worker import main as worker_main
from tests.conftest import tiny_config, tiny_rows, write_tsv
from tests.test_keras_engine import needs_keras


def _count_passes(monkeypatch: pytest.MonkeyPatch, engine: str) -> Counter[str]:
    """Counts each engine's passes over a split, by split, at the one place each engine evaluates."""
    passes: Counter[str] = Counter()

    def counting(cls: Any, name: str, split_of: Any) -> None:
        real = getattr(cls, name)

        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            passes[split_of(*args, **kwargs)] += 1
            return real(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, wrapper)

    if engine == "trainer":
        from transformers import Trainer

        counting(Trainer, "evaluation_loop", lambda *a, metric_key_prefix="eval", **k: metric_key_prefix)
    elif engine == "torch-loop":
        from core.engines.torch_loop import _Loop

        counting(_Loop, "evaluate", lambda split: split)
    else:
        from core.engines.keras import _KerasRun

        counting(_KerasRun, "evaluate", lambda split: split)

    def no_reload(*_: Any, **__: Any) -> Any:
        raise AssertionError("the run loaded its saved model back to evaluate it: a second pass")

    monkeypatch.setattr("core.predict.load_predictor", no_reload)
    return passes


def _data(root: Path) -> dict[str, Path]:
    return {"train": write_tsv(root / "train.tsv", tiny_rows(64, seed=3)),
            "test": write_tsv(root / "test.tsv", tiny_rows(20, seed=4))}


ENGINES = ["trainer", "torch-loop", pytest.param("keras", marks=[needs_keras, pytest.mark.slow])]


@pytest.mark.parametrize("engine", ENGINES)
def test_one_pass_per_split_at_the_end(engine: str, tiny_model: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    raw = {**tiny_config(tiny_model, _data(tmp_path), tmp_path / "run", num_train_epochs=2, save_strategy="no"),
           "engine": engine}
    run_dir = create_run(resolve_config(parse_config(raw)))
    passes = _count_passes(monkeypatch, engine)
    assert worker_main([str(run_dir.path)]) == 0, run_dir.log_tail()
    monkeypatch.undo()

    events = run_dir.events()
    evals = Counter("test" if e["split"] == "test" else "eval" for e in events if e["type"] == "eval")
    assert evals["eval"] == 2, evals  # eval_strategy epoch, 2 epochs
    key = {"trainer": ("eval", "test")}.get(engine, ("validation", "test"))
    # One pass per evaluation the run reports, and not one more: the final metrics and both reports reuse them.
    assert passes[key[0]] == evals["eval"] and passes[key[1]] == 1, passes
    finished = events[-1]
    assert finished["type"] == "finished" and "evaluation_error" not in finished

    for split, reported in (("validation", finished["metrics"]), ("test", finished["metrics"]["test"])):
        folder = run_dir.path / "evaluation" / split
        written = json.loads((folder / "metrics.json").read_text())
        # The same logits: the report's numbers are the run's own, loss included.
        for name, value in written["metrics"].items():
            assert value == pytest.approx(reported[name], abs=1e-6), (split, name)
        run_rows = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
        assert (folder / "report.png").stat().st_mtime >= finished["time"] - 0.01  # written after `finished`

        # The saved model, run over the split again now, predicts the same for every row in the same order.
        again = evaluate_run(run_dir.path, split, report=False)
        again_rows = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
        assert [r["text"] for r in again_rows] == [r["text"] for r in run_rows]
        for mine, theirs in zip(run_rows, again_rows, strict=True):
            assert mine["predicted"] == theirs["predicted"]
            for name, p in mine["probabilities"].items():
                # Tight: the tiny models give rows probabilities within 1e-4 of each other, so a row order
                # mixed up would pass a looser check.
                assert p == pytest.approx(theirs["probabilities"][name], abs=1e-5)
        assert again.metrics["accuracy"] == pytest.approx(reported["accuracy"], abs=1e-6)


@pytest.mark.parametrize("engine", ["trainer", "torch-loop"])
def test_early_stopping_reports_the_best_models_predictions(engine: str, tiny_model: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The final model is the best checkpoint's: its evaluation's logits, kept in memory, make the report."""
    raw = {**tiny_config(tiny_model, _data(tmp_path), tmp_path / "run", num_train_epochs=6,
                         early_stopping_patience=2, learning_rate=2e-2, save_total_limit=None), "engine": engine}
    run_dir = create_run(resolve_config(parse_config(raw)))
    passes = _count_passes(monkeypatch, engine)
    assert worker_main([str(run_dir.path)]) == 0, run_dir.log_tail()
    monkeypatch.undo()
    evals = [e for e in run_dir.events() if e["type"] == "eval" and e["split"] == "validation"]
    assert passes["eval" if engine == "trainer" else "validation"] == len(evals)
    finished = RunDir(run_dir.path).events()[-1]
    best = max(evals, key=lambda e: (e["metrics"]["accuracy"], -e["step"]))["metrics"]["accuracy"]
    assert finished["metrics"]["accuracy"] == pytest.approx(best)
    folder = run_dir.path / "evaluation" / "validation"
    run_rows = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
    evaluate_run(run_dir.path, "validation", report=False)
    again_rows = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
    assert [r["predicted"] for r in run_rows] == [r["predicted"] for r in again_rows]


def test_run_does_no_work_twice_across_the_cli_and_the_run_process(tiny_model: Path, tmp_path: Path) -> None:
    """`finetune-tui run` leaves loading the model and the data to the run process, which needs them anyway: the
    CLI process never imports torch, transformers or datasets, and the run still warns and finishes."""
    import os
    import subprocess
    import sys

    import yaml

    rows = tiny_rows(64, seed=3)
    rows = [(t, "pos") for t, _ in rows[:58]] + [(t, "neg") for t, _ in rows[58:]]  # 58 to 6: imbalanced
    data = {"train": write_tsv(tmp_path / "train.tsv", rows)}
    raw = tiny_config(tiny_model, data, tmp_path / "run", max_steps=2, eval_strategy="no", save_strategy="no")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    code = ("import sys\nfrom tui.cli import main\ncode = main(['run', sys.argv[1]])\n"
            "print('HEAVY', sorted(m for m in ('torch', 'transformers', 'datasets', 'pyarrow') if m in sys.modules))\n"
            "sys.exit(code)\n")
    result = subprocess.run([sys.executable, "-c", code, str(config)], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "HEAVY []" in result.stdout
    assert "warning: the classes are imbalanced" in result.stdout  # found by the run process, printed by the CLI
    assert RunDir(tmp_path / "run").status() == "finished"
