"""A trained KerasHub causal LM back in transformers format: the checkpoint it was converted from, with the trained
weights in place of the original ones. The keras engine saves text-generation's model with this code (through
core.engines.keras_export), and exported keras scripts inline its source verbatim (Task.script_context), so a script
writes the very files a run writes.

So it imports nothing of finetune-tui, only the standard library at module level (numpy, keras, keras-hub,
safetensors, torch and transformers inside the functions that need them), and has no `from __future__` import (it
would not stay at the top of a script). What cannot be written back is WeightsError (a ValueError, with the fix),
which finetune-tui raises again as its own ModelError.

The weights go back by inverting KerasHub's own converter (route E): the converter is run again on a loader whose
"checkpoint tensors" hold their own element positions, so each Keras variable records which element of which
checkpoint tensor it was made from (the converter's hooks only transpose, reshape and slice); the trained values are
then scattered back into tensors of the checkpoint's keys, shapes and dtypes. That covers every converter that moves
weights with port_weight alone, including model types KerasHub has no exporter for (qwen3, smollm3). Where the trace
refuses (mistral's converter casts the embeddings, which is no rearrangement), KerasHub's own exporter's weight map is
used (route D), checked against the checkpoint's keys and shapes. KerasHub's exporters write a lossy config.json
(Llama's max_position_embeddings, GPT-2's token ids), so config.json and generation_config.json always come from the
checkpoint itself. LoRA needs no merge: a LoRA layer's `kernel` is already its merged value, and both routes read it.
"""

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

WEIGHTS_FILE = "model.safetensors"


class WeightsError(ValueError):
    """The trained weights cannot be written back in transformers format: the problem and its fix."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(f"{problem}\n  fix: {fix}")
        self.problem, self.fix = problem, fix


class NotTraceable(ValueError):
    """The converter does something to a weight that is not a pure rearrangement, or leaves weights out."""


def save_transformers(backbone: Any, source: Path, out: Path, finalize: Callable[[Any], None] | None = None) -> str:
    """model.safetensors with the backbone's weights under the keys of the checkpoint in `source`, and its config.json
    and generation_config.json; `finalize` gets an object with `config` and `generation_config` to change before they
    are written. Returns how the weights were mapped back, for the log."""
    shapes, dtypes = checkpoint_tensors(source)
    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    try:
        tensors, route = traced_weights(backbone, source, config, shapes), "KerasHub's converter, inverted"
    except NotTraceable as err:
        tensors, route = exporter_weights(backbone, shapes, config, err), "KerasHub's exporter"
    out.mkdir(parents=True, exist_ok=True)
    write_weights(tensors, dtypes, out / WEIGHTS_FILE)
    write_configs(source, out, finalize)
    return route


def checkpoint_tensors(source: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """The checkpoint's tensor keys with their shapes and safetensors dtypes (F32, BF16...), read without loading
    any tensor."""
    from safetensors import safe_open

    index = source / "model.safetensors.index.json"
    files = (sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())) if index.exists()
             else [WEIGHTS_FILE])
    shapes, dtypes = {}, {}
    for name in files:
        with safe_open(str(source / name), framework="np") as f:
            for key in f.keys():  # noqa: SIM118 (a safe_open handle is no dict)
                part = f.get_slice(key)
                shapes[key], dtypes[key] = tuple(part.get_shape()), str(part.get_dtype())
    return shapes, dtypes


class TracingLoader:
    """Stands in for KerasHub's SafetensorLoader: each checkpoint tensor is an int64 array of its own element
    positions, so after the converter's hook (transpose, reshape, slice) each Keras element knows its source."""

    def __init__(self, shapes: dict[str, tuple[int, ...]]) -> None:
        self.shapes = shapes
        self.traces: list[tuple[Any, str, Any]] = []  # (Keras variable, checkpoint key, flat index)

    def _key(self, hf_key: str) -> str:
        """As SafetensorLoader finds a key: as given, else under a prefix (model., transformer.)."""
        if hf_key in self.shapes:
            return hf_key
        found = [k for k in self.shapes if k.endswith("." + hf_key)]
        if len(found) != 1:
            raise NotTraceable(f"the converter asks for {hf_key}, which the checkpoint does not hold once")
        return found[0]

    def _positions(self, key: str) -> Any:
        import numpy as np

        return np.arange(int(np.prod(self.shapes[key])), dtype=np.int64).reshape(self.shapes[key])

    def get_tensor(self, hf_key: str) -> Any:
        # A converter that reads tensors and assigns variables itself (mixture-of-experts stacks): those variables
        # are not traced, and the coverage check of traced_weights refuses the export.
        return self._positions(self._key(hf_key))

    def port_weight(self, keras_variable: Any, hf_weight_key: str, hook_fn: Any = None) -> None:
        import numpy as np

        key = self._key(hf_weight_key)
        index = self._positions(key)
        if hook_fn:
            index = np.asarray(hook_fn(index, list(keras_variable.shape)))
        if index.dtype != np.int64 or tuple(index.shape) != tuple(keras_variable.shape):
            raise NotTraceable(f"the converter's hook for {hf_weight_key} is not a pure rearrangement "
                               f"({index.dtype}, shape {tuple(index.shape)})")
        # port_weight never assigns here, so the trained values stay; `keras_variable` of a LoRA layer is its merged
        # kernel, read by traced_weights.
        self.traces.append((keras_variable, key, index.reshape(-1)))

    def __enter__(self) -> "TracingLoader":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


def traced_weights(backbone: Any, source: Path, config: dict[str, Any],
                   shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """Route E: the backbone's values scattered back to the checkpoint tensors its converter made them from."""
    import numpy as np
    from keras import ops
    from keras_hub.src.utils.transformers.preset_loader import TransformersPresetLoader

    loader = TracingLoader(shapes)
    TransformersPresetLoader(str(source), config).converter.convert_weights(backbone, loader, config)
    tensors = {key: np.full(int(np.prod(shape)), np.nan, np.float32) for key, shape in shapes.items()}
    for variable, key, index in loader.traces:
        tensors[key][index] = ops.convert_to_numpy(ops.cast(variable, "float32")).reshape(-1)
    missing = [key for key, values in tensors.items() if np.isnan(values).any()]
    if "lm_head.weight" in missing and tied_embeddings(config):  # stored although transformers ties it
        missing.remove("lm_head.weight")
        del tensors["lm_head.weight"]
    if missing:
        raise NotTraceable(f"the converter's port_weight calls leave out {', '.join(missing[:3])}")
    return {key: values.reshape(shapes[key]) for key, values in tensors.items()}


def tied_embeddings(config: dict[str, Any]) -> bool:
    return bool(config.get("tie_word_embeddings", True))  # transformers' default


def exporter_weights(backbone: Any, shapes: dict[str, tuple[int, ...]], config: dict[str, Any],
                     why: NotTraceable) -> dict[str, Any]:
    """Route D: KerasHub's exporter's weight map, refused unless it gives every checkpoint key in its shape."""
    import numpy as np
    from keras_hub.src.utils.transformers.export.hf_exporter import MODEL_EXPORTERS, _to_numpy_dict

    name = type(backbone).__name__
    fix = "use engine: trainer or torch-loop for this model"
    if name not in MODEL_EXPORTERS:
        raise WeightsError(f"cannot write the trained {name} back in transformers format: {why}, and KerasHub has "
                           "no exporter for it", fix)
    exported = _to_numpy_dict(MODEL_EXPORTERS[name](backbone, include_lm_head=True))
    wanted = {k: s for k, s in shapes.items() if not (k == "lm_head.weight" and tied_embeddings(config))}
    wrong = [k for k, s in wanted.items() if k not in exported or tuple(np.shape(exported[k])) != s]
    if wrong:
        raise WeightsError(f"cannot write the trained {name} back in transformers format: {why}, and KerasHub's "
                           f"exporter does not give {', '.join(wrong[:3])} as the checkpoint holds them", fix)
    return {k: np.asarray(exported[k], dtype=np.float32) for k in wanted}


def write_weights(tensors: dict[str, Any], dtypes: dict[str, str], path: Path) -> None:
    """In each tensor's dtype in the checkpoint (a bfloat16 checkpoint stays one), through torch, which has bfloat16."""
    import numpy as np
    import torch
    from safetensors.torch import save_file

    kinds = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
    save_file({k: torch.from_numpy(np.ascontiguousarray(v)).to(kinds.get(dtypes[k], torch.float32))
               for k, v in tensors.items()}, str(path), metadata={"format": "pt"})


def write_configs(source: Path, out: Path, finalize: Callable[[Any], None] | None) -> None:
    """The checkpoint's config.json and generation_config.json (made from the config where it has none), changed by
    `finalize` first."""
    from transformers import AutoConfig, GenerationConfig

    config = AutoConfig.from_pretrained(source)
    if (source / "generation_config.json").is_file():
        generation = GenerationConfig.from_pretrained(source)
    else:
        generation = GenerationConfig.from_model_config(config)
    saved = SimpleNamespace(config=config, generation_config=generation)
    if finalize is not None:
        finalize(saved)
    config.save_pretrained(out)
    generation.save_pretrained(out)
