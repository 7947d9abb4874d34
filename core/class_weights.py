"""Class weights for imbalanced data: the weight vector of `training.class_weights`, and the imbalance warning.

Every engine weighs the training loss the same way, as torch's `CrossEntropyLoss(weight=w)` with mean reduction:
sum(w[y] * nll) / sum(w[y]) over each batch. The evaluation loss stays the plain mean cross-entropy per example on
every engine: it does not depend on how a split is cut into batches (a weighted mean per batch would), and it
stays comparable between runs with and without weights. Nothing here imports torch or TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from core.errors import ConfigError

AUTO = "auto"
IMBALANCE_RATIO = 10  # warn when the smallest class has fewer than 1/IMBALANCE_RATIO of the largest's examples
_NAMES_SHOWN = 20  # class names listed in an error message; the rest are counted


def auto_class_weights(counts: Sequence[int]) -> list[float]:
    """Inverse-frequency weights w_c = n / (k * n_c), sklearn's 'balanced': n examples, k classes present.

    Normalised so that the average weight per training example is 1 (sum of n_c * w_c = n), which makes a weight read
    as "this class counts w times as much as an average example". The loss divides by the batch's sum of weights, so
    the scale does not change the loss itself; only the ratios between classes do. A class with no training example
    (a subset can drop a rare one) gets 1.0: it never meets the training loss.
    """
    present = [n for n in counts if n > 0]
    total, k = sum(present), len(present)
    return [total / (k * n) if n > 0 else 1.0 for n in counts]


def resolve_class_weights(setting: Any, counts: Sequence[int], label_names: Sequence[str]) -> list[float] | None:
    """The weight of each class id for `training.class_weights` (null, "auto" or a list), from the examples per class
    of the prepared training split; None for no weights. A list must have one weight per class, in label id order."""
    if setting is None:
        return None
    if setting == AUTO:
        return auto_class_weights(counts)
    weights = [float(w) for w in setting]
    if len(weights) != len(label_names):
        raise ConfigError(
            f"training.class_weights has {len(weights)} weight(s), but the data has {len(label_names)} classes: "
            f"{_names(label_names)}",
            f"give {len(label_names)} weights, one per class in the order above, or set training.class_weights: auto",
        )
    return weights


def run_class_weights(config: Any, prepared: Any) -> list[float] | None:
    """resolve_class_weights for a run: its config and its core.data.PreparedData."""
    return resolve_class_weights(config.training.class_weights, prepared.class_counts, prepared.label_names)


def describe_weights(weights: Sequence[float], label_names: Sequence[str]) -> str:
    """'neg 0.62, pos 2.5' for the run log."""
    return ", ".join(f"{name} {w:.4g}" for name, w in zip(label_names, weights, strict=True))


def imbalanced(counts: Mapping[str, int]) -> tuple[str, str] | None:
    """(rarest, commonest) when the rarest has fewer than a tenth of the commonest's examples, else None."""
    if len(counts) < 2:
        return None
    small = min(counts, key=lambda name: counts[name])
    large = max(counts, key=lambda name: counts[name])
    return None if counts[small] * IMBALANCE_RATIO >= counts[large] else (small, large)


def imbalance_warning(counts: Mapping[str, int]) -> str | None:
    """A warning when the smallest class has fewer than a tenth of the largest class's examples, else None."""
    pair = imbalanced(counts)
    if pair is None:
        return None
    small, large = pair
    return (f"the classes are imbalanced: {small!r} has {counts[small]:,} examples and {large!r} {counts[large]:,} "
            "(fewer than a tenth as many), so the model may learn to ignore the rare classes; "
            "set training.class_weights: auto to weigh each class by its inverse frequency")


def check_weights(value: Any) -> Any:
    """The config's parsing of class_weights: null, "auto", a list of positive finite numbers, or that list typed as
    text ("1, 4.5" or "[1, 4.5]", as the wizard's and plain mode's fields send it)."""
    if value is None or value == AUTO:
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("", "null", "none"):
            return None
        if text == AUTO:
            return AUTO
        value = [part for part in text.strip("[]").split(",") if part.strip()]
        try:
            value = [float(part) for part in value]
        except ValueError:
            raise ValueError("give auto, or one positive weight per class such as [1, 4.5]") from None
    if not isinstance(value, list | tuple) or not value:
        raise ValueError("give null, auto, or a list with one positive weight per class such as [1, 4.5]")
    out = []
    for i, weight in enumerate(value):
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight) or weight <= 0:
            raise ValueError(f"weight {i + 1} of the list is {weight!r}; each must be a positive, finite number")
        out.append(float(weight))
    return out


def _names(label_names: Sequence[str]) -> str:
    shown = ", ".join(str(n) for n in label_names[:_NAMES_SHOWN])
    more = len(label_names) - _NAMES_SHOWN
    return shown + (f" and {more} more" if more > 0 else "")
