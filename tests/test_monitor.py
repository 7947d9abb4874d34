"""The live monitor, driven by recorded runs (tests/fixtures/recorded, made by tests/fixtures/make_runs.py).

Each test mounts MonitorScreen in a small harness app that loads the real screens.css, waits for the
watcher thread to deliver the run, and checks what the widgets hold.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from textual.app import App
from textual.pilot import Pilot

from core.events import EventWriter
from core.rundir import RunDir
from tests.screen_harness import Harness, wait_until
from tui.run_watch import RunWatcher
from tui.screens.confirm import ConfirmScreen
from tui.screens.monitor import MonitorScreen
from tui.widgets.chart_canvas import Series, count_label, nice_ticks, render_chart
from tui.widgets.device_panel import DevicePanel
from tui.widgets.log_tail import LogTail
from tui.widgets.loss_chart import ChartView, LossChart, downsample_minmax
from tui.widgets.progress_panel import ProgressPanel
from tui.widgets.results_panel import ResultsPanel

FIXTURES = Path(__file__).parent / "fixtures" / "recorded"


def monitor_of(app: App[None]) -> MonitorScreen:
    assert isinstance(app.screen, MonitorScreen)
    return app.screen


async def settled(pilot: Pilot[None], status: str) -> MonitorScreen:
    """Wait until the run's history is in and the chart has drawn it."""
    # The first screen exists before it is composed (auto_pilot may start that early): wait for its chart.
    app = pilot.app
    await wait_until(pilot, lambda: isinstance(app.screen, MonitorScreen) and bool(app.screen.query(LossChart)))
    screen = monitor_of(app)
    chart = screen.query_one(LossChart)
    await wait_until(pilot, lambda: screen.status == status and screen.events_seen > 0)
    await wait_until(pilot, lambda: not chart._dirty and chart.redraws > 0)
    await pilot.pause()
    return screen


def copy_run(name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURES / name, tmp_path / name))


# --- downsampling ------------------------------------------------------------------------------------
def test_downsampling_100k_points_keeps_extremes_and_order() -> None:
    rng = np.random.default_rng(0)
    xs = np.arange(1, 100_001, dtype=float)
    ys = 2.0 * np.exp(-xs / 20_000) + rng.normal(0, 0.05, xs.size)
    ys[12_345] = 9.5  # a spike that must survive
    ys[87_654] = -3.0  # and a dip
    width = 80
    dx, dy = downsample_minmax(xs, ys, 2 * width)
    assert len(dx) <= 2 * width
    assert dy.max() == 9.5 and dy.min() == -3.0
    assert 12_346.0 in dx and 87_655.0 in dx
    assert np.all(np.diff(dx) > 0), "points must stay in step order"


def test_downsampling_drops_non_finite_and_passes_small_series_through() -> None:
    dx, dy = downsample_minmax([1, 2, 3, 4], [0.5, float("nan"), float("inf"), 0.25], 100)
    assert dx.tolist() == [1.0, 4.0]
    assert dy.tolist() == [0.5, 0.25]
    empty_x, _ = downsample_minmax([], [], 10)
    assert len(empty_x) == 0


def _text(rows: list[list[tuple[str, str | None]]]) -> list[str]:
    return ["".join(text for text, _ in runs) for runs in rows]


def test_chart_canvas_draws_a_rising_line_corner_to_corner_with_both_axes() -> None:
    xs = np.arange(0, 1001, dtype=float)
    rows = render_chart(60, 14, [Series(xs, xs / 1000, "cyan"),
                                 Series(np.array([500.0]), np.array([0.5]), "orange", kind="points"),
                                 Series(np.array([0.0, 1000.0]), np.array([0.2, 0.8]), "green", axis="right")],
                       x_label="step", right_range=(0.0, 1.0))
    text = _text(rows)
    assert len(rows) == 14 and all(len(line) == 60 for line in text)
    top_right = text[0][text[0].index("├") - 1]
    bottom_left = text[11][text[11].index("┤") + 1]
    assert top_right != " " and bottom_left != " "  # the line runs from corner to corner
    assert "•" in "".join(text[:12])  # the evaluation point
    assert text[0].lstrip().startswith("1┤") and text[11].lstrip().startswith("0┤")  # left ticks at the extremes
    assert text[0].rstrip().endswith("├1") and text[11].rstrip().endswith("├0")  # the right axis keeps 0..1
    assert text[12].lstrip().startswith("└") and "┬" in text[12]
    assert "200" in text[13] and "1k" in text[13]
    colors = {color for runs in rows for _, color in runs}
    assert {"cyan", "orange", "green"} <= colors


def test_chart_canvas_fills_a_noisy_band_and_keeps_every_row_the_full_width() -> None:
    xs = np.arange(1, 100_001, dtype=float)
    ys = 0.5 + 0.1 * np.random.default_rng(0).standard_normal(len(xs))
    dx, dy = downsample_minmax(xs, ys, 2 * 200)
    rows = render_chart(200, 50, [Series(dx, dy, "cyan")])
    text = _text(rows)
    assert all(len(line) == 200 for line in text)
    middle = text[24]
    braille = sum(1 for ch in middle if 0x2800 < ord(ch) <= 0x28FF)
    assert braille > 150  # the band's middle row is covered almost edge to edge


def test_chart_canvas_ticks_and_labels() -> None:
    assert nice_ticks(0.0, 1.0, 6) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(1.0, 100_000.0, 5) == [20_000.0, 40_000.0, 60_000.0, 80_000.0, 100_000.0]
    assert count_label(20_000) == "20k" and count_label(1_500_000) == "1.5M" and count_label(250) == "250"
    assert _text(render_chart(30, 3, [Series(np.array([1.0]), np.array([1.0]), "cyan")])) == [" " * 30] * 3


# --- the watcher ---------------------------------------------------------------------------------------
def test_watcher_sends_one_update_per_batch_and_none_when_idle(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    writer = EventWriter(run.events_path)
    for step in range(1, 51):
        writer.emit("step", step=step, loss="nan" if step == 7 else 1.0 / step)
    watcher = RunWatcher(run, lambda message: None)
    first = watcher.poll()
    assert first is not None and first.batch is not None
    assert first.batch.initial and first.batch.count == 50
    assert len(first.batch.train_steps) == 50 and np.isnan(first.batch.train_losses[6])
    assert first.status == "died"  # no terminal event and nobody holds the lock
    assert watcher.poll() is None
    writer.emit("step", step=51, loss=0.01)
    writer.emit("eval", step=51, split="validation", metrics={"accuracy": 0.5})
    writer.emit("stopped", step=51, checkpoint=None)
    writer.close()
    second = watcher.poll()
    assert second is not None and second.batch is not None
    assert not second.batch.initial and second.batch.count == 3
    assert second.batch.train_steps == [51.0] and len(second.batch.evals) == 1
    assert second.status == "stopped" and second.batch.terminal is not None


# --- replaying recorded runs -------------------------------------------------------------------------
async def test_finished_run_fills_chart_progress_device_and_results() -> None:
    app = Harness(lambda: MonitorScreen(FIXTURES / "sst2-finished"))
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await settled(pilot, "finished")
        chart = screen.query_one(LossChart)
        assert chart.train_points == 60
        assert chart.eval_points == 3 and chart.metric_points == 3
        assert chart.metric == "accuracy"
        assert chart.message is None
        progress = screen.query_one(ProgressPanel)
        assert progress.steps_text == "step 60/60"
        assert "epoch 3.00/3" in progress.stats_text and "41.7 samples/s" in progress.stats_text
        device = screen.query_one(DevicePanel)
        assert "NVIDIA A100-SXM4-40GB" in device.text
        assert "CPU 36%" in device.text
        results = screen.query_one(ResultsPanel).text
        assert "Finished in 2m43s" in results
        assert "0.9000" in results and "0.8917" in results  # validation and test accuracy
        assert "/home/ada/runs/sst2-finished/model" in results.replace("\n ", "")  # wrapped at a slash
        assert screen.query_one(LogTail).lines[0] == "tokenizing"
        # An ended run cannot be stopped or killed: both stay in the footer, greyed out.
        assert screen.check_action("stop", ()) is None
        assert screen.check_action("kill", ()) is None


async def test_finished_run_with_evaluation_shows_confusion_matrix_and_offers_try(tmp_path: Path) -> None:
    from core.evaluation import evaluation_dir, score
    from tui.widgets.confusion_matrix import ConfusionMatrix

    run = tmp_path / "sst2-finished"
    shutil.copytree(FIXTURES / "sst2-finished", run)
    references = np.array([0, 0, 1, 1, 1])
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.1, 0.9], [0.3, 0.7], [0.6, 0.4]])
    evaluation = score(["negative", "positive"], ["accuracy"], references, probabilities)
    evaluation.split = "test"
    folder = evaluation_dir(run, "test")
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(evaluation.to_dict()))
    lines = (run / "events.jsonl").read_text().splitlines()
    finished = json.loads(lines[-1])
    assert finished["type"] == "finished"
    finished["evaluation"] = {"test": str(folder)}
    (run / "events.jsonl").write_text("\n".join([*lines[:-1], json.dumps(finished)]) + "\n")

    app = Harness(lambda: MonitorScreen(run))
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await settled(pilot, "finished")
        matrix = screen.query_one(ConfusionMatrix)
        await wait_until(pilot, lambda: matrix.display)
        assert matrix.labels == ["negative", "positive"] and matrix.matrix == [[1, 1], [1, 2]]
        assert "test (5)" in str(matrix.border_title) and "F1 negative 0.50" in str(matrix.border_subtitle)
        assert not screen.query_one(DevicePanel).display  # an ended run's last device reading gives way
        assert screen.check_action("try_model", ()) is True


async def test_events_appended_while_open_appear(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "live")
    run.path.mkdir()
    lock_fd = run.acquire_lock()  # this test process plays the live run
    writer = EventWriter(run.events_path)
    try:
        writer.emit("run_started", run_id="live", engine="trainer", model="m", dataset="d", total_steps=200,
                    num_train_epochs=2, primary_metric="accuracy", parameters=1_000_000_000, peak_tflops=100.0)
        app = Harness(lambda: MonitorScreen(run.path))
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await settled(pilot, "running")
            chart = screen.query_one(LossChart)
            assert chart.train_points == 0
            assert chart.message is not None and "Waiting" in chart.message
            for step in range(1, 11):
                writer.emit("step", step=step, total_steps=200, epoch=step / 100, loss=1.0 / step, elapsed_s=step * 2.0,
                            samples_per_second=16.0, tokens_per_second=2048.0)
            writer.emit("device", snapshot={"gpus": [], "cpu_pct": 50.0, "ram_used_mb": 2048, "ram_total_mb": 8192,
                                            "proc_rss_mb": 900})
            await wait_until(pilot, lambda: chart.train_points == 10 and not chart._dirty)
            progress = screen.query_one(ProgressPanel)
            assert progress.steps_text == "step 10/200"
            assert "ETA 6m20s" in progress.stats_text  # 2 s a step, 190 steps to go
            assert "2.0k tokens/s" in progress.stats_text
            assert "MFU 12%" in progress.stats_text  # 6 × 1e9 parameters × 2048 tokens/s ÷ 100 TFLOP/s
            assert "CPU 50%" in screen.query_one(DevicePanel).text
            assert chart.message is None
            assert screen.check_action("kill", ()) is True
            assert screen.check_action("try_model", ()) is None  # nothing to try until the run has finished

            # The final evaluation comes at a step after the last logged one (logging_steps does not divide it).
            writer.emit("eval", step=12, epoch=0.12, split="validation", metrics={"loss": 0.4, "accuracy": 0.8})
            writer.emit("finished", metrics={"accuracy": 0.8, "loss": 0.4}, model_dir=str(run.model_dir),
                        runtime_s=20.0)
            await wait_until(pilot, lambda: screen.status == "finished")
            assert chart.metric_points == 1
            assert progress.steps_text == "step 12/200"
            assert run.summary().step == 12
            results = screen.query_one(ResultsPanel)
            assert results.model_dir == str(run.model_dir)
            assert str(run.model_dir) in results.text.replace("\n ", "")
    finally:
        writer.close()
        os.close(lock_fd)


async def test_failed_run_shows_error_hint_and_log() -> None:
    app = Harness(lambda: MonitorScreen(FIXTURES / "imdb-failed"))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await settled(pilot, "failed")
        results = screen.query_one(ResultsPanel)
        assert "Failed: OutOfMemoryError" in results.text
        assert "CUDA out of memory" in results.text
        assert "Fix: lower training.per_device_train_batch_size" in results.text
        assert results.region.height > 0, "the error must be on screen at 80x24"
        assert any(line.startswith("Traceback") for line in screen.query_one(LogTail).lines)
        assert screen.has_class("-failed")


async def test_run_without_terminal_event_or_lock_has_died() -> None:
    app = Harness(lambda: MonitorScreen(FIXTURES / "agnews-died"))
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await settled(pilot, "died")
        assert "Died" in screen.query_one(ResultsPanel).text
        assert "died" in str(screen.query_one("#monitor-title").content)
        assert screen.query_one(LossChart).train_points == 25
        # Nothing to kill: Kill is greyed out, and pressing k opens no confirmation.
        assert screen.check_action("kill", ()) is None
        await pilot.press("k")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)


async def test_corrupt_line_is_skipped_with_a_visible_warning() -> None:
    app = Harness(lambda: MonitorScreen(FIXTURES / "mrpc-corrupt"))
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await settled(pilot, "finished")
        chart = screen.query_one(LossChart)
        assert chart.train_points == 60  # every valid step, the torn line left out
        warnings = screen.query_one(LogTail).warnings
        assert warnings == ["events.jsonl: line 31 is not a valid event; skipped"]
        assert any("line 31" in message for message in app.notified)
        # The "nan" loss at step 33 is kept in memory but not drawn, and the chart says so.
        assert chart.non_finite == 1
        assert "1 NaN/inf loss not drawn" in str(chart.border_subtitle)


async def test_stop_asks_first_then_writes_the_stop_file(tmp_path: Path) -> None:
    run = RunDir(copy_run("agnews-died", tmp_path))  # no live process: request_stop only writes STOP
    app = Harness(lambda: MonitorScreen(run.path))
    async with app.run_test(size=(100, 30)) as pilot:
        await settled(pilot, "died")
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, MonitorScreen))
        assert not run.stop_path.exists()
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: isinstance(app.screen, MonitorScreen))
        assert run.stop_path.exists()


@pytest.fixture
def live_run(tiny_model: Path, tiny_data: dict, tmp_path: Path) -> Iterator[Callable[[], RunDir]]:
    """Start a real run in the background that trains until it is stopped; killed at the end whatever happened."""
    from core.config import parse_config
    from core.launch import start_detached
    from tests.conftest import tiny_config

    started: list[RunDir] = []

    def start() -> RunDir:
        raw = tiny_config(tiny_model, tiny_data, tmp_path / f"run{len(started)}", max_steps=100_000, logging_steps=1,
                          eval_strategy="no", save_strategy="steps", save_steps=1_000)
        started.append(start_detached(parse_config(raw)))
        return started[-1]

    yield start
    for run in started:
        run.kill()


async def _monitor(pilot: Pilot[None]) -> MonitorScreen:
    app = pilot.app
    await wait_until(pilot, lambda: isinstance(app.screen, MonitorScreen) and bool(app.screen.query(LossChart)))
    return monitor_of(app)


async def _confirm(pilot: Pilot[None], key: str, answer: str) -> None:
    await pilot.press(key)
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen))
    await pilot.press(answer)
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, MonitorScreen))


@pytest.mark.slow
async def test_stop_on_a_live_run_checkpoints_and_the_monitor_shows_it(live_run: Callable[[], RunDir]) -> None:
    run = live_run()
    app = Harness(lambda: MonitorScreen(run.path))
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await _monitor(pilot)
        chart = screen.query_one(LossChart)
        await wait_until(pilot, lambda: screen.status == "running" and chart.train_points > 0, timeout=180)
        await _confirm(pilot, "s", "n")  # asked first: No leaves it training
        assert not run.stop_path.exists() and run.is_live()
        await _confirm(pilot, "s", "y")
        await wait_until(pilot, lambda: screen.status == "stopped", timeout=120)
        assert "Stop requested: the run will checkpoint and exit." in app.notified
        stopped = run.events()[-1]
        assert stopped["type"] == "stopped" and Path(stopped["checkpoint"]).is_dir()
        results = screen.query_one(ResultsPanel).text
        assert f"Stopped at step {stopped['step']}" in results and "Checkpoint to resume from" in results
        assert screen.check_action("stop", ()) is None and screen.check_action("kill", ()) is None
        assert not run.is_live()


@pytest.mark.slow
async def test_kill_on_a_live_run_ends_its_process_and_shows_died(live_run: Callable[[], RunDir]) -> None:
    run = live_run()  # the worker holds its lock and is still loading: live, not yet training
    worker = run.pid()
    app = Harness(lambda: MonitorScreen(run.path))
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await _monitor(pilot)
        assert screen.check_action("kill", ()) is True
        await _confirm(pilot, "k", "n")
        assert run.is_live()
        await _confirm(pilot, "k", "y")
        await wait_until(pilot, lambda: screen.status == "died", timeout=60)
        assert "Kill sent: the run's processes were ended." in app.notified
        assert "Died" in screen.query_one(ResultsPanel).text
        assert not run.is_live() and worker is not None
        assert not [e for e in run.events() if e["type"] in ("stopped", "finished", "failed")]
        assert screen.check_action("kill", ()) is None


async def test_t_on_a_finished_run_opens_try_the_model_and_escape_comes_back() -> None:
    from tui.screens.try_model import TryModelScreen

    app = Harness(lambda: MonitorScreen(FIXTURES / "sst2-finished"))
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await settled(pilot, "finished")
        await pilot.press("t")
        await wait_until(pilot, lambda: isinstance(app.screen, TryModelScreen))
        assert app.screen.run_dir == FIXTURES / "sst2-finished"
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is screen)


async def test_leaving_the_monitor_stops_its_watcher_and_leaves_the_run_alone(tmp_path: Path) -> None:
    run = RunDir(copy_run("agnews-died", tmp_path))
    before = sorted(p.name for p in run.path.iterdir())
    app = Harness(lambda: MonitorScreen(run.path))
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await settled(pilot, "died")
        await pilot.press("escape")  # the monitor is the first screen here, so Back quits
        await pilot.pause()
        assert app.return_code == 0
    assert screen._watcher._stopped.is_set()
    assert sorted(p.name for p in run.path.iterdir()) == before


async def test_attaching_to_100k_steps_is_fast_and_draws_downsampled(tmp_path: Path) -> None:
    run_dir = tmp_path / "big"
    run_dir.mkdir()
    total = 100_000
    lines = [json.dumps({"type": "run_started", "time": 0.0, "total_steps": total, "primary_metric": "accuracy"})]
    step = (
        '{{"type": "step", "time": {s}.0, "step": {s}, "total_steps": 100000, "loss": {loss}, "epoch": {epoch}, '
        '"elapsed_s": {elapsed}, "samples_per_second": 80.0}}'
    )
    lines += [step.format(s=s, loss=1.0 / s, epoch=s / 50_000, elapsed=s * 0.1) for s in range(1, total + 1)]
    (run_dir / "events.jsonl").write_text("\n".join(lines) + "\n")
    app = Harness(lambda: MonitorScreen(run_dir))
    async with app.run_test(size=(100, 30)) as pilot:
        # How fast attaching and redrawing are is measured by bench/long_runs.py, not asserted here.
        screen = await settled(pilot, "died")
        chart = screen.query_one(LossChart)
        await wait_until(pilot, lambda: chart.train_points == total, timeout=120)
        plot_width = chart.query_one(ChartView).size.width
        chart._redraw()
        assert 0 < chart.drawn_points <= 2 * plot_width  # every point kept, the drawing downsampled
        assert screen.query_one(ProgressPanel).steps_text == f"step {total}/{total}"


# --- the chart alone ---------------------------------------------------------------------------------
class ChartOnly(App[None]):
    def compose(self):  # type: ignore[no-untyped-def]
        yield LossChart()


async def test_chart_shows_a_message_instead_of_crashing_on_bad_data() -> None:
    app = ChartOnly()
    async with app.run_test(size=(60, 16)) as pilot:
        chart = app.query_one(LossChart)
        await pilot.pause()
        assert chart.message is not None and "Waiting" in chart.message
        chart.add_train([1, 2, 3], [float("nan"), float("nan"), float("inf")])
        await wait_until(pilot, lambda: not chart._dirty)
        assert chart.message is not None and "NaN" in chart.message
        chart.add_train([4, 5], [0.5, 0.4])
        await wait_until(pilot, lambda: not chart._dirty)
        assert chart.message is None and chart.drawn_points == 2


async def test_chart_throttles_redraws() -> None:
    app = ChartOnly()
    async with app.run_test(size=(60, 16)) as pilot:
        chart = app.query_one(LossChart)
        await pilot.pause()
        before = chart.redraws
        for step in range(1, 201):
            chart.add_train([step], [1.0 / step])
        # Until the throttled redraw (every 0.5 s) has drawn them all: waiting on that, not on a fixed pause, holds
        # on a slow machine too.
        await wait_until(pilot, lambda: chart.redraws > before and not chart._dirty)
        assert chart.train_points == 200 and chart.drawn_points > 0
        assert 1 <= chart.redraws - before <= 4  # 200 additions, a handful of redraws


# --- snapshots ---------------------------------------------------------------------------------------
def _snapshot_ready(status: str) -> Callable[[Pilot[None]], object]:
    async def run_before(pilot: Pilot[None]) -> None:
        await settled(pilot, status)

    return run_before


@pytest.mark.parametrize("size", [(100, 30), (80, 24)], ids=["100x30", "80x24"])
def test_snapshot_finished_run(snap_compare: Callable[..., bool], size: tuple[int, int]) -> None:
    app = Harness(lambda: MonitorScreen(FIXTURES / "sst2-finished"))
    assert snap_compare(app, terminal_size=size, run_before=_snapshot_ready("finished"))


def test_snapshot_failed_run_80x24(snap_compare: Callable[..., bool]) -> None:
    app = Harness(lambda: MonitorScreen(FIXTURES / "imdb-failed"))
    assert snap_compare(app, terminal_size=(80, 24), run_before=_snapshot_ready("failed"))


async def test_results_panel_best_follows_the_metrics_direction() -> None:
    """While a run evaluates, 'best' is the highest accuracy but the lowest loss."""
    from textual.app import App

    class One(App[None]):
        def compose(self):  # type: ignore[no-untyped-def]
            yield ResultsPanel()

    app = One()
    async with app.run_test(size=(80, 24)) as pilot:
        panel = app.query_one(ResultsPanel)
        panel.set_status("running")
        panel.add_evals([{"type": "eval", "step": s, "metrics": {"loss": loss, "accuracy": acc}}
                         for s, loss, acc in ((10, 0.52, 0.70), (20, 0.31, 0.80), (30, 0.45, 0.85))])
        await pilot.pause()
        assert "best 0.8500 at step 30" in panel.text
        panel.set_metric("loss")
        await pilot.pause()
        assert "best 0.3100 at step 20" in panel.text
