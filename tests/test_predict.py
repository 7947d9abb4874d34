"""`finetune-tui predict`: texts on the command line and csv/tsv/jsonl files, for run and model directories."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from core.config import parse_config, save_config
from core.errors import DataError
from core.predict_file import default_output, predict_file
from core.rundir import RunDir
from tests.conftest import tiny_config, tiny_rows, write_tsv
from tests.test_trainer_run import _run_in_process
from tui.cli import main

OFFLINE = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
TEXTS = ["great lovely superb film", "awful terrible broken plot", "the movie"]


@pytest.fixture(scope="module")
def trained_run(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    root = tmp_path_factory.mktemp("predict-run")
    data = {"train": write_tsv(root / "train.tsv", tiny_rows(96, seed=1))}
    raw = tiny_config(tiny_model, data, root / "run", max_steps=45, eval_strategy="no", save_strategy="no")
    return _run_in_process(raw)


def _probabilities_ok(probs: dict[str, float], labels: set[str]) -> bool:
    return set(probs) == labels and abs(sum(probs.values()) - 1) < 1e-4 and all(0 <= p <= 1 for p in probs.values())


@pytest.mark.parametrize("target", ["run", "model"])
def test_predict_texts(trained_run: RunDir, target: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = trained_run.path if target == "run" else trained_run.model_dir
    assert main(["predict", str(path), *TEXTS, "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in lines] == TEXTS
    for r in lines:
        assert _probabilities_ok(r["probabilities"], {"neg", "pos"})
        assert r["predicted"] == max(r["probabilities"], key=r["probabilities"].get)
    assert lines[0]["predicted"] == "pos" and lines[1]["predicted"] == "neg"  # it learned something

    assert main(["predict", str(path), TEXTS[0]]) == 0
    out = capsys.readouterr().out
    assert out.startswith("pos\t") and TEXTS[0] in out and "neg " in out


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl"])
def test_predict_input_file(trained_run: RunDir, tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"id": i, "review": t} for i, t in enumerate(TEXTS * 3)]
    source = tmp_path / f"in.{fmt}"
    if fmt == "jsonl":
        source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        pd.DataFrame(rows).to_csv(source, sep="\t" if fmt == "tsv" else ",", index=False)
    assert main(["predict", str(trained_run.path), "--input", str(source)]) == 0
    output = default_output(source)
    assert output.name == f"in.predictions.{fmt}" and str(output) in capsys.readouterr().out
    if fmt == "jsonl":
        out = [json.loads(line) for line in output.read_text().splitlines()]
        assert [r["id"] for r in out] == [r["id"] for r in rows] and [r["review"] for r in out] == TEXTS * 3
        assert all(_probabilities_ok(r["probabilities"], {"neg", "pos"}) for r in out)
        predicted = [r["predicted"] for r in out]
    else:
        table = pd.read_csv(output, sep="\t" if fmt == "tsv" else ",")
        assert list(table.columns) == ["id", "review", "predicted", "probability_neg", "probability_pos"]
        assert table["review"].tolist() == TEXTS * 3
        assert np.allclose(table["probability_neg"] + table["probability_pos"], 1, atol=1e-4)
        predicted = table["predicted"].tolist()
    assert predicted[:2] == ["pos", "neg"] and predicted[:3] == predicted[3:6]
    # An existing output is not replaced without --overwrite.
    assert main(["predict", str(trained_run.path), "--input", str(source)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["predict", str(trained_run.path), "--input", str(source), "--overwrite"]) == 0


def test_predict_refuses_a_directory_without_a_model(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a model")
    result = subprocess.run([sys.executable, "-m", "tui.cli", "predict", str(tmp_path), "hello"], capture_output=True,
                            text=True, env=OFFLINE, timeout=300)
    assert result.returncode == 2, result.stderr
    assert str(tmp_path) in result.stderr and "fix:" in result.stderr and "Traceback" not in result.stderr


def test_predict_needs_something_to_predict(trained_run: RunDir, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", str(trained_run.path)]) == 2
    assert "--input" in capsys.readouterr().err


class _FakePairs:
    def __init__(self) -> None:
        from core.tasks import get_task

        self.labels = ["no", "yes"]
        self.task = get_task("text-classification")
        self.meta = {"task": self.task.name, "labels": self.labels}
        self.seen: tuple[list[str], list[str] | None] | None = None

    def predict(self, texts: list[str], pairs: list[str] | None = None, batch_size: int = 32) -> list[dict]:
        self.seen = (texts, pairs)
        return self.task.answers(np.array([[0.25, 0.75]] * len(texts)), self.meta)


def test_pair_columns_come_from_the_run(tiny_model: Path, tiny_data: dict, tmp_path: Path) -> None:
    run = tmp_path / "run"
    raw: dict[str, Any] = tiny_config(tiny_model, tiny_data, run)
    raw["data"].update(text_column="question", text_pair_column="answer")
    save_config(parse_config(raw), run / "config.yaml")
    source = tmp_path / "qa.tsv"
    source.write_text("question\tanswer\tnote\nwho?\tme\tx\nwhy?\tbecause\ty\n")
    fake = _FakePairs()
    result = predict_file(run, source, predictor=fake)
    assert fake.seen == (["who?", "why?"], ["me", "because"])
    assert (result.text_column, result.text_pair_column, result.rows) == ("question", "answer", 2)
    assert pd.read_csv(result.output, sep="\t")["predicted"].tolist() == ["yes", "yes"]

    other = tmp_path / "other.tsv"
    other.write_text("question\treply\nwho?\tme\n")
    with pytest.raises(DataError, match="--pair-column"):
        predict_file(run, other, predictor=_FakePairs())
    named = predict_file(run, other, predictor=_FakePairs(), text_pair_column="reply")
    assert named.text_pair_column == "reply"


def test_headerless_single_column_file(tmp_path: Path) -> None:
    source = tmp_path / "texts.csv"
    source.write_text("this is the first review of many words\nand this one is the second review\n")
    fake = _FakePairs()
    result = predict_file(tmp_path, source, predictor=fake)
    assert fake.seen is not None and fake.seen[0] == ["this is the first review of many words",
                                                     "and this one is the second review"]
    assert result.text_column == "column_0"


def test_integer_labels_speak_in_label_names_everywhere(tiny_model: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """GLUE/SST-2 style data (labels 0/1, some texts opening with a bare ") with data.label_names: the run says how it
    read the file, and the model, the report, predict and the pipeline all use the names."""
    rows = [(f'"{text}' if i % 4 == 0 else text, "1" if label == "pos" else "0")
            for i, (text, label) in enumerate(tiny_rows(96, seed=3))]
    names = tmp_path / "labels.txt"
    names.write_text("negative\npositive\n")
    data = {"train": write_tsv(tmp_path / "sst2.tsv", rows, header=("sentence", "label"))}
    raw = tiny_config(tiny_model, data, tmp_path / "run", max_steps=45, eval_strategy="no", save_strategy="no")
    raw["data"] = {**raw["data"], "text_column": "sentence", "label_names": str(names)}
    run = _run_in_process(raw)
    assert "note: read with no quote processing" in capsys.readouterr().out  # the run's stdout (in this process)
    assert run.summary().step > 0 and run.events()[0]["sizes"]["train"] + run.events()[0]["sizes"]["validation"] == 96
    config = json.loads((run.model_dir / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    report = json.loads((run.path / "evaluation" / "validation" / "metrics.json").read_text())
    assert report["confusion_matrix"]["labels"] == ["negative", "positive"]
    assert main(["predict", str(run.path), TEXTS[0], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["predicted"] == "positive"

    from transformers import pipeline

    assert pipeline("text-classification", model=str(run.model_dir))(TEXTS[1])[0]["label"] == "negative"
