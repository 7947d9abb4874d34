"""Learning-rate range test: a few dozen optimizer steps on the real training data with a rate that rises
exponentially from min_lr to max_lr, the loss recorded at each, and the rate worth training with read off the curve.

It trains a fresh copy of the config's model as the PyTorch engines build it (the task's head, LoRA or a frozen
encoder as configured), with AdamW as they set it up (the config's weight decay, none on biases and norms), the
task's loss (class weights included), gradient clipping, gradient accumulation (a step is one optimizer update over
the effective batch), mixed precision and the device a run would use. A keras config is tested the same way, in
PyTorch on the same transformers checkpoint: its engine converts those weights and trains the same architecture
with the same optimizer, so the curve carries over. Nothing is saved; the model is thrown away.

Imports of torch and transformers happen inside the functions: the CLI and the wizard import this module cheaply.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from core.config import RunConfig
from core.errors import ConfigError, UserError

DEFAULT_STEPS = 50
MIN_STEPS = 8  # fewer points than this make no curve to read a rate from
DEFAULT_MIN_LR = 1e-7
DEFAULT_MAX_LR = 1.0  # the most a config allows (TrainingConfig.learning_rate); divergence usually ends it sooner
MAX_LR_LIMIT = 10.0
DIVERGE_FACTOR = 4.0  # stop once the smoothed loss is this many times its best: the rates beyond are useless
MIN_DROP = 0.10  # the smoothed loss must fall this share below where it started before a rate is suggested
RULE = "a tenth of the rate where the smoothed loss was lowest"


@dataclass
class LrPoint:
    step: int  # 1-based optimizer step
    lr: float  # the rate of the update made after this loss was measured
    loss: float  # the step's training loss (the mean of its accumulated batches)
    smoothed: float  # bias-corrected exponential moving average of the losses so far


@dataclass
class LrRangeResult:
    device: str
    min_lr: float
    max_lr: float
    steps: int  # planned; len(points) is fewer when the test stopped early
    effective_batch_size: int
    mixed_precision: str
    points: list[LrPoint] = field(default_factory=list)
    trend: list[float] = field(default_factory=list)  # loss_trend(): what the suggestion reads, one per point
    stopped: str = ""  # why the test ended before `steps`, or ""
    suggested_lr: float | None = None
    min_loss_lr: float | None = None  # where the trend was lowest
    rule: str = RULE
    reason: str = ""  # how the suggestion follows from the curve, or why there is none
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        ran = f"{len(self.points)} of {self.steps} steps on {self.device}"
        if self.stopped:
            ran += f" ({self.stopped})"
        if self.suggested_lr is None:
            return f"no suggested learning rate: {self.reason}; {ran}"
        return f"suggested learning rate {rate_label(self.suggested_lr)}: {self.reason}; {ran}"


# --- the curve -----------------------------------------------------------------------------------------------------

def schedule(steps: int, min_lr: float, max_lr: float) -> list[float]:
    """min_lr to max_lr in equal ratios, so every decade gets the same number of steps."""
    if steps == 1:
        return [min_lr]
    return [min_lr * (max_lr / min_lr) ** (i / (steps - 1)) for i in range(steps)]


def smoothing_beta(steps: int) -> float:
    """The EMA's beta for a test of `steps`: it averages over about a tenth of the steps, so the smoothing spans the
    same share of the rates whatever the length (fastai's fixed 0.98 would average over all of a 50-step test)."""
    return 1.0 - 1.0 / max(2.0, steps / 10)


class Ema:
    """Exponential moving average with the bias correction of Adam: the early values are not pulled towards 0."""

    def __init__(self, beta: float) -> None:
        self.beta = beta
        self._avg = 0.0
        self._n = 0

    def add(self, value: float) -> float:
        self._n += 1
        self._avg = self.beta * self._avg + (1 - self.beta) * value
        return self._avg / (1 - self.beta ** self._n)


def loss_trend(losses: list[float], steps: int) -> list[float]:
    """The losses smoothed for reading a rate off the curve: each the median of its neighbourhood, about a tenth of
    the planned steps wide (at least 3). Centred, because a one-way average such as the online EMA trails the data
    by about beta / (1 - beta) steps, which on a rising rate moves the curve's minimum to a higher rate than where
    the loss really bottomed out; a median, because once the rate is high single batches spike (or plunge), and a
    mean would let one of them hide the minimum or make one. Only possible once the test is over: the online EMA
    (LrPoint.smoothed) is what decides when to stop. Near either end the window narrows to stay centred: cut off on
    one side only, the last windows would mix the steps that diverged into the ones before them."""
    half = max(1, round(steps / 20))  # each side
    out = []
    for i in range(len(losses)):
        side = min(half, i, len(losses) - 1 - i)
        out.append(statistics.median(losses[i - side:i + side + 1]))
    return out


def suggest(lrs: list[float], trend: list[float]) -> tuple[float | None, float | None, str]:
    """(suggested rate, rate of the lowest loss, why) from the rates and their loss_trend().

    The rule: a tenth of the rate where the smoothed loss was lowest (Smith's range test as fastai first taught it).
    Not the steepest descent, the other common rule: over a few dozen noisy points the slope of the curve, a
    difference of neighbours, jumps about from one run to the next, while the minimum of the smoothed curve is a
    stable feature. The minimum itself is too high: it is where the loss is about to blow up, so one decade below
    it keeps a margin for the longer run (and for the learning-rate schedule's warm-up ending at the peak rate).
    No rate is suggested when the curve does not show that minimum: the loss never fell, or it was lowest so close
    to the start of the range that a tenth of it was never tried."""
    if len(lrs) < 2:
        return None, None, "too few steps to draw a curve"
    low = min(trend)
    lows = [i for i, value in enumerate(trend) if value == low]
    best = lows[len(lows) // 2]  # a median flattens the floor of a valley into equal values: its middle
    start = statistics.median(trend[:3])  # not one first batch: its loss is as noisy as any
    lowest = lrs[best]
    if not start - low > MIN_DROP * abs(start):
        return None, lowest, (f"the loss never fell {MIN_DROP:.0%} below where it started at any rate from "
                              f"{rate_label(lrs[0])} to {rate_label(lrs[-1])}: the noise of small batches can hide a "
                              "fall (a larger batch helps), or the data and labels give nothing to learn")
    rate = lowest / 10
    if rate < lrs[0]:
        return None, lowest, (f"the loss was lowest at {rate_label(lowest)}, within a decade of the smallest rate "
                              f"tried: rerun with a smaller minimum rate (--min-lr {rate_label(lrs[0] / 100)})")
    rounded = float(f"{rate:.1g}")  # the rule is good to about half a decade: one significant digit says that
    if lrs[0] <= rounded <= lrs[-1]:
        rate = rounded
    reason = f"{RULE} ({rate_label(lowest)})"
    if best == len(lrs) - 1:
        reason += "; the loss was still falling at the largest rate tried, so this errs low"
    return rate, lowest, reason


# --- the test ------------------------------------------------------------------------------------------------------

def lr_range_test(config: RunConfig, *, steps: int = DEFAULT_STEPS, min_lr: float = DEFAULT_MIN_LR,
                  max_lr: float = DEFAULT_MAX_LR, on_point: Callable[[LrPoint], None] | None = None) -> LrRangeResult:
    """Run the test on a config whose data paths are resolved (core.launch.resolve_config)."""
    check_range(steps, min_lr, max_lr)
    torch = _import_torch()

    from core.data import prepare_data
    from core.device import torch_device
    from core.engines.base import requested_processes
    from core.engines.hf_model import build_model
    from core.engines.torch_loop import check_precision, make_optimizer, training_loss
    from core.errors import ModelError
    from core.launch import check_data
    from core.models import check_max_length, load_model_config
    from core.tasks import get_task
    from core.tokenization import check_lengths, load_tokenizer, make_collator, tokenize_dataset

    t = config.training
    task = get_task(config.task)
    device = torch_device()
    check_precision(t.mixed_precision, device)
    model_config = load_model_config(config.model)
    try:
        task.check_hf_model(model_config, config.model.name_or_path)
    except ModelError as err:
        raise ConfigError(f"the learning-rate range test runs the model in PyTorch with transformers' head for "
                          f"{task.name}, and {err.problem}", err.fix) from None
    tokenizer = load_tokenizer(config.model)
    limit = check_max_length(config.tokenizer.max_length, model_config, tokenizer)
    prepared = prepare_data(config.data, config.task)
    notes = list(check_data(config, prepared))
    # Only the training split is needed; the others would cost tokenizing time for nothing (the cache keeps each
    # split on its own, so the run still finds this one tokenized).
    from dataclasses import replace

    from datasets import DatasetDict

    train_only = replace(prepared, dataset=DatasetDict({"train": prepared.dataset["train"]}))
    tokenized = tokenize_dataset(train_only, tokenizer, config.tokenizer)
    check_lengths(tokenized, limit, config.tokenizer)
    processes = requested_processes(config)
    if processes > 1:
        notes.append(f"tested on one device: a run with {processes} data-parallel copies takes {processes} times the "
                     "batch per step, which usually tolerates a somewhat higher rate")

    # torch's generator alone draws the new head's weights and dropout (the batches have their own): not
    # transformers.set_seed, whose module imports peft, seconds of start-up for nothing here.
    torch.manual_seed(t.seed)
    model = build_model(config, prepared.label_names)
    if getattr(model.config, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id  # as the engines do for GPT-2 style models
    model.to(device).train()
    optimizer = make_optimizer(model, t.weight_decay, min_lr)
    weights = task.training_weights(config, prepared)
    weight = None if weights is None else torch.tensor(weights, device=device)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(t.mixed_precision)
    scaler = torch.amp.GradScaler(device, enabled=t.mixed_precision == "fp16")
    batches = _cycle(tokenized["train"], t.per_device_train_batch_size, make_collator(tokenizer, config.task),
                     t.seed, device)

    beta = smoothing_beta(steps)
    ema = Ema(beta)
    result = LrRangeResult(device=device, min_lr=min_lr, max_lr=max_lr, steps=steps,
                           effective_batch_size=t.per_device_train_batch_size * t.gradient_accumulation_steps,
                           mixed_precision=t.mixed_precision, notes=notes)
    best = math.inf
    try:
        for step, lr in enumerate(schedule(steps, min_lr, max_lr), start=1):
            for group in optimizer.param_groups:
                group["lr"] = lr
            total = 0.0
            for _ in range(t.gradient_accumulation_steps):
                batch = next(batches)
                with torch.autocast(device_type=device, dtype=dtype, enabled=dtype is not None):
                    loss = training_loss(model(**batch), batch["labels"], weight, task.torch_loss)
                scaler.scale(loss / t.gradient_accumulation_steps).backward()
                total += float(loss.detach().float())
            loss_value = total / t.gradient_accumulation_steps
            if not math.isfinite(loss_value):
                result.stopped = f"the loss became {loss_value} at {rate_label(lr)}"
                break
            if t.max_grad_norm > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), t.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            point = LrPoint(step=step, lr=lr, loss=loss_value, smoothed=ema.add(loss_value))
            result.points.append(point)
            if on_point is not None:
                on_point(point)
            best = min(best, point.smoothed)
            if point.smoothed > DIVERGE_FACTOR * best:
                result.stopped = f"the loss diverged at {rate_label(lr)}"
                break
    except torch.OutOfMemoryError:
        raise UserError(f"out of memory at batch size {t.per_device_train_batch_size} on {device}",
                        "lower training.per_device_train_batch_size (finetune-tui probe CONFIG finds one that fits)"
                        ) from None
    result.trend = loss_trend([p.loss for p in result.points], steps)
    result.suggested_lr, result.min_loss_lr, result.reason = suggest([p.lr for p in result.points], result.trend)
    return result


def check_range(steps: int, min_lr: float, max_lr: float) -> None:
    if steps < MIN_STEPS:
        raise UserError(f"a range test of {steps} steps draws no curve", f"give at least {MIN_STEPS} steps")
    if not 0 < min_lr < max_lr:
        raise UserError(f"the rates must rise from the smallest to the largest (got {min_lr:g} to {max_lr:g})",
                        "give a minimum rate above 0 and below the maximum, e.g. --min-lr 1e-7 --max-lr 1")
    if max_lr > MAX_LR_LIMIT:  # a tenth of it, the most that could be suggested, must be a rate a config takes
        raise UserError(f"a largest rate of {max_lr:g} is past anything that trains",
                        f"give --max-lr {MAX_LR_LIMIT:g} or less (a config takes a learning_rate up to 1)")


def apply(config: RunConfig, result: LrRangeResult) -> RunConfig:
    """A copy of the config with the suggested learning rate (the config as it was without a suggestion)."""
    updated = config.model_copy(deep=True)
    if result.suggested_lr is not None:
        updated.training.learning_rate = result.suggested_lr
    return updated


def _import_torch() -> Any:
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError:
        raise ConfigError("the learning-rate range test runs the model in PyTorch, which is not installed here "
                          "(a keras config is tested in PyTorch too)", "pip install torch transformers") from None
    return torch


def _cycle(dataset: Any, batch_size: int, collator: Any, seed: int, device: str) -> Iterator[dict[str, Any]]:
    """Shuffled batches on the device, forever: a small data set is gone through again in a new order. Shuffled, not
    grouped by length as a run may batch them: a batch of mixed lengths is more like the next one, which keeps the
    noise in the curve down."""
    import torch
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, collate_fn=collator,
                        generator=torch.Generator().manual_seed(seed))
    while True:
        for batch in loader:
            yield {k: v.to(device) for k, v in batch.items()}


# --- text ----------------------------------------------------------------------------------------------------------

def rate_label(lr: float) -> str:
    """How rates are written on the axis and in messages: two significant digits at most, 3.2e-3, 1e-5, 1e0."""
    mantissa, exponent = f"{lr:.1e}".split("e")
    return f"{mantissa.removesuffix('.0')}e{int(exponent)}"


def rate_ticks(lo: float, hi: float, max_count: int) -> list[float]:
    """Round rates between lo and hi for a log axis: every decade (or every second, third… where they would crowd),
    or 1, 2 and 5 times each decade where the range spans less than two."""
    if not (0 < lo < hi) or max_count < 1:
        return []
    first, last = math.ceil(math.log10(lo) - 1e-9), math.floor(math.log10(hi) + 1e-9)
    decades = list(range(first, last + 1))
    if len(decades) < 2:
        fine = [m * 10.0 ** d for d in range(first - 1, last + 1) for m in (1, 2, 5)]
        return [v for v in fine if lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9)][:max_count]
    every = math.ceil(len(decades) / max_count)
    return [10.0 ** d for d in decades if (d - first) % every == 0]


def format_lr_range(result: LrRangeResult, width: int = 72, height: int = 16) -> str:
    """The loss against the rate (log scale) as plain text: the trend the suggestion reads (•), each step's loss (·) and
    the suggested rate (┊), then the summary. Plain characters rather than the monitor's braille chart: core draws
    for logs and pipes too, and never imports the UI."""
    points = result.points
    lines: list[str] = []
    if len(points) >= 2:
        lines += _plot(points, result.trend, result.suggested_lr, max(30, width), max(8, height))
        legend = "across: learning rate (log scale)   • smoothed loss   · loss of each step"
        if result.suggested_lr is not None:
            legend += f"   ┊ suggested {rate_label(result.suggested_lr)}"
        lines.append(legend)
    lines += [f"note: {note}" for note in result.notes]
    lines.append(result.summary())
    return "\n".join(lines)


def plot_top(trend: list[float]) -> float:
    """The top of a plot's loss axis: as far above the starting loss as the curve fell below it (at least a quarter
    of it). A diverged step's loss can be many times the rest; drawn in full it would squash the part worth reading,
    the fall and the bottom, into a line. Higher losses are drawn at the top edge."""
    start = statistics.median(trend[:3])
    return start + max(start - min(trend), 0.25 * abs(start), 1e-6)


def _plot(points: list[LrPoint], trend: list[float], suggested: float | None, width: int, height: int) -> list[str]:
    rows = height - 2  # the axis line and its labels
    top = plot_top(trend)
    losses = [min(p.loss, top) for p in points]
    trend = [min(v, top) for v in trend]
    bottom = min([*losses, *trend])
    if top <= bottom:
        top = bottom + 1.0
    labels = {0: f"{top:.3g}", rows // 2: f"{(top + bottom) / 2:.3g}", rows - 1: f"{bottom:.3g}"}
    left = max(len(text) for text in labels.values()) + 1
    columns = width - left
    x_lo, x_hi = math.log10(points[0].lr), math.log10(points[-1].lr)

    def col(lr: float) -> int:
        return min(columns - 1, max(0, round((math.log10(lr) - x_lo) / (x_hi - x_lo) * (columns - 1))))

    def row(loss: float) -> int:
        return min(rows - 1, max(0, round((top - loss) / (top - bottom) * (rows - 1))))

    grid = [[" "] * columns for _ in range(rows)]
    if suggested is not None:
        for r in range(rows):
            grid[r][col(suggested)] = "┊"
    for p, loss in zip(points, losses, strict=True):
        grid[row(loss)][col(p.lr)] = "·"
    for p, value in zip(points, trend, strict=True):
        grid[row(value)][col(p.lr)] = "•"
    out = [labels.get(r, "").rjust(left - 1) + ("┤" if r in labels else "│") + "".join(grid[r]) for r in range(rows)]
    axis, under = ["─"] * columns, [" "] * columns
    taken = -1
    for tick in rate_ticks(points[0].lr, points[-1].lr, max(2, columns // 8)):
        c = col(tick)
        axis[c] = "┬"
        text = rate_label(tick)
        start = min(max(c - len(text) // 2, 0), columns - len(text))
        if taken < 0 or start > taken + 1:
            under[start:start + len(text)] = text
            taken = start + len(text) - 1
    out.append(" " * (left - 1) + "└" + "".join(axis))
    out.append(" " * left + "".join(under).rstrip())
    return out
