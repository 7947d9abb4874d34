"""Under torchrun, rank 0 alone reads, checks and tokenizes the data; the other ranks memory-map what it wrote.

Every rank preparing its own copy cost each of them the data's memory again (and the time). Rank 0 tokenizes into
the on-disk cache (core.tokenization), then writes `handoff.json` into the run directory: the PreparedData fields
and the tokenized split files. The others wait for that file, for this launch (torchrun's run id), and open the
splits with Dataset.from_file: pages are read from disk as training touches them, so they cost no RSS up front.
Where the cache could not be written (a read-only home), the handoff says so and each rank prepares for itself.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.data.prepare import PreparedData, prepare_data
from core.tasks import DEFAULT_TASK

if TYPE_CHECKING:
    from datasets import DatasetDict

    from core.config import DataConfig

HANDOFF_FILE = "handoff.json"
_POLL_S = 0.2


def _launch_id() -> str:
    # torchrun gives every launch its own id; a handoff left by an earlier launch (a resumed run) is not this one's.
    return os.environ.get("TORCHELASTIC_RUN_ID", "") + "|" + os.environ.get("MASTER_PORT", "")


def prepare_and_tokenize(
    data: DataConfig, run_path: Path, tokenize: Callable[[PreparedData], DatasetDict],
    on_prepared: Callable[[PreparedData], None] = lambda _: None, task: str = DEFAULT_TASK,
) -> tuple[PreparedData, DatasetDict]:
    """PreparedData (validation and test texts only) and the tokenized splits for this process; `on_prepared`
    runs on rank 0 between preparing and tokenizing."""
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    handoff = run_path / HANDOFF_FILE
    if world > 1 and rank != 0:
        received = receive(handoff)
        if received is not None:
            return received
        prepared = prepare_data(data, task)
        tokenized = tokenize(prepared)
        return _without_train_texts(prepared), tokenized
    prepared = prepare_data(data, task)
    on_prepared(prepared)
    tokenized = tokenize(prepared)
    if world > 1:
        publish(handoff, prepared, tokenized)
    return _without_train_texts(prepared), tokenized


def _without_train_texts(prepared: PreparedData) -> PreparedData:
    """The run trains on the tokenized splits and reports on validation and test: the training texts, the largest
    thing prepare_data holds, go back to the allocator before the model loads (a million rows: ~140 MB). A split
    held out of the training file maps rows of the file's whole table, so it gets a table of its own rows first."""
    import pyarrow as pa

    from core.data.arrow import own_rows

    prepared.dataset.pop("train", None)
    for split, ds in prepared.dataset.items():
        prepared.dataset[split] = own_rows(ds)
    # pyarrow's allocator keeps freed blocks for reuse; the model's tensors come from another allocator.
    pa.default_memory_pool().release_unused()
    return prepared


def publish(handoff: Path, prepared: PreparedData, tokenized: DatasetDict) -> None:
    files = {split: [f["filename"] for f in ds.cache_files] for split, ds in tokenized.items()}
    mapped = all(len(paths) == 1 for paths in files.values())
    fields = {k: v for k, v in asdict(prepared).items() if k != "dataset"} if mapped else None
    record: dict[str, Any] = {"launch": _launch_id(), "prepared": fields,
                              "tokenized": {split: paths[0] for split, paths in files.items()} if mapped else None}
    tmp = handoff.with_name(handoff.name + ".tmp")
    tmp.write_text(json.dumps(record), encoding="utf-8")
    tmp.replace(handoff)


def receive(handoff: Path) -> tuple[PreparedData, DatasetDict] | None:
    """Wait for rank 0's handoff (torchrun ends every rank if rank 0 fails, so this never waits for nothing);
    None when rank 0 could not leave its splits on disk."""
    from datasets import Dataset, DatasetDict

    while True:
        try:
            record = json.loads(handoff.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            record = None
        if record is not None and record.get("launch") == _launch_id():
            break
        time.sleep(_POLL_S)
    if record["prepared"] is None:
        return None
    tokenized = DatasetDict({split: Dataset.from_file(path) for split, path in record["tokenized"].items()})
    # The texts stay with rank 0, which alone evaluates and reports; the others train on the tokenized splits.
    return PreparedData(dataset=DatasetDict(), **record["prepared"]), tokenized
