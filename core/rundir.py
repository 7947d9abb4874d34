"""One run = one directory. Everything about a run is learned from here, and from nothing else.

    <run>/config.yaml       the resolved config the run was started with
    <run>/events.jsonl      the event log (see core.events)
    <run>/stdout.log        the run process's standard output
    <run>/stderr.log        its standard error (warnings, tracebacks)
    <run>/run.pid           pid of the run process
    <run>/run.lock          held (flock) by the live run: a second run cannot write here, and status can
                            tell a live run from one that died without writing its last event
    <run>/STOP              written to ask the run to stop gracefully
    <run>/checkpoints/      checkpoints, resumable
    <run>/model/            the final model, tokenizer and label maps (save_pretrained)
    <run>/metrics.json      final metrics
    <run>/evaluation/       the evaluation report of each split (core.evaluation)
    <run>/handoff.json      under torchrun: rank 0's prepared data for the other ranks (core.data.handoff)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from core.errors import RunDirError
from core.events import TERMINAL_TYPES, read_events
from core.metrics import best_value

STARTING_GRACE_S = 30.0

# Every name a run writes at the top of its directory (see the layout above), and nothing else: --overwrite
# deletes these and refuses a directory that holds anything more.
RUN_ENTRIES = frozenset({
    "config.yaml", "events.jsonl", "stdout.log", "stderr.log", "run.pid", "run.lock", "STOP", "checkpoints",
    "model", "metrics.json", "evaluation", ".write-test", "config.yaml.tmp", "metrics.json.tmp", "handoff.json",
    "handoff.json.tmp", "tensorboard", "wandb", "trackers.json", "trackers.json.tmp",
})

Status = Literal["starting", "running", "finished", "failed", "stopped", "died"]


class RunDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    config_path = property(lambda self: self.path / "config.yaml")
    events_path = property(lambda self: self.path / "events.jsonl")
    stdout_path = property(lambda self: self.path / "stdout.log")
    stderr_path = property(lambda self: self.path / "stderr.log")
    pid_path = property(lambda self: self.path / "run.pid")
    lock_path = property(lambda self: self.path / "run.lock")
    stop_path = property(lambda self: self.path / "STOP")
    checkpoints_dir = property(lambda self: self.path / "checkpoints")
    model_dir = property(lambda self: self.path / "model")
    metrics_path = property(lambda self: self.path / "metrics.json")

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # --- creating --------------------------------------------------------------------------------
    def prepare(self, *, overwrite: bool = False) -> None:
        """Make the directory for a new run; never silently reuse one that holds anything."""
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"output_dir {self.path} is a file", "choose a directory path for output_dir")
        if self.is_live():
            raise RunDirError(
                f"{self.path} belongs to a run that is still going (pid {self.pid()})",
                f"choose another output_dir, or stop that run first: finetune-tui monitor {self.path}",
            )
        if self.path.is_dir() and any(self.path.iterdir()):
            self._check_replaceable()
            if not overwrite:
                raise RunDirError(
                    f"output_dir {self.path} already exists and holds an earlier run",
                    "choose another output_dir, or pass --overwrite to replace that run",
                )
            self._clear_run()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as err:
            raise RunDirError(
                f"cannot write to output_dir {self.path}: {err.strerror}",
                "choose an output_dir you can write to, with free space",
            ) from None

    def _check_replaceable(self) -> None:
        """Only a finetune-tui run (its own config.yaml and events.jsonl) holding nothing but what a run writes may be
        replaced: --overwrite must never take a file of the user's."""
        if not (self.config_path.is_file() and self.events_path.is_file()):
            raise RunDirError(
                f"output_dir {self.path} already exists, is not empty and is not a finetune-tui run (no config.yaml "
                "and events.jsonl of a run); nothing in it was touched",
                "choose another output_dir: a new or empty directory (--overwrite only replaces an earlier run)",
            )
        foreign = sorted(p.name for p in self.path.iterdir() if p.name not in RUN_ENTRIES)
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise RunDirError(
                f"output_dir {self.path} is a run, but it also holds {shown}, which finetune-tui did not write; "
                "--overwrite will not delete them",
                "move those files out of the run directory, or choose another output_dir",
            )

    def _clear_run(self) -> None:
        """Delete what an earlier run wrote here (_check_replaceable has vouched that this is all there is)."""
        import shutil

        for entry in self.path.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    def discard(self, created: Path | None) -> None:
        """Remove a run that never started (bad input found by its run process): the files it wrote, then the
        folders from the run's up to `created` (the outermost one its making created), where they are empty.
        Anything that is not a run's own file stays, and so do the folders holding it."""
        try:
            self._check_replaceable()
        except RunDirError:
            return
        self._clear_run()
        if created is None:
            return
        folder = self.path
        while True:
            try:
                folder.rmdir()
            except OSError:
                return
            if folder == created or folder.parent == folder:
                return
            folder = folder.parent

    # --- the live process ------------------------------------------------------------------------
    def acquire_lock(self) -> int:
        """Take the run lock for this process; returns the fd, which must stay open for the run's life."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunDirError(f"another process is already running in {self.path}",
                              "choose another output_dir") from None
        self.pid_path.write_text(f"{os.getpid()}\n")
        return fd

    def is_live(self) -> bool:
        if not self.lock_path.exists():
            return False
        try:
            fd = os.open(self.lock_path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def pid(self) -> int | None:
        try:
            return int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None

    def request_stop(self) -> None:
        """Ask the run to stop gracefully: it checkpoints, writes a `stopped` event and exits."""
        self.stop_path.write_text("stop requested\n")
        pid = self.pid()
        if pid and self.is_live():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def kill(self) -> None:
        """End the run at once (with any processes it started); status becomes `died`."""
        pid = self.pid()
        if not pid or not self.is_live():
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            # The run has its own process group (core.launch): with torchrun that takes every rank along.
            group = os.getpgid(pid)
            if group != os.getpgrp():
                os.killpg(group, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)

    # --- reading ---------------------------------------------------------------------------------
    def events(self) -> list[dict[str, Any]]:
        return read_events(self.events_path)

    def status(self, events: list[dict[str, Any]] | None = None) -> Status:
        events = self.events() if events is None else events
        # A resumed run appends a new segment: only events since the last run_started speak for now.
        for i in range(len(events) - 1, -1, -1):
            event = events[i]
            if event["type"] in TERMINAL_TYPES:
                if self._restarted_after(events, i):  # a resume took the lock and has written nothing yet
                    return "starting" if self.is_live() else "died"
                return event["type"]  # type: ignore[return-value]
            if event["type"] == "run_started":
                break
        if self.is_live():
            return "running" if events else "starting"
        if not events and self._just_created() and not self.lock_path.exists():
            return "starting"  # the worker has not taken its lock yet (once it has, a lock nobody holds means died)
        return "died"

    def _restarted_after(self, events: list[dict[str, Any]], end: int) -> bool:
        """Whether run.pid names another process than the segment that ended at events[end]: a later one took the
        lock. Pids, not file times: a copied run directory gets new file times."""
        started = next((events[j] for j in range(end - 1, -1, -1) if events[j]["type"] == "run_started"), None)
        if started is None or not isinstance(started.get("pid"), int):
            return False  # e.g. the monitor passes only the terminal event
        pid = self.pid()
        return pid is not None and pid != started["pid"]

    def _just_created(self, grace_s: float = STARTING_GRACE_S) -> bool:
        try:
            return time.time() - self.config_path.stat().st_mtime < grace_s
        except OSError:
            return False

    def last_checkpoint(self) -> Path | None:
        """The newest complete checkpoint that still exists: where a stopped or died run resumes from.

        Engines announce a checkpoint only after writing all of it, so a save cut short (full disk, kill)
        is never chosen.
        """
        announced = [Path(e["path"]) for e in self.events() if e["type"] == "checkpoint" and e.get("path")]
        return next((p for p in reversed(announced) if p.is_dir()), None)

    def log_tail(self, lines: int = 20) -> list[str]:
        out: list[str] = []
        for path in (self.stdout_path, self.stderr_path):
            if path.exists():
                out.extend(_tail(path, lines))
        return out[-lines:]

    def summary(self) -> RunSummary:
        events = self.events()
        started = next((e for e in events if e["type"] == "run_started"), {})
        evals = [e for e in events if e["type"] == "eval"]
        # The last step reached: evaluations are logged at steps too, the final one after the last logged step.
        steps = [e["step"] for e in events if e["type"] in ("step", "eval") and isinstance(e.get("step"), int)]
        metric = started.get("primary_metric", "accuracy")
        values = [e["metrics"][metric] for e in evals
                  if e.get("split", "validation") == "validation"  # the test split must not pick the best
                  and isinstance(e.get("metrics", {}).get(metric), int | float)]
        return RunSummary(
            path=self.path,
            status=self.status(events),
            engine=started.get("engine", "?"),
            model=started.get("model", "?"),
            dataset=started.get("dataset", "?"),
            started=started.get("time"),
            metric=metric,
            best=best_value(metric, values),  # a loss is best when lowest
            step=max(steps, default=0),
            total_steps=started.get("total_steps"),
        )


@dataclass
class RunSummary:
    path: Path
    status: Status
    engine: str
    model: str
    dataset: str
    started: float | None
    metric: str
    best: float | None
    step: int
    total_steps: int | None


def is_run_dir(path: Path) -> bool:
    return (path / "events.jsonl").exists() or (path / "run.pid").exists()


_SUMMARIES: dict[Path, tuple[tuple[float, int, bool], RunSummary]] = {}


def cached_summary(path: Path) -> RunSummary:
    """A run's summary, read again only when its event log or liveness changed (the runs list polls often)."""
    run_dir = RunDir(path)
    try:
        stat = run_dir.events_path.stat()
        key = (stat.st_mtime, stat.st_size, run_dir.is_live())
    except OSError:
        return run_dir.summary()
    hit = _SUMMARIES.get(path)
    if hit is not None and hit[0] == key and hit[1].status != "starting":
        return hit[1]
    summary = run_dir.summary()
    _SUMMARIES[path] = (key, summary)
    return summary


def list_runs(root: str | Path) -> list[RunSummary]:
    """Runs directly under root (or root itself), newest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    candidates = [root] if is_run_dir(root) else sorted(p for p in root.iterdir() if p.is_dir() and is_run_dir(p))
    summaries = [cached_summary(p.resolve()) for p in candidates]
    return sorted(summaries, key=lambda s: s.started or 0, reverse=True)


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object the run wrote (metrics.json, trackers.json, ...); {} when it is missing, half-written or not an
    object, which readers treat as "nothing recorded yet"."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def _tail(path: Path, lines: int) -> list[str]:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 64 * 1024))
        data = f.read().decode("utf-8", errors="replace")
    return data.splitlines()[-lines:]
