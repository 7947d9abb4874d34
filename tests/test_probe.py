"""The batch-size probe keeps the effective batch and stops where memory runs out."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import parse_config
from core.probe import apply, candidates, format_probe, probe
from tests.conftest import tiny_config


def test_candidates_divide_the_effective_batch() -> None:
    assert candidates(32) == [1, 2, 4, 8, 16, 32]
    assert candidates(24) == [1, 2, 4, 8, 24]
    assert candidates(1) == [1]


def test_probe_on_cpu_keeps_effective_batch(tiny_model: Path, tiny_data: dict, tmp_path: Path) -> None:
    config = parse_config(tiny_config(tiny_model, tiny_data, tmp_path / "r", per_device_train_batch_size=4,
                                      gradient_accumulation_steps=4))
    rows: list[int] = []
    result = probe(config, on_row=lambda row: rows.append(row.batch_size))
    assert rows == [1, 2, 4, 8, 16]
    assert result.device == "cpu" and all(r.fits and r.seconds_per_step and r.peak_memory_mb for r in result.rows)
    assert result.per_device_train_batch_size == 16 and result.gradient_accumulation_steps == 1
    updated = apply(config, result)
    t = updated.training
    assert t.per_device_train_batch_size * t.gradient_accumulation_steps == 16
    assert config.training.per_device_train_batch_size == 4  # the original is left alone
    assert "s/step" in format_probe(result) and "effective batch of 16" in format_probe(result)


def test_probe_stops_at_the_memory_limit(tiny_model: Path, tiny_data: dict, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import core.probe as probe_module

    peaks = iter([100.0, 100.0, 100.0, 10_000_000.0, 10_000_000.0])
    monkeypatch.setattr(probe_module, "_peak_rss_mb", lambda: next(peaks))
    config = parse_config(tiny_config(tiny_model, tiny_data, tmp_path / "r", per_device_train_batch_size=8,
                                      gradient_accumulation_steps=1))
    result = probe(config)
    assert [r.fits for r in result.rows] == [True, True, False]
    assert result.per_device_train_batch_size == 2 and result.gradient_accumulation_steps == 4
    assert "over 85%" in result.rows[-1].note


def test_probe_cli_writes_the_layout_and_prints_json(tiny_model: Path, tiny_data: dict, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import json

    import yaml

    from core.config import load_config
    from tui.cli import main

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tiny_model, tiny_data, tmp_path / "r", per_device_train_batch_size=2,
                                               gradient_accumulation_steps=4)))
    assert main(["probe", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["per_device_train_batch_size"] == 8 and result["gradient_accumulation_steps"] == 1
    assert load_config(path).training.per_device_train_batch_size == 2  # untouched without --write
    assert main(["probe", str(path), "--write"]) == 0
    assert "wrote the batch layout" in capsys.readouterr().out
    training = load_config(path).training
    assert (training.per_device_train_batch_size, training.gradient_accumulation_steps) == (8, 1)


def test_resume_cli_refuses_a_finished_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from core.events import EventWriter
    from core.rundir import RunDir
    from tui.cli import main

    run_dir = RunDir(tmp_path / "r")
    run_dir.prepare()
    EventWriter(run_dir.events_path).emit("finished", metrics={})
    assert main(["resume", str(run_dir.path)]) == 2
    err = capsys.readouterr().err
    assert "nothing to resume" in err and "fix:" in err


@pytest.mark.parametrize("task", ["text-regression", "multi-label-classification"])
def test_probe_trains_each_tasks_head_on_labels_of_its_shape(task: str, tiny_model: Path, tiny_data: dict,
                                                              tmp_path: Path) -> None:
    """A regression head's MSE wants float labels and a multi-label head's BCE a 0/1 row per example: the probe
    asks the task, where long class ids failed with a dtype error."""
    raw = tiny_config(tiny_model, tiny_data, tmp_path / "r", per_device_train_batch_size=2)
    del raw["metrics"]
    config = parse_config({**raw, "task": task})
    result = probe(config)
    assert [r.batch_size for r in result.rows] == [1, 2] and all(r.fits for r in result.rows)
