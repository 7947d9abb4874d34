"""Length-grouped sampling whose order depends only on (seed, epoch).

transformers' LengthGroupedSampler draws from the global RNG, which resuming restores to the checkpoint's step,
not to the start of the epoch: a resumed run would then see another order than an uninterrupted one. Seeding
each epoch's permutation from (seed, epoch) makes the order the same either way, so resume is exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def seeded_length_grouped_sampler(lengths: list[int], batch_size: int, seed: int) -> Any:
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices

    class EpochSeededLengthGroupedSampler(LengthGroupedSampler):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(batch_size, lengths=lengths)
            self.epoch = 0

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def __iter__(self) -> Iterator[int]:
            generator = torch.Generator()
            generator.manual_seed(seed * 100_003 + self.epoch)
            return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))

    return EpochSeededLengthGroupedSampler()


def input_lengths(dataset: Any) -> list[int]:
    """Token counts of a tokenized dataset, without padding: the lengths of its input_ids lists, read from Arrow's
    list offsets. Reading the column as Python lists held every token id as an object (1 GB for a million rows)."""
    import pyarrow.compute as pc

    from core.data.arrow import arrow_column

    return pc.list_value_length(arrow_column(dataset, "input_ids")).to_pylist()


def row_sums(dataset: Any, column: str) -> list[int]:
    """The sum of each row's list in `column` (e.g. the non-padding tokens of attention_mask), from Arrow buffers."""
    import numpy as np

    from core.data.arrow import arrow_column

    lists = arrow_column(dataset, column).combine_chunks()
    offsets = lists.offsets.to_numpy()
    values = lists.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
    totals = np.concatenate([[0], np.cumsum(values)])
    return (totals[offsets[1:] - offsets[0]] - totals[offsets[:-1] - offsets[0]]).tolist()
