"""The wizard, driven like a person would: keys into the real app, on a tiny model and a small data file.

Everything runs from a fixed working directory holding `tiny-bert/` and `reviews.csv`, so paths in the UI
(and in the snapshots) are the same on every machine.
"""

from __future__ import annotations

import io
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console
from textual import events
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

import core.engines as engines_module
from core.config import RunConfig, load_config
from core.rundir import RunDir
from tests.fixtures_model import in_workdir_fixture, workdir_fixture  # noqa: F401
from tui.app import make_app
from tui.screens.steps.model import ModelStep
from tui.screens.wizard import WizardScreen
from tui.widgets.field_row import FieldRow

SIZE = (100, 30)
STEP_NAMES = ["framework", "model", "dataset", "tokenizer", "training", "review"]


# --- driving the wizard ----------------------------------------------------------------------------

async def settle(pilot: Pilot[Any], timeout: float = 60.0) -> None:
    """Until every wizard step is mounted and no worker runs (a worker may start another, e.g. a check that leads
    to the next step)."""
    app = pilot.app
    if isinstance(app.screen, WizardScreen):
        await app.screen.steps_ready()
    deadline = time.monotonic() + timeout
    while True:
        await app.workers.wait_for_complete()
        await pilot.pause()
        if not any(w.is_running for w in app.workers):
            break
        assert time.monotonic() < deadline, "workers did not finish"
    await pilot.pause()


async def wait_until(pilot: Pilot[Any], condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await pilot.pause(0.05)


def wizard(pilot: Pilot[Any]) -> WizardScreen:
    screen = pilot.app.screen
    assert isinstance(screen, WizardScreen), f"expected the wizard, got {screen!r}"
    return screen


def current(pilot: Pilot[Any]) -> str:
    return wizard(pilot).current.NAME


def row(pilot: Pilot[Any], path: str) -> FieldRow:
    return next(r for r in wizard(pilot).query(FieldRow) if r.path == path)


async def type_into(pilot: Pilot[Any], path: str, text: str, *, paste: bool = True) -> None:
    """Focus a field and replace its text from the keyboard: end, ctrl+u clears, then the text as a
    terminal paste (one event, quick), or typed key by key with paste=False."""
    editor = row(pilot, path).editor
    assert isinstance(editor, Input)
    editor.focus()
    await pilot.pause()
    await pilot.press("end", "ctrl+u")
    if paste:
        editor.post_message(events.Paste(text))
    else:
        await pilot.press(*list(text))
    await pilot.pause()


def no_blink(pilot: Pilot[Any]) -> None:
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False


async def next_step(pilot: Pilot[Any]) -> None:
    await pilot.press("ctrl+n")
    await settle(pilot)


def problems(pilot: Pilot[Any]) -> str:
    box = wizard(pilot).query_one("#problems", Static)
    return str(box.render()) if box.display else ""


async def choose_task(pilot: Pilot[Any], task: str) -> WizardScreen:
    """The Task select on the first step set to `task`, as a person choosing it would."""
    from textual.widgets import Select

    await settle(pilot)
    screen = wizard(pilot)
    screen.query_one("#task-select", Select).value = task
    await pilot.pause()
    return screen


async def to_model(pilot: Pilot[Any], typed: bool = False) -> None:
    await settle(pilot)
    no_blink(pilot)
    await next_step(pilot)
    await type_into(pilot, "model.name_or_path", "tiny-bert", paste=not typed)


async def to_dataset(pilot: Pilot[Any], typed: bool = False, train_file: str = "reviews.csv") -> None:
    await to_model(pilot, typed)
    await next_step(pilot)
    assert current(pilot) == "dataset", problems(pilot)
    await type_into(pilot, "data.train_file", train_file, paste=not typed)
    await pilot.press("enter")  # loads the preview
    await settle(pilot)


async def to_tokenizer(pilot: Pilot[Any], typed: bool = False) -> None:
    await to_dataset(pilot, typed)
    await type_into(pilot, "data.validation_fraction", "0.25", paste=not typed)
    await next_step(pilot)
    assert current(pilot) == "tokenizer", problems(pilot)


async def to_training(pilot: Pilot[Any], typed: bool = False) -> None:
    await to_tokenizer(pilot, typed)
    await type_into(pilot, "tokenizer.max_length", "16", paste=not typed)
    await next_step(pilot)
    assert current(pilot) == "training", problems(pilot)


async def to_review(pilot: Pilot[Any], typed: bool = False) -> None:
    await to_training(pilot, typed)
    await type_into(pilot, "training.num_train_epochs", "2", paste=not typed)
    await type_into(pilot, "training.learning_rate", "0.001", paste=not typed)
    await type_into(pilot, "training.per_device_train_batch_size", "8", paste=not typed)
    await next_step(pilot)
    assert current(pilot) == "review", problems(pilot)


# --- the whole walk --------------------------------------------------------------------------------

async def test_walk_to_saved_config_and_started_run(in_workdir: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[tuple[RunConfig, Path | None]] = []

    def fake_start(config: RunConfig, *, overwrite: bool = False, base: Path | None = None, **_: Any) -> RunDir:
        started.append((config, base))
        run = RunDir(tmp_path / "run")
        run.path.mkdir()
        return run

    monkeypatch.setattr("core.launch.start_detached", fake_start)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await to_review(pilot, typed=True)
        # every step was passed, in order, and the list says so
        items = [str(i.render()) for i in wizard(pilot).query(".step-item")]
        assert items[0].startswith("✓") and items[5].startswith("▶")

        save_path = wizard(pilot).query_one("#save-path", Input)
        save_path.focus()
        await pilot.press("end", "ctrl+u", *"configs/run.yaml", "enter")
        await pilot.pause()
        saved = in_workdir / "configs" / "run.yaml"
        assert saved.exists()
        command = str(wizard(pilot).query_one("#run-command", Static).render())
        assert "finetune-tui run configs/run.yaml" in command

        wizard(pilot).query_one("#start").focus()
        await pilot.press("enter")
        from tui.screens.monitor import MonitorScreen

        # (not settle(): the monitor's own watcher keeps running)
        await wait_until(pilot, lambda: isinstance(app.screen, MonitorScreen))
        assert app.screen.run_dir.path == tmp_path / "run"

    config = load_config(saved)
    assert config.model.name_or_path == "tiny-bert"
    assert str(config.data.train_file) == "reviews.csv"
    assert (config.data.text_column, config.data.label_column) == ("text", "label")
    assert config.data.validation_fraction == 0.25
    assert config.tokenizer.max_length == 16
    assert config.training.num_train_epochs == 2
    assert config.training.learning_rate == 0.001
    assert config.training.per_device_train_batch_size == 8
    assert len(started) == 1
    assert started[0][0] == config  # what starts is exactly what was saved


async def test_model_and_dataset_findings_are_shown(in_workdir: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await to_dataset(pilot)
        screen = wizard(pilot)
        assert screen.findings.model_info.architecture == "BertModel"
        assert screen.findings.model_info.max_length == 64
        table = screen.query_one("#data-preview", DataTable)
        assert table.row_count == 5
        assert [str(c.label) for c in table.columns.values()] == ["text", "label"]
        # the column mapping was prefilled from the data's suggestion
        assert row(pilot, "data.text_column").raw_value() == "text"
        assert row(pilot, "data.label_column").raw_value() == "label"
        balance = screen.query_one("#balance")
        assert balance.counts == {"pos": 20, "neg": 20}


async def test_glue_file_shows_its_quoting_pairs_and_label_names(in_workdir: Path) -> None:
    """GLUE's MRPC layout: int labels, a sentence pair under '#1 String'/'#2 String', fields opening with a bare "."""
    lines = ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"]
    lines += [f'{i % 2}\t{i}\t{i + 100}\t"The company said profits rose {i} percent .\tProfits grew by {i} percent , '
              "the firm said ." for i in range(20)]
    (in_workdir / "mrpc.tsv").write_text("\r\n".join(lines) + "\r\n", encoding="utf-8-sig")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await to_dataset(pilot, train_file="mrpc.tsv")
        screen = wizard(pilot)
        status = str(screen.query_one("#data-status", Static).render())
        assert "train 20 rows" in status and "no quote processing" in status
        assert row(pilot, "data.text_column").raw_value() == "#1 String"
        assert row(pilot, "data.text_pair_column").raw_value() == "#2 String"
        assert row(pilot, "data.label_column").raw_value() == "Quality"
        balance = screen.query_one("#balance")
        assert balance.counts == {"0": 10, "1": 10}
        await type_into(pilot, "data.label_names", "not_equivalent, equivalent")
        await settle(pilot)
        assert balance.counts == {"not_equivalent": 10, "equivalent": 10}
        assert screen.draft.build().data.label_names == ["not_equivalent", "equivalent"]


async def test_regression_task_changes_the_fields_labels_and_metrics(in_workdir: Path) -> None:
    """Choosing text-regression on the first step: the dataset step shows the scores' spread and the label scaling
    (not label names), the training step offers the regression metrics, and the saved config is a regression one."""
    from textual.widgets import SelectionList

    from tests.test_task_regression import ratings

    rows = "\n".join(["review\tstars", *("\t".join(r) for r in ratings(40))]) + "\n"
    (in_workdir / "ratings.tsv").write_text(rows, encoding="utf-8")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await choose_task(pilot, "text-regression")
        assert screen.draft.get("task") == "text-regression"
        assert screen.draft.get("metrics") == ["pearson", "spearman", "mse", "rmse", "mae", "r2"]
        assert "rating" in str(screen.query_one("#task-when", Static).render())
        await to_dataset(pilot, train_file="ratings.tsv")
        assert row(pilot, "data.label_column").raw_value() == "stars"
        assert screen.query_one("#balance").counts == {"1": 8, "2": 8, "3": 8, "4": 8, "5": 8}
        assert str(screen.query_one("#labels-title", Static).render()) == "Scores"
        assert "scores 1 to 5, median 3" in str(screen.query_one("#balance-caption", Static).render())
        assert not row(pilot, "data.label_scaling").has_class("-inactive")
        assert row(pilot, "data.label_names").has_class("-inactive")
        await type_into(pilot, "data.validation_fraction", "0.25")
        await next_step(pilot)
        assert current(pilot) == "tokenizer", problems(pilot)
        assert screen.findings.prepared.task == "text-regression"
        assert "scores 1 to 5 (median 3) in 'stars'" in str(screen.query_one("#data-status", Static).render())
        await type_into(pilot, "tokenizer.max_length", "16")
        await next_step(pilot)
        assert current(pilot) == "training", problems(pilot)
        metrics = screen.query_one("#metrics", SelectionList)
        assert [metrics.get_option_at_index(i).value for i in range(metrics.option_count)][:2] == ["pearson",
                                                                                                   "spearman"]
        assert row(pilot, "training.class_weights").has_class("-inactive")
        why = str(screen.query_one("#task-defaults", Static).render())
        assert "1e-4 for 6 epochs" in why and "sets its own" not in why
        config = screen.draft.build()
        assert config.task == "text-regression" and config.metrics[0] == "pearson"
        assert config.training.class_weights is None and config.data.label_column == "stars"


async def test_token_classification_reads_conll_shows_entities_and_what_truncation_cuts(in_workdir: Path) -> None:
    """Choosing token-classification: the dataset step reads a CoNLL-2003-style file
    (IOB1, four columns) and shows its entities with a few sentences marked instead of text and label columns, the
    tokenizer step says how many entities a short max_length hides, and the training step offers label_all_tokens."""

    from tests.ner_data import sentences, write_conll

    write_conll(in_workdir / "news.conll", sentences(40, seed=1), columns=4, iob1=True)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await choose_task(pilot, "token-classification")
        await to_dataset(pilot, train_file="news.conll")
        assert str(screen.query_one("#labels-title", Static).render()) == "Entities"
        counts = screen.query_one("#balance").counts
        assert set(counts) == {"PER", "LOC", "ORG"} and counts["PER"] == 40
        caption = str(screen.query_one("#balance-caption", Static).render())
        assert "40 sentences" in caption and "(IOB1)" in caption and "]PER" in caption
        assert row(pilot, "data.label_column").has_class("-inactive")
        assert not row(pilot, "data.tags_column").has_class("-inactive")
        assert screen.draft.get("data.label_column") is None
        await next_step(pilot)
        assert current(pilot) == "tokenizer", problems(pilot)
        summary = screen.query_one("#length-summary", Static)
        await wait_until(pilot, lambda: "no entity is cut" in str(summary.render()))
        await type_into(pilot, "tokenizer.max_length", "8")
        await wait_until(pilot, lambda: "entities from the model" in str(summary.render()))
        await type_into(pilot, "tokenizer.max_length", "32")
        await next_step(pilot)
        assert current(pilot) == "training", problems(pilot)
        assert not row(pilot, "tokenizer.label_all_tokens").has_class("-inactive")
        assert row(pilot, "training.class_weights").has_class("-inactive")
        config = screen.draft.build()
        assert config.task == "token-classification" and config.engine == "trainer"
        assert config.data.label_column is None and config.metrics[0] == "f1"


async def test_list_labels_offer_multi_label_and_one_press_switches_the_task(in_workdir: Path) -> None:
    """A JSON-lines file whose label column holds lists, opened under text-classification: the dataset step says the
    lists call for multi-label classification and switches with one press: the label frequencies, the task's fields,
    its metrics and its learning defaults follow, and the saved config is a multi-label one."""
    import json

    from core.tasks import TASKS

    tags = (["billing"], ["billing", "bug"], ["ui"], ["bug", "ui"], [])
    lines = [json.dumps({"comment": f"comment {i}: the screen froze when I paid twice", "tags": tags[i % 5]})
             for i in range(40)]
    (in_workdir / "comments.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await to_dataset(pilot, train_file="comments.jsonl")
        screen = wizard(pilot)
        assert row(pilot, "data.label_column").raw_value() == "tags"
        hint = screen.query_one("#task-hint")
        assert hint.display
        assert "'tags' holds lists of labels" in str(screen.query_one("#task-hint-text", Static).render())
        switch = screen.query_one("#switch-task")
        assert str(switch.label) == "Use multi-label classification"
        switch.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: str(screen.query_one("#labels-title", Static).render()) == "Rows per label")
        assert not hint.display
        assert screen.draft.get("task") == "multi-label-classification"
        assert screen.query_one("#balance").counts == {"billing": 16, "bug": 16, "ui": 16}
        assert not row(pilot, "data.label_separator").has_class("-inactive")
        assert screen.draft.get("metrics")[0] == "f1_micro"
        defaults = TASKS["multi-label-classification"].training_defaults
        assert all(screen.draft.get(f"training.{k}") == v for k, v in defaults.items())
        await type_into(pilot, "data.validation_fraction", "0.25")
        await next_step(pilot)
        assert current(pilot) == "tokenizer", problems(pilot)
        config = screen.draft.build()
        assert config.task == "multi-label-classification" and config.data.label_column == "tags"


async def test_tokenizer_view_follows_max_length(in_workdir: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await to_tokenizer(pilot)
        summary = wizard(pilot).query_one("#length-summary", Static)
        example = str(wizard(pilot).query_one("#token-example", Static).render())
        assert example.startswith("[CLS]") and "[SEP]" in example
        await type_into(pilot, "tokenizer.max_length", "8")
        assert "max_length 8" in str(summary.render())
        assert "100.0% of examples" in str(summary.render())  # every review is longer than 8 tokens
        await type_into(pilot, "tokenizer.max_length", "64")
        assert "0.0% of examples" in str(summary.render())


async def test_probe_button_sets_batch_and_accumulation_keeping_the_effective_batch(in_workdir: Path,
                                                                                    tiny_model: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await to_training(pilot)
        screen = wizard(pilot)
        screen.draft.set("model.name_or_path", str(tiny_model))  # the probe runs real weights
        screen.draft.set("training.per_device_train_batch_size", 2)
        screen.draft.set("training.gradient_accumulation_steps", 4)
        await pilot.click("#probe")
        status = screen.query_one("#probe-status", Static)
        await wait_until(pilot, lambda: status.has_class("-ok") or status.has_class("-error"), timeout=180)
        assert status.has_class("-ok"), str(status.render())
        assert screen.draft.get("training.per_device_train_batch_size") == 8
        assert screen.draft.get("training.gradient_accumulation_steps") == 1
        assert "effective batch of 8 on cpu" in str(status.render())
        assert row(pilot, "training.per_device_train_batch_size").query_one(Input).value == "8"


async def test_review_exports_a_standalone_script_and_never_overwrites(in_workdir: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await to_review(pilot)
        screen = wizard(pilot)
        status = screen.query_one("#save-status", Static)
        await pilot.click("#export-script")
        await wait_until(pilot, lambda: status.has_class("-ok") or status.has_class("-error"), timeout=120)
        assert status.has_class("-ok"), str(status.render())
        script = in_workdir / "train_trainer.py"
        text = script.read_text()
        assert "from transformers import" in text and "import core" not in text and "from core" not in text
        compile(text, str(script), "exec")
        script.write_text("# mine\n")
        await pilot.click("#export-script")
        await wait_until(pilot, lambda: status.has_class("-error"), timeout=120)
        assert "already exists" in str(status.render())
        assert script.read_text() == "# mine\n"


# --- keeping and checking values -------------------------------------------------------------------

async def test_back_keeps_every_value(in_workdir: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await to_training(pilot)
        await type_into(pilot, "training.num_train_epochs", "5")
        await type_into(pilot, "training.learning_rate", "0.0003")
        for expected in ("tokenizer", "dataset", "model", "framework"):
            await pilot.press("ctrl+b")
            await pilot.pause()
            assert current(pilot) == expected
        for _ in range(4):
            await next_step(pilot)
        assert current(pilot) == "training", problems(pilot)
        assert row(pilot, "training.num_train_epochs").editor.value == "5"
        assert row(pilot, "training.learning_rate").editor.value == "0.0003"
        assert row(pilot, "tokenizer.max_length").editor.value == "16"
        assert row(pilot, "data.train_file").editor.value == "reviews.csv"
        assert row(pilot, "model.name_or_path").editor.value == "tiny-bert"
        draft = wizard(pilot).draft
        assert draft.get("training.num_train_epochs") == 5
        assert draft.get("data.validation_fraction") == 0.25


async def test_bad_value_blocks_next_with_the_pydantic_message(in_workdir: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await to_training(pilot)
        await type_into(pilot, "training.learning_rate", "-1")
        lr = row(pilot, "training.learning_rate")
        assert lr.problem == "Input should be greater than 0"
        assert lr.has_class("-invalid")
        await next_step(pilot)
        assert current(pilot) == "training"
        assert "Learning rate: Input should be greater than 0" in problems(pilot)
        # the draft kept the last valid value, and fixing the field lets Next through
        assert wizard(pilot).draft.get("training.learning_rate") == 1e-4
        await type_into(pilot, "training.learning_rate", "0.01")
        await next_step(pilot)
        assert current(pilot) == "review"


async def test_cross_field_rule_blocks_next(in_workdir: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await to_training(pilot)
        evaluate = row(pilot, "training.eval_strategy").editor
        evaluate.value = "steps"  # eval_steps left empty: the schema refuses it
        await pilot.pause()
        await next_step(pilot)
        assert current(pilot) == "training"
        assert "eval_steps is not set" in problems(pilot)


async def test_missing_model_blocks_next(in_workdir: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await next_step(pilot)
        await type_into(pilot, "model.name_or_path", "./no-such-model")
        await next_step(pilot)
        assert current(pilot) == "model"
        assert "does not exist" in problems(pilot)
        info = str(wizard(pilot).query_one("#model-info", Static).render())
        assert info.startswith("✗")


async def test_bad_data_file_blocks_next(in_workdir: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await to_model(pilot)
        await next_step(pilot)
        await type_into(pilot, "data.train_file", "missing.csv")
        await next_step(pilot)
        assert current(pilot) == "dataset"
        assert "missing.csv does not exist" in problems(pilot)


async def test_switching_data_source_keeps_both_and_uses_one(in_workdir: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await to_dataset(pilot)
        draft = wizard(pilot).draft
        wizard(pilot).query_one("#data-source").focus()
        await pilot.press("down", "enter")
        await pilot.pause()
        await type_into(pilot, "data.hub.name", "imdb")
        await pilot.press("enter")  # offline: the Hub cannot be reached, and the UI says so
        await settle(pilot)
        status = str(wizard(pilot).query_one("#data-status", Static).render())
        assert status.startswith("✗") and "imdb" in status
        assert not wizard(pilot).query_one("#data-preview").display  # no stale preview of the local file
        assert draft.get("data.train_file") is None and draft.get("data.hub.name") == "imdb"
        wizard(pilot).query_one("#data-source").focus()
        await pilot.press("up", "enter")
        await pilot.pause()
        assert draft.get("data.hub") is None
        assert draft.get("data.train_file") == "reviews.csv"
        assert row(pilot, "data.train_file").editor.value == "reviews.csv"
        await next_step(pilot)
        assert current(pilot) == "tokenizer", problems(pilot)


async def test_framework_without_its_packages_is_disabled_with_install_hint(
        in_workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = engines_module.installed
    monkeypatch.setattr(engines_module, "installed", lambda m: m != "tensorflow" and real(m))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        from textual.widgets import OptionList

        options = wizard(pilot).query_one("#engine-list", OptionList)
        keras = options.get_option("keras")
        assert keras.disabled
        console = Console(width=200, record=True, file=io.StringIO())
        console.print(keras.prompt)
        assert 'pip install "finetune-tui[keras]"' in console.export_text()
        await pilot.press("down", "down", "down")  # cannot land on it
        assert wizard(pilot).draft.get("engine") == "torch-loop"
        await pilot.press("enter")  # chooses and moves on
        await settle(pilot)
        assert current(pilot) == "model"


async def test_step_list_click_goes_back_but_not_ahead(in_workdir: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await to_dataset(pilot)
        await pilot.click("#step-item-5")
        await settle(pilot)
        assert current(pilot) == "dataset"  # not reached yet
        await pilot.click("#step-item-0")
        await pilot.pause()
        assert current(pilot) == "framework"


# --- prefill from a saved config -------------------------------------------------------------------

async def test_config_prefills_every_step(in_workdir: Path) -> None:
    folder = in_workdir / "configs"
    folder.mkdir(exist_ok=True)
    path = folder / "saved.yaml"
    raw = {
        "engine": "torch-loop",
        "model": {"name_or_path": "tiny-bert"},  # model paths are relative to the working directory
        # relative to the config's folder, as `finetune-tui run` reads it
        "data": {"train_file": "../reviews.csv", "validation_fraction": 0.3, "max_train_samples": 30},
        "tokenizer": {"max_length": 24, "padding": "max_length"},
        "training": {"num_train_epochs": 7, "learning_rate": 0.002, "lora": {"r": 4}},
        "metrics": ["f1"],
    }
    path.write_text(yaml.safe_dump(raw))
    app = make_app(config=load_config(path), config_path=path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert row(pilot, "data.train_file").editor.value == "reviews.csv"
        assert row(pilot, "data.max_train_samples").editor.value == "30"
        assert row(pilot, "tokenizer.max_length").editor.value == "24"
        assert row(pilot, "tokenizer.padding").raw_value() == "max_length"
        assert row(pilot, "training.num_train_epochs").editor.value == "7"
        assert row(pilot, "training.lora.r").editor.value == "4"
        assert wizard(pilot).query_one("#save-path", Input).value == str(path)
        assert wizard(pilot).draft.get("engine") == "torch-loop"
        for _ in range(5):
            await next_step(pilot)
        assert current(pilot) == "review", problems(pilot)
        assert wizard(pilot).query_one("#metrics").selected == ["f1"]
        # The step says why the task's defaults were chosen, and that this config chose otherwise.
        why = str(wizard(pilot).query_one("#task-defaults", Static).render())
        assert "bench/task_defaults.py" in why
        assert "This config sets its own learning_rate, num_train_epochs." in why


async def test_save_refuses_to_overwrite_unless_confirmed(in_workdir: Path) -> None:
    existing = in_workdir / "finetune.yaml"
    existing.write_text("keep me\n")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await to_review(pilot)
        wizard(pilot).query_one("#save").focus()
        await pilot.press("enter")
        await pilot.pause()
        from tui.screens.confirm import ConfirmScreen

        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.pause()
        assert existing.read_text() == "keep me\n"
        assert "Not saved" in str(wizard(pilot).query_one("#save-status", Static).render())
        wizard(pilot).query_one("#save").focus()
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert load_config(existing).model.name_or_path == "tiny-bert"


@pytest.mark.slow
async def test_start_runs_for_real_and_the_monitor_follows_it_to_finished(in_workdir: Path, tiny_model: Path,
                                                                          tmp_path: Path) -> None:
    """No fake start: Start launches the real run process, the monitor follows it to `finished`, and `t` tries the
    model it saved."""
    from tui.screens.monitor import MonitorScreen
    from tui.screens.try_model import TryModelScreen
    from tui.widgets.loss_chart import LossChart
    from tui.widgets.progress_panel import ProgressPanel
    from tui.widgets.results_panel import ResultsPanel

    run = RunDir(tmp_path / "run")
    app = make_app()
    try:
        async with app.run_test(size=SIZE) as pilot:
            await to_review(pilot)
            draft = wizard(pilot).draft
            draft.set("model.name_or_path", str(tiny_model))  # the walk's tiny-bert has no weights to train
            draft.set("output_dir", str(run.path))
            expected = draft.build()
            wizard(pilot).query_one("#start").focus()
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, MonitorScreen), timeout=120)
            monitor = app.screen
            assert isinstance(monitor, MonitorScreen) and monitor.run_dir.path == run.path
            await wait_until(pilot, lambda: monitor.status == "finished", timeout=300)
            events = run.events()
            assert events[-1]["type"] == "finished", run.log_tail()
            assert load_config(run.config_path).model == expected.model
            total = events[0]["total_steps"]
            evals = [e for e in events if e["type"] == "eval" and e["split"] == "validation"]
            chart = monitor.query_one(LossChart)  # 8 steps log no loss (logging_steps 50); each epoch evaluates
            await wait_until(pilot, lambda: chart.eval_points == len(evals) > 0)
            assert monitor.query_one(ProgressPanel).steps_text == f"step {total}/{total}"
            assert str(run.model_dir) in monitor.query_one(ResultsPanel).text.replace("\n ", "")

            await pilot.press("t")
            await wait_until(pilot, lambda: isinstance(app.screen, TryModelScreen))
            trying = app.screen
            assert isinstance(trying, TryModelScreen)
            await wait_until(pilot, lambda: trying.predictor is not None, timeout=60)
            assert trying.labels == ["neg", "pos"]
            await pilot.press(*"i loved it")
            await wait_until(pilot, lambda: trying.shown_for == ("i loved it", None), timeout=60)
            assert sum(trying.answer["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
            await pilot.press("escape")
            await wait_until(pilot, lambda: app.screen is monitor)
    finally:
        run.kill()  # only if an assertion left it running


QUIT_WHILE_CHECKING = """
import time

import tui.screens.steps.model as model_step
from tui.app import make_app


def slow_check(model, task):  # a model check that takes its time, as a slow Hub or a first transformers import does
    time.sleep(20)
    raise RuntimeError("left behind, as it should be")


model_step._inspect = slow_check


async def drive(pilot):
    screen = pilot.app.screen
    await screen.steps_ready()
    await pilot.press("ctrl+n")  # on to the model step, whose check starts on entry
    step = screen.steps[1]
    while not (step._checking is not None and step._checking.is_running):
        await pilot.pause(0.05)
    print("quitting", flush=True)
    await pilot.press("ctrl+q")


make_app().run(headless=True, size=(100, 30), auto_pilot=drive)
print("left", flush=True)
"""


def test_ctrl_q_leaves_at_once_while_the_model_check_runs(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-c", QUIT_WHILE_CHECKING], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "quitting", process.communicate(timeout=60)
        pressed = time.monotonic()
        assert process.stdout.readline().strip() == "left", process.communicate(timeout=60)
        left = time.monotonic() - pressed
        code = process.wait(timeout=60)
        exited = time.monotonic() - pressed
    finally:
        process.kill()
    assert code == 0, process.stderr.read() if process.stderr else ""
    assert left < 1.0, f"the app took {left:.2f} s to leave after ctrl+q"
    # Nor does the interpreter wait for the check on its way out (it would for a non-daemon thread): the rest is
    # the usual teardown, well under the check's 20 s even on a busy machine.
    assert exited < 5.0, f"the process took {exited:.2f} s to end after ctrl+q"


async def test_start_failure_is_shown_and_wizard_stays(in_workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.errors import RunDirError

    def refuse(config: RunConfig, **_: Any) -> RunDir:
        raise RunDirError("output_dir runs/x already exists and is not empty", "choose another output_dir")

    monkeypatch.setattr("core.launch.start_detached", refuse)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await to_review(pilot)
        wizard(pilot).query_one("#start").focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: not wizard(pilot).query_one("#start").disabled)
        assert current(pilot) == "review"
        status = str(wizard(pilot).query_one("#save-status", Static).render())
        assert "could not start: output_dir runs/x already exists" in status


async def test_help_screen_opens_and_closes(in_workdir: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")
        await pilot.pause()
        from tui.screens.help import HelpScreen

        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, WizardScreen)


async def test_monitor_and_runs_modes(tmp_path: Path) -> None:
    from tui.screens.monitor import MonitorScreen
    from tui.screens.runs import RunsScreen

    run = tmp_path / "some-run"
    run.mkdir()
    app = make_app(monitor=run)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, MonitorScreen)
        assert app.screen.run_dir.path == run
    app = make_app(runs_root=tmp_path, show_runs=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)
        assert app.screen.root == tmp_path


def test_css_is_found_from_checkout_and_wheel_locations() -> None:
    import sys

    from tui import css_path

    found = css_path.css_path()
    assert found.name == "screens.css" and found.is_file()
    assert "wizard" in found.read_text()
    assert Path(sys.prefix) / "share" / "finetune-tui" / "screens.css" in css_path.candidates()


# --- snapshots of each step at 100x30 --------------------------------------------------------------

async def to_model_checked(pilot: Pilot[Any]) -> None:
    await to_model(pilot)
    # The model step checks after a pause in typing (a debounce): wait for the check of what was typed, so the
    # snapshot shows its result, not the spinner, however slow the machine.
    step = wizard(pilot).current
    assert isinstance(step, ModelStep)
    await wait_until(pilot, lambda: step.key() in step.findings.model_results)
    await settle(pilot)


NAVIGATE: dict[str, Callable[[Pilot[Any]], Awaitable[None]]] = {
    "model": to_model_checked,
    "dataset": to_dataset,
    "tokenizer": to_tokenizer,
    "training": to_training,
    "review": to_review,
}


async def steady(pilot: Pilot[Any]) -> None:
    """Let tables size themselves and layout settle (a DataTable measures its rows on a later refresh)."""
    for table in wizard(pilot).current.query(DataTable):
        if table.display:
            # rows first, then (on a later refresh, late on a busy machine) the height that shows them
            await wait_until(pilot, lambda t=table: t.row_count > 0 and t.size.height > t.row_count)
    for _ in range(3):
        await pilot.wait_for_scheduled_animations()
        await pilot.pause(0.1)


@pytest.fixture
def no_keras(monkeypatch: pytest.MonkeyPatch) -> None:
    """Snapshots show the same frameworks wherever they run: Keras as not installed, with its hint."""
    real = engines_module.installed
    keras = ("keras", "keras_hub", "tensorflow")
    monkeypatch.setattr(engines_module, "installed", lambda m: m not in keras and real(m))


@pytest.mark.parametrize("step", STEP_NAMES)
def test_step_snapshot(step: str, in_workdir: Path, no_keras: None, snap_compare: Any,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    import core.memory

    # The training step's memory estimate names the machine's free memory: the same figure on every machine here.
    monkeypatch.setattr(core.memory, "free_memory", lambda device: [16 * 2**30])
    monkeypatch.setattr(core.memory, "_device", lambda: "cpu")

    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        no_blink(pilot)
        if step in NAVIGATE:
            await NAVIGATE[step](pilot)
        await settle(pilot)
        wizard(pilot).current.focus_first()
        wizard(pilot).current.scroll_home(animate=False)
        await steady(pilot)

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)


def test_dataset_snapshot_at_80x24(in_workdir: Path, no_keras: None, snap_compare: Any) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        no_blink(pilot)
        await to_dataset(pilot)
        await settle(pilot)
        await steady(pilot)

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=run_before)



async def test_training_step_picks_trackers_and_refuses_one_that_is_not_installed(
        in_workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from textual.widgets import SelectionList

    import core.tracking
    import tui.screens.steps.training as training_step

    ready = ["tensorboard", "mlflow"]  # as if wandb were not installed
    monkeypatch.setattr(core.tracking, "installed_trackers", lambda: list(ready))
    monkeypatch.setattr(training_step, "installed_trackers", lambda: list(ready))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await to_training(pilot)
        screen = wizard(pilot)
        trackers = screen.query_one("#report-to", SelectionList)
        prompts = [str(trackers.get_option_at_index(i).prompt) for i in range(trackers.option_count)]
        assert prompts == ["tensorboard", "mlflow", "wandb (not installed)"]
        trackers.select("mlflow")
        trackers.select("tensorboard")
        await pilot.pause()
        assert screen.draft.build().training.report_to == ["tensorboard", "mlflow"]  # the schema's order
        trackers.select("wandb")
        await pilot.pause()
        await next_step(pilot)
        assert current(pilot) == "training"
        assert 'pip install "finetune-tui[wandb]"' in problems(pilot)
        trackers.deselect("wandb")
        await pilot.pause()
        await next_step(pilot)
        assert current(pilot) == "review", problems(pilot)
        assert screen.draft.build().training.report_to == ["tensorboard", "mlflow"]
