"""The model card every run leaves in RUN/model/README.md: Hub metadata that huggingface_hub reads back (base model,
task, labels, the model-index with metrics.json's values), a body with the evaluation's tables, and loading code
that really loads the model it sits beside. Runs are real (the tiny model, a few steps), trained in-process."""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from huggingface_hub import ModelCard

from core.model_card import CARD_FILE, card_is_generated, hub_base_model, write_model_card
from core.rundir import RunDir
from tests.conftest import tiny_config
from tests.test_trainer_run import _run_in_process

NEEDS_KERAS = pytest.mark.skipif(importlib.util.find_spec("keras_hub") is None,
                                 reason='the keras engine needs pip install "finetune-tui[keras]"')


@pytest.fixture(scope="module")
def trained_run(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    from tests.conftest import tiny_rows, write_tsv

    root = tmp_path_factory.mktemp("card-run")
    data = {"train": write_tsv(root / "train.tsv", tiny_rows(96, seed=1)),
            "test": write_tsv(root / "test.tsv", tiny_rows(24, seed=2))}
    return _run_in_process(tiny_config(tiny_model, data, root / "run", max_steps=30, save_strategy="no"))


def _metrics(run: RunDir) -> dict[str, Any]:
    return json.loads(run.metrics_path.read_text())


def _code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)\n```", text, flags=re.S)


def _run_usage(card_text: str) -> str:
    """Execute the card's Python loading code as a reader would paste it; what it printed."""
    code = _code_blocks(card_text.split("## How to use", 1)[1], "python")[0]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "model card", "exec"), {})
    return out.getvalue()


def test_the_run_writes_a_card_whose_metadata_the_hub_library_reads_back(trained_run: RunDir) -> None:
    path = trained_run.model_dir / CARD_FILE
    assert path.is_file(), "the run process writes the card before `finished`"
    data = ModelCard.load(path).data
    assert data.pipeline_tag == "text-classification"
    assert data.library_name == "transformers"
    assert data.license == "other"
    assert {"finetune-tui", "text-classification"} <= set(data.tags)
    assert data.labels == ["neg", "pos"]
    assert data.base_model is None, "a local base model is no Hub id"
    assert data.datasets is None, "local files are no Hub dataset"
    assert data.model_name == "run"
    # The model-index holds every final metric of both splits, exactly as metrics.json does.
    metrics = _metrics(trained_run)
    found = {(r.dataset_split, r.metric_type): r.metric_value for r in data.eval_results}
    expected = {(split, name): value for split in ("validation", "test") for name, value in metrics[split].items()}
    assert found == expected
    assert {"accuracy", "f1"} <= set(data.metrics) and "loss" not in data.metrics
    assert all(r.task_type == "text-classification" and r.dataset_type == "local" for r in data.eval_results)
    assert card_is_generated(trained_run.path), "the card is as the run wrote it"


def test_the_body_holds_data_settings_tables_and_provenance(trained_run: RunDir) -> None:
    text = ModelCard.load(trained_run.model_dir / CARD_FILE).text
    assert "License: to do" in text and "`license: other`" in text
    started = next(e for e in trained_run.events() if e["type"] == "run_started")
    assert f"| train | {started['sizes']['train']} | `train.tsv` |" in text
    assert f"| test | {started['sizes']['test']} | `test.tsv` |" in text
    assert "25% of the training data, held out" in text
    assert "| learning rate | 0.005 (linear, warmup 0) |" in text
    assert "| batch | 8 per device x 1 accumulation x 1 process = 8 |" in text
    assert "| LoRA | no |" in text
    assert "| engine | trainer (Hugging Face Trainer) |" in text
    # The per-class table and confusion matrix the evaluation wrote, for both splits.
    for split in ("validation", "test"):
        report = json.loads((trained_run.path / "evaluation" / split / "metrics.json").read_text())
        section = text.split(f"### {split} (")[1].split("###")[0]
        assert "class  precision  recall      f1  support" in section
        assert "Confusion matrix (rows: true label, columns: predicted)" in section
        matrix = report["confusion_matrix"]["matrix"]
        for name, row in zip(report["labels"], matrix, strict=True):
            assert re.search(rf"^{name}\s+" + r"\s+".join(map(str, row)) + "$", section, flags=re.M), section
        support = report["per_class"]["pos"]["support"]
        assert re.search(rf"^pos\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+{support}$", section, flags=re.M)
    # How it was made: the versions of the run_started event.
    assert f"finetune-tui {started['versions']['finetune-tui']}, engine `trainer`" in text
    assert f"| transformers | {started['versions']['transformers']} |" in text
    # Nothing of this machine's paths but the model directory the loading code names.
    assert str(trained_run.model_dir.resolve()) in text
    assert str(trained_run.path.parent / "train.tsv") not in text


def test_the_cards_pipeline_line_loads_the_model(trained_run: RunDir) -> None:
    text = (trained_run.model_dir / CARD_FILE).read_text()
    assert f'pipeline("text-classification", model="{trained_run.model_dir.resolve()}")' in text
    printed = _run_usage(text)
    answer = ast.literal_eval(printed.strip())
    assert answer[0]["label"] in {"neg", "pos"} and 0 <= answer[0]["score"] <= 1
    bash = _code_blocks(text.split("## How to use", 1)[1], "bash")[0]
    assert bash == f'finetune-tui predict {trained_run.model_dir.resolve()} "Your text here."'


def test_a_card_for_a_hub_repository_names_it_and_no_local_path(trained_run: RunDir, tmp_path: Path) -> None:
    """Pushed cards: the repository in the loading code, the base model and dataset as Hub ids, no local path."""
    run = RunDir(shutil.copytree(trained_run.path, tmp_path / "hub-run"))
    config = yaml.safe_load(run.config_path.read_text())
    config["model"]["name_or_path"] = "google-bert/bert-base-uncased"
    config["data"] = {**config["data"], "train_file": None, "test_file": None,
                      "hub": {"name": "stanfordnlp/imdb", "train_split": "train", "test_split": "test"}}
    run.config_path.write_text(yaml.safe_dump(config))
    events = [json.loads(line) for line in run.events_path.read_text().splitlines()]
    for event in events:  # as a run of a Hub model records it
        if event["type"] == "run_started":
            event["local_model"] = None
    run.events_path.write_text("".join(json.dumps(e) + "\n" for e in events))
    card = ModelCard.load(write_model_card(run.path, "someone/imdb-tiny"))
    assert card.data.base_model == "google-bert/bert-base-uncased"
    assert card.data.datasets == ["stanfordnlp/imdb"]
    assert card.data.model_name == "imdb-tiny"
    splits = {r.dataset_split for r in card.data.eval_results}
    assert splits == {"train (held out)", "test"}
    assert {r.dataset_type for r in card.data.eval_results} == {"stanfordnlp/imdb"}
    assert 'pipeline("text-classification", model="someone/imdb-tiny")' in card.text
    assert "hf download someone/imdb-tiny --local-dir imdb-tiny" in card.text
    assert str(tmp_path) not in str(card) and "/tmp" not in str(card)
    assert card_is_generated(run.path)


def test_a_moved_run_keeps_its_card_unedited_and_its_local_base_model_local(trained_run: RunDir, tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Copied off the GPU box and looked at from elsewhere: the card still counts as finetune-tui's (push may rewrite
    it), and a base model that was a local directory is not taken for a Hub id; an edit makes the card the user's."""
    run = RunDir(shutil.copytree(trained_run.path, tmp_path / "elsewhere" / "moved"))
    monkeypatch.chdir(tmp_path)
    assert card_is_generated(run.path)
    assert ModelCard.load(write_model_card(run.path)).data.base_model is None
    card = run.model_dir / CARD_FILE
    card.write_text(card.read_text().replace("license: other", "license: apache-2.0"))
    assert not card_is_generated(run.path)


@pytest.mark.parametrize(("name", "expected"), [
    ("bundled:all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"),
    ("sentence-transformers/all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"),
    ("distilbert-base-uncased", "distilbert-base-uncased"),
    ("FacebookAI/roberta-base", "FacebookAI/roberta-base"),
    ("./models/mine", None),
    ("/abs/models/mine", None),
])
def test_only_hub_ids_become_base_model(name: str, expected: str | None) -> None:
    assert hub_base_model(name) == expected


def test_a_card_that_cannot_be_written_is_a_warning_not_a_failed_run(
        tiny_model: Path, tiny_data: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import core.model_card

    def broken(run_dir: Any, repo_id: Any = None) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(core.model_card, "write_model_card", broken)
    run = _run_in_process(tiny_config(tiny_model, tiny_data, tmp_path / "run", max_steps=4, eval_strategy="no",
                                      save_strategy="no"))
    finished = run.events()[-1]
    assert finished["type"] == "finished" and run.status() == "finished"
    assert not (run.model_dir / CARD_FILE).exists()
    assert "warning: the model card could not be written: OSError" in capsys.readouterr().out
    # An older run without a card gets one later, from its directory alone.
    monkeypatch.undo()
    assert ModelCard.load(write_model_card(run.path)).data.labels == ["neg", "pos"]


def test_a_token_classification_card_uses_the_tasks_pipeline(tmp_path: Path) -> None:
    """What differs per task comes from the Task: token-classification's pipeline and its aggregation."""
    from tests.ner_data import build_ner_model, sentences, write_conll

    model = build_ner_model(tmp_path / "ner-bert")
    train = write_conll(tmp_path / "train.conll", sentences(48, seed=1))
    test = write_conll(tmp_path / "test.conll", sentences(12, seed=3))
    run = _run_in_process({
        "task": "token-classification", "model": {"name_or_path": str(model)},
        "data": {"train_file": str(train), "test_file": str(test)}, "tokenizer": {"max_length": 32},
        "training": {"max_steps": 12, "learning_rate": 5e-3, "per_device_train_batch_size": 8,
                     "save_strategy": "no"},
        "output_dir": str(tmp_path / "run")})
    card = ModelCard.load(run.model_dir / CARD_FILE)
    assert card.data.pipeline_tag == "token-classification"
    assert {"B-PER", "I-PER", "O"} <= set(card.data.labels)
    assert 'aggregation_strategy="first"' in card.text
    assert "Entities per type (IOB2):" in card.text
    printed = _run_usage(card.text)
    assert printed.startswith("["), printed


@NEEDS_KERAS
@pytest.mark.slow
def test_a_keras_runs_card_loads_it_with_finetune_tui(tiny_model: Path, tiny_data: dict, tmp_path: Path) -> None:
    """The keras engine saves model.keras, not a transformers model: the card gives finetune-tui's loader, which
    works, and does not claim the transformers library."""
    raw = {**tiny_config(tiny_model, tiny_data, tmp_path / "run", max_steps=4, save_strategy="no"),
           "engine": "keras"}
    run = _run_in_process(raw)
    card = ModelCard.load(run.model_dir / CARD_FILE)
    assert card.data.library_name is None and {"keras", "tensorflow"} <= set(card.data.tags)
    assert card.data.pipeline_tag == "text-classification" and card.data.labels == ["neg", "pos"]
    metrics = _metrics(run)
    assert {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results} == {
        (split, name): value for split in ("validation", "test") for name, value in metrics[split].items()}
    assert "pipeline(" not in card.text and "model.keras" in card.text
    printed = _run_usage(card.text)
    assert "'label'" in printed and ("'neg'" in printed or "'pos'" in printed), printed
