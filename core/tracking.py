"""Trackers (TensorBoard, MLflow, Weights & Biases) that receive a run's scalars besides events.jsonl.

events.jsonl stays the run's source of truth; a tracker is a copy for the tools people already use. Every engine
logs the same scalars under the names Trainer's integrations give them (`rewrite_logs`): train/loss,
train/learning_rate, train/grad_norm, train/epoch, train/samples_per_second, eval/<metric> and test/<metric>, at the
optimizer step. Trainer logs through its own integration callbacks (core.engines.trainer); the other engines through
Accelerate's tracker classes, fed from the events they already write (EventTrackers), so their names cannot drift.

Where the files go is settled here, once, for all engines: TensorBoard under RUN/tensorboard (so
`tensorboard --logdir runs` shows every run), MLflow in MLFLOW_TRACKING_URI or ./mlruns/mlflow.db, W&B in the run
directory, offline when this machine has no W&B login (it must never stop a detached run with a login prompt).
"""

from __future__ import annotations

import contextlib
import importlib.util
import netrc
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from core.errors import ConfigError
from core.events import number

TENSORBOARD_DIR = "tensorboard"
PROJECT = "finetune-tui"  # MLflow experiment and W&B project unless the environment names one
IDS_FILE = "trackers.json"  # the MLflow and W&B run ids of this run, for its resumed segments


@dataclass(frozen=True)
class TrackerInfo:
    module: str  # imported to log; its absence is a config error before training
    extra: str  # pyproject extra that installs it

    def install_hint(self) -> str:
        return f'pip install "finetune-tui[{self.extra}]"  (or: pip install {self.module})'


TRACKERS = {
    "tensorboard": TrackerInfo("tensorboard", "tensorboard"),
    "mlflow": TrackerInfo("mlflow", "mlflow"),
    "wandb": TrackerInfo("wandb", "wandb"),
}


def installed_trackers() -> list[str]:
    return [name for name, info in TRACKERS.items() if importlib.util.find_spec(info.module) is not None]


def check_trackers(names: list[str]) -> None:
    """Before anything loads: a tracker whose package is missing would otherwise fail minutes into the run."""
    ready = installed_trackers()
    for name in names:
        info = TRACKERS[name]
        if name not in ready:
            raise ConfigError(f"training.report_to lists {name}, but the {info.module} package is not installed",
                              f"install it: {info.install_hint()}; or remove {name} from training.report_to")


def wandb_logged_in() -> bool:
    """An API key in the environment or in ~/.netrc (where `wandb login` keeps it); read without importing wandb."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def prepare_environment(names: list[str], run_dir: Path, run_name: str) -> tuple[list[str], list[str]]:
    """Set the trackers' environment defaults for this process (the user's own settings win); returns the trackers
    that can run and notes for the log. Trainer's integrations and Accelerate's trackers both read these variables,
    so every engine agrees. A resumed run continues its MLflow and W&B runs (their ids are kept in RUN/trackers.json)
    instead of starting new ones that overlap it."""
    notes: list[str] = []
    kept = list(names)
    ids = _read_ids(run_dir)
    if "mlflow" in names:
        if "MLFLOW_TRACKING_URI" not in os.environ:
            # A local store in ./mlruns, on the database backend: MLflow 3 refuses the old plain-file one.
            store = Path.cwd().resolve() / "mlruns"
            try:
                store.mkdir(exist_ok=True)
            except OSError as err:
                kept.remove("mlflow")
                notes.append(f"warning: the mlflow tracker is off: no MLFLOW_TRACKING_URI and {store} cannot be "
                             f"created ({err.strerror}); set MLFLOW_TRACKING_URI, or start the run from a folder "
                             "you can write to")
            else:
                os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store / 'mlflow.db'}"
                notes.append(f"mlflow: no MLFLOW_TRACKING_URI, logging to {store}; see it with "
                             f"`mlflow ui --backend-store-uri sqlite:///{store / 'mlflow.db'}`")
        os.environ.setdefault("MLFLOW_EXPERIMENT_NAME", PROJECT)
        if ids.get("mlflow"):
            os.environ.setdefault("MLFLOW_RUN_ID", ids["mlflow"])
    if "wandb" in names:
        os.environ.setdefault("WANDB_PROJECT", PROJECT)
        os.environ.setdefault("WANDB_DIR", str(run_dir.resolve()))
        os.environ.setdefault("WANDB_NAME", run_name)
        if "WANDB_RUN_ID" not in os.environ:
            if not ids.get("wandb"):
                ids["wandb"] = secrets.token_hex(4)  # W&B's own id format: 8 lowercase characters
                _write_ids(run_dir, ids)
            os.environ["WANDB_RUN_ID"] = ids["wandb"]
            os.environ.setdefault("WANDB_RESUME", "allow")
        if "WANDB_MODE" not in os.environ and not wandb_logged_in():
            os.environ["WANDB_MODE"] = "offline"
            files = Path(os.environ["WANDB_DIR"]) / "wandb"
            notes.append(f"wandb: no login on this machine (WANDB_API_KEY or `wandb login`), logging offline to "
                         f"{files}; upload later with `wandb sync {files}/offline-run-*`")
    return kept, notes


def _read_ids(run_dir: Path) -> dict[str, str]:
    from core.rundir import read_json

    return {k: v for k, v in read_json(run_dir / IDS_FILE).items() if isinstance(v, str)}


def _write_ids(run_dir: Path, ids: dict[str, str]) -> None:
    from core.rundir import write_json

    write_json(run_dir / IDS_FILE, ids)


def remember_mlflow_run(run_dir: Path) -> None:
    """Once an MLflow run is open: its id, so that a resumed run continues it (prepare_environment)."""
    import mlflow

    active = mlflow.active_run()
    ids = _read_ids(run_dir)
    if active is not None and ids.get("mlflow") != active.info.run_id:
        _write_ids(run_dir, {**ids, "mlflow": active.info.run_id})


def end_status(outcome: str) -> str:
    """MLflow's status for how this segment of the run ended: "finished", "stopped" (resumable) or "failed"."""
    return {"finished": "FINISHED", "stopped": "KILLED"}.get(outcome, "FAILED")


def destinations(names: list[str], run_dir: Path) -> dict[str, str]:
    """Where each tracker writes, once prepare_environment has run: for the run_started event and the user."""
    where = {
        "tensorboard": f"{run_dir.resolve() / TENSORBOARD_DIR} (tensorboard --logdir {run_dir.resolve().parent})",
        "mlflow": f"{os.environ.get('MLFLOW_TRACKING_URI')}, experiment {os.environ.get('MLFLOW_EXPERIMENT_NAME')}",
        "wandb": f"project {os.environ.get('WANDB_PROJECT')}"
                 + (f", offline in {os.environ.get('WANDB_DIR')}/wandb" if os.environ.get("WANDB_MODE") == "offline"
                    else ""),
    }
    return {name: where[name] for name in names}


def scalars(event: dict[str, Any]) -> dict[str, float]:
    """A step or eval event as the tracker scalars Trainer's integrations would log for it."""
    if event["type"] == "step":
        names = {"loss": "train/loss", "learning_rate": "train/learning_rate", "grad_norm": "train/grad_norm",
                 "epoch": "train/epoch", "samples_per_second": "train/samples_per_second"}
        return {name: value for key, name in names.items() if (value := number(event.get(key))) is not None}
    if event["type"] == "eval":
        prefix = "test" if event.get("split") == "test" else "eval"
        values = {f"{prefix}/{k}": value for k, v in (event.get("metrics") or {}).items()
                  if (value := number(v)) is not None}
        if (epoch := number(event.get("epoch"))) is not None:
            values["train/epoch"] = epoch
        return values
    return {}


def warn(name: str, err: BaseException) -> None:
    print(f"warning: the {name} tracker failed ({type(err).__name__}: {err}); training goes on without it, "
          "events.jsonl has every scalar", flush=True)


class EventTrackers:
    """Accelerate's trackers fed from the run's events (engines that do not track by themselves). A tracker that
    fails is finished as far as it can be and dropped with a warning: a tracker is a copy, never a reason to lose the
    run. Only the main process holds one."""

    def __init__(self, names: list[str], run_dir: Path, run_name: str, config: dict[str, Any]) -> None:
        self.trackers: dict[str, Any] = {}
        self.run_dir = run_dir
        for name in names:
            self._guard(name, lambda name=name: self._open(name, run_dir, run_name, config))

    def _open(self, name: str, run_dir: Path, run_name: str, config: dict[str, Any]) -> None:
        from accelerate.tracking import MLflowTracker, TensorBoardTracker, WandBTracker

        if name == "tensorboard":
            # run_name "" puts the event files straight in RUN/tensorboard, where Trainer's integration writes them.
            tracker = TensorBoardTracker("", run_dir / TENSORBOARD_DIR)
        elif name == "mlflow":
            tracker = MLflowTracker(experiment_name=os.environ.get("MLFLOW_EXPERIMENT_NAME", PROJECT),
                                    run_name=run_name)
        else:
            tracker = WandBTracker(os.environ.get("WANDB_PROJECT", PROJECT), name=run_name,
                                   dir=os.environ.get("WANDB_DIR", str(run_dir)))
        tracker.start()
        self.trackers[name] = tracker  # from here on, a failure finishes it (_guard)
        if name == "tensorboard":
            tracker.writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in config.items()))
        else:
            tracker.store_init_configuration(config)
        if name == "mlflow":
            remember_mlflow_run(run_dir)

    def _guard(self, name: str, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as err:  # see class docstring
            warn(name, err)
            tracker = self.trackers.pop(name, None)
            if tracker is not None:
                with contextlib.suppress(Exception):
                    tracker.finish()

    def __call__(self, event: dict[str, Any]) -> None:
        values = scalars(event)
        step = number(event.get("step"))
        if not values or step is None:
            return
        for name, tracker in list(self.trackers.items()):
            # W&B charts Trainer's runs against train/global_step (WandbCallback defines it as the x axis).
            logged = {**values, "train/global_step": int(step)} if name == "wandb" else values
            self._guard(name, lambda tracker=tracker, logged=logged: tracker.log(logged, step=int(step)))

    def close(self, outcome: str) -> None:
        """outcome: "finished", "stopped" or "failed" (end_status)."""
        for name, tracker in list(self.trackers.items()):
            if name == "mlflow":
                self._guard(name, lambda: _end_mlflow(outcome))
            elif name == "wandb":
                self._guard(name, lambda tracker=tracker: tracker.run.finish(exit_code=0 if outcome != "failed"
                                                                             else 1))
            else:
                self._guard(name, tracker.finish)
        self.trackers.clear()


def _end_mlflow(outcome: str) -> None:
    import mlflow

    mlflow.end_run(status=end_status(outcome))


def flat_config(config: Any) -> dict[str, Any]:
    """The run's config as dotted keys with scalar values, the form every tracker's parameters take."""
    from core.config import flatten

    return {key: value if value is None or isinstance(value, bool | int | float | str) else str(value)
            for key, value in flatten(config.model_dump(mode="json")).items()}
