"""Shared fixtures: a tiny BERT (2 layers, hidden 32) and a small learnable data set, built in temp dirs.

Tests train on these for speed; one end-to-end test uses the real bundled model.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def _share_the_cores() -> None:
    """Under pytest-xdist, each worker (and every process it starts) trains with its share of the cores.

    Two workers that each start a thread per core make torch's and TensorFlow's threads wait on each other: the two
    real-model demo tests side by side took 540 s that way and 337 s with one thread each on 2 cores."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        threads = str(max(1, (os.cpu_count() or 1) // workers))
        for name in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
            os.environ.setdefault(name, threads)


_share_the_cores()  # before any test module imports torch or tensorflow

POSITIVE = ["good", "great", "fine", "lovely", "excellent", "happy", "nice", "superb"]
NEGATIVE = ["bad", "awful", "poor", "terrible", "sad", "broken", "ugly", "horrible"]
FILLER = ["the", "a", "this", "movie", "film", "was", "is", "very", "really", "quite", "and", "plot", "actors"]


def tiny_rows(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "pos" if i % 2 == 0 else "neg"
        words = rng.choices(FILLER, k=rng.randint(2, 12)) + rng.choices(POSITIVE if label == "pos" else NEGATIVE, k=2)
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


def write_tsv(path: Path, rows: list[tuple[str, ...]], header: tuple[str, ...] | None = ("text", "label")) -> Path:
    lines = (["\t".join(header)] if header else []) + ["\t".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def build_tiny_model(directory: Path, words: list[str] | None = None, max_length: int = 128) -> Path:
    """A 2-layer BERT (hidden 32) with a WordPiece vocabulary of `words` (default: the tiny reviews' words and w0..w39;
    "##" pieces split words into sub-tokens)."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    if words is None:
        words = [*sorted(set(POSITIVE + NEGATIVE + FILLER)), *(f"w{i}" for i in range(40))]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    # transformers 5 takes the vocab as `vocab=`; `vocab_file=` is silently ignored (every token [UNK]).
    tokenizer = BertTokenizerFast(vocab=str(directory / "vocab.txt"), do_lower_case=True)
    tokenizer.model_max_length = max_length
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=max_length)
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def without_dropout(model: Path, out: Path) -> Path:
    """A copy of the model with dropout off, for tests that compare runs whose random masks would differ."""
    shutil.copytree(model, out)
    config = json.loads((out / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0)
    (out / "config.json").write_text(json.dumps(config))
    return out


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture
def tiny_data(tmp_path: Path) -> dict[str, Path]:
    return {
        "train": write_tsv(tmp_path / "train.tsv", tiny_rows(96, seed=1)),
        "test": write_tsv(tmp_path / "test.tsv", tiny_rows(24, seed=2)),
    }


def run_example(name: str, out: Path, epochs: float) -> Any:
    """examples/NAME with the bundled model, run the README's way (`finetune-tui run` in its own process, offline)
    for `epochs` into `out`; the finished run's RunDir. The config is saved beside the example for a moment, so its
    data paths resolve as the example's do."""
    import subprocess
    import sys

    import yaml

    from core.config import parse_config, save_config
    from core.rundir import RunDir

    repo = Path(__file__).resolve().parent.parent
    config = parse_config(yaml.safe_load((repo / "examples" / name).read_text()))
    config.training.num_train_epochs = epochs
    config.output_dir = out
    path = save_config(config, repo / "examples" / f".test-{Path(name).stem}-{os.getpid()}.yaml")
    try:
        result = subprocess.run([sys.executable, "-m", "tui.cli", "run", str(path)], cwd=repo, capture_output=True,
                                text=True, timeout=900, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    finally:
        path.unlink()
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    run = RunDir(out)
    assert run.events()[-1]["type"] == "finished"
    return run


def tiny_config(model: Path, data: dict[str, Path], out: Path, **training: object) -> dict:
    """A config mapping for a fast run: a few dozen steps of the tiny model."""
    return {
        "model": {"name_or_path": str(model)},
        "data": {"train_file": str(data["train"]), "test_file": str(data.get("test")) if data.get("test") else None,
                 "text_column": "text", "label_column": "label", "validation_fraction": 0.25},
        "tokenizer": {"max_length": 32},
        "training": {"num_train_epochs": 8, "learning_rate": 5e-3, "per_device_train_batch_size": 8,
                     "logging_steps": 2, "save_total_limit": 1, **training},
        "metrics": ["accuracy", "f1"],
        "output_dir": str(out),
    }


def engine_context(engine: str, raw: dict, stop_after: int | None = None, resume: Path | None = None,
                   run_dir: Any = None) -> Any:
    """What core.worker hands an engine, built in the test process so a test can say when a stop is requested."""
    from core.config import parse_config
    from core.data import prepare_data
    from core.engines.base import RunContext
    from core.events import EventWriter
    from core.launch import create_run, resolve_config
    from core.tokenization import load_tokenizer, tokenize_dataset

    config = resolve_config(parse_config({**raw, "engine": engine}))
    run_dir = run_dir or create_run(config)
    prepared = prepare_data(config.data, config.task)
    tokenizer = load_tokenizer(config.model)
    polls = [0]

    def stop_requested() -> bool:  # polled once per optimizer step
        polls[0] += 1
        return stop_after is not None and polls[0] >= stop_after

    return RunContext(config=config, run_dir=run_dir, events=EventWriter(run_dir.events_path), prepared=prepared,
                      tokenizer=tokenizer, tokenized=tokenize_dataset(prepared, tokenizer, config.tokenizer),
                      stop_requested=stop_requested, device="cpu", resume_from=resume)
