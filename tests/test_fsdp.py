"""training.fsdp: the model sharded over two CPU processes (torchrun, gloo) with FSDP2 trains exactly as two unsharded
data-parallel processes do, on the trainer and torch-loop engines; it saves a whole model, resumes to the same
losses, and what it cannot do is refused before a run with the key and the fix."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.config import parse_config
from core.errors import ConfigError
from core.memory import GiB, advice, estimate
from core.models import load_model_config
from core.rundir import RunDir
from tests.llm_fixtures import build_causal_lm, build_llm_tokenizer
from tests.test_multiprocess import ENV, _run
from tests.test_task_generation import ALPACA, _alpaca

_DATA = {"prompt_template": ALPACA, "response_column": "output"}


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tiny-llama")
    build_causal_lm(build_llm_tokenizer(), "llama", directory)
    return directory


def _raw(model: Path, train: Path, out: Path, engine: str, **training: Any) -> dict[str, Any]:
    return {"task": "text-generation", "engine": engine, "model": {"name_or_path": str(model)},
            "data": {"train_file": str(train), **_DATA}, "tokenizer": {"max_length": 48},
            "training": {"num_train_epochs": 1, "learning_rate": 5e-3, "per_device_train_batch_size": 4,
                         "logging_steps": 1, "num_processes": 2, "group_by_length": False, "save_strategy": "steps",
                         "save_steps": 2, "fsdp": True, **training},
            "output_dir": str(out)}


def _losses(run: RunDir) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in run.events() if e["type"] == "step"}


def _weights(directory: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(directory / "model.safetensors"))


# --- what is refused --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("training", "message"), [
    ({"num_processes": 1}, r"fsdp shards the model over the run's processes, and num_processes is 1"),
    ({"quantization": "4bit"}, r"fsdp and quantization 4bit are not combined"),
    ({"gradient_checkpointing": True}, r"fsdp and gradient_checkpointing are not combined"),
])
def test_settings_fsdp_cannot_take_are_refused_with_the_fix(training: dict[str, Any], message: str,
                                                            tmp_path: Path) -> None:
    raw = _raw(Path("m"), tmp_path / "a.json", tmp_path / "run", "trainer", **training)
    with pytest.raises(ConfigError, match=message):
        parse_config(raw)


def test_an_engine_that_cannot_shard_and_a_single_process_are_refused_before_a_run(llama: Path,
                                                                                  tmp_path: Path) -> None:
    from core.engines import ENGINES
    from core.engines.fsdp import check_fsdp

    config = parse_config(_raw(llama, tmp_path / "a.json", tmp_path / "run", "trainer"))
    with pytest.raises(ConfigError, match="the keras engine does not do") as err:
        check_fsdp(config, ENGINES["keras"])
    assert "engine: trainer or torch-loop" in str(err.value)
    # num_processes null means one per GPU: none here, so one process, and nothing to shard over.
    single = parse_config(_raw(llama, tmp_path / "a.json", tmp_path / "run", "trainer", num_processes=None))
    with pytest.raises(ConfigError, match="this run has one"):
        check_fsdp(single, ENGINES["trainer"])
    # The exported scripts do not shard: the export says so instead of writing one that trains unsharded.
    from core.export import export_config

    with pytest.raises(ConfigError, match=r"do not shard the model \(training\.fsdp\)"):
        export_config(config, "script")


def test_the_memory_estimate_shards_and_advises_sharding_over_several_gpus(llama: Path, tmp_path: Path) -> None:
    """Weights, gradients and AdamW's moments divide over the processes (plus one layer held whole); a full
    fine-tune that fits no single GPU is told to shard when several are visible."""
    whole = parse_config(_raw(llama, tmp_path / "a.json", tmp_path / "r", "trainer", fsdp=False, lora=None))
    sharded = parse_config(_raw(llama, tmp_path / "a.json", tmp_path / "r", "trainer", lora=None, num_processes=4))
    model_config = load_model_config(whole.model)
    one, four = (estimate(c, model_config, free=[GiB], device="cuda") for c in (whole, sharded))
    assert four.parts["gradients"] == one.parts["gradients"] // 4
    assert four.parts["optimizer"] == one.parts["optimizer"] // 4
    layer = one.parts["weights"] // model_config.num_hidden_layers
    assert four.parts["weights"] == one.parts["weights"] // 4 + layer
    assert four.parts["activations"] == one.parts["activations"]  # each process still runs its own batch
    # Free memory that one copy of the states does not fit, but a quarter of them does.
    states = one.parts["weights"] + one.parts["gradients"] + one.parts["optimizer"]
    free = one.parts["activations"] + one.parts["overhead"] + states // 2
    tight = estimate(whole, model_config, free=[free] * 4, device="cuda")
    assert tight.fits is False
    assert advice(tight, whole, model_config) == ("set training.fsdp: true with num_processes 4 (the model sharded "
                                                  "over the GPUs)")


# --- training ---------------------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize(("engine", "lora"), [("trainer", "default"), ("torch-loop", None)])
def test_two_sharded_processes_train_as_two_unsharded_ones(engine: str, lora: Any, llama: Path,
                                                           tmp_path: Path) -> None:
    """FSDP2 over two gloo processes (really sharded: the run's log counts the DTensor parameters) gives the losses,
    metrics and saved weights of plain data parallelism over two processes; the saved model is whole (loads in
    transformers), with LoRA's adapter beside it."""
    train = _alpaca(tmp_path / "alpaca.json", 32)
    extra = {"num_train_epochs": 2, **({} if lora == "default" else {"lora": lora})}
    sharded = _run(tmp_path, "sharded", _raw(llama, train, tmp_path / "sharded", engine, **extra))
    plain = _run(tmp_path, "plain", _raw(llama, train, tmp_path / "plain", engine, fsdp=False, **extra))
    log = (sharded.path / "stdout.log").read_text()
    assert "parameters sharded over 2 processes (FSDP2)" in log, log[-2000:]
    assert "FSDP2" not in (plain.path / "stdout.log").read_text()
    assert _losses(sharded) == pytest.approx(_losses(plain), abs=1e-5) and len(_losses(plain)) >= 4
    final = next(e for e in sharded.events() if e["type"] == "finished")["metrics"]
    assert final == pytest.approx(next(e for e in plain.events() if e["type"] == "finished")["metrics"], abs=1e-5)
    ours, theirs = _weights(sharded.model_dir), _weights(plain.model_dir)
    assert ours.keys() == theirs.keys() and all(ours[k].allclose(theirs[k], atol=1e-5) for k in ours)
    assert (sharded.path / "adapter").is_dir() == (lora == "default")
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(sharded.model_dir)  # a plain, whole model


@pytest.mark.slow
def test_a_sharded_run_stopped_and_resumed_logs_the_losses_of_an_unbroken_one(llama: Path, tmp_path: Path) -> None:
    """torch-loop: the stop lands on a checkpoint of the sharded state (Accelerate's save_state), and the resumed
    run loads each process's shard back and continues step for step."""
    train = _alpaca(tmp_path / "alpaca.json", 32)
    raw = _raw(llama, train, tmp_path / "whole", "torch-loop", num_train_epochs=5, lora=None)
    whole = _run(tmp_path, "whole", raw)
    config = tmp_path / "parted.yaml"
    config.write_text(yaml.safe_dump({**raw, "output_dir": str(tmp_path / "parted")}))
    cli = [sys.executable, "-m", "tui.cli"]
    started = subprocess.run([*cli, "run", str(config), "--detach"], capture_output=True, text=True, env=ENV,
                             timeout=120)
    assert started.returncode == 0, started.stderr
    parted = RunDir(tmp_path / "parted")
    deadline = time.monotonic() + 300
    while not any(e["type"] == "checkpoint" for e in parted.events()):
        assert time.monotonic() < deadline, "no checkpoint within 5 minutes"
        time.sleep(0.05)
    subprocess.run([*cli, "stop", str(parted.path)], capture_output=True, text=True, env=ENV, timeout=60)
    while parted.events()[-1]["type"] not in ("stopped", "finished", "failed"):
        assert time.monotonic() < deadline, "the run did not stop"
        time.sleep(0.2)
    stopped = parted.events()[-1]
    assert stopped["type"] == "stopped", json.dumps(stopped)
    assert stopped["step"] < max(_losses(whole)), "stopped before the end, so the resumed run has steps to match"
    resumed = subprocess.run([*cli, "resume", str(parted.path)], capture_output=True, text=True, env=ENV,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert _losses(parted) == pytest.approx(_losses(whole), abs=1e-6)
