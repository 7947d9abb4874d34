"""Real training runs of the `trainer` engine on the tiny model, through the real CLI and the run process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from core.config import parse_config
from core.launch import create_run, resolve_config, start_detached
from core.rundir import RunDir
from core.worker import main as worker_main
from tests.conftest import tiny_config

FAKE_TOKEN = "hf_PLANTEDfakeTOKENforLEAKcheck1234567890"
# A planted Hub token: no file a run writes may ever contain it.
OFFLINE = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_TOKEN=FAKE_TOKEN)


def _cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tui.cli", *args], capture_output=True, text=True, env=OFFLINE,
                          cwd=cwd, timeout=timeout)


def _write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _run_in_process(raw: dict) -> RunDir:
    """Same worker as `finetune-tui run`, in this process: the variants below need no extra interpreter."""
    run_dir = create_run(resolve_config(parse_config(raw)))
    assert worker_main([str(run_dir.path)]) == 0, run_dir.log_tail()
    return run_dir


def test_cli_run_trains_and_leaves_a_pipeline_ready_model(tiny_model: Path, tiny_data: dict, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = _cli("run", str(_write(tmp_path, tiny_config(tiny_model, tiny_data, out))))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "finished" in result.stdout and "Traceback" not in result.stderr

    run = RunDir(out)
    events = run.events()
    types = [e["type"] for e in events if e["type"] != "device"]
    assert types[0] == "run_started" and types[-1] == "finished"
    assert {"step", "eval", "checkpoint"} <= set(types)
    started = events[0]
    assert started["labels"] == ["neg", "pos"] and started["sizes"]["test"] == 24
    assert {"torch", "transformers"} <= set(started["versions"])
    losses = [e["loss"] for e in events if e["type"] == "step"]
    assert len(losses) >= 5 and sum(losses[-3:]) / 3 < sum(losses[:3]) / 3, losses
    finished = events[-1]
    assert finished["metrics"]["accuracy"] > 0.6 and "f1" in finished["metrics"]
    assert finished["metrics"]["test"]["accuracy"] > 0.6
    assert run.status() == "finished" and not run.is_live()
    assert set(finished["evaluation"]) == {"validation", "test"} and "evaluation_error" not in finished
    for split in ("validation", "test"):
        folder = Path(finished["evaluation"][split])
        for name in ("metrics.json", "predictions.jsonl", "most_wrong.jsonl", "report.png"):
            assert (folder / name).exists(), folder / name
        assert (folder / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads(run.metrics_path.read_text())
    assert report["validation"]["accuracy"] == finished["metrics"]["accuracy"] and "evaluation" in report
    for path in (run.config_path, run.stdout_path, run.stderr_path, run.pid_path, run.metrics_path):
        assert path.exists(), path
    assert (run.model_dir / "model.safetensors").exists()
    resolved = yaml.safe_load(run.config_path.read_text())
    assert resolved["data"]["train_file"] == str(tiny_data["train"]) and resolved["output_dir"] == str(out)

    written = [p for p in out.rglob("*") if p.is_file()]
    assert len(written) > 10
    assert not [p for p in written if FAKE_TOKEN.encode() in p.read_bytes()], "the Hub token leaked into the run dir"
    assert FAKE_TOKEN not in result.stdout + result.stderr
    assert not list(out.rglob("*.bin")) or all(p.name == "training_args.bin" for p in out.rglob("*.bin"))
    assert list((run.checkpoints_dir).rglob("model.safetensors"))

    from transformers import pipeline

    classify = pipeline("text-classification", model=str(run.model_dir))
    assert classify("great lovely superb film")[0]["label"] in {"pos", "neg"}


def test_bad_input_gets_clear_message_and_creates_nothing(tiny_model: Path, tiny_data: dict, tmp_path: Path) -> None:
    raw = tiny_config(tiny_model, tiny_data, tmp_path / "run")
    raw["data"]["train_file"] = str(tmp_path / "missing.tsv")
    result = _cli("run", str(_write(tmp_path, raw)))
    assert result.returncode == 2
    assert "missing.tsv" in result.stderr and "fix:" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_hub_model_fails_fast_offline(tiny_data: dict, tmp_path: Path) -> None:
    raw = tiny_config(Path("bert-base-cased"), tiny_data, tmp_path / "run")
    raw["model"]["name_or_path"] = "some-org/not-cached-model"
    started = time.monotonic()
    result = _cli("run", str(_write(tmp_path, raw)))
    assert time.monotonic() - started < 30  # imports included; the Hub check itself is instant offline
    assert result.returncode == 2 and "HF_HUB_OFFLINE" in result.stderr and "local" in result.stderr


def test_existing_run_is_never_overwritten(tiny_model: Path, tiny_data: dict, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = _cli("run", str(_write(tmp_path, tiny_config(tiny_model, tiny_data, out))))
    assert result.returncode == 2 and "already exists" in result.stderr and "not a finetune-tui run" in result.stderr
    assert (out / "keep.txt").read_text() == "mine"


def test_overwrite_into_the_working_directory_deletes_nothing(tiny_model: Path, tiny_data: dict,
                                                             tmp_path: Path) -> None:
    """`run cfg --output-dir . --overwrite` once ran rmtree on the working directory."""
    work = tmp_path / "project"
    work.mkdir()
    (work / "train.py").write_text("my script")
    config = _write(tmp_path, tiny_config(tiny_model, tiny_data, tmp_path / "unused"))
    before = sorted(work.rglob("*"))
    result = _cli("run", str(config), "--output-dir", ".", "--overwrite", cwd=work)
    assert result.returncode == 2 and "not a finetune-tui run" in result.stderr and "Traceback" not in result.stderr
    assert sorted(work.rglob("*")) == before and (work / "train.py").read_text() == "my script"


def test_detached_run_outlives_its_caller_and_stops_gracefully(tiny_model: Path, tiny_data: dict,
                                                               tmp_path: Path) -> None:
    raw = tiny_config(tiny_model, tiny_data, tmp_path / "run", max_steps=100000, save_strategy="no",
                      eval_strategy="no", logging_steps=1)
    run = start_detached(parse_config(raw))
    pid = run.pid()
    assert pid is not None and os.getsid(pid) != os.getsid(0)  # its own session: a closed terminal cannot end it
    deadline = time.monotonic() + 120
    while not any(e["type"] == "step" for e in run.events()):
        assert time.monotonic() < deadline and run.status() in ("starting", "running"), run.log_tail()
        time.sleep(0.5)
    run.request_stop()
    while run.is_live():
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert run.status() == "stopped"
    stopped = run.events()[-1]
    assert stopped["checkpoint"] and Path(stopped["checkpoint"]).is_dir()


def test_freeze_encoder_trains_only_the_head(tiny_model: Path, tiny_data: dict, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    run = _run_in_process(tiny_config(tiny_model, tiny_data, tmp_path / "run", freeze_encoder=True, max_steps=6))
    before = load_file(tiny_model / "model.safetensors")
    after = load_file(run.model_dir / "model.safetensors")
    key = next(k for k in before if "encoder.layer.0.attention.self.query.weight" in k)
    assert torch.equal(before[key], after["bert." + key if not key.startswith("bert.") else key])
    assert any("classifier" in k for k in after)


def test_lora_result_is_a_plain_model(tiny_model: Path, tiny_data: dict, tmp_path: Path) -> None:
    lora = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["query", "value"]}
    run = _run_in_process(tiny_config(tiny_model, tiny_data, tmp_path / "run", lora=lora, max_steps=6))
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(run.model_dir)
    assert not any("lora" in name for name, _ in model.named_parameters())
    assert model.config.id2label == {0: "neg", 1: "pos"}


def test_early_stopping_ends_before_the_last_epoch(tiny_model: Path, tiny_data: dict, tmp_path: Path) -> None:
    raw = tiny_config(tiny_model, tiny_data, tmp_path / "run", num_train_epochs=30, learning_rate=1e-9,
                      early_stopping_patience=1)
    run = _run_in_process(raw)
    events = run.events()
    evals = [e for e in events if e["type"] == "eval" and e["split"] == "validation"]
    # No improvement after the first evaluation (epoch 1, step 9), patience 1: it stops at the second (step 18),
    # not after 30 epochs (270 steps). A final evaluation of the best model may follow.
    assert 2 <= len(evals) <= 3, evals
    assert [e["step"] for e in evals[:2]] == [9, 18]
    assert events[0]["total_steps"] == 270
    assert max(e["step"] for e in events if e["type"] == "step") <= 18
    assert events[-1]["type"] == "finished"


def test_metrics_work_with_hub_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from core.metrics import Metrics

    m = Metrics(["accuracy", "f1", "precision", "recall", "matthews_correlation"], 2)
    m.add_batch([0, 1, 1, 0], [0, 1, 0, 0])
    scores = m.compute()
    assert scores["accuracy"] == 0.75 and 0 < scores["matthews_correlation"] < 1
