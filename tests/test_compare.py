"""Runs side by side: core.compare's config diff, final metrics and curves, `finetune-tui runs --compare`, and the
comparison screen opened from the runs list (space marks, c compares).

The run directories are written directly (config.yaml through core.config, events.jsonl line by line, fixed times),
which takes milliseconds: reading them is what is under test, not training.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from core.compare import (
    EVAL_LOSS,
    TRAIN_LOSS,
    config_differences,
    extract_curves,
    final_metrics,
    flatten,
    format_comparison,
    load_comparison,
    read_config,
    run_labels,
)
from core.config import parse_config, save_config
from core.errors import RunDirError, UserError
from core.rundir import RunDir
from tests.screen_harness import Harness, wait_until
from tui.cli import EXIT_USER_ERROR, main
from tui.screens.compare import CompareScreen
from tui.screens.runs import RunsScreen, RunsTable
from tui.widgets.curves_chart import CurvesChart

T0 = 1736935200.0  # 2025-01-15 10:00 UTC, as the recorded fixtures


def make_run(root: Path, name: str, *, lr: float = 5e-5, batch: int = 16, engine: str = "trainer",
             scale: float = 1.0, steps: int = 60, finished: bool = True, config: bool = True) -> Path:
    """A run directory as a run leaves it: its config.yaml and its events (a step each step, an evaluation every 20,
    a test evaluation and `finished` at the end unless it died)."""
    run = root / name
    run.mkdir(parents=True)
    if config:
        save_config(parse_config({
            "engine": engine, "model": {"name_or_path": "bundled:all-MiniLM-L6-v2"},
            "data": {"train_file": "data/train.tsv", "text_column": "text", "label_column": "label"},
            "training": {"learning_rate": lr, "per_device_train_batch_size": batch},
            "metrics": ["accuracy", "f1"], "output_dir": str(run),
        }), run / "config.yaml")
    events: list[dict[str, Any]] = [{"type": "run_started", "time": T0, "engine": engine, "model": "minilm",
                                     "dataset": "sst2", "total_steps": steps, "primary_metric": "accuracy",
                                     "pid": 4242}]
    for step in range(1, steps + 1):
        loss = scale * (0.55 * math.exp(-step / 18) + 0.14 + 0.03 * math.sin(step * 1.7))
        events.append({"type": "step", "time": T0 + step, "step": step, "loss": round(loss, 4),
                       "learning_rate": lr})
        if step % 20 == 0:
            accuracy = round(0.70 + 0.05 * step / 20 * scale, 4)
            events.append({"type": "eval", "time": T0 + step, "step": step, "split": "validation",
                           "metrics": {"loss": round(0.5 - 0.05 * step / 20 / scale, 4), "accuracy": accuracy,
                                       "f1": round(accuracy - 0.02, 4)}})
    if finished:
        last = dict(events[-1]["metrics"])
        test = {k: round(v - 0.01, 4) for k, v in last.items()}
        events.append({"type": "eval", "time": T0 + steps, "step": steps, "split": "test", "metrics": test})
        events.append({"type": "finished", "time": T0 + steps + 2, "metrics": {**last, "test": test}})
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return run


@pytest.fixture
def three_runs(tmp_path: Path) -> list[Path]:
    root = tmp_path / "runs"
    return [make_run(root, "sst2-lr5e-5"),
            make_run(root, "sst2-lr1e-4", lr=1e-4, scale=1.15),
            make_run(root, "sst2-torch", lr=1e-4, batch=32, engine="torch-loop", scale=0.9, finished=False)]


# --- core.compare ----------------------------------------------------------------------------------
def test_flatten_names_nested_keys_with_dots_and_keeps_lists_and_empty_sections() -> None:
    assert flatten({"training": {"learning_rate": 1e-4, "lora": {"r": 8}}, "metrics": ["accuracy"], "hub": {}}) == {
        "training.learning_rate": 1e-4, "training.lora.r": 8, "metrics": ["accuracy"], "hub": {}}


def test_config_differences_lists_only_keys_that_differ() -> None:
    a = flatten({"engine": "trainer", "training": {"learning_rate": 5e-5, "seed": 42, "lora": None},
                 "metrics": ["accuracy"], "output_dir": "runs/a"})
    b = flatten({"engine": "trainer", "training": {"learning_rate": 1e-4, "seed": 42, "lora": {"r": 8}},
                 "metrics": ["accuracy", "f1"], "output_dir": "runs/b"})
    rows = dict(config_differences([a, b, None]))
    assert rows == {
        "training.learning_rate": ["5e-05", "0.0001", "-"],
        "training.lora": ["null", "-", "-"],
        "metrics": ["[accuracy]", "[accuracy, f1]", "-"],
        "training.lora.r": ["-", "8", "-"],
    }  # engine and seed are the same; output_dir always differs and is the column header already
    assert list(rows) == ["training.learning_rate", "training.lora", "metrics", "training.lora.r"]  # configs' order


def test_a_run_without_config_yaml_shows_dashes_and_is_named_in_a_note(tmp_path: Path) -> None:
    runs = [make_run(tmp_path, "a"), make_run(tmp_path, "b", lr=1e-4), make_run(tmp_path, "c", config=False)]
    comparison = load_comparison(runs)
    assert comparison.config_rows() == [("training.learning_rate", ["5e-05", "0.0001", "-"])]
    assert comparison.notes == ["c has no readable config.yaml: config cells show -"]
    alone = format_comparison(load_comparison(runs[1:]))
    assert "config differences: fewer than two runs have a config.yaml" in alone


def test_final_metrics_are_the_finished_events_else_the_last_evaluation_of_each_split(three_runs: list[Path]) -> None:
    comparison = load_comparison(three_runs)
    finished, _, died = comparison.runs
    assert finished.final == {"validation": {"loss": 0.35, "accuracy": 0.85, "f1": 0.83},
                              "test": {"loss": 0.34, "accuracy": 0.84, "f1": 0.82}}
    assert died.status == "died" and set(died.final) == {"validation"}
    assert died.final["validation"]["accuracy"] == 0.835
    assert comparison.notes == ["sst2-torch died before the end: its metrics are from its last evaluation"]
    assert final_metrics([]) == {}


def test_curves_take_the_later_value_of_a_step_a_resume_logged_again() -> None:
    events = [
        {"type": "step", "step": 1, "loss": 0.9}, {"type": "step", "step": 2, "loss": 0.8},
        {"type": "step", "step": 3, "loss": "nan"},
        {"type": "eval", "step": 3, "split": "validation", "metrics": {"loss": 0.7, "accuracy": 0.6}},
        {"type": "run_started"},  # resumed from the checkpoint at step 2
        {"type": "step", "step": 3, "loss": 0.65}, {"type": "step", "step": 4, "loss": 0.6},
        {"type": "eval", "step": 4, "split": "test", "metrics": {"loss": 0.5, "accuracy": 0.7}},
    ]
    curves = extract_curves(events)
    assert curves[TRAIN_LOSS].steps == [1.0, 2.0, 3.0, 4.0] and curves[TRAIN_LOSS].values == [0.9, 0.8, 0.65, 0.6]
    assert curves[EVAL_LOSS].values == [0.7] and curves["accuracy"].steps == [3.0]  # the test split is no curve
    assert math.isnan(extract_curves(events[:3])[TRAIN_LOSS].values[2])


def test_metric_rows_mark_the_best_in_each_metrics_direction(three_runs: list[Path]) -> None:
    rows = {(row.split, row.name): row for row in load_comparison(three_runs).metric_rows()}
    assert rows["validation", "loss"].cells == ["0.3500", "0.3696", "0.3333"]
    assert rows["validation", "loss"].best == {2}  # lowest
    assert rows["validation", "accuracy"].best == {1}  # highest
    assert rows["test", "accuracy"].cells == ["0.8400", "0.8625", "-"]


def test_run_labels_add_parent_folders_only_where_names_clash(tmp_path: Path) -> None:
    assert run_labels([tmp_path / "a" / "run", tmp_path / "b" / "run", tmp_path / "c"]) == ["a/run", "b/run", "c"]


def test_fewer_than_two_runs_or_a_path_that_is_no_run_is_a_user_error(three_runs: list[Path], tmp_path: Path) -> None:
    with pytest.raises(UserError, match="two or more runs, 1 given"):
        load_comparison(three_runs[:1])
    with pytest.raises(RunDirError, match="is not a run directory") as caught:
        load_comparison([three_runs[0], tmp_path])
    assert caught.value.fix and "finetune-tui runs" in caught.value.fix
    with pytest.raises(UserError, match="given twice"):
        load_comparison([three_runs[0], three_runs[0]])


# --- the CLI ---------------------------------------------------------------------------------------
def test_cli_compare_prints_config_differences_and_final_metrics(three_runs: list[Path],
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "--compare", *map(str, three_runs)]) == 0
    out = capsys.readouterr().out
    assert out == format_comparison(load_comparison(three_runs)) + "\n"
    lines = out.splitlines()
    header = next(line for line in lines if line.lstrip().startswith("sst2-lr5e-5  sst2-lr1e-4"))
    assert header.split() == ["sst2-lr5e-5", "sst2-lr1e-4", "sst2-torch"]
    table, sections, section = {}, {}, ""
    for line in lines:
        if line.startswith(("config differences", "final metrics")):
            section = line
        elif line.startswith("  ") and "/" not in line:
            table[line.split()[0]] = sections.setdefault(section, {})[line.split()[0]] = line.split()[1:]
    assert table["engine"] == ["trainer", "trainer", "torch-loop"]
    assert table["training.learning_rate"] == ["5e-05", "0.0001", "0.0001"]
    assert table["training.per_device_train_batch_size"] == ["16", "16", "32"]
    assert "training.seed" not in table and "output_dir" not in table
    assert lines.index("final metrics: validation") < lines.index("final metrics: test")
    validation, test = sections["final metrics: validation"], sections["final metrics: test"]
    assert validation["accuracy"] == ["0.8500", "0.8725*", "0.8350"]  # sst2-torch: its last evaluation
    assert test["accuracy"] == ["0.8400", "0.8625*", "-"]  # it died before the test split
    assert "* the best value of the metric" in out
    assert "note: sst2-torch died before the end" in out


def test_cli_compare_finds_bare_run_names_under_dir(three_runs: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    root = three_runs[0].parent
    assert main(["runs", str(root), "--compare", "sst2-lr5e-5", "sst2-torch"]) == 0
    assert "comparing 2 runs:" in capsys.readouterr().out


def test_cli_compare_errors_say_what_to_do(three_runs: list[Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "--compare", str(three_runs[0])]) == EXIT_USER_ERROR
    assert "comparing needs two or more runs, 1 given\n  fix: give two or more" in capsys.readouterr().err
    assert main(["runs", "--compare", str(three_runs[0]), "--ui", str(three_runs[1])]) == EXIT_USER_ERROR
    assert "give --compare or --ui, not both" in capsys.readouterr().err


def test_cli_compare_of_a_folder_that_is_no_run_exits_2_without_a_traceback(three_runs: list[Path],
                                                                           tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    done = subprocess.run([sys.executable, "-m", "tui.cli", "runs", "--compare", str(three_runs[0]),
                           str(tmp_path / "notes")], capture_output=True, text=True, timeout=120)
    assert done.returncode == EXIT_USER_ERROR
    assert done.stderr.startswith(f"error: {tmp_path / 'notes'} is not a run directory")
    assert "fix: give folders that `finetune-tui run` made" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


# --- the screens -----------------------------------------------------------------------------------
async def _compared(pilot: Pilot[None]) -> CompareScreen:
    app = pilot.app
    await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.loads >= 1)
    screen = app.screen
    assert isinstance(screen, CompareScreen)
    chart = screen.query_one(CurvesChart)
    await wait_until(pilot, lambda: bool(chart.drawn))
    await pilot.pause()
    return screen


def _table(screen: CompareScreen) -> dict[str, list[str]]:
    table: DataTable[Any] = screen.query_one("#compare-table", DataTable)
    rows = [[str(cell) for cell in table.get_row(key)] for key in table.rows]
    return {row[0]: row[1:] for row in rows}


async def test_mark_runs_and_compare_them_from_the_runs_list(three_runs: list[Path]) -> None:
    app = Harness(lambda: RunsScreen(three_runs[0].parent))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.loads >= 1)
        runs = app.screen
        assert isinstance(runs, RunsScreen)
        table = runs.query_one(RunsTable)
        await pilot.press("c")  # nothing marked yet: it says how
        assert app.notified[-1] == "Mark two or more runs with space, then press c to compare them."
        order = [Path(str(key.value)).name for key in table.rows]
        await pilot.press("space", "down", "space")  # space moves on to the next run: marks rows 0 and 2
        assert [Path(key).name for key in runs.marked] == [order[0], order[2]]
        assert str(table.get_row_at(0)[0]).startswith("✓ ") and str(table.get_row_at(1)[0]).startswith("  ")
        assert "2 marked" in str(runs.query_one("#runs-title").content)
        await pilot.press("up", "space")  # the middle one too: all three
        await pilot.press("c")
        screen = await _compared(pilot)
        chart = screen.query_one(CurvesChart)
        assert chart.curve == "train loss" and chart.drawn == [order[0], order[2], order[1]]  # in marking order
        legend = str(chart.query_one(".chart-legend").render())
        assert all(f"━ {name}" in legend for name in order)
        assert len({curve.color for curve in chart.curves}) == 3
        rows = _table(screen)
        assert list(rows)[:5] == ["status", "config differences", "engine", "training.learning_rate",
                                  "training.per_device_train_batch_size"]
        assert rows["final metrics: validation"] == ["", "", ""] and "final metrics: test" in rows
        assert screen.curve_names == ["train loss", "eval loss", "accuracy", "f1"]
        await pilot.press("n")
        assert chart.curve == "eval loss" and chart.border_title == "eval loss"
        await pilot.press("p", "p")
        assert chart.curve == "f1"
        curves_line = str(screen.query_one("#compare-curves").render())
        await pilot.click("#compare-curves", offset=(1 + curves_line.index("accuracy"), 0))
        assert chart.curve == "accuracy"
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is runs)
        assert len(runs.marked) == 3  # the marks stay for another comparison


async def test_a_curve_no_run_logged_says_so(tmp_path: Path) -> None:
    runs = [make_run(tmp_path, name, steps=10, finished=False) for name in "ab"]  # no evaluation before step 20
    app = Harness(lambda: CompareScreen(runs))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _compared(pilot)
        await pilot.press("n")
        chart = screen.query_one(CurvesChart)
        assert chart.drawn == [] and chart.message == "None of these runs logged eval loss."
        assert "(none)" in str(chart.query_one(".chart-legend").render())


async def test_a_run_deleted_before_the_screen_reads_it_is_reported_not_raised(three_runs: list[Path]) -> None:
    app = Harness(lambda: CompareScreen([three_runs[0], three_runs[0].parent / "gone"]))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: bool(app.notified))
        assert "gone is not a run directory" in app.notified[-1]
        assert "Could not compare the runs" in str(app.screen.query_one("#compare-title").render())
        assert app.return_code is None  # the app is still up


@pytest.mark.parametrize("size", [(80, 24), (100, 30)], ids=["80x24", "100x30"])
def test_snapshot_compare_screen(snap_compare: Callable[..., bool], three_runs: list[Path],
                                 size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await _compared(pilot)

    app = Harness(lambda: CompareScreen(three_runs))
    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_a_key_an_older_run_never_wrote_is_no_difference(three_runs: list[Path]) -> None:
    """A run made before training.report_to existed reads as having its default, so only real choices differ; a
    config that no longer validates still compares as written."""
    import yaml

    older = three_runs[0] / "config.yaml"
    raw = yaml.safe_load(older.read_text())
    del raw["training"]["report_to"], raw["training"]["push_to_hub"]
    older.write_text(yaml.safe_dump(raw))
    keys = [key for key, _ in config_differences([read_config(RunDir(p)) for p in three_runs[:2]])]
    assert keys == ["training.learning_rate"]
    raw["training"]["no_such_setting"] = 1
    older.write_text(yaml.safe_dump(raw))
    keys = [key for key, _ in config_differences([read_config(RunDir(p)) for p in three_runs[:2]])]
    assert "training.no_such_setting" in keys
