"""5. Long runs: the monitor with 100,000 logged steps.

The bench writes a run directory whose events.jsonl holds a finished run of 100,000 logged steps (with an
evaluation every 5,000 steps, a device snapshot every 500 and a checkpoint every 10,000), then, in a fresh
interpreter, measures with the real monitor screen running headless (App.run_test) at 120x40 and 240x70. The
loss is a typical curve (fast drop, slow noisy decline); a run of 1,000 steps tells the cost of a long history
from the cost of drawing at all, and a flat, noisy loss is the chart's worst case. Figures:
  - history load: RunWatcher.poll() reading and sorting the whole file, off the UI thread, as the monitor does;
  - attach: from starting the app to the chart holding all 100,000 points and having drawn them;
  - redraw: LossChart._redraw() (downsampling to ~2 points per column and rasterizing the chart, chart_canvas)
    plus ChartView.render_line() for every row (the strips Textual paints), i.e. one chart frame, repeated;
  - a live update: one more step event through MonitorScreen.on_run_update, the chart redraw it causes, and
    a key press (F1 opens help) until the help screen is up;
  - memory: the process's resident set after attaching.
All points stay on disk (events.jsonl) and in the chart's arrays; only the drawing is downsampled.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import Result, Target, log, median, run_python, settle

STEPS = 100_000


def training_loss(rng: random.Random, fraction: float, shape: str) -> float:
    """A logged loss at `fraction` of the run. "typical": a fast early drop, then a slow decline with noise in
    proportion to the level (a windowed mean of batch losses). "flat": a plateau whose noise fills the chart's
    whole height, the worst case for a line chart (every segment crosses it top to bottom)."""
    if shape == "flat":
        return 0.4 + 0.2 * rng.random()
    level = 0.04 + 1.0 * math.exp(-fraction / 0.03) + 0.2 * math.exp(-fraction / 0.3)
    return level * rng.lognormvariate(0.0, 0.3)


def write_long_run(run_dir: Path, steps: int = STEPS, shape: str = "typical") -> Path:
    """A finished run of `steps` logged steps, in the event format the engines write."""
    run_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    t0 = 1_700_000_000.0
    lines = [json.dumps({
        "type": "run_started", "time": t0, "run_id": run_dir.name, "engine": "trainer",
        "model": "bundled:all-MiniLM-L6-v2", "dataset": "long.csv", "labels": ["negative", "neutral", "positive"],
        "sizes": {"train": steps * 16, "validation": 5000}, "total_steps": steps, "num_train_epochs": 10,
        "primary_metric": "accuracy", "metrics": ["accuracy"], "device": {"type": "cpu", "name": "CPU"},
        "versions": {}, "pid": 1, "output_dir": str(run_dir),
    })]
    for step in range(1, steps + 1):
        t = t0 + 0.1 * step
        loss = training_loss(rng, step / steps, shape)
        lines.append(json.dumps({
            "type": "step", "time": t, "step": step, "total_steps": steps, "epoch": round(10 * step / steps, 4),
            "loss": round(loss, 4), "learning_rate": 5e-5 * (1 - step / steps), "grad_norm": round(rng.random(), 4),
            "samples_per_second": 160.0, "tokens_per_second": 9000.0, "elapsed_s": round(0.1 * step, 2),
        }))
        if step % max(1, steps // 200) == 0:
            lines.append(json.dumps({"type": "device", "time": t, "snapshot": {
                "gpus": [], "cpu_pct": 95.0, "cpu_count": 2, "ram_used_mb": 3000, "ram_total_mb": 24000,
                "proc_rss_mb": 900}}))
        if step % max(1, steps // 20) == 0:
            lines.append(json.dumps({"type": "eval", "time": t, "step": step, "epoch": round(10 * step / steps, 4),
                                     "split": "validation",
                                     "metrics": {"loss": round(0.5 * 0.99998 ** step + 0.1, 4),
                                                 "accuracy": round(0.6 + 0.35 * step / steps, 4)}}))
        if step % max(1, steps // 10) == 0:
            lines.append(json.dumps({"type": "checkpoint", "time": t, "step": step,
                                     "path": str(run_dir / "checkpoints" / f"checkpoint-{step}")}))
    lines.append(json.dumps({"type": "finished", "time": t0 + 0.1 * steps + 5, "metrics": {"accuracy": 0.95},
                             "model_dir": str(run_dir / "model"), "runtime_s": 0.1 * steps + 5, "checkpoint": None}))
    (run_dir / "events.jsonl").write_text("\n".join(lines) + "\n")
    (run_dir / "stdout.log").write_text("".join(f"step {s}\n" for s in range(1, 200)))
    (run_dir / "stderr.log").write_text("")
    (run_dir / "run.pid").write_text("1\n")
    return run_dir


def _measure(run_dir: Path, steps: int, size: tuple[int, int], repeats: int) -> dict[str, Any]:
    """In a fresh interpreter (see main): every figure of this benchmark for one terminal size."""
    import psutil
    from textual.pilot import Pilot

    from core.rundir import RunDir
    from tui.app import make_app
    from tui.run_watch import RunBatch, RunUpdate, RunWatcher
    from tui.screens.help import HelpScreen
    from tui.screens.monitor import MonitorScreen
    from tui.widgets.loss_chart import ChartView, LossChart

    out: dict[str, Any] = {"size": f"{size[0]}x{size[1]}", "steps": steps}
    loads = []
    for _ in range(repeats):
        t = time.perf_counter()
        update = RunWatcher(RunDir(run_dir), lambda m: None).poll()
        loads.append(time.perf_counter() - t)
        assert update is not None and update.batch is not None and len(update.batch.train_steps) == steps
    out["history_load_s"] = loads

    async def wait(pilot: Pilot[None], condition: Any, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError("the monitor did not get there in time")
            await pilot.pause(0.005)

    async def session() -> None:
        start = time.perf_counter()
        app = make_app(monitor=run_dir)
        async with app.run_test(size=size) as pilot:
            await wait(pilot, lambda: isinstance(app.screen, MonitorScreen))
            screen = app.screen
            assert isinstance(screen, MonitorScreen)
            chart = screen.query_one(LossChart)
            plot = chart.query_one(ChartView)

            def drawn() -> bool:  # every point in, and drawn at the plot's laid-out size
                size = (plot.size.width, plot.size.height)
                return chart.train_points == steps and not chart._dirty and size[0] > 0 and plot.drawn_size == size

            await wait(pilot, drawn)
            out["attach_s"] = time.perf_counter() - start
            out["rss_mb"] = psutil.Process().memory_info().rss / 2**20

            def paint() -> None:
                for y in range(plot.size.height):
                    plot.render_line(y)

            out["plot_width"] = plot.size.width
            out["train_points_in_memory"] = chart.train_points
            out["status"] = screen.status
            redraw, render, frame = [], [], []
            for _ in range(repeats * 10):
                t0 = time.perf_counter()
                chart._redraw()
                t1 = time.perf_counter()
                paint()
                t2 = time.perf_counter()
                redraw.append(t1 - t0)
                render.append(t2 - t1)
                frame.append(t2 - t0)
            out["drawn_points"] = chart.drawn_points
            out["redraw_s"], out["render_s"], out["frame_s"] = redraw, render, frame

            updates = []
            for i in range(repeats * 5):
                step = steps + i + 1
                batch = RunBatch(count=1, train_steps=[float(step)], train_losses=[0.1],
                                 last_step={"type": "step", "step": step, "total_steps": steps + 1000, "loss": 0.1,
                                            "elapsed_s": 0.1 * step, "epoch": 10.0, "samples_per_second": 160.0})
                t0 = time.perf_counter()
                screen.on_run_update(RunUpdate(screen.run_dir, batch, "running", None))
                chart._redraw()
                paint()
                updates.append(time.perf_counter() - t0)
            out["live_update_s"] = updates

            keys = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                await pilot.press("f1")
                await wait(pilot, lambda: isinstance(app.screen, HelpScreen))
                keys.append(time.perf_counter() - t0)
                await pilot.press("escape")
                await wait(pilot, lambda: isinstance(app.screen, MonitorScreen))
            out["key_to_help_s"] = keys
            await app.action_quit()

    asyncio.run(session())
    return out


SHORT = 1_000  # a short run: what a frame costs whatever the length of the history


def run(work: Path, quick: bool) -> Result:
    repeats = 3 if quick else 5
    result = Result("long_runs", "Long runs: the monitor with 100,000 logged steps")
    log("long_runs: writing 100,000 step events")
    t = time.perf_counter()
    typical = write_long_run(work / "typical", STEPS, "typical")
    write_s = time.perf_counter() - t
    events_mb = (typical / "events.jsonl").stat().st_size / 2**20
    sizes = ["120x40"] if quick else ["120x40", "240x70"]
    cases = [("typical", typical, STEPS, size) for size in sizes]
    cases.append(("short", write_long_run(work / "short", SHORT, "typical"), SHORT, "120x40"))
    flat = write_long_run(work / "flat", STEPS, "flat")
    cases += [("flat", flat, STEPS, size) for size in sizes]
    measured: dict[tuple[str, str], dict[str, Any]] = {}
    for name, directory, steps, size in cases:
        settle()
        log(f"long_runs: monitor of {steps:,} steps ({name} loss) at {size}")
        cols, rows = size.split("x")
        out = run_python(["-m", "bench.long_runs", str(directory), str(steps), cols, rows, str(repeats)],
                         timeout=600)
        measured[(name, size)] = json.loads(out.strip().splitlines()[-1])

    figures: dict[str, Any] = {"steps": STEPS, "events_jsonl_mb": round(events_mb, 1),
                               "write_events_s": round(write_s, 2)}
    for (name, size), m in measured.items():
        figures[f"{name}_{size}"] = {
            "steps": m["steps"],
            "history_load_s_median": round(median(m["history_load_s"]), 3),
            "attach_s": round(m["attach_s"], 3),
            "redraw_ms_median": round(1000 * median(m["redraw_s"]), 2),
            "render_ms_median": round(1000 * median(m["render_s"]), 2),
            "frame_ms_median": round(1000 * median(m["frame_s"]), 2),
            "frame_ms_max": round(1000 * max(m["frame_s"]), 2),
            "live_update_ms_median": round(1000 * median(m["live_update_s"]), 2),
            "key_to_help_ms_median": round(1000 * median(m["key_to_help_s"]), 1),
            "plot_width": m["plot_width"], "drawn_points": m["drawn_points"],
            "train_points_in_memory": m["train_points_in_memory"], "rss_mb": round(m["rss_mb"], 1),
            "status_shown": m["status"],
        }
    result.figures = figures
    short = figures["short_120x40"]
    for size in sizes:
        f = figures[f"typical_{size}"]
        result.row(f"{size}: chart frame, median / max (downsample and draw + paint)",
                   f"{f['frame_ms_median']:.1f} / {f['frame_ms_max']:.1f} ms "
                   f"({f['redraw_ms_median']:.1f} + {f['render_ms_median']:.1f})")
        result.row(f"{size}: points drawn / kept", f"{f['drawn_points']} / {f['train_points_in_memory']:,}")
        result.row(f"{size}: live update (1 step event + redraw)", f"{f['live_update_ms_median']:.1f} ms")
        flat_f = figures[f"flat_{size}"]
        result.row(f"{size}: chart frame, flat noisy loss (worst case)", f"{flat_f['frame_ms_median']:.1f} ms "
                   f"({flat_f['redraw_ms_median']:.1f} + {flat_f['render_ms_median']:.1f})")
    result.row(f"120x40: chart frame with {SHORT:,} steps", f"{short['frame_ms_median']:.1f} ms")
    f = figures["typical_120x40"]
    result.row("key press to help screen (100k / 1k steps)",
               f"{f['key_to_help_ms_median']:.0f} / {short['key_to_help_ms_median']:.0f} ms")
    result.row("history load (read + sort 100k events, off the UI thread)",
               f"{f['history_load_s_median']:.2f} s ({events_mb:.0f} MB events.jsonl)")
    result.row("attach (app start to chart drawn), 100k / 1k steps", f"{f['attach_s']:.2f} / {short['attach_s']:.2f} s")
    result.row("monitor memory after attach, 100k / 1k steps", f"{f['rss_mb']:.0f} / {short['rss_mb']:.0f} MB")
    for name, label in (("typical", "typical loss"), ("flat", "flat noisy loss")):
        for size in sizes:
            result.targets.append(Target(f"chart frame, 100k steps, {label}, {size} (median)",
                                         figures[f"{name}_{size}"]["frame_ms_median"], "<=", 50.0, " ms"))
    result.method = __doc__.split("\n\n", 1)[1].replace("\n", " ").strip()
    return result


if __name__ == "__main__":
    directory, steps, cols, rows, reps = Path(sys.argv[1]), *map(int, sys.argv[2:6])
    print(json.dumps(_measure(directory, steps, (cols, rows), reps)))
