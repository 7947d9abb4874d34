"""Two CPU processes (torchrun, gloo), or two Keras replicas (MirroredStrategy over two logical CPUs), give the
results of one process with the combined batch."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from core.rundir import RunDir
from tests.conftest import tiny_config, without_dropout

ENV = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")


def _run(tmp_path: Path, name: str, raw: dict) -> RunDir:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = subprocess.run([sys.executable, "-m", "tui.cli", "run", str(path)], capture_output=True, text=True,
                            env=ENV, timeout=600)
    run = RunDir(raw["output_dir"])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:] + "\n".join(run.log_tail(40))
    return run


NO_KERAS = importlib.util.find_spec("keras_hub") is None
MODEL_FILE = {"trainer": "model.safetensors", "keras": "model.keras"}


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["trainer", pytest.param("keras", marks=pytest.mark.skipif(
    NO_KERAS, reason='the keras engine needs pip install "finetune-tui[keras]"'))])
def test_two_processes_match_one_with_the_combined_batch(engine: str, tiny_model: Path, tiny_data: dict,
                                                         tmp_path: Path) -> None:
    # Without dropout, whose masks differ between one and two devices, the two runs compute the same steps.
    tiny_model = without_dropout(tiny_model, tmp_path / "model")
    common = {"group_by_length": False, "save_strategy": "no", "logging_steps": 3}
    one = _run(tmp_path, "one", {**tiny_config(tiny_model, tiny_data, tmp_path / "one", per_device_train_batch_size=8,
                                               **common), "engine": engine})
    two = _run(tmp_path, "two", {**tiny_config(tiny_model, tiny_data, tmp_path / "two", per_device_train_batch_size=4,
                                               num_processes=2, **common), "engine": engine})
    started = [e for e in two.events() if e["type"] == "run_started"]
    assert len(started) == 1, "only the main process writes events"
    assert started[0]["batch_layout"]["num_processes"] == 2
    steps_one = [e["step"] for e in one.events() if e["type"] == "step"]
    steps_two = [e["step"] for e in two.events() if e["type"] == "step"]
    assert steps_one == steps_two, "the same number of optimizer steps with the combined batch"
    final_one, final_two = one.events()[-1]["metrics"], two.events()[-1]["metrics"]
    assert set(final_one) == {"loss", "accuracy", "f1", "f1_macro", "test"}
    losses_one = [e["loss"] for e in one.events() if e["type"] == "step"]
    losses_two = [e["loss"] for e in two.events() if e["type"] == "step"]
    assert losses_two == pytest.approx(losses_one, abs=0.01), "every logged loss, not only the last"
    assert final_two["loss"] == pytest.approx(final_one["loss"], abs=0.01)
    assert final_two["accuracy"] == pytest.approx(final_one["accuracy"], abs=0.05)
    assert (two.model_dir / MODEL_FILE[engine]).exists()
    if engine == "keras":  # the exported script spreads over the same replicas itself, and reproduces the run
        _script_reproduces(tmp_path, two)


def _script_reproduces(tmp_path: Path, run: RunDir) -> None:
    script = tmp_path / "train_keras.py"
    exported = subprocess.run([sys.executable, "-m", "tui.cli", "export", str(tmp_path / "two.yaml"), "--to",
                               "script", "-o", str(script)], capture_output=True, text=True, env=ENV, timeout=300)
    assert exported.returncode == 0, exported.stderr
    result = subprocess.run([sys.executable, str(script), str(tmp_path / "script-out")], capture_output=True,
                            text=True, env=ENV, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ours = json.loads((tmp_path / "script-out" / "metrics.json").read_text())
    theirs = json.loads(run.metrics_path.read_text())
    for split in ("validation", "test"):
        assert ours[split] == pytest.approx({k: theirs[split][k] for k in ours[split]}, abs=1e-5), split
