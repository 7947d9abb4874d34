"""A run whose weights really go NaN fails at the step it diverged, on every engine, and saves no NaN model.

The divergence is real: at the start of step 5 the word embeddings turn infinite (as an overflow would leave them),
so the forward pass of that step, and every one after it, computes NaN through the engine's own path: the loss,
the gradients, Trainer's logging filter, AdamW. Logging every 2 steps and saving every 2 steps, a check of the
logged loss would name step 6 at the earliest (or, behind Trainer's logging_nan_inf_filter, never see it)."""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path
from typing import Any

import pytest

from core.config import parse_config
from core.engines.base import DivergenceWatch, NonFiniteLoss
from core.launch import create_run, resolve_config
from core.rundir import RunDir
from core.worker import main as worker_main
from tests.conftest import tiny_config

DIVERGES_AT = 5
SETTINGS = {"max_steps": 8, "logging_steps": 2, "save_strategy": "steps", "save_steps": 2, "eval_strategy": "no",
            "max_grad_norm": 0.0}
needs_keras = pytest.mark.skipif(importlib.util.find_spec("keras_hub") is None, reason="the keras engine is missing")


def _poison_torch(monkeypatch: pytest.MonkeyPatch, engine_module: Any) -> None:
    """The engine's model turns its word embeddings infinite just before the forward pass of step DIVERGES_AT."""
    import torch

    original = engine_module.build_model

    def build(*args: Any, **kwargs: Any) -> Any:
        model = original(*args, **kwargs)
        forwards = 0

        def before_forward(module: Any, _: Any) -> None:
            nonlocal forwards
            if module.training:  # one training forward per step here: no accumulation
                forwards += 1
                if forwards == DIVERGES_AT:
                    with torch.no_grad():
                        module.get_input_embeddings().weight.fill_(math.inf)

        model.register_forward_pre_hook(before_forward)
        return model

    monkeypatch.setattr(engine_module, "build_model", build)


def _poison_keras(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from core.engines import keras as keras_engine

    original = keras_engine._KerasRun.batch_end

    def batch_end(self: Any, batch_loss: float) -> bool:
        stop = original(self, batch_loss)
        if self.state.global_step == DIVERGES_AT - 1:  # the batch of step 4 is done: before step 5's forward
            embeddings = self.model.backbone.token_embedding.embeddings
            embeddings.assign(np.full(embeddings.shape, np.inf, dtype=embeddings.dtype))
        return stop

    monkeypatch.setattr(keras_engine._KerasRun, "batch_end", batch_end)


def _poison(monkeypatch: pytest.MonkeyPatch, engine: str) -> None:
    if engine == "keras":
        _poison_keras(monkeypatch)
    else:
        import core.engines.torch_loop as torch_loop_engine
        import core.engines.trainer as trainer_engine

        _poison_torch(monkeypatch, trainer_engine if engine == "trainer" else torch_loop_engine)


def _create(tiny_model: Path, tiny_data: dict, out: Path, engine: str) -> RunDir:
    return create_run(resolve_config(parse_config({**tiny_config(tiny_model, tiny_data, out, **SETTINGS),
                                                   "engine": engine})))


def _filter_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trainer's logging_nan_inf_filter as transformers sets it by default."""
    import core.engines.trainer as trainer_engine

    original = trainer_engine.training_arguments

    def with_filter(ctx: Any) -> Any:
        args = original(ctx)
        args.logging_nan_inf_filter = True
        return args

    monkeypatch.setattr(trainer_engine, "training_arguments", with_filter)


@pytest.mark.parametrize("engine", ["trainer", "trainer-filter-on",
                                    "torch-loop", pytest.param("keras", marks=needs_keras)])
def test_a_diverging_run_fails_at_the_step_it_diverged(engine: str, tiny_model: Path, tiny_data: dict,
                                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if engine == "trainer-filter-on":
        engine = "trainer"
        _filter_on(monkeypatch)
    _poison(monkeypatch, engine)
    run_dir = _create(tiny_model, tiny_data, tmp_path / "r", engine)

    assert worker_main([str(run_dir.path)]) == 1, run_dir.log_tail(40)
    events = run_dir.events()
    failed = events[-1]
    assert failed["type"] == "failed" and run_dir.status() == "failed"
    assert failed["error"] == f"training diverged at step {DIVERGES_AT}: the training loss became nan"
    assert "training.learning_rate (now 0.005)" in failed["hint"] and "max_grad_norm: 1.0" in failed["hint"]
    # Nothing of the diverged steps was logged or saved, and the last checkpoint (from before) is what resumes.
    assert [e["step"] for e in events if e["type"] == "step"] == [2, 4]
    assert all(math.isfinite(e["loss"]) for e in events if e["type"] == "step")
    assert max(e["step"] for e in events if e["type"] == "checkpoint") == 4
    assert run_dir.last_checkpoint() is not None and run_dir.last_checkpoint().name == "checkpoint-4"
    assert not run_dir.model_dir.is_dir() or not any(run_dir.model_dir.iterdir()), "a NaN model was saved"


def test_behind_trainers_logging_filter_the_logged_loss_hides_the_divergence(
        tiny_model: Path, tiny_data: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Why the watch looks at the raw steps: with it switched off, the same diverging run logs finite losses (the
    filter swaps each NaN step loss for the window's finite mean) and finishes with a NaN model, as it used to."""
    from safetensors.torch import load_file

    _filter_on(monkeypatch)
    _poison(monkeypatch, "trainer")
    monkeypatch.setattr(DivergenceWatch, "check", lambda self, device="cpu": None)
    run_dir = _create(tiny_model, {"train": tiny_data["train"]}, tmp_path / "r", "trainer")  # no test split: faster

    assert worker_main([str(run_dir.path)]) == 0, run_dir.log_tail(40)
    events = run_dir.events()
    assert events[-1]["type"] == "finished"
    logged = {e["step"]: e["loss"] for e in events if e["type"] == "step"}
    assert sorted(logged) == [2, 4, 6, 8] and all(math.isfinite(loss) for loss in logged.values())
    weights = load_file(str(run_dir.model_dir / "model.safetensors"))
    assert weights["classifier.weight"].isnan().all(), "the weights went NaN, and were saved as the model"


def _agreeing_process(rank: int, port: int, out: str) -> None:
    """One of two gloo processes: only process 1's loss goes NaN at step 5, the gradient norm (all-reduced, so the
    same on both) one step later; both check after steps 4 and 6, as the engines do at logs and saves."""
    import torch
    import torch.distributed as dist

    from core.config import RunConfig

    os.environ.update(WORLD_SIZE="2", RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    watch = DivergenceWatch(RunConfig.model_validate({"data": {"train_file": "x.tsv"}}).training)
    outcome = "no failure"
    try:
        for step in range(1, 7):
            diverged = rank == 1 and step >= DIVERGES_AT
            watch.observe(step, torch.tensor(math.nan if diverged else 0.5))
            watch.observe(step, math.nan if diverged else 0.5)  # a float: the loop must not fail alone on it
            watch.observe(step, torch.tensor(math.inf if step > DIVERGES_AT else 1.0), "gradient norm")
            if step % 2 == 0:
                watch.check()
    except NonFiniteLoss as err:
        outcome = f"step {step}: {err.problem}"
    finally:
        dist.destroy_process_group()
    Path(out, f"rank{rank}").write_text(outcome)


def test_all_processes_fail_together_on_the_first_diverged_step_of_any(tmp_path: Path) -> None:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_agreeing_process, args=(port, str(tmp_path)), nprocs=2)
    expected = f"step 6: training diverged at step {DIVERGES_AT}: the training loss became nan"
    assert [(tmp_path / f"rank{r}").read_text() for r in (0, 1)] == [expected, expected]


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(not _has_cuda(), reason="fp16 with a gradient scaler needs a CUDA GPU")
@pytest.mark.parametrize("engine", ["trainer", "torch-loop"])
def test_fp16_overflow_steps_that_the_scaler_skips_are_not_divergence(engine: str, tiny_model: Path,
                                                                      tiny_data: dict, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """An infinite gradient norm is how GradScaler finds its scale: the step is skipped, the weights stay finite.
    Starting at 2**40, every step here overflows; the run must still finish."""
    import torch

    original = torch.amp.GradScaler.__init__

    def huge_scale(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **{**kwargs, "init_scale": 2.0**40})

    monkeypatch.setattr(torch.amp.GradScaler, "__init__", huge_scale)
    raw = tiny_config(tiny_model, tiny_data, tmp_path / "r", max_steps=4, logging_steps=1, save_strategy="no",
                      eval_strategy="no", mixed_precision="fp16")
    run_dir = create_run(resolve_config(parse_config({**raw, "engine": engine})))
    assert worker_main([str(run_dir.path)]) == 0, run_dir.log_tail(40)
    events = run_dir.events()
    assert events[-1]["type"] == "finished"
    overflowed = [e for e in events if e["type"] == "step" and e["grad_norm"] in ("inf", "nan")]
    assert overflowed, "no step overflowed: nothing was tested"
