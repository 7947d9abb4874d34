"""An `evaluate` metric module for single-label classification, loaded from disk so it works offline.

`evaluate.load("accuracy")` fetches its script from the Hub; this module gives the same numbers (through
scikit-learn, as the Hub scripts do) with `config_name` choosing the metric. Macro averages for multi-class.
"""

import datasets
import evaluate
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, precision_score, recall_score

_SCORERS = {
    "accuracy": lambda y, p: accuracy_score(y, p),
    "f1": lambda y, p: f1_score(y, p, average="macro", zero_division=0),
    "precision": lambda y, p: precision_score(y, p, average="macro", zero_division=0),
    "recall": lambda y, p: recall_score(y, p, average="macro", zero_division=0),
    "matthews_correlation": lambda y, p: matthews_corrcoef(y, p),
}


class Classification(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        if self.config_name not in _SCORERS:
            raise KeyError(f"config_name must be one of {sorted(_SCORERS)}, not {self.config_name!r}")
        return evaluate.MetricInfo(
            description=f"{self.config_name} of predicted class ids (macro average over classes).",
            citation="",
            inputs_description="predictions and references: lists of class ids",
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references):  # type: ignore[no-untyped-def]
        return {self.config_name: float(_SCORERS[self.config_name](references, predictions))}
