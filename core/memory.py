"""How much memory a run will need, before anything loads onto a device: weights, gradients, optimizer state and
activations for the configured batch, max_length, precision, LoRA and quantization, against the free memory of the
visible GPUs (or of the machine, on a CPU). `validate`, `run` and the wizard's training step show it; the batch-size
probe (core.probe) confirms it on the real device.

The counts are exact: the model is built on PyTorch's meta device (no memory, no weights read) with the task's
class, and LoRA's trainable parameters are counted from the layers peft would adapt. The activations are a model:
per layer and token, 34 x hidden bytes in 16 bits (Korthikanti et al. 2022, "Reducing Activation Recomputation in
Large Transformer Models", without the attention-score term, which SDPA and flash attention do not keep), twice that
in float32, the layer's input alone with gradient checkpointing; plus the logits in float32 (batch x tokens x
vocabulary), which for a 150k-token vocabulary is often the largest single tensor.
"""

from __future__ import annotations

import copy
import fnmatch
from dataclasses import dataclass, field
from typing import Any

from core.config import RunConfig

GiB = 2**30
_ACTIVATION_FACTOR = 34  # bytes per layer, token and hidden unit in 16 bits (see the module docstring)
_RUNTIME_OVERHEAD = int(0.5 * GiB)  # CUDA context, allocator caches, kernels' workspaces
_QUANT_BYTES = {"4bit": 0.5 + 0.035, "8bit": 1.0 + 0.03}  # per weight, with the quantization constants


@dataclass
class MemoryEstimate:
    parameters: int
    trainable: int
    parts: dict[str, int]  # weights, gradients, optimizer, activations, overhead: bytes per device
    device: str  # "cuda" or "cpu"
    free: list[int] = field(default_factory=list)  # bytes free per visible GPU, or the machine's available RAM

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    @property
    def fits(self) -> bool | None:
        """Whether the run fits every device it will use (None: the free memory is unknown)."""
        if not self.free:
            return None
        return self.total <= min(self.free)

    def lines(self) -> list[str]:
        shown = ", ".join(f"{name} {_gib(size)}" for name, size in self.parts.items() if size)
        where = "per GPU" if self.device == "cuda" else "in RAM"
        head = (f"memory estimate {where}: {_gib(self.total)} ({shown}); {count(self.trainable)} of "
                f"{count(self.parameters)} parameters train")
        if self.fits is None:
            return [head]
        room = f"{_gib(min(self.free))} free" + (" on the fullest GPU" if len(self.free) > 1 else "")
        return [head + f"; {room}" + ("" if self.fits else " — it will not fit")]


def _gib(size: float) -> str:
    return f"{size / GiB:.1f} GiB" if size >= 0.1 * GiB else f"{size / 2**20:.0f} MiB"


def count(n: int) -> str:
    """22.7M, 1.3B, 4.1K: parameter counts as people say them."""
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def meta_model(config: RunConfig, model_config: Any) -> Any:
    """The task's model on the meta device: its parameters' shapes and names, no memory."""
    import torch
    import transformers

    from core.tasks import get_task

    task = get_task(config.task)
    cls = getattr(transformers, task.auto_model_class)
    shaped = copy.deepcopy(model_config)
    for key, value in task.head_config(["a", "b"]).items():  # the head's size barely counts
        setattr(shaped, key, value)
    with torch.device("meta"):
        return cls.from_config(shaped)


def lora_trainable(model: Any, config: RunConfig) -> int:
    """Parameters LoRA would train: r x (in + out) for each linear layer it adapts, plus the task's head where peft
    trains it too (classification heads)."""
    lora = config.training.lora
    assert lora is not None
    count = sum(lora.r * (m.in_features + m.out_features) for m in lora_layers(model, config))
    head = [p.numel() for n, p in model.named_parameters() if n.startswith(("classifier", "score"))]
    return count + sum(head)


def lora_layers(model: Any, config: RunConfig) -> list[Any]:
    """The linear layers LoRA adapts, as peft chooses them: the configured names, every linear layer but the output
    head for [all-linear], else peft's defaults for the model type."""
    from torch import nn

    lora = config.training.lora
    assert lora is not None
    targets = lora.target_modules
    if targets is None:
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

        targets = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(model.config.model_type, [])
    every = targets == ["all-linear"]
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    found = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear) or module is output:
            continue
        leaf = name.rsplit(".", 1)[-1]
        if every or any(leaf == t or fnmatch.fnmatch(name, t) for t in targets):
            found.append(module)
    return found


def estimate(config: RunConfig, model_config: Any, free: list[int] | None = None, device: str | None = None,
             model: Any = None) -> MemoryEstimate:
    """The estimate for this config and model (model_config: transformers' config, as core.models loads it; model:
    its meta_model, where the caller has built it already)."""
    model = model if model is not None else meta_model(config, model_config)
    t = config.training
    parameters = sum(p.numel() for p in model.parameters())
    trainable = lora_trainable(model, config) if t.lora is not None else parameters
    if t.freeze_encoder:
        trainable = sum(p.numel() for n, p in model.named_parameters() if not n.startswith(model.base_model_prefix))
    if t.quantization is not None:
        linear = sum(m.weight.numel() for m in model.modules() if type(m).__name__ == "Linear")
        weights = int(linear * _QUANT_BYTES[t.quantization] + (parameters - linear) * 2)
    else:  # float32 masters, or 16-bit weights LoRA leaves frozen (core.engines.hf_model.frozen_dtype)
        weights = parameters * (2 if t.lora is not None and t.mixed_precision in ("bf16", "fp16") else 4)
    if t.lora is not None:
        weights += trainable * 4  # the adapters (and a head copy peft trains), float32 beside the base weights
    gradients = trainable * 4
    optimizer = trainable * 8  # AdamW's two float32 moments

    hidden = int(getattr(model_config, "hidden_size", 0) or getattr(model_config, "n_embd", 0) or 0)
    layers = int(getattr(model_config, "num_hidden_layers", 0) or getattr(model_config, "n_layer", 0) or 0)
    if t.fsdp:  # each process holds its shard of all three, and one layer's weights whole while it computes
        from core.engines.base import requested_processes

        shards = max(1, requested_processes(config))
        unit = weights // max(layers, 1)
        weights, gradients, optimizer = weights // shards + unit, gradients // shards, optimizer // shards
    tokens = t.per_device_train_batch_size * config.tokenizer.max_length
    width = 1 if t.mixed_precision in ("bf16", "fp16") else 2  # 16-bit activations, or float32
    full_layer = tokens * hidden * _ACTIVATION_FACTOR * width
    # With gradient checkpointing each layer's input is kept, and one layer's activations are rebuilt at a time.
    activations = layers * tokens * hidden * 2 * width + full_layer if t.gradient_checkpointing else layers * full_layer
    if t.lora is not None and t.lora.dropout > 0 and not t.gradient_checkpointing:
        # peft's LoRA dropout keeps each adapted layer's input a second time, dropped out, and its 1-byte mask
        # (bench/memory_estimate.py measured 64% more activations for [all-linear] on Llama without this).
        inputs = sum(m.in_features for m in lora_layers(model, config))
        activations += tokens * inputs * (2 * width + 1)
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if output is not None:  # a language model's logits in float32: cross-entropy's saved log-softmax, the logits'
        activations += tokens * int(output.weight.shape[0]) * 4 * 3  # gradient and its own, alive together
    device = device or _device()
    return MemoryEstimate(parameters, trainable, {
        "weights": weights, "gradients": gradients, "optimizer": optimizer, "activations": activations,
        "overhead": _RUNTIME_OVERHEAD if device == "cuda" else 0,
    }, device, free if free is not None else free_memory(device))


def _device() -> str:
    from core.device import gpu_count

    return "cuda" if gpu_count() > 0 else "cpu"


def free_memory(device: str) -> list[int]:
    """Bytes free on each visible GPU (NVML, CUDA_VISIBLE_DEVICES applied), or the machine's available RAM."""
    if device == "cuda":
        from core.device import visible_gpus

        return [int((g["mem_total_mb"] - g["mem_used_mb"]) * 2**20) for g in visible_gpus()
                if g.get("mem_total_mb") is not None]
    import psutil

    return [int(psutil.virtual_memory().available)]


def advice(est: MemoryEstimate, config: RunConfig, model_config: Any, model: Any = None) -> str | None:
    """The change that would make a run that does not fit fit, tried in the order people reach for them and
    estimated again each time; None when it fits (or its free memory is unknown)."""
    from core.tasks import get_task

    if est.fits is not False:
        return None
    t = config.training
    model = model if model is not None else meta_model(config, model_config)
    if not t.fsdp and t.quantization is None and len(est.free) >= 2:  # several GPUs: sharding alone may do
        sharded = {"fsdp": True, "num_processes": len(est.free), "gradient_checkpointing": False}
        training = type(t).model_validate({**t.model_dump(), **sharded})
        if estimate(config.model_copy(update={"training": training}), model_config, est.free, est.device,
                    model).fits:
            return f"set training.fsdp: true with num_processes {len(est.free)} (the model sharded over the GPUs)"
    changes: list[tuple[str, dict[str, Any]]] = []
    if not t.gradient_checkpointing:
        changes.append(("set training.gradient_checkpointing: true", {"gradient_checkpointing": True}))
    if t.per_device_train_batch_size > 1:
        smaller = max(1, t.per_device_train_batch_size // 4)
        steps = t.gradient_accumulation_steps * (t.per_device_train_batch_size // smaller)
        changes.append((f"lower training.per_device_train_batch_size to {smaller} with gradient_accumulation_steps "
                        f"{steps} (the same effective batch)",
                        {"per_device_train_batch_size": smaller, "gradient_accumulation_steps": steps}))
    lora = t.lora.model_dump() if t.lora is not None else {"r": 16, "alpha": 32, "dropout": 0.05,
                                                            "target_modules": ["all-linear"]}
    if t.lora is None:
        changes.append(("train LoRA adapters (training.lora) instead of every weight", {"lora": lora}))
    quantizes = "training.quantization" in get_task(config.task).own_settings  # a task that trains LLMs
    if t.quantization is None and est.device == "cuda" and quantizes:
        changes.append(("set training.quantization: 4bit (QLoRA)", {"quantization": "4bit", "lora": lora}))
    update: dict[str, Any] = {}
    said: list[str] = []
    for text, fields in changes:
        update.update(fields)
        said.append(text)
        training = type(t).model_validate({**t.model_dump(), **update})
        trial = estimate(config.model_copy(update={"training": training}), model_config, est.free, est.device,
                         model)
        if trial.fits:
            return "; ".join(said)
    return "; ".join(said) + "; even then it will not fit: choose a smaller model" if said else \
        "choose a smaller model, or a machine with more memory"


def report(config: RunConfig, model_config: Any = None) -> tuple[MemoryEstimate | None, list[str]]:
    """The estimate for a config and what to say about it: its line, and where it will not fit a warning that
    names the change that would make it fit. An architecture that cannot be built on the meta device gives a line
    saying so, never an error: the estimate informs, the probe and the run decide."""
    from core.models import load_model_config

    try:
        model_config = model_config if model_config is not None else load_model_config(config.model)
        model = meta_model(config, model_config)
        est = estimate(config, model_config, model=model)
    except Exception as err:  # see docstring
        return None, [f"memory estimate unavailable: {type(err).__name__}: {err}"]
    lines = est.lines()
    fix = advice(est, config, model_config, model)
    if fix is not None:
        lines.append(f"warning: the run will not fit in memory ({_gib(est.total)} needed, {_gib(min(est.free))} "
                     f"free); to make it fit: {fix}")
    return est, lines
