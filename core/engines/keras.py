"""The `keras` engine: Keras 3 on TensorFlow, with the backbone converted from the same checkpoint by KerasHub.

`model.fit` trains; a callback (keras_callbacks.EventsCallback) hands every batch and epoch boundary to this
module, which keeps Trainer's schedule of logging, evaluating and saving, so the events match the PyTorch engines'
for the same config. What is the same as there: the tokenized rows and padding (keras_data), the data order, the
learning-rate curve (transformers' get_scheduler, as a table), AdamW without decay on biases and LayerNorm,
clipping by global norm, gradient accumulation, the class-weighted loss (training.class_weights), evaluation with
the same metrics code, checkpoints named checkpoint-<step>, early stopping that keeps the best model. What differs:
grad_norm is not reported (null), and under gradient accumulation Keras carries an incomplete group of batches over
into the next epoch instead of updating at the epoch's end, so the last step may fall a little short of total_steps.

The result directory holds model.keras, the tokenizer, labels.json, task.json and keras_model.json (see
core.predict); a task with a format of its own writes that instead (text-generation: transformers format, through
core.engines.keras_export). A task that keeps no outputs (text-generation) is evaluated by its loss alone, and after
each validation evaluation its samples are written, as on the PyTorch engines.
"""

from __future__ import annotations

import contextlib
import json
import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.config import RunConfig
from core.engines.base import (
    PAD_LABEL,
    DivergenceWatch,
    EngineResult,
    RunContext,
    StepTimer,
    class_weights,
    data_parallel_size,
    emit_samples,
    total_steps,
)
from core.engines.keras_convert import (
    build_model,
    check_convertible,
    checkpoint_dir,
    enable_lora,
    import_keras,
    input_names,
    require_packages,
)
from core.engines.torch_loop import (
    STATE_FILE,
    LoopState,
    checkpoints,
    final_validation,
    lr_lambda,
    rotate_checkpoints,
    step_of,
)
from core.errors import ConfigError, RunDirError
from core.predict import KERAS_FORMAT, KERAS_FORMAT_FILE, KERAS_MODEL_FILE, LABELS_FILE
from core.tasks.model_meta import write_meta

POLICIES = {"no": "float32", "fp16": "mixed_float16", "bf16": "mixed_bfloat16"}
LORA_FILE = "lora.npz"  # a checkpoint's LoRA adapters and unmerged kernels, which the .keras file does not keep


@dataclass
class KerasState(LoopState):
    batches_total: int = 0  # Keras's own count of batches (optimizer steps x accumulation, plus a partial group)
    step_loss: float = 0.0  # losses of the batches of an optimizer step in progress
    step_batches: int = 0
    seed_states: list[list[int]] = field(default_factory=list)  # the dropout layers' random states


def precheck(config: RunConfig) -> None:
    """The engine's check of a config before a run is made, cheap (no TensorFlow): the replicas, and a model type it
    does not convert for the task."""
    check_replicas(config)
    check_convertible(config, cheap=True)


def check_replicas(config: RunConfig) -> None:
    """Refuse what MirroredStrategy cannot run."""
    replicas = data_parallel_size(config)
    if replicas > 1 and config.training.gradient_accumulation_steps > 1:
        # Keras's own accumulation syncs replicas inside a conditional, which MirroredStrategy cannot run.
        raise ConfigError(
            f"the keras engine cannot combine {replicas} replicas (training.num_processes) with "
            f"training.gradient_accumulation_steps {config.training.gradient_accumulation_steps}",
            "set gradient_accumulation_steps: 1 and raise per_device_train_batch_size, or num_processes: 1",
        )


def preflight(config: RunConfig) -> None:
    """Everything that can refuse a keras run before data is loaded: packages, architecture, precision."""
    require_packages()
    check_convertible(config)
    check_replicas(config)
    if config.training.mixed_precision != "no" and not _tf_gpus():
        raise ConfigError(
            f"training.mixed_precision is {config.training.mixed_precision}, but TensorFlow sees no GPU here",
            "set training.mixed_precision: no; on a GPU machine install TensorFlow's CUDA build "
            '(pip install "tensorflow[and-cuda]")',
        )


def _tf_gpus() -> list[Any]:
    import_keras()
    import tensorflow as tf

    return list(tf.config.list_physical_devices("GPU"))


def _distribution(replicas: int) -> Any | None:
    """MirroredStrategy over `replicas` devices, or None for one. The devices are the first GPUs TensorFlow sees;
    on a machine without a GPU, the CPU split into that many logical devices, as the PyTorch engines run CPU
    processes with gloo: it gives the same results as one device with the combined batch, not more speed."""
    if replicas == 1:
        return None
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        if len(gpus) < replicas:
            raise ConfigError(f"training.num_processes is {replicas}, but TensorFlow sees {len(gpus)} GPU(s)",
                              f"set training.num_processes to {len(gpus)} or fewer, or null to use every GPU")
        devices = [f"/gpu:{i}" for i in range(replicas)]
    else:
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
        except RuntimeError as err:  # TensorFlow already started in this process, with its devices fixed
            if len(tf.config.list_logical_devices("CPU")) < replicas:
                raise ConfigError(f"cannot split the CPU into {replicas} devices once TensorFlow has started: {err}",
                                  "start the run in a fresh process (finetune-tui run CONFIG)") from err
        devices = [f"/cpu:{i}" for i in range(replicas)]
    print(f"keras: MirroredStrategy over {', '.join(devices)}", flush=True)
    return tf.distribute.MirroredStrategy(devices=devices)


def train(ctx: RunContext) -> EngineResult:
    preflight(ctx.config)
    keras = import_keras()
    try:
        return _KerasRun(ctx).run()
    finally:
        keras.config.set_dtype_policy("float32")  # the policy is global: leave none behind for the next model


class _KerasRun:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.cfg = ctx.config
        self.t = ctx.config.training
        self.primary = self.t.metric_for_best_model or self.cfg.metrics[0]
        self.early = self.t.early_stopping_patience is not None
        self.save_strategy = self.t.eval_strategy if self.early else self.t.save_strategy
        self.save_steps = self.t.eval_steps if self.early else self.t.save_steps
        self.accumulation = self.t.gradient_accumulation_steps
        self.state = KerasState()
        self.saved_at: int | None = None
        self.logits: dict[str, tuple[int, Any]] = {}  # split -> (step, logits) of its latest evaluation
        self.best_logits: tuple[int, Any] | None = None  # the validation logits of the best checkpoint's step
        self.watch = DivergenceWatch(self.t)  # one process, even with replicas: a NaN step fails at once
        self.stopped = False
        self.done = False
        self.skip = 0  # batches of the first epoch a resumed run has already trained on
        self.tokens = 0  # non-padding tokens trained on, for tokens/s
        self.epoch_tokens: list[int] = []

    # -- set-up --------------------------------------------------------------------------------------------------
    def _setup(self) -> None:
        keras = import_keras()
        import tensorflow as tf

        from core.engines import keras_callbacks as kc
        from core.engines.keras_data import Batches, TrainPlan, eval_dataset
        from core.tasks import get_task

        ctx, t = self.ctx, self.t
        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)  # leave GPU memory to others until it is needed
        if ctx.device == "cuda" and not tf.config.list_physical_devices("GPU"):
            print('warning: PyTorch sees a GPU but TensorFlow does not; the keras engine trains on the CPU. '
                  'Install TensorFlow\'s CUDA build: pip install "tensorflow[and-cuda]"', flush=True)
        self.task = get_task(self.cfg.task).for_run(self.cfg)
        self.class_weights = class_weights(ctx)
        self.replicas = data_parallel_size(self.cfg)
        self.strategy = _distribution(self.replicas)
        # The PyTorch engines' batch per process is this engine's batch per replica: the global batch is the same.
        batch = t.per_device_train_batch_size * self.replicas
        keras.utils.set_random_seed(t.seed)
        keras.config.set_dtype_policy(POLICIES[t.mixed_precision])
        n_train = len(ctx.tokenized["train"])
        self.total = total_steps(self.cfg, n_train)
        self.lr_table = [t.learning_rate * lr_lambda(self.cfg, self.total)(i) for i in range(self.total + 1)]

        # Variables made under the strategy's scope are mirrored on every replica; fit() then splits each batch.
        with self.strategy.scope() if self.strategy is not None else contextlib.nullcontext():
            self.model = self._build(keras, kc)
            if ctx.resume_from is not None:
                self._load_checkpoint(Path(ctx.resume_from))
        self.inputs = input_names(self.model)
        train = Batches(ctx.tokenized["train"], ctx.tokenizer, self.inputs, self.task)
        self.plan = TrainPlan(train, batch, t.seed, t.group_by_length, batch * self.accumulation)
        self.eval_sets = {}
        for split in ("validation", "test"):
            if split in ctx.tokenized:
                batches = Batches(ctx.tokenized[split], ctx.tokenizer, self.inputs, self.task)
                # A task that keeps no outputs is scored by its loss alone: no references to score outputs with.
                references = self.task.references(list(ctx.tokenized[split]["labels"])) if self.task.keeps_outputs \
                    else None
                self.eval_sets[split] = (eval_dataset(batches, t.per_device_eval_batch_size * self.replicas),
                                         references)
        self.timer = StepTimer(batch * self.accumulation)
        if ctx.resume_from is not None:
            self.timer.sample(self.state.global_step)
        self.callback = kc.EventsCallback(self)

    def _build(self, keras: Any, kc: Any) -> Any:
        t = self.t
        self.source = checkpoint_dir(self.cfg)
        model, backbone = build_model(self.source, self.task.num_outputs(self.ctx.prepared), self.task)
        if t.freeze_encoder:
            backbone.trainable = False
        if t.lora is not None:
            adapted = enable_lora(backbone, t.lora.r, t.lora.alpha, t.lora.target_modules,
                                  decoder=self.task.keras_kind == "causal_lm")
            trainable = sum(int(np.prod(v.shape)) for v in backbone.trainable_weights)
            print(f"LoRA rank {t.lora.r} on {adapted} layers, {trainable:,} trainable parameters in the backbone. "
                  "Keras LoRA is not peft's: on an attention projection each head has its own A matrix (all heads "
                  "share B), so the same rank trains more parameters than peft's; and it has no dropout "
                  "(lora.dropout is not used)", flush=True)
        optimizer = keras.optimizers.AdamW(
            learning_rate=kc.TableSchedule(self.lr_table, self.accumulation),
            weight_decay=t.weight_decay, beta_1=0.9, beta_2=0.999, epsilon=1e-8,  # torch.optim.AdamW's defaults
            global_clipnorm=t.max_grad_norm if t.max_grad_norm > 0 else None,
            gradient_accumulation_steps=self.accumulation if self.accumulation > 1 else None,
        )
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])  # LayerNorm's are gamma/beta
        # No XLA: batches padded per batch change shape, and XLA would recompile for each shape.
        # weighted_metrics=[]: KerasHub's tasks would add an accuracy metric ("auto") that nothing reads.
        model.compile(optimizer=optimizer, loss=self.task.keras_loss(keras, self.class_weights),
                      metrics=[kc.BatchLoss(task=self.task.name, class_weights=self.class_weights)],
                      weighted_metrics=[], jit_compile=False)
        return model

    def _load_checkpoint(self, path: Path) -> None:
        """Weights, optimizer state (moments, step count, accumulated gradients) and the loop's own state.

        Into the model just built from the config, not through load_model: KerasHub's classifiers override
        compile(), so a loaded one would not get this run's optimizer back."""
        state_file = path / STATE_FILE
        if not state_file.exists() or not (path / KERAS_MODEL_FILE).exists():
            raise RunDirError(f"{path} is not a keras checkpoint (no {KERAS_MODEL_FILE} and {STATE_FILE} in it)",
                              "resume from a checkpoint that a keras run of this config saved")
        self.model.optimizer.build(self.model.trainable_variables)  # its variables must exist to be filled
        self._load_weights(path)
        self.state = KerasState(**json.loads(state_file.read_text(encoding="utf-8")))
        generators = _seed_generators(self.model)
        if len(generators) == len(self.state.seed_states):  # the same dropout masks as an uninterrupted run
            for generator, value in zip(generators, self.state.seed_states, strict=True):
                generator.state.assign(np.asarray(value, dtype=generator.state.dtype))
        self.saved_at = self.state.global_step
        self.skip = self.state.batches_done

    def _load_weights(self, path: Path) -> None:
        self.model.load_weights(str(path / KERAS_MODEL_FILE))
        lora = _lora_variables(self.model)
        if lora:  # Keras saves LoRA layers merged and zeroes the adapters on load: put the adapters back as they were
            with np.load(path / LORA_FILE) as saved:
                for variable, key in zip(lora, sorted(saved.files, key=lambda k: int(k.split("_")[1])), strict=True):
                    variable.assign(saved[key])

    # -- the run -------------------------------------------------------------------------------------------------
    def run(self) -> EngineResult:
        self._setup()
        s = self.state
        if s.batches_done >= len(self.plan):  # saved at an epoch's end
            s.epoch, s.batches_done, self.skip = s.epoch + 1, 0, 0
        # Enough epochs for total_steps optimizer steps; the callback stops at total_steps.
        epochs = math.ceil(self.total * self.accumulation / len(self.plan))
        self.done = s.global_step >= self.total or self._patience_spent()  # spent by the evaluation of a stop
        if self.skip and not self.done:  # the rest of the epoch the checkpoint was saved in, on its own
            self._fit(self.plan.dataset(self.skip), s.epoch + 1)
        if not self.done and s.epoch < epochs:
            self._fit(self.plan.dataset(), epochs)
        if self.stopped:
            return EngineResult(metrics={}, stopped=True, last_checkpoint=str(self._save()))
        return self._finish()

    def _fit(self, dataset: Any, epochs: int) -> None:
        # shuffle=False: the plan has already shuffled (or grouped) the batches, the same way as torch-loop.
        self.model.fit(dataset, epochs=epochs, initial_epoch=self.state.epoch, callbacks=[self.callback],
                       shuffle=False, verbose=0)

    def epoch_begin(self, epoch: int) -> None:
        self.state.epoch = epoch
        self.state.batches_done = self.skip
        self.plan.epoch = epoch
        self.skip = 0
        self.epoch_tokens = self.plan.batch_tokens(epoch)

    def batch_end(self, batch_loss: float) -> bool:
        """After each batch; True stops training."""
        s = self.state
        self.tokens += self.epoch_tokens[min(s.batches_done, len(self.epoch_tokens) - 1)]
        s.batches_done += 1
        s.batches_total += 1
        s.step_loss += batch_loss
        s.step_batches += 1
        if s.batches_total % self.accumulation:
            return False
        s.global_step += 1
        s.window_loss += s.step_loss / s.step_batches
        s.window_steps += 1
        self.watch.observe(s.global_step, s.step_loss / s.step_batches)
        s.step_loss, s.step_batches = 0.0, 0
        at_end = s.global_step >= self.total
        steps_eval = self.t.eval_strategy == "steps" and (s.global_step % self.t.eval_steps == 0 or at_end)
        steps_save = self.save_strategy == "steps" and (s.global_step % self.save_steps == 0 or at_end)
        self._log_eval_save(s.global_step % self.t.logging_steps == 0, steps_eval, steps_save, self._epoch_now())
        if self.ctx.stop_requested():
            self.stopped = self.done = True
        self.done = self.done or at_end or self._patience_spent()
        return self.done

    def epoch_end(self, epoch: int) -> bool:
        """After each epoch (also one cut short by a stop); True stops training."""
        s = self.state
        if self.stopped and s.batches_done < len(self.plan):
            return True  # the resumed run ends this epoch, with its evaluation
        # Stopped or not, a finished epoch is evaluated (early stopping counts it) and saved now: a resumed run
        # starts with the next epoch.
        epoch_f = self._epoch_now()
        if s.batches_done >= len(self.plan):
            s.epoch, s.batches_done = epoch + 1, 0
        if not self._patience_spent():
            self._log_eval_save(False, self.t.eval_strategy == "epoch", self.save_strategy == "epoch", epoch_f)
        self.done = self.done or self._patience_spent() or s.global_step >= self.total
        return self.done

    def _epoch_now(self) -> float:
        return self.state.epoch + self.state.batches_done / len(self.plan)

    def _patience_spent(self) -> bool:
        return self.early and self.state.bad_evals >= (self.t.early_stopping_patience or 0)

    def _log_eval_save(self, log: bool, evaluate: bool, save: bool, epoch: float) -> None:
        """Trainer's order: the step's log, then the evaluation, then the checkpoint."""
        s = self.state
        if log and s.window_steps:
            loss = s.window_loss / s.window_steps
            rate, elapsed = self.timer.sample(s.global_step)
            self.ctx.events.emit(
                "step", step=s.global_step, total_steps=self.total, epoch=round(float(epoch), 4), loss=loss,
                learning_rate=self.lr_table[min(s.global_step - 1, self.total)], grad_norm=None,  # this step's rate
                samples_per_second=rate, tokens_per_second=self.timer.tokens_per_second(self.tokens),
                elapsed_s=elapsed,
            )
            s.window_loss, s.window_steps = 0.0, 0
        improved = False
        if evaluate and "validation" in self.eval_sets:
            metrics = self.evaluate("validation")
            self.ctx.events.emit("eval", step=s.global_step, epoch=round(float(epoch), 4), split="validation",
                                 metrics=metrics)
            emit_samples(self.ctx, self.model, s.global_step)
            s.last_eval_step, s.last_eval = s.global_step, metrics
            improved = s.track_best(metrics, self.primary)
        if save:
            path = self._save()
            if improved and self.early:
                s.best_checkpoint = str(path)
                self.best_logits = self.logits.get("validation")
                self._write_state(path)

    def evaluate(self, split: str) -> dict[str, float]:
        """Mean loss per example and the configured metrics, from the outputs of the whole split (the task's)."""
        dataset, references = self.eval_sets[split]
        if not self.task.keeps_outputs:  # a language model: the loss alone (its logits are vocabulary-sized per token)
            return self._evaluate_loss(split, dataset)
        outputs = self.model.predict(dataset, verbose=0)
        if hasattr(outputs, "to_tensor"):  # per-token outputs of batches padded to different lengths: ragged
            outputs = outputs.to_tensor(default_value=PAD_LABEL)
        logits, labels = self.task.gather_outputs(np.asarray(outputs, dtype=np.float64), references)
        self.logits[split] = (self.state.global_step, logits)  # for the evaluation report: the split's own order
        return {"loss": self.task.eval_loss(logits, labels),
                **self.task.compute_metrics(logits, labels, self.cfg.metrics, self.ctx.prepared)}

    def _evaluate_loss(self, split: str, dataset: Any) -> dict[str, float]:
        """The mean of the batches' mean losses weighted by their sizes, as torch-loop counts each batch's loss once
        per example; Keras's own evaluate() weighs its batches by size that way."""
        loss = float(self.model.evaluate(dataset, verbose=0, return_dict=True)["loss"])
        self.logits[split] = (self.state.global_step, None)
        return {"loss": loss, **self.task.metrics_from_loss(loss)}

    # -- checkpoints ---------------------------------------------------------------------------------------------
    def _save(self) -> Path:
        s = self.state
        path = self.ctx.run_dir.checkpoints_dir / f"checkpoint-{s.global_step}"
        if self.saved_at == s.global_step and path.is_dir():
            return path
        path.mkdir(parents=True, exist_ok=True)
        self.model.save(str(path / KERAS_MODEL_FILE))  # weights and optimizer state
        lora = _lora_variables(self.model)
        if lora:
            np.savez(path / LORA_FILE, *[np.asarray(v) for v in lora])
        self._write_state(path)
        self.saved_at = s.global_step
        self.ctx.events.emit("checkpoint", step=s.global_step, path=str(path))
        rotate_checkpoints(self.ctx.run_dir.checkpoints_dir, self.t.save_total_limit, s.best_checkpoint)
        return path

    def _write_state(self, path: Path) -> None:
        self.state.seed_states = [np.asarray(g.state).tolist() for g in _seed_generators(self.model)]
        (path / STATE_FILE).write_text(json.dumps(asdict(self.state), indent=1), encoding="utf-8")

    # -- the end -------------------------------------------------------------------------------------------------
    def _finish(self) -> EngineResult:
        s = self.state
        metrics, predictions = final_validation(self, "validation" in self.eval_sets)
        test_metrics = None
        if "test" in self.eval_sets:
            test_metrics = self.evaluate("test")
            predictions["test"] = self.logits["test"][1]
            self.ctx.events.emit("eval", step=s.global_step, epoch=round(self._epoch_now(), 4), split="test",
                                 metrics=test_metrics)
        self._save_final()
        last = max(checkpoints(self.ctx.run_dir.checkpoints_dir), key=step_of, default=None)
        if self.t.save_total_limit == 1 and s.best_checkpoint and last is not None and last != Path(s.best_checkpoint):
            import shutil

            shutil.rmtree(last, ignore_errors=True)  # as Trainer: a limit of 1 keeps just the best model at the end
            last = Path(s.best_checkpoint)
        return EngineResult(metrics=metrics, test_metrics=test_metrics, last_checkpoint=str(last) if last else None,
                            predictions=predictions)

    def _save_final(self) -> None:
        """The task's own format where it has one (Task.save_keras_model: text-generation's is transformers'), else
        model.keras without optimizer state (a fresh copy of the architecture with the trained weights), the
        tokenizer, the label maps, and keras_model.json, which tells core.predict what this directory is."""
        import importlib.metadata as md

        keras = import_keras()
        out = self.ctx.run_dir.model_dir
        out.mkdir(parents=True, exist_ok=True)
        if self.task.save_keras_model(self.model, self.source, out, self.ctx.tokenizer, self.ctx.prepared):
            return
        # Saved and loaded back uncompiled: that drops the optimizer state and merges LoRA adapters into the weights
        # (Keras saves LoRA layers merged), so the result is a plain model, as the PyTorch engines leave.
        full = out / f"full-{KERAS_MODEL_FILE}"
        self.model.save(str(full))
        with warnings.catch_warnings():  # "Skipping variable loading for optimizer": dropping it is the point
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            final = keras.saving.load_model(str(full), compile=False)
        self.task.finalize_keras_model(final, self.ctx.prepared)
        final.save(str(out / KERAS_MODEL_FILE))
        full.unlink()
        self.ctx.tokenizer.save_pretrained(out)
        names = self.ctx.prepared.label_names
        (out / LABELS_FILE).write_text(json.dumps({
            "id2label": {str(i): name for i, name in enumerate(names)},
            "label2id": {name: i for i, name in enumerate(names)},
        }, indent=1), encoding="utf-8")
        write_meta(out, self.task.model_meta(self.ctx.prepared))
        versions = {}
        for package in ("tensorflow", "keras", "keras-hub"):
            with contextlib.suppress(md.PackageNotFoundError):
                versions[package] = md.version(package)
        (out / KERAS_FORMAT_FILE).write_text(json.dumps({
            "format": KERAS_FORMAT, "model_file": KERAS_MODEL_FILE, "inputs": self.inputs,
            "max_length": self.cfg.tokenizer.max_length, "truncation": self.cfg.tokenizer.truncation,
            "source_model": self.cfg.model.name_or_path, "backbone": type(self.model.backbone).__name__,
            "versions": versions,
        }, indent=1), encoding="utf-8")


def _seed_generators(model: Any) -> list[Any]:
    """Every layer's SeedGenerator (dropout), in the model's layer order: their states are not in the weights."""
    keras = import_keras()
    found: list[Any] = []
    for layer in model._flatten_layers(include_self=True):
        for value in vars(layer).values():
            if isinstance(value, keras.random.SeedGenerator) and all(value is not f for f in found):
                found.append(value)
    return found


def _lora_variables(model: Any) -> list[Any]:
    """Per LoRA layer, in layer order: the unmerged kernel and both adapter matrices."""
    out: list[Any] = []
    for layer in model._flatten_layers(include_self=False):
        if getattr(layer, "lora_enabled", False):
            out += [layer._kernel, layer.lora_kernel_a, layer.lora_kernel_b]
    return out
