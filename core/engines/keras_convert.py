"""From a Hugging Face checkpoint to a Keras text classifier, through KerasHub's own converters.

KerasHub reads a transformers-format directory (config.json + safetensors) and builds its Backbone with the same
weights (`Backbone.from_preset(dir)`); a classification head of num_classes goes on top with the backbone's
TextClassifier (BertTextClassifier, RobertaTextClassifier, ...). A model type qualifies when KerasHub has both: a
converter for it and a TextClassifier for the backbone that converter builds. Everything here imports TensorFlow
only when called, so the CLI and the wizard can import this module cheaply.
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import RunConfig
from core.errors import ConfigError, ModelError

KERAS_HINT = 'pip install "finetune-tui[keras]"'
PACKAGES = ("tensorflow", "keras", "keras_hub")
# Backbone input -> tokenized column. Every KerasHub encoder takes some of these.
INPUT_COLUMNS = {"token_ids": "input_ids", "padding_mask": "attention_mask", "segment_ids": "token_type_ids"}
# Encoder model types of transformers worth asking KerasHub about; which of them it converts decides the list.
ENCODER_TYPES = (
    "albert", "bert", "camembert", "deberta", "deberta-v2", "distilbert", "electra", "ernie", "esm", "fnet",
    "modernbert", "mpnet", "roberta", "xlm-roberta",
)


def import_keras() -> Any:
    """keras on the TensorFlow backend (this engine's promise), with TensorFlow's C++ chatter kept out of the log."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != "tensorflow":
            raise ConfigError(f"Keras is already running on the {keras.backend.backend()} backend in this process",
                              "unset KERAS_BACKEND (the keras engine runs Keras on TensorFlow)")
        return keras
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import keras

    return keras


def missing_packages() -> list[str]:
    import importlib.util

    return [p for p in PACKAGES if importlib.util.find_spec(p) is None]


def require_packages() -> None:
    missing = missing_packages()
    if missing:
        raise ConfigError(f"engine 'keras' needs {', '.join(missing)}, which is not installed",
                          f"{KERAS_HINT}, or use engine: trainer")


@functools.lru_cache(maxsize=1)
def supported_model_types() -> tuple[str, ...]:
    """Model types (config.json's model_type) the installed KerasHub can turn into a text classifier."""
    import_keras()
    import keras_hub
    from keras_hub.src.utils.transformers.preset_loader import TransformersPresetLoader

    heads = {getattr(cls, "backbone_cls", None) for cls in _all_subclasses(keras_hub.models.TextClassifier)}
    found = []
    for model_type in ENCODER_TYPES:
        try:
            backbone_cls = TransformersPresetLoader(None, {"model_type": model_type}).converter.backbone_cls
        except ValueError:  # KerasHub has no converter for this type
            continue
        if backbone_cls in heads:
            found.append(model_type)
    return tuple(found)


def _all_subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_all_subclasses(sub)]
    return out


@dataclass
class Checkpoint:
    name: str  # as configured
    model_type: str
    architecture: str


def check_convertible(config: RunConfig) -> Checkpoint:
    """Refuse, before any work, a model KerasHub cannot convert, naming the model types it can."""
    from core.models import load_model_config

    hf_config = load_model_config(config.model)
    model_type = str(getattr(hf_config, "model_type", "") or "")
    architecture = (getattr(hf_config, "architectures", None) or [type(hf_config).__name__])[0]
    supported = supported_model_types()
    if model_type not in supported:
        import keras_hub

        raise ModelError(
            f"the keras engine cannot use {config.model.name_or_path}: KerasHub {keras_hub.__version__} cannot convert "
            f"a {architecture} (model type {model_type or 'unknown'}) into a Keras text classifier; "
            f"it can convert these model types: {', '.join(supported)}",
            "choose a model of one of those types (the bundled all-MiniLM-L6-v2 is a BERT), "
            "or use engine: trainer or torch-loop, which take any transformers encoder",
        )
    return Checkpoint(config.model.name_or_path, model_type, architecture)


def checkpoint_dir(config: RunConfig) -> Path:
    """A local transformers-format directory holding the checkpoint: the given one, or the Hub snapshot (cached
    files are used offline; a download only happens where the Hub is reachable)."""
    from core.hub import hub_reachable, require_hub
    from core.models import resolve_model

    where = resolve_model(config.model.name_or_path)
    if Path(where).is_dir():
        path = Path(where)
    else:
        from huggingface_hub import snapshot_download

        offline = not hub_reachable()
        try:
            path = Path(snapshot_download(where, revision=config.model.revision, local_files_only=offline,
                                          allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model"]))
        except Exception as err:  # not cached while offline, unknown repository, ...
            if offline:
                require_hub("model", where, ModelError)
            raise ModelError(f"cannot fetch {where} from the Hub: {str(err).splitlines()[0]}",
                             "check the Hub id, or give a local model directory") from None
    if not (path / "model.safetensors").exists() and not (path / "model.safetensors.index.json").exists():
        raise ModelError(f"{config.model.name_or_path} has no safetensors weights, and KerasHub converts only those",
                         "save the model with save_pretrained (safetensors is its default), or use engine: trainer")
    return path


def build_classifier(source: Path, num_classes: int, task: Any = None) -> tuple[Any, Any]:
    """(model, backbone): KerasHub's backbone with the checkpoint's weights and a fresh head of num_classes, the one
    the task puts on it (Task.keras_model; KerasHub's TextClassifier for a task without one of its own)."""
    import_keras()
    import keras_hub

    hidden, head_dropout = checkpoint_dropouts(source)
    # KerasHub's converters leave dropout at its own default (0.1); the checkpoint's rates keep parity with PyTorch.
    backbone = keras_hub.models.Backbone.from_preset(str(source), **({} if hidden is None else {"dropout": hidden}))
    unknown = [name for name in backbone.input if name not in INPUT_COLUMNS]
    if unknown:
        raise ModelError(f"KerasHub's {type(backbone).__name__} takes inputs {unknown} that finetune-tui cannot feed",
                         "use engine: trainer or torch-loop")
    model = task.keras_model(backbone, num_classes, head_dropout) if task is not None else None
    return (model if model is not None else text_classifier(backbone, num_classes, head_dropout)), backbone


def text_classifier(backbone: Any, num_classes: int, dropout: float | None) -> Any:
    """KerasHub's TextClassifier for the backbone (BertTextClassifier, ...): one output vector per text."""
    import keras_hub

    head = next((cls for cls in _all_subclasses(keras_hub.models.TextClassifier)
                 if getattr(cls, "backbone_cls", None) is type(backbone)), None)
    if head is None:
        raise ModelError(f"KerasHub has no text classifier for {type(backbone).__name__}",
                         "use engine: trainer or torch-loop")
    extra = {} if dropout is None else {"dropout": dropout}
    return head(backbone=backbone, num_classes=num_classes, preprocessor=None, **extra)


def checkpoint_dropouts(source: Path) -> tuple[float | None, float | None]:
    """(encoder, classifier head) dropout from an HF config.json, under each architecture's own names, as
    transformers' *ForSequenceClassification reads them: the head falls back to the encoder's rate."""
    import json

    try:
        config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, None
    hidden = next((config[k] for k in ("hidden_dropout_prob", "dropout") if config.get(k) is not None), None)
    head = next((config[k] for k in ("classifier_dropout", "classifier_dropout_prob", "seq_classif_dropout")
                 if config.get(k) is not None), hidden)
    return hidden, head


def input_names(model: Any) -> list[str]:
    """The classifier's inputs (token_ids, padding_mask[, segment_ids]) in a stable order."""
    return [name for name in INPUT_COLUMNS if name in model.input]


def enable_lora(backbone: Any, rank: int, alpha: int, targets: list[str] | None) -> int:
    """LoRA on the backbone's attention projections (KerasHub's enable_lora); returns the number of adapted layers.

    transformers names (query, value) are mapped to KerasHub's (query_dense, value_dense)."""
    if not hasattr(backbone, "enable_lora"):
        raise ConfigError(f"this KerasHub {type(backbone).__name__} has no LoRA support",
                          "set training.lora: null, or use engine: trainer or torch-loop for LoRA")
    names = None
    if targets:
        names = sorted({n for t in targets for n in (t, f"{t}_dense")})
    backbone.enable_lora(rank, target_layer_names=names)
    adapted = [layer for layer in backbone._flatten_layers(include_self=False) if getattr(layer, "lora_enabled", False)]
    if not adapted:
        raise ConfigError(f"no layer of {type(backbone).__name__} matches training.lora.target_modules {targets}",
                          "set target_modules to null (query and value), or to names such as [query, value]")
    for layer in adapted:  # KerasHub's enable_lora scales by 1; apply the configured alpha / r like peft does
        layer.lora_alpha = alpha
    return len(adapted)
