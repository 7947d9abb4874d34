"""An `evaluate` metric module for single-label classification, loaded from disk so it works offline.

`evaluate.load("f1")` fetches its script from the Hub; this module gives the numbers the field reports (through
scikit-learn, as the Hub scripts do), with `config_name` choosing the metric. `labels`, every class id of the task,
is an argument of compute(): with two classes f1, precision and recall are those of the positive class (id 1), as
GLUE and the Hub's f1 module (average="binary") report them; with more classes they are macro averages over all the
ids, so a class that this split lacks still counts (as 0) instead of silently dropping out of the average.
f1_macro, precision_macro and recall_macro are always macro averages over all the ids.
"""

import datasets
import evaluate
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, precision_score, recall_score

POSITIVE_LABEL = 1  # the positive class of a two-class task, as GLUE and sklearn's average="binary" take it


def _field(score):  # type: ignore[no-untyped-def]
    """The positive class's score with two labels, else the macro average over every label."""
    def compute(y, p, labels):  # type: ignore[no-untyped-def]
        if len(labels) == 2:
            return score(y, p, pos_label=POSITIVE_LABEL, average="binary", zero_division=0)
        return score(y, p, labels=labels, average="macro", zero_division=0)
    return compute


def _macro(score):  # type: ignore[no-untyped-def]
    return lambda y, p, labels: score(y, p, labels=labels, average="macro", zero_division=0)


_SCORERS = {
    "accuracy": lambda y, p, labels: accuracy_score(y, p),
    "f1": _field(f1_score),
    "precision": _field(precision_score),
    "recall": _field(recall_score),
    "matthews_correlation": lambda y, p, labels: matthews_corrcoef(y, p),
    "f1_macro": _macro(f1_score),
    "precision_macro": _macro(precision_score),
    "recall_macro": _macro(recall_score),
}
_NO_LABELS = {"accuracy", "matthews_correlation"}  # the scores that do not depend on the set of class ids


class Classification(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        if self.config_name not in _SCORERS:
            raise KeyError(f"config_name must be one of {sorted(_SCORERS)}, not {self.config_name!r}")
        return evaluate.MetricInfo(
            description=f"{self.config_name} of predicted class ids. With two labels f1/precision/recall are the "
                        "positive class's (id 1); otherwise, and for the *_macro names, macro averages over labels.",
            citation="",
            inputs_description="predictions and references: lists of class ids; labels (a compute argument): every "
                               "class id of the task, e.g. list(range(num_labels))",
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, labels=None):  # type: ignore[no-untyped-def]
        if labels is None and self.config_name not in _NO_LABELS:
            # Guessing the classes from this split is what made a class missing from it drop out of the average.
            raise ValueError(f"{self.config_name} needs labels, every class id of the task: "
                             "pass compute(labels=list(range(num_labels)))")
        labels = None if labels is None else [int(label) for label in labels]
        return {self.config_name: float(_SCORERS[self.config_name](references, predictions, labels))}
