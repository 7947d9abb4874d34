"""text-classification: one class per text or text pair (the default task).

Labels are class ids (core.data.labels), metrics come from the bundled `evaluate` module (core.metrics), class
weights from core.class_weights; the report is the per-class table and the confusion matrix.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

from core.tasks.base import Grid, LabelEncoding, LabelOverview, ReportSection, Task, TryView, WizardField, report_title

if TYPE_CHECKING:
    import numpy as np

    from core.config import DataConfig, RunConfig
    from core.data.arrow import SplitSource
    from core.data.prepare import PreparedData
    from core.evaluation import Evaluation

_PROB_DIGITS = 6
_ANNOTATE_LIMIT = 20  # classes up to which each cell of report.png's matrix shows its count


class TextClassification(Task):
    name = "text-classification"
    title = "Text classification"
    wizard_fields = (WizardField("data.label_names", "Label names", "dataset", placeholder="e.g. negative, positive"),
                     WizardField("training.class_weights", "Class weights", "training",
                                 placeholder="none: every example counts the same"))
    metric_names = ("accuracy", "f1", "precision", "recall", "matthews_correlation", "f1_macro", "precision_macro",
                    "recall_macro")
    default_metrics = ("accuracy",)
    problem_type = "single_label_classification"
    pipeline_kwargs: ClassVar[dict[str, Any]] = {}
    unused_settings: ClassVar[dict[str, tuple[Any, str]]] = {
        "data.label_scaling": ("none", "scales the scores of text-regression"),
        "data.label_columns": (None, "lists 0/1 columns of multi-label-classification"),
        "data.label_separator": (None, "splits the labels of multi-label-classification"),
        "training.threshold": (0.5, "decides the labels of multi-label-classification"),
    }

    def reported_names(self, metrics: list[str], num_outputs: int) -> list[str]:
        from core.metrics import reported_names

        return reported_names(metrics, num_outputs)

    # --- data ----------------------------------------------------------------------------------------------------
    def encode_labels(self, raw: Any, sources: dict[str, SplitSource], label: str, cfg: DataConfig) -> LabelEncoding:
        from datasets import ClassLabel

        from core.data.labels import encode_labels, read_label_names

        names, ids, notes = encode_labels(raw, sources, label, read_label_names(cfg.label_names))
        return LabelEncoding(names, ids, ClassLabel(names=names), notes)

    def strata(self, labels: np.ndarray) -> np.ndarray | None:
        return labels

    def label_stats(self, train_labels: np.ndarray, names: list[str], cfg: DataConfig) -> dict[str, Any]:
        import numpy as np

        return {"counts": np.bincount(train_labels, minlength=len(names)).tolist()}

    def class_counts(self, prepared: PreparedData) -> list[int]:
        return list(prepared.label_stats.get("counts", []))

    def summary(self, prepared: PreparedData) -> str:
        return f"{len(prepared.label_names)} labels"

    def label_overview(self, ds: Any, column: str, label_names: list[str] | None) -> LabelOverview:
        from core.class_weights import imbalance_warning
        from core.data.inspection import class_balance

        counts = class_balance(ds, column, label_names)
        return LabelOverview("Class balance", counts, "", imbalance_warning(counts),
                             answered_by="training.class_weights")

    def check_prepared(self, config: RunConfig, prepared: PreparedData) -> list[str]:
        from core.class_weights import imbalance_warning

        self.training_weights(config, prepared)  # a list of the wrong length is refused before training
        if config.training.class_weights is not None:
            return []
        warning = imbalance_warning(dict(zip(prepared.label_names, self.class_counts(prepared), strict=True)))
        return [warning] if warning else []

    # --- model ---------------------------------------------------------------------------------------------------
    def training_weights(self, config: RunConfig, prepared: PreparedData) -> list[float] | None:
        from core.class_weights import resolve_class_weights

        return resolve_class_weights(config.training.class_weights, self.class_counts(prepared), prepared.label_names)

    def describe_weights(self, weights: list[float], prepared: PreparedData) -> str:
        from core.class_weights import describe_weights

        return describe_weights(weights, prepared.label_names)

    def torch_loss(self, logits: Any, labels: Any, weight: Any) -> Any:
        # torch's weighted mean, sum(w[y] * nll) / sum(w[y]), in float32 as the models compute their own loss.
        import torch.nn.functional as F

        return F.cross_entropy(logits.float(), labels, weight=weight)

    def keras_loss(self, keras: Any, weights: list[float] | None) -> Any:
        if weights is None:
            return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        from core.engines.keras_callbacks import WeightedCrossEntropy

        return WeightedCrossEntropy(weights)

    # --- outputs -------------------------------------------------------------------------------------------------
    def compute_metrics(self, outputs: np.ndarray, labels: np.ndarray, metrics: list[str],
                        prepared: PreparedData) -> dict[str, float]:
        from core.metrics import Metrics

        return Metrics(metrics, len(prepared.label_names)).compute(predictions=outputs.argmax(axis=-1),
                                                                   references=labels)

    def eval_loss(self, outputs: np.ndarray, labels: np.ndarray) -> float:
        import numpy as np

        if not len(labels):
            return 0.0
        logits = np.asarray(outputs, dtype=np.float64)
        shifted = logits - logits.max(axis=-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        return float(-log_probs[np.arange(len(labels)), labels].mean())

    def scores(self, outputs: np.ndarray) -> np.ndarray:
        import numpy as np

        logits = np.asarray(outputs, dtype=np.float64)
        exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return exp / exp.sum(axis=-1, keepdims=True)

    def answers(self, scores: np.ndarray, meta: dict[str, Any]) -> list[dict[str, Any]]:
        labels = meta["labels"]
        out = []
        for row in scores:
            best = int(row.argmax())
            out.append({"label": labels[best], "score": float(row[best]),
                        "probabilities": {name: float(p) for name, p in zip(labels, row, strict=True)}})
        return out

    def format_answer(self, answer: dict[str, Any], text: str) -> str:
        ranked = sorted(answer["probabilities"].items(), key=lambda kv: -kv[1])
        others = ", ".join(f"{name} {p:.4f}" for name, p in ranked[1:])
        return f"{answer['label']}\t{answer['score']:.4f}\t{text}" + (f"\t({others})" if others else "")

    def answer_json(self, answer: dict[str, Any]) -> dict[str, Any]:
        return {"predicted": answer["label"],
                "probabilities": {k: round(p, _PROB_DIGITS) for k, p in answer["probabilities"].items()}}

    def file_columns(self, answers: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, list[Any]]:
        columns: dict[str, list[Any]] = {"predicted": [a["label"] for a in answers]}
        for name in meta["labels"]:
            columns[f"probability_{name}"] = [round(a["probabilities"][name], _PROB_DIGITS) for a in answers]
        return columns

    def answers_summary(self, answers: list[dict[str, Any]]) -> str:
        counts: dict[str, int] = {}
        for a in answers:
            counts[a["label"]] = counts.get(a["label"], 0) + 1
        return ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))

    # --- evaluation ----------------------------------------------------------------------------------------------
    def evaluate(self, names: list[str], metrics: list[str], labels: np.ndarray, scores: np.ndarray) -> Evaluation:
        """Metrics, per-class scores and confusion matrix from class ids and probabilities [n, classes]."""
        import numpy as np
        from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

        from core.evaluation import ClassScores, Evaluation
        from core.metrics import Metrics

        refs = np.asarray(labels, dtype=np.int64)
        probs = np.asarray(scores, dtype=np.float64)
        if probs.ndim != 2 or probs.shape != (len(refs), len(names)):
            raise ValueError(f"probabilities have shape {probs.shape}; expected ({len(refs)}, {len(names)})")
        preds = probs.argmax(axis=1)
        values = Metrics(metrics, len(names)).compute(predictions=preds, references=refs) if len(refs) else {}
        true_p = probs[np.arange(len(refs)), refs] if len(refs) else np.array([])
        # Trainer's eval loss is the mean cross-entropy; probabilities that underflowed to 0 would make it infinite.
        values["loss"] = float(-np.log(np.clip(true_p, 1e-12, 1.0)).mean()) if len(refs) else math.nan
        ids = list(range(len(names)))
        precision, recall, f1, support = precision_recall_fscore_support(refs, preds, labels=ids, zero_division=0)
        per_class = [ClassScores(name, float(p), float(r), float(f), int(s))
                     for name, p, r, f, s in zip(names, precision, recall, f1, support, strict=True)]
        matrix = confusion_matrix(refs, preds, labels=ids).tolist() if len(refs) else [[0] * len(ids) for _ in ids]
        return Evaluation(split="", labels=list(names), size=len(refs), metrics=values, per_class=per_class,
                          confusion=matrix, task=self.name)

    def example(self, names: list[str], label: Any, scores: np.ndarray) -> dict[str, Any]:
        predicted = int(scores.argmax())
        return {"label": names[int(label)], "predicted": names[predicted], "correct": predicted == int(label),
                "probabilities": {n: round(float(p), _PROB_DIGITS) for n, p in zip(names, scores, strict=True)}}

    def most_wrong(self, labels: np.ndarray, scores: np.ndarray, limit: int) -> list[tuple[int, dict[str, Any]]]:
        """Wrong predictions, the most confident first."""
        import numpy as np

        refs = np.asarray(labels, dtype=np.int64)
        probs = np.asarray(scores, dtype=np.float64)
        if not len(refs):
            return []
        preds = probs.argmax(axis=1)
        confidence = probs[np.arange(len(refs)), preds]
        wrong = np.flatnonzero(preds != refs)
        order = wrong[np.argsort(-confidence[wrong], kind="stable")][:limit]
        return [(int(i), {"confidence": round(float(confidence[i]), 6)}) for i in order]

    def report_sections(self, ev: Evaluation) -> list[ReportSection]:
        width = max([len(c.label) for c in ev.per_class] + [5])
        table = [(f"{'class':<{width}}  precision  recall      f1  support", "dim")]
        table += [(f"{c.label:<{width}}  {c.precision:9.4f}  {c.recall:6.4f}  {c.f1:6.4f}  {c.support:7d}", "ok")
                  for c in ev.per_class]
        short = [name[:10] for name in ev.labels]
        cell = max([len(s) for s in short] + [len(str(n)) for row in ev.confusion for n in row])
        matrix = [(" " * width + " " + " ".join(f"{s:>{cell}}" for s in short), "dim")]
        matrix += [(f"{name:<{width}} " + " ".join(f"{n:>{cell}}" for n in row), "ok")
                   for name, row in zip(ev.labels, ev.confusion, strict=True)]
        return [ReportSection("", table), ReportSection("confusion matrix (rows: true label, columns: predicted)",
                                                        matrix)]

    def mistake_line(self, row: dict[str, Any]) -> str:
        return f"{row['confidence']:.3f} {row['predicted']} (true: {row['label']})"

    def mistakes_title(self) -> str:
        return "most confident mistakes"

    def plot_report(self, fig: Any, ax: Any, ev: Evaluation) -> None:
        import numpy as np

        counts = np.asarray(ev.confusion, dtype=float)
        totals = counts.sum(axis=1, keepdims=True)
        share = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
        image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
        ticks = range(len(ev.labels))
        names = [name if len(name) <= 18 else name[:17] + "…" for name in ev.labels]
        rotate = len(names) > 3
        ax.set_xticks(ticks, names, rotation=45 if rotate else 0, ha="right" if rotate else "center", fontsize=8)
        ax.set_yticks(ticks, names, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        if len(ev.labels) <= _ANNOTATE_LIMIT:
            for i in ticks:
                for j in ticks:
                    ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=8,
                            color="white" if share[i, j] > 0.5 else "black")
        ax.set_title(report_title(ev), fontsize=9)

    # --- screens -------------------------------------------------------------------------------------------------
    def results_grid(self, ev: Evaluation) -> Grid | None:
        if not ev.confusion:
            return None
        return Grid(f"Confusion · {ev.split} ({ev.size})", list(ev.labels), list(ev.labels), ev.confusion,
                    "F1 " + " · ".join(f"{c.label} {c.f1:.2f}" for c in ev.per_class[:6]))

    def try_intro(self, meta: dict[str, Any]) -> str:
        labels = meta["labels"]
        return f"{len(labels)} labels: {', '.join(labels)}. Type, and the probabilities follow."

    def try_view(self, answer: dict[str, Any], meta: dict[str, Any]) -> TryView:
        return TryView("Probabilities", [(name, p, name == answer["label"])
                                         for name, p in answer["probabilities"].items()])

    # --- exported scripts ----------------------------------------------------------------------------------------
    def script_context(self, config: RunConfig, prepared: PreparedData) -> dict[str, Any]:
        """The metrics as scikit-learn expressions (script.py) for export/metrics.py.j2."""
        from core.tasks.text_classification.script import script_context

        return script_context(config, prepared)


TASK = TextClassification()
