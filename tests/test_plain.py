"""Plain mode (`finetune-tui init --plain`): the wizard's questions as prompts, answered here by a script,
and once through real questionary prompts fed from a pipe."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from core.config import load_config
from tests.fixtures_model import in_workdir_fixture, workdir_fixture  # noqa: F401
from tui.draft import Draft
from tui.plain import Cancelled, Option, Question, questionary_ask, run_plain


class Script:
    """Answers by question key (a list answers the same question again, in order); the rest keep the default."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = {k: list(v) if isinstance(v, list) else [v] for k, v in answers.items()}
        self.asked: list[Question] = []

    def __call__(self, question: Question) -> Any:
        self.asked.append(question)
        queue = self.answers.get(question.key)
        if queue:
            return queue.pop(0) if len(queue) > 1 else queue[0]
        return question.default


BASIC = {
    "model.name_or_path": "tiny-bert",
    "data.train_file": "reviews.csv",
    "data.validation_fraction": "0.25",
    "tokenizer.max_length": "16",
    "training.num_train_epochs": "2",
    "training.learning_rate": "0.001",
    "training.per_device_train_batch_size": "8",
}


def test_answers_become_the_same_config_as_the_wizard_writes(in_workdir: Path) -> None:
    script = Script(BASIC)
    lines: list[str] = []
    out = run_plain(in_workdir / "plain.yaml", ask=script, echo=lines.append)
    config = load_config(out)
    assert config.model.name_or_path == "tiny-bert"
    assert str(config.data.train_file) == "reviews.csv"
    # column mapping defaulted from the data's suggestion, as in the wizard
    assert (config.data.text_column, config.data.text_pair_column, config.data.label_column) == ("text", None, "label")
    assert config.data.validation_fraction == 0.25
    assert config.tokenizer.max_length == 16
    assert config.training.num_train_epochs == 2
    assert config.training.learning_rate == 0.001
    assert config.training.per_device_train_batch_size == 8
    # untouched answers are the wizard's defaults (one Draft for both)
    assert config.training.eval_strategy == Draft().get("training.eval_strategy")
    assert config.engine == "trainer"
    text = "\n".join(lines)
    assert "BertModel" in text and "tokens per example" in text
    assert "finetune-tui run" in text
    keys = [q.key for q in script.asked]
    assert keys.index("engine") < keys.index("model.name_or_path") < keys.index("data.train_file") \
        < keys.index("tokenizer.max_length") < keys.index("training.num_train_epochs")
    # every prompt carries the field's one-line help from core.config
    lr = next(q for q in script.asked if q.key == "training.learning_rate")
    assert lr.help == "Peak learning rate of AdamW."


def test_bad_answers_are_asked_again_with_the_reason(in_workdir: Path) -> None:
    script = Script({**BASIC,
                     "model.name_or_path": ["./no-such-model", "tiny-bert"],
                     "data.train_file": ["missing.csv", "reviews.csv"],
                     "training.learning_rate": ["-1", "abc", "0.002"]})
    lines: list[str] = []
    out = run_plain(in_workdir / "plain.yaml", ask=script, echo=lines.append)
    text = "\n".join(lines)
    assert "model directory ./no-such-model does not exist" in text
    assert "missing.csv does not exist" in text
    assert "Input should be greater than 0" in text
    assert "Input should be a valid number" in text
    assert load_config(out).training.learning_rate == 0.002
    assert sum(q.key == "training.learning_rate" for q in script.asked) == 3


def test_existing_file_is_kept_unless_confirmed(in_workdir: Path) -> None:
    target = in_workdir / "plain.yaml"
    target.write_text("keep me\n")
    with pytest.raises(Cancelled):
        run_plain(target, ask=Script({**BASIC, "overwrite": False}), echo=lambda _: None)
    assert target.read_text() == "keep me\n"
    run_plain(target, ask=Script({**BASIC, "overwrite": True}), echo=lambda _: None)
    assert load_config(target).tokenizer.max_length == 16


def test_uninstalled_framework_is_offered_disabled(in_workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import core.engines as engines_module

    monkeypatch.setattr(engines_module, "installed", lambda m: m not in ("keras", "keras_hub", "tensorflow"))
    script = Script(BASIC)
    run_plain(in_workdir / "plain.yaml", ask=script, echo=lambda _: None)
    engine = next(q for q in script.asked if q.key == "engine")
    keras = next(c for c in engine.choices if c.value == "keras")
    assert keras.disabled == 'not installed: pip install "finetune-tui[keras]"'


# --- the default path: real questionary prompts ----------------------------------------------------

@pytest.fixture
def keys() -> Iterator[Any]:
    """A pipe that stands in for the keyboard of every questionary prompt in the test."""
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        yield pipe


CLEAR = "\x15"  # ctrl+u: delete the default text before the cursor
DOWN = "\x1b[B"


def test_questionary_select_and_text_with_validation(keys: Any) -> None:
    keys.send_text(DOWN + "\r")
    picked = questionary_ask(Question("x", "Pick", "select", default="a",
                                      choices=[Option("A", "a"), Option("B", "b"), Option("C", "c")]))
    assert picked == "b"
    # "-1" is refused by the validator, so the prompt stays; the corrected answer is taken
    keys.send_text(CLEAR + "-1\r" + CLEAR + "0.5\r")
    answer = questionary_ask(Question("y", "Rate", "text", default="1",
                                      validate=lambda t: None if float(t) > 0 else "must be above 0"))
    assert answer == "0.5"


def test_run_plain_through_questionary(in_workdir: Path, keys: Any) -> None:
    typed = {
        "model.name_or_path": CLEAR + "tiny-bert\r",
        "data.train_file": CLEAR + "reviews.csv\r",
        "data.validation_fraction": CLEAR + "0.25\r",
        "tokenizer.max_length": CLEAR + "16\r",
        "training.num_train_epochs": CLEAR + "2\r",
    }

    def type_then_ask(question: Question) -> Any:
        # Keys go in just before each prompt reads them: all at once, an early prompt would swallow them.
        keys.send_text(typed.get(question.key, "\r"))  # Enter keeps the default
        return questionary_ask(question)

    out = run_plain(in_workdir / "plain.yaml", ask=type_then_ask, echo=lambda _: None)
    config = load_config(out)
    assert config.model.name_or_path == "tiny-bert"
    assert config.data.label_column == "label"
    assert config.data.validation_fraction == 0.25
    assert config.tokenizer.max_length == 16
    assert config.training.num_train_epochs == 2
