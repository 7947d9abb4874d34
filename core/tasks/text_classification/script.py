"""text-classification's part of an exported standalone script: the values its fragments in export/ read.

The metrics are written out as scikit-learn expressions that give core.metrics' numbers (tests/test_metrics.py
checks that), so the script needs neither finetune-tui nor `evaluate`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.config import RunConfig
    from core.data.prepare import PreparedData

_SKLEARN = ("accuracy_score", "f1_score", "matthews_corrcoef", "precision_score", "recall_score")


def scorers(names: list[str], num_labels: int) -> dict[str, str]:
    """The expression that computes each reported metric in a script: the numbers of core.metrics (see
    core/metric_modules/classification), positive class with two labels, macro over every class id otherwise."""
    from core.metrics import reported_names

    macro = f'labels=list(range({num_labels})), average="macro", zero_division=0'
    field = 'average="binary", pos_label=1, zero_division=0' if num_labels == 2 else macro
    expressions = {
        "accuracy": "accuracy_score(labels, predictions)",
        "f1": f"f1_score(labels, predictions, {field})",
        "precision": f"precision_score(labels, predictions, {field})",
        "recall": f"recall_score(labels, predictions, {field})",
        "matthews_correlation": "matthews_corrcoef(labels, predictions)",
        "f1_macro": f"f1_score(labels, predictions, {macro})",
        "precision_macro": f"precision_score(labels, predictions, {macro})",
        "recall_macro": f"recall_score(labels, predictions, {macro})",
    }
    return {name: expressions[name] for name in reported_names(list(names), num_labels)}


def script_context(config: RunConfig, prepared: PreparedData) -> dict[str, Any]:
    """scorers: metric name -> expression; sklearn_imports: the scikit-learn functions those use."""
    found = scorers(config.metrics, len(prepared.label_names))
    used = [name for name in _SKLEARN if any(name + "(" in e for e in found.values())]
    return {"libraries": [], "datasets_imports": [], "scorers": found, "sklearn_imports": ", ".join(used)}
