"""Evaluate a saved run on one of its splits: metrics, a per-class table, the confusion matrix, the worst mistakes.

The split is rebuilt from the run's own config.yaml with core.data.prepare_data, which is deterministic, so the
validation rows are the ones the run held out. Predictions come from core.predict, the same path `finetune-tui
predict` and the Try-the-model screen use, so what is evaluated is what people will run. At the end of a run the
same files are made from the logits of the engine's own final evaluation instead (evaluate_logits): one pass.

Written to <run>/evaluation/<split>/:
    metrics.json       split, size, labels, metrics, per_class, confusion_matrix (rows: true label, columns:
                       predicted), most_wrong count, model, time
    predictions.jsonl  one line per example: index, text[, text_pair], label, predicted, correct, probabilities
    most_wrong.jsonl   the wrong predictions made with the highest confidence, most confident first
    report.png         loss curves and the confusion matrix (core.report_png)
and <run>/metrics.json gains "evaluation": {split: {metrics, dir}}, keeping everything already there.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.errors import RunDirError, UserError
from core.rundir import RunDir, write_json

SPLITS = ("train", "validation", "test")
MOST_WRONG = 20
_PROB_DIGITS = 6


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
    metrics: dict[str, float]  # the configured metrics, plus loss (mean cross-entropy)
    per_class: list[ClassScores]
    confusion: list[list[int]]  # confusion[true][predicted]
    most_wrong: list[dict[str, Any]] = field(default_factory=list)
    directory: Path | None = None
    model: str = ""
    time: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split, "size": self.size, "labels": self.labels, "metrics": self.metrics,
            "per_class": {c.label: {k: v for k, v in asdict(c).items() if k != "label"} for c in self.per_class},
            "confusion_matrix": {"labels": self.labels, "rows": "true label", "columns": "predicted label",
                                 "matrix": self.confusion},
            "most_wrong": len(self.most_wrong), "model": self.model, "time": self.time,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], directory: Path | None = None) -> Evaluation:
        per_class = [ClassScores(label=name, **scores) for name, scores in data.get("per_class", {}).items()]
        return cls(split=data["split"], labels=list(data["labels"]), size=int(data["size"]),
                   metrics=dict(data["metrics"]), per_class=per_class,
                   confusion=[list(map(int, row)) for row in data["confusion_matrix"]["matrix"]],
                   directory=directory, model=data.get("model", ""), time=data.get("time", 0.0))


# --- scoring (no model, no files) --------------------------------------------------------------------------------

def score(labels: list[str], metric_names: list[str], references: Any, probabilities: Any) -> Evaluation:
    """Metrics, per-class scores and confusion matrix from true class ids and predicted probabilities [n, classes]."""
    import numpy as np
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    from core.metrics import Metrics

    refs = np.asarray(references, dtype=np.int64)
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.ndim != 2 or probs.shape != (len(refs), len(labels)):
        raise ValueError(f"probabilities have shape {probs.shape}; expected ({len(refs)}, {len(labels)})")
    preds = probs.argmax(axis=1)
    metrics = Metrics(metric_names, len(labels)).compute(predictions=preds, references=refs) if len(refs) else {}
    true_p = probs[np.arange(len(refs)), refs] if len(refs) else np.array([])
    # Trainer's eval loss is the mean cross-entropy; probabilities that underflowed to 0 would make it infinite.
    metrics["loss"] = float(-np.log(np.clip(true_p, 1e-12, 1.0)).mean()) if len(refs) else math.nan
    ids = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(refs, preds, labels=ids, zero_division=0)
    per_class = [ClassScores(name, float(p), float(r), float(f), int(s))
                 for name, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)]
    matrix = confusion_matrix(refs, preds, labels=ids).tolist() if len(refs) else [[0] * len(ids) for _ in ids]
    return Evaluation(split="", labels=list(labels), size=len(refs), metrics=metrics, per_class=per_class,
                      confusion=matrix)


def most_wrong(references: Any, probabilities: Any, limit: int = MOST_WRONG) -> list[tuple[int, int, float]]:
    """(row, predicted class, confidence) of wrong predictions, the most confident first."""
    import numpy as np

    refs = np.asarray(references, dtype=np.int64)
    probs = np.asarray(probabilities, dtype=np.float64)
    if not len(refs):
        return []
    preds = probs.argmax(axis=1)
    confidence = probs[np.arange(len(refs)), preds]
    wrong = np.flatnonzero(preds != refs)
    order = wrong[np.argsort(-confidence[wrong], kind="stable")][:limit]
    return [(int(i), int(preds[i]), float(confidence[i])) for i in order]


# --- a saved run -------------------------------------------------------------------------------------------------

def evaluate_run(
    run_dir: str | Path, split: str = "validation", *, prepared: Any = None, predictor: Any = None,
    batch_size: int | None = None, limit: int = MOST_WRONG, report: bool = True,
) -> Evaluation:
    """Evaluate the run's saved model on `split` and write the files listed in the module docstring.

    `prepared` (core.data.PreparedData) and `predictor` (core.predict.Predictor) may be passed by a caller that
    already has them, e.g. the run process at the end of training."""
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

        prepared = prepare_data(config.data)
    if split not in prepared.dataset:
        raise EvaluationError(f"this run has no {split} data",
                              "set data.test_file (or data.hub.test_split) in the config to evaluate on a test set"
                              if split == "test" else "evaluate the validation split")
    if predictor is None:
        from core.predict import load_predictor

        predictor = load_predictor(run.path)
    ds = prepared.dataset[split]
    pairs = list(ds["text_pair"]) if "text_pair" in ds.column_names else None
    probs = _in_run_order(np.asarray(predictor.predict_proba(
        list(ds["text"]), pairs, batch_size=batch_size or config.training.per_device_eval_batch_size)),
        predictor.labels, list(prepared.label_names))
    return _evaluate(run, split, config.metrics, prepared, probs, str(getattr(predictor, "path", run.model_dir)),
                     limit=limit, report=report)


def evaluate_logits(run_dir: str | Path, split: str, prepared: Any, logits: Any, metric_names: list[str], *,
                    loss: float | None = None, report: bool = True) -> Evaluation:
    """The same files from the logits a run's own final evaluation produced (rows in the split's order), so the end
    of a run passes over the data once. `loss` is the engine's, so the report and the run's metrics agree."""
    import numpy as np

    run = RunDir(run_dir)
    scores = np.asarray(logits, dtype=np.float64)
    scores = np.exp(scores - scores.max(axis=1, keepdims=True))
    probs = scores / scores.sum(axis=1, keepdims=True)
    return _evaluate(run, split, metric_names, prepared, probs, str(run.model_dir), report=report, loss=loss)


def _evaluate(run: RunDir, split: str, metric_names: list[str], prepared: Any, probs: Any, model: str, *,
              limit: int = MOST_WRONG, report: bool, loss: float | None = None) -> Evaluation:
    import numpy as np

    ds = prepared.dataset[split]
    texts = list(ds["text"])
    pairs = list(ds["text_pair"]) if "text_pair" in ds.column_names else None
    references = np.asarray(ds["label"], dtype=np.int64)
    names = list(prepared.label_names)
    ev = score(names, metric_names, references, probs)
    if loss is not None:
        ev.metrics["loss"] = float(loss)
    ev.split, ev.model, ev.time = split, model, round(time.time(), 3)
    ev.most_wrong = [_example(i, texts, pairs, names, references[i], probs[i]) | {"confidence": round(conf, 6)}
                     for i, _, conf in most_wrong(references, probs, limit)]
    _write(run, ev, texts, pairs, references, probs, report=report)
    return ev


def write_report_png(run_dir: str | Path, ev: Evaluation) -> None:
    """report.png of a written evaluation: loss curves and the confusion matrix (core.report_png)."""
    from core.report_png import write_report

    run = RunDir(run_dir)
    write_report(evaluation_dir(run.path, ev.split) / "report.png", run.events(), ev)


def _in_run_order(probs: Any, model_labels: list[str], run_labels: list[str]) -> Any:
    """Columns reordered to the run's label order (a model saved elsewhere may list them differently)."""
    model_labels = list(model_labels)
    if model_labels == run_labels:
        return probs
    missing = [name for name in run_labels if name not in model_labels]
    if missing or len(model_labels) != len(run_labels):
        raise EvaluationError(
            f"the model predicts {model_labels} but the data has the classes {run_labels}",
            "evaluate the model on data with the classes it was trained on",
        )
    return probs[:, [model_labels.index(name) for name in run_labels]]


def _example(i: int, texts: list[str], pairs: list[str] | None, names: list[str], ref: int, probs: Any) -> dict:
    row: dict[str, Any] = {"index": i, "text": texts[i]}
    if pairs is not None:
        row["text_pair"] = pairs[i]
    predicted = int(probs.argmax())
    row.update(label=names[int(ref)], predicted=names[predicted], correct=predicted == int(ref),
               probabilities={name: round(float(p), _PROB_DIGITS) for name, p in zip(names, probs, strict=True)})
    return row


def evaluation_dir(run_dir: str | Path, split: str) -> Path:
    return Path(run_dir) / "evaluation" / split


def _write(run: RunDir, ev: Evaluation, texts: list[str], pairs: list[str] | None, references: Any, probs: Any,
           *, report: bool) -> None:
    out = evaluation_dir(run.path, ev.split)
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "metrics.json", ev.to_dict())
        _write_jsonl(out / "predictions.jsonl",
                     (_example(i, texts, pairs, ev.labels, references[i], probs[i]) for i in range(len(texts))))
        _write_jsonl(out / "most_wrong.jsonl", ev.most_wrong)
        summary = _read_json(run.metrics_path)
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


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def load_evaluation(run_dir: str | Path, split: str = "validation") -> Evaluation | None:
    """A written evaluation (with its most-wrong list), or None when there is none (yet)."""
    directory = evaluation_dir(run_dir, split)
    data = _read_json(directory / "metrics.json")
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
    """Metrics, the per-class table, the confusion matrix and the worst mistakes, for a terminal."""
    lines = [f"{ev.split}: {ev.size} examples"]
    lines += [f"  {name:<22} {value:.4f}" for name, value in ev.metrics.items()]
    width = max([len(c.label) for c in ev.per_class] + [5])
    lines += ["", f"  {'class':<{width}}  precision  recall      f1  support"]
    lines += [f"  {c.label:<{width}}  {c.precision:9.4f}  {c.recall:6.4f}  {c.f1:6.4f}  {c.support:7d}"
              for c in ev.per_class]
    lines += ["", "confusion matrix (rows: true label, columns: predicted)"]
    short = [name[:10] for name in ev.labels]
    cell = max([len(s) for s in short] + [len(str(n)) for row in ev.confusion for n in row])
    lines.append("  " + " " * width + " " + " ".join(f"{s:>{cell}}" for s in short))
    for name, row in zip(ev.labels, ev.confusion, strict=True):
        lines.append(f"  {name:<{width}} " + " ".join(f"{n:>{cell}}" for n in row))
    if ev.most_wrong and examples > 0:
        lines += ["", f"most confident mistakes (of {len(ev.most_wrong)} saved):"]
        for row in ev.most_wrong[:examples]:
            text = row["text"] + (f" || {row['text_pair']}" if "text_pair" in row else "")
            text = text if len(text) <= 90 else text[:87] + "..."
            lines.append(f"  {row['confidence']:.3f} {row['predicted']} (true: {row['label']}): {text}")
    if ev.directory is not None:
        lines += ["", f"saved in {ev.directory}"]
    return "\n".join(lines)
