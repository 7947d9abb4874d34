"""8. End to end: `finetune-tui run` from the command to a saved, evaluated model, against a plain script.

`bench.overhead` compares `train()` only, which leaves out everything a user also waits for: process start, the
CLI's checks, data loading and tokenizing, model loading, the evaluation, the report and saving. Here both sides are
timed from the command to the process's exit, wall and CPU (user + sys of the process and everything it waited
for): `finetune-tui run CONFIG` against bench/plain_end_to_end.py, the script a careful user writes from the
course (datasets' CSV loading, dynamic padding, length grouping, one evaluation with `evaluate`, save_model).
Same rows, model, settings and seed on both sides; runs alternate so drift in machine load hits both.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from bench.common import (
    FINETUNE_TUI,
    PYTHON,
    REPO,
    Result,
    Target,
    alternating,
    bench_env,
    bundled_model_dir,
    kill_run,
    log,
    median,
    read_run,
    settle,
    spread,
    varied_rows,
    write_config,
    write_csv,
)

TRAIN_ROWS, VALIDATION_ROWS = 640, 2000
BATCH, EVAL_BATCH = 16, 64
MAX_LENGTH = 128
LEARNING_RATE = 5e-5
SEED = 42
TARGET_RATIO = 1.03


def _timed(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """Run a command to its exit: (result, wall s, CPU s of it and every process it waited for)."""
    import time

    before = os.times()
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, timeout=1800, cwd=cwd, env=env)
    wall = time.perf_counter() - start
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return proc, wall, cpu


def _script(work: Path, train: Path, validation: Path, index: int) -> tuple[float, float, dict[str, float]]:
    out = work / f"script-{index}"
    command = [PYTHON, str(REPO / "bench" / "plain_end_to_end.py"), "--model", bundled_model_dir(),
               "--train", str(train),
               "--validation", str(validation), "--output-dir", str(out),
               "--metric-module", str(REPO / "core" / "metric_modules" / "classification"),
               "--max-length", str(MAX_LENGTH), "--batch-size", str(BATCH), "--eval-batch-size", str(EVAL_BATCH),
               "--learning-rate", str(LEARNING_RATE), "--seed", str(SEED)]
    proc, wall, cpu = _timed(command, work, bench_env(HF_DATASETS_CACHE=str(work / f"hf-cache-{index}")))
    if proc.returncode != 0:
        raise RuntimeError(f"plain_end_to_end.py failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    line = next(ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith('{"plain_eval_metrics"'))
    metrics = json.loads(line)["plain_eval_metrics"]
    if not (out / "model.safetensors").exists():
        raise RuntimeError(f"the plain script saved no model in {out}")
    return wall, cpu, metrics


def _product(work: Path, config: Path, index: int) -> tuple[float, float, dict[str, float], dict[str, float]]:
    out = work / f"product-{index}"
    command = [FINETUNE_TUI, "run", str(config), "--output-dir", str(out)]
    try:
        proc, wall, cpu = _timed(command, work, bench_env())
    except BaseException:
        kill_run(out)
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"finetune-tui run failed ({proc.returncode}):\n{proc.stderr[-3000:]}\n"
                           f"{proc.stdout[-2000:]}")
    run = read_run(out, wall)
    if not (out / "model" / "model.safetensors").exists() or not (out / "evaluation" / "validation").is_dir():
        raise RuntimeError(f"{out} has no saved model or no evaluation report")
    finished = run.last("finished")
    started = run.last("run_started")
    phases = _phases(run.events, started, finished)
    return wall, cpu, finished["metrics"], phases


def _phases(events: list[dict], started: dict, finished: dict) -> dict[str, float]:
    """Where the product's time went, from the event timestamps (seconds)."""
    evals = [e for e in events if e.get("type") == "eval"]
    out = {"run_started_to_finished_s": round(finished["time"] - started["time"], 2)}
    if evals:
        out["last_eval_to_finished_s"] = round(finished["time"] - evals[-1]["time"], 2)
    return out


def run(work: Path, quick: bool) -> Result:
    pairs = 1 if quick else 3
    train_rows, validation_rows = (160, 200) if quick else (TRAIN_ROWS, VALIDATION_ROWS)
    result = Result("end_to_end", "End to end: finetune-tui run vs a plain Trainer script, command to saved model")
    train = write_csv(work / "train.csv", varied_rows(train_rows, seed=21))
    validation = write_csv(work / "validation.csv", varied_rows(validation_rows, seed=22))
    training = {"num_train_epochs": 1, "per_device_train_batch_size": BATCH, "per_device_eval_batch_size": EVAL_BATCH,
                "learning_rate": LEARNING_RATE, "logging_steps": 10, "eval_strategy": "epoch",
                "save_strategy": "no", "seed": SEED, "warmup_ratio": 0.0, "weight_decay": 0.01,
                "group_by_length": True}
    tokenizer = {"padding": "dynamic", "max_length": MAX_LENGTH, "truncation": True}
    config = write_config(work / "product.yaml", train, validation, work / "unused", tokenizer=tokenizer,
                          training=training)

    walls: dict[str, list[float]] = {"product": [], "script": []}
    cpus: dict[str, list[float]] = {"product": [], "script": []}
    accuracy: dict[str, list[float]] = {"product": [], "script": []}
    phases: list[dict[str, float]] = []
    order = alternating(pairs)
    for i, pair in enumerate(order):
        for side in pair:
            settle()
            log(f"end_to_end: {side} run {i + 1}/{pairs}")
            if side == "product":
                wall, cpu, metrics, phase = _product(work, config, i)
                accuracy["product"].append(round(float(metrics["accuracy"]), 4))
                phases.append(phase)
            else:
                wall, cpu, metrics = _script(work, train, validation, i)
                accuracy["script"].append(round(float(metrics["eval_accuracy"]), 4))
            walls[side].append(round(wall, 2))
            cpus[side].append(round(cpu, 2))

    wall_ratio = median(walls["product"]) / median(walls["script"])
    cpu_ratio = median(cpus["product"]) / median(cpus["script"])
    result.figures = {
        "train_rows": train_rows, "validation_rows": validation_rows, "epochs": 1, "batch_size": BATCH,
        "max_length": MAX_LENGTH, "repeats": pairs, "wall_s": walls, "cpu_s": cpus, "accuracy": accuracy,
        "wall_ratio": round(wall_ratio, 4), "cpu_ratio": round(cpu_ratio, 4), "product_phases": phases,
    }
    result.row("plain script wall s", spread(walls["script"]))
    result.row("finetune-tui run wall s", spread(walls["product"]))
    result.row("plain script CPU s", spread(cpus["script"]))
    result.row("finetune-tui run CPU s", spread(cpus["product"]))
    result.row("validation accuracy: script / finetune-tui",
               f"{median(accuracy['script']):.4f} / {median(accuracy['product']):.4f}")
    result.targets.append(Target("wall finetune-tui / script", round(wall_ratio, 4), "<=", TARGET_RATIO))
    result.targets.append(Target("CPU finetune-tui / script", round(cpu_ratio, 4), "<=", TARGET_RATIO))
    result.method = (
        f"{pairs} alternating pairs; {train_rows} training rows, 1 epoch of batch {BATCH}, one evaluation on "
        f"{validation_rows} validation rows, model saved; bundled MiniLM, max_length {MAX_LENGTH}, dynamic padding, "
        "length grouping, no checkpoints. Wall and CPU (user + sys, the process and all it waited for) from the "
        "command to its exit; ratio = median / median."
    )
    result.notes.append(
        "finetune-tui also checks the config, data and model before starting, writes events, samples the device, "
        "and writes the evaluation report (per-class table, confusion matrix, predictions, most confident "
        "mistakes, report.png) from the evaluation's own predictions: that is the overhead measured."
    )
    return result
