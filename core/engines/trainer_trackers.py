"""training.report_to on the trainer engine: Trainer's own integration callbacks, placed and named so that they log
what the other engines log (core.tracking).

They are added after the events callback, which puts each logged step's samples_per_second into the logs they read
(Trainer logs throughput only at the end). TensorBoard writes to RUN/tensorboard; MLflow's callback gets the
`train/…`, `eval/…` names its TensorBoard and W&B siblings already use, and keeps its run open until the test split
is logged after training. Each callback is guarded: one that raises is dropped with a warning, never the run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.tracking import TENSORBOARD_DIR, end_status, remember_mlflow_run, warn


class TrainerTrackers:
    def __init__(self, names: list[str], run_dir: Path) -> None:
        from transformers import TrainerCallback
        from transformers.integrations import MLflowCallback, TensorBoardCallback, WandbCallback, rewrite_logs

        class NamedMLflow(MLflowCallback):  # type: ignore[misc]
            def setup(self, args: Any, state: Any, model: Any) -> None:
                super().setup(args, state, model)
                remember_mlflow_run(run_dir)  # a resumed run continues this MLflow run

            def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any], **kwargs: Any) -> None:
                super().on_log(args, state, control, rewrite_logs(logs), **kwargs)

            def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                self.ended = (args, state, control)  # the test split is logged after training; finish() ends it

            def finish(self, outcome: str) -> None:
                if getattr(self, "ended", None) is not None:
                    keep, self._auto_end_run = self._auto_end_run, False
                    super().on_train_end(*self.ended)  # its artifacts (HF_MLFLOW_LOG_ARTIFACTS), not its end_run
                    self._auto_end_run = keep
                if self._initialized and self._auto_end_run and self._ml_flow.active_run() is not None:
                    self._ml_flow.end_run(status=end_status(outcome))

        self.inner: dict[str, Any] = {}
        for name in names:
            if name == "tensorboard":
                callback = TensorBoardCallback()
                callback.logging_dir = str(run_dir / TENSORBOARD_DIR)  # read at train begin, and at any reopen
            elif name == "mlflow":
                callback = NamedMLflow()
            else:
                callback = WandbCallback()
            self.inner[name] = callback
        self.callbacks = [_guarded(name, callback, TrainerCallback, self._drop) for name, callback in
                          self.inner.items()]

    def close(self, outcome: str) -> None:
        """After the last log: files flushed and runs ended (as "finished", "stopped" or "failed") before the worker
        exits without interpreter teardown."""
        for name in list(self.inner):
            try:
                self._end(name, outcome)
            except Exception as err:  # a tracker is a copy of the events; see the module docstring
                warn(name, err)

    def _drop(self, name: str) -> None:
        """A callback that failed: ended as far as it can be (an MLflow run left open stays RUNNING for ever, as the
        worker exits without interpreter teardown), then left out of every later event and of close()."""
        with contextlib.suppress(Exception):
            self._end(name, "failed")

    def _end(self, name: str, outcome: str) -> None:
        callback = self.inner.pop(name)
        if name == "tensorboard" and callback.tb_writer is not None:
            callback.tb_writer.close()
        elif name == "mlflow":
            callback.finish(outcome)
        elif name == "wandb" and callback._wandb is not None and callback._wandb.run is not None:
            callback._wandb.finish(exit_code=1 if outcome == "failed" else 0)


def _guarded(name: str, inner: Any, base: type, drop: Callable[[str], None]) -> Any:
    """`inner` as a TrainerCallback whose first failure becomes a warning and drops it (`drop`); later events skip
    it."""

    failed: list[Exception] = []

    class Guarded(base):  # type: ignore[misc, valid-type]
        def __repr__(self) -> str:
            return f"Guarded({type(inner).__name__})"

    def forward(event: str) -> Any:
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            if failed:
                return None
            try:
                return getattr(inner, event)(*args, **kwargs)
            except Exception as err:  # see the module docstring
                warn(name, err)
                failed.append(err)
                drop(name)
                return None

        return call

    for event in (attr for attr in dir(base) if attr.startswith("on_")):
        setattr(Guarded, event, forward(event))
    return Guarded()
