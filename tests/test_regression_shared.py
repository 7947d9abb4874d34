"""core/tasks/text_regression/shared.py: score strata for a stratified split, label scaling, the regression metrics
(NaN-free), folding the label scaling into the last linear layer (numpy and torch), and the import rule that lets
the module's source be inlined into exported standalone scripts."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest

from core.tasks.text_regression.shared import (
    REGRESSION_METRICS,
    fold_scaling,
    quantile_strata,
    regression_metrics,
    standard_scaling,
    unscale,
)

SHARED = Path(__file__).resolve().parents[1] / "core" / "tasks" / "text_regression" / "shared.py"
ALLOWED_IMPORTS = {"numpy", "scipy", "sklearn", "math"}


# quantile_strata


def _ratings(counts: dict[int, int], seed: int = 0) -> np.ndarray:
    values = np.concatenate([np.full(n, rating, dtype=np.float64) for rating, n in counts.items()])
    return np.random.default_rng(seed).permutation(values)


@pytest.mark.parametrize(
    "counts",
    [
        {1: 3, 2: 12, 3: 25, 4: 40, 5: 20},  # rare lowest rating
        {1: 30, 2: 5, 3: 7, 4: 18, 5: 40},  # a rating over 10% at the bottom, thin ones in the middle
        {1: 8, 2: 9, 3: 11, 4: 60, 5: 12},  # one dominant rating spanning many quantiles
    ],
)
def test_whole_number_ratings_give_one_stratum_per_rating(counts: dict[int, int]) -> None:
    values = _ratings(counts)
    strata = quantile_strata(values)
    assert strata.shape == values.shape
    assert np.issubdtype(strata.dtype, np.integer)
    rating_to_stratum: dict[float, set[int]] = {}
    for value, stratum in zip(values, strata, strict=True):
        rating_to_stratum.setdefault(float(value), set()).add(int(stratum))
    # every rating lands in exactly one stratum, and no two ratings share one: a 1:1 map
    assert all(len(ids) == 1 for ids in rating_to_stratum.values()), rating_to_stratum
    ids = [next(iter(s)) for s in rating_to_stratum.values()]
    assert len(set(ids)) == len(counts)
    # ids are compact and follow the rating order
    assert sorted(ids) == list(range(len(counts)))
    assert [next(iter(rating_to_stratum[float(r)])) for r in sorted(counts)] == list(range(len(counts)))
    # each stratum is exactly as large as its rating's count
    for rating, n in counts.items():
        assert int(np.sum(strata == next(iter(rating_to_stratum[float(rating)])))) == n


def test_continuous_values_give_equal_size_strata() -> None:
    values = np.random.default_rng(1).uniform(0.0, 100.0, size=10_000)
    strata = quantile_strata(values)
    sizes = np.bincount(strata)
    assert len(sizes) == 10
    assert sizes.min() >= 990 and sizes.max() <= 1010, sizes
    # the strata are ordered by value: every value of stratum k is below every value of stratum k+1
    for k in range(9):
        assert values[strata == k].max() < values[strata == k + 1].min()


def test_strata_respect_bins_and_accept_lists() -> None:
    values = list(np.linspace(0.0, 1.0, 400))
    strata = quantile_strata(values, bins=4)
    assert np.bincount(strata).tolist() == [100, 100, 100, 100]
    assert quantile_strata([2.0, 2.0, 2.0]).tolist() == [0, 0, 0]  # constant values: one stratum


def test_strata_keep_the_score_distribution_in_a_stratified_split() -> None:
    from sklearn.model_selection import train_test_split

    values = _ratings({1: 10, 2: 20, 3: 30, 4: 100, 5: 40}, seed=3)
    train, test = train_test_split(values, test_size=0.2, random_state=0, stratify=quantile_strata(values))
    for rating, n in {1: 10, 2: 20, 3: 30, 4: 100, 5: 40}.items():
        assert int(np.sum(test == rating)) == n // 5
        assert int(np.sum(train == rating)) == n - n // 5


# standard_scaling


def test_standard_scaling_known_values() -> None:
    mean, std = standard_scaling([2, 4, 4, 4, 5, 5, 7, 9])
    assert type(mean) is float and type(std) is float
    assert mean == pytest.approx(5.0)
    assert std == pytest.approx(2.0)  # population std (ddof=0); the sample std would be 2.138
    mean, std = standard_scaling(np.array([1.0, 3.0], dtype=np.float32))
    assert (mean, std) == pytest.approx((2.0, 1.0))


@pytest.mark.parametrize("values", [[3.0, 3.0, 3.0], [7], [1.0, math.inf], []])
def test_standard_scaling_refuses_zero_or_non_finite_std(values: list[float]) -> None:
    with pytest.raises(ValueError):
        standard_scaling(values)


# regression_metrics


LABELS = np.array([3.0, -0.5, 2.0, 7.0, 4.2, 1.1, 5.5])
OUTPUTS = np.array([4.5, 0.0, 2.1, 7.8, 3.9, 1.9, 4.0])


def _ranks(a: np.ndarray) -> np.ndarray:  # no ties in the data above
    return np.argsort(np.argsort(a)).astype(np.float64)


def _hand(labels: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
    err = labels - outputs
    mse = float(np.mean(err**2))
    return {
        "mse": mse,
        "rmse": math.sqrt(mse),
        "mae": float(np.mean(np.abs(err))),
        "r2": 1.0 - float(np.sum(err**2)) / float(np.sum((labels - labels.mean()) ** 2)),
        "pearson": float(np.corrcoef(labels, outputs)[0, 1]),
        "spearman": float(np.corrcoef(_ranks(labels), _ranks(outputs))[0, 1]),
    }


def test_regression_metrics_match_hand_computed_values() -> None:
    got = regression_metrics(LABELS, OUTPUTS, list(REGRESSION_METRICS))
    expected = _hand(LABELS, OUTPUTS)
    assert list(got) == list(REGRESSION_METRICS)
    for name in REGRESSION_METRICS:
        assert type(got[name]) is float, name
        assert got[name] == pytest.approx(expected[name], rel=1e-12, abs=1e-12), name
    # sanity of the hand values themselves, so a shared mistake cannot pass both sides
    assert expected["mse"] == pytest.approx(6.13 / 7)  # squared errors 2.25 .25 .01 .64 .09 .64 2.25
    assert expected["spearman"] == pytest.approx(1 - 6 * 6 / (7 * 48))  # rank differences 2, 1, 1: sum d² = 6


def test_regression_metrics_accept_column_outputs_and_lists() -> None:
    column = OUTPUTS.reshape(-1, 1).astype(np.float32)
    got = regression_metrics(LABELS.tolist(), column, ["mse", "pearson"])
    expected = _hand(LABELS, OUTPUTS.astype(np.float32).astype(np.float64))
    assert got["mse"] == pytest.approx(expected["mse"], rel=1e-12)
    assert got["pearson"] == pytest.approx(expected["pearson"], rel=1e-12)


def test_regression_metrics_keep_order_and_subset() -> None:
    got = regression_metrics(LABELS, OUTPUTS, ["spearman", "mae", "r2"])
    assert list(got) == ["spearman", "mae", "r2"]
    assert got == regression_metrics(LABELS, OUTPUTS, ["r2", "mae", "spearman"])
    assert regression_metrics(LABELS, OUTPUTS, []) == {}


def test_constant_predictions_give_zero_correlations_not_nan() -> None:
    constant = np.full_like(LABELS, 3.0)
    got = regression_metrics(LABELS, constant, ["pearson", "spearman", "mse"])
    assert got["pearson"] == 0.0 and got["spearman"] == 0.0
    assert got["mse"] == pytest.approx(float(np.mean((LABELS - 3.0) ** 2)))
    got = regression_metrics(np.full(5, 2.0), np.arange(5.0), ["pearson", "spearman"])  # constant labels
    assert got == {"pearson": 0.0, "spearman": 0.0}


def test_a_single_row_gives_finite_metrics() -> None:
    got = regression_metrics([2.0], [[1.5]], list(REGRESSION_METRICS))
    assert all(math.isfinite(v) for v in got.values()), got
    assert got["r2"] == 0.0 and got["pearson"] == 0.0 and got["spearman"] == 0.0
    assert got["mse"] == pytest.approx(0.25) and got["rmse"] == pytest.approx(0.5) and got["mae"] == pytest.approx(0.5)


def test_unknown_metric_name_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="accuracy") as info:
        regression_metrics(LABELS, OUTPUTS, ["mse", "accuracy"])
    for name in REGRESSION_METRICS:
        assert name in str(info.value)


def test_mismatched_shapes_are_refused() -> None:
    with pytest.raises(ValueError):
        regression_metrics(LABELS, OUTPUTS[:-1], ["mse"])
    with pytest.raises(ValueError):
        regression_metrics(LABELS, np.zeros((len(LABELS), 2)), ["mse"])


# fold_scaling and unscale


def test_fold_scaling_numpy_matches_unscaled_outputs() -> None:
    rng = np.random.default_rng(7)
    hidden, mean, std = 16, 3.2, 1.7
    weight = rng.normal(size=(1, hidden))
    bias = rng.normal(size=(1,))
    features = rng.normal(size=(32, hidden))
    scaled = features @ weight.T + bias
    new_weight, new_bias = fold_scaling(weight, bias, mean, std)
    assert new_weight.shape == (1, hidden) and new_bias.shape == (1,)
    assert new_weight.dtype == np.float64 and new_bias.dtype == np.float64
    assert np.allclose(features @ new_weight.T + new_bias, scaled * std + mean)
    assert np.allclose(unscale(scaled, mean, std), scaled * std + mean)
    # the inputs are left as they were
    assert not np.allclose(new_weight, weight)


def test_fold_scaling_torch_keeps_tensors_and_float32() -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    hidden, mean, std = 24, -1.5, 0.35
    layer = torch.nn.Linear(hidden, 1)
    features = torch.randn(20, hidden)
    with torch.no_grad():
        scaled = layer(features)
        new_weight, new_bias = fold_scaling(layer.weight, layer.bias, mean, std)
        assert isinstance(new_weight, torch.Tensor) and isinstance(new_bias, torch.Tensor)
        assert new_weight.dtype == torch.float32 and new_bias.dtype == torch.float32
        assert tuple(new_weight.shape) == (1, hidden) and tuple(new_bias.shape) == (1,)
        folded = torch.nn.Linear(hidden, 1)
        folded.weight.copy_(new_weight)
        folded.bias.copy_(new_bias)
        raw = folded(features)
        assert torch.allclose(raw, scaled * std + mean, atol=1e-5)
        back = unscale(scaled, mean, std)
        assert isinstance(back, torch.Tensor) and back.dtype == torch.float32
        assert torch.allclose(raw, back, atol=1e-5)


# the import rule: the source is inlined into exported standalone scripts


def test_shared_imports_only_numpy_scipy_sklearn_math() -> None:
    tree = ast.parse(SHARED.read_text(encoding="utf-8"))
    assert ast.get_docstring(tree), "shared.py keeps a module docstring"
    seen: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            seen.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"relative import at line {node.lineno}"
            assert node.module is not None
            seen.append(node.module)
    assert seen, "the walk found no import at all"
    bad = sorted({name for name in seen if name.split(".")[0] not in ALLOWED_IMPORTS})
    assert not bad, f"shared.py imports {bad}; only {sorted(ALLOWED_IMPORTS)} are allowed"
    # scipy and sklearn are imported inside the functions that need them, never at module top
    top = [
        alias.name if isinstance(node, ast.Import) else node.module
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    ]
    assert all(str(name).split(".")[0] in {"numpy", "math"} for name in top), top


def test_shared_source_runs_standalone() -> None:
    namespace: dict[str, object] = {"__name__": "exported_script"}
    exec(compile(SHARED.read_text(encoding="utf-8"), "exported_script.py", "exec"), namespace)
    metrics = namespace["regression_metrics"](LABELS, OUTPUTS, ["rmse", "spearman"])  # type: ignore[operator]
    assert metrics == regression_metrics(LABELS, OUTPUTS, ["rmse", "spearman"])
