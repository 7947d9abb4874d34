"""The Keras objects of the keras engine: the events callback, the per-batch loss metric and the LR schedule.

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
class BatchLoss(keras.metrics.Metric):
    """The mean loss of the last batch only. Keras's logs["loss"] is the running mean of the epoch so far; the
    events need each logging window's own mean, which the engine averages from these."""

    def __init__(self, name: str = "batch_loss", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        # Under MirroredStrategy each replica holds its part of the batch's mean; reading averages them (the
        # default, "sum", would report the loss times the number of replicas).
        self.value = self.add_variable(shape=(), initializer="zeros", name="value", dtype="float32",
                                       aggregation="mean")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        loss = keras.losses.sparse_categorical_crossentropy(y_true, ops.cast(y_pred, "float32"), from_logits=True)
        self.value.assign(ops.mean(loss))

    def result(self) -> Any:
        return self.value

    def reset_state(self) -> None:
        self.value.assign(0.0)


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
