"""Stop part way, resume, and land where an uninterrupted run with the same seed lands."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

from core.config import parse_config
from core.errors import RunDirError
from core.events import EventWriter
from core.launch import create_run, resolve_config, resume_checkpoint
from core.rundir import RunDir
from core.worker import main as worker_main
from tests.conftest import tiny_config


def _settings(**extra: Any) -> dict[str, Any]:
    return {"save_strategy": "steps", "save_steps": 10, "logging_steps": 2, **extra}


def _run(raw: dict) -> RunDir:
    run_dir = create_run(resolve_config(parse_config(raw)))
    assert worker_main([str(run_dir.path)]) == 0, run_dir.log_tail()
    return run_dir


def _stop_at(monkeypatch: pytest.MonkeyPatch, run_dir: RunDir, step: int) -> None:
    """Ask for a stop the moment the run logs `step`, as the monitor's Stop button would."""
    original = EventWriter.emit

    def emit(self: EventWriter, type_: str, **fields: Any) -> dict[str, Any]:
        if type_ == "step" and fields.get("step", 0) >= step:
            run_dir.stop_path.write_text("stop")
        return original(self, type_, **fields)

    monkeypatch.setattr(EventWriter, "emit", emit)


def test_stopped_then_resumed_matches_uninterrupted(tiny_model: Path, tiny_data: dict, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    straight = _run(tiny_config(tiny_model, tiny_data, tmp_path / "straight", **_settings()))
    expected = straight.events()[-1]
    assert expected["type"] == "finished"

    interrupted = create_run(resolve_config(parse_config(tiny_config(tiny_model, tiny_data, tmp_path / "stopped",
                                                                     **_settings()))))
    with monkeypatch.context() as m:
        _stop_at(m, interrupted, 20)
        assert worker_main([str(interrupted.path)]) == 0
    stopped = interrupted.events()[-1]
    assert stopped["type"] == "stopped" and interrupted.status() == "stopped"
    assert stopped["checkpoint"] and Path(stopped["checkpoint"]).name.startswith("checkpoint-2")
    checkpoint = resume_checkpoint(interrupted)
    assert checkpoint == Path(stopped["checkpoint"])

    assert worker_main([str(interrupted.path), "--resume", str(checkpoint)]) == 0
    events = interrupted.events()
    finished = events[-1]
    assert finished["type"] == "finished" and interrupted.status() == "finished"
    assert [e["type"] for e in events].count("run_started") == 2
    assert events[[e["type"] for e in events].index("run_started", 1)]["resumed_from"] == str(checkpoint)
    assert finished["metrics"]["loss"] == pytest.approx(expected["metrics"]["loss"], abs=1e-3)
    assert finished["metrics"]["accuracy"] == pytest.approx(expected["metrics"]["accuracy"], abs=0.05)
    steps = [e["step"] for e in events if e["type"] == "step"]
    assert steps[-1] == [e["step"] for e in straight.events() if e["type"] == "step"][-1]


def test_resume_warns_about_changed_batch_size(tiny_model: Path, tiny_data: dict, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = create_run(resolve_config(parse_config(tiny_config(tiny_model, tiny_data, tmp_path / "r",
                                                                 **_settings(num_train_epochs=3)))))
    with monkeypatch.context() as m:
        _stop_at(m, run_dir, 10)
        assert worker_main([str(run_dir.path)]) == 0, run_dir.log_tail()
    assert run_dir.status() == "stopped"
    text = run_dir.config_path.read_text().replace("per_device_train_batch_size: 8", "per_device_train_batch_size: 4")
    run_dir.config_path.write_text(text)
    assert worker_main([str(run_dir.path), "--resume", str(resume_checkpoint(run_dir))]) == 0, run_dir.log_tail()
    assert run_dir.status() == "finished"  # warned, not refused
    restarted = [e for e in run_dir.events() if e["type"] == "run_started"][-1]
    assert any("per_device_train_batch_size changed from 8 to 4" in w for w in restarted["warnings"])
    assert "warning: per_device_train_batch_size changed" in capsys.readouterr().out


def test_resume_refusals(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="not a run directory"):
        resume_checkpoint(RunDir(tmp_path))
    run_dir = RunDir(tmp_path / "r")
    run_dir.prepare()
    writer = EventWriter(run_dir.events_path)
    writer.emit("run_started", engine="trainer")
    with pytest.raises(RunDirError, match="no checkpoint") as info:
        resume_checkpoint(run_dir)
    assert "died" in info.value.problem and "--overwrite" in (info.value.fix or "")
    writer.emit("finished", metrics={})
    with pytest.raises(RunDirError, match="nothing to resume"):
        resume_checkpoint(run_dir)


def test_half_written_checkpoint_is_never_chosen(tmp_path: Path) -> None:
    run_dir = RunDir(tmp_path / "r")
    run_dir.prepare()
    good = run_dir.checkpoints_dir / "checkpoint-10"
    good.mkdir(parents=True)
    (run_dir.checkpoints_dir / "checkpoint-20").mkdir()  # the save that the full disk cut short
    EventWriter(run_dir.events_path).emit("checkpoint", step=10, path=str(good))
    assert run_dir.last_checkpoint() == good


def test_full_disk_while_saving_is_a_clear_failure(tiny_model: Path, tiny_data: dict, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import core.engines.trainer as trainer_engine

    def full_disk(*_: Any, **__: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "r" / "model" / "model.safetensors"))

    monkeypatch.setattr(trainer_engine, "save_final_model", full_disk)
    run_dir = create_run(resolve_config(parse_config(tiny_config(tiny_model, tiny_data, tmp_path / "r",
                                                                 **_settings(num_train_epochs=2)))))
    assert worker_main([str(run_dir.path)]) == 1
    failed = run_dir.events()[-1]
    assert failed["type"] == "failed" and "the disk is full" in failed["error"]
    assert "model.safetensors" in failed["error"] and "resume" in failed["hint"]
    assert run_dir.last_checkpoint() is not None and run_dir.last_checkpoint().is_dir()


def test_sigkilled_run_shows_died_and_resumes_from_its_checkpoint(tiny_model: Path, tiny_data: dict,
                                                                  tmp_path: Path) -> None:
    import time

    from core.launch import resume_run, start_detached

    raw = tiny_config(tiny_model, tiny_data, tmp_path / "r", **_settings(max_steps=100000, save_steps=5,
                                                                          eval_strategy="no"))
    run = start_detached(parse_config(raw))
    deadline = time.monotonic() + 120
    while run.last_checkpoint() is None:
        assert time.monotonic() < deadline and run.is_live(), run.log_tail()
        time.sleep(0.2)
    run.kill()
    while run.is_live():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert run.status() == "died"
    assert run.log_tail(), "a died run still shows the tail of its log"
    checkpoint = resume_checkpoint(run)
    assert resume_run(run, detached=True, echo=lambda _: None) == 0
    while not [e for e in run.events() if e["type"] == "step" and e["step"] > int(checkpoint.name[11:])]:
        assert time.monotonic() < deadline and run.is_live(), run.log_tail()
        time.sleep(0.2)
    assert run.status() == "running"
    run.request_stop()
    while run.is_live():
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert run.status() == "stopped"
