"""Evaluate a saved run on one of its splits: metrics, the task's report (for text-classification a per-class table
and the confusion matrix), the worst mistakes.

The split is rebuilt from the run's own config.yaml with core.data.prepare_data, which is deterministic, so the
validation rows are the ones the run held out. Predictions come from core.predict, the same path `finetune-tui
predict` and the Try-the-model screen use, so what is evaluated is what people will run. At the end of a run the
same files are made from the logits of the engine's own final evaluation instead (evaluate_logits): one pass.
What differs between tasks comes from the run's Task (core.tasks).

Written to <run>/evaluation/<split>/:
    metrics.json       split, task, size, labels, metrics, the task's details (text-classification: per_class,
                       confusion_matrix with rows true and columns predicted), most_wrong count, model, time
    predictions.jsonl  one line per example: index, text[, text_pair], label, predicted and the task's fields
    most_wrong.jsonl   the worst predictions (text-classification: wrong with the highest confidence), worst first
    report.png         loss curves and the task's panel (core.report_png)
and <run>/metrics.json gains "evaluation": {split: {metrics, dir}}, keeping everything already there.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.errors import RunDirError, UserError
from core.rundir import RunDir, read_json, write_json
from core.tasks import DEFAULT_TASK, get_task

SPLITS = ("train", "validation", "test")
MOST_WRONG = 20


class EvaluationError(UserError):
    """A run cannot be evaluated as asked."""


@dataclass
class ClassScores:
    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass
class Evaluation:
    split: str
    labels: list[str]
    size: int
    metrics: dict[str, float]  # the configured metrics, plus loss (the task's evaluation loss)
    per_class: list[ClassScores] = field(default_factory=list)  # text-classification
    confusion: list[list[int]] = field(default_factory=list)  # text-classification: confusion[true][predicted]
    most_wrong: list[dict[str, Any]] = field(default_factory=list)
    directory: Path | None = None
    model: str = ""
    time: float = 0.0
    task: str = DEFAULT_TASK
    details: dict[str, Any] = field(default_factory=dict)  # the task's own report (plain JSON)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"split": self.split, "task": self.task, "size": self.size, "labels": self.labels,
                               "metrics": self.metrics}
        if self.per_class:
            out["per_class"] = {c.label: {k: v for k, v in asdict(c).items() if k != "label"} for c in self.per_class}
        if self.confusion:
            out["confusion_matrix"] = {"labels": self.labels, "rows": "true label", "columns": "predicted label",
                                       "matrix": self.confusion}
        return {**out, **self.details, "most_wrong": len(self.most_wrong), "model": self.model, "time": self.time}

    @classmethod
    def from_dict(cls, data: dict[str, Any], directory: Path | None = None) -> Evaluation:
        per_class = [ClassScores(label=name, **scores) for name, scores in data.get("per_class", {}).items()]
        confusion = data.get("confusion_matrix")
        known = {"split", "task", "size", "labels", "metrics", "per_class", "confusion_matrix", "most_wrong", "model",
                 "time"}
        return cls(split=data["split"], labels=list(data["labels"]), size=int(data["size"]),
                   metrics=dict(data["metrics"]), per_class=per_class,
                   confusion=[list(map(int, row)) for row in confusion["matrix"]] if confusion else [],
                   directory=directory, model=data.get("model", ""), time=data.get("time", 0.0),
                   task=data.get("task", DEFAULT_TASK), details={k: v for k, v in data.items() if k not in known})


# --- scoring (no model, no files) --------------------------------------------------------------------------------

def score(labels: list[str], metric_names: list[str], references: Any, probabilities: Any,
          task: str = DEFAULT_TASK) -> Evaluation:
    """Metrics and the task's report from the stored labels and the scores people read (Task.scores)."""
    return get_task(task).evaluate(labels, metric_names, references, probabilities)


# --- a saved run -------------------------------------------------------------------------------------------------

def evaluate_run(
    run_dir: str | Path, split: str = "validation", *, prepared: Any = None, predictor: Any = None,
    batch_size: int | None = None, limit: int = MOST_WRONG, report: bool = True,
    metrics: dict[str, float] | None = None,
) -> Evaluation:
    """Evaluate the run's saved model on `split` and write the files listed in the module docstring.

    `prepared` (core.data.PreparedData) and `predictor` (core.predict.Predictor) may be passed by a caller that
    already has them, e.g. the run process at the end of training; `metrics`, the engine's, spare a task that keeps
    no outputs (Task.evaluate_model) measuring them again."""
    import numpy as np

    from core.config import load_config

    run = RunDir(run_dir)
    if not run.config_path.exists():
        raise RunDirError(f"{run.path} is not a run directory (no config.yaml in it)",
                          "give a folder that `finetune-tui run` made; `finetune-tui runs` lists them")
    if split not in SPLITS:
        raise EvaluationError(f"split {split!r} is unknown", f"choose one of {', '.join(SPLITS)}")
    config = load_config(run.config_path)
    if prepared is None:
        from core.data import prepare_data

        prepared = prepare_data(config.data, config.task)
    if split not in prepared.dataset:
        raise EvaluationError(f"this run has no {split} data",
                              "set data.test_file (or data.hub.test_split) in the config to evaluate on a test set"
                              if split == "test" else "evaluate the validation split")
    if predictor is None:
        from core.predict import load_predictor

        predictor = load_predictor(run.path)
    ds = prepared.dataset[split]
    pairs = list(ds["text_pair"]) if "text_pair" in ds.column_names else None
    if predictor.task.name != prepared.task:
        raise EvaluationError(f"the model was trained for {predictor.task.name}, but the run's config says "
                              f"task: {prepared.task}", "evaluate the model on the run it came from")
    own = predictor.task.for_run(config).evaluate_model(predictor, prepared, split, config.metrics, metrics, limit)
    if own is not None:  # a task that keeps no outputs (text-generation): its metrics and answers
        ev, rows = own
        ev.model, ev.time = str(getattr(predictor, "path", run.model_dir)), round(time.time(), 3)
        _write(run, ev, rows, report=report)
        return ev
    scores = _in_run_order(np.asarray(predictor.scores(
        list(ds["text"]), pairs, batch_size=batch_size or config.training.per_device_eval_batch_size)),
        predictor.labels, list(prepared.label_names))
    return _evaluate(run, split, config.metrics, prepared, scores, str(getattr(predictor, "path", run.model_dir)),
                     limit=limit, report=report, meta=getattr(predictor, "meta", None))


def evaluate_logits(run_dir: str | Path, split: str, prepared: Any, logits: Any, metric_names: list[str], *,
                    loss: float | None = None, report: bool = True) -> Evaluation:
    """The same files from the logits a run's own final evaluation produced (rows in the split's order), so the end
    of a run passes over the data once. `loss` is the engine's, so the report and the run's metrics agree."""
    run = RunDir(run_dir)
    task = get_task(prepared.task)
    scores = task.scores(task.outputs_as_saved(logits, prepared))
    from core.tasks.model_meta import read_meta

    meta = read_meta(run.model_dir, list(prepared.label_names))  # the saved model's task.json (e.g. its thresholds)
    return _evaluate(run, split, metric_names, prepared, scores, str(run.model_dir), report=report, loss=loss,
                     meta=meta)


def _evaluate(run: RunDir, split: str, metric_names: list[str], prepared: Any, scores: Any, model: str, *,
              limit: int = MOST_WRONG, report: bool, loss: float | None = None,
              meta: dict[str, Any] | None = None) -> Evaluation:
    task = get_task(prepared.task).for_model(meta or {})  # read as the model answers (Task.for_model)
    ds = prepared.dataset[split]
    texts = list(ds["text"])
    pairs = list(ds["text_pair"]) if "text_pair" in ds.column_names else None
    references = task.references(list(ds["label"]))
    names = list(prepared.label_names)
    ev = task.evaluate(names, metric_names, references, scores)
    if loss is not None:
        ev.metrics["loss"] = float(loss)
    ev.split, ev.model, ev.time = split, model, round(time.time(), 3)

    def example(i: int) -> dict[str, Any]:
        row: dict[str, Any] = {"index": i, "text": texts[i]}
        if pairs is not None:
            row["text_pair"] = pairs[i]
        return row | task.example(names, references[i], scores[i])

    ev.most_wrong = [example(i) | extra for i, extra in task.most_wrong(references, scores, limit)]
    _write(run, ev, (example(i) for i in range(len(texts))), report=report)
    return ev


def write_report_png(run_dir: str | Path, ev: Evaluation) -> None:
    """report.png of a written evaluation: loss curves and the task's panel (core.report_png)."""
    from core.report_png import write_report

    run = RunDir(run_dir)
    write_report(evaluation_dir(run.path, ev.split) / "report.png", run.events(), ev)


def _in_run_order(probs: Any, model_labels: list[str], run_labels: list[str]) -> Any:
    """Columns reordered to the run's label order (a model saved elsewhere may list them differently)."""
    model_labels = list(model_labels)
    if probs.ndim == 1:  # one score per row: nothing to reorder
        return probs
    if model_labels == run_labels:
        return probs
    missing = [name for name in run_labels if name not in model_labels]
    if missing or len(model_labels) != len(run_labels):
        raise EvaluationError(
            f"the model predicts {model_labels} but the data has the classes {run_labels}",
            "evaluate the model on data with the classes it was trained on",
        )
    return probs[:, [model_labels.index(name) for name in run_labels]]


def evaluation_dir(run_dir: str | Path, split: str) -> Path:
    return Path(run_dir) / "evaluation" / split


def _write(run: RunDir, ev: Evaluation, rows: Any, *, report: bool) -> None:
    out = evaluation_dir(run.path, ev.split)
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "metrics.json", ev.to_dict())
        _write_jsonl(out / "predictions.jsonl", rows)
        _write_jsonl(out / "most_wrong.jsonl", ev.most_wrong)
        summary = read_json(run.metrics_path)
        summary.setdefault("evaluation", {})[ev.split] = {"metrics": ev.metrics, "dir": str(out.relative_to(run.path))}
        write_json(run.metrics_path, summary)
    except OSError as err:
        raise RunDirError(f"cannot write the evaluation into {out}: {err.strerror}",
                          "check free space and permissions of the run directory") from None
    ev.directory = out
    if report:
        write_report_png(run.path, ev)


def _write_jsonl(path: Path, rows: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)


def load_evaluation(run_dir: str | Path, split: str = "validation") -> Evaluation | None:
    """A written evaluation (with its most-wrong list), or None when there is none (yet)."""
    directory = evaluation_dir(run_dir, split)
    data = read_json(directory / "metrics.json")
    if not data:
        return None
    try:
        ev = Evaluation.from_dict(data, directory)
    except (KeyError, TypeError, ValueError):
        return None
    path = directory / "most_wrong.jsonl"
    if path.exists():
        lines = path.read_text(encoding="utf-8").splitlines()
        ev.most_wrong = [json.loads(line) for line in lines if line.strip()]
    return ev


# --- plain text ----------------------------------------------------------------------------------------------------

def format_evaluation(ev: Evaluation, examples: int = 5) -> str:
    """Metrics, the task's report (text-classification: per-class table, confusion matrix) and the worst
    predictions, for a terminal."""
    task = get_task(ev.task)
    lines = [f"{ev.split}: {ev.size} examples"]
    lines += [f"  {name:<22} {value:.4f}" for name, value in ev.metrics.items()]
    for section in task.report_sections(ev):
        lines.append("")
        if section.title:
            lines.append(section.title)
        lines += [f"  {text}" for text, _ in section.lines]
    if ev.most_wrong and examples > 0:
        lines += ["", f"{task.mistakes_title()} (of {len(ev.most_wrong)} saved):"]
        for row in ev.most_wrong[:examples]:
            text = row["text"] + (f" || {row['text_pair']}" if "text_pair" in row else "")
            text = text if len(text) <= 90 else text[:87] + "..."
            lines.append(f"  {task.mistake_line(row)}: {text}")
    if ev.directory is not None:
        lines += ["", f"saved in {ev.directory}"]
    return "\n".join(lines)
