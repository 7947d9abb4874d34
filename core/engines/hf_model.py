"""Building and saving the PyTorch model with the task's head; shared by the PyTorch engines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.config import RunConfig
from core.errors import ConfigError, ModelError
from core.models import load_error, resolve_model

ADAPTER_DIR = "adapter"  # RUN/adapter: a LoRA run's adapter weights, beside RUN/model (merged)


def build_model(config: RunConfig, label_names: list[str]) -> Any:
    """The task's transformers model (config.task) with a head for `label_names`, frozen or with LoRA as asked."""
    import torch
    import transformers

    from core.tasks import get_task

    task = get_task(config.task)
    quantized = _quantization(config)
    try:
        model = getattr(transformers, task.auto_model_class).from_pretrained(
            resolve_model(config.model.name_or_path),
            revision=config.model.revision,
            trust_remote_code=config.model.trust_remote_code,
            # Master weights in float32 whatever the checkpoint was saved in: transformers 5 would load a bf16/fp16
            # checkpoint as it is, and AdamW would then update bf16 weights, or fp16's GradScaler refuse them.
            # training.mixed_precision stays autocast over these float32 weights. Weights LoRA leaves frozen are
            # never updated: under 16-bit mixed precision they load in it (half the memory), and what trains is
            # made float32 below.
            dtype=frozen_dtype(config),
            **quantized,
            **task.head_config(label_names),
        )
    except ValueError as err:
        if "trust_remote_code" in str(err):
            raise load_error(err, "model", config.model.name_or_path, "") from None
        raise ModelError(f"{config.model.name_or_path} cannot be used for {task.name}: {err}",
                         "choose an encoder model such as BERT, DistilBERT or RoBERTa") from None
    except OSError as err:
        raise load_error(err, "the weights of", config.model.name_or_path,
                         "give a directory saved with save_pretrained (model.safetensors in it), or a Hub id") from None
    if config.training.freeze_encoder:
        for param in model.base_model.parameters():
            param.requires_grad = False
    if quantized:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=config.training.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False})
    elif config.training.gradient_checkpointing:
        # Non-reentrant checkpointing also gives gradients to LoRA's adapters when the frozen inputs need none.
        if hasattr(model, "activation_checkpointing_enable"):  # transformers 5.2x's name for it
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.training.gradient_checkpointing and hasattr(model.config, "use_cache"):
        model.config.use_cache = False  # a cache is built for generation; with checkpointing it only costs memory
    if config.training.lora is not None:
        model = _with_lora(model, config, task.peft_task_type)
        for param in model.parameters():  # adapters and a head peft trains (modules_to_save): float32 masters
            if param.requires_grad and param.dtype != torch.float32:
                param.data = param.data.float()
    return model


def frozen_dtype(config: RunConfig) -> Any:
    """The dtype the pretrained weights load in: float32, or with LoRA under bf16/fp16 mixed precision that 16-bit
    type (the frozen weights only feed autocast's 16-bit matmuls)."""
    import torch

    t = config.training
    if t.lora is not None and t.mixed_precision in ("bf16", "fp16"):
        return torch.bfloat16 if t.mixed_precision == "bf16" else torch.float16
    return torch.float32


def check_quantization(config: RunConfig) -> None:
    """training.quantization needs a CUDA GPU and bitsandbytes: refused before anything loads, with the reason."""
    bits = config.training.quantization
    if bits is None:
        return
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(f"training.quantization is {bits}, and this machine has no CUDA GPU: bitsandbytes' "
                          f"{bits} weights (QLoRA) are computed by CUDA kernels",
                          "set training.quantization: null to train LoRA over full-precision weights (or run on a "
                          "GPU machine)")
    from core.engines import installed

    if not installed("bitsandbytes"):
        raise ConfigError(f"training.quantization is {bits}, which needs the bitsandbytes package",
                          "pip install bitsandbytes, or set training.quantization: null")


def _quantization(config: RunConfig) -> dict[str, Any]:
    """from_pretrained's quantization_config for training.quantization (QLoRA's NF4 with double quantization, bf16
    compute where the GPU has it), or nothing."""
    bits = config.training.quantization
    if bits is None:
        return {}
    import torch
    from transformers import BitsAndBytesConfig

    check_quantization(config)
    if bits == "8bit":
        return {"quantization_config": BitsAndBytesConfig(load_in_8bit=True)}
    compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"quantization_config": BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                      bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=compute)}


def _with_lora(model: Any, config: RunConfig, task_type: str) -> Any:
    from peft import LoraConfig, TaskType, get_peft_model

    lora = config.training.lora
    assert lora is not None
    try:
        return get_peft_model(
            model,
            LoraConfig(task_type=getattr(TaskType, task_type), r=lora.r, lora_alpha=lora.alpha,
                       lora_dropout=lora.dropout,
                       target_modules=lora_target_modules(lora.target_modules)),
        )
    except ValueError as err:
        raise ModelError(
            f"LoRA cannot be applied to this model: {err}",
            "set training.lora.target_modules to module names of this model, e.g. [query, value]",
        ) from None


def lora_target_modules(names: list[str]) -> str | list[str]:
    """training.lora.target_modules as peft takes them: its spelling for every linear layer but the output head is
    the string "all-linear" itself (a list holding it would name a module)."""
    return "all-linear" if names == ["all-linear"] else names


def count_trainable(model: Any) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total


def save_final_model(model: Any, tokenizer: Any, out_dir: Path, prepared: Any) -> Path:
    """save_pretrained (safetensors) so `pipeline("text-classification", model=out_dir)` loads it, with the task's
    last changes (Task.finalize_model) and task.json, which tells predict what the outputs mean."""
    from core.tasks import get_task
    from core.tasks.model_meta import write_meta

    task = get_task(prepared.task)
    if hasattr(model, "merge_and_unload"):  # LoRA: fold the adapters in, so the result is a plain model
        # The adapter alone too (megabytes, not the model's gigabytes), beside the model: RUN/adapter loads with
        # peft's PeftModel.from_pretrained over the base model, or shares the run without the merged weights.
        adapter_dir = out_dir.parent / ADAPTER_DIR
        model.save_pretrained(adapter_dir)
        tokenizer.save_pretrained(adapter_dir)
        model = model.merge_and_unload()
    task.finalize_model(model, prepared)
    task.finalize_saved(model, tokenizer)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    write_meta(out_dir, task.model_meta(prepared))
    return out_dir
