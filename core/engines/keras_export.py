"""A trained KerasHub causal LM back in transformers format (text-generation's Task.save_keras_model): the weights
are mapped back by core.engines.keras_weights (KerasHub's converter inverted, or its exporter), plain Python that the
exported keras scripts inline as it is; here its WeightsError becomes finetune-tui's ModelError."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.engines import keras_weights
from core.errors import ModelError

WEIGHTS_FILE = keras_weights.WEIGHTS_FILE


def save_transformers(backbone: Any, source: Path, out: Path, finalize: Callable[[Any], None] | None = None) -> str:
    """model.safetensors with the backbone's weights under the keys of the checkpoint in `source`, and its config.json
    and generation_config.json; `finalize` gets an object with `config` and `generation_config` to change before they
    are written (Task.finalize_saved). Returns how the weights were mapped back, for the log."""
    try:
        return keras_weights.save_transformers(backbone, source, out, finalize)
    except keras_weights.WeightsError as err:
        raise ModelError(err.problem, err.fix) from None
