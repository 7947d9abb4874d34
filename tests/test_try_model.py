"""The Try-the-model screen, driven with Textual's Pilot: type a text, see every label's probability."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from textual.app import App
from textual.widgets import Input, Static

from core.config import parse_config, save_config
from core.rundir import RunDir
from core.tasks import get_task
from tests.conftest import tiny_config, tiny_rows, write_tsv
from tests.test_trainer_run import _run_in_process
from tui.screens.try_model import TryModelScreen, probability_bars


class Host(App[None]):
    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = run_dir

    def on_mount(self) -> None:
        self.push_screen(TryModelScreen(self.run_dir))


@pytest.fixture(scope="module")
def trained_run(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    root = tmp_path_factory.mktemp("try-run")
    data = {"train": write_tsv(root / "train.tsv", tiny_rows(96, seed=1))}
    raw = tiny_config(tiny_model, data, root / "run", max_steps=45, eval_strategy="no", save_strategy="no")
    return _run_in_process(raw)


async def _until(pilot: Any, condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.05)


async def test_type_a_text_and_see_probabilities(trained_run: RunDir) -> None:
    app = Host(trained_run.path)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, TryModelScreen) and not screen.is_pair
        assert not screen.query("#try-pair")  # a single-text model asks for one text
        await _until(pilot, lambda: screen.predictor is not None)
        assert screen.labels == ["neg", "pos"]
        await pilot.press(*"great lovely superb film")
        await _until(pilot, lambda: screen.shown_for == ("great lovely superb film", None))
        assert set(screen.answer["probabilities"]) == {"neg", "pos"}
        assert sum(screen.answer["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert screen.answer["probabilities"]["pos"] > screen.answer["probabilities"]["neg"]
        shown = str(screen.query_one("#try-bars", Static).render())
        assert "neg" in shown and "pos" in shown and f"{screen.answer['probabilities']['pos']:.1%}" in shown

        # Editing the text predicts again for the new text.
        field = screen.query_one("#try-text", Input)
        field.value = ""
        await pilot.press(*"awful terrible broken", "enter")
        await _until(pilot, lambda: screen.shown_for == ("awful terrible broken", None))
        assert screen.answer["probabilities"]["neg"] > screen.answer["probabilities"]["pos"]
        await pilot.press("escape")  # back to the screen beneath (here the host's empty one); the app stays
        await _until(pilot, lambda: not isinstance(app.screen, TryModelScreen))
        assert screen not in app.screen_stack and app.return_code is None


async def test_pair_model_asks_for_both_texts(tiny_model: Path, tiny_data: dict, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import core.predict

    raw = tiny_config(tiny_model, tiny_data, tmp_path / "run")
    raw["data"].update(text_column="question", text_pair_column="answer")
    save_config(parse_config(raw), tmp_path / "run" / "config.yaml")
    seen: list[tuple[list[str], list[str] | None]] = []

    class Fake:
        labels = ("no", "yes", "maybe")
        task = get_task("text-classification")
        meta: ClassVar[dict[str, Any]] = {"task": "text-classification", "labels": list(labels)}

        def predict(self, texts: list[str], pairs: list[str] | None = None, batch_size: int = 32) -> Any:
            seen.append((texts, pairs))
            return self.task.answers(np.array([[0.2, 0.5, 0.3]]), self.meta)

    monkeypatch.setattr(core.predict, "load_predictor", lambda path: Fake())
    app = Host(tmp_path / "run")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, TryModelScreen) and screen.is_pair
        await _until(pilot, lambda: screen.predictor is not None)
        await pilot.press(*"who", "enter")  # Enter moves on to the second text
        assert screen.query_one("#try-pair", Input).has_focus
        await pilot.press(*"me", "enter")
        await _until(pilot, lambda: screen.shown_for == ("who", "me"))
        assert seen[-1] == (["who"], ["me"])
        assert screen.answer["probabilities"] == {"no": 0.2, "yes": 0.5, "maybe": 0.3}


async def test_a_run_without_a_model_says_so(tmp_path: Path, tiny_model: Path, tiny_data: dict) -> None:
    save_config(parse_config(tiny_config(tiny_model, tiny_data, tmp_path / "run")), tmp_path / "run" / "config.yaml")
    app = Host(tmp_path / "run")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        status = screen.query_one("#try-status", Static)
        await _until(pilot, lambda: "Cannot load" in str(status.render()))
        assert screen.predictor is None
        await pilot.press(*"hello")  # typing with no model does nothing bad
        await pilot.pause(0.5)
        assert screen.shown_for is None


def test_probability_bars_scale_with_probability() -> None:
    text = probability_bars(["negative", "positive"], [0.25, 0.75], width=20).plain.splitlines()
    assert text[0].count("█") == 5 and text[1].count("█") == 15
    assert text[0].endswith("25.0%") and text[1].endswith("75.0%")
