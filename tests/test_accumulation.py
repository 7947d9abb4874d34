"""Gradient accumulation splits a batch without changing the step: batch 4 x 2 accumulation logs the same losses
(and, for the PyTorch engines, gradient norms) as batch 8 in one go. Trainer used to log them twice as large."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from core.config import parse_config
from core.launch import create_run, resolve_config
from core.rundir import RunDir
from core.worker import main as worker_main
from tests.conftest import tiny_config, without_dropout

NO_KERAS = importlib.util.find_spec("keras_hub") is None


def _steps(model: Path, data: dict, out: Path, engine: str, **training: object) -> list[dict]:
    raw = tiny_config(model, data, out, group_by_length=False, save_strategy="no", eval_strategy="no",
                      logging_steps=1, num_train_epochs=1, **training)
    run = create_run(resolve_config(parse_config({**raw, "engine": engine})))
    assert worker_main([str(run.path)]) == 0, RunDir(run.path).log_tail(40)
    return [e for e in run.events() if e["type"] == "step"]


@pytest.mark.parametrize("engine", ["trainer", "torch-loop", pytest.param("keras", marks=pytest.mark.skipif(
    NO_KERAS, reason='the keras engine needs pip install "finetune-tui[keras]"'))])
def test_accumulated_steps_equal_one_big_batch(engine: str, tiny_model: Path, tiny_data: dict,
                                               tmp_path: Path) -> None:
    model = without_dropout(tiny_model, tmp_path / "model")  # dropout masks depend on the batch's shape
    whole = _steps(model, tiny_data, tmp_path / "whole", engine, per_device_train_batch_size=8)
    split = _steps(model, tiny_data, tmp_path / "split", engine, per_device_train_batch_size=4,
                   gradient_accumulation_steps=2)
    assert [e["step"] for e in split] == [e["step"] for e in whole] == list(range(1, 10))  # 72 rows / 8
    assert [e["loss"] for e in split] == pytest.approx([e["loss"] for e in whole], abs=1e-4)
    if engine != "keras":  # keras reports no gradient norm
        assert [e["grad_norm"] for e in split] == pytest.approx([e["grad_norm"] for e in whole], abs=1e-4)


@pytest.mark.parametrize("engine", ["trainer", "torch-loop"])
def test_a_short_last_group_is_the_mean_of_what_it_holds(engine: str, tiny_model: Path, tiny_data: dict,
                                                         tmp_path: Path) -> None:
    """72 rows in batches of 4 are 18 batches: accumulating 4 ends the epoch with a group of 2. Trainer divides that
    group's losses by 2, not 4, so its step equals one batch of the same 8 rows (batch 16: 16, 16, 16, 16, 8)."""
    model = without_dropout(tiny_model, tmp_path / "model")
    whole = _steps(model, tiny_data, tmp_path / "whole", engine, per_device_train_batch_size=16)
    split = _steps(model, tiny_data, tmp_path / "split", engine, per_device_train_batch_size=4,
                   gradient_accumulation_steps=4)
    assert [e["step"] for e in split] == [e["step"] for e in whole] == [1, 2, 3, 4, 5]
    assert [e["loss"] for e in split] == pytest.approx([e["loss"] for e in whole], abs=1e-4)
    # Half as large before the fix: Accelerate divided the short group's losses by gradient_accumulation_steps.
    assert [e["grad_norm"] for e in split] == pytest.approx([e["grad_norm"] for e in whole], abs=1e-4)


@pytest.mark.parametrize(("n_batches", "accumulation", "scales"), [
    (18, 4, [1.0] * 16 + [2.0, 2.0]),  # a last group of 2: its losses count as 1/2 each, not 1/4
    (16, 4, [1.0] * 16),
    (7, 3, [1.0] * 6 + [3.0]),
    (5, 1, [1.0] * 5),
    (2, 4, [2.0, 2.0]),  # an epoch shorter than one group
])
def test_group_scale(n_batches: int, accumulation: int, scales: list[float]) -> None:
    from core.engines.torch_loop import group_scale

    assert [group_scale(i, n_batches, accumulation) for i in range(n_batches)] == scales
