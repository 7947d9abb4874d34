"""events.jsonl and run directories: the only interface between a run and whoever watches it."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.console import format_runs
from core.errors import RunDirError
from core.events import EventTail, EventWriter, read_events
from core.rundir import RunDir, list_runs


def test_half_written_line_waits_and_corrupt_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    writer = EventWriter(path)
    writer.emit("step", step=1, loss=0.5)
    with open(path, "a") as f:
        f.write("{not json}\n")
        f.write('{"type": "step", "time": 1, "step": 2, "lo')
    tail = EventTail(path)
    first = tail.poll()
    assert [e["step"] for e in first] == [1]
    assert tail.skipped == 1 and "line 2" in tail.warnings[0]
    with open(path, "a") as f:
        f.write('ss": 0.4}\n')
    assert [e["step"] for e in tail.poll()] == [2]


def test_nan_is_written_as_text_not_invalid_json(tmp_path: Path) -> None:
    writer = EventWriter(tmp_path / "e.jsonl")
    writer.emit("step", step=1, loss=float("nan"))
    assert read_events(tmp_path / "e.jsonl")[0]["loss"] == "nan"
    with pytest.raises(ValueError):
        writer.emit("bogus")


def _hold_lock(run_dir: RunDir) -> subprocess.Popen[str]:
    code = f"from core.rundir import RunDir; import time; RunDir({str(run_dir.path)!r}).acquire_lock(); " \
           "print('held', flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, process_group=0)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_status_running_then_died_when_killed(tmp_path: Path) -> None:
    run_dir = RunDir(tmp_path / "run")
    run_dir.prepare()
    EventWriter(run_dir.events_path).emit("run_started", engine="trainer")
    proc = _hold_lock(run_dir)
    try:
        assert run_dir.is_live() and run_dir.status() == "running"
        with pytest.raises(RunDirError, match="still going"):
            RunDir(run_dir.path).prepare(overwrite=True)
        run_dir.kill()
        proc.wait(timeout=10)
    finally:
        proc.kill()
    assert run_dir.status() == "died"


def test_terminal_events_decide_status(tmp_path: Path) -> None:
    for kind in ("finished", "failed", "stopped"):
        rd = RunDir(tmp_path / kind)
        rd.prepare()
        w = EventWriter(rd.events_path)
        w.emit("run_started", engine="trainer", dataset="d.tsv", primary_metric="accuracy", total_steps=10)
        w.emit("eval", step=5, metrics={"accuracy": 0.5})
        w.emit("eval", step=10, metrics={"accuracy": 0.75})
        w.emit(kind)
        assert rd.status() == kind
    runs = list_runs(tmp_path)
    assert {r.status for r in runs} == {"finished", "failed", "stopped"}
    assert all(r.best == 0.75 for r in runs)
    assert "accuracy 0.7500" in format_runs(runs)


def _earlier_run(path: Path) -> RunDir:
    run_dir = RunDir(path)
    run_dir.prepare()
    run_dir.config_path.write_text("engine: trainer\n")
    EventWriter(run_dir.events_path).emit("run_started", engine="trainer")
    (run_dir.path / "model").mkdir()
    (run_dir.path / "model" / "model.safetensors").write_text("weights")
    return run_dir


def test_prepare_replaces_an_earlier_run_only_when_asked(tmp_path: Path) -> None:
    run_dir = _earlier_run(tmp_path / "run")
    with pytest.raises(RunDirError, match="holds an earlier run") as info:
        run_dir.prepare()
    assert "--overwrite" in info.value.fix
    assert (run_dir.path / "model" / "model.safetensors").read_text() == "weights"
    run_dir.prepare(overwrite=True)
    assert run_dir.path.is_dir() and not any(run_dir.path.iterdir())


def test_overwrite_never_deletes_a_directory_that_is_not_a_run(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    (folder / "model").mkdir()  # a name a run also writes: still not ours without a run's config and events
    (folder / "model" / "weights.bin").write_text("mine too")
    with pytest.raises(RunDirError, match="not a finetune-tui run") as info:
        RunDir(folder).prepare(overwrite=True)
    assert "--overwrite only replaces an earlier run" in info.value.fix
    assert (folder / "notes.txt").read_text() == "mine"
    assert (folder / "model" / "weights.bin").read_text() == "mine too"


def test_overwrite_keeps_a_run_that_also_holds_the_users_files(tmp_path: Path) -> None:
    run_dir = _earlier_run(tmp_path / "run")
    (run_dir.path / "analysis.ipynb").write_text("my notebook")
    before = sorted(p.relative_to(run_dir.path) for p in run_dir.path.rglob("*"))
    with pytest.raises(RunDirError, match=r"analysis\.ipynb"):
        run_dir.prepare(overwrite=True)
    assert sorted(p.relative_to(run_dir.path) for p in run_dir.path.rglob("*")) == before


def test_unwritable_output_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with monkeypatch.context() as m:
        if os.geteuid() == 0:  # root (as in CI) may write anywhere: the refusal a user gets is raised as the OS would
            def denied(self: Path, *_: object, **__: object) -> None:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))

            m.setattr(Path, "mkdir", denied)
        with pytest.raises(RunDirError) as info:
            RunDir(ro / "run").prepare()
    assert info.value.problem == f"cannot write to output_dir {ro / 'run'}: Permission denied"
    assert info.value.fix == "choose an output_dir you can write to, with free space"
    assert not (ro / "run").exists()


def test_output_dir_under_a_file_is_refused_even_for_root(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(RunDirError) as info:
        RunDir(f / "run").prepare()
    assert info.value.problem == f"cannot write to output_dir {f / 'run'}: Not a directory"
    assert f.read_text() == "x"


def test_output_dir_that_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(RunDirError, match="is a file"):
        RunDir(f).prepare()
    assert f.read_text() == "x"  # refused, not replaced


def test_replaced_event_log_is_read_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    EventWriter(path).emit("step", step=1, loss=0.5)
    EventWriter(path).emit("step", step=2, loss=0.4)
    tail = EventTail(path)
    assert [e["step"] for e in tail.poll()] == [1, 2]
    path.unlink()
    EventWriter(path).emit("run_started", engine="trainer")
    assert [e["type"] for e in tail.poll()] == ["run_started"]


def test_best_metric_ignores_the_test_split_and_new_runs_are_starting(tmp_path: Path) -> None:
    from core.config import parse_config, save_config

    rd = RunDir(tmp_path / "r")
    rd.prepare()
    save_config(parse_config({"data": {"train_file": "x.tsv"}}), rd.config_path)
    assert rd.status() == "starting"  # config written, worker not yet holding its lock
    w = EventWriter(rd.events_path)
    w.emit("run_started", engine="trainer", primary_metric="accuracy")
    w.emit("eval", step=5, split="validation", metrics={"accuracy": 0.6})
    w.emit("eval", step=5, split="test", metrics={"accuracy": 0.9})
    w.emit("finished")
    assert rd.summary().best == 0.6
    assert list_runs(tmp_path)[0].best == 0.6


def test_a_worker_gone_before_its_first_event_has_died(tmp_path: Path) -> None:
    """Once a run process has taken the lock, a lock nobody holds means it died, even before it wrote an event, and
    even when an earlier segment of the run (before a resume) ended with its own terminal event."""
    from core.config import parse_config, save_config

    rd = RunDir(tmp_path / "r")
    rd.prepare()
    save_config(parse_config({"data": {"train_file": "x.tsv"}}), rd.config_path)
    rd.events_path.touch()
    assert rd.status() == "starting"
    os.close(rd.acquire_lock())  # a worker started and was killed at once
    assert rd.status() == "died"

    w = EventWriter(rd.events_path)
    w.emit("run_started", engine="trainer", pid=os.getpid())
    w.emit("stopped", step=4, checkpoint=None)
    assert rd.status() == "stopped"
    rd.pid_path.write_text("999999999\n")  # a resume's process took the lock and was killed before run_started
    assert rd.status() == "died"
    fd = rd.acquire_lock()  # while that resume is still loading
    try:
        rd.pid_path.write_text("999999999\n")
        assert rd.status() == "starting"
    finally:
        os.close(fd)
