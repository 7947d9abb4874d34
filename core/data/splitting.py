"""Validation held out of the training data (stratified, seeded) and the max_*_samples subsets."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from core.config import DataConfig
from core.data.arrow import SplitSource, arrow_column, column_array, take_rows
from core.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    from datasets import Dataset, DatasetDict


def split_and_subset(
    cfg: DataConfig, splits: dict[str, Dataset], sources: dict[str, SplitSource],
    strata: Callable[[np.ndarray], np.ndarray | None] = lambda labels: labels,
) -> tuple[DatasetDict, str]:
    """Validation held out of train unless given (stratified on the task's strata of the labels, where it has
    some), then the max_*_samples subsets."""
    from datasets import DatasetDict

    train = splits["train"]
    if "validation" in splits:
        validation = splits["validation"]
        how = sources["validation"].desc
    else:
        n = len(train)
        n_val = math.ceil(cfg.validation_fraction * n)
        if n - n_val < 1 or n < 2:
            raise DataError(
                f"the training data {sources['train'].desc} has only {n} row{'s' if n != 1 else ''}: too few to "
                f"hold out {cfg.validation_fraction:.0%} for validation",
                "add examples, or give a validation file (data.validation_file)",
            )
        groups = strata(column_array(arrow_column(train, "label"))) if "label" in train.column_names else None
        if groups is None:  # the task has nothing to stratify on
            train_idx, val_idx, stratified = shuffle_split(n, n_val, cfg.shuffle_seed)
        else:
            train_idx, val_idx, stratified = split_arrays(groups, n_val, cfg.shuffle_seed)
        train, validation = take_rows(train, train_idx), take_rows(train, val_idx)
        how = f"{cfg.validation_fraction:.0%} of the training data" + (" (stratified)" if stratified else "")
    out = {"train": train, "validation": validation}
    if "test" in splits:
        out["test"] = splits["test"]
    if cfg.max_train_samples is not None:
        out["train"] = _subset(out["train"], cfg.max_train_samples, cfg.shuffle_seed)
    if cfg.max_eval_samples is not None:
        for split in ("validation", "test"):
            if split in out:
                out[split] = _subset(out[split], cfg.max_eval_samples, cfg.shuffle_seed)
    return DatasetDict(out), how


def split_indices(labels: Any, n_val: int, seed: int) -> tuple[list[int], list[int], bool]:
    """split_arrays as lists (the exported scripts define this function; tests compare the two)."""
    train, val, stratified = split_arrays(labels, n_val, seed)
    return train.tolist(), val.tolist(), stratified


def shuffle_split(n: int, n_val: int, seed: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """A seeded shuffle of n rows, n_val of them for validation: the split when there is nothing to stratify on."""
    import numpy as np

    order = np.random.default_rng(seed).permutation(n)
    return order[n_val:], order[:n_val], False


def split_arrays(labels: Any, n_val: int, seed: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Shuffled train and validation row indices, n_val of them for validation; stratified (every class in both, in
    proportion) when each class has two or more examples. Our own ~20 lines because datasets' stratified
    train_test_split walks the rows in Python (a minute for 200k rows) and sklearn costs 2 s to import."""
    import numpy as np

    labels = np.asarray(labels)
    n = len(labels)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    if counts.min() < 2 or n_val < len(classes) or n - n_val < len(classes):
        return shuffle_split(n, n_val, seed)
    exact = counts * n_val / n
    take = np.clip(np.floor(exact).astype(int), 1, counts - 1)
    while take.sum() != n_val:  # largest remainders get the rows left over (or give up the rows too many)
        short = take.sum() < n_val
        room = take < counts - 1 if short else take > 1
        gap = np.where(room, exact - take, -np.inf if short else np.inf)
        i = int(np.argmax(gap)) if short else int(np.argmin(gap))
        take[i] += 1 if short else -1
    # One stable sort groups the rows by class (a mask per class would walk all rows once per class).
    by_class = np.argsort(labels, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    val = np.concatenate([rng.permutation(by_class[s:s + c])[:k] for s, c, k in zip(starts, counts, take, strict=True)])
    keep = np.ones(n, dtype=bool)  # the rows not held out, in order: setdiff1d(arange(n), val) with less memory
    keep[val] = False
    return rng.permutation(np.flatnonzero(keep)), rng.permutation(val), True


def _subset(ds: Dataset, n: int, seed: int) -> Dataset:
    if n >= len(ds):
        return ds
    return ds.shuffle(seed=seed).select(range(n))
