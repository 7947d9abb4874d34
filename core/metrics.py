"""The configured metrics through the `evaluate` library, with no network needed.

The numbers are the ones the field reports (see metric_modules/classification): with two classes f1, precision and
recall are the positive class's (id 1), and their macro averages come along as f1_macro etc.; with more classes
they are macro averages over every class id, present in the split or not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_MODULE = Path(__file__).parent / "metric_modules" / "classification"
# With two classes these are the positive class's scores, so their macro averages are reported next to them.
MACRO_OF = {"f1": "f1_macro", "precision": "precision_macro", "recall": "recall_macro"}


# Metrics that are best when lowest: errors and losses. Any other name ending in "loss" is one too.
LOWER_IS_BETTER = frozenset({"loss", "mse", "rmse", "mae", "hamming_loss", "perplexity"})
_SPLIT_PREFIXES = ("eval_", "test_")  # how Trainer and the events name a split's metric: eval_loss, test_mse


def greater_is_better(name: str) -> bool:
    """Whether a higher value of this metric is better: every metric except the errors and losses of
    LOWER_IS_BETTER and any name ending in "loss", also with an eval_/test_ prefix (eval_loss, test_mse)."""
    for prefix in _SPLIT_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    return name not in LOWER_IS_BETTER and not name.endswith("loss")


def best_value(name: str, values: list[float]) -> float | None:
    """The best of a metric's values in its own direction (a loss or an error is best when lowest); None when there
    are none."""
    if not values:
        return None
    return max(values) if greater_is_better(name) else min(values)


def reported_names(names: list[str], num_labels: int) -> list[str]:
    """The metrics computed for these configured names: with two labels each of f1/precision/recall brings its
    macro average along, right after it."""
    out: list[str] = []
    for name in names:
        out.append(name)
        if num_labels == 2 and name in MACRO_OF:
            out.append(MACRO_OF[name])
    return list(dict.fromkeys(out))


class Metrics:
    """Accumulates predictions batch by batch (add_batch) and computes every configured metric at once.

    num_labels is the task's number of classes (not those seen in a split): it decides binary or macro averaging
    and which class ids a macro average runs over."""

    def __init__(self, names: list[str], num_labels: int) -> None:
        import evaluate

        if num_labels < 2:
            raise ValueError(f"num_labels is {num_labels}; a classification task has at least 2 classes")
        self.names = reported_names(names, num_labels)
        self.label_ids = list(range(num_labels))
        self._combined = evaluate.combine([evaluate.load(str(_MODULE), config_name=n) for n in self.names])

    def add_batch(self, predictions: Any, references: Any) -> None:
        import numpy as np

        self._combined.add_batch(predictions=np.asarray(predictions), references=np.asarray(references))

    def compute(self, predictions: Any = None, references: Any = None) -> dict[str, float]:
        if predictions is not None:
            self.add_batch(predictions, references)
        # combine() hands compute's keyword arguments to every module; the classification module takes labels.
        return {k: float(v) for k, v in self._combined.compute(labels=self.label_ids).items()}
