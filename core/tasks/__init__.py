"""The tasks finetune-tui trains, one folder each: what differs between tasks lives there and nowhere else.

The registry below is plain data, cheap to import (the config and the wizard's first frame read it): a task's
module, with its torch, numpy and datasets work inside functions, loads on first use through get_task. Engines, the
worker, evaluation, predict and export ask the Task (core.tasks.base) and never branch on its name.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.errors import ConfigError

if TYPE_CHECKING:
    from core.tasks.base import Task


@dataclass(frozen=True)
class TaskInfo:
    name: str  # the config's `task:` value
    title: str
    when: str  # one line on when to pick it, for the wizard
    module: str  # holds TASK, the Task instance
    # What a config that leaves these training keys out trains with: chosen per task by bench/task_defaults.py's
    # sweep (tests/test_task_defaults.py checks they are the values bench/results.json records), because one set of
    # defaults does not learn every task.
    training_defaults: Mapping[str, Any] = field(default_factory=dict)
    defaults_why: str = ""  # the sweep's finding in a sentence, for the wizard
    # Defaults the task's shape calls for rather than a sweep (dotted config path -> value), applied the same way:
    # text-generation trains LoRA adapters on long sequences in small batches.
    shape_defaults: Mapping[str, Any] = field(default_factory=dict)


TASKS: dict[str, TaskInfo] = {
    "text-classification": TaskInfo(
        "text-classification", "Text classification",
        "One class per text or text pair: sentiment, topic, intent, paraphrase or not.",
        "core.tasks.text_classification",
        {"learning_rate": 1e-4, "num_train_epochs": 3, "warmup_ratio": 0.0},
        "A small encoder such as the bundled one learns classes faster at 1e-4 than at the 5e-5 tuned for BERT-base: "
        "on 1,000 human-rated words (VADER, as negative / neutral / positive) 1e-4 for 3 epochs beat 5e-5 for 3 "
        "(validation accuracy 0.73 vs 0.67, test 0.725 vs 0.708), chosen by bench/task_defaults.py.",
    ),
    "text-regression": TaskInfo(
        "text-regression", "Text regression",
        "A number per text or text pair: a rating, a similarity score (STS-B), a grade.",
        "core.tasks.text_regression",
        {"learning_rate": 1e-4, "num_train_epochs": 6, "warmup_ratio": 0.1},
        "One output trained with MSE learns slower than a softmax: on 1,000 human-rated words (VADER) with the "
        "bundled model, 1e-4 for 6 epochs with 10% warmup beat the one-size 5e-5 for 3 (test Pearson 0.823 vs "
        "0.798), chosen by bench/task_defaults.py.",
    ),
    "token-classification": TaskInfo(
        "token-classification", "Token classification",
        "A tag per word: named entities (people, places), chunks; CoNLL files or lists of words and tags.",
        "core.tasks.token_classification",
    ),
    "multi-label-classification": TaskInfo(
        "multi-label-classification", "Multi-label classification",
        "Any number of labels per text, each yes or no: tags, topics, emotions, toxicity types.",
        "core.tasks.multi_label",
        {"learning_rate": 2e-4, "num_train_epochs": 6, "warmup_ratio": 0.0, "threshold": 0.5},
        "Rare labels pull every sigmoid towards no: on 1,500 words with 10 emotion labels (NRC EmoLex) with the "
        "bundled model, 2e-4 for 6 epochs beat the one-size 5e-5 for 3 (test F1 micro 0.533 vs 0.318), chosen by "
        "bench/task_defaults.py; a tuned threshold (auto) did no better there.",
    ),
    "text-generation": TaskInfo(
        "text-generation", "Text generation (instruction tuning)",
        "A decoder LLM (Llama, Qwen, SmolLM, GPT-2) taught to answer: instruction or chat data, or plain text.",
        "core.tasks.text_generation",
        shape_defaults={
            # LoRA on every linear layer (QLoRA's finding: adapting all of them matches full fine-tuning where
            # attention alone does not), at the learning rate LoRA recipes use (TRL's and the QLoRA paper's 2e-4).
            "training.lora": {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": ["all-linear"]},
            "training.learning_rate": 2e-4,
            "training.per_device_train_batch_size": 4,
            "training.per_device_eval_batch_size": 8,
            "tokenizer.max_length": 1024,
        },
    ),
}
DEFAULT_TASK = "text-classification"
_loaded: dict[str, Task] = {}


def check_task_name(name: str) -> str:
    if name not in TASKS:
        raise ConfigError(f"task {name!r} is unknown", f"choose one of {', '.join(TASKS)}")
    return name


def get_task(name: str) -> Task:
    """The Task for a config's `task:` value (imported on first use)."""
    task = _loaded.get(name)
    if task is None:
        task = importlib.import_module(TASKS[check_task_name(name)].module).TASK
        _loaded[name] = task
    return task


def task_defaults(name: str) -> dict[str, Any]:
    """Every default a task gives a config that leaves the setting out, as dotted path -> value: the swept
    training_defaults and the shape_defaults."""
    info = TASKS[check_task_name(name)]
    return {**{f"training.{k}": v for k, v in info.training_defaults.items()}, **info.shape_defaults}
