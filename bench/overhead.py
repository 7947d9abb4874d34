"""1. Overhead: `finetune-tui run` against the tutorials' hand-written Trainer script, same work.

Both train the bundled model on the same rows, with the same batch size, max_length, learning rate, seed, logging
and max_steps, no evaluation or checkpoints during training. Every row is longer than max_length (128 tokens), so
truncation makes every batch exactly 16 x 128 tokens whichever rows it holds: equal work on both sides by
construction, whatever order each side's sampler draws. Throughput on both sides is Trainer's own measure: samples
per second over `train()` (its train_runtime), which leaves out process start, data loading, tokenizing and model
loading on both sides. finetune-tui's comes from the line Trainer prints into the run's stdout.log; the script
prints its TrainOutput. Runs alternate (script, product, product, script, ...) so drift in machine load hits both
sides.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from bench.common import (
    PYTHON,
    REPO,
    Result,
    Target,
    alternating,
    bench_env,
    bundled_model_dir,
    log,
    median,
    product_run,
    settle,
    spread,
    step_throughput,
    stopwatch,
    varied_rows,
    write_config,
    write_csv,
)

BATCH = 16
MAX_LENGTH = 128
LEARNING_RATE = 5e-5
LOGGING_STEPS = 10
SEED = 42


def _script_run(work: Path, train: Path, steps: int, index: int) -> tuple[dict[str, float], float]:
    out = work / f"script-{index}"
    command = [PYTHON, str(REPO / "bench" / "tutorial_trainer.py"), "--model", bundled_model_dir(),
               "--train", str(train),
               "--output-dir", str(out), "--max-length", str(MAX_LENGTH), "--batch-size", str(BATCH),
               "--max-steps", str(steps), "--learning-rate", str(LEARNING_RATE),
               "--logging-steps", str(LOGGING_STEPS), "--seed", str(SEED)]
    env = bench_env(HF_DATASETS_CACHE=str(work / "hf-datasets-cache"))
    with stopwatch() as wall:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=1800, cwd=work, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"tutorial_trainer.py failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    line = next(ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith('{"tutorial_train_metrics"'))
    return json.loads(line)["tutorial_train_metrics"], wall()


def run(work: Path, quick: bool) -> Result:
    steps = 8 if quick else 30
    pairs = 2 if quick else 5  # pairs of runs on a 2-core VM spread by +-6%: five give a steadier median
    result = Result("overhead", "Overhead: finetune-tui run vs a hand-written Trainer script")
    # 120+ words is 130+ tokens: every row is cut to MAX_LENGTH, so every batch has the same shape.
    train = write_csv(work / "train.csv", varied_rows(steps * BATCH, seed=11, min_words=120))
    validation = write_csv(work / "validation.csv", varied_rows(48, seed=12))
    training = {"max_steps": steps, "per_device_train_batch_size": BATCH, "learning_rate": LEARNING_RATE,
                "logging_steps": LOGGING_STEPS, "eval_strategy": "no", "save_strategy": "no", "seed": SEED,
                "warmup_ratio": 0.0, "weight_decay": 0.01}
    tokenizer = {"padding": "dynamic", "max_length": MAX_LENGTH, "truncation": True}
    config = write_config(work / "product.yaml", train, validation, work / "product-run", tokenizer=tokenizer,
                          training=training)

    product: list[float] = []
    script: list[float] = []
    product_steady: list[float] = []
    product_wall: list[float] = []
    script_wall: list[float] = []
    losses: dict[str, list[float]] = {"product": [], "script": []}
    order = alternating(pairs)
    for i, pair in enumerate(order):
        for side in pair:
            settle()
            log(f"overhead: {side} run {i + 1}/{pairs} ({steps} steps of {BATCH})")
            if side == "product":
                r = product_run(config, work / f"product-run-{i}")
                metrics = r.train_metrics
                product.append(steps * BATCH / metrics["train_runtime"])
                losses["product"].append(metrics["train_loss"])
                product_wall.append(r.wall_s)
                steady = step_throughput(r.events, BATCH)
                if steady is not None:
                    product_steady.append(steady)
            else:
                metrics, wall = _script_run(work, train, steps, i)
                script.append(steps * BATCH / metrics["train_runtime"])
                losses["script"].append(metrics["train_loss"])
                script_wall.append(wall)

    ratio = median(product) / median(script)
    pair_ratios = [p / s for p, s in zip(product, script, strict=True)]
    result.figures = {
        "steps": steps, "batch_size": BATCH, "max_length": MAX_LENGTH, "padding": "dynamic", "repeats": pairs,
        "product_samples_per_s": product, "script_samples_per_s": script,
        "product_samples_per_s_median": round(median(product), 3),
        "script_samples_per_s_median": round(median(script), 3),
        "throughput_ratio": round(ratio, 4),
        "pair_ratios": [round(r, 4) for r in pair_ratios],
        "product_steady_samples_per_s_from_step_events": [round(x, 3) for x in product_steady],
        "train_loss": losses,
        "product_wall_s": [round(x, 1) for x in product_wall], "script_wall_s": [round(x, 1) for x in script_wall],
        "cpu_threads": os.cpu_count(),
    }
    result.row("script samples/s", spread(script))
    result.row("finetune-tui samples/s", spread(product))
    result.row("throughput ratio (medians)", f"{ratio:.3f}")
    result.row("ratio per pair", ", ".join(f"{r:.3f}" for r in pair_ratios))
    result.row("wall per run: script / finetune-tui", f"{median(script_wall):.1f} s / {median(product_wall):.1f} s")
    result.targets.append(Target("throughput finetune-tui / script", round(ratio, 4), ">=", 0.98))
    result.method = (
        f"{pairs} runs each, alternating; {steps} steps of {BATCH} rows on the bundled MiniLM, every row truncated to "
        f"max_length {MAX_LENGTH} (equal batches on both sides), no eval/save while training. "
        "samples/s = steps x batch / Trainer's train_runtime "
        "(model loading, tokenizing and process start excluded on both sides); ratio = median / median."
    )
    result.notes.append(
        "Same work: every batch is 16 x 128 tokens on both sides. finetune-tui also counts non-padding tokens "
        "(include_num_input_tokens_seen) for its tokens/s figure, writes step events, checks for a stop request "
        "every step and samples the device every 5 s: that is the overhead measured."
    )
    result.notes.append(
        "Wall per run includes process start, preflight (finetune-tui loads and checks the data and model config "
        "in the CLI before starting the worker), data loading, tokenizing, model loading, the final evaluation and "
        "saving the model (finetune-tui only); it is context, not the target."
    )
    return result
