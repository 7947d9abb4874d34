"""The Keras objects of the keras engine: the events callback, the tasks' losses (class-weighted, per token, causal
LM), the per-batch loss metric and the LR schedule.

Importing this module imports Keras on TensorFlow; the engine imports it only when a run starts. The schedule and
the metric are registered serializables, so a checkpoint (.keras with its optimizer) loads back for resuming.
"""

from __future__ import annotations

from typing import Any

from core.engines.keras_convert import import_keras

keras = import_keras()
ops = keras.ops


@keras.saving.register_keras_serializable(package="finetune_tui")
class TableSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """The learning rate of each optimizer step, from a table computed by transformers' get_scheduler (the PyTorch
    engines' exact curve). Keras calls a schedule with its count of batches, which under gradient accumulation is
    `accumulation` times the count of optimizer steps."""

    def __init__(self, values: list[float], accumulation: int = 1) -> None:
        self.values = [float(v) for v in values]
        self.accumulation = int(accumulation)
        self._table = ops.convert_to_tensor(self.values, dtype="float32")

    def __call__(self, step: Any) -> Any:
        index = ops.floor_divide(ops.cast(step, "int32"), self.accumulation)
        return ops.take(self._table, ops.minimum(index, len(self.values) - 1))

    def get_config(self) -> dict[str, Any]:
        return {"values": self.values, "accumulation": self.accumulation}


@keras.saving.register_keras_serializable(package="finetune_tui")
class WeightedCrossEntropy(keras.losses.Loss):
    """Cross-entropy from logits with a weight per class, reduced as torch's CrossEntropyLoss(weight=w) reduces it:
    sum(w[y] * nll) / sum(w[y]) over the batch. Keras's own class_weight / sample_weight mean divides by the batch
    size instead, which would make the loss (and the step size) depend on how many rare examples a batch holds.

    call() returns per-example terms w[y] * nll * batch / sum(w[y]) whose plain mean is that value, so Keras's own
    reduction still applies, and with it the division by the replicas under MirroredStrategy (Keras skips it for a
    scalar): each replica's mean of its part of the batch is averaged, as DDP averages the PyTorch processes, and
    gradient accumulation averages the batches of a step, as Accelerate does."""

    def __init__(self, class_weights: list[float], name: str = "weighted_cross_entropy", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.class_weights = [float(w) for w in class_weights]
        self._weights = ops.convert_to_tensor(self.class_weights, dtype="float32")

    def call(self, y_true: Any, y_pred: Any) -> Any:
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        nll = keras.losses.sparse_categorical_crossentropy(labels, ops.cast(y_pred, "float32"), from_logits=True)
        weights = ops.take(self._weights, labels)
        return weights * nll * (ops.cast(ops.shape(labels)[0], "float32") / ops.sum(weights))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "class_weights": self.class_weights}


@keras.saving.register_keras_serializable(package="finetune_tui")
class TokenCrossEntropy(keras.losses.Loss):
    """Cross-entropy from logits per token (token-classification), over the labelled tokens only (label -100 is
    padding or a later sub-token), weighted per class where weights are given, as torch's
    CrossEntropyLoss(weight=w, ignore_index=-100): sum(w[y] * nll) / sum(w[y]) over the labelled tokens.

    call() returns a term per token position whose plain mean is that value (0 at unlabelled positions), so Keras's
    own reduction, and its division by the replicas under MirroredStrategy, apply as for WeightedCrossEntropy."""

    def __init__(self, class_weights: list[float] | None = None, name: str = "token_cross_entropy",
                 **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]
        self._weights = None if class_weights is None else ops.convert_to_tensor(self.class_weights, dtype="float32")

    def call(self, y_true: Any, y_pred: Any) -> Any:
        logits = ops.cast(y_pred, "float32")
        logits = ops.reshape(logits, (-1, ops.shape(logits)[-1]))
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        labelled = ops.not_equal(labels, -100)
        safe = ops.where(labelled, labels, 0)
        nll = keras.losses.sparse_categorical_crossentropy(safe, logits, from_logits=True)
        weights = ops.cast(labelled, "float32")
        if self._weights is not None:
            weights = weights * ops.take(self._weights, safe)
        total = ops.maximum(ops.sum(weights), 1e-12)
        return weights * nll * (ops.cast(ops.shape(labels)[0], "float32") / total)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "class_weights": self.class_weights}


@keras.saving.register_keras_serializable(package="finetune_tui")
class CausalLMLoss(keras.losses.Loss):
    """transformers' causal-LM loss (text-generation): the output at token t predicts label t + 1, so logits[:, :-1]
    are compared with labels[:, 1:] (labels are the input ids, unshifted, with -100 where no loss is taken, as the
    task tokenizes them); the mean over the batch's labelled tokens.

    call() returns a term per position whose plain mean is that value (0 at unlabelled positions), so Keras's own
    reduction, and its division by the replicas under MirroredStrategy, apply as for TokenCrossEntropy."""

    def __init__(self, name: str = "causal_lm_loss", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        logits = ops.cast(y_pred[:, :-1, :], "float32")
        labels = ops.cast(y_true[:, 1:], "int32")
        labelled = ops.not_equal(labels, -100)
        nll = keras.losses.sparse_categorical_crossentropy(ops.where(labelled, labels, 0), logits, from_logits=True)
        weights = ops.cast(labelled, "float32")
        size = ops.cast(ops.shape(labels)[0] * ops.shape(labels)[1], "float32")
        return weights * nll * (size / ops.maximum(ops.sum(weights), 1.0))


@keras.saving.register_keras_serializable(package="finetune_tui")
class TokenTagger(keras.Model):
    """A KerasHub backbone with a tag per token: its sequence output, dropout and a dense layer of num_classes
    (transformers' *ForTokenClassification on the Keras side). A functional model that keeps its backbone as an
    attribute, as KerasHub's own tasks do, so LoRA, freezing and saving treat it as they treat a TextClassifier."""

    def __init__(self, backbone: Any, num_classes: int, dropout: float = 0.1, **kwargs: Any) -> None:
        inputs = backbone.input
        outputs = backbone(inputs)
        sequence = outputs["sequence_output"] if isinstance(outputs, dict) else outputs
        x = keras.layers.Dropout(dropout, name="output_dropout")(sequence)
        logits = keras.layers.Dense(num_classes, name="output_dense")(x)
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self.backbone = backbone
        self.num_classes = num_classes
        self.dropout = dropout

    def get_config(self) -> dict[str, Any]:
        return {"backbone": keras.layers.serialize(self.backbone), "num_classes": self.num_classes,
                "dropout": self.dropout, "name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TokenTagger:
        config = dict(config)
        config["backbone"] = keras.layers.deserialize(config["backbone"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="finetune_tui")
class WeightedBinaryCrossEntropy(keras.losses.Loss):
    """Binary cross-entropy from logits with a positive weight per label (multi-label-classification), as torch's
    BCEWithLogitsLoss(pos_weight=w) computes it: -(w_j y log s(x) + (1 - y) log(1 - s(x))) averaged over every
    (row, label) cell. call() returns each row's mean over its labels, so Keras's own mean over the batch (and its
    division by the replicas under MirroredStrategy) gives that value."""

    def __init__(self, pos_weights: list[float], name: str = "weighted_binary_cross_entropy", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.pos_weights = [float(w) for w in pos_weights]
        self._weights = ops.convert_to_tensor(self.pos_weights, dtype="float32")

    def call(self, y_true: Any, y_pred: Any) -> Any:
        x = ops.cast(y_pred, "float32")
        y = ops.cast(ops.reshape(y_true, ops.shape(x)), "float32")
        # torch's stable form: (1 - y) x + (1 + (w - 1) y) (log(1 + exp(-|x|)) + max(-x, 0))
        log_weight = 1.0 + (self._weights - 1.0) * y
        terms = (1.0 - y) * x + log_weight * (ops.log1p(ops.exp(-ops.abs(x))) + ops.relu(-x))
        return ops.mean(terms, axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "pos_weights": self.pos_weights}


@keras.saving.register_keras_serializable(package="finetune_tui")
class BatchLoss(keras.metrics.Metric):
    """The mean training loss of the last batch only. Keras's logs["loss"] is the running mean of the epoch so far;
    the events need each logging window's own mean, which the engine averages from these. It is the task's loss
    that trains (Task.keras_loss), with class weights where they are set, as the PyTorch engines log it."""

    def __init__(self, name: str = "batch_loss", class_weights: list[float] | None = None,
                 task: str = "text-classification", **kwargs: Any) -> None:
        from core.tasks import get_task

        super().__init__(name=name, **kwargs)
        self.class_weights = class_weights
        self.task = task
        self._loss = get_task(task).keras_loss(keras, class_weights)
        # Under MirroredStrategy each replica holds its part of the batch's mean; reading averages them (the
        # default, "sum", would report the loss times the number of replicas).
        self.value = self.add_variable(shape=(), initializer="zeros", name="value", dtype="float32",
                                       aggregation="mean")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        # call() gives the per-example terms whose mean the loss is (float32 under mixed precision too).
        self.value.assign(ops.mean(self._loss.call(y_true, ops.cast(y_pred, "float32"))))

    def result(self) -> Any:
        return self.value

    def reset_state(self) -> None:
        self.value.assign(0.0)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "class_weights": self.class_weights, "task": self.task}


class EventsCallback(keras.callbacks.Callback):
    """Hands Keras's epoch and batch boundaries to the engine, which writes the events (see core.engines.keras)."""

    def __init__(self, run: Any) -> None:
        super().__init__()
        self.run = run

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.run.epoch_begin(epoch)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.run.batch_end(float((logs or {})["batch_loss"])):
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.run.epoch_end(epoch):
            self.model.stop_training = True
