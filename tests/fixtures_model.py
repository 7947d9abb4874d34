"""A fixed working directory for the wizard and plain-mode tests: `tiny-bert/` (a 1-layer BERT config and
tokenizer from tests.fixtures_data) and `reviews.csv` (40 labelled reviews). Tests chdir into it, so the
paths the UI shows (and the snapshots hold) are the same on every machine.

Use with `from tests.fixtures_model import in_workdir_fixture, workdir_fixture  # noqa: F401`; tests ask for
`in_workdir` (registered under that name so the parameter does not shadow the import, ruff F811)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures_data import NEG, POS, build_tiny_tokenizer, write_delimited


def reviews(n: int) -> list[tuple[str, str]]:
    """Three phrases a review (10 to 17 tokens with [CLS]/[SEP]), so a max_length of 8 truncates them all."""
    out = []
    for i in range(n):
        pool, label = (POS, "pos") if i % 2 == 0 else (NEG, "neg")
        j = i // 2
        out.append((f"{pool[j % len(pool)]} and {pool[(j + 3) % len(pool)]} and {pool[(j + 6) % len(pool)]}", label))
    return out


@pytest.fixture(scope="session", name="workdir")
def workdir_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wizard")
    build_tiny_tokenizer(root / "tiny-bert")
    write_delimited(root / "reviews.csv", reviews(40), header=("text", "label"))
    return root


@pytest.fixture(name="in_workdir")
def in_workdir_fixture(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """chdir into the work directory, without what an earlier test saved there."""
    monkeypatch.chdir(workdir)
    for stale in ("finetune.yaml", "plain.yaml"):
        (workdir / stale).unlink(missing_ok=True)
    for folder in ("configs",):
        if (workdir / folder).is_dir():
            for f in (workdir / folder).iterdir():
                f.unlink()
    return workdir
