"""The learning-rate range test: the rule on made-up curves, real runs on the tiny model for every task (and a keras
config), the CLI's --lr, --json and --write, and the training step's button, curve and "Use" in the wizard."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.config import load_config, parse_config
from core.lr_range import (
    Ema,
    LrPoint,
    format_lr_range,
    loss_trend,
    lr_range_test,
    rate_label,
    rate_ticks,
    schedule,
    suggest,
)
from tests.conftest import tiny_config, without_dropout, write_tsv
from tests.test_task_multilabel import comments, write_joined
from tests.test_task_regression import ratings
from tui.cli import main

FULL_BATCH = 72  # tiny_data's 96 rows less the 25% held out: one batch holds them all, so the curve is not noisy


@pytest.fixture(scope="module")
def calm_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model without dropout: with the full batch, each step's loss then depends on the rate alone."""
    return without_dropout(tiny_model, tmp_path_factory.mktemp("calm") / "model")


def _config(model: Path, data: dict[str, Path], tmp_path: Path, **training: Any) -> dict[str, Any]:
    return tiny_config(model, data, tmp_path / "run", **{"per_device_train_batch_size": FULL_BATCH, **training})


def _check_points(points: list[LrPoint], steps: int, min_lr: float) -> None:
    lrs = [p.lr for p in points]
    assert 2 <= len(points) <= steps and lrs[0] == pytest.approx(min_lr)
    assert all(b > a for a, b in itertools.pairwise(lrs))
    assert [p.step for p in points] == list(range(1, len(points) + 1))
    assert all(math.isfinite(p.loss) and math.isfinite(p.smoothed) for p in points)


# --- the rule --------------------------------------------------------------------------------------------------------

def test_the_schedule_the_smoothing_and_the_axis() -> None:
    from core.lr_range import DEFAULT_MAX_LR, DEFAULT_MIN_LR, DEFAULT_STEPS
    from tui.cli import LR_MAX, LR_MIN, LR_STEPS

    assert (LR_STEPS, LR_MIN, LR_MAX) == (DEFAULT_STEPS, DEFAULT_MIN_LR, DEFAULT_MAX_LR)  # the CLI's copy agrees
    assert schedule(5, 1e-4, 1.0) == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    ema = Ema(0.9)
    assert ema.add(2.0) == pytest.approx(2.0)  # bias-corrected: the first value is not pulled towards 0
    assert ema.add(2.0) == pytest.approx(2.0)
    assert loss_trend([1.0, 1.0, 9.0, 1.0, 1.0], steps=20) == [1.0, 1.0, 1.0, 1.0, 1.0]  # one spike is no minimum
    assert loss_trend([5.0, 1.0, 3.0], steps=100)[-1] == 3.0  # centred up to the ends: the last step is its own
    assert [rate_label(v) for v in (1e-5, 3.16e-3, 3e-4, 1.0)] == ["1e-5", "3.2e-3", "3e-4", "1e0"]
    assert [rate_label(v) for v in rate_ticks(1e-7, 1.0, 4)] == ["1e-7", "1e-5", "1e-3", "1e-1"]
    assert [rate_label(v) for v in rate_ticks(2e-4, 9e-3, 8)] == ["2e-4", "5e-4", "1e-3", "2e-3", "5e-3"]


def test_a_tenth_of_the_lowest_loss_is_suggested_and_nothing_where_the_curve_shows_no_minimum() -> None:
    lrs = schedule(43, 1e-7, 1.0)  # 6 steps a decade
    valley = [1.0 - 0.8 * math.exp(-2 * (math.log10(lr) + 2) ** 2) for lr in lrs]  # lowest at 1e-2
    rate, lowest, why = suggest(lrs, loss_trend(valley, 43))
    assert lowest == pytest.approx(1e-2) and rate == pytest.approx(1e-3) and "a tenth" in why

    flat = suggest(lrs, [0.69] * len(lrs))
    assert flat[0] is None and "never fell" in flat[2]

    lowest_at_once = [1.0, 0.9, 0.8, 0.7, 0.6, 0.4, *[0.5 + 0.1 * i for i in range(len(lrs) - 6)]]  # at 6.8e-7
    early = suggest(lrs, loss_trend(lowest_at_once, 43))
    assert early[0] is None and "--min-lr" in early[2]

    still_falling = [1.0 - 0.02 * i for i in range(len(lrs))]
    rate, lowest, why = suggest(lrs, still_falling)
    assert lowest == lrs[-1] and rate == pytest.approx(0.1) and "still falling" in why


# --- real runs -------------------------------------------------------------------------------------------------------

def test_the_rate_rises_over_the_real_data_and_the_suggestion_lies_in_the_range(calm_model: Path, tiny_data: dict,
                                                                                tmp_path: Path) -> None:
    config = parse_config(_config(calm_model, tiny_data, tmp_path))
    seen: list[LrPoint] = []
    result = lr_range_test(config, steps=20, min_lr=1e-4, max_lr=1.0, on_point=seen.append)
    assert seen == result.points and result.device == "cpu" and result.effective_batch_size == FULL_BATCH
    _check_points(result.points, 20, 1e-4)
    assert len(result.trend) == len(result.points)
    assert result.suggested_lr is not None, result.reason
    assert result.points[0].lr <= result.suggested_lr <= result.points[-1].lr
    assert result.suggested_lr == pytest.approx(result.min_loss_lr / 10, rel=0.5)  # rounded to one digit
    text = format_lr_range(result, width=72, height=14)
    assert "1e-4" in text and "1e-1" in text and f"suggested {rate_label(result.suggested_lr)}" in text
    assert max(len(line) for line in text.splitlines()[:14]) <= 72
    json.dumps(result.to_dict())


def test_a_diverging_loss_ends_the_test_early(calm_model: Path, tiny_data: dict, tmp_path: Path) -> None:
    config = parse_config(_config(calm_model, tiny_data, tmp_path))
    result = lr_range_test(config, steps=16, min_lr=1e-2, max_lr=10.0)  # far past any rate that trains
    assert len(result.points) < 16 and ("diverged" in result.stopped or "became" in result.stopped)
    _check_points(result.points, 16, 1e-2)


@pytest.mark.parametrize("kind", ["text-regression", "multi-label-classification", "keras"])
def test_each_task_and_a_keras_config(kind: str, calm_model: Path, tiny_data: dict, tmp_path: Path) -> None:
    """The task's labels and loss: MSE on float scores, BCE on 0/1 rows; a keras config is tested in PyTorch."""
    if kind == "text-regression":
        data = {"train": write_tsv(tmp_path / "scores.tsv", ratings(96, seed=1))}
    elif kind == "multi-label-classification":
        data = {"train": write_joined(tmp_path / "tags.tsv", comments(96, seed=1))}
    else:
        data = tiny_data
    raw = _config(calm_model, data, tmp_path)
    if kind == "keras":
        raw["engine"] = "keras"
    else:
        del raw["metrics"]
        raw["task"] = kind
        raw["data"]["label_column"] = "tags" if kind == "multi-label-classification" else "label"
    result = lr_range_test(parse_config(raw), steps=10, min_lr=1e-4, max_lr=1.0)
    _check_points(result.points, 10, 1e-4)
    if result.suggested_lr is not None:
        assert result.points[0].lr <= result.suggested_lr <= result.points[-1].lr
    else:
        assert result.reason


# --- the CLI ---------------------------------------------------------------------------------------------------------

def test_cli_writes_the_suggested_rate_prints_json_and_leaves_the_config_without_one(
        calm_model: Path, tiny_data: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(_config(calm_model, tiny_data, tmp_path, learning_rate=5e-5)))
    assert main(["probe", str(path), "--lr", "--json", "--write", "--steps", "20", "--min-lr", "1e-4"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    *progress, result = records
    assert [r["progress"]["step"] for r in progress] == [p["step"] for p in result["points"]]
    assert result["suggested_lr"] is not None and result["written"] == str(path)
    assert load_config(path).training.learning_rate == result["suggested_lr"]

    # A range where nothing trains: no suggestion, and --write leaves the file alone and says so.
    before = path.read_text()
    assert main(["probe", str(path), "--lr", "--write", "--steps", "8", "--min-lr", "1e-9", "--max-lr", "1e-8"]) == 0
    out = capsys.readouterr().out
    assert "step 8/8" in out and "learning rate (log scale)" in out
    assert "no suggested learning rate: the loss never fell" in out and "left" in out and "as it was" in out
    assert path.read_text() == before


def test_cli_refuses_a_bad_config_and_bad_arguments_with_exit_2(calm_model: Path, tiny_data: dict, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(_config(calm_model, tiny_data, tmp_path, mixed_precision="fp16")))
    assert main(["probe", str(path), "--lr"]) == 2
    err = capsys.readouterr().err
    assert "error: training.mixed_precision is fp16" in err and "fix:" in err

    path.write_text(yaml.safe_dump(_config(calm_model, tiny_data, tmp_path, learning_rate=-1)))
    assert main(["probe", str(path), "--lr"]) == 2
    assert "learning_rate" in capsys.readouterr().err

    path.write_text(yaml.safe_dump(_config(calm_model, tiny_data, tmp_path)))
    assert main(["probe", str(path), "--lr", "--steps", "3"]) == 2
    assert "at least" in capsys.readouterr().err
    assert main(["probe", str(path), "--steps", "20"]) == 2  # without --lr: the batch probe takes no steps
    assert "--lr" in capsys.readouterr().err


# --- the wizard ------------------------------------------------------------------------------------------------------

def test_the_step_shows_the_error_of_a_failed_test_not_the_warnings_before_it() -> None:
    from tui.screens.steps.training import _failure

    stderr = "Some weights were newly initialized\nerror: tokenizer.max_length is 900\n  fix: set it to 512\n"
    assert _failure(stderr) == "error: tokenizer.max_length is 900 (fix: set it to 512)"
    assert _failure("internal error: ValueError: x\n  rerun with --debug\n") == "internal error: ValueError: x"
    assert _failure("Killed\n") == "Killed" and _failure("") == ""


async def test_find_learning_rate_draws_the_curve_and_use_puts_the_rate_in_the_draft(calm_model: Path,
                                                                                     tiny_data: dict,
                                                                                     tmp_path: Path) -> None:
    """The training step on its own screen at 80x24, with a draft as the earlier steps leave it: the button runs
    `finetune-tui probe --lr` in a subprocess, the curve and the suggestion show, and Use sets the draft's rate."""
    from textual.app import ComposeResult
    from textual.screen import Screen
    from textual.widgets import Button, Input, Static

    from tests.screen_harness import Harness, wait_until
    from tui.draft import Draft
    from tui.screens.steps.base import Findings
    from tui.screens.steps.training import TrainingStep
    from tui.widgets.field_row import FieldRow
    from tui.widgets.loss_chart import ChartView
    from tui.widgets.lr_chart import LrChart

    draft = Draft.from_config(parse_config(_config(calm_model, tiny_data, tmp_path)))

    class StepScreen(Screen[None]):
        def compose(self) -> ComposeResult:
            yield TrainingStep(draft, Findings())

    app = Harness(StepScreen)
    async with app.run_test(size=(80, 24)) as pilot:
        step = app.screen.query_one(TrainingStep)
        find, use = step.query_one("#lr-find", Button), step.query_one("#lr-use", Button)
        status = step.query_one("#lr-status", Static)
        assert not use.display and not status.display and not step.query_one("#lr-curve").display
        await pilot.click("#lr-find")
        await wait_until(pilot, lambda: find.disabled)
        await wait_until(pilot, lambda: not find.disabled, timeout=240)
        assert status.has_class("-ok"), str(status.render())
        assert "suggested" in str(status.render())
        await wait_until(pilot, lambda: step.query_one(LrChart).query_one(ChartView).drawn_size[0] > 0)
        assert use.display and str(use.label).startswith("Use ")
        await pilot.wait_for_scheduled_animations()
        await pilot.click("#lr-use")
        await pilot.pause()
        rate = draft.get("training.learning_rate")
        assert str(use.label) == f"Use {rate_label(rate)}" and rate != 5e-3
        field = next(r for r in step.query(FieldRow) if r.path == "training.learning_rate")
        assert float(field.query_one(Input).value) == rate
        assert "learning rate set to" in str(status.render())
