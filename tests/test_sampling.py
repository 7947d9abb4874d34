"""The training order: numpy length grouping gives transformers' very order, and a resumed run replays it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers.trainer_pt_utils import get_length_grouped_indices

from core.engines.sampling import EpochSampler, length_grouped_order, seeded_length_grouped_sampler


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 12), min_size=1, max_size=3000), st.integers(1, 40), st.integers(0, 2**20),
       st.integers(0, 5))
def test_the_same_order_as_transformers(lengths: list[int], group: int, seed: int, epoch: int) -> None:
    """Lengths from a small range, so ties are common: the stable descending sort must break them as sorted() does."""
    generator = torch.Generator()
    generator.manual_seed(seed * 100_003 + epoch)
    theirs = get_length_grouped_indices(lengths, group, generator=generator)
    assert length_grouped_order(np.array(lengths), group, seed, epoch).tolist() == theirs


def test_a_million_rows_need_no_python_list() -> None:
    lengths = np.random.default_rng(0).integers(5, 128, size=1_000_000)
    order = length_grouped_order(lengths, 32, 42, 0)
    assert order.dtype == np.int64 and len(np.unique(order)) == 1_000_000
    assert lengths[order[0]] == lengths.max()  # the longest row comes first: an OOM shows at step 1


@pytest.mark.parametrize("make", [
    lambda lengths: seeded_length_grouped_sampler(lengths, 4, 7),
    lambda lengths: EpochSampler(len(lengths), 7, 4, lengths),
])
def test_samplers_yield_python_ints_per_epoch(make: object) -> None:
    lengths = np.arange(1, 101)
    sampler = make(lengths)  # type: ignore[operator]
    first = list(sampler)
    assert len(first) == len(sampler) == 100 and all(type(i) is int for i in first)
    assert sorted(first) == list(range(100))
    (sampler.set_epoch if hasattr(sampler, "set_epoch") else sampler.use_epoch)(1)
    second = list(sampler)
    assert second != first
    (sampler.set_epoch if hasattr(sampler, "set_epoch") else sampler.use_epoch)(0)
    assert list(sampler) == first  # what a run resumed in epoch 0 replays
