"""multi-label-classification: any number of labels per text (tags, topics, emotions), each one a yes/no decision.

Labels are read per row as a list, a delimited string or several 0/1 columns (labels.py) and stored as a multi-hot
float32 vector; the head is transformers' `problem_type: multi_label_classification` (BCE with logits, one sigmoid
per label), class weights are BCE's pos_weight per label. A label is predicted when its probability reaches its
threshold: training.threshold during training, and with `auto` one threshold per label tuned on the final validation
outputs (after_training), saved in task.json for predict and the evaluation report. The numeric pieces are in
shared.py, which exported scripts inline.
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any, ClassVar

from core.tasks.base import Grid, LabelEncoding, LabelOverview, ReportSection, Task, TryView, WizardField, report_title
from core.tasks.multi_label import shared

if TYPE_CHECKING:
    import numpy as np

    from core.config import DataConfig, RunConfig
    from core.data.arrow import SplitSource
    from core.data.inspection import ColumnInfo
    from core.data.prepare import PreparedData
    from core.evaluation import Evaluation

_DIGITS = 6
_NAMES_SHOWN = 20


class MultiLabelClassification(Task):
    name = "multi-label-classification"
    title = "Multi-label classification"
    wizard_fields = (
        WizardField("data.label_columns", "Label columns", "dataset", placeholder="e.g. toxic, insult (0/1 columns)"),
        WizardField("data.label_separator", "Label separator", "dataset", placeholder="auto: , ; or |"),
        WizardField("data.label_names", "Label names", "dataset", placeholder="for integer ids: e.g. joy, anger"),
        WizardField("training.threshold", "Threshold", "training", placeholder="0.5, or auto (tuned per label)"),
        WizardField("training.class_weights", "Label weights", "training",
                    placeholder="none; auto: negatives / positives per label"),
    )
    metric_names = shared.MULTI_LABEL_METRICS
    default_metrics = shared.MULTI_LABEL_METRICS
    problem_type = "multi_label_classification"
    pipeline_kwargs: ClassVar[dict[str, Any]] = {"function_to_apply": "sigmoid", "top_k": None}
    label_dtype = "float32"
    unused_settings: ClassVar[dict[str, tuple[Any, str]]] = {
        "data.label_scaling": ("none", "scales the scores of text-regression"),
    }

    def __init__(self) -> None:
        self.threshold = shared.DEFAULT_THRESHOLD  # for every label without a threshold of its own
        self.thresholds: dict[str, float] = {}  # a saved model's, per label name

    # --- config --------------------------------------------------------------------------------------------------
    def check_config(self, config: RunConfig) -> None:
        super().check_config(config)
        data = config.data
        if data.label_columns and data.label_column is not None:
            raise ValueError("data.label_column and data.label_columns both say where the labels are; set "
                             "data.label_column: null to use the 0/1 columns, or data.label_columns: null")
        if data.label_columns and data.label_names is not None:
            raise ValueError("data.label_names names label ids, and with data.label_columns the columns' names are "
                             "the labels' names; set data.label_names: null")
        if data.label_columns and data.label_separator is not None:
            raise ValueError("data.label_separator splits text labels, and data.label_columns holds 0/1 columns; set "
                             "data.label_separator: null")

    def for_run(self, config: RunConfig) -> MultiLabelClassification:
        bound = copy.copy(self)
        setting = config.training.threshold
        bound.threshold = shared.DEFAULT_THRESHOLD if setting == "auto" else float(setting)
        bound.thresholds = {}
        return bound

    def for_model(self, meta: dict[str, Any]) -> MultiLabelClassification:
        bound = copy.copy(self)
        bound.thresholds = {str(k): float(v) for k, v in (meta.get("thresholds") or {}).items()}
        return bound

    def _thresholds(self, names: list[str]) -> list[float]:
        return [self.thresholds.get(name, self.threshold) for name in names]

    # --- data ----------------------------------------------------------------------------------------------------
    def label_columns(self, cfg: DataConfig) -> list[str] | None:
        return list(cfg.label_columns) if cfg.label_columns else None

    def encode_labels(self, raw: Any, sources: dict[str, SplitSource], label: str | None,
                      cfg: DataConfig) -> LabelEncoding:
        from core.data.labels import read_label_names
        from core.tasks.multi_label.labels import read_multi_labels

        names, matrices, notes = read_multi_labels(raw, sources, label, cfg, read_label_names(cfg.label_names))
        return LabelEncoding(names, matrices, _feature(len(names)), notes)

    def label_shape(self, batch: int, names: list[str], length: int) -> tuple[int, ...]:
        return (batch, len(names))  # one 0/1 target per label

    def strata(self, labels: np.ndarray) -> np.ndarray | None:
        return shared.rarest_label_strata(labels)

    def label_stats(self, train_labels: np.ndarray, names: list[str], cfg: DataConfig) -> dict[str, Any]:
        import numpy as np

        y = np.asarray(train_labels) > 0.5
        per_row = y.sum(axis=1)
        return {"positives": y.sum(axis=0).astype(int).tolist(), "rows": len(y),
                "unlabelled": int((per_row == 0).sum()), "mean_labels": float(per_row.mean()) if len(y) else 0.0}

    def class_counts(self, prepared: PreparedData) -> list[int]:
        return list(prepared.label_stats.get("positives", []))

    def summary(self, prepared: PreparedData) -> str:
        s = prepared.label_stats
        return (f"{len(prepared.label_names)} labels, {s.get('mean_labels', 0.0):.2g} per text on average"
                + (f", {s['unlabelled']} texts with none" if s.get("unlabelled") else ""))

    def claims_column(self, info: ColumnInfo) -> str | None:
        if info.dtype == "list" and not info.holds_turns():
            return f"'{info.name}' holds lists of labels"
        from core.tasks.multi_label.labels import SEPARATORS

        # A delimited string: short labels joined by one separator, in a column of a few words a row.
        for sep in SEPARATORS:
            joined = [e for e in info.examples if sep in e and all(0 < len(p.strip()) <= 30 for p in e.split(sep))]
            if info.dtype == "string" and joined and (info.mean_words or 0) < 6:
                return f"'{info.name}' holds labels joined by '{sep}', e.g. {joined[0]!r}"
        return None

    def label_overview(self, ds: Any, column: str, label_names: list[str] | None) -> LabelOverview:
        """Rows per label of the raw training data (with the separator found automatically)."""
        from types import SimpleNamespace

        from core.data.arrow import SplitSource
        from core.errors import DataError
        from core.tasks.multi_label.labels import read_multi_labels

        cfg = SimpleNamespace(label_columns=None, label_separator=None)
        try:
            names, matrices, notes = read_multi_labels({"train": ds}, {"train": SplitSource("the training data")},
                                                       column, cfg, label_names)  # type: ignore[arg-type]
        except DataError as err:
            return LabelOverview("Labels", {}, err.problem, err.problem)
        y = matrices["train"]
        counts = dict(sorted(zip(names, (int(c) for c in y.sum(axis=0)), strict=True), key=lambda kv: -kv[1]))
        per_row = float(y.sum(axis=1).mean()) if len(y) else 0.0
        caption = f"{len(names)} labels, {per_row:.2g} per row" + (f"; {notes[0]}" if notes else "")
        return LabelOverview("Rows per label", counts, caption, _imbalance_warning(counts),
                             answered_by="training.class_weights")

    def check_prepared(self, config: RunConfig, prepared: PreparedData) -> list[str]:
        self.training_weights(config, prepared)  # a list of the wrong length is refused before training
        counts = dict(zip(prepared.label_names, self.class_counts(prepared), strict=True))
        warnings = []
        never = [name for name, n in counts.items() if n == 0]
        if never:
            warnings.append(f"label{'s' if len(never) > 1 else ''} {', '.join(map(repr, never[:_NAMES_SHOWN]))} "
                            "never occur in the training split: the model will learn not to predict "
                            f"{'them' if len(never) > 1 else 'it'}")
        if config.training.class_weights is None:
            warning = _imbalance_warning({k: v for k, v in counts.items() if v})
            if warning:
                warnings.append(warning)
        return warnings

    # --- model ---------------------------------------------------------------------------------------------------
    def training_weights(self, config: RunConfig, prepared: PreparedData) -> list[float] | None:
        setting = config.training.class_weights
        names = prepared.label_names
        if setting is None:
            return None
        if setting == "auto":
            return shared.positive_weights(self.class_counts(prepared), int(prepared.label_stats.get("rows", 0)))
        weights = [float(w) for w in setting]
        if len(weights) != len(names):
            from core.errors import ConfigError

            shown = ", ".join(names[:_NAMES_SHOWN]) + (f" and {len(names) - _NAMES_SHOWN} more"
                                                        if len(names) > _NAMES_SHOWN else "")
            raise ConfigError(
                f"training.class_weights has {len(weights)} weight(s), but the data has {len(names)} labels: {shown}",
                f"give {len(names)} weights, one positive weight per label in the order above, or set "
                "training.class_weights: auto")
        return weights

    def describe_weights(self, weights: list[float], prepared: PreparedData) -> str:
        return "positive weight per label: " + ", ".join(f"{name} {w:.4g}" for name, w in
                                                          zip(prepared.label_names, weights, strict=True))

    def torch_loss(self, logits: Any, labels: Any, weight: Any) -> Any:
        # BCEWithLogitsLoss(pos_weight=w), the mean over every (row, label) cell, in float32.
        import torch.nn.functional as F

        return F.binary_cross_entropy_with_logits(logits.float(), labels.float(), pos_weight=weight)

    def model_meta(self, prepared: PreparedData) -> dict[str, Any]:
        names = list(prepared.label_names)
        return {"task": self.name, "labels": names, "thresholds": dict(zip(names, self._thresholds(names),
                                                                           strict=True))}

    def after_training(self, outputs: np.ndarray | None, prepared: PreparedData, config: RunConfig) -> dict[str, Any]:
        """The thresholds the saved model answers with: training.threshold for every label, or with auto one per
        label tuned on the final validation outputs (0.5 for a label with no validation positive)."""
        import numpy as np

        names = list(prepared.label_names)
        setting = config.training.threshold
        if setting != "auto":
            return {"thresholds": dict.fromkeys(names, float(setting))}
        if outputs is None or "validation" not in prepared.dataset:
            print("note: no validation outputs to tune the thresholds on; every label keeps 0.5", flush=True)
            return {"thresholds": dict.fromkeys(names, shared.DEFAULT_THRESHOLD), "threshold": "auto"}
        labels = np.asarray(prepared.dataset["validation"]["label"], dtype=np.float64)
        probs = shared.sigmoid(self.outputs_as_saved(np.asarray(outputs), prepared))
        tuned = shared.tune_thresholds(labels, probs)
        shown = ", ".join(f"{n} {t:.2f}" for n, t in zip(names[:_NAMES_SHOWN], tuned, strict=False))
        print(f"thresholds tuned on the validation split (best F1 per label): {shown}", flush=True)
        return {"thresholds": dict(zip(names, tuned, strict=True)), "threshold": "auto"}

    # --- keras ---------------------------------------------------------------------------------------------------
    def keras_loss(self, keras: Any, weights: list[float] | None) -> Any:
        if weights is None:
            return keras.losses.BinaryCrossentropy(from_logits=True)
        from core.engines.keras_callbacks import WeightedBinaryCrossEntropy

        return WeightedBinaryCrossEntropy(weights)

    def keras_labels(self, labels: np.ndarray) -> np.ndarray:
        return labels.astype("float32").reshape(len(labels), -1)

    def keras_label_spec(self) -> tuple[tuple[int | None, ...], str]:
        return (None, None), "float32"

    # --- outputs -------------------------------------------------------------------------------------------------
    def compute_metrics(self, outputs: np.ndarray, labels: np.ndarray, metrics: list[str],
                        prepared: PreparedData) -> dict[str, float]:
        probs = shared.sigmoid(outputs)
        predicted = shared.predict_multi_hot(probs, self._thresholds(list(prepared.label_names)))
        return shared.multi_label_metrics(labels, predicted, metrics)

    def eval_loss(self, outputs: np.ndarray, labels: np.ndarray) -> float:
        return shared.bce_with_logits(outputs, labels)

    def scores(self, outputs: np.ndarray) -> np.ndarray:
        import numpy as np

        return shared.sigmoid(np.asarray(outputs, dtype=np.float64))

    def answers(self, scores: np.ndarray, meta: dict[str, Any]) -> list[dict[str, Any]]:
        labels = list(meta["labels"])
        thresholds = self.for_model(meta)._thresholds(labels)
        chosen = shared.predict_multi_hot(scores, thresholds) if len(scores) else []
        return [{"labels": [name for name, yes in zip(labels, row, strict=True) if yes],
                 "probabilities": {name: float(p) for name, p in zip(labels, probs, strict=True)}}
                for row, probs in zip(chosen, scores, strict=True)]

    def format_answer(self, answer: dict[str, Any], text: str) -> str:
        ranked = sorted(answer["probabilities"].items(), key=lambda kv: -kv[1])
        shown = ", ".join(f"{name} {p:.2f}" for name, p in ranked)
        return f"{'|'.join(answer['labels']) or '(none)'}\t({shown})\t{text}"

    def answer_json(self, answer: dict[str, Any]) -> dict[str, Any]:
        return {"labels": list(answer["labels"]),
                "probabilities": {k: round(p, _DIGITS) for k, p in answer["probabilities"].items()}}

    def file_columns(self, answers: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, list[Any]]:
        columns: dict[str, list[Any]] = {"predicted": ["|".join(a["labels"]) for a in answers]}
        for name in meta["labels"]:
            columns[f"probability_{name}"] = [round(a["probabilities"][name], _DIGITS) for a in answers]
        return columns

    def answers_summary(self, answers: list[dict[str, Any]]) -> str:
        if not answers:
            return "no rows"
        counts: dict[str, int] = {}
        for a in answers:
            for name in a["labels"] or ["(none)"]:
                counts[name] = counts.get(name, 0) + 1
        return ", ".join(f"{k}={v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    # --- evaluation ----------------------------------------------------------------------------------------------
    def evaluate(self, names: list[str], metrics: list[str], labels: np.ndarray, scores: np.ndarray) -> Evaluation:
        """Metrics at the thresholds, per-label precision/recall/F1/support/threshold, and a label grid: rows with
        true label i (rows) and predicted label j (columns), the diagonal being the right ones."""
        import numpy as np

        from core.evaluation import Evaluation

        probs = np.asarray(scores, dtype=np.float64)
        y = np.asarray(labels, dtype=np.float64).reshape(len(probs), -1) if len(probs) else \
            np.zeros((0, len(names)))
        if probs.ndim != 2 or probs.shape != (len(y), len(names)):
            raise ValueError(f"probabilities have shape {probs.shape}; expected ({len(y)}, {len(names)})")
        thresholds = self._thresholds(names)
        predicted = shared.predict_multi_hot(probs, thresholds)
        values = shared.multi_label_metrics(y, predicted, metrics) if len(y) else {}
        clipped = np.clip(probs, 1e-12, 1 - 1e-12)
        values["loss"] = float(-(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)).mean()) if len(y) else math.nan
        per = shared.per_label_scores(y, predicted)
        truth = (y > 0.5).astype(np.int64)
        details = {
            "per_label": {name: {"precision": per["precision"][i], "recall": per["recall"][i], "f1": per["f1"][i],
                                 "support": per["support"][i], "threshold": thresholds[i]}
                          for i, name in enumerate(names)},
            "label_grid": {"rows": "true label", "columns": "predicted label",
                           "counts": (truth.T @ predicted).tolist()},
        }
        return Evaluation(split="", labels=list(names), size=len(y), metrics=values, task=self.name, details=details)

    def example(self, names: list[str], label: Any, scores: np.ndarray) -> dict[str, Any]:
        import numpy as np

        probs = np.asarray(scores, dtype=np.float64)
        truth = np.asarray(label, dtype=np.float64) > 0.5
        chosen = probs >= np.asarray(self._thresholds(names))
        return {"labels": [n for n, yes in zip(names, truth, strict=True) if yes],
                "predicted": [n for n, yes in zip(names, chosen, strict=True) if yes],
                "probabilities": {n: round(float(p), _DIGITS) for n, p in zip(names, probs, strict=True)}}

    def most_wrong(self, labels: np.ndarray, scores: np.ndarray, limit: int) -> list[tuple[int, dict[str, Any]]]:
        """The rows whose probabilities are furthest from their labels (sum of |p - y| over the labels) first."""
        import numpy as np

        probs = np.asarray(scores, dtype=np.float64)
        if not len(probs):
            return []
        errors = np.abs(probs - np.asarray(labels, dtype=np.float64).reshape(probs.shape)).sum(axis=1)
        order = np.argsort(-errors, kind="stable")[:limit]
        return [(int(i), {"error": round(float(errors[i]), _DIGITS)}) for i in order]

    def report_sections(self, ev: Evaluation) -> list[ReportSection]:
        per_label = ev.details.get("per_label") or {}
        if not per_label:
            return []
        width = max([len(name) for name in per_label] + [5])
        table = [(f"{'label':<{width}}  precision  recall      f1  support  threshold", "dim")]
        table += [(f"{name:<{width}}  {s['precision']:9.4f}  {s['recall']:6.4f}  {s['f1']:6.4f}  {s['support']:7d}"
                   f"  {s['threshold']:9.2f}", "ok") for name, s in per_label.items()]
        return [ReportSection("", table)]

    def mistakes_title(self) -> str:
        return "furthest from their labels"

    def mistake_line(self, row: dict[str, Any]) -> str:
        predicted = "|".join(row["predicted"]) or "(none)"
        true = "|".join(row["labels"]) or "(none)"
        return f"{row['error']:.3f} {predicted} (true: {true})"

    def plot_report(self, fig: Any, ax: Any, ev: Evaluation) -> None:
        per_label = ev.details.get("per_label") or {}
        if not per_label:
            ax.set_axis_off()
            return
        names = [name if len(name) <= 18 else name[:17] + "…" for name in per_label]
        f1 = [s["f1"] for s in per_label.values()]
        positions = list(range(len(names)))
        ax.barh(positions, f1, color="tab:blue")
        ax.set_yticks(positions, names, fontsize=8)
        ax.invert_yaxis()  # the first label on top
        ax.set_xlim(0, 1)
        ax.set_xlabel("F1 per label (at its threshold)")
        if len(names) <= 40:
            for i, (value, s) in enumerate(zip(f1, per_label.values(), strict=True)):
                ax.text(min(value + 0.01, 0.85), i, f"{value:.2f} (n={s['support']}, t={s['threshold']:.2f})",
                        va="center", fontsize=7)
        ax.set_title(report_title(ev), fontsize=9)

    # --- screens -------------------------------------------------------------------------------------------------
    def results_grid(self, ev: Evaluation) -> Grid | None:
        grid = ev.details.get("label_grid")
        if not grid:
            return None
        per_label = ev.details.get("per_label") or {}
        return Grid(f"Labels · {ev.split} ({ev.size}) · true (rows) and predicted (columns)", list(ev.labels),
                    list(ev.labels), grid["counts"],
                    "F1 " + " · ".join(f"{name} {s['f1']:.2f}" for name, s in list(per_label.items())[:6]))

    def try_intro(self, meta: dict[str, Any]) -> str:
        labels = meta["labels"]
        return (f"{len(labels)} labels: {', '.join(labels)}. Type, and each label's probability follows; the labels "
                "at or above their thresholds are the answer.")

    def try_view(self, answer: dict[str, Any], meta: dict[str, Any]) -> TryView:
        chosen = set(answer["labels"])
        return TryView("Labels: " + (", ".join(answer["labels"]) or "none"),
                       [(name, p, name in chosen) for name, p in answer["probabilities"].items()])

    # --- exported scripts ----------------------------------------------------------------------------------------
    def script_context(self, config: RunConfig, prepared: PreparedData) -> dict[str, Any]:
        """shared_source: shared.py without its module docstring, inlined by export/data.py.j2 (so a script computes
        strata, metrics, positive weights and tuned thresholds with this very code); label_columns, separator and
        by_id: how its labels are read, which the run decides from the data (labels.script_label_format), so it is
        decided here the same way. Reads the raw data once more unless the labels are 0/1 columns."""
        from core.data import load_sources
        from core.data.labels import read_label_names
        from core.tasks.base import inlined_source
        from core.tasks.multi_label.labels import script_label_format

        data = config.data
        raw, sources = ({}, {}) if data.label_columns else load_sources(data)
        found = script_label_format(raw, sources, prepared.label_column, data, read_label_names(data.label_names))
        return {"libraries": [], "datasets_imports": [], "shared_source": inlined_source(shared), **found}


def _feature(size: int) -> Any:
    """The datasets feature of the multi-hot label column: a fixed-size list of float32."""
    from datasets import Value

    try:
        from datasets import List

        return List(Value("float32"), length=size)
    except ImportError:  # datasets before 4
        from datasets import Sequence

        return Sequence(Value("float32"), length=size)


def _imbalance_warning(counts: dict[str, int]) -> str | None:
    from core.class_weights import imbalanced

    pair = imbalanced(counts)
    if pair is None:
        return None
    small, large = pair
    return (f"the labels are imbalanced: {small!r} is on {counts[small]:,} rows and {large!r} on {counts[large]:,} "
            "(fewer than a tenth as many), so the model may learn to leave the rare labels out; set "
            "training.class_weights: auto to weigh each label's positives by its negatives / positives")


TASK = MultiLabelClassification()
