"""training.report_to: real TensorBoard, MLflow and W&B (offline) files from real runs of every engine, read back with
each tool's own reader, hold the scalars and steps of events.jsonl under the same names; a missing package is a
config error before training; a tracker that fails is a warning, never a failed run."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.config import parse_config
from core.errors import ConfigError
from core.events import read_events
from core.tracking import EventTrackers, check_trackers, prepare_environment, scalars
from tests.conftest import tiny_config
from tests.test_keras_engine import needs_keras

REPO = Path(__file__).resolve().parent.parent
ALL = ["tensorboard", "mlflow", "wandb"]


def _run(tmp_path: Path, model: Path, data: dict[str, Path], engine: str, env: dict[str, str],
         **training: Any) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """`finetune-tui run` in its own process, in tmp_path (where a default ./mlruns goes), as a user starts it."""
    raw = {**tiny_config(model, data, tmp_path / f"run-{engine}", num_train_epochs=2, **training), "engine": engine}
    config = tmp_path / f"{engine}.yaml"
    config.write_text(yaml.safe_dump(raw))
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "WANDB_"))}
    result = subprocess.run(
        [sys.executable, "-m", "tui.cli", "run", str(config)], cwd=tmp_path, capture_output=True, text=True,
        timeout=600, env={**clean, "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path), "PYTHONPATH": str(REPO), **env})
    return tmp_path / f"run-{engine}", result


def _expected(run: Path) -> dict[str, dict[int, float]]:
    """What every tracker must hold: the events' scalars by name and step."""
    expected: dict[str, dict[int, float]] = {}
    for event in read_events(run / "events.jsonl"):
        for name, value in scalars(event).items():
            expected.setdefault(name, {})[event["step"]] = value
    assert {"train/loss", "train/learning_rate", "eval/accuracy", "test/accuracy"} <= expected.keys()
    return expected


def _tensorboard(run: Path) -> dict[str, dict[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


def _mlflow(uri: str, run_name: str) -> tuple[dict[str, dict[int, float]], dict[str, str]]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("finetune-tui")
    (found,) = client.search_runs([experiment.experiment_id], f"attributes.run_name = '{run_name}'")
    assert found.info.status == "FINISHED"
    history = {key: {m.step: m.value for m in client.get_metric_history(found.info.run_id, key)}
               for key in found.data.metrics}
    return history, found.data.params


def _wandb_records(path: Path) -> list[Any]:
    """The records of an offline run's .wandb file, read with W&B's own protobuf schema. The file is a LevelDB-style
    log (32 KiB blocks of chunks with a 7-byte header) behind a 7-byte W&B header; wandb 0.2x+ ships no Python reader
    for it."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    records, pos, block, pending = [], 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if left < 7 or kind == 0:  # the block's zero padding
            pos += left
            continue
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or a record's last chunk
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def _wandb(run: Path) -> tuple[dict[str, dict[int, float]], str]:
    (log,) = (run / "wandb").glob("offline-run-*/run-*.wandb")
    history: dict[str, dict[int, float]] = {}
    name = ""
    for record in _wandb_records(log):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            name = record.run.display_name
        if kind == "history":
            # W&B stores a key either whole or split at its slashes (nested_key).
            row = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            for key, value in row.items():
                if isinstance(value, int | float):
                    history.setdefault(key, {})[int(row["train/global_step"])] = value
    return history, name


def _assert_holds(found: dict[str, dict[int, float]], expected: dict[str, dict[int, float]], where: str) -> None:
    for name, by_step in expected.items():
        assert name in found, f"{where} has no {name}: {sorted(found)}"
        for step, value in by_step.items():
            # The events round the epoch to 4 places; Trainer's trackers get it whole.
            close = pytest.approx(value, rel=1e-5, abs=1e-4 if name == "train/epoch" else 1e-6)
            assert found[name].get(step) == close, (where, name, step)


ENGINES = ["trainer", "torch-loop", pytest.param("keras", marks=[needs_keras, pytest.mark.slow])]


@pytest.mark.parametrize("engine", ENGINES)
def test_every_tracker_holds_the_events_scalars_under_the_same_names(
        engine: str, tiny_model: Path, tiny_data: dict[str, Path], tmp_path: Path) -> None:
    # trainer: MLflow's default store (./mlruns where the run was started); the others: MLFLOW_TRACKING_URI.
    uri = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    env = {"WANDB_MODE": "offline"} if engine == "trainer" else {"WANDB_MODE": "offline", "MLFLOW_TRACKING_URI": uri}
    run, result = _run(tmp_path, tiny_model, tiny_data, engine, env, report_to=ALL)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "warning: the" not in (run / "stdout.log").read_text()
    expected = _expected(run)

    _assert_holds(_tensorboard(run), expected, "tensorboard")

    if engine == "trainer":
        assert (tmp_path / "mlruns" / "mlflow.db").is_file()
        uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    history, params = _mlflow(uri, run.name)
    _assert_holds(history, expected, "mlflow")
    assert params  # the run's settings travel with it (Trainer's arguments, or the config's dotted keys)

    history, name = _wandb(run)
    assert name == run.name
    _assert_holds(history, expected, "wandb")


def test_a_tracker_that_fails_is_a_warning_and_the_run_finishes(
        tiny_model: Path, tiny_data: dict[str, Path], tmp_path: Path) -> None:
    # An MLflow store that cannot be created: the tracker fails, TensorBoard and the run go on.
    (tmp_path / "a-file").write_text("not a folder")
    broken = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'a-file' / 'mlflow.db'}"}
    for engine in ("trainer", "torch-loop"):
        run, result = _run(tmp_path, tiny_model, tiny_data, engine, broken, report_to=["mlflow", "tensorboard"],
                           max_steps=4)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert read_events(run / "events.jsonl")[-1]["type"] == "finished"
        assert "warning: the mlflow tracker failed" in (run / "stdout.log").read_text()
        assert _tensorboard(run)["train/loss"]


def test_a_missing_tracker_package_is_a_config_error_with_the_install_command(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    check_trackers(["tensorboard", "mlflow"])
    with pytest.raises(ConfigError) as caught:
        check_trackers(["tensorboard", "wandb"])
    assert "training.report_to lists wandb" in caught.value.problem
    assert 'pip install "finetune-tui[wandb]"' in caught.value.fix


def test_report_to_takes_trainingarguments_spellings() -> None:
    def trackers(value: Any) -> list[str]:
        return parse_config({"data": {"train_file": "x.csv"}, "training": {"report_to": value}}).training.report_to

    assert trackers("tensorboard") == ["tensorboard"]
    assert trackers("none") == []
    assert trackers("all") == ALL
    assert trackers(["mlflow", "wandb"]) == ["mlflow", "wandb"]
    assert parse_config({"data": {"train_file": "x.csv"}}).training.report_to == []
    for bad in (["tensorboard", "tensorboard"], ["comet"]):
        with pytest.raises(ConfigError):
            trackers(bad)


def test_wandb_logs_offline_rather_than_prompting_when_this_machine_has_no_login(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    _forget_tracker_environment(monkeypatch)
    (tmp_path / "run").mkdir()
    kept, notes = prepare_environment(["wandb"], tmp_path / "run", "run")
    assert kept == ["wandb"] and os.environ["WANDB_MODE"] == "offline" and "wandb sync" in notes[0]
    assert os.environ["WANDB_DIR"] == str((tmp_path / "run").resolve())

    monkeypatch.delenv("WANDB_MODE")
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password secret-key\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert prepare_environment(["wandb"], tmp_path / "run", "run") == (["wandb"], [])
    assert "WANDB_MODE" not in os.environ


def test_a_tracker_that_raises_is_finished_and_dropped_with_a_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    finished = []

    class Broken:
        def log(self, values: dict, step: int) -> None:
            raise OSError("disk full")

        def finish(self) -> None:
            finished.append(True)
            raise OSError("still full")  # finishing as far as it can; this failure is not reported again

    trackers = EventTrackers([], tmp_path, "run", {})
    trackers.trackers["tensorboard"] = Broken()
    trackers({"type": "step", "step": 2, "loss": 0.5, "epoch": 0.1})
    trackers({"type": "step", "step": None, "loss": 0.5})  # no step: nothing to log, and nothing raised
    assert trackers.trackers == {} and finished == [True]
    assert capsys.readouterr().out.count("the tensorboard tracker failed (OSError: disk full)") == 1
    trackers.close("finished")


def test_mlflow_is_left_out_with_a_warning_when_its_default_store_cannot_be_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _forget_tracker_environment(monkeypatch)
    (tmp_path / "mlruns").write_text("a file where the store would go")
    monkeypatch.chdir(tmp_path)
    kept, notes = prepare_environment(["tensorboard", "mlflow"], tmp_path / "run", "run")
    assert kept == ["tensorboard"]
    assert notes[0].startswith("warning: the mlflow tracker is off") and "set MLFLOW_TRACKING_URI" in notes[0]


TRACKER_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID", "WANDB_API_KEY", "WANDB_MODE",
               "WANDB_DIR", "WANDB_PROJECT", "WANDB_NAME", "WANDB_RUN_ID", "WANDB_RESUME")


def _forget_tracker_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The trackers' variables unset, and whatever the code under test sets undone after the test."""
    for key in TRACKER_ENV:
        monkeypatch.setenv(key, "x")  # recorded, so monkeypatch restores the original state
        monkeypatch.delenv(key)


@pytest.mark.parametrize("engine", ["trainer", "torch-loop"])
def test_a_resumed_run_continues_its_mlflow_and_wandb_runs(
        engine: str, tiny_model: Path, tiny_data: dict[str, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from core.launch import create_run, resolve_config, resume_checkpoint
    from core.worker import main as worker_main
    from tests.test_stop_resume import _stop_at

    _forget_tracker_environment(monkeypatch)
    monkeypatch.setenv("HOME", str(tmp_path))  # no W&B login: offline
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    raw = {**tiny_config(tiny_model, tiny_data, tmp_path / "run", save_strategy="steps", save_steps=6,
                         report_to=ALL), "engine": engine}
    run = create_run(resolve_config(parse_config(raw)))
    with monkeypatch.context() as m:
        _stop_at(m, run, 12)
        assert worker_main([str(run.path)]) == 0, run.log_tail(40)
    assert run.events()[-1]["type"] == "stopped"
    assert worker_main([str(run.path), "--resume", str(resume_checkpoint(run))]) == 0, run.log_tail(40)
    assert run.events()[-1]["type"] == "finished"
    steps = sorted({e["step"] for e in run.events() if e["type"] == "step"})
    assert steps[0] < 12 < steps[-1]

    history, _ = _mlflow(uri, run.path.name)  # exactly one MLflow run: the resumed segment continued it
    assert sorted(history["train/loss"]) == steps
    logs = sorted(run.path.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(logs) == 2 and logs[0].name == logs[1].name  # two segments, one W&B run id
    logged: set[int] = set()
    for log in logs:
        for record in _wandb_records(log):
            if record.WhichOneof("record_type") == "history":
                row = {item.key or "/".join(item.nested_key): item.value_json for item in record.history.item}
                if "train/loss" in row:
                    logged.add(int(json.loads(row["train/global_step"])))
    assert sorted(logged) == steps
