"""Tokenized rows -> tf.data batches for the keras engine, padded exactly as the PyTorch engines pad them.

The rows come from the same tokenize_dataset as every engine (so tokenizer.padding, truncation and max_length mean
the same thing), each batch is padded by the same collator (make_collator, NumPy tensors), and the training order
is core.engines.sampling's epoch_order: shuffled per epoch from the seed, or grouped by length (group_by_length)
exactly as the trainer engine groups. Batches are made in Python from that plan, so a resumed run can skip the
batches it has already trained on.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from core.engines.keras_convert import INPUT_COLUMNS
from core.engines.sampling import epoch_order, input_lengths, row_sums


class Batches:
    """Makes (features, labels) batches of a tokenized split for a model with the given inputs."""

    def __init__(self, ds: Any, tokenizer: Any, inputs: list[str], task: Any) -> None:
        self.ds = ds
        self.inputs = inputs
        self.task = task  # labels in the shape and dtype the task's Keras loss takes
        self.collator = task.collator(tokenizer, None, "np")
        self.columns = [c for c in ("input_ids", "attention_mask", "token_type_ids") if c in ds.column_names]

    def __len__(self) -> int:
        return len(self.ds)

    def make(self, indices: list[int]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        rows = self.ds.select_columns([*self.columns, "labels"])[indices]
        batch = self.collator([{k: rows[k][i] for k in rows} for i in range(len(indices))])
        ids = batch["input_ids"]
        features = {}
        for name in self.inputs:
            column = batch.get(INPUT_COLUMNS[name])
            features[name] = (np.zeros_like(ids) if column is None else column).astype("int32")
        return features, self.task.keras_labels(np.asarray(batch["labels"]))

    def signature(self) -> Any:
        import tensorflow as tf

        shape, dtype = self.task.keras_label_spec()
        return ({name: tf.TensorSpec((None, None), tf.int32) for name in self.inputs}, tf.TensorSpec(shape, dtype))


class TrainPlan:
    """The batches of each epoch, in order. The keras engine's callback sets `epoch` as each epoch begins: the
    dataset's generator starts when Keras first asks the epoch's iterator for a batch, after on_epoch_begin."""

    def __init__(self, batches: Batches, batch_size: int, seed: int, group_by_length: bool, group_size: int) -> None:
        self.batches = batches
        self.batch_size = batch_size
        self.seed = seed
        self.group_size = group_size
        self.lengths = input_lengths(batches.ds) if group_by_length else None
        # Non-padding tokens per row; rows without an attention mask (text-generation's) are all real tokens.
        self.tokens = (row_sums(batches.ds, "attention_mask") if "attention_mask" in batches.ds.column_names
                       else input_lengths(batches.ds))
        self.epoch = 0

    def __len__(self) -> int:
        return -(-len(self.batches) // self.batch_size)

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        order = epoch_order(len(self.batches), epoch, self.seed, self.group_size, self.lengths)
        return [order[i:i + self.batch_size].tolist() for i in range(0, len(order), self.batch_size)]

    def batch_tokens(self, epoch: int) -> list[int]:
        """Non-padding tokens of each batch of the epoch, for tokens/s."""
        return [int(self.tokens[batch].sum()) for batch in self.epoch_batches(epoch)]

    def dataset(self, skip: int = 0) -> Any:
        """Each epoch's batches after the first `skip` (a resumed run's partly trained epoch). The size is declared,
        so Keras knows where an epoch ends instead of learning it from the first epoch."""
        import tensorflow as tf

        def generate() -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
            for indices in self.epoch_batches(self.epoch)[skip:]:
                yield self.batches.make(indices)

        dataset = tf.data.Dataset.from_generator(generate, output_signature=self.batches.signature())
        return dataset.apply(tf.data.experimental.assert_cardinality(len(self) - skip)).prefetch(2)


def eval_dataset(batches: Batches, batch_size: int) -> Any:
    """The split in its own order, padded per batch."""
    import tensorflow as tf

    def generate() -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
        for start in range(0, len(batches), batch_size):
            yield batches.make(list(range(start, min(start + batch_size, len(batches)))))

    dataset = tf.data.Dataset.from_generator(generate, output_signature=batches.signature())
    return dataset.apply(tf.data.experimental.assert_cardinality(-(-len(batches) // batch_size))).prefetch(2)
