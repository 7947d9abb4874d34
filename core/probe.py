"""Batch-size probe: the largest per-device batch that fits, keeping the user's effective batch size.

Forward, backward and an AdamW step at max_length (the worst case the data can produce) with growing batch
sizes on the real device. On a GPU it reports peak memory per step and stops at out-of-memory or at the headroom;
on a CPU it reports time per step, with the process's peak memory against the machine's RAM as the limit.
"""

from __future__ import annotations

import gc
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from core.config import RunConfig

HEADROOM = 0.85  # use at most this share of the device's memory, leaving room for longer-lived buffers
CPU_STEP_BUDGET_S = 30.0  # on a CPU, stop growing once one step takes this long


@dataclass
class ProbeRow:
    batch_size: int
    fits: bool = False
    seconds_per_step: float | None = None
    peak_memory_mb: float | None = None
    note: str = ""


@dataclass
class ProbeResult:
    device: str
    effective_batch_size: int
    per_device_train_batch_size: int
    gradient_accumulation_steps: int
    memory_limit_mb: float | None
    rows: list[ProbeRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        return (f"per_device_train_batch_size={self.per_device_train_batch_size} with "
                f"gradient_accumulation_steps={self.gradient_accumulation_steps} keeps the effective batch of "
                f"{self.effective_batch_size} on {self.device}")


def candidates(effective: int) -> list[int]:
    """Batch sizes worth trying: those that divide the effective batch, smallest first."""
    return [b for b in range(1, effective + 1) if effective % b == 0 and (b & (b - 1) == 0 or b == effective)]


def probe(config: RunConfig, *, headroom: float = HEADROOM, step_budget_s: float = CPU_STEP_BUDGET_S,
          on_row: Callable[[ProbeRow], None] | None = None) -> ProbeResult:
    import psutil
    import torch

    from core.device import torch_device
    from core.engines.hf_model import build_model
    from core.models import load_model_config

    t = config.training
    device = torch_device()
    effective = t.per_device_train_batch_size * t.gradient_accumulation_steps
    model_config = load_model_config(config.model)
    vocab = int(getattr(model_config, "vocab_size", 1000))
    length = config.tokenizer.max_length
    from core.tasks import get_task

    task = get_task(config.task)
    names = ["a", "b"]  # the head's size barely matters next to the encoder
    model = build_model(config, names).to(device)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=t.learning_rate)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(t.mixed_precision)
    if device == "cuda":
        limit_mb = torch.cuda.get_device_properties(0).total_memory / 2**20 * headroom
    else:
        limit_mb = psutil.virtual_memory().available / 2**20 * headroom + _peak_rss_mb()
    result = ProbeResult(device=device, effective_batch_size=effective, per_device_train_batch_size=1,
                         gradient_accumulation_steps=effective, memory_limit_mb=round(limit_mb))
    generator = torch.Generator().manual_seed(0)
    for batch in candidates(effective):
        row = ProbeRow(batch)
        try:
            inputs = torch.randint(5, max(6, vocab), (batch, length), generator=generator).to(device)
            labels = torch.zeros(task.label_shape(batch, names, length), dtype=getattr(torch, task.label_dtype),
                                 device=device)
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            started = time.perf_counter()
            for _ in range(2):  # the first step allocates optimizer state; the second is the steady state
                with torch.autocast(device_type=device, dtype=dtype, enabled=dtype is not None):
                    loss = model(input_ids=inputs, attention_mask=torch.ones_like(inputs), labels=labels).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            if device == "cuda":
                torch.cuda.synchronize()
                row.peak_memory_mb = round(torch.cuda.max_memory_allocated() / 2**20)
            else:
                row.peak_memory_mb = round(_peak_rss_mb())
            row.seconds_per_step = round((time.perf_counter() - started) / 2, 3)
            row.fits = row.peak_memory_mb <= limit_mb
            if not row.fits:
                row.note = f"over {headroom:.0%} of the device memory"
        except torch.OutOfMemoryError:
            row.fits, row.note = False, "out of memory"
        finally:
            gc.collect()
            if device == "cuda":
                torch.cuda.empty_cache()
        result.rows.append(row)
        if on_row is not None:
            on_row(row)
        if not row.fits:
            break
        result.per_device_train_batch_size = batch
        result.gradient_accumulation_steps = effective // batch
        if device == "cpu" and (row.seconds_per_step or 0) > step_budget_s:
            row.note = "slow on this CPU: larger batches were not tried"
            break
    return result


def apply(config: RunConfig, result: ProbeResult) -> RunConfig:
    """A copy of the config with the probed batch layout; the effective batch size is unchanged."""
    updated = config.model_copy(deep=True)
    updated.training.per_device_train_batch_size = result.per_device_train_batch_size
    updated.training.gradient_accumulation_steps = result.gradient_accumulation_steps
    return updated


def format_probe(result: ProbeResult) -> str:
    unit = "peak GPU memory" if result.device == "cuda" else "peak RAM (process)"
    lines = [f"{'batch':>6}  {'fits':>4}  {'s/step':>7}  {unit}"]
    for row in result.rows:
        seconds = f"{row.seconds_per_step:.3f}" if row.seconds_per_step is not None else "-"
        memory = f"{row.peak_memory_mb:,.0f} MB" if row.peak_memory_mb is not None else "-"
        lines.append(f"{row.batch_size:>6}  {'yes' if row.fits else 'no':>4}  {seconds:>7}  {memory}"
                     + (f"  ({row.note})" if row.note else ""))
    lines.append(f"limit: {result.memory_limit_mb:,.0f} MB" if result.memory_limit_mb else "")
    lines.append(result.summary())
    return "\n".join(line for line in lines if line)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports kilobytes
