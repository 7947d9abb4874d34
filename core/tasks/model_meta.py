"""task.json beside a saved model: which task made it and what its outputs mean, for predict and evaluation.

Every engine writes it (Task.model_meta). A model directory without one is read as its config says: transformers'
config.json `problem_type` names the task (a regression head says "regression"), else text-classification, as
every finetune-tui model was before tasks existed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.tasks import DEFAULT_TASK, TASKS
from core.tasks.base import TASK_FILE

_BY_PROBLEM_TYPE = {"regression": "text-regression", "single_label_classification": "text-classification",
                    "multi_label_classification": "multi-label-classification"}


def write_meta(model_dir: Path, meta: dict[str, Any]) -> Path:
    path = model_dir / TASK_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    tmp.replace(path)
    return path


def read_meta(model_dir: Path, labels: list[str]) -> dict[str, Any]:
    """The model's task.json; for a directory without one, its task from config.json and `labels` (the names the
    model's own files give its outputs)."""
    from core.errors import ModelError

    path = model_dir / TASK_FILE
    if path.is_file():
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise ModelError(f"{path} cannot be read: {err}", "give the model/ directory of a finished run") from None
        if not isinstance(meta, dict) or meta.get("task") not in TASKS:
            raise ModelError(f"{path} does not name a task this finetune-tui knows ({', '.join(TASKS)})",
                             "upgrade finetune-tui, or give the model/ directory of a finished run")
        return meta
    task = DEFAULT_TASK
    config = model_dir / "config.json"
    if config.is_file():
        try:
            problem = json.loads(config.read_text(encoding="utf-8")).get("problem_type")
        except (OSError, json.JSONDecodeError):
            problem = None
        task = _BY_PROBLEM_TYPE.get(problem or "", DEFAULT_TASK)
    return {"task": task, "labels": labels}
