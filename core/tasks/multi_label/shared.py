"""Numeric pieces of the multi-label-classification task: probabilities from logits, the metrics on multi-hot labels,
the strata of a held-out validation split, per-label positive weights for the loss, and one decision threshold per
label tuned on validation outputs.

This module is used at run time AND its source text is inlined verbatim into exported standalone training scripts.
So it must import nothing from this project, and only numpy, sklearn and math: numpy at module top, sklearn inside
the functions that need it. No `from __future__` import either (it would not stay at the top of an exported script).

Labels are multi-hot: an (n, labels) array of 0/1 (any numeric dtype). A label is predicted when its probability is
at least its threshold (p >= t).
"""

import math

import numpy as np
import numpy.typing as npt

MULTI_LABEL_METRICS = ("f1_micro", "f1_macro", "precision_micro", "recall_micro", "exact_match", "hamming_loss")
THRESHOLD_GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05, 0.10, ..., 0.95
DEFAULT_THRESHOLD = 0.5
MAX_POS_WEIGHT = 50.0  # auto positive weights are clipped to [1 / MAX_POS_WEIGHT, MAX_POS_WEIGHT]


def sigmoid(outputs: npt.ArrayLike) -> np.ndarray:
    """Probabilities from logits, in float64, without overflow for large logits of either sign."""
    x = np.asarray(outputs, dtype=np.float64)
    out = np.empty_like(x)
    positive = x >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-x[positive]))
    e = np.exp(x[~positive])
    out[~positive] = e / (1.0 + e)
    return out


def as_thresholds(thresholds: "float | npt.ArrayLike", labels: int) -> np.ndarray:
    """One threshold per label as a float64 array: a single number is used for every label."""
    array = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if array.size == 1:
        return np.full(labels, float(array[0]))
    if array.size != labels:
        raise ValueError(f"{array.size} thresholds for {labels} labels")
    return array


def predict_multi_hot(probabilities: npt.ArrayLike, thresholds: "float | npt.ArrayLike" = DEFAULT_THRESHOLD
                      ) -> np.ndarray:
    """The predicted labels as a 0/1 int64 array: probability >= the label's threshold."""
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"probabilities must have shape (n, labels), got {probs.shape}")
    return (probs >= as_thresholds(thresholds, probs.shape[1])[None, :]).astype(np.int64)


def _multi_hot(values: npt.ArrayLike, what: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 2:
        raise ValueError(f"{what} must have shape (n, labels), got {array.shape}")
    return (array > 0.5).astype(np.int64)


def multi_label_metrics(labels: npt.ArrayLike, predicted: npt.ArrayLike, names: list[str]) -> dict[str, float]:
    """The metrics in `names` (from MULTI_LABEL_METRICS), in that order, as Python floats, from multi-hot true and
    predicted labels (sklearn, zero_division=0). exact_match is subset accuracy (every label of a row right);
    hamming_loss the share of wrong (row, label) cells, lower is better. No rows: every metric is 0.0."""
    unknown = [name for name in names if name not in MULTI_LABEL_METRICS]
    if unknown:
        raise ValueError(f"unknown multi-label metric {unknown[0]!r}; choices: {', '.join(MULTI_LABEL_METRICS)}")
    y_true = _multi_hot(labels, "labels")
    y_pred = _multi_hot(predicted, "predictions")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"labels have shape {y_true.shape} but predictions {y_pred.shape}")
    if y_true.shape[0] == 0:
        return {name: 0.0 for name in names}

    from sklearn.metrics import accuracy_score, f1_score, hamming_loss, precision_score, recall_score

    result: dict[str, float] = {}
    for name in names:
        if name == "f1_micro":
            value = f1_score(y_true, y_pred, average="micro", zero_division=0)
        elif name == "f1_macro":
            value = f1_score(y_true, y_pred, average="macro", zero_division=0)
        elif name == "precision_micro":
            value = precision_score(y_true, y_pred, average="micro", zero_division=0)
        elif name == "recall_micro":
            value = recall_score(y_true, y_pred, average="micro", zero_division=0)
        elif name == "exact_match":
            value = accuracy_score(y_true, y_pred)
        else:
            value = hamming_loss(y_true, y_pred)
        result[name] = float(value)
    return result


def rarest_label_strata(labels: npt.ArrayLike) -> "np.ndarray | None":
    """What a held-out validation split is stratified on: each row's rarest label (by its count in these rows),
    rows without a label in a stratum of their own, so rare labels reach validation. None for no rows."""
    y = np.asarray(labels) > 0.5
    if y.ndim != 2 or not len(y):
        return None
    counts = y.sum(axis=0).astype(np.float64)
    rarest = np.where(y, counts[None, :], np.inf).argmin(axis=1)
    return np.where(y.any(axis=1), rarest, y.shape[1]).astype(np.int64)


def per_label_scores(labels: npt.ArrayLike, predicted: npt.ArrayLike) -> dict[str, list[float]]:
    """Precision, recall, F1 (zero_division=0) and support (true positives in the data) of each label, as lists."""
    y_true = _multi_hot(labels, "labels")
    y_pred = _multi_hot(predicted, "predictions")
    tp = (y_true & y_pred).sum(axis=0).astype(np.float64)
    support = y_true.sum(axis=0)
    predicted_n = y_pred.sum(axis=0)
    precision = np.divide(tp, predicted_n, out=np.zeros_like(tp), where=predicted_n > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(tp), where=total > 0)
    return {"precision": precision.tolist(), "recall": recall.tolist(), "f1": f1.tolist(),
            "support": [int(s) for s in support]}


def bce_with_logits(outputs: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Mean binary cross-entropy over every (row, label) cell from logits, as torch's BCEWithLogitsLoss computes it
    (0.0 for no rows)."""
    x = np.asarray(outputs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if x.size == 0:
        return 0.0
    return float(np.mean(np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))))


def positive_weights(positives: "list[int] | npt.ArrayLike", rows: int, max_weight: float = MAX_POS_WEIGHT
                     ) -> list[float]:
    """training.class_weights: auto for multi-label: each label's negatives / positives in the training rows (the
    BCE pos_weight that makes its positives weigh as much as its negatives), clipped to [1 / max_weight, max_weight]
    so a rare label cannot blow the loss up; a label with no training positive gets 1.0 (it never meets one)."""
    out = []
    for p in np.asarray(positives, dtype=np.float64).reshape(-1):
        if p <= 0:
            out.append(1.0)
            continue
        out.append(float(min(max((rows - p) / p, 1.0 / max_weight), max_weight)))
    return out


def tune_thresholds(labels: npt.ArrayLike, probabilities: npt.ArrayLike, grid: "tuple[float, ...]" = THRESHOLD_GRID,
                    default: float = DEFAULT_THRESHOLD) -> list[float]:
    """One threshold per label from `grid` that maximises that label's F1 on these rows (p >= t predicts it).

    Ties go to the threshold nearest `default` (and between two as near, the lower); a label with no positive row
    keeps `default`, as F1 says nothing there. Vectorised over rows and the grid, one label at a time."""
    y = _multi_hot(labels, "labels").astype(bool)
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.shape != y.shape:
        raise ValueError(f"labels have shape {y.shape} but probabilities {probs.shape}")
    cuts = np.asarray(grid, dtype=np.float64)
    out = []
    for j in range(y.shape[1]):
        truth = y[:, j]
        positives = int(truth.sum())
        if positives == 0:
            out.append(float(default))
            continue
        predicted = probs[:, j][:, None] >= cuts[None, :]  # (rows, grid)
        tp = (predicted & truth[:, None]).sum(axis=0)
        # F1 = 2 tp / (2 tp + fp + fn) = 2 tp / (predicted positives + true positives)
        f1 = 2.0 * tp / (predicted.sum(axis=0) + positives)
        best = np.flatnonzero(f1 >= f1.max() - 1e-12)
        pick = min(best, key=lambda i: (abs(cuts[i] - default), cuts[i]))
        out.append(float(cuts[pick]))
    return out


def check_threshold(value: float) -> float:
    """A fixed threshold must lie strictly between 0 and 1."""
    if not (isinstance(value, int | float) and math.isfinite(value) and 0 < value < 1):
        raise ValueError(f"a threshold must be a number between 0 and 1 (exclusive), got {value!r}")
    return float(value)
