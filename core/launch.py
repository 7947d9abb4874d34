"""Starting runs as separate OS processes: in the foreground (`finetune-tui run`) or detached (the wizard).

Either way the same worker (`python -m core.worker RUN_DIR`) does the training and writes the run directory;
the caller only creates the directory, writes the resolved config into it and watches events.jsonl.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

from core.config import RunConfig, load_config, save_config
from core.console import format_event
from core.errors import RunDirError, UserError
from core.events import TERMINAL_TYPES, EventTail
from core.rundir import RunDir, is_run_dir

RUNS_ROOT = Path("runs")


class BadInput(UserError):
    """The run process found bad input (data, model, settings) before it started training."""
FOLLOW_POLL_S = 0.5

# Exit codes of a run followed in the foreground (`finetune-tui run`, `finetune-tui resume`); README lists them.
# 2 is taken by bad input found before a run starts (tui.cli), 130 by Ctrl-C before one starts.
EXIT_FINISHED = 0
EXIT_FAILED = 1  # the run ended with a `failed` event (out of memory, NaN loss, full disk, ...)
EXIT_STOPPED = 3  # stopped gracefully (Ctrl-C, `finetune-tui stop`, SIGTERM): resumable from its checkpoint
EXIT_DIED = 4  # killed (a second Ctrl-C, SIGKILL) or crashed without a final event


def _resolve_file(path: Path | None, base: Path | None) -> Path | None:
    """Relative paths are relative to the working directory, or failing that to the config file's folder."""
    if path is None or path.is_absolute():
        return path
    if path.exists() or base is None:
        return path.resolve()
    beside = (base / path)
    return beside.resolve() if beside.exists() else path.resolve()


def default_output_dir(config: RunConfig, root: Path = RUNS_ROOT) -> Path:
    data = config.data
    source = data.hub.name.split("/")[-1] if data.hub else Path(str(data.train_file)).stem
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return root / f"{config.engine}-{source}-{stamp}"


def resolve_config(config: RunConfig, base: Path | None = None) -> RunConfig:
    """A copy with absolute data paths and a concrete output_dir: what the run directory records."""
    resolved = config.model_copy(deep=True)
    d = resolved.data
    d.train_file = _resolve_file(d.train_file, base)
    d.validation_file = _resolve_file(d.validation_file, base)
    d.test_file = _resolve_file(d.test_file, base)
    if isinstance(d.label_names, Path):
        d.label_names = _resolve_file(d.label_names, base)
    out = resolved.output_dir or default_output_dir(resolved)
    resolved.output_dir = out.expanduser().resolve()
    return resolved


def preflight(config: RunConfig) -> list[str]:
    """Everything a run checks before it trains, in the caller: `validate`, the wizard, and `run --overwrite` (whose
    bad input must not cost the run it would replace). Returns warnings about what is valid but probably unwanted
    (e.g. imbalanced classes without class weights)."""
    from core.data import prepare_data
    from core.models import check_max_length, load_model_config
    from core.tasks import get_task

    model_config = load_model_config(config.model)
    check_model(config, model_config)
    # The model's limit only: the tokenizer's own model_max_length is checked by the run, which loads it anyway.
    check_max_length(config.tokenizer.max_length, model_config)
    task = get_task(config.task)
    if task.checks_tokenizer:  # loaded only for a task that checks it: the others' validate stays light
        from core.tokenization import load_tokenizer

        task.check_tokenizer(config, load_tokenizer(config.model))
    return check_data(config, prepare_data(config.data, config.task))


def check_model(config: RunConfig, model_config: object) -> None:
    """The engine and the model fit together; the run process calls this too, right after loading the model config."""
    from core.engines import ENGINES, get_engine, run_precheck
    from core.tasks import get_task
    from core.tracking import check_trackers

    get_engine(config.engine)
    check_trackers(config.training.report_to)  # here because the run process calls this too, before it loads much
    info = ENGINES[config.engine]
    run_precheck(info, config)  # e.g. keras: the replicas fit; imported only for its own engine
    if config.training.fsdp:
        from core.engines.fsdp import check_fsdp

        check_fsdp(config, info)
    if info.hf_heads:
        from core.engines.hf_model import check_quantization

        get_task(config.task).check_hf_model(model_config, config.model.name_or_path)
        check_quantization(config)


def check_data(config: RunConfig, prepared: object) -> list[str]:
    """The prepared data fits the training settings (the task's checks); returns warnings. The run process calls
    this too."""
    from core.tasks import get_task

    return get_task(config.task).check_prepared(config, prepared)  # type: ignore[arg-type]


def create_run(config: RunConfig, *, overwrite: bool = False) -> RunDir:
    assert config.output_dir is not None, "resolve_config first"
    run_dir = RunDir(config.output_dir)
    run_dir.prepare(overwrite=overwrite)
    save_config(config, run_dir.config_path, overwrite=True)
    # From now on the directory is recognisably a run (config.yaml + events.jsonl), even if the worker never starts:
    # only such a directory may later be replaced with --overwrite.
    run_dir.events_path.touch()
    return run_dir


def _spawn(run_dir: RunDir, *, detached: bool, resume: Path | None = None) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")
    command = [sys.executable, "-m", "core.worker", str(run_dir.path)]
    processes = _processes(load_config(run_dir.config_path))
    if processes > 1:
        # torchrun starts one worker per process and ends them all if one fails; rank 0 writes the run dir.
        command[1:3] = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                        "-m", "core.worker"]
    if resume is not None:
        command += ["--resume", str(resume)]
    with open(run_dir.stdout_path, "ab") as out, open(run_dir.stderr_path, "ab") as err:
        # No shell: the command is a list, so no config value is ever interpreted by one.
        return subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
            # Detached: its own session, so a closing terminal or UI does not end it. Foreground: its own process
            # group, so Ctrl-C reaches only us and we turn it into a graceful stop request.
            start_new_session=detached,
            process_group=None if detached else 0,
        )


def _processes(config: RunConfig) -> int:
    """How many worker processes: one per device, or one for an engine whose replicas run inside one process
    (Keras's MirroredStrategy)."""
    from core.engines import ENGINES
    from core.engines.base import requested_processes

    return 1 if ENGINES[config.engine].replicas_in_process else requested_processes(config)


def wait_started(run_dir: RunDir, process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Until the worker holds the run lock, so a caller that attaches at once sees a live run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None and not run_dir.is_live():
        time.sleep(0.05)


def start_detached(config: RunConfig, *, overwrite: bool = False, base: Path | None = None,
                   check: bool = True) -> RunDir:
    """Start a run that outlives the caller; returns at once with its run directory."""
    resolved = resolve_config(config, base)
    if check:
        preflight(resolved)
    run_dir = create_run(resolved, overwrite=overwrite)
    wait_started(run_dir, _spawn(run_dir, detached=True))
    return run_dir


def run_foreground(config: RunConfig, *, overwrite: bool = False, base: Path | None = None,
                   echo: Callable[[str], None] = print) -> int:
    """Run and print progress until the run ends. Ctrl-C stops gracefully; a second Ctrl-C kills.

    The checks of the model and the data are made by the run process, which loads both anyway: checking them here
    first cost seconds of importing torch and reading the data twice. Bad input it finds before training is
    raised here as the UserError it was (exit 2), and the run directory this call made is removed again."""
    resolved = resolve_config(config, base)
    assert resolved.output_dir is not None
    if overwrite and is_run_dir(resolved.output_dir):
        for warning in preflight(resolved):  # before an earlier run is deleted for one that could not start
            echo(f"warning: {warning}")
    created = _outermost_missing(resolved.output_dir)
    run_dir = create_run(resolved, overwrite=overwrite)
    echo(f"run directory: {run_dir.path}")
    try:
        return follow(run_dir, _spawn(run_dir, detached=False), echo)
    except BadInput:
        run_dir.discard(created)
        raise


def _outermost_missing(path: Path) -> Path | None:
    """The outermost folder of `path` that does not exist yet (None when path exists): what making it creates."""
    missing = None
    while not path.exists() and path.parent != path:
        missing, path = path, path.parent
    return missing


def resume_checkpoint(run_dir: RunDir) -> Path:
    """Where a run continues from, or a clear error saying why it cannot."""
    if not is_run_dir(run_dir.path):
        raise RunDirError(f"{run_dir.path} is not a run directory", "give a folder that `finetune-tui run` made")
    if run_dir.is_live():
        raise RunDirError(f"{run_dir.path} is still running (pid {run_dir.pid()})",
                          f"watch it with `finetune-tui monitor {run_dir.path}`")
    status = run_dir.status()
    if status == "finished":
        raise RunDirError(f"{run_dir.path} has finished; there is nothing to resume",
                          "start a new run, e.g. with more num_train_epochs")
    checkpoint = run_dir.last_checkpoint()
    if checkpoint is None:
        raise RunDirError(f"{run_dir.path} ({status}) has no checkpoint to resume from",
                          "start it again with `finetune-tui run CONFIG --overwrite`")
    return checkpoint


def resume_run(run_dir: RunDir, *, detached: bool = False, echo: Callable[[str], None] = print) -> int:
    """Continue a stopped, failed or died run from its last checkpoint, in the same run directory."""
    checkpoint = resume_checkpoint(run_dir)
    echo(f"resuming {run_dir.path} from {checkpoint.name}")
    process = _spawn(run_dir, detached=detached, resume=checkpoint)
    if detached:
        wait_started(run_dir, process)
        return 0
    return follow(run_dir, process, echo, skip_history=True)


def follow(run_dir: RunDir, process: subprocess.Popen[bytes], echo: Callable[[str], None],
           skip_history: bool = False) -> int:
    """Print the run's events until it ends; Ctrl-C asks for a graceful stop, a second one kills.

    Returns the run's outcome as an exit code: EXIT_FINISHED, EXIT_FAILED, EXIT_STOPPED or EXIT_DIED."""
    tail = EventTail(run_dir.events_path)
    while skip_history and tail.poll():  # a long history takes several polls (16 MB each)
        pass
    presses = _CtrlC()
    acted = 0
    ended: str | None = None  # the terminal event of this segment: a resume's history holds an earlier one
    last: dict[str, Any] = {}
    with presses:
        while True:
            # A press is only counted by the handler and acted on here: a KeyboardInterrupt could land in the middle
            # of printing or reading the event log, and a second one inside the first one's handling would escape.
            while acted < presses.count:
                acted += 1
                if acted == 1:
                    echo("stopping gracefully (a checkpoint is written); press Ctrl-C again to kill")
                    run_dir.request_stop()
                elif acted == 2:
                    echo("killing the run")
                    run_dir.kill()
                    if process.poll() is None:  # also before the worker holds its lock, which run_dir.kill needs
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(process.pid, signal.SIGKILL)  # its own process group (_spawn)
            done = process.poll() is not None
            for event in tail.poll():
                line = format_event(event)
                if line and not event.get("bad_input"):  # raised as an error below, not printed as a run's end
                    echo(line)
                if event["type"] in TERMINAL_TYPES:
                    done = True
                    ended = event["type"]
                    last = event
            if done:
                break
            presses.wait(FOLLOW_POLL_S)
        code = process.wait()
    for event in tail.poll():
        line = format_event(event)
        if line and not event.get("bad_input"):
            echo(line)
        if event["type"] in TERMINAL_TYPES:
            ended = event["type"]
            last = event
    if ended == "failed" and last.get("bad_input"):
        raise BadInput(str(last.get("error")), last.get("hint"))
    if ended == "finished":
        return EXIT_FINISHED
    if ended == "failed":
        return EXIT_FAILED
    if ended == "stopped":
        echo(f"resume with: finetune-tui resume {run_dir.path}")
        return EXIT_STOPPED
    echo(f"the run process ended with exit code {code} and no final event; see {run_dir.stderr_path}")
    return EXIT_DIED


class _CtrlC:
    """Counts SIGINTs while a foreground run is followed (in the main thread; elsewhere none arrive)."""

    def __init__(self) -> None:
        self.count = 0
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> _CtrlC:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:  # None: the previous handler was not set from Python
            signal.signal(signal.SIGINT, signal.default_int_handler if self._previous is None else self._previous)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1

    def wait(self, seconds: float) -> None:
        """Sleep up to `seconds`, waking within a moment of a press (a handled signal does not cut a sleep short)."""
        deadline = time.monotonic() + seconds
        seen = self.count
        while self.count == seen and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.05))
