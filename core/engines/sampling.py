"""The order of training rows: length-grouped or shuffled, depending only on (seed, epoch).

transformers' LengthGroupedSampler draws from the global RNG, which resuming restores to the checkpoint's step,
not to the start of the epoch: a resumed run would then see another order than an uninterrupted one. Seeding
each epoch's permutation from (seed, epoch) makes the order the same either way, so resume is exact. Every engine
takes its order from epoch_order, so the three see the same rows in the same batches.

The orders are numpy arrays: at a million rows, transformers' lists of Python ints (the permutation, the sorted
megabatches, their slices, the flattened result) cost about 100 MB of peak memory before the first step.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

MEGABATCH_GROUPS = 50  # transformers' mega_batch_mult: length-sorted groups per shuffled megabatch
_CHUNK = 8192  # rows turned into Python ints at a time while iterating


def _generator(seed: int, epoch: int) -> Any:
    import torch

    generator = torch.Generator()
    generator.manual_seed(seed * 100_003 + epoch)
    return generator


def length_grouped_order(lengths: np.ndarray, group_size: int, seed: int, epoch: int) -> np.ndarray:
    """transformers' get_length_grouped_indices, the very same order (tests/test_sampling.py): torch's randperm
    from the same generator, megabatches of up to 50 groups stably sorted by descending length, and the megabatch
    holding the longest row swapped to the front, so an out-of-memory error comes at the first step, not later."""
    import torch

    lengths = np.asarray(lengths)
    n = len(lengths)
    size = max(min(n // (group_size * 4), MEGABATCH_GROUPS), 1) * group_size
    order = torch.randperm(n, generator=_generator(seed, epoch)).numpy()
    for start in range(0, n, size):
        chunk = order[start:start + size]
        order[start:start + size] = chunk[np.argsort(-lengths[chunk], kind="stable")]
    if n:
        starts = np.arange(0, n, size)
        longest = starts[int(np.argmax(lengths[order[starts]]))]
        order[0], order[longest] = order[longest], order[0]
    return order


def epoch_order(n: int, epoch: int, seed: int, group_size: int, lengths: np.ndarray | None = None) -> np.ndarray:
    """The training rows of one epoch in the order they are fed: length-grouped in groups of group_size (the
    combined batch) when lengths are given, else shuffled."""
    if lengths is not None:
        return length_grouped_order(lengths, group_size, seed, epoch)
    import torch

    return torch.randperm(n, generator=_generator(seed, epoch)).numpy()


def iterate(order: np.ndarray) -> Iterator[int]:
    """Python ints one chunk at a time: a DataLoader wants ints, and a list of them all would cost what numpy saved."""
    for start in range(0, len(order), _CHUNK):
        yield from order[start:start + _CHUNK].tolist()


class EpochSampler:
    """Yields epoch_order for the epoch set with use_epoch; a plain iterable, which DataLoader accepts as sampler.

    Not named set_epoch on purpose: Accelerate calls set_epoch with its own count of passes over the loader, which
    restarts at 0 in a resumed run and would replay the first epoch's order."""

    def __init__(self, n: int, seed: int, group_size: int, lengths: np.ndarray | None) -> None:
        self.n, self.seed, self.group_size, self.lengths = n, seed, group_size, lengths
        self.epoch = 0

    def use_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        return iterate(epoch_order(self.n, self.epoch, self.seed, self.group_size, self.lengths))

    def __len__(self) -> int:
        return self.n


def seeded_length_grouped_sampler(lengths: np.ndarray, batch_size: int, seed: int) -> Any:
    """A sampler for Trainer: the length-grouped epoch_order of the epoch Trainer sets with set_epoch."""
    from torch.utils.data import Sampler

    class EpochSeededLengthGroupedSampler(Sampler):  # type: ignore[misc]
        def __init__(self) -> None:
            self.lengths = lengths
            self.epoch = 0

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def __iter__(self) -> Iterator[int]:
            return iterate(length_grouped_order(self.lengths, batch_size, seed, self.epoch))

        def __len__(self) -> int:
            return len(self.lengths)

    return EpochSeededLengthGroupedSampler()


def input_lengths(dataset: Any) -> np.ndarray:
    """Token counts of a tokenized dataset, without padding: the lengths of its input_ids lists, read from Arrow's
    list offsets. Reading the column as Python lists held every token id as an object (1 GB for a million rows)."""
    import pyarrow.compute as pc

    from core.data.arrow import arrow_column

    return pc.list_value_length(arrow_column(dataset, "input_ids")).to_numpy(zero_copy_only=False).astype(np.int64)


def row_sums(dataset: Any, column: str) -> np.ndarray:
    """The sum of each row's list in `column` (e.g. the non-padding tokens of attention_mask), from Arrow buffers."""
    from core.data.arrow import arrow_column

    lists = arrow_column(dataset, column).combine_chunks()
    offsets = lists.offsets.to_numpy()
    values = lists.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
    totals = np.concatenate([[0], np.cumsum(values)])
    return totals[offsets[1:] - offsets[0]] - totals[offsets[:-1] - offsets[0]]
