"""What every engine receives and returns, so the run process treats all engines alike."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import RunConfig
from core.engines import ENGINES
from core.errors import UserError
from core.events import EventWriter
from core.rundir import RunDir


class NonFiniteLoss(UserError):
    """Training diverged: a step's loss or gradient norm became NaN or infinite."""


@dataclass
class RunContext:
    config: RunConfig
    run_dir: RunDir
    events: EventWriter
    prepared: Any  # core.data.PreparedData
    tokenizer: Any  # a transformers fast tokenizer
    tokenized: Any  # datasets.DatasetDict with input_ids, attention_mask, labels
    stop_requested: Callable[[], bool]
    device: str
    resume_from: Path | None = None  # a checkpoint directory of this run to continue from


@dataclass
class EngineResult:
    metrics: dict[str, float]  # final validation metrics, no "eval_" prefix
    test_metrics: dict[str, float] | None = None
    stopped: bool = False
    last_checkpoint: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # split -> the final model's logits [rows, classes] from the engine's own last evaluation, in the split's row
    # order (main process): the evaluation report is made from them, so the end of a run is one pass, not three.
    predictions: dict[str, Any] = field(default_factory=dict)


def steps_per_epoch(n_train: int, batch_size: int, accumulation: int) -> int:
    return max(1, math.ceil(math.ceil(n_train / batch_size) / accumulation))


def world_size() -> int:
    """Processes in this run (torchrun sets WORLD_SIZE); 1 when not distributed."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Only the main process writes the run directory: events, config, metrics and the model."""
    return int(os.environ.get("RANK", "0")) == 0


def requested_processes(config: RunConfig) -> int:
    """training.num_processes, with null meaning one per GPU this process may use (CUDA_VISIBLE_DEVICES applied,
    core.device.gpu_count), at least one."""
    wanted = config.training.num_processes
    if wanted is None:
        from core.device import gpu_count

        return max(1, gpu_count())
    return wanted


def data_parallel_size(config: RunConfig) -> int:
    """Copies of the model that each take a batch per optimizer step: the PyTorch engines' processes (torchrun sets
    WORLD_SIZE), or the keras engine's replicas, which MirroredStrategy runs inside one process."""
    return requested_processes(config) if ENGINES[config.engine].replicas_in_process else world_size()


def total_steps(config: RunConfig, n_train: int) -> int:
    t = config.training
    if t.max_steps > 0:
        return t.max_steps
    per_epoch = steps_per_epoch(n_train, t.per_device_train_batch_size * data_parallel_size(config),
                                t.gradient_accumulation_steps)
    return math.ceil(t.num_train_epochs * per_epoch)


def agree_to_stop(wanted: bool, device: Any = "cpu") -> bool:
    """Every process must stop at the same step, or the others wait forever in the next collective."""
    import torch.distributed as dist

    if world_size() == 1 or not dist.is_available() or not dist.is_initialized():
        return wanted
    import torch

    flag = torch.tensor([1 if wanted else 0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


class StepTimer:
    """Throughput between two logged steps, the same way for every engine."""

    def __init__(self, examples_per_step: int) -> None:
        self.examples_per_step = examples_per_step
        self.start = time.monotonic()
        self._last_time = self.start
        self._last_step = 0

    def sample(self, step: int) -> tuple[float, float]:
        """(samples per second since the last sample, seconds since the start)."""
        now = time.monotonic()
        elapsed = now - self._last_time
        steps = step - self._last_step
        rate = steps * self.examples_per_step / elapsed if elapsed > 0 and steps > 0 else 0.0
        self._last_time, self._last_step = now, step
        return round(rate, 2), round(now - self.start, 2)

    def tokens_per_second(self, tokens_seen: float | None) -> float | None:
        """Non-padding tokens per second since the last call; call it right after sample()."""
        if tokens_seen is None:
            return None
        now = time.monotonic()
        last_time, last_tokens = getattr(self, "_tokens_mark", (self.start, 0.0))
        self._tokens_mark = (now, float(tokens_seen))
        elapsed = now - last_time
        return round((float(tokens_seen) - last_tokens) / elapsed, 1) if elapsed > 0 else None


def class_weights(ctx: RunContext) -> list[float] | None:
    """training.class_weights as the task resolves them for this data (None for none), said once in the run log."""
    from core.tasks import get_task

    task = get_task(ctx.config.task)
    weights = task.training_weights(ctx.config, ctx.prepared)
    if weights is not None and is_main_process():
        print(f"class weights: {task.describe_weights(weights, ctx.prepared)}", flush=True)
    return weights


def emit_samples(ctx: RunContext, model: Any, step: int) -> None:
    """After a validation evaluation, on the main process: the task's samples of what the model now answers
    (Task.validation_samples) as a `sample` event. A sample that fails is a warning, never a failed run."""
    from core.tasks import get_task

    if ctx.config.training.fsdp:
        # Generating from a sharded model takes every process in step, and only the main one holds the rows to ask
        # (core.data.handoff): none while training (fsdp.confirm_sharded says so); the saved model answers in the
        # evaluation report.
        return
    try:
        samples = get_task(ctx.config.task).for_run(ctx.config).validation_samples(model, ctx.tokenizer, ctx.prepared)
    except Exception as err:  # see docstring
        print(f"warning: no samples at step {step}: {type(err).__name__}: {err}", flush=True)
        return
    if samples:
        ctx.events.emit("sample", step=step, split="validation", samples=samples)


def batch_tokens(batch: Any) -> Any:
    """The real (non-padding) tokens of a batch: its attention mask's ones, or every token of a packed batch, which
    has no padding and no mask."""
    mask = batch.get("attention_mask")
    return mask.sum() if mask is not None else batch["input_ids"].numel()


_NEVER = 2**62  # DivergenceWatch's key for "no step diverged"


class DivergenceWatch:
    """The first optimizer step whose raw loss or gradient norm was NaN or infinite, for every engine alike.

    Not the logged loss: that is a window's mean, logged every logging_steps (a last partial window never), and
    Trainer's logging_nan_inf_filter even swaps a NaN step loss for the mean of the finite ones, so a run whose
    weights went NaN could log finite losses, save NaN weights and finish. A tensor is compared on its device, so
    watching costs no host sync per step; check() syncs once, and every process takes the same answer, so all fail
    together (one failing alone would leave the others waiting in the next collective).

    A step is kept as the key step * 4 + code (code: 0 loss nan, 1 loss inf, 2 grad norm nan, 3 grad norm inf), so
    the minimum, also across processes, is the earliest step and, within it, the loss before the gradient norm."""

    def __init__(self, training: Any) -> None:
        self.training = training  # core.config's training section, for the fix
        self._first = _NEVER  # from Python numbers
        self._pending: Any = None  # from tensors: a 0-d int64 tensor on their device

    def observe(self, step: int, value: Any, what: str = "loss") -> None:
        """One optimizer step's raw loss (what="loss") or gradient norm (anything else), a float or a tensor.

        A non-finite float fails the run at once in a one-process run: it has already cost its host sync."""
        if value is None:
            return
        base = step * 4 + (0 if what == "loss" else 2)
        if isinstance(value, int | float):
            if not math.isfinite(value):
                self._first = min(self._first, base + (1 if math.isinf(value) else 0))
                if world_size() == 1:
                    self.check()
            return
        import torch

        v = value.detach()
        if hasattr(v, "full_tensor"):  # FSDP2's gradient norm is a DTensor: the whole value, held by every process
            v = v.full_tensor()
        key = torch.where(torch.isfinite(v), _NEVER, base + torch.isinf(v).long()).min()
        self._pending = key if self._pending is None else torch.minimum(self._pending, key)

    def check(self, device: Any = "cpu") -> None:
        """Raise NonFiniteLoss if any step so far diverged. Every process must call it at the same points."""
        first, pending = self._first, self._pending
        if world_size() > 1:
            import torch
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                key = torch.tensor(first, dtype=torch.long, device=device)
                if pending is not None:
                    key = torch.minimum(key, pending.to(key.device))
                dist.all_reduce(key, op=dist.ReduceOp.MIN)
                first, pending = int(key), None
        if pending is not None:
            first = min(first, int(pending))
        self._first, self._pending = first, None
        if first < _NEVER:
            raise self._error(first)

    def _error(self, key: int) -> NonFiniteLoss:
        step, code = divmod(key, 4)
        what = "the training loss" if code < 2 else "the gradient norm"
        t = self.training
        fixes = [f"lower training.learning_rate (now {t.learning_rate:g})"]
        if t.max_grad_norm <= 0:
            fixes.append("set training.max_grad_norm: 1.0 to clip gradients")
        if t.mixed_precision == "fp16":
            fixes.append("use mixed_precision: bf16 (or no) instead of fp16, whose range overflows")
        fixes.append("check the data for broken labels")
        return NonFiniteLoss(f"training diverged at step {step}: {what} became {('nan', 'inf')[code % 2]}",
                             ", ".join(fixes[:-1]) + ", or " + fixes[-1])


def strip_prefix(metrics: dict[str, Any], prefix: str = "eval_") -> dict[str, float]:
    """Trainer's eval_accuracy -> accuracy; drops runtime bookkeeping."""
    skip = {"runtime", "samples_per_second", "steps_per_second", "epoch", "num_input_tokens_seen"}
    out: dict[str, float] = {}
    for key, value in metrics.items():
        name = key[len(prefix):] if key.startswith(prefix) else key
        if name not in skip and isinstance(value, int | float):
            out[name] = float(value)
    return out


PAD_LABEL = -100  # what transformers' losses ignore: padding of labels that are sequences


def concat_rows(chunks: list[Any], fill: float) -> Any:
    """Batches of outputs or labels joined into one array of rows. Rows that are sequences (token-classification)
    differ in length from batch to batch: each batch is padded along axis 1 to the longest, with `fill`, as Trainer
    pads what it gathers."""
    import numpy as np

    if not chunks:
        return np.zeros((0,))
    if chunks[0].ndim < 2 or len({c.shape[1] for c in chunks}) == 1:
        return np.concatenate(chunks)
    longest = max(c.shape[1] for c in chunks)
    padded = []
    for c in chunks:
        widths = [(0, 0), (0, longest - c.shape[1])] + [(0, 0)] * (c.ndim - 2)
        padded.append(np.pad(c, widths, constant_values=fill))
    return np.concatenate(padded)
