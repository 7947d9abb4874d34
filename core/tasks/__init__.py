"""The tasks finetune-tui trains, one folder each: what differs between tasks lives there and nowhere else.

The registry below is plain data, cheap to import (the config and the wizard's first frame read it): a task's
module, with its torch, numpy and datasets work inside functions, loads on first use through get_task. Engines, the
worker, evaluation, predict and export ask the Task (core.tasks.base) and never branch on its name.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.errors import ConfigError

if TYPE_CHECKING:
    from core.tasks.base import Task


@dataclass(frozen=True)
class TaskInfo:
    name: str  # the config's `task:` value
    title: str
    when: str  # one line on when to pick it, for the wizard
    module: str  # holds TASK, the Task instance


TASKS: dict[str, TaskInfo] = {
    "text-classification": TaskInfo(
        "text-classification", "Text classification",
        "One class per text or text pair: sentiment, topic, intent, paraphrase or not.",
        "core.tasks.text_classification",
    ),
    "text-regression": TaskInfo(
        "text-regression", "Text regression",
        "A number per text or text pair: a rating, a similarity score (STS-B), a grade.",
        "core.tasks.text_regression",
    ),
    "multi-label-classification": TaskInfo(
        "multi-label-classification", "Multi-label classification",
        "Any number of labels per text, each yes or no: tags, topics, emotions, toxicity types.",
        "core.tasks.multi_label",
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
