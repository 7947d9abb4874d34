"""text-regression: a number per text or text pair (a rating, a similarity score), one output, MSE loss.

Scores are read from numbers or from text that holds numbers, checked row by row (a word in a score column is named
by its file line), and stored as float32. With `data.label_scaling: standard` the model trains on z-scored labels
(train mean and std) and the scaling is folded into the head's last layer when the model is saved, so the saved
model, `predict` and `pipeline("text-classification", function_to_apply="none")` all give raw scores. The numeric
pieces (strata, metrics, folding) are in shared.py, which exported scripts inline.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

from core.tasks.base import Grid, LabelEncoding, LabelOverview, ReportSection, Task, TryView, WizardField, report_title
from core.tasks.text_regression import shared

if TYPE_CHECKING:
    import numpy as np

    from core.config import DataConfig, RunConfig
    from core.data.arrow import SplitSource
    from core.data.inspection import ColumnInfo
    from core.data.prepare import PreparedData
    from core.evaluation import Evaluation

# A number as people write one in a file: 3, -2.5, .5, 4., 1e-3 (after trimming spaces); inf and nan are numbers
# too, refused as not finite with their own message.
_NUMBER = r"^[-+]?((\d+(\.\d*)?|\.\d+)(e[-+]?\d+)?|inf|infinity|nan)$"
_DIGITS = 6
_GRID = 10  # bins per axis of the true-vs-predicted grid
_RESIDUAL_BINS = 12
_HISTOGRAM_BINS = 20


class TextRegression(Task):
    name = "text-regression"
    title = "Text regression"
    wizard_fields = (WizardField("data.label_scaling", "Label scaling", "dataset", editor="select"),)
    metric_names = ("pearson", "spearman", "mse", "rmse", "mae", "r2")
    default_metrics = metric_names
    problem_type = "regression"
    pipeline_kwargs: ClassVar[dict[str, Any]] = {"function_to_apply": "none"}
    label_dtype = "float32"
    unused_settings: ClassVar[dict[str, tuple[Any, str]]] = {
        "training.class_weights": (None, "weighs classes, which a score has none of"),
        "data.label_names": (None, "names classes, which a score has none of"),
        "data.label_columns": (None, "lists 0/1 columns of multi-label-classification"),
        "data.label_separator": (None, "splits the labels of multi-label-classification"),
        "training.threshold": (0.5, "decides the labels of multi-label-classification"),
    }

    # --- data ----------------------------------------------------------------------------------------------------
    def encode_labels(self, raw: Any, sources: dict[str, SplitSource], label: str, cfg: DataConfig) -> LabelEncoding:
        from datasets import Value

        arrays, notes = {}, []
        for split, ds in raw.items():
            arrays[split], read_from_text = _scores(ds, label, sources[split])
            if read_from_text:
                notes.append(f"scores in '{label}' of {sources[split].desc} were read from text")
        train = arrays["train"]
        if len(train) and float(train.min()) == float(train.max()):
            raise _data_error(f"every score in label column '{label}' of {sources['train'].desc} is "
                              f"{float(train[0]):g}; a model cannot learn to tell texts apart from one value",
                              "give training data with different scores, or choose another data.label_column")
        return LabelEncoding([label], arrays, Value("float32"), notes)

    def strata(self, labels: np.ndarray) -> np.ndarray | None:
        return shared.quantile_strata(labels)

    def label_stats(self, train_labels: np.ndarray, names: list[str], cfg: DataConfig) -> dict[str, Any]:
        import numpy as np

        y = np.asarray(train_labels, dtype=np.float64)
        counts, edges = np.histogram(y, bins=_HISTOGRAM_BINS)
        mean, std = shared.standard_scaling(y) if len(y) > 1 and np.ptp(y) > 0 else (float(y.mean()), 0.0)
        stats: dict[str, Any] = {
            "min": float(y.min()), "max": float(y.max()), "mean": mean, "std": std, "median": float(np.median(y)),
            "whole": bool(np.all(y == np.floor(y))),
            "histogram": [[float(lo), float(hi), int(c)] for lo, hi, c in zip(edges[:-1], edges[1:], counts,
                                                                                 strict=True)],
            "scaling": {"mean": mean, "std": std} if cfg.label_scaling == "standard" else None,
        }
        return stats

    def claims_column(self, info: ColumnInfo) -> str | None:
        # Whole numbers may be classes (1-5 stars either way); a fraction is a score.
        if info.dtype.startswith("float"):
            fraction = next((e for e in info.examples if "." in e and float(e) != int(float(e))), None)
            if fraction is not None:
                return f"'{info.name}' holds numbers with fractions, e.g. {fraction}"
        return None

    def label_overview(self, ds: Any, column: str, label_names: list[str] | None) -> LabelOverview:
        """Rows per score (whole-number scores with few values) or per range of scores, and rows that hold no
        number, read as prepare_data reads them but without refusing anything yet."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        from core.data.arrow import arrow_column, column_kind

        col = arrow_column(ds, column)
        kind = column_kind(ds, column)
        if kind == "string":
            col = pc.utf8_trim_whitespace(col)
            numeric = pc.fill_null(pc.match_substring_regex(col, _NUMBER, ignore_case=True), False)
            values = pc.cast(pc.if_else(numeric, col, None), pa.float64()).to_numpy(zero_copy_only=False)
        elif kind.startswith(("int", "uint", "float", "double")):
            values = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
        else:
            return LabelOverview("Scores", {}, "", f"'{column}' holds {kind} values, not numbers")
        finite = values[np.isfinite(values)]
        bad = len(values) - len(finite)
        warning = (f"{bad} of {len(values)} rows hold no number (missing or text) in '{column}'; training refuses "
                   "them" if bad else None)
        if not len(finite):
            return LabelOverview("Scores", {}, "", warning or f"'{column}' holds no numbers")
        distinct = np.unique(finite)
        if len(distinct) <= 12 and np.all(distinct == np.floor(distinct)):
            counts = {f"{v:g}": int(n) for v, n in zip(*np.unique(finite, return_counts=True), strict=True)}
        else:
            hist, edges = np.histogram(finite, bins=8)
            counts = {f"{lo:.3g} to {hi:.3g}": int(n) for lo, hi, n in zip(edges[:-1], edges[1:], hist, strict=True)}
        caption = (f"scores {finite.min():g} to {finite.max():g}, median {np.median(finite):g}, mean "
                   f"{finite.mean():.3g}")
        return LabelOverview("Scores", counts, caption, warning)

    def summary(self, prepared: PreparedData) -> str:
        s = prepared.label_stats
        return (f"scores {s['min']:g} to {s['max']:g} (median {s['median']:g}) in '{prepared.label_names[0]}'"
                + (", scaled to mean 0 and std 1 for training" if s.get("scaling") else ""))

    # --- tokens --------------------------------------------------------------------------------------------------
    def label_transform(self, prepared: PreparedData) -> Any:
        scaling = prepared.label_stats.get("scaling")
        if not scaling:
            return None
        mean, std = scaling["mean"], scaling["std"]
        return lambda values: [(v - mean) / std for v in values]

    def cache_key(self, prepared: PreparedData) -> str:
        scaling = prepared.label_stats.get("scaling")
        return f"{self.name}|{scaling['mean']!r}|{scaling['std']!r}" if scaling else self.name

    # --- model ---------------------------------------------------------------------------------------------------
    def num_outputs(self, prepared: PreparedData) -> int:
        return 1

    def head_config(self, names: list[str]) -> dict[str, Any]:
        # One output named after the score column, so a pipeline answers {"label": "rating", "score": 3.7}.
        return {"num_labels": 1, "id2label": {0: names[0]}, "label2id": {names[0]: 0},
                "problem_type": self.problem_type}

    def finalize_model(self, model: Any, prepared: PreparedData) -> None:
        scaling = prepared.label_stats.get("scaling")
        if not scaling:
            return
        import torch

        from core.errors import ModelError

        last = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.out_features == 1]
        if not last or last[-1].bias is None:
            raise ModelError("the model's head has no final linear layer with a bias to fold the label scaling into",
                             "set data.label_scaling: none for this model")
        head = last[-1]
        with torch.no_grad():
            weight, bias = shared.fold_scaling(head.weight, head.bias, scaling["mean"], scaling["std"])
            head.weight.copy_(weight)
            head.bias.copy_(bias)

    def model_meta(self, prepared: PreparedData) -> dict[str, Any]:
        s = prepared.label_stats
        meta = {"task": self.name, "labels": list(prepared.label_names), "range": [s["min"], s["max"]],
                "whole": s["whole"]}
        if s.get("scaling"):
            meta["label_scaling"] = {**s["scaling"], "folded": True}  # the saved model gives raw scores
        return meta

    def outputs_as_saved(self, outputs: np.ndarray, prepared: PreparedData) -> np.ndarray:
        scaling = prepared.label_stats.get("scaling")
        return outputs if not scaling else shared.unscale(outputs, scaling["mean"], scaling["std"])

    # --- keras ---------------------------------------------------------------------------------------------------
    def keras_loss(self, keras: Any, weights: list[float] | None) -> Any:
        return keras.losses.MeanSquaredError()

    def keras_labels(self, labels: np.ndarray) -> np.ndarray:
        return labels.astype("float32").reshape(-1, 1)  # the rank of the (batch, 1) outputs

    def keras_label_spec(self) -> tuple[tuple[int | None, ...], str]:
        return (None, 1), "float32"

    def finalize_keras_model(self, model: Any, prepared: PreparedData) -> None:
        scaling = prepared.label_stats.get("scaling")
        if not scaling:
            return
        dense = model.output_dense  # KerasHub's TextClassifier head
        kernel, bias = shared.fold_scaling(dense.kernel.numpy(), dense.bias.numpy(), scaling["mean"], scaling["std"])
        dense.kernel.assign(kernel)
        dense.bias.assign(bias)

    # --- outputs -------------------------------------------------------------------------------------------------
    def compute_metrics(self, outputs: np.ndarray, labels: np.ndarray, metrics: list[str],
                        prepared: PreparedData) -> dict[str, float]:
        # Both sides in training units (scaled labels): the metrics are reported in the score's own units.
        return shared.regression_metrics(self.outputs_as_saved(labels, prepared),
                                         self.outputs_as_saved(outputs, prepared), metrics)

    def eval_loss(self, outputs: np.ndarray, labels: np.ndarray) -> float:
        import numpy as np

        if not len(labels):
            return 0.0
        diff = np.asarray(outputs, dtype=np.float64).reshape(-1) - np.asarray(labels, dtype=np.float64).reshape(-1)
        return float(np.mean(diff * diff))

    def scores(self, outputs: np.ndarray) -> np.ndarray:
        import numpy as np

        values = np.asarray(outputs, dtype=np.float64)
        return values.reshape(len(values), -1)[:, 0] if values.ndim > 1 else values

    def answers(self, scores: np.ndarray, meta: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"label": meta["labels"][0], "score": float(s)} for s in scores]

    def format_answer(self, answer: dict[str, Any], text: str) -> str:
        return f"{answer['score']:.4f}\t{text}"

    def answer_json(self, answer: dict[str, Any]) -> dict[str, Any]:
        return {"score": round(answer["score"], _DIGITS)}

    def file_columns(self, answers: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, list[Any]]:
        return {"predicted": [round(a["score"], _DIGITS) for a in answers]}

    def answers_summary(self, answers: list[dict[str, Any]]) -> str:
        if not answers:
            return "no rows"
        values = [a["score"] for a in answers]
        return f"scores {min(values):.4g} to {max(values):.4g} (mean {sum(values) / len(values):.4g})"

    # --- evaluation ----------------------------------------------------------------------------------------------
    def evaluate(self, names: list[str], metrics: list[str], labels: np.ndarray, scores: np.ndarray) -> Evaluation:
        """Metrics, a true-vs-predicted grid (10x10 over the range both share) and the errors' histogram."""
        import numpy as np

        from core.evaluation import Evaluation

        y = np.asarray(labels, dtype=np.float64).reshape(-1)
        p = np.asarray(scores, dtype=np.float64).reshape(-1)
        values = shared.regression_metrics(y, p, metrics) if len(y) else {}
        values["loss"] = float(np.mean((p - y) ** 2)) if len(y) else math.nan
        details: dict[str, Any] = {}
        if len(y):
            lo, hi = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
            hi = hi if hi > lo else lo + 1.0
            grid, edges, _ = np.histogram2d(y, p, bins=_GRID, range=[[lo, hi], [lo, hi]])
            errors, error_edges = np.histogram(p - y, bins=_RESIDUAL_BINS)
            details = {
                "scatter": {"rows": "true score", "columns": "predicted score", "edges": edges.tolist(),
                            "counts": grid.astype(int).tolist()},
                "residuals": {"edges": error_edges.tolist(), "counts": errors.tolist(),
                              "mean": float(np.mean(p - y)), "std": float(np.std(p - y))},
            }
        return Evaluation(split="", labels=list(names), size=len(y), metrics=values, task=self.name, details=details)

    def example(self, names: list[str], label: Any, scores: np.ndarray) -> dict[str, Any]:
        predicted = float(scores)
        return {"label": float(label), "predicted": round(predicted, _DIGITS),
                "error": round(predicted - float(label), _DIGITS)}

    def most_wrong(self, labels: np.ndarray, scores: np.ndarray, limit: int) -> list[tuple[int, dict[str, Any]]]:
        """The largest absolute errors first."""
        import numpy as np

        errors = np.abs(np.asarray(scores, dtype=np.float64) - np.asarray(labels, dtype=np.float64))
        order = np.argsort(-errors, kind="stable")[:limit]
        return [(int(i), {}) for i in order]

    def report_sections(self, ev: Evaluation) -> list[ReportSection]:
        scatter = ev.details.get("scatter")
        if not scatter:
            return []
        edges, counts = scatter["edges"], scatter["counts"]
        ticks = [f"{edges[i]:.3g}" for i in range(len(counts))]
        width = max(len(t) for t in ticks)
        cell = max([len(str(n)) for row in counts for n in row] + [len(t) for t in ticks])
        grid = [(f"{'':>{width}}  " + " ".join(f"{t:>{cell}}" for t in ticks), "dim")]
        for tick, row in zip(ticks, counts, strict=True):
            grid.append((f"{tick:>{width}}  " + " ".join(f"{n:>{cell}}" if n else f"{'.':>{cell}}" for n in row),
                         "ok"))
        res = ev.details["residuals"]
        errors = [(f"mean error {res['mean']:+.4g}, spread (std) {res['std']:.4g}", "ok")]
        return [ReportSection("true score (rows, from) against predicted score (columns, from)", grid),
                ReportSection("errors (predicted - true)", errors)]

    def mistakes_title(self) -> str:
        return "largest errors"

    def mistake_line(self, row: dict[str, Any]) -> str:
        return f"{row['error']:+.3f} (predicted {row['predicted']:.3f}, true {row['label']:g})"

    def plot_report(self, fig: Any, ax: Any, ev: Evaluation) -> None:
        import numpy as np

        scatter = ev.details.get("scatter")
        if not scatter:
            ax.set_axis_off()
            return
        edges = scatter["edges"]
        counts = np.asarray(scatter["counts"], dtype=float)
        image = ax.imshow(counts, origin="lower", cmap="Blues", extent=(edges[0], edges[-1], edges[0], edges[-1]),
                          aspect="auto")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="examples")
        ax.plot([edges[0], edges[-1]], [edges[0], edges[-1]], color="tab:red", linewidth=1, label="predicted = true")
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.legend(loc="upper left", fontsize=8)
        ax.set_title(report_title(ev), fontsize=9)


    # --- screens -------------------------------------------------------------------------------------------------
    def results_grid(self, ev: Evaluation) -> Grid | None:
        scatter = ev.details.get("scatter")
        if not scatter:
            return None
        # Ranges of scores from the lowest (top, left) up, like the classes of a confusion matrix: the diagonal holds
        # the rows predicted in their own range. Pairs of the report's 10 ranges, so 5 columns fit beside the chart.
        import numpy as np

        counts = np.asarray(scatter["counts"])
        merged = counts.reshape(5, 2, 5, 2).sum(axis=(1, 3)) if counts.shape == (10, 10) else counts
        step = len(counts) // len(merged)
        ticks = [f"{lo:.2g}+" for lo in scatter["edges"][:-1:step]]
        metric = ev.metrics.get("pearson")
        return Grid(f"Scores · {ev.split} ({ev.size})", ticks, ticks, merged.tolist(),
                    (f"pearson {metric:.3f} · " if metric is not None else "")
                    + f"mean error {ev.details['residuals']['mean']:+.3g}")

    def try_intro(self, meta: dict[str, Any]) -> str:
        low, high = meta.get("range", [None, None])
        trained = f" (trained on {low:g} to {high:g})" if low is not None else ""
        return f"Predicts '{meta['labels'][0]}'{trained}. Type, and the score follows."

    def try_view(self, answer: dict[str, Any], meta: dict[str, Any]) -> TryView:
        low, high = meta.get("range", [None, None])
        score = answer["score"]
        bars = []
        if low is not None and high > low:
            bars = [(meta["labels"][0], min(1.0, max(0.0, (score - low) / (high - low))), True)]
        return TryView("Score", bars, f"{meta['labels'][0]} ≈ {score:.3f}"
                       + (f" (trained on {low:g} to {high:g})" if low is not None else ""))

    # --- exported scripts ----------------------------------------------------------------------------------------
    def script_context(self, config: RunConfig, prepared: PreparedData) -> dict[str, Any]:
        """shared_source: shared.py without its module docstring, inlined by export/data.py.j2 (so a script
        computes strata, scaling, metrics and the fold with this very code); scipy for the correlations, and
        datasets' Value to store the training scores in float64, as the tokenized splits hold them."""
        from core.tasks.base import inlined_source

        return {"libraries": ["scipy"], "datasets_imports": ["Value"], "shared_source": inlined_source(shared)}


def _data_error(message: str, fix: str) -> Exception:
    from core.errors import DataError

    return DataError(message, fix)


def _scores(ds: Any, label: str, src: SplitSource) -> tuple[np.ndarray, bool]:
    """The label column as float32 scores, and whether they were read from text. Refuses, naming rows: missing
    values, text that is not a number, infinities, and class columns (ClassLabel, true/false)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from core.data.arrow import arrow_column, column_kind, true_rows, where

    kind = column_kind(ds, label)
    col = arrow_column(ds, label)
    if kind in ("class_label", "bool"):
        what = "classes (a class-label column)" if kind == "class_label" else "true/false values"
        raise _data_error(f"label column '{label}' in {src.desc} holds {what}; text-regression needs a number per row",
                          "set task: text-classification to predict classes, or choose another data.label_column")
    from_text = kind == "string"
    if from_text:
        col = pc.utf8_trim_whitespace(col)
        missing = pc.or_kleene(pc.is_null(col), pc.equal(col, ""))
    elif kind.startswith(("int", "uint", "float", "double")):
        missing = pc.is_null(col, nan_is_null=True)
    else:
        raise _data_error(f"label column '{label}' in {src.desc} holds {kind} values; text-regression needs one number "
                          "per row", "choose a column of numbers as data.label_column")
    rows = true_rows(missing)
    if len(rows):
        n = len(rows)
        raise _data_error(f"label column '{label}' in {src.desc} has {n} missing score{'s' if n > 1 else ''}, at "
                          f"{where(rows, src)}", "fill in the scores on those rows or delete them")
    if from_text:
        bad = true_rows(pc.invert(pc.match_substring_regex(col, _NUMBER, ignore_case=True)))
        if len(bad):
            first = col[int(bad[0])].as_py()
            raise _data_error(
                f"label column '{label}' in {src.desc} holds text that is not a number ({first!r}) at "
                f"{where(bad, src)}; text-regression needs a number on every row",
                "correct those rows, or set task: text-classification if the labels are classes")
    values = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
    infinite = np.flatnonzero(~np.isfinite(values))
    if len(infinite):
        raise _data_error(f"label column '{label}' in {src.desc} holds a score that is not finite "
                          f"({values[infinite[0]]}) at {where(infinite, src)}", "give finite numbers as scores")
    return values.astype(np.float32), from_text


TASK = TextRegression()
