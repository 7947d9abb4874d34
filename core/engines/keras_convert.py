"""From a Hugging Face checkpoint to a Keras model, through KerasHub's own converters.

KerasHub reads a transformers-format directory (config.json + safetensors) and builds its Backbone with the same
weights (`Backbone.from_preset(dir)`). What goes on top depends on the task (Task.keras_kind):
  classifier  a head of num_classes, the backbone's TextClassifier (BertTextClassifier, ...) or the task's own; a
              model type qualifies when KerasHub has a converter for it and a TextClassifier for its backbone
  causal_lm   the decoder's own causal LM (Llama3CausalLM, QwenCausalLM, ...) without a preprocessor; a model type
              qualifies when KerasHub has a converter and a CausalLM for it and the trained weights have been seen to
              go back to transformers format (core.engines.keras_export), since that is what the run leaves
Everything here imports TensorFlow only when called, so the CLI and the wizard can import this module cheaply.
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
# Decoder model types whose checkpoints were seen to convert, train and export back to transformers format with the
# same logits (KerasHub 0.32: llama, qwen2, gpt2, gemma, gemma2, gemma3_text, smollm3 to ~1e-7; mistral ~3e-4, its
# converter casts the embeddings to float16; qwen3 ~1e-4, its q/k norms keep KerasHub's epsilon). Mixture-of-experts
# types convert too, but neither KerasHub's exporter nor keras_export's traced inverse takes their experts back.
DECODER_TYPES = ("gemma", "gemma2", "gemma3_text", "gpt2", "llama", "mistral", "qwen2", "qwen3", "smollm3")
# transformers/peft module names (training.lora.target_modules) -> KerasHub's layer names in its decoders. GPT-2's
# fused c_attn is three KerasHub layers, its c_proj two (the attention's output and the MLP's).
PEFT_TO_KERAS = {
    "q_proj": ("query",), "k_proj": ("key",), "v_proj": ("value",), "o_proj": ("attention_output",),
    "gate_proj": ("feedforward_gate_dense",), "up_proj": ("feedforward_intermediate_dense",),
    "down_proj": ("feedforward_output_dense",),
    "c_attn": ("query", "key", "value"), "c_fc": ("feedforward_intermediate_dense",),
    "c_proj": ("attention_output", "feedforward_output_dense"),
}
# peft's "all-linear": every linear layer but the output one; KerasHub ties or keeps that in token_embedding.
ALL_LINEAR = tuple(sorted({name for names in PEFT_TO_KERAS.values() for name in names}))


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

    heads = {getattr(cls, "backbone_cls", None) for cls in _all_subclasses(keras_hub.models.TextClassifier)}
    return _convertible(ENCODER_TYPES, heads)


@functools.lru_cache(maxsize=1)
def supported_causal_types() -> tuple[str, ...]:
    """Decoder model types (DECODER_TYPES) the installed KerasHub can turn into a text causal LM."""
    import_keras()
    return _convertible(DECODER_TYPES, set(causal_lm_classes()))


def _convertible(model_types: tuple[str, ...], backbones: set[Any]) -> tuple[str, ...]:
    """The model types KerasHub has a converter for whose backbone is one of `backbones`."""
    from keras_hub.src.utils.transformers.preset_loader import TransformersPresetLoader

    found = []
    for model_type in model_types:
        try:
            backbone_cls = TransformersPresetLoader(None, {"model_type": model_type}).converter.backbone_cls
        except ValueError:  # KerasHub has no converter for this type
            continue
        if backbone_cls in backbones:
            found.append(model_type)
    return tuple(found)


def causal_lm_classes() -> dict[type, type]:
    """Backbone class -> KerasHub's text CausalLM for it. KerasHub's Seq2SeqLMs (BART, T5Gemma) subclass CausalLM and
    an Assistant CausalLM is a speculative-decoding drafter: neither is a decoder LM to instruction-tune."""
    import keras_hub

    found: dict[type, type] = {}
    for cls in _all_subclasses(keras_hub.models.CausalLM):
        backbone = getattr(cls, "backbone_cls", None)
        if backbone is None or issubclass(cls, keras_hub.models.Seq2SeqLM) or "Assistant" in cls.__name__:
            continue
        found.setdefault(backbone, cls)
    return found


def model_class(backbone_cls: type, causal: bool) -> type:
    """KerasHub's class a task trains on a backbone of this class: its CausalLM (Llama3CausalLM, ...) or its
    TextClassifier (BertTextClassifier, ...); a ModelError where KerasHub has none."""
    import keras_hub

    if causal:
        head, what = causal_lm_classes().get(backbone_cls), "causal LM"
    else:
        head = next((cls for cls in _all_subclasses(keras_hub.models.TextClassifier)
                     if getattr(cls, "backbone_cls", None) is backbone_cls), None)
        what = "text classifier"
    if head is None:
        raise ModelError(f"KerasHub has no {what} for {backbone_cls.__name__}", "use engine: trainer or torch-loop")
    return head


def causal_lm(backbone: Any) -> Any:
    """KerasHub's CausalLM for the backbone, without a preprocessor: transformers' tokenizer makes the token ids
    (KerasHub converts few Hub tokenizers), so the model takes token_ids and padding_mask."""
    return model_class(type(backbone), causal=True)(backbone=backbone, preprocessor=None)


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


def check_convertible(config: RunConfig, cheap: bool = False) -> Checkpoint:
    """Refuse, before any work, a model KerasHub cannot convert into what the task trains (Task.keras_kind), naming
    the model types it can, or a checkpoint whose settings its converter would get wrong.

    cheap: without TensorFlow (before a run is made, core.engines.keras.precheck): against the model types
    worth asking KerasHub about (ENCODER_TYPES, DECODER_TYPES); the run itself asks the installed KerasHub."""
    import importlib.metadata

    from core.models import load_model_config, resolve_model
    from core.tasks import get_task

    hf_config = load_model_config(config.model)
    model_type = str(getattr(hf_config, "model_type", "") or "")
    architecture = (getattr(hf_config, "architectures", None) or [type(hf_config).__name__])[0]
    causal = get_task(config.task).keras_kind == "causal_lm"
    if cheap:
        supported = DECODER_TYPES if causal else ENCODER_TYPES
    else:
        supported = supported_causal_types() if causal else supported_model_types()
    if model_type not in supported:
        what, example, others = (("a Keras causal LM", "HuggingFaceTB/SmolLM2-360M-Instruct is a llama",
                                  "any transformers decoder LM") if causal else
                                 ("a Keras text classifier", "the bundled all-MiniLM-L6-v2 is a BERT",
                                  "any transformers encoder"))
        raise ModelError(
            f"the keras engine cannot use {config.model.name_or_path}: KerasHub "
            f"{importlib.metadata.version('keras-hub')} cannot convert a {architecture} (model type "
            f"{model_type or 'unknown'}) into {what}; it can convert these model types: {', '.join(supported)}",
            f"choose a model of one of those types ({example}), or use engine: trainer or torch-loop, which take "
            f"{others}",
        )
    local = Path(resolve_model(config.model.name_or_path)) / "config.json"
    if causal and local.is_file():  # a Hub checkpoint's raw config.json is read once it is fetched (build_model)
        check_decoder_config(_read_config(local), config.model.name_or_path)
    return Checkpoint(config.model.name_or_path, model_type, architecture)


def _read_config(path: Path) -> dict[str, Any]:
    import json

    return dict(json.loads(path.read_text(encoding="utf-8")))


def check_decoder_config(raw: dict[str, Any], name: str) -> None:
    """Refuse a decoder checkpoint whose config.json (as saved: the converters read it raw) sets something KerasHub's
    converter leaves out, which would give a model that computes something else than the checkpoint."""
    model_type = raw.get("model_type")
    fix = "use engine: trainer or torch-loop, which load every transformers setting"
    for key in ("attention_bias", "mlp_bias"):
        if raw.get(key) and model_type != "smollm3":  # SmolLM3's converter is the one that reads them
            raise ModelError(f"{name} sets {key}: true, which KerasHub's {model_type} converter leaves out (the "
                             "converted model would have no such biases)", fix)
    hidden, heads = raw.get("hidden_size"), raw.get("num_attention_heads")
    head_dim = raw.get("head_dim")
    if model_type in ("llama", "qwen2") and head_dim is not None and hidden and heads and head_dim != hidden // heads:
        raise ModelError(f"{name} sets head_dim {head_dim}, not hidden_size / num_attention_heads "
                         f"({hidden // heads}), and KerasHub's {model_type} converter knows only the latter", fix)
    if model_type in ("gemma2", "gemma3_text"):
        scalar = raw.get("query_pre_attn_scalar")
        if scalar is not None and scalar not in (head_dim, (hidden or 0) // (heads or 1)):
            raise ModelError(f"{name} sets query_pre_attn_scalar {scalar}; KerasHub's {model_type} converter "
                             f"knows only head_dim ({head_dim}) or hidden_size / num_attention_heads", fix)
    if model_type == "gemma3_text":  # its converter reads its own per-attention rope settings
        return
    scaling = raw.get("rope_scaling") or {}
    rope_type = scaling.get("rope_type") or scaling.get("type") or (raw.get("rope_parameters") or {}).get("rope_type")
    # llama's converter reads llama3 scaling from rope_scaling (as Hub checkpoints save it), not rope_parameters.
    if rope_type not in (None, "default") and not (model_type == "llama" and scaling.get("rope_type") == "llama3"):
        key = "rope_scaling" if scaling else "rope_parameters"
        raise ModelError(f"{name} sets {key} of rope_type {rope_type}, which KerasHub's {model_type} converter "
                         "leaves out (positions would be encoded differently)", fix)


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


def build_model(source: Path, num_classes: int, task: Any = None) -> tuple[Any, Any]:
    """(model, backbone): KerasHub's backbone with the checkpoint's weights and what the task puts on it
    (Task.keras_model: a fresh head of num_classes, or a decoder's causal LM; KerasHub's TextClassifier for a task
    without a model of its own)."""
    import_keras()
    import keras_hub

    backbone = keras_hub.models.Backbone.from_preset(str(source), **backbone_settings(source, task))
    _, head_dropout = checkpoint_dropouts(source)
    unknown = [name for name in backbone.input if name not in INPUT_COLUMNS]
    if unknown:
        raise ModelError(f"KerasHub's {type(backbone).__name__} takes inputs {unknown} that finetune-tui cannot feed",
                         "use engine: trainer or torch-loop")
    model = task.keras_model(backbone, num_classes, head_dropout) if task is not None else None
    return (model if model is not None else text_classifier(backbone, num_classes, head_dropout)), backbone


build_classifier = build_model  # its name before causal LMs


def backbone_settings(source: Path, task: Any) -> dict[str, Any]:
    """Checkpoint settings KerasHub's converters leave at KerasHub's defaults, as from_preset keyword arguments."""
    if task is None or task.keras_kind != "causal_lm":
        hidden, _ = checkpoint_dropouts(source)
        # The converters leave dropout at KerasHub's default (0.1); the checkpoint's rates keep parity with PyTorch.
        return {} if hidden is None else {"dropout": hidden}
    raw = _read_config(source / "config.json")
    check_decoder_config(raw, str(source))
    # llama's converter drops rms_norm_eps (Llama3Backbone's is 1e-6; Llama 2, TinyLlama and SmolLM use 1e-5):
    # without it the logits differ by ~1e-2.
    if raw.get("model_type") == "llama" and raw.get("rms_norm_eps") is not None:
        return {"layer_norm_epsilon": raw["rms_norm_eps"]}
    return {}


def text_classifier(backbone: Any, num_classes: int, dropout: float | None) -> Any:
    """KerasHub's TextClassifier for the backbone: one output vector per text."""
    extra = {} if dropout is None else {"dropout": dropout}
    head = model_class(type(backbone), causal=False)
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


def lora_layer_names(targets: list[str] | None, decoder: bool) -> list[str] | None:
    """training.lora.target_modules as the KerasHub layer names enable_lora adapts; None: KerasHub's default.
    Encoders: transformers names (query, value) with KerasHub's (query_dense, value_dense). Decoders: peft's (q_proj,
    ..., down_proj, GPT-2's c_attn, c_fc, c_proj, all-linear) through PEFT_TO_KERAS; KerasHub's own names as they
    are."""
    if not targets:
        return None
    if decoder:
        return sorted({n for t in targets for n in (ALL_LINEAR if t == "all-linear" else PEFT_TO_KERAS.get(t, (t,)))})
    return sorted({n for t in targets for n in (t, f"{t}_dense")})


def enable_lora(backbone: Any, rank: int, alpha: int, targets: list[str] | None, decoder: bool = False) -> int:
    """LoRA on the backbone's layers named by targets (KerasHub's enable_lora; None: its default, the attention's
    query and value; lora_layer_names maps the names); returns the number of adapted layers."""
    if not hasattr(backbone, "enable_lora"):
        raise ConfigError(f"this KerasHub {type(backbone).__name__} has no LoRA support",
                          "set training.lora: null, or use engine: trainer or torch-loop for LoRA")
    backbone.enable_lora(rank, target_layer_names=lora_layer_names(targets, decoder))
    adapted = [layer for layer in backbone._flatten_layers(include_self=False) if getattr(layer, "lora_enabled", False)]
    if not adapted:
        examples = "[q_proj, v_proj] or all-linear" if decoder else "[query, value]"
        raise ConfigError(f"no layer of {type(backbone).__name__} matches training.lora.target_modules {targets}",
                          f"set target_modules to null (query and value), or to names such as {examples}")
    for layer in adapted:  # KerasHub's enable_lora scales by 1; apply the configured alpha / r like peft does
        layer.lora_alpha = alpha
    return len(adapted)
