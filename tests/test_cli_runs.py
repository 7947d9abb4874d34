"""The CLI on real runs: Ctrl-C on a foreground run, `stop` and `resume` on a live one, the exit code of each way a
run ends, and the commands that only read (`demo`, `validate`, `inspect`, `runs`) succeeding with what they say.

Runs are real (the tiny model, a few steps); the CLI runs as a subprocess where the process or its signals matter,
and in-process (tui.cli.main) where only its output does.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from core.config import load_config, save_config
from core.launch import EXIT_DIED, EXIT_FAILED, EXIT_FINISHED, EXIT_STOPPED, resume_checkpoint
from core.rundir import RunDir
from tests.conftest import tiny_config
from tui.cli import EXIT_USER_ERROR, main

REPO = Path(__file__).resolve().parent.parent
RECORDED = Path(__file__).parent / "fixtures" / "recorded"
ENV = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONUNBUFFERED="1")


def _config(tmp_path: Path, model: Path, data: dict, out: Path, **training: object) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(tiny_config(model, data, out, **training)))
    return path


def _endless(tmp_path: Path, model: Path, data: dict, out: Path) -> Path:
    """A run that trains until it is stopped: no evaluation, a step logged each step."""
    return _config(tmp_path, model, data, out, max_steps=100_000, logging_steps=1, eval_strategy="no",
                   save_strategy="steps", save_steps=1_000)


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tui.cli", *args], capture_output=True, text=True, env=ENV,
                          timeout=timeout)


def _until(condition: Callable[[], bool], why: Callable[[], str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, why()
        time.sleep(0.05)


class Foreground:
    """`finetune-tui run` as a terminal's foreground job: its own process group, which Ctrl-C signals as a whole."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "tui.cli", *args], stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, env=ENV, start_new_session=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def ctrl_c(self) -> None:
        os.killpg(self.process.pid, signal.SIGINT)

    def wait(self, timeout: float = 120) -> int:
        code = self.process.wait(timeout)
        self._reader.join(10)
        return code


@pytest.fixture
def cleanup() -> Iterator[list[RunDir]]:
    """Runs a test starts: killed at the end if a failed assertion left one training."""
    runs: list[RunDir] = []
    yield runs
    for run in runs:
        run.kill()


def _steps(run: RunDir) -> list[int]:
    return [e["step"] for e in run.events() if e["type"] == "step"]


# --- Ctrl-C, stop and resume on a live run ------------------------------------------------------------

@pytest.mark.slow
def test_ctrl_c_stop_and_resume_through_the_cli_with_each_exit_code(tiny_model: Path, tiny_data: dict,
                                                                     tmp_path: Path, cleanup: list[RunDir]) -> None:
    """One run through every way a person ends and continues it: Ctrl-C on `run` (stopped, 3), `stop` on a resumed
    run, Ctrl-C twice on another resume (died, 4), and a last resume that finishes (0). One run keeps the CPU low."""
    run = RunDir(tmp_path / "run")
    cleanup.append(run)
    log = lambda: "\n".join(run.log_tail())  # noqa: E731

    # Ctrl-C on a foreground `finetune-tui run`: a graceful stop with a checkpoint, exit 3.
    fg = Foreground("run", str(_endless(tmp_path, tiny_model, tiny_data, run.path)))
    _until(lambda: len(_steps(run)) >= 2, lambda: fg.output + log())
    busy = _cli("resume", str(run.path))
    assert busy.returncode == EXIT_USER_ERROR, busy.stderr
    assert f"error: {run.path} is still running (pid {run.pid()})" in busy.stderr
    fg.ctrl_c()
    assert fg.wait() == EXIT_STOPPED == 3, fg.output
    assert "stopping gracefully (a checkpoint is written); press Ctrl-C again to kill" in fg.output
    assert f"resume with: finetune-tui resume {run.path}" in fg.output
    stopped = run.events()[-1]
    assert stopped["type"] == "stopped" and run.status() == "stopped", log()
    assert f"stopped at step {stopped['step']}" in fg.output
    # The checkpoint is written at the stop, not at save_steps (1000): it is where resume continues.
    first = Path(stopped["checkpoint"])
    assert first.is_dir() and first.name == f"checkpoint-{stopped['step']}" and stopped["step"] < 1_000
    assert resume_checkpoint(run) == first
    nothing = _cli("stop", str(run.path))
    assert nothing.returncode == EXIT_USER_ERROR
    assert f"error: {run.path} has no live run to stop (status: stopped)" in nothing.stderr

    # `finetune-tui stop` on a live (resumed, detached) run.
    detached = _cli("resume", str(run.path), "--detach")
    assert detached.returncode == 0, detached.stderr
    assert f"resuming {run.path} from {first.name}" in detached.stdout
    assert f"resumed in the background; watch it with: finetune-tui monitor {run.path}" in detached.stdout
    _until(lambda: _steps(run)[-1] > stopped["step"] + 1, log)
    stop = _cli("stop", str(run.path))
    assert stop.returncode == 0, stop.stderr
    assert f"asked {run.path} to stop; it writes a checkpoint first" in stop.stdout
    _until(lambda: not run.is_live(), log)
    stopped = run.events()[-1]
    assert stopped["type"] == "stopped" and run.status() == "stopped", log()
    second = Path(stopped["checkpoint"])
    assert second.is_dir() and stopped["step"] > int(first.name.split("-")[1])

    # A second Ctrl-C kills, here while the worker still loads (it holds its lock from its first moment): the
    # graceful stop cannot happen yet, so it is the second press that ends the run. Exit 4, status died.
    written, earlier = len(run.events()), run.pid()
    fg = Foreground("resume", str(run.path))
    _until(lambda: run.is_live() and run.pid() not in (None, earlier), lambda: fg.output + log())
    worker = run.pid()
    fg.ctrl_c()
    _until(lambda: "stopping gracefully" in fg.output, lambda: fg.output)
    fg.ctrl_c()
    assert fg.wait() == EXIT_DIED == 4, fg.output
    assert "killing the run" in fg.output and "no final event" in fg.output
    assert not run.is_live() and run.status() == "died"
    # Not even the earlier segment's `stopped` may speak for it: that one is history.
    assert not [e for e in run.events()[written:] if e["type"] in ("stopped", "finished", "failed")]
    assert worker is not None and not _alive(worker)

    # A died run still resumes from its last checkpoint; this time to the end (a few steps on): exit 0.
    config = load_config(run.config_path)
    config.training.max_steps = stopped["step"] + 3
    save_config(config, run.config_path, overwrite=True)
    resumed = _cli("resume", str(run.path))
    assert resumed.returncode == EXIT_FINISHED == 0, resumed.stdout + resumed.stderr
    assert f"resuming {run.path} from {second.name}" in resumed.stdout and "finished in" in resumed.stdout
    events = run.events()
    assert events[-1]["type"] == "finished" and run.status() == "finished"
    # The killed segment never reached run_started.
    assert [e["resumed_from"] for e in events if e["type"] == "run_started"] == [None, str(first), str(second)]
    assert _steps(run)[-1] == stopped["step"] + 3
    done = _cli("resume", str(run.path))
    assert done.returncode == EXIT_USER_ERROR
    assert f"error: {run.path} has finished; there is nothing to resume" in done.stderr


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (killed, not yet reaped by its parent) counts as gone.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


@pytest.mark.slow
def test_a_run_that_fails_exits_1(tiny_model: Path, tiny_data: dict, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    # A model folder with its config and tokenizer but no weights passes the checks before the run (they read
    # the config only) and fails in the run process, where the weights load.
    weightless = tmp_path / "weightless"
    shutil.copytree(tiny_model, weightless, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    run = RunDir(tmp_path / "run")
    code = main(["run", str(_config(tmp_path, weightless, tiny_data, run.path))])
    out = capsys.readouterr().out
    assert code == EXIT_FAILED == 1, out
    assert run.status() == "failed" and run.events()[-1]["type"] == "failed"
    assert f"failed: {run.events()[-1]['error']}" in out


def test_exit_codes_are_distinct_and_documented() -> None:
    codes = {"finished": EXIT_FINISHED, "failed": EXIT_FAILED, "bad input": EXIT_USER_ERROR,
             "stopped": EXIT_STOPPED, "died": EXIT_DIED}
    assert len(set(codes.values())) == len(codes)
    readme = (REPO / "README.md").read_text()
    for name, code in codes.items():
        assert f"| {code} | {name}" in readme, f"README's exit code table lacks {code} ({name})"


# --- the commands that only read -------------------------------------------------------------------------

def test_demo_writes_exactly_what_examples_holds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "demo-here"
    assert main(["demo", str(target)]) == 0
    assert f"run it with: finetune-tui run {target / 'demo.yaml'}" in capsys.readouterr().out
    examples = REPO / "examples"
    # Other tests may leave a hidden .test-demo-*.yaml there for a moment; the committed files are the rest.
    expected = sorted(p.relative_to(examples) for p in examples.rglob("*") if p.is_file()
                      and not p.name.startswith("."))
    written = sorted(p.relative_to(target) for p in target.rglob("*") if p.is_file())
    assert written == expected
    for rel in written:
        assert (target / rel).read_bytes() == (examples / rel).read_bytes(), f"{rel} differs from examples/{rel}"

    assert main(["demo", str(target)]) == EXIT_USER_ERROR  # never overwritten unasked
    assert "demo files already exist" in capsys.readouterr().err
    (target / "demo.yaml").write_text("changed")
    assert main(["demo", str(target), "--force"]) == 0
    assert (target / "demo.yaml").read_bytes() == (examples / "demo.yaml").read_bytes()


def test_validate_and_inspect_succeed_with_what_they_found(tiny_model: Path, tiny_data: dict, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, tiny_model, tiny_data, tmp_path / "run")
    assert main(["validate", str(config)]) == 0
    captured = capsys.readouterr()
    memory, verdict = captured.out.splitlines()
    assert memory.startswith("memory estimate in RAM: ") and "parameters train" in memory, captured.err
    assert verdict == f"{config}: config, data and model are fine"
    assert not (tmp_path / "run").exists()  # validating starts nothing

    assert main(["inspect", str(tiny_data["train"])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "splits: {'train': 96}"
    assert any(line.startswith("  text: ") and "0 missing" in line for line in lines)
    assert "  label: string, 2 distinct, 0 missing" in lines
    assert "suggested: text_column=text text_pair_column=None label_column=label" in lines
    assert lines[-1] == "class balance: neg=48, pos=48"


def test_runs_lists_a_folder_given_as_argument_or_root(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["runs", str(RECORDED)]) == 0
    listing = capsys.readouterr().out
    lines = listing.splitlines()
    assert lines[0].split() == ["STARTED", "STATUS", "ENGINE", "DATASET", "BEST", "STEP", "RUN", "DIR"]
    rows = {Path(line.split()[-1]).name: line for line in lines[1:]}
    assert set(rows) == {"sst2-finished", "mrpc-corrupt", "imdb-failed", "agnews-died"}
    assert " finished " in rows["sst2-finished"] and "accuracy 0.9000" in rows["sst2-finished"]
    assert " failed " in rows["imdb-failed"] and " died " in rows["agnews-died"]

    assert main(["runs", "--root", str(RECORDED)]) == 0
    assert capsys.readouterr().out == listing

    monkeypatch.chdir(tmp_path)  # plain `runs` reads ./runs
    shutil.copytree(RECORDED / "imdb-failed", tmp_path / "runs" / "imdb-failed")
    assert main(["runs"]) == 0
    assert [Path(line.split()[-1]).name for line in capsys.readouterr().out.splitlines()[1:]] == ["imdb-failed"]

    assert main(["runs", str(RECORDED), "--root", str(tmp_path)]) == EXIT_USER_ERROR
    assert f"two folders given: {RECORDED} and --root {tmp_path}" in capsys.readouterr().err
    assert main(["runs", str(tmp_path / "rnus")]) == EXIT_USER_ERROR
    assert f"{tmp_path / 'rnus'} is not a folder" in capsys.readouterr().err
