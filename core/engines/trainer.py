"""The `trainer` engine: Hugging Face Trainer + TrainingArguments, events through a callback."""

from __future__ import annotations

from typing import Any

from core.engines.base import (
    DivergenceWatch,
    EngineResult,
    RunContext,
    StepTimer,
    agree_to_stop,
    class_weights,
    emit_samples,
    is_main_process,
    strip_prefix,
)
from core.engines.hf_model import build_model, save_final_model
from core.engines.sampling import input_lengths, seeded_length_grouped_sampler
from core.engines.trainer_trackers import TrainerTrackers
from core.metrics import greater_is_better
from core.tasks import get_task
from core.tokenization import make_collator


def training_arguments(ctx: RunContext) -> Any:
    """TrainingArguments (or the task's subclass of them, Task.trainer_classes) from the config. Names differ only
    where transformers 5 renamed them."""
    _, arguments_class, extra = get_task(ctx.config.task).trainer_classes()
    t = ctx.config.training
    primary = t.metric_for_best_model or ctx.config.metrics[0]
    early = t.early_stopping_patience is not None
    return arguments_class(
        **extra,
        output_dir=str(ctx.run_dir.checkpoints_dir),
        num_train_epochs=t.num_train_epochs,
        max_steps=t.max_steps,
        learning_rate=t.learning_rate,
        per_device_train_batch_size=t.per_device_train_batch_size,
        per_device_eval_batch_size=t.per_device_eval_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        weight_decay=t.weight_decay,
        warmup_steps=t.warmup_ratio,  # transformers 5 takes the ratio as a float warmup_steps
        lr_scheduler_type=t.lr_scheduler_type,
        max_grad_norm=t.max_grad_norm,
        fp16=t.mixed_precision == "fp16",
        bf16=t.mixed_precision == "bf16",
        eval_strategy=t.eval_strategy,
        eval_steps=t.eval_steps,
        # Early stopping keeps the best model, which Trainer allows only when saves line up with evaluations.
        save_strategy=t.eval_strategy if early else t.save_strategy,
        save_steps=t.eval_steps if early else t.save_steps,
        save_total_limit=t.save_total_limit,
        load_best_model_at_end=early,
        metric_for_best_model=f"eval_{primary}" if early else None,
        greater_is_better=greater_is_better(primary) if early else None,
        logging_steps=t.logging_steps,
        # The filter swaps a NaN step loss for the window's finite mean, so the logs would hide a divergence; it also
        # syncs the host on every batch. DivergenceWatch sees each step's raw loss instead.
        logging_nan_inf_filter=False,
        train_sampling_strategy="group_by_length" if t.group_by_length else "random",
        seed=t.seed,
        data_seed=t.seed,
        report_to="none",  # training.report_to goes through core.engines.trainer_trackers, after our callback
        run_name=ctx.run_dir.path.name,
        disable_tqdm=True,
        use_cpu=ctx.device == "cpu",
        dataloader_num_workers=0,
        include_num_input_tokens_seen="non_padding",  # tokens/s and MFU in the monitor
        # A task that keeps no outputs (a language model's are vocabulary-sized per token) is evaluated by its loss.
        prediction_loss_only=not get_task(ctx.config.task).keeps_outputs,
        **_fsdp_arguments(t.fsdp),
    )


def _fsdp_arguments(fsdp: bool) -> dict[str, Any]:
    """TrainingArguments' FSDP2 settings for training.fsdp (core.engines.fsdp), or none."""
    from core.engines.fsdp import TRAINER_CONFIG

    return {"fsdp": True, "fsdp_config": dict(TRAINER_CONFIG)} if fsdp else {}


def examples_per_step(args: Any) -> int:
    """Examples one optimizer step trains on across the whole run, so samples/s is the global rate the other engines
    report: every torchrun process (world_size) and every GPU one process drives (train_batch_size counts them)."""
    return args.train_batch_size * args.gradient_accumulation_steps * args.world_size


class _EventsCallback:
    """Turns Trainer's logs into events, and the stop request into a clean, checkpointed stop."""

    def __init__(self, ctx: RunContext, examples_per_step: int) -> None:
        self.ctx = ctx
        self.timer = StepTimer(examples_per_step)
        self.stopped_at: int | None = None
        self.save_at_epoch_end = False
        self.keeper: _LogitsKeeper | None = None
        # step -> (metrics, logits) of the validation evaluations the final model may come from: the latest and
        # the best so far (load_best_model_at_end), so the end of the run needs no second pass over the data.
        self.evaluations: dict[int, tuple[dict[str, float], Any]] = {}

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **_: Any) -> None:
        logs = logs or {}
        if "loss" in logs:
            rate, elapsed = self.timer.sample(state.global_step)
            tokens = self.timer.tokens_per_second(getattr(state, "num_input_tokens_seen", None))
            self.ctx.events.emit(
                "step", step=state.global_step, total_steps=state.max_steps, epoch=round(state.epoch or 0, 4),
                loss=logs["loss"], learning_rate=logs.get("learning_rate"), grad_norm=logs.get("grad_norm"),
                samples_per_second=rate, tokens_per_second=tokens, elapsed_s=elapsed,
            )
            if rate is not None:  # for the tracker callbacks after this one (core.engines.trainer_trackers)
                logs["samples_per_second"] = rate

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, Any] | None = None, **_: Any) -> None:
        metrics = metrics or {}
        split = "test" if any(k.startswith("test_") for k in metrics) else "validation"
        stripped = _metrics(metrics, f"{'test' if split == 'test' else 'eval'}_")
        self.ctx.events.emit("eval", step=state.global_step, epoch=round(state.epoch or 0, 4), split=split,
                             metrics=stripped)
        if split == "validation":
            # best_global_step is updated after this callback: the previous best stays until this one beats it.
            keep = {state.global_step, state.best_global_step}
            self.evaluations = {k: v for k, v in self.evaluations.items() if k in keep}
            self.evaluations[state.global_step] = (stripped, self.keeper.take() if self.keeper else None)
            model = _.get("model")
            if model is not None and is_main_process():
                emit_samples(self.ctx, model, state.global_step)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if args.fsdp and is_main_process():  # the model is wrapped by now
            from core.engines.fsdp import confirm_sharded

            confirm_sharded(kwargs["model"], args.world_size)

    def on_save(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        path = self.ctx.run_dir.checkpoints_dir / f"checkpoint-{state.global_step}"
        self.ctx.events.emit("checkpoint", step=state.global_step, path=str(path))

    def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        if self.stopped_at is None and agree_to_stop(self.ctx.stop_requested(), args.device):
            self.stopped_at = state.global_step
            control.should_training_stop = True
            if float(state.epoch or 0).is_integer():
                # The epoch's last step: its evaluation follows this step's save, and iterating the evaluation
                # loader draws from the RNG that dropout draws from, so a checkpoint saved now would resume the next
                # epoch with other dropout masks than an uninterrupted run. Saved after that evaluation instead.
                self.save_at_epoch_end = True
            else:
                control.should_save = True

    def on_epoch_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        if self.save_at_epoch_end:
            control.should_save = True


def train(ctx: RunContext) -> EngineResult:
    from transformers import EarlyStoppingCallback, TrainerCallback

    cfg = ctx.config
    model = build_model(cfg, ctx.prepared.label_names)
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = ctx.tokenizer.pad_token_id  # GPT-2 style: load_tokenizer padded with EOS
    args = training_arguments(ctx)
    events_cb = _EventsCallback(ctx, examples_per_step(args))
    watch = DivergenceWatch(cfg.training)
    callbacks: list[Any] = [_as_trainer_callback(events_cb, TrainerCallback)]
    if cfg.training.early_stopping_patience is not None:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.training.early_stopping_patience))
    trackers = TrainerTrackers(cfg.training.report_to, ctx.run_dir.path) if is_main_process() else None
    if trackers is not None:
        callbacks += trackers.callbacks
    outcome = "failed"
    try:
        result = _train(ctx, args, events_cb, watch, callbacks, model, trackers)
        outcome = "stopped" if result.stopped else "finished"
        return result
    finally:
        if trackers is not None:
            trackers.close(outcome)


def _train(ctx: RunContext, args: Any, events_cb: _EventsCallback, watch: DivergenceWatch, callbacks: list[Any],
           model: Any, trackers: TrainerTrackers | None) -> EngineResult:
    cfg = ctx.config
    has_eval = "validation" in ctx.tokenized
    task = get_task(cfg.task).for_run(cfg)  # e.g. multi-label's decision threshold in its metrics
    if task.keeps_outputs:
        events_cb.keeper = _LogitsKeeper(
            task, lambda outputs, labels: task.compute_metrics(outputs, labels, cfg.metrics, ctx.prepared))
    trainer = _trainer_class(task.trainer_classes()[0])(
        model=model,
        args=args,
        train_dataset=ctx.tokenized["train"],
        eval_dataset=ctx.tokenized["validation"] if has_eval else None,
        processing_class=ctx.tokenizer,
        data_collator=make_collator(ctx.tokenizer, task),
        compute_metrics=events_cb.keeper,
        callbacks=callbacks,
        class_weights=class_weights(ctx),
        weighted_loss=task.torch_loss,
        watch=watch,
        loss_metrics=task.metrics_from_loss,
    )
    trainer.train(resume_from_checkpoint=str(ctx.resume_from) if ctx.resume_from else None)
    watch.check(args.device)  # the steps since the last log, evaluation or save: never a NaN model saved as final
    if events_cb.stopped_at is not None:
        last = _last_checkpoint(ctx)
        return EngineResult(metrics={}, stopped=True, last_checkpoint=last)

    metrics: dict[str, float] = {}
    predictions: dict[str, Any] = {}
    if has_eval:
        state = trainer.state
        final_step = state.best_global_step if args.load_best_model_at_end and state.best_model_checkpoint else None
        measured = events_cb.evaluations.get(final_step or state.global_step)
        if measured is None:  # not evaluated at the end (eval_strategy steps or no), or only before a resume
            output = trainer.predict(ctx.tokenized["validation"], metric_key_prefix="eval")
            measured = _metrics(output.metrics, "eval_"), _outputs(task, output)
        metrics, predictions["validation"] = measured
    test_metrics = None
    if "test" in ctx.tokenized:
        # predict(), unlike evaluate(), returns the logits: the test split is passed over once, for both.
        output = trainer.predict(ctx.tokenized["test"], metric_key_prefix="test")
        test_metrics, predictions["test"] = _metrics(output.metrics, "test_"), _outputs(task, output)
        ctx.events.emit("eval", step=trainer.state.global_step, epoch=round(trainer.state.epoch or 0, 4),
                        split="test", metrics=test_metrics)
        if trackers is not None and trackers.inner:
            trainer.log(output.metrics)  # predict() logs nothing; the trackers get test/… as they got eval/…
    final = trainer.model
    if cfg.training.fsdp:  # every process hands over its shards; the main one saves the whole model
        from core.engines.fsdp import gathered_model

        final = gathered_model(trainer.accelerator, trainer.model,
                               lambda: build_model(cfg, ctx.prepared.label_names))
    if is_main_process():
        save_final_model(final, ctx.tokenizer, ctx.run_dir.model_dir, ctx.prepared)
    return EngineResult(metrics=metrics, test_metrics=test_metrics, last_checkpoint=_last_checkpoint(ctx),
                        predictions=predictions)


# What TRL's SFTTrainer adds to every evaluation's metrics: the other engines report none of them, and runs must
# compare across engines (num_tokens is a count of training tokens, not a measure of the model).
_SFT_EXTRAS = ("entropy", "mean_token_accuracy", "num_tokens")


def _metrics(metrics: dict[str, Any], prefix: str) -> dict[str, float]:
    return {k: v for k, v in strip_prefix(metrics, prefix).items() if k not in _SFT_EXTRAS}


def _logits(predictions: Any) -> Any:
    """A model that returns more than logits gives Trainer a tuple; the logits come first."""
    return predictions[0] if isinstance(predictions, tuple) else predictions


def _outputs(task: Any, output: Any) -> Any:
    """A prediction's outputs as the task reads them (Task.gather_outputs); None for a task that keeps none."""
    if output.predictions is None:
        return None
    return task.gather_outputs(_logits(output.predictions), output.label_ids)[0]


class _LogitsKeeper:
    """Trainer's compute_metrics, keeping the outputs it was given for the evaluation report (Trainer's evaluate()
    returns only the metrics), as the task reads them (Task.gather_outputs)."""

    def __init__(self, task: Any, compute: Any) -> None:
        self.task = task
        self.compute = compute
        self._latest: Any = None

    def __call__(self, eval_pred: Any) -> dict[str, float]:
        outputs, labels = self.task.gather_outputs(_logits(eval_pred.predictions), eval_pred.label_ids)
        self._latest = outputs
        return self.compute(outputs, labels)

    def reorder(self, rows: Any) -> None:
        """The logits just kept were in evaluation order: put them in the split's row order."""
        if self._latest is not None and len(self._latest) == len(rows):
            self._latest = self._latest[rows]

    def take(self) -> Any:
        latest, self._latest = self._latest, None
        return latest


def _trainer_class(base: type) -> type:
    """Trainer whose length grouping is seeded per epoch, so a resumed run sees the same order (see sampling.py),
    whose loss is the mean over the combined batch however it is split into accumulation steps and processes,
    whose training loss takes training.class_weights (the task's weighted loss), and which
    hands each step's raw loss and gradient norm to a DivergenceWatch."""

    class SeededTrainer(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, class_weights: list[float] | None = None, weighted_loss: Any = None,
                     watch: DivergenceWatch | None = None, loss_metrics: Any = None, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.class_weights = class_weights
            self.weighted_loss = weighted_loss
            self.watch = watch
            self.loss_metrics = loss_metrics
            self._weight_tensor: Any = None
            # Trainer takes a forward(**kwargs) as a sign that the model divides its loss by num_items_in_batch, and
            # then neither divides by gradient_accumulation_steps nor undoes the processes' averaging. The
            # *ForSequenceClassification heads take **kwargs but return a plain mean, so left alone the logged loss
            # and the gradients are gradient_accumulation_steps x num_processes too large (transformers 5).
            self.model_accepts_loss_kwargs = False

        def create_accelerator_and_postprocess(self) -> None:
            super().create_accelerator_and_postprocess()
            if self.args.fsdp and not self.is_fsdp_enabled:  # a CPU run, where Accelerate would train DDP instead
                from accelerate.utils import FullyShardedDataParallelPlugin

                from core.engines.fsdp import force_on_cpu

                plugin = FullyShardedDataParallelPlugin(**self.args.fsdp_plugin_args)
                if self.args.bf16:
                    plugin.set_mixed_precision("bf16")
                force_on_cpu(self.accelerator, plugin)
                self.is_fsdp_enabled = True

        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            # Evaluation (model.eval()) keeps the model's own unweighted loss, as the other engines evaluate.
            if self.class_weights is None or not model.training:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            import torch

            outputs = model(**{k: v for k, v in inputs.items() if k != "labels"})  # a copy: Trainer reads labels later
            logits = outputs["logits"]
            if self._weight_tensor is None or self._weight_tensor.device != logits.device:
                self._weight_tensor = torch.tensor(self.class_weights, dtype=torch.float32, device=logits.device)
            loss = self.weighted_loss(logits, inputs["labels"], self._weight_tensor)
            return (loss, outputs) if return_outputs else loss

        def training_step(self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> Any:
            loss = super().training_step(model, inputs, num_items_in_batch)
            if self.watch is not None:  # the raw batch loss, before logging_nan_inf_filter could replace it
                self.watch.observe(self.state.global_step + 1, loss)
            return loss

        def _maybe_log_save_evaluate(self, tr_loss: Any, grad_norm: Any, *args: Any, **kwargs: Any) -> None:
            # Called after every optimizer step, with that step's gradient norm (computed even without clipping).
            if self.watch is not None:
                if not self.accelerator.optimizer_step_was_skipped:  # fp16 overflow: the scaler skipped the step
                    self.watch.observe(self.state.global_step, grad_norm, "gradient norm")
                # Before anything is logged, evaluated or saved; the flags are the same on every process.
                if self.control.should_log or self.control.should_evaluate or self.control.should_save:
                    self.watch.check(self.args.device)
            super()._maybe_log_save_evaluate(tr_loss, grad_norm, *args, **kwargs)

        def _get_eval_sampler(self, eval_dataset: Any) -> Any:
            # With group_by_length Trainer also evaluates in a length-grouped order, so the outputs it hands
            # compute_metrics (and predict() returns) are not in the split's row order, which the evaluation report
            # and the kept logits need. Longest first pads as little (each batch's rows are alike in length); the
            # order is undone in evaluation_loop.
            self._eval_order = None
            if self.args.train_sampling_strategy != "group_by_length" or eval_dataset is None:
                return super()._get_eval_sampler(eval_dataset)
            import numpy as np

            self._eval_order = np.argsort(-input_lengths(eval_dataset), kind="stable")
            return self._eval_order.tolist()

        def evaluation_loop(self, *args: Any, **kwargs: Any) -> Any:
            order = getattr(self, "_eval_order", None)  # set as the dataloader was made, just before this
            output = super().evaluation_loop(*args, **kwargs)
            prefix = kwargs.get("metric_key_prefix", args[4] if len(args) > 4 else "eval")
            loss = output.metrics.get(f"{prefix}_loss")
            if self.loss_metrics is not None and loss is not None:  # e.g. perplexity, where the logged metrics are
                output.metrics.update({f"{prefix}_{k}": v for k, v in self.loss_metrics(float(loss)).items()})
            if order is None or output.predictions is None:
                return output
            import numpy as np

            rows = np.empty_like(order)
            rows[order] = np.arange(len(order))  # row i of the split was evaluated at position rows[i]

            def in_row_order(value: Any) -> Any:
                if isinstance(value, tuple | list):
                    return type(value)(in_row_order(v) for v in value)
                return value[rows] if value is not None and len(value) == len(rows) else value

            if isinstance(self.compute_metrics, _LogitsKeeper):
                self.compute_metrics.reorder(rows)
            return type(output)(predictions=in_row_order(output.predictions),
                                label_ids=in_row_order(output.label_ids), metrics=output.metrics,
                                num_samples=output.num_samples)

        def _get_train_sampler(self, train_dataset: Any = None) -> Any:
            dataset = train_dataset if train_dataset is not None else self.train_dataset
            if self.args.train_sampling_strategy != "group_by_length" or dataset is None:
                return super()._get_train_sampler(train_dataset)
            batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
            return seeded_length_grouped_sampler(input_lengths(dataset), batch, self.args.seed)

    return SeededTrainer


def _as_trainer_callback(cb: _EventsCallback, base: type) -> Any:
    """Wrap our callback in TrainerCallback late, so importing this module does not import transformers."""

    class Adapter(base):  # type: ignore[misc, valid-type]
        def on_train_begin(self, *a: Any, **k: Any) -> None:
            cb.on_train_begin(*a, **k)

        def on_log(self, *a: Any, **k: Any) -> None:
            cb.on_log(*a, **k)

        def on_evaluate(self, *a: Any, **k: Any) -> None:
            cb.on_evaluate(*a, **k)

        def on_save(self, *a: Any, **k: Any) -> None:
            cb.on_save(*a, **k)

        def on_step_end(self, *a: Any, **k: Any) -> None:
            cb.on_step_end(*a, **k)

        def on_epoch_end(self, *a: Any, **k: Any) -> None:
            cb.on_epoch_end(*a, **k)

    return Adapter()


def _last_checkpoint(ctx: RunContext) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    d = ctx.run_dir.checkpoints_dir
    return get_last_checkpoint(str(d)) if d.is_dir() else None
