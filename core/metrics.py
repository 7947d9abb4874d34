"""The configured metrics through the `evaluate` library, with no network needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

_MODULE = Path(__file__).parent / "metric_modules" / "classification"


class Metrics:
    """Accumulates predictions batch by batch (add_batch) and computes every configured metric at once."""

    def __init__(self, names: list[str]) -> None:
        import evaluate

        self.names = list(names)
        self._combined = evaluate.combine([evaluate.load(str(_MODULE), config_name=n) for n in self.names])

    def add_batch(self, predictions: Any, references: Any) -> None:
        self._combined.add_batch(predictions=np.asarray(predictions), references=np.asarray(references))

    def compute(self, predictions: Any = None, references: Any = None) -> dict[str, float]:
        if predictions is not None:
            self.add_batch(predictions, references)
        return {k: float(v) for k, v in self._combined.compute().items()}


def compute_metrics_fn(names: list[str]):  # type: ignore[no-untyped-def]
    """A Trainer `compute_metrics` callable: logits -> the configured metrics."""
    metrics = Metrics(names)

    def compute(eval_pred: Any) -> dict[str, float]:
        logits, labels = eval_pred
        logits = logits[0] if isinstance(logits, tuple) else logits
        return metrics.compute(predictions=np.argmax(logits, axis=-1), references=labels)

    return compute
