"""Per-task learning defaults: chosen by bench/task_defaults.py's sweep, applied to what a config leaves out, followed
by the wizard when the task changes, and explained there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.config import RunConfig, TrainingConfig, parse_config
from core.tasks import TASKS
from tui.draft import Draft

RESULTS = Path(__file__).resolve().parent.parent / "bench" / "results.json"
DATA = {"train_file": "train.csv", "text_column": "text", "label_column": "label"}


def _swept() -> dict[str, dict]:
    return json.loads(RESULTS.read_text())["benchmarks"]["task_defaults"]["figures"]


@pytest.mark.parametrize("task", [t for t in TASKS if TASKS[t].training_defaults])
def test_defaults_are_the_ones_the_sweep_chose(task: str) -> None:
    chosen = _swept()[task]["chosen"]
    assert dict(TASKS[task].training_defaults) == chosen
    why = TASKS[task].defaults_why
    rate = f"{chosen['learning_rate']:.0e}".replace("e-0", "e-")  # 0.0001 as people write it: 1e-4
    assert f"{rate} for {chosen['num_train_epochs']:g} epochs" in why


def test_the_sweep_beat_the_old_defaults_on_unseen_data() -> None:
    for task, found in _swept().items():
        metric = found["metric"]
        assert found["chosen_run"]["test"][metric] >= found["old_defaults"]["test"][metric], task


@pytest.mark.parametrize("task", list(TASKS))
def test_a_config_that_leaves_them_out_gets_its_tasks_defaults(task: str) -> None:
    config = parse_config({"task": task, "data": {"train_file": "train.csv"}})
    for key, value in TASKS[task].training_defaults.items():
        assert getattr(config.training, key) == value, key


def test_what_a_config_sets_is_kept() -> None:
    task = "text-regression"
    config = parse_config({"task": task, "data": DATA, "training": {"learning_rate": 3e-5}})
    assert config.training.learning_rate == 3e-5
    assert config.training.num_train_epochs == TASKS[task].training_defaults["num_train_epochs"]
    # A TrainingConfig object counts only the fields it was given.
    built = RunConfig.model_validate({"task": task, "data": DATA, "training": TrainingConfig(num_train_epochs=1)})
    assert built.training.num_train_epochs == 1
    assert built.training.learning_rate == TASKS[task].training_defaults["learning_rate"]
    # A saved config holds every value, so loading it again changes nothing.
    assert parse_config(config.to_dict()) == config


def test_the_wizard_follows_the_task_but_keeps_what_the_person_changed() -> None:
    draft = Draft()
    draft.set("training.num_train_epochs", 2.0)
    draft.set_task("text-regression")
    regression = TASKS["text-regression"].training_defaults
    assert draft.get("training.learning_rate") == regression["learning_rate"]
    assert draft.get("training.num_train_epochs") == 2.0
    draft.set_task("multi-label-classification")
    for key, value in TASKS["multi-label-classification"].training_defaults.items():
        if key != "num_train_epochs":
            assert draft.get(f"training.{key}") == value, key
    draft.set_task("text-classification")
    assert draft.get("training.learning_rate") == TrainingConfig().learning_rate
    assert draft.get("training.threshold") == 0.5
