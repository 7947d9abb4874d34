"""The torch-loop engine: exact resume, early stopping with the best model kept, its optimizer and data order."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from core.config import parse_config
from core.engines.base import EngineResult, RunContext
from core.engines.sampling import epoch_order
from core.engines.torch_loop import STATE_FILE, check_precision, train
from core.errors import ConfigError
from core.events import read_events
from core.rundir import RunDir
from tests.conftest import engine_context, tiny_config

_context = partial(engine_context, "torch-loop")


def _train(ctx: RunContext) -> EngineResult:
    try:
        return train(ctx)
    finally:
        ctx.events.close()


def _trace(run_dir: RunDir) -> list[tuple]:
    return [(e["type"], e["step"], e.get("split"), e.get("loss"), json.dumps(e.get("metrics"), sort_keys=True))
            for e in read_events(run_dir.events_path) if e["type"] in ("step", "eval")]


def test_stop_and_resume_matches_an_uninterrupted_run(tiny_model: Path, tiny_data: dict, tmp_path: Path) -> None:
    """Stopped mid-epoch and mid logging window (step 5 of 9, logging every 2), the resumed run continues with the
    same data order, dropout masks, optimizer and schedule: every later loss and metric is the same."""
    settings = {"num_train_epochs": 2, "group_by_length": False}
    whole = _context(tiny_config(tiny_model, tiny_data, tmp_path / "whole", **settings))
    expected = _train(whole)

    raw = tiny_config(tiny_model, tiny_data, tmp_path / "parts", **settings)
    first = _context(raw, stop_after=5)
    stopped = _train(first)
    assert stopped.stopped and stopped.metrics == {}
    checkpoint = Path(str(stopped.last_checkpoint))
    assert checkpoint.name == "checkpoint-5" and (checkpoint / STATE_FILE).exists()
    assert json.loads((checkpoint / STATE_FILE).read_text())["window_steps"] == 1  # step 5's loss is kept

    resumed = _train(_context(raw, resume=checkpoint, run_dir=first.run_dir))
    assert not resumed.stopped
    assert resumed.metrics == pytest.approx(expected.metrics, abs=1e-6)
    assert resumed.test_metrics == pytest.approx(expected.test_metrics, abs=1e-6)
    trace, reference = _trace(first.run_dir), _trace(whole.run_dir)
    assert [t[:3] for t in trace] == [t[:3] for t in reference]
    for got, want in zip(trace, reference, strict=True):
        assert got[3] == pytest.approx(want[3], abs=1e-6), (got, want)


def test_early_stopping_keeps_the_best_model(tiny_model: Path, tiny_data: dict, tmp_path: Path) -> None:
    """With nothing to learn (learning rate 1e-9) the first evaluation stays the best: training stops after
    patience evaluations, and the result is the best checkpoint's, which is kept."""
    ctx = _context(tiny_config(tiny_model, tiny_data, tmp_path / "run", num_train_epochs=30, learning_rate=1e-9,
                               early_stopping_patience=1, metric_for_best_model="loss"))
    result = _train(ctx)
    evals = [e for e in read_events(ctx.run_dir.events_path) if e["type"] == "eval" and e["split"] == "validation"]
    assert 2 <= len(evals) <= 3
    best = min(evals, key=lambda e: e["metrics"]["loss"])
    assert result.metrics == pytest.approx(best["metrics"])
    assert (ctx.run_dir.checkpoints_dir / f"checkpoint-{best['step']}").is_dir()


def test_no_weight_decay_on_biases_and_layer_norms(tiny_model: Path, tiny_data: dict, tmp_path: Path) -> None:
    from core.engines.hf_model import build_model
    from core.engines.torch_loop import _decay_parameter_names

    config = parse_config(tiny_config(tiny_model, tiny_data, tmp_path / "run"))
    model = build_model(config, ["neg", "pos"])
    decay = set(_decay_parameter_names(model))
    names = [n for n, _ in model.named_parameters()]
    assert not [n for n in decay if n.endswith(".bias") or "LayerNorm" in n]
    assert {n for n in names if n.endswith(".bias") or "LayerNorm" in n}.isdisjoint(decay)
    assert "classifier.weight" in decay and any("attention.self.query.weight" in n for n in decay)


@pytest.mark.parametrize("lengths", [None, [3, 9, 1, 7, 5, 2, 8, 4, 6, 10, 11, 12]])
def test_epoch_order_depends_only_on_seed_and_epoch(lengths: list[int] | None) -> None:
    order = epoch_order
    first = order(12, 0, 42, 4, None if lengths is None else np.array(lengths)).tolist()
    assert sorted(first) == list(range(12))
    assert order(12, 0, 42, 4, None if lengths is None else np.array(lengths)).tolist() == first  # a resume replays it
    if lengths is None:
        assert order(12, 1, 42, 4, lengths).tolist() != first  # a new shuffle each epoch
    else:  # each batch of 4 is sorted longest first (12 rows make megabatches of one batch), so it pads little
        ordered = [lengths[i] for i in first]
        assert all(ordered[i:i + 4] == sorted(ordered[i:i + 4], reverse=True) for i in range(0, 12, 4))
        assert ordered[0] == max(lengths)


def test_fp16_needs_a_gpu() -> None:
    with pytest.raises(ConfigError, match="fp16") as err:
        check_precision("fp16", "cpu")
    assert "mixed_precision: no" in (err.value.fix or "")
    check_precision("bf16", "cpu")  # PyTorch runs bf16 autocast on a CPU
    check_precision("fp16", "cuda")
