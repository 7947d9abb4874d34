"""The `torch-loop` engine: the PyTorch training loop the tutorials teach, with Accelerate doing the device work.

Accelerate's Accelerator places the model and batches on the device, runs mixed precision, accumulates gradients
(`accelerator.accumulate`) and saves/loads resumable state; everything else is written out here, on purpose, so
the loop can be read and changed line by line. It follows Trainer's schedule of logging, evaluating and saving
(log, then evaluate, then save, after each optimizer step and again at each epoch end) so that the three engines
write the same events for the same config.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.engines.base import (
    PAD_LABEL,
    DivergenceWatch,
    EngineResult,
    RunContext,
    StepTimer,
    agree_to_stop,
    batch_tokens,
    class_weights,
    concat_rows,
    emit_samples,
    total_steps,
)
from core.engines.hf_model import build_model, save_final_model
from core.engines.sampling import EpochSampler, input_lengths
from core.errors import ConfigError, RunDirError
from core.metrics import greater_is_better

STATE_FILE = "loop_state.json"
MIN_LR_RATE = 0.1  # cosine_with_min_lr decays to this share of the peak learning rate


# --- pieces shared with the keras engine -------------------------------------------------------------------------

def warmup_steps(warmup_ratio: float, total: int) -> int:
    return math.ceil(warmup_ratio * total)  # as Trainer rounds it


def lr_lambda(config: Any, total: int) -> Any:
    """The configured schedule as a function of the optimizer step -> multiplier of the peak learning rate; built
    by transformers' get_scheduler, so every engine follows exactly the same curve."""
    import torch

    dummy = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    return make_scheduler(config, dummy, total).lr_lambdas[0]


def make_scheduler(config: Any, optimizer: Any, total: int) -> Any:
    from transformers import get_scheduler

    t = config.training
    extra = {"min_lr_rate": MIN_LR_RATE} if t.lr_scheduler_type == "cosine_with_min_lr" else None
    return get_scheduler(t.lr_scheduler_type, optimizer, num_warmup_steps=warmup_steps(t.warmup_ratio, total),
                         num_training_steps=total, scheduler_specific_kwargs=extra)


def group_scale(index: int, n_batches: int, accumulation: int) -> float:
    """What to multiply the loss of the epoch's batch `index` (0-based) by before accelerator.backward, which divides
    every loss by `accumulation`: an epoch whose batches do not fill its last accumulation group ends with a shorter
    group, and Trainer divides that group's losses by the batches it really holds, not by gradient_accumulation_steps
    (its current_gradient_accumulation_steps), so that the step's gradient is their mean, not a fraction of it."""
    start = index - index % accumulation
    return accumulation / min(accumulation, n_batches - start)


def training_loss(outputs: Any, labels: Any, weight: Any = None, weighted_loss: Any = None) -> Any:
    """The batch's training loss: the model's own (its problem_type's mean loss), or with class weights (a tensor)
    the task's weighted loss, `weighted_loss(logits, labels, weight)` (Task.torch_loss)."""
    if weight is None:
        return outputs.loss
    return weighted_loss(outputs.logits, labels, weight)


# --- the loop ------------------------------------------------------------------------------------------------------

@dataclass
class LoopState:
    """What a checkpoint needs beyond Accelerate's state to continue exactly where the run stopped."""

    global_step: int = 0
    epoch: int = 0
    batches_done: int = 0  # batches of `epoch` already trained on
    window_loss: float = 0.0  # sum of the step losses of the logging window in progress
    window_steps: int = 0
    best_value: float | None = None
    best_checkpoint: str | None = None
    bad_evals: int = 0
    last_eval_step: int | None = None
    last_eval: dict[str, float] = field(default_factory=dict)

    def track_best(self, metrics: dict[str, float], primary: str) -> bool:
        """Record an evaluation for early stopping; True when it is the best so far in the metric's own direction
        (core.metrics.greater_is_better: lowest loss or error, else highest)."""
        value = metrics.get(primary)
        if value is None:
            return False
        higher = greater_is_better(primary)
        better = self.best_value is None or (value > self.best_value if higher else value < self.best_value)
        if better:
            self.best_value, self.bad_evals = value, 0
        else:
            self.bad_evals += 1
        return better


def train(ctx: RunContext) -> EngineResult:
    return _Loop(ctx).run()


def check_precision(precision: str, device: str) -> None:
    if precision == "fp16" and device == "cpu":
        raise ConfigError("training.mixed_precision is fp16, but this run has no GPU (fp16 needs CUDA)",
                          "set training.mixed_precision: no (or bf16, which PyTorch can run on a CPU)")


class _Loop:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.cfg = ctx.config
        self.t = ctx.config.training
        self.primary = self.t.metric_for_best_model or self.cfg.metrics[0]
        self.early = self.t.early_stopping_patience is not None
        # Early stopping keeps the best checkpoint, so (as with Trainer) checkpoints follow the evaluations.
        self.save_strategy = self.t.eval_strategy if self.early else self.t.save_strategy
        self.save_steps = self.t.eval_steps if self.early else self.t.save_steps
        self.state = LoopState()
        self.saved_at: int | None = None
        self.logits: dict[str, tuple[int, Any]] = {}  # split -> (step, logits) of its latest evaluation
        self.best_logits: tuple[int, Any] | None = None  # the validation logits of the best checkpoint's step
        self.watch = DivergenceWatch(self.t)

    # -- set-up --------------------------------------------------------------------------------------------------
    def _setup(self) -> None:
        import torch
        from accelerate import Accelerator
        from accelerate.utils import set_seed
        from torch.utils.data import DataLoader

        from core.tasks import get_task
        from core.tokenization import make_collator

        ctx, t = self.ctx, self.t
        check_precision(t.mixed_precision, ctx.device)
        set_seed(t.seed)
        # The schedule is stepped here, once per optimizer step: total_steps already counts every process's data, so
        # Accelerate's stepping once per process (step_scheduler_with_optimizer) would run it num_processes too fast.
        sharding = None
        if t.fsdp:
            from core.engines import fsdp

            sharding = fsdp.plugin(t.mixed_precision)
        self.accelerator = Accelerator(mixed_precision=t.mixed_precision, cpu=ctx.device == "cpu",
                                       gradient_accumulation_steps=t.gradient_accumulation_steps,
                                       step_scheduler_with_optimizer=False, fsdp_plugin=sharding)
        if sharding is not None and ctx.device == "cpu":
            fsdp.force_on_cpu(self.accelerator, sharding)
        model = build_model(self.cfg, ctx.prepared.label_names)
        if getattr(model.config, "pad_token_id", None) is None and ctx.tokenizer.pad_token_id is not None:
            model.config.pad_token_id = ctx.tokenizer.pad_token_id  # GPT-2 style models pad with end-of-text

        collator = make_collator(ctx.tokenizer, get_task(self.cfg.task).for_run(self.cfg))
        train_ds = ctx.tokenized["train"]
        # Grouped by length over the effective batch, as the trainer engine groups (core.engines.sampling).
        effective = t.per_device_train_batch_size * t.gradient_accumulation_steps
        self.sampler = EpochSampler(len(train_ds), t.seed, effective,
                                    input_lengths(train_ds) if t.group_by_length else None)
        # Each loader draws its worker seed from its own generator, not the global one: a resumed run re-creates
        # its loader mid-epoch, and a draw from the global generator there would shift every dropout mask after it.
        train_loader = DataLoader(train_ds, batch_size=t.per_device_train_batch_size, sampler=self.sampler,  # type: ignore[arg-type]
                                  collate_fn=collator, generator=torch.Generator().manual_seed(t.seed))
        eval_loaders = {split: DataLoader(ctx.tokenized[split], batch_size=t.per_device_eval_batch_size,
                                          shuffle=False, collate_fn=collator,
                                          generator=torch.Generator().manual_seed(t.seed))
                        for split in ("validation", "test") if split in ctx.tokenized}

        optimizer = make_optimizer(model, t.weight_decay, t.learning_rate)
        self.total = total_steps(self.cfg, len(train_ds))
        scheduler = make_scheduler(self.cfg, optimizer, self.total)

        prepared = self.accelerator.prepare(model, optimizer, train_loader, scheduler, *eval_loaders.values())
        self.model, self.optimizer, self.train_loader, self.scheduler = prepared[:4]
        if t.fsdp and self.accelerator.is_main_process:
            from core.engines.fsdp import confirm_sharded

            confirm_sharded(self.model, self.accelerator.num_processes)
        self.eval_loaders = dict(zip(eval_loaders, prepared[4:], strict=True))
        # This process's batches (Accelerate shards them over processes); total counts all processes' data too.
        self.per_epoch = math.ceil(len(self.train_loader) / t.gradient_accumulation_steps)
        self.task = get_task(self.cfg.task).for_run(self.cfg)
        self.step_lr = 0.0
        self.timer = StepTimer(effective * self.accelerator.num_processes)
        weights = class_weights(ctx)
        self.class_weight = None if weights is None else torch.tensor(weights, device=self.accelerator.device)
        self.tokens = torch.zeros((), dtype=torch.long, device=self.accelerator.device)  # non-padding tokens trained on

    # -- the run -------------------------------------------------------------------------------------------------
    def run(self) -> EngineResult:
        self._setup()
        if self.ctx.resume_from is not None:
            self._resume(Path(self.ctx.resume_from))
        s, acc = self.state, self.accelerator
        n_batches = len(self.train_loader)
        epochs = math.ceil(self.total / self.per_epoch)
        done = s.global_step >= self.total or self._patience_spent()  # spent by the evaluation of a stop
        micro_loss, micro = None, 0
        while s.epoch < epochs and not done:
            self.sampler.use_epoch(s.epoch)
            loader = acc.skip_first_batches(self.train_loader, s.batches_done) if s.batches_done else self.train_loader
            self.model.train()
            for batch in loader:
                with acc.accumulate(self.model):
                    loss = training_loss(self.model(**batch), batch["labels"], self.class_weight,
                                         self.task.torch_loss)
                    scale = group_scale(s.batches_done, n_batches, self.t.gradient_accumulation_steps)
                    acc.backward(loss * scale if scale != 1 else loss)  # the logged loss stays the batch's own
                    grad_norm = None
                    if acc.sync_gradients:
                        self.step_lr = self.scheduler.get_last_lr()[0]  # the rate this step uses, as Trainer logs it
                        if self.t.max_grad_norm > 0:
                            grad_norm = acc.clip_grad_norm_(self.model.parameters(), self.t.max_grad_norm)
                    self.optimizer.step()  # Accelerate makes it a no-op between accumulation boundaries
                    if acc.sync_gradients and not acc.optimizer_step_was_skipped:  # skipped: fp16 overflow
                        self.scheduler.step()
                    self.optimizer.zero_grad()
                s.batches_done += 1
                self.tokens += batch_tokens(batch)
                micro_loss = loss.detach().float() if micro_loss is None else micro_loss + loss.detach().float()
                micro += 1
                if not acc.sync_gradients:
                    continue
                s.global_step += 1
                s.window_loss += float(micro_loss / micro)  # mean of the step's batches, as Trainer logs it
                s.window_steps += 1
                # The window's sum turns non-finite at the first non-finite step loss and stays so: that step.
                self.watch.observe(s.global_step, s.window_loss)
                if grad_norm is not None and not acc.optimizer_step_was_skipped:  # skipped: fp16 overflow
                    self.watch.observe(s.global_step, grad_norm, "gradient norm")
                micro_loss, micro = None, 0
                at_end = s.global_step >= self.total
                steps_eval = self.t.eval_strategy == "steps" and (s.global_step % self.t.eval_steps == 0 or at_end)
                steps_save = self.save_strategy == "steps" and (s.global_step % self.save_steps == 0 or at_end)
                epoch_f = s.epoch + s.batches_done / n_batches
                self._log_eval_save(s.global_step % self.t.logging_steps == 0, steps_eval, steps_save, epoch_f,
                                    grad_norm)
                if agree_to_stop(self.ctx.stop_requested(), acc.device):
                    self.watch.check(acc.device)  # a stop checkpoint of a diverged run would resume NaN weights
                    if s.batches_done == n_batches and not self._patience_spent():
                        # The epoch's last step: the resumed run starts with the next epoch, so the evaluation (which
                        # early stopping counts) and checkpoint of this epoch's end come now, as Trainer makes them.
                        self._log_eval_save(False, self.t.eval_strategy == "epoch", self.save_strategy == "epoch",
                                            s.epoch + 1)
                    return EngineResult(metrics={}, stopped=True, last_checkpoint=str(self._save()))
                if at_end or self._patience_spent():
                    done = True
                    break
            else:
                s.epoch += 1
                s.batches_done = 0
            epoch_f = s.epoch if s.batches_done == 0 else s.epoch + s.batches_done / n_batches
            if not self._patience_spent():
                self._log_eval_save(False, self.t.eval_strategy == "epoch", self.save_strategy == "epoch", epoch_f)
            done = done or self._patience_spent()
        return self._finish()

    def _patience_spent(self) -> bool:
        return self.early and self.state.bad_evals >= (self.t.early_stopping_patience or 0)

    def _log_eval_save(self, log: bool, evaluate: bool, save: bool, epoch: float, grad_norm: Any = None) -> None:
        """Trainer's order: the step's log, then the evaluation, then the checkpoint."""
        s = self.state
        if log or evaluate or save:
            self.watch.check(self.accelerator.device)
        if log and s.window_steps:
            import torch

            acc = self.accelerator
            # Every process logs the same steps: the loss is their mean, the tokens their sum (as Trainer's).
            loss = float(acc.reduce(torch.tensor(s.window_loss / s.window_steps, device=acc.device), "mean"))
            tokens = float(acc.reduce(self.tokens.clone(), "sum"))
            rate, elapsed = self.timer.sample(s.global_step)
            self._emit("step", step=s.global_step, total_steps=self.total, epoch=round(float(epoch), 4), loss=loss,
                       learning_rate=self.step_lr,
                       grad_norm=float(grad_norm) if grad_norm is not None else None,
                       samples_per_second=rate, tokens_per_second=self.timer.tokens_per_second(tokens),
                       elapsed_s=elapsed)
            s.window_loss, s.window_steps = 0.0, 0
        improved = False
        if evaluate and "validation" in self.eval_loaders:
            metrics = self.evaluate("validation")
            self._emit("eval", step=s.global_step, epoch=round(float(epoch), 4), split="validation", metrics=metrics)
            if self.accelerator.is_main_process:
                emit_samples(self.ctx, self.accelerator.unwrap_model(self.model), s.global_step)
            s.last_eval_step, s.last_eval = s.global_step, metrics
            improved = s.track_best(metrics, self.primary)
        if save:
            path = self._save()
            if improved and self.early:
                s.best_checkpoint = str(path)
                self.best_logits = self.logits.get("validation")
                self._write_state(path)  # the checkpoint records that it is the best so far

    def evaluate(self, split: str) -> dict[str, float]:
        """Mean loss per example and the configured metrics of the whole split, from its outputs (the task's)."""
        import numpy as np
        import torch

        acc = self.accelerator
        self.model.eval()
        loss_sum, count = 0.0, 0
        chunks, references = [], []
        keep = self.task.keeps_outputs
        for batch in self.eval_loaders[split]:
            with torch.no_grad():
                out = self.model(**batch)
            if not keep:  # a language model: the loss alone (its logits are vocabulary-sized per token)
                losses = acc.gather_for_metrics(out.loss.detach().float().repeat(len(batch["labels"])))
                loss_sum += float(losses.sum())
                count += len(losses)
                continue
            logits, refs = out.logits.detach().float(), batch["labels"]
            if refs.ndim > 1 and logits.ndim > 2:  # sequences of labels: each process's batch has its own length
                logits = acc.pad_across_processes(logits, dim=1, pad_index=PAD_LABEL)
                refs = acc.pad_across_processes(refs, dim=1, pad_index=PAD_LABEL)
            logits, refs, losses = acc.gather_for_metrics(
                (logits, refs, out.loss.detach().float().repeat(len(batch["labels"]))))
            chunks.append(logits.cpu().numpy())
            references.append(refs.cpu().numpy())
            loss_sum += float(losses.sum())
            count += len(losses)
        self.model.train()
        loss = loss_sum / max(count, 1)
        if not keep:
            self.logits[split] = (self.state.global_step, None)
            return {"loss": loss, **self.task.metrics_from_loss(loss)}
        # Kept for the evaluation report: the loader is sequential, so the rows are in the split's order.
        outputs, labels = self.task.gather_outputs(concat_rows(chunks, PAD_LABEL) if chunks else np.zeros((0, 0)),
                                                   concat_rows(references, PAD_LABEL))
        self.logits[split] = (self.state.global_step, outputs)
        return {"loss": loss, **self.task.compute_metrics(outputs, labels, self.cfg.metrics, self.ctx.prepared)}

    # -- checkpoints ---------------------------------------------------------------------------------------------
    def _save(self) -> Path:
        s = self.state
        path = self.ctx.run_dir.checkpoints_dir / f"checkpoint-{s.global_step}"
        if self.saved_at == s.global_step and path.is_dir():
            return path
        self.accelerator.wait_for_everyone()
        self.accelerator.save_state(str(path))
        self._write_state(path)
        self.saved_at = s.global_step
        self._emit("checkpoint", step=s.global_step, path=str(path))
        if self.accelerator.is_main_process:
            rotate_checkpoints(self.ctx.run_dir.checkpoints_dir, self.t.save_total_limit, s.best_checkpoint)
        return path

    def _write_state(self, path: Path) -> None:
        if self.accelerator.is_main_process:
            (path / STATE_FILE).write_text(json.dumps(asdict(self.state), indent=1), encoding="utf-8")

    def _resume(self, path: Path) -> None:
        state_file = path / STATE_FILE
        if not state_file.exists():
            raise RunDirError(f"{path} is not a torch-loop checkpoint (no {STATE_FILE} in it)",
                              "resume from a checkpoint that a torch-loop run of this config saved")
        self.accelerator.load_state(str(path))
        self.state = LoopState(**json.loads(state_file.read_text(encoding="utf-8")))
        if self.state.batches_done >= len(self.train_loader):  # saved at an epoch's end
            self.state.epoch += 1
            self.state.batches_done = 0
        self.saved_at = self.state.global_step
        self.timer.sample(self.state.global_step)  # throughput counts from here, not from step 0

    # -- the end -------------------------------------------------------------------------------------------------
    def _finish(self) -> EngineResult:
        self.watch.check(self.accelerator.device)  # the steps since the last log, evaluation or save
        s = self.state
        metrics, predictions = final_validation(self, "validation" in self.eval_loaders)
        test_metrics = None
        if "test" in self.eval_loaders:
            test_metrics = self.evaluate("test")
            predictions["test"] = self.logits["test"][1]
            self._emit("eval", step=s.global_step, epoch=round(self._epoch_now(), 4), split="test",
                       metrics=test_metrics)
        self.accelerator.wait_for_everyone()
        final = self.accelerator.unwrap_model(self.model)
        if self.t.fsdp:  # every process hands over its shards; the main one saves the whole model
            from core.engines.fsdp import gathered_model

            final = gathered_model(self.accelerator, self.model,
                                   lambda: build_model(self.cfg, self.ctx.prepared.label_names))
        if self.accelerator.is_main_process:
            save_final_model(final, self.ctx.tokenizer, self.ctx.run_dir.model_dir, self.ctx.prepared)
        last = max(checkpoints(self.ctx.run_dir.checkpoints_dir), key=step_of, default=None)
        if (self.t.save_total_limit == 1 and s.best_checkpoint and last is not None
                and last != Path(s.best_checkpoint) and self.accelerator.is_main_process):
            shutil.rmtree(last, ignore_errors=True)  # as Trainer: a limit of 1 keeps just the best model at the end
            last = Path(s.best_checkpoint)
        return EngineResult(metrics=metrics, test_metrics=test_metrics, last_checkpoint=str(last) if last else None,
                            predictions=predictions)

    def _epoch_now(self) -> float:
        return self.state.epoch + self.state.batches_done / max(len(self.train_loader), 1)

    def _load_weights(self, path: Path) -> None:
        if self.t.fsdp:  # the checkpoint holds the FSDP state (pytorch_model_fsdp.bin), each process loads its shard
            self.accelerator.load_state(str(path))
            return
        from safetensors.torch import load_file

        weights = path / "model.safetensors"
        self.accelerator.unwrap_model(self.model).load_state_dict(load_file(str(weights)))

    def _emit(self, kind: str, **fields: Any) -> None:
        if self.accelerator.is_main_process:
            self.ctx.events.emit(kind, **fields)


def make_optimizer(model: Any, weight_decay: float, lr: float) -> Any:
    """AdamW over the trainable parameters, with weight decay on all but biases and normalisation weights."""
    import torch

    decay = set(_decay_parameter_names(model))
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return torch.optim.AdamW(
        [{"params": [p for n, p in params if n in decay], "weight_decay": weight_decay},
         {"params": [p for n, p in params if n not in decay], "weight_decay": 0.0}],
        lr=lr,
    )


def _decay_parameter_names(model: Any) -> list[str]:
    """Parameters that get weight decay: all but biases and normalisation weights (Trainer's rule)."""
    from torch import nn
    from transformers.trainer_pt_utils import get_parameter_names

    forbidden = [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]
    return list(get_parameter_names(model, [nn.LayerNorm], forbidden))


def final_validation(run: Any, has_validation: bool) -> tuple[dict[str, float], dict[str, Any]]:
    """The final model's validation metrics and {"validation": logits}, for torch-loop and keras alike.

    The evaluation that measured the final model (the last one, or the best checkpoint's with early stopping, whose
    weights are loaded here) already has both: a new pass is made only when it is gone, e.g. made before a resume."""
    s = run.state
    if run.early and s.best_checkpoint and Path(s.best_checkpoint).is_dir():
        run._load_weights(Path(s.best_checkpoint))
        metrics = json.loads((Path(s.best_checkpoint) / STATE_FILE).read_text(encoding="utf-8"))["last_eval"]
        logits, step = run.best_logits, step_of(Path(s.best_checkpoint))
    elif has_validation:
        metrics, logits, step = s.last_eval, run.logits.get("validation"), s.global_step
        if s.last_eval_step != s.global_step:
            logits = None
    else:
        return {}, {}
    if logits is None or logits[0] != step:
        metrics = run.evaluate("validation")
        logits = run.logits["validation"]
    return metrics, {"validation": logits[1]}


def checkpoints(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return [p for p in directory.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]


def step_of(path: Path) -> int:
    return int(path.name.split("-")[-1])


def rotate_checkpoints(directory: Path, limit: int | None, best: str | None) -> None:
    """Keep the newest `limit` checkpoints, and always the best one (as Trainer does)."""
    if limit is None:
        return
    ordered = sorted(checkpoints(directory), key=step_of)
    keep = set(ordered[-limit:])
    if best:
        keep.add(Path(best))
    for path in ordered:
        if path not in keep:
            shutil.rmtree(path, ignore_errors=True)
