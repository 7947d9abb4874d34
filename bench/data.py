"""6. Data: tokenizing a 60,000-row dataset, the first time and again.

finetune-tui's path, as its worker runs it (core.data.prepare_data, core.tokenization.load_tokenizer and
tokenize_dataset, with TOKENIZERS_PARALLELISM=false as the worker sets it; tokenize_dataset itself lets the
tokenizer use every core), each in a fresh interpreter, twice, with an empty cache directory of its own: the second
process reopens what the first cached on disk. Within each process tokenize_dataset also runs twice. For
comparison, the tutorials' path (load_dataset("csv") + Dataset.map with the tokenizer, TOKENIZERS_PARALLELISM
unset as in a tutorial) with an empty datasets cache, then again from that cache."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import Result, bench_env, log, run_python, settle, varied_rows, write_csv

ROWS = 60_000
MAX_LENGTH = 128


def _product(train: Path) -> dict[str, Any]:
    """Run in a fresh interpreter: finetune-tui's data path, timed step by step."""
    out: dict[str, Any] = {}
    t = time.perf_counter()
    import datasets  # noqa: F401  (imported up front on both paths, so the timings below are the work alone)
    import pandas  # noqa: F401
    import transformers  # noqa: F401

    from core.config import DataConfig, ModelConfig, TokenizerConfig
    from core.data import prepare_data
    from core.tokenization import load_tokenizer, tokenize_dataset

    out["import_s"] = time.perf_counter() - t
    t = time.perf_counter()
    prepared = prepare_data(DataConfig(train_file=train, text_column="text", label_column="label"))
    out["prepare_s"] = time.perf_counter() - t
    t = time.perf_counter()
    tokenizer = load_tokenizer(ModelConfig())
    out["load_tokenizer_s"] = time.perf_counter() - t
    tok = TokenizerConfig(max_length=MAX_LENGTH)
    t = time.perf_counter()
    first = tokenize_dataset(prepared, tokenizer, tok)
    out["tokenize_s"] = time.perf_counter() - t
    t = time.perf_counter()
    tokenize_dataset(prepared, tokenizer, tok)
    out["tokenize_again_same_process_s"] = time.perf_counter() - t
    out["rows"] = sum(len(ds) for ds in first.values())
    out["cache_files"] = sum(len(ds.cache_files) for ds in first.values())
    return out


def _tutorial(train: Path) -> dict[str, Any]:
    """Run in a fresh interpreter: the tutorials' load_dataset + map, with HF_DATASETS_CACHE set by the caller."""
    out: dict[str, Any] = {}
    t = time.perf_counter()
    import pandas  # noqa: F401
    from datasets import load_dataset
    from transformers import AutoTokenizer

    from core.config import BUNDLED_MODEL
    from core.models import resolve_model

    out["import_s"] = time.perf_counter() - t
    t = time.perf_counter()
    dataset = load_dataset("csv", data_files={"train": str(train)})
    out["load_dataset_s"] = time.perf_counter() - t
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(BUNDLED_MODEL))
    t = time.perf_counter()
    tokenized = dataset.map(lambda b: tokenizer(b["text"], truncation=True, max_length=MAX_LENGTH), batched=True)
    out["tokenize_s"] = time.perf_counter() - t
    out["rows"] = len(tokenized["train"])
    out["cache_files"] = len(tokenized["train"].cache_files)
    return out


def _child(which: str, train: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    settle()
    t = time.perf_counter()
    out = run_python(["-m", "bench.data", which, str(train)], timeout=900, env=env)
    result = json.loads(out.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - t
    return result


def run(work: Path, quick: bool) -> Result:
    rows = 6_000 if quick else ROWS
    result = Result("data", f"Data: tokenizing {rows:,} rows, first time and again")
    log(f"data: writing {rows:,} rows")
    train = write_csv(work / "train.csv", varied_rows(rows, seed=61))
    mb = train.stat().st_size / 2**20
    runs = {}
    product_cache = bench_env(HF_DATASETS_CACHE=str(work / "product-cache"))
    for label in ("first", "second"):
        log(f"data: finetune-tui path, {label} process")
        runs[label] = _child("product", train, product_cache)
    cache = bench_env(HF_DATASETS_CACHE=str(work / "hf-datasets-cache"))
    del cache["TOKENIZERS_PARALLELISM"]  # a tutorial leaves it unset: the tokenizer's own default, every core
    tutorial = {}
    for label in ("first", "cached"):
        log(f"data: tutorial path (load_dataset + map), {label}")
        tutorial[label] = _child("tutorial", train, cache)

    def total(r: dict[str, Any]) -> float:
        return r["prepare_s"] + r["tokenize_s"]

    result.figures = {
        "rows": rows, "csv_mb": round(mb, 1), "max_length": MAX_LENGTH,
        "finetune_tui": {k: {kk: round(vv, 3) if isinstance(vv, float) else vv for kk, vv in v.items()}
                         for k, v in runs.items()},
        "tutorial": {k: {kk: round(vv, 3) if isinstance(vv, float) else vv for kk, vv in v.items()}
                     for k, v in tutorial.items()},
        "finetune_tui_caches_tokenized_data": runs["first"]["cache_files"] > 0,
    }
    first, second = runs["first"], runs["second"]
    result.row("finetune-tui: load + check + split (prepare_data)",
               f"{first['prepare_s']:.2f} s first, {second['prepare_s']:.2f} s second process")
    result.row("finetune-tui: tokenize (first process / same process again / second process)",
               f"{first['tokenize_s']:.2f} / {first['tokenize_again_same_process_s']:.2f} / "
               f"{second['tokenize_s']:.2f} s")
    result.row("finetune-tui: data ready (prepare + tokenize), first / second",
               f"{total(first):.2f} / {total(second):.2f} s")
    result.row("tutorial: load_dataset csv + map, empty cache",
               f"{tutorial['first']['load_dataset_s']:.2f} + {tutorial['first']['tokenize_s']:.2f} s")
    result.row("tutorial: the same from the datasets cache",
               f"{tutorial['cached']['load_dataset_s']:.2f} + {tutorial['cached']['tokenize_s']:.2f} s")
    result.row("rows per second tokenized (finetune-tui, first)", f"{rows / first['tokenize_s']:,.0f}")
    if not result.figures["finetune_tui_caches_tokenized_data"]:
        result.notes.append(
            "finetune-tui does not cache tokenized data: its datasets live in memory (parsed in-process, no Arrow "
            "cache files), so Dataset.map has no cache to write or reuse; every run tokenizes again."
        )
    result.method = (
        f"{rows:,} varied-length rows ({mb:.1f} MB csv), max_length {MAX_LENGTH}. "
        + __doc__.split("\n\n", 1)[1].replace("\n", " ").strip()
    )
    return result


if __name__ == "__main__":
    which, path = sys.argv[1], Path(sys.argv[2])
    print(json.dumps(_product(path) if which == "product" else _tutorial(path)))
