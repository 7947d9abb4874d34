"""4. Watching costs nothing: training throughput with the monitor attached against without, and the monitor's
CPU and memory while it watches.

Each run is started detached (`finetune-tui run --detach`, i.e. core.launch.start_detached), exactly as the wizard
starts one. With the monitor, `finetune-tui monitor RUN_DIR` runs in a 120x40 pseudo-terminal from the moment
the run starts until it finishes (its output read and thrown away, as a terminal would show it). The run logs
every step (logging_steps 1), the worst case for the monitor: a new step event, a chart update and a progress
update every step. Throughput = steps x batch / Trainer's train_runtime. The monitor's CPU = its CPU time over
wall time while the run trains (between the run's run_started and finished events), in % of one core; its memory
= the largest resident set seen (sampled every 0.5 s). Runs alternate (without, with, with, without, ...).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import psutil

from bench.common import (
    FINETUNE_TUI,
    PtyApp,
    Result,
    Target,
    bench_env,
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

BATCH = 16


def _events(run_dir: Path) -> list[dict[str, Any]]:
    from core.events import read_events

    path = run_dir / "events.jsonl"
    return read_events(path) if path.exists() else []


def _has(events: list[dict[str, Any]], kind: str) -> bool:
    return any(e.get("type") == kind for e in events)


def _one(work: Path, config: Path, name: str, monitored: bool, timeout: float = 3600) -> dict[str, Any]:
    run_dir = work / name
    subprocess.run([FINETUNE_TUI, "run", str(config), "--output-dir", str(run_dir), "--overwrite", "--detach"],
                   check=True, capture_output=True, env=bench_env(), cwd=work, timeout=300)
    monitor = PtyApp([FINETUNE_TUI, "monitor", str(run_dir)], cwd=work) if monitored else None
    cpu: dict[str, float] = {}
    rss: list[float] = []
    deadline = time.monotonic() + timeout
    try:
        process = psutil.Process(monitor.proc.pid) if monitor else None
        training = False
        while time.monotonic() < deadline:
            events = _events(run_dir)
            if any(e.get("type") in ("failed", "stopped") for e in events):
                raise RuntimeError(f"{run_dir} did not finish: {events[-1]}")
            if process is not None:
                if not training and _has(events, "run_started"):
                    training = True
                    cpu["t0"], cpu["c0"] = time.perf_counter(), sum(process.cpu_times()[:2])
                if training:
                    rss.append(process.memory_info().rss / 2**20)
            if _has(events, "finished"):
                if process is not None and training:
                    cpu["t1"], cpu["c1"] = time.perf_counter(), sum(process.cpu_times()[:2])
                break
            time.sleep(0.5)
        else:
            raise TimeoutError(f"{run_dir} did not finish in {timeout:.0f} s")
        if monitor is not None:
            # The monitor must have followed the run to its end, or its CPU figure means nothing.
            end = time.monotonic() + 5
            while "finished" not in monitor.screen_text() and time.monotonic() < end:
                time.sleep(0.1)
            cpu["showed_finished"] = float("finished" in monitor.screen_text())
    except BaseException:
        kill_run(run_dir)
        raise
    finally:
        if monitor is not None:
            monitor.quit()
    # The worker may still be writing its last lines and releasing the lock.
    for _ in range(100):
        if (run_dir / "stdout.log").exists() and "finished:" in (run_dir / "stdout.log").read_text(errors="replace"):
            break
        time.sleep(0.1)
    r = read_run(run_dir)
    metrics = r.train_metrics
    steps = int(r.last("run_started")["total_steps"])
    out: dict[str, Any] = {"samples_per_s": steps * BATCH / metrics["train_runtime"]}
    if monitored:
        out["cpu_pct"] = 100 * (cpu["c1"] - cpu["c0"]) / (cpu["t1"] - cpu["t0"]) if "c1" in cpu else None
        out["rss_mb_max"] = max(rss) if rss else None
        out["watched_s"] = cpu["t1"] - cpu["t0"] if "c1" in cpu else None
        out["showed_finished"] = bool(cpu.get("showed_finished"))
    return out


def run(work: Path, quick: bool) -> Result:
    steps = 10 if quick else 30
    pairs = 1 if quick else 3
    result = Result("watching", "Watching: training with the monitor attached vs without")
    train = write_csv(work / "train.csv", varied_rows(steps * BATCH, seed=31))
    validation = write_csv(work / "validation.csv", varied_rows(48, seed=32))
    config = write_config(
        work / "run.yaml", train, validation, work / "unused",
        tokenizer={"padding": "dynamic", "max_length": 128},
        training={"max_steps": steps, "per_device_train_batch_size": BATCH, "logging_steps": 1,
                  "eval_strategy": "no", "save_strategy": "no", "seed": 42},
    )
    without: list[float] = []
    with_monitor: list[float] = []
    cpu: list[float] = []
    rss: list[float] = []
    followed: list[bool] = []
    order = [(False, True) if i % 2 == 0 else (True, False) for i in range(pairs)]
    for i, pair in enumerate(order):
        for monitored in pair:
            settle()
            log(f"watching: run {i + 1}/{pairs} {'with' if monitored else 'without'} the monitor ({steps} steps)")
            r = _one(work, config, f"run-{i}-{'monitored' if monitored else 'alone'}", monitored)
            if monitored:
                with_monitor.append(r["samples_per_s"])
                followed.append(r["showed_finished"])
                if r["cpu_pct"] is not None:
                    cpu.append(r["cpu_pct"])
                if r["rss_mb_max"] is not None:
                    rss.append(r["rss_mb_max"])
            else:
                without.append(r["samples_per_s"])
    ratio = median(with_monitor) / median(without)
    result.figures = {
        "steps": steps, "batch_size": BATCH, "logging_steps": 1, "repeats": pairs,
        "samples_per_s_without": [round(x, 3) for x in without],
        "samples_per_s_with_monitor": [round(x, 3) for x in with_monitor],
        "throughput_ratio": round(ratio, 4),
        "monitor_cpu_pct_of_one_core": [round(x, 2) for x in cpu],
        "monitor_cpu_pct_median": round(median(cpu), 2) if cpu else None,
        "monitor_rss_mb_max": round(max(rss), 1) if rss else None,
        "terminal": "120x40 pty",
        "monitor_showed_the_run_finished": followed,
    }
    result.row("samples/s without monitor", spread(without))
    result.row("samples/s with monitor", spread(with_monitor))
    result.row("throughput ratio (medians)", f"{ratio:.3f}")
    if cpu:
        result.row("monitor CPU (% of one core)", spread(cpu))
    if rss:
        result.row("monitor memory (max RSS)", f"{max(rss):.0f} MB")
    result.targets.append(Target("throughput with / without monitor", round(ratio, 4), ">=", 0.97))
    result.targets.append(Target("monitor CPU while watching (median)", round(median(cpu), 2) if cpu else None,
                                 "<=", 10.0, "%"))
    result.method = __doc__.split("\n\n", 1)[1].replace("\n", " ").strip()
    return result
