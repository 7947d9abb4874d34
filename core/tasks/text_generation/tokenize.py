"""text-generation's tokens for finetune-tui: shared.py's encoding, truncation and packing (the code exported scripts
inline) with its problems raised as finetune-tui's errors, the examples a whole split keeps (Tokenized), and the
tokenizer step's length facts. Which tokens carry the loss, and why, is in shared.py's docstring.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.tasks.text_generation import shared
from core.tasks.text_generation.formats import user_errors
from core.tasks.text_generation.shared import IGNORE_INDEX, Encoding, Packed, collator, pack_lengths, packing

if TYPE_CHECKING:
    import numpy as np


def encode(tokenizer: Any, batch: Mapping[str, Sequence[Any]], *, train_on_prompt: bool = False,
           chat_template: str | None = None, indices: Sequence[int] | None = None) -> list[Encoding]:
    """shared.encode: each example as tokens and loss spans, untruncated."""
    with user_errors():
        return shared.encode(tokenizer, batch, train_on_prompt=train_on_prompt, chat_template=chat_template,
                             indices=indices)


def tokenize_batch(tokenizer: Any, batch: Mapping[str, Sequence[Any]], *, max_length: int,
                   train_on_prompt: bool = False, chat_template: str | None = None,
                   indices: Sequence[int] | None = None) -> dict[str, list[Any]]:
    """shared.tokenize_batch: input_ids and labels cut to max_length, with length, loss_tokens and cut."""
    with user_errors():
        return shared.tokenize_batch(tokenizer, batch, max_length=max_length, train_on_prompt=train_on_prompt,
                                     chat_template=chat_template, indices=indices)


@dataclass
class Tokenized:
    """tokenize_examples' answer: the examples to train on, and what max_length did to the rest."""

    rows: list[dict[str, list[int]]]  # input_ids and labels of the examples kept, in order
    kept: list[int]  # their positions in the batch
    cut: list[int]  # examples whose loss tokens max_length cut (some or all)
    lossless: list[int]  # examples left with no loss token, left out
    examples: int
    max_length: int

    def notes(self) -> list[str]:
        """What a run's log says about the cut (nothing when max_length cut no loss token)."""
        notes = []
        if self.cut:
            notes.append(f"max_length {self.max_length} cuts the loss-carrying tokens (responses, assistant turns) of "
                         f"{len(self.cut):,} of {self.examples:,} examples")
        if self.lossless:
            n = len(self.lossless)
            what = "1 example is" if n == 1 else f"{n:,} examples are"
            notes.append(f"{what} left out: the prompt fills max_length {self.max_length}, leaving no token to "
                         f"learn (rows {_rows(self.lossless)}, 1 = first)")
        return notes


def _rows(indices: list[int], limit: int = 5) -> str:
    shown = ", ".join(str(i + 1) for i in indices[:limit])
    return shown + (", ..." if len(indices) > limit else "")


def tokenize_examples(tokenizer: Any, batch: Mapping[str, Sequence[Any]], *, max_length: int,
                      train_on_prompt: bool = False, chat_template: str | None = None) -> Tokenized:
    """tokenize_batch for a whole (small) split at once, the examples with no loss token left out and counted."""
    if max_length < 2:
        raise ValueError("max_length must leave room for a token to predict and one to predict it from (>= 2)")
    cols = tokenize_batch(tokenizer, batch, max_length=max_length, train_on_prompt=train_on_prompt,
                          chat_template=chat_template)
    kept = [i for i, n in enumerate(cols["loss_tokens"]) if n > 0]
    return Tokenized(
        rows=[{"input_ids": cols["input_ids"][i], "labels": cols["labels"][i]} for i in kept], kept=kept,
        cut=[i for i, c in enumerate(cols["cut"]) if c],
        lossless=[i for i, n in enumerate(cols["loss_tokens"]) if n == 0],
        examples=len(cols["input_ids"]), max_length=max_length,
    )


# --- the tokenizer step's facts ---------------------------------------------------------------------------------------

@dataclass
class LengthSummary:
    """What max_length does to the sampled examples."""

    max_length: int
    examples: int  # sampled
    total: int  # in the split
    cut: int  # examples whose loss tokens (response, assistant turns) the cut would shorten
    lossless: int  # examples the cut would leave with no loss token (left out of training)
    loss_fraction: float  # of the tokens trained on (the examples kept, after the cut), the share carrying loss
    packed_sequences: int  # sequences the kept examples pack into
    packing_efficiency: float  # their real tokens / (packed_sequences * max_length)

    @property
    def cut_share(self) -> float:
        return self.cut / self.examples if self.examples else 0.0


@dataclass
class LengthFacts:
    """Token lengths of sampled training examples, measured once (untruncated) when the tokenizer step opens; `at`
    answers for any max_length without tokenizing again (cheap enough for every keystroke). lengths are prompt +
    response (the whole conversation, the whole text) in tokens, EOS included: the histogram's data."""

    lengths: np.ndarray
    span_rows: np.ndarray  # the loss spans of all examples, flattened: example, start, end
    span_starts: np.ndarray
    span_ends: np.ndarray
    total: int

    def at(self, max_length: int) -> LengthSummary:
        import numpy as np

        n = len(self.lengths)
        kept_len = np.minimum(self.lengths, max_length)
        inside = np.clip(np.minimum(self.span_ends, max_length) - self.span_starts, 0, None)
        whole = self.span_ends - self.span_starts
        loss = np.bincount(self.span_rows, weights=inside, minlength=n)
        cut_rows = np.unique(self.span_rows[inside < whole])
        kept = loss > 0
        tokens = int(kept_len[kept].sum())
        groups = pack_lengths(kept_len[kept].tolist(), max_length) if tokens else []
        return LengthSummary(
            max_length=max_length, examples=n, total=self.total, cut=len(cut_rows), lossless=int((~kept).sum()),
            loss_fraction=float(loss[kept].sum() / tokens) if tokens else 0.0, packed_sequences=len(groups),
            packing_efficiency=tokens / (len(groups) * max_length) if groups else 0.0,
        )


def length_facts(tokenizer: Any, batch: Mapping[str, Sequence[Any]], *, train_on_prompt: bool = False,
                 chat_template: str | None = None, total: int | None = None) -> LengthFacts:
    """LengthFacts of a batch of examples (a sample of the training split, as core.tokenization.sample_indices picks
    it; total: the split's size)."""
    import numpy as np

    encodings = encode(tokenizer, batch, train_on_prompt=train_on_prompt, chat_template=chat_template)
    spans = [(row, s, e) for row, enc in enumerate(encodings) for s, e in enc.spans]
    rows, starts, ends = (np.asarray(c, dtype=np.int64) for c in zip(*spans, strict=True)) if spans else (
        np.zeros(0, dtype=np.int64),) * 3
    return LengthFacts(np.asarray([len(e.input_ids) for e in encodings], dtype=np.int64), rows, starts, ends,
                       len(encodings) if total is None else total)


__all__ = [
    "IGNORE_INDEX", "Encoding", "LengthFacts", "LengthSummary", "Packed", "Tokenized", "collator", "encode",
    "length_facts", "pack_lengths", "packing", "tokenize_batch", "tokenize_examples",
]
