"""Numeric pieces of the text-regression task: stratification by score quantiles, label scaling, the evaluation
metrics, and folding the label scaling into the head's last linear layer.

This module is used at run time AND its source text is inlined verbatim into exported standalone training scripts.
So it must import nothing from this project, and only numpy, scipy, sklearn and math: numpy at module top, scipy and
sklearn inside the functions that need them. No `from __future__` import either (it would not stay at the top of an
exported script). `fold_scaling` and `unscale` use arithmetic only, so they work on numpy arrays and torch tensors
alike without importing torch.
"""

import math

import numpy as np
import numpy.typing as npt

REGRESSION_METRICS = ("mse", "rmse", "mae", "r2", "pearson", "spearman")


def quantile_strata(values: npt.ArrayLike, bins: int = 10) -> np.ndarray:
    """An int stratum id per row from the values' quantiles, so a stratified split keeps the score distribution.

    The edges are the quantiles at 1/bins .. (bins-1)/bins; repeated edges are collapsed, so whole-number ratings
    (1-5 stars) give one stratum per rating value, or fewer. Ids are renumbered 0..k-1 over the strata that occur.
    The values must be free of NaN.
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    edges = np.unique(np.quantile(array, np.arange(1, bins) / bins))
    raw = np.digitize(array, edges)
    _, ids = np.unique(raw, return_inverse=True)
    return ids.reshape(-1).astype(np.int64)


def standard_scaling(values: npt.ArrayLike) -> tuple[float, float]:
    """(mean, std) of the training scores, population std (ddof=0), as Python floats.

    Raises ValueError when there are no values or the std is 0 or not finite: z-scoring would divide by it.
    """
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise ValueError("no training scores to scale")
    if not np.all(np.isfinite(array)):
        raise ValueError("the training scores include a value that is not finite (NaN or infinity)")
    mean = float(np.mean(array))
    std = float(np.std(array))
    if not math.isfinite(mean) or not math.isfinite(std):  # overflow of very large scores
        raise ValueError(f"the training scores have a mean or std that is not finite (mean {mean}, std {std})")
    if std == 0:
        raise ValueError(f"all training scores are the same ({mean:g}): their std is 0")
    return mean, std


def _correlation(kind: str, labels: np.ndarray, outputs: np.ndarray) -> float:
    """Pearson or Spearman correlation; 0.0 where it is undefined (under 2 rows, a constant side) or NaN."""
    if labels.size < 2 or np.ptp(labels) == 0 or np.ptp(outputs) == 0:
        return 0.0
    from scipy.stats import pearsonr, spearmanr

    result = pearsonr(labels, outputs) if kind == "pearson" else spearmanr(labels, outputs)
    value = float(result[0])
    return 0.0 if math.isnan(value) else value


def regression_metrics(labels: npt.ArrayLike, outputs: npt.ArrayLike, names: list[str]) -> dict[str, float]:
    """The metrics in `names` (from REGRESSION_METRICS), in that order, as Python floats, computed in float64.

    `outputs` may have shape (n,) or (n, 1). A correlation that is NaN (constant predictions or labels) is 0.0, and
    so is r2 when it is undefined (fewer than 2 rows): a NaN would break best-model tracking and JSON events.
    """
    unknown = [name for name in names if name not in REGRESSION_METRICS]
    if unknown:
        raise ValueError(f"unknown regression metric {unknown[0]!r}; choices: {', '.join(REGRESSION_METRICS)}")
    y_true = np.asarray(labels, dtype=np.float64).reshape(-1)
    y_pred = np.asarray(outputs, dtype=np.float64)
    if y_pred.ndim == 2 and y_pred.shape[1] == 1:
        y_pred = y_pred.reshape(-1)
    if y_pred.ndim != 1:
        raise ValueError(f"outputs must have shape (n,) or (n, 1), got {y_pred.shape}")
    if y_pred.shape[0] != y_true.shape[0]:
        raise ValueError(f"{y_true.shape[0]} labels but {y_pred.shape[0]} outputs")

    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    result: dict[str, float] = {}
    for name in names:
        if name in ("mse", "rmse"):
            mse = float(mean_squared_error(y_true, y_pred))
            value = mse if name == "mse" else math.sqrt(mse)
        elif name == "mae":
            value = float(mean_absolute_error(y_true, y_pred))
        elif name == "r2":
            value = float(r2_score(y_true, y_pred)) if y_true.size >= 2 else 0.0
            value = 0.0 if math.isnan(value) else value
        else:
            value = _correlation(name, y_true, y_pred)
        result[name] = value
    return result


# torch is never imported here: the string annotations below only name the tensor type for readers and checkers.
def fold_scaling(
    weight: "np.ndarray | torch.Tensor",  # noqa: F821
    bias: "np.ndarray | torch.Tensor",  # noqa: F821
    mean: float,
    std: float,
) -> "tuple[np.ndarray | torch.Tensor, np.ndarray | torch.Tensor]":  # noqa: F821
    """Fold z-score label scaling into the head's last linear layer, so it outputs raw scores.

    The layer (weight (1, hidden), bias (1,)) was trained on y' = (y - mean) / std; the folded layer has
    W' = std * W and b' = std * b + mean. Arithmetic only: numpy arrays stay arrays, torch tensors stay tensors
    (same dtype and device). Returns (weight, bias) as new objects; the inputs are not changed.
    """
    return weight * std, bias * std + mean


def unscale(outputs: "np.ndarray | torch.Tensor", mean: float, std: float) -> "np.ndarray | torch.Tensor":  # noqa: F821
    """Raw scores from outputs of a head trained on z-scored labels: outputs * std + mean (arithmetic only)."""
    return outputs * std + mean
