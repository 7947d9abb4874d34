"""Texts to token ids, and how long those token sequences are.

`length_stats` feeds the wizard's tokenizer step, which updates as the user drags max_length or changes padding:
it tokenizes a sample once, and `LengthStats.with_settings` recomputes everything else from the cached lengths.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.config import ModelConfig, TokenizerConfig
from core.errors import ConfigError, ModelError
from core.models import load_error, locate

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict
    from transformers import PreTrainedTokenizerBase

    from core.data import PreparedData
    from core.tasks.base import Task

MAP_BATCH = 1000  # rows per Dataset.map batch; "longest" padding pads to the longest of each such batch
SAMPLE_LIMIT = 5000  # length_stats tokenizes at most this many examples
PERCENTILES = (50, 90, 95, 99, 100)
PADDING_KEYS = ("dynamic", "dynamic+group_by_length", "longest", "max_length")
_MEGABATCH = 50  # transformers' LengthGroupedSampler sorts megabatches of 50 batches
PARALLELISM_ENV = "TOKENIZERS_PARALLELISM"


def load_tokenizer(model: ModelConfig) -> PreTrainedTokenizerBase:
    """The model's (fast) tokenizer, from the bundled copy, a local directory or the Hub (failing fast offline).

    A tokenizer without a padding token (GPT-2 style) gets its end-of-text token as padding, so batches can be
    padded; the engine must then set model.config.pad_token_id = tokenizer.pad_token_id."""
    from transformers import AutoTokenizer

    where = locate(model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            where, revision=model.revision, trust_remote_code=model.trust_remote_code, use_fast=True
        )
    except (ValueError, OSError) as err:
        raise load_error(err, "the tokenizer of", model.name_or_path,
                         "check that the model directory or Hub id ships tokenizer files") from None
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelError(f"the tokenizer of {model.name_or_path} has no padding or end-of-text token",
                             "choose a model whose tokenizer can pad (most encoder models can)")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _padding(tok: TokenizerConfig) -> bool | str:
    return {"dynamic": False, "max_length": "max_length", "longest": "longest"}[tok.padding]


def _tokenizer_identity(tokenizer: PreTrainedTokenizerBase) -> str:
    """What the token ids depend on: the vocabulary and the rules (a fast tokenizer's whole definition)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        for state in ("truncation", "padding"):  # set by each call from its arguments, not part of the tokenizer
            spec.pop(state, None)
        definition = json.dumps(spec, sort_keys=True)
    else:
        definition = repr(sorted(tokenizer.get_vocab().items()))
    return f"{type(tokenizer).__name__}|{tokenizer.name_or_path}|{len(tokenizer)}|" + hashlib.sha256(
        definition.encode()).hexdigest()


def _fingerprint(ds: Dataset, tokenizer_identity: str, tok: TokenizerConfig) -> str:
    # Given explicitly so datasets does not pickle-hash the tokenizer (slow, and it warns when hashing fails).
    # The data's own fingerprint comes from the file's path, size and mtime and how it was split (core.data).
    key = f"{ds._fingerprint}|{tokenizer_identity}|{tok.model_dump_json()}|v2"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def tokenized_cache_dir() -> Path:
    """Where tokenized splits are kept between runs: beside the datasets cache (HF_DATASETS_CACHE)."""
    import datasets

    return Path(datasets.config.HF_DATASETS_CACHE).expanduser() / "finetune-tui-tokenized"


def _writable_cache_dir() -> Path | None:
    """tokenized_cache_dir(), created; None where it cannot be (a read-only or full home): tokenize in memory."""
    cache = tokenized_cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return cache


def _reopen(path: Path | None) -> Dataset | None:
    """A split tokenized by an earlier run, memory-mapped; None if there is none (or it is damaged, and is then
    tokenized again and rewritten). datasets reuses a map's cache only for file-backed inputs, and ours are not."""
    from datasets import Dataset

    if path is None or not path.exists():
        return None
    try:
        return Dataset.from_file(str(path))
    except Exception:
        return None


def tokenize_dataset(prepared: PreparedData, tokenizer: PreTrainedTokenizerBase, tok: TokenizerConfig,
                     task: Task | None = None) -> DatasetDict:
    """input_ids, attention_mask[, token_type_ids] and labels (int) for every split; the text columns are dropped.

    Padding: dynamic leaves rows unpadded (the collator pads each training batch); max_length pads every row to
    max_length; longest pads each map batch of MAP_BATCH rows to its longest row.

    Each split is written to an Arrow file under tokenized_cache_dir(), named by what it depends on, and a later
    run with the same data, tokenizer and settings memory-maps it instead of tokenizing again (60,000 rows:
    10 s to tokenize, a fraction of a second to reopen; bench/data.py). A task may return fewer rows than it was
    given (text-generation leaves out examples with nothing to learn, and packs)."""
    from datasets import DatasetDict

    from core.tasks import get_task

    padding = _padding(tok)
    task = task or get_task(prepared.task)  # the run's (Task.for_run) where its settings shape the tokens
    transform = task.label_transform(prepared)  # e.g. text-regression's label_scaling

    def encode(batch: dict[str, list[Any]], split: str) -> dict[str, Any]:
        return task.encode_batch(tokenizer, batch, tok, padding, transform, split)

    identity = _tokenizer_identity(tokenizer) + "|" + task.cache_key(prepared)
    cache = _writable_cache_dir()
    result = {}
    for split, ds in prepared.dataset.items():
        fingerprint = _fingerprint(ds, f"{identity}|{split}", tok)  # a task may encode splits differently
        path = cache / f"{fingerprint}.arrow" if cache is not None else None
        cached = _reopen(path)
        if cached is not None:
            result[split] = cached
            continue
        options: dict[str, Any] = {"batched": True, "batch_size": MAP_BATCH, "remove_columns": ds.column_names,
                                   "fn_kwargs": {"split": split}, "new_fingerprint": fingerprint,
                                   "desc": f"Tokenizing {split}"}
        with _all_cores():
            try:
                result[split] = ds.map(encode, cache_file_name=str(path) if path else None,
                                       keep_in_memory=path is None, **options)
            except OSError:  # the cache filled the disk or went read-only: the run itself need not fail
                result[split] = ds.map(encode, keep_in_memory=True, **options)
    return DatasetDict(result)


def check_lengths(tokenized: DatasetDict, limit: int | None, tok: TokenizerConfig) -> None:
    """With truncation off nothing cuts a text to what the model takes, and the first batch holding a longer one
    would crash the run part-way: refuse such rows before training, naming the splits and how many there are."""
    if tok.truncation or limit is None:
        return
    import pyarrow.compute as pc

    found = []
    for split, ds in tokenized.items():
        if len(ds) == 0:
            continue
        lengths = pc.list_value_length(ds.with_format("arrow")["input_ids"])  # Arrow's offsets: no rows decoded
        longer = int(pc.sum(pc.greater(lengths, limit)).as_py() or 0)
        if longer:
            found.append(f"{longer} of the {len(ds)} {split} rows (the longest {pc.max(lengths).as_py()} tokens)")
    if found:
        raise ConfigError(
            f"tokenizer.truncation is false, and {'; '.join(found)} are longer than the model's limit of {limit} "
            "tokens, which would stop the run at the first batch holding one",
            "set tokenizer.truncation: true to cut texts at tokenizer.max_length, or shorten or remove those rows",
        )


@contextmanager
def _all_cores() -> Iterator[None]:
    """Let the fast tokenizer encode each map batch on every core, then put TOKENIZERS_PARALLELISM back.

    The worker runs with it false (processes it starts later fork, and a tokenizer that used its thread pool
    before a fork warns and may deadlock in the child), and the tutorials' code tokenizes in parallel by default:
    on 2 cores 60,000 rows took 16 s this way against 10 s in parallel (bench/data.py). Several training
    processes on one machine all tokenize at the same time, so they keep one thread each."""
    if int(os.environ.get("LOCAL_WORLD_SIZE", "1")) > 1:
        yield
        return
    before = os.environ.get(PARALLELISM_ENV)
    os.environ[PARALLELISM_ENV] = "true"
    try:
        yield
    finally:
        if before is None:
            del os.environ[PARALLELISM_ENV]
        else:
            os.environ[PARALLELISM_ENV] = before


def make_collator(
    tokenizer: PreTrainedTokenizerBase, task: str | Task, *, pad_to_multiple_of: int | None = None,
    return_tensors: str = "pt",
) -> Any:
    """Pads each batch to its longest row (the task's collator: labels that are sequences are padded too). Needed
    for every padding mode: with dynamic nothing is padded yet, with longest rows from different map batches differ in
    length, and with max_length it pads nothing (all rows equal)."""
    from core.tasks import get_task

    # The run's task (Task.for_run) where its settings shape the batches (text-generation: packing).
    the_task = get_task(task) if isinstance(task, str) else task
    return the_task.collator(tokenizer, pad_to_multiple_of, return_tensors)


# --- lengths ---------------------------------------------------------------------------------------------------

@dataclass
class LengthStats:
    """Token lengths of a sample and what they mean for a max_length, a batch size and a padding mode.

    lengths are untruncated and include special tokens; percentiles are of those (nearest rank);
    share_truncated is the share of examples longer than max_length (cut when truncation is on, 0 when off);
    padding_share[mode] is the share of the tokens fed to the model that are padding."""

    lengths: list[int]
    max_length: int
    batch_size: int
    truncation: bool
    total: int  # examples the sample was drawn from
    percentiles: dict[int, int] = field(default_factory=dict)
    share_truncated: float = 0.0
    share_longer: float = 0.0  # longer than max_length, whatever truncation says
    mean: float = 0.0
    padding_share: dict[str, float] = field(default_factory=dict)

    @property
    def sampled(self) -> bool:
        return len(self.lengths) < self.total

    @classmethod
    def compute(cls, lengths: list[int], max_length: int, batch_size: int = 16, truncation: bool = True,
                total: int | None = None) -> LengthStats:
        stats = cls(list(lengths), max_length, max(1, batch_size), truncation, len(lengths) if total is None else total)
        stats._fill()
        return stats

    def with_settings(self, max_length: int | None = None, batch_size: int | None = None,
                      truncation: bool | None = None) -> LengthStats:
        """The same lengths under other settings; no tokenizing, cheap enough to run on every keystroke."""
        return LengthStats.compute(
            self.lengths, self.max_length if max_length is None else max_length,
            self.batch_size if batch_size is None else batch_size,
            self.truncation if truncation is None else truncation, self.total,
        )

    def histogram(self, bins: int = 20) -> list[tuple[int, int, int]]:
        """(lo, hi, count) with lo..hi inclusive, equal-width integer bins from the shortest to the longest length."""
        if not self.lengths or bins < 1:
            return []
        lo, hi = min(self.lengths), max(self.lengths)
        width = max(1, math.ceil((hi - lo + 1) / bins))
        n = math.ceil((hi - lo + 1) / width)
        counts = [0] * n
        for length in self.lengths:
            counts[(length - lo) // width] += 1
        return [(lo + i * width, lo + (i + 1) * width - 1, c) for i, c in enumerate(counts)]

    def _fill(self) -> None:
        lengths = sorted(self.lengths)
        n = len(lengths)
        if n == 0:
            self.percentiles = dict.fromkeys(PERCENTILES, 0)
            self.padding_share = dict.fromkeys(PADDING_KEYS, 0.0)
            return
        self.percentiles = {p: lengths[max(0, math.ceil(p / 100 * n) - 1)] for p in PERCENTILES}
        self.share_longer = sum(1 for x in lengths if x > self.max_length) / n
        self.share_truncated = self.share_longer if self.truncation else 0.0
        self.mean = sum(lengths) / n
        fed = [min(x, self.max_length) for x in self.lengths] if self.truncation else list(self.lengths)
        b = self.batch_size
        self.padding_share = {
            "dynamic": _random_batch_padding(sorted(fed), b),
            "dynamic+group_by_length": _grouped_padding(fed, b),
            "longest": _chunk_padding(fed, MAP_BATCH),
            "max_length": _share(sum(fed), sum(max(x, self.max_length) for x in fed)),
        }


def _share(real: float, fed: float) -> float:
    return 0.0 if fed <= 0 else max(0.0, 1.0 - real / fed)


def _random_batch_padding(sorted_lengths: list[int], b: int) -> float:
    """Expected padding share for batches of b drawn at random: each batch is padded to its longest row, and the
    chance that the k-th shortest row (1-based) is the longest of a random b-subset is C(k-1, b-1) / C(n, b).
    Exact and deterministic, unlike simulating a shuffle."""
    n = len(sorted_lengths)
    if b == 1:
        return 0.0
    if b >= n:
        return _share(sum(sorted_lengths), n * sorted_lengths[-1])
    log_total = math.lgamma(n + 1) - math.lgamma(b + 1) - math.lgamma(n - b + 1)
    expected_max = 0.0
    for k in range(b, n + 1):
        log_p = math.lgamma(k) - math.lgamma(b) - math.lgamma(k - b + 1) - log_total
        expected_max += sorted_lengths[k - 1] * math.exp(log_p)
    mean = sum(sorted_lengths) / n
    return _share(mean, expected_max)


def _chunk_padding(lengths: list[int], size: int) -> float:
    fed = real = 0
    for i in range(0, len(lengths), size):
        chunk = lengths[i:i + size]
        fed += max(chunk) * len(chunk)
        real += sum(chunk)
    return _share(real, fed)


def _grouped_padding(lengths: list[int], b: int, seed: int = 0) -> float:
    """Like transformers' LengthGroupedSampler: shuffle, cut into megabatches of 50 batches, sort each megabatch by
    length, cut it into batches."""
    order = list(lengths)
    random.Random(seed).shuffle(order)
    fed = real = 0
    mega = _MEGABATCH * b
    for i in range(0, len(order), mega):
        group = sorted(order[i:i + mega], reverse=True)
        for j in range(0, len(group), b):
            batch = group[j:j + b]
            fed += batch[0] * len(batch)
            real += sum(batch)
    return _share(real, fed)


def token_lengths(texts: list[Any], pairs: list[str] | None, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Untruncated token counts including special tokens, tokenized in batches (texts, or sentences as words)."""
    lengths: list[int] = []
    words = bool(texts) and isinstance(texts[0], list)  # sentences as lists of words (token-classification)
    for i in range(0, len(texts), MAP_BATCH):
        enc = tokenizer(
            texts[i:i + MAP_BATCH], pairs[i:i + MAP_BATCH] if pairs is not None else None,
            truncation=False, padding=False, verbose=False, is_split_into_words=words,
            return_attention_mask=False, return_token_type_ids=False,
        )
        lengths.extend(len(ids) for ids in enc["input_ids"])
    return lengths


def sample_indices(n: int, limit: int = SAMPLE_LIMIT, seed: int = 0) -> list[int]:
    """All of range(n), or `limit` of them drawn at random, in their original order."""
    if n <= limit:
        return list(range(n))
    return sorted(random.Random(seed).sample(range(n), limit))


def length_stats(
    texts: list[str], pairs: list[str] | None, tokenizer: PreTrainedTokenizerBase, max_length: int,
    batch_size: int = 16, truncation: bool = True,
) -> LengthStats:
    """Token length statistics of (at most SAMPLE_LIMIT sampled) texts or text pairs."""
    if pairs is not None and len(pairs) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(pairs)} pairs")
    total = len(texts)
    idx = sample_indices(total)
    if len(idx) < total:
        texts = [texts[i] for i in idx]
        pairs = [pairs[i] for i in idx] if pairs is not None else None
    lengths = token_lengths(list(texts), list(pairs) if pairs is not None else None, tokenizer)
    return LengthStats.compute(lengths, max_length, batch_size, truncation, total=total)


def dataset_length_stats(
    ds: Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int, batch_size: int = 16, truncation: bool = True,
    text_column: str = "text", pair_column: str | None = None,
) -> LengthStats:
    """length_stats for a Dataset (e.g. PreparedData.dataset["train"]), reading only the sampled rows."""
    idx = sample_indices(len(ds))
    sample = ds.select(idx) if len(idx) < len(ds) else ds
    texts = sample[text_column]
    pairs = sample[pair_column] if pair_column is not None and pair_column in ds.column_names else None
    lengths = token_lengths(list(texts), list(pairs) if pairs is not None else None, tokenizer)
    return LengthStats.compute(lengths, max_length, batch_size, truncation, total=len(ds))
