"""The data suggests its task: a label column of lists or of joined labels calls for multi-label-classification, one
of fractional numbers for text-regression; whole numbers and class names claim nothing (1-5 stars are either)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import DataConfig
from core.data import inspect_dataset, load_sources


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    tags = (["billing"], ["billing", "bug"], [], ["ui"])
    return {
        "lists": _write(tmp_path / "comments.jsonl", "".join(
            json.dumps({"comment": f"comment {i} on the invoice page", "topics": tags[i % 4]}) + "\n"
            for i in range(24))),
        "joined": _write(tmp_path / "joined.tsv", "text\tlabel\n" + "".join(
            f"comment {i} on the invoice page\t{'billing|bug' if i % 2 else 'ui'}\n" for i in range(24))),
        "fractions": _write(tmp_path / "sts.csv", "sentence,score\n" + "".join(
            f"pair {i} of sentences,{i / 7:.2f}\n" for i in range(24))),
        "stars": _write(tmp_path / "stars.csv", "review,stars\n" + "".join(
            f"review {i} of a lamp,{1 + i % 5}\n" for i in range(24))),
        "classes": _write(tmp_path / "classes.csv", "text,label\n" + "".join(
            f"review {i} of a lamp,{('pos', 'neg')[i % 2]}\n" for i in range(24))),
    }


def _info(path: Path, task: str = "text-classification"):
    raw, _ = load_sources(DataConfig(train_file=str(path)))
    return inspect_dataset(raw, task=task)


@pytest.mark.parametrize(("name", "label", "task", "reason"), [
    ("lists", "topics", "multi-label-classification", "'topics' holds lists of labels"),
    ("joined", "label", "multi-label-classification", "'label' holds labels joined by '|', e.g. 'billing|bug'"),
    ("fractions", "score", "text-regression", "'score' holds numbers with fractions"),
])
def test_label_values_suggest_their_task(files: dict[str, Path], name: str, label: str, task: str,
                                         reason: str) -> None:
    info = _info(files[name])
    assert info.label_column == label
    assert info.task_hint is not None and info.task_hint.task == task
    assert info.task_hint.reason.startswith(reason)


@pytest.mark.parametrize("name", ["stars", "classes"])
def test_whole_numbers_and_class_names_claim_no_other_task(files: dict[str, Path], name: str) -> None:
    assert _info(files[name]).task_hint is None


def test_a_column_of_lists_is_the_label_by_its_content(tmp_path: Path) -> None:
    path = _write(tmp_path / "x.jsonl", "".join(json.dumps({"body": f"text number {i}", "kw": ["a", "b"][: i % 3]})
                                                + "\n" for i in range(12)))
    info = _info(path, "multi-label-classification")
    assert info.suggestion.label == "kw" and info.suggestion.reasons["label"] == "a column of lists"
    assert info.labels is not None and info.labels.counts == {"a": 8, "b": 4}


def test_inspect_names_the_task_to_set(files: dict[str, Path]) -> None:
    done = subprocess.run([sys.executable, "-m", "tui.cli", "inspect", str(files["lists"])],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert ("suggested task: multi-label-classification ('topics' holds lists of labels); inspect with --task "
            "multi-label-classification") in done.stdout
    same = subprocess.run([sys.executable, "-m", "tui.cli", "inspect", str(files["lists"]), "--task",
                           "multi-label-classification"], capture_output=True, text=True, timeout=120)
    assert same.returncode == 0 and "suggested task" not in same.stdout
    assert "rows per label: billing=12, bug=6, ui=6" in same.stdout
