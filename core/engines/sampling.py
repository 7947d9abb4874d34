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
    """Token counts of a tokenized dataset, without padding."""
    return [len(ids) for ids in dataset["input_ids"]]
