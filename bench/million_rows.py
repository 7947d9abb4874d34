"""7. A million rows: what the data costs in memory and time, against datasets' own CSV loading.

Two CSV files of the same shape (short texts, three string labels): 1,000,000 rows (about 140 MB) and 1,000 rows.
The data's share of peak RSS is the peak with the big file minus the peak with the small one, each in a fresh
process, for `finetune-tui validate` (the whole command) and for `finetune-tui run` up to its first optimizer step
(the run process's VmHWM when its first step event is written; the run is then killed). Speed: prepare_data (read,
check, encode the labels, stratified validation split) in a fresh process, against datasets' own path in another:
load_dataset("csv") with an empty cache and class_encode_column on the label, the least a tutorial does first.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import FINETUNE_TUI, Result, Target, bench_env, kill_run, log, run_python, settle

ROWS = 1_000_000
SMALL_ROWS = 1_000
_WORDS = ["the", "a", "film", "movie", "plot", "actor", "scene", "was", "is", "very", "really", "quite", "good",
          "bad", "great", "awful", "boring", "fun", "long", "short", "story", "music", "ending", "and", "but"]
_LABELS = ("positive", "negative", "neutral")


def write_rows(path: Path, rows: int, seed: int = 7) -> Path:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        f.write("text,label\n")
        for i in range(rows):
            f.write(" ".join(rng.choices(_WORDS, k=rng.randint(15, 36))) + f",{_LABELS[i % 3]}\n")
    return path


def _config(path: Path, train: Path, output_dir: Path) -> Path:
    path.write_text(json.dumps({
        "data": {"train_file": str(train), "text_column": "text", "label_column": "label", "max_eval_samples": 200},
        "training": {"max_steps": 100000, "logging_steps": 1, "eval_strategy": "no", "save_strategy": "no",
                     "per_device_train_batch_size": 8},
        "output_dir": str(output_dir),
    }))
    return path


def _peak_mb_of(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Peak RSS (MB) and wall seconds of one command, from the kernel's accounting of that process."""
    settle()
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
    return usage.ru_maxrss / 1024, wall


def _vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def _run_to_first_step(config: Path, run_dir: Path, env: dict[str, str], timeout: float = 3600) -> tuple[float, float]:
    """Peak RSS (MB) of the run process when its first step event appears, and the seconds until then."""
    from core.events import read_events

    settle()
    started = time.perf_counter()
    subprocess.run([FINETUNE_TUI, "run", str(config), "--detach"], check=True, capture_output=True, env=env)
    try:
        while time.perf_counter() - started < timeout:
            events = read_events(run_dir / "events.jsonl") if (run_dir / "events.jsonl").exists() else []
            if any(e["type"] == "step" for e in events):
                pid = int((run_dir / "run.pid").read_text())
                return _vm_hwm_mb(pid), time.perf_counter() - started
            if any(e["type"] in ("failed", "finished") for e in events):
                raise RuntimeError(f"{run_dir} ended before its first step: {events[-1]}")
            time.sleep(0.5)
        raise RuntimeError(f"{run_dir}: no step within {timeout:.0f} s")
    finally:
        kill_run(run_dir)


def _prepare(train: str) -> dict[str, Any]:
    """Fresh interpreter: finetune-tui's prepare_data, timed after the imports both paths share."""
    import datasets  # noqa: F401
    import pyarrow  # noqa: F401

    from core.config import DataConfig
    from core.data import prepare_data

    t = time.perf_counter()
    prepared = prepare_data(DataConfig(train_file=train, text_column="text", label_column="label"))
    return {"seconds": time.perf_counter() - t, "rows": sum(prepared.sizes.values())}


def _datasets_path(train: str) -> dict[str, Any]:
    """Fresh interpreter, empty HF_DATASETS_CACHE: load_dataset("csv") and class_encode_column("label")."""
    import datasets
    import pyarrow  # noqa: F401
    from datasets import load_dataset

    datasets.disable_progress_bars()
    t = time.perf_counter()
    ds = load_dataset("csv", data_files={"train": train})["train"].class_encode_column("label")
    return {"seconds": time.perf_counter() - t, "rows": len(ds)}


def run(work: Path, quick: bool) -> Result:
    rows = 20_000 if quick else ROWS
    result = Result("million_rows", f"A million rows: memory and time of the data ({rows:,} rows)")
    log(f"million_rows: writing {rows:,} and {SMALL_ROWS:,} rows")
    big, small = write_rows(work / "big.csv", rows), write_rows(work / "small.csv", SMALL_ROWS, seed=8)
    file_mb = big.stat().st_size / 2**20
    env = bench_env(HF_DATASETS_CACHE=str(work / "cache"))

    peaks: dict[str, dict[str, float]] = {"validate": {}, "run": {}}
    seconds: dict[str, dict[str, float]] = {"validate": {}, "run": {}}
    for name, train in (("small", small), ("big", big)):
        log(f"million_rows: validate, {name} file")
        cfg = _config(work / f"{name}.json", train, work / f"run-{name}")
        peaks["validate"][name], seconds["validate"][name] = _peak_mb_of([FINETUNE_TUI, "validate", str(cfg)], env)
        log(f"million_rows: run to its first step, {name} file")
        peaks["run"][name], seconds["run"][name] = _run_to_first_step(cfg, work / f"run-{name}", env)

    timings: dict[str, list[float]] = {"prepare": [], "datasets": []}
    for _ in range(1 if quick else 3):
        for which in ("prepare", "datasets"):
            settle()
            cache = bench_env(HF_DATASETS_CACHE=str(work / f"ds-cache-{time.time_ns()}"))
            out = run_python(["-m", "bench.million_rows", which, str(big)], timeout=1800, env=cache)
            timings[which].append(json.loads(out.strip().splitlines()[-1])["seconds"])

    share = {k: v["big"] - v["small"] for k, v in peaks.items()}
    best = {k: min(v) for k, v in timings.items()}
    result.figures = {
        "rows": rows, "csv_mb": round(file_mb, 1),
        "peak_rss_mb": {k: {kk: round(vv, 1) for kk, vv in v.items()} for k, v in peaks.items()},
        "data_share_mb": {k: round(v, 1) for k, v in share.items()},
        "data_share_per_file_mb": {k: round(v / file_mb, 2) for k, v in share.items()},
        "seconds": {k: {kk: round(vv, 2) for kk, vv in v.items()} for k, v in seconds.items()},
        "load_seconds": {k: [round(x, 2) for x in v] for k, v in timings.items()},
    }
    for k in ("validate", "run"):
        result.row(f"{k}: peak RSS, {rows:,} rows / {SMALL_ROWS:,} rows",
                   f"{peaks[k]['big']:.0f} / {peaks[k]['small']:.0f} MB ({seconds[k]['big']:.1f} / "
                   f"{seconds[k]['small']:.1f} s)")
        result.targets.append(Target(f"{k}: the data's share of peak RSS per MB of csv", round(share[k] / file_mb, 2),
                                     "<=", 2.0, "x"))
    result.row("prepare_data (read, check, encode, stratified split), best of runs", f"{best['prepare']:.2f} s")
    result.row("datasets: load_dataset('csv') + class_encode_column, empty cache", f"{best['datasets']:.2f} s")
    result.targets.append(Target("prepare_data time / datasets' CSV load", round(best["prepare"] / best["datasets"], 2),
                                 "<=", 1.0, "x"))
    result.method = f"{rows:,} rows ({file_mb:.0f} MB). " + __doc__.split("\n\n", 1)[1].replace("\n", " ").strip()
    result.notes.append("The run's first step includes tokenizing every row (cached on disk for later runs).")
    return result


if __name__ == "__main__":
    which, path = sys.argv[1], sys.argv[2]
    print(json.dumps(_prepare(path) if which == "prepare" else _datasets_path(path)))
