"""training.fsdp: the model sharded over the run's torchrun processes with PyTorch's FSDP2 (fully_shard), through
Accelerate, on the engines that can (EngineInfo.shards_model: trainer and torch-loop).

The settings, one behaviour: FSDP2 (transformers 5 deprecates FSDP1, which cannot run on a CPU at all); each of the
model's _no_split_modules (its decoder layers) one unit, Accelerate's transformer-based wrapping with its default
class list; parameters resharded after the forward pass (full sharding: weights, gradients and AdamW's moments
each held once across the processes); and FULL_STATE_DICT, so checkpoints and the final model are whole
safetensors files that load anywhere.

On a CPU (processes talking over gloo) Accelerate 1.15 turns FSDP on only for accelerator devices: it keeps the
plugin and trains plain DDP without a word (accelerate/state.py). force_on_cpu switches its state to FSDP, so a CPU
run really shards (the tests run FSDP2's code paths on gloo this way), and fails loudly if Accelerate does not agree.
Every call that gathers the shards (a forward pass, generate, the full state dict) must run on every process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.errors import ConfigError

if TYPE_CHECKING:
    from core.config import RunConfig
    from core.engines import EngineInfo

# FullyShardedDataParallelPlugin's arguments (torch-loop), and the same as TrainingArguments' fsdp_config (trainer).
PLUGIN_ARGS: dict[str, Any] = {"fsdp_version": 2, "auto_wrap_policy": "transformer_based_wrap",
                               "state_dict_type": "FULL_STATE_DICT", "reshard_after_forward": True,
                               "cpu_ram_efficient_loading": False}
# Trainer builds the plugin from these, under its own names: the version, the wrapping policy in capitals.
TRAINER_CONFIG: dict[str, Any] = {
    "version": PLUGIN_ARGS["fsdp_version"], "auto_wrap_policy": PLUGIN_ARGS["auto_wrap_policy"].upper(),
    **{k: v for k, v in PLUGIN_ARGS.items() if k not in ("fsdp_version", "auto_wrap_policy")},
}


def check_fsdp(config: RunConfig, info: EngineInfo) -> None:
    """training.fsdp needs an engine that shards and two or more processes (num_processes null: one per GPU)."""
    from core.engines.base import requested_processes

    if not info.shards_model:
        raise ConfigError(f"training.fsdp shards a PyTorch model over processes, which the {info.name} engine does "
                          "not do", "set engine: trainer or torch-loop, or training.fsdp: false")
    processes = requested_processes(config)
    if processes < 2:
        raise ConfigError("training.fsdp shards the model over the run's processes, and this run has one "
                          "(training.num_processes null means one per visible GPU)",
                          "set training.num_processes to 2 or more (the GPUs to shard over), or training.fsdp: false")


def plugin(mixed_precision: str) -> Any:
    """Accelerate's FSDP2 plugin with PLUGIN_ARGS."""
    from accelerate.utils import FullyShardedDataParallelPlugin

    made = FullyShardedDataParallelPlugin(**PLUGIN_ARGS)
    if mixed_precision != "no":
        made.set_mixed_precision(mixed_precision)
    return made


def force_on_cpu(accelerator: Any, fsdp_plugin: Any) -> None:
    """Make Accelerate run FSDP where it would fall back to DDP (a CPU; see the module docstring). Its state is
    shared by every Accelerator of the process (PartialState's), so both copies of the distributed type change."""
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType

    state = accelerator.state
    if state.distributed_type == DistributedType.FSDP:
        return
    state.distributed_type = DistributedType.FSDP
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP
    state.fsdp_plugin = fsdp_plugin
    if not getattr(accelerator, "is_fsdp2", False):
        import accelerate

        raise RuntimeError(f"accelerate {accelerate.__version__} did not take FSDP2 on this CPU run; training.fsdp "
                           "would silently train unsharded (DDP), so the run stops here")


def confirm_sharded(model: Any, processes: int) -> None:
    """Say in the run's log that the model is sharded: its parameters are FSDP2's DTensors (a run that fell back to
    DDP has plain ones, and stops here rather than train a different way than asked)."""
    from torch.distributed.tensor import DTensor

    params = list(model.parameters())
    sharded = sum(p.numel() for p in params if isinstance(p, DTensor))
    if not sharded:
        raise RuntimeError("training.fsdp is set but the model's parameters are not sharded (FSDP did not take)")
    print(f"fsdp: {sharded:,} of {sum(p.numel() for p in params):,} parameters sharded over {processes} processes "
          "(FSDP2); no samples are generated while training (every process would have to ask the same prompts in "
          "step); the final model answers in the evaluation report", flush=True)


def gathered_model(accelerator: Any, model: Any, build: Any) -> Any:
    """The trained model whole, as a plain model on the main process (None on the others), for saving: every process
    gathers its shards (a collective), and the main one loads them into a model built again with `build()`."""
    state = accelerator.get_state_dict(model)
    if not accelerator.is_main_process:
        return None
    whole = build()
    whole.load_state_dict(dict(state))  # a copy: transformers' save_pretrained(state_dict=) empties the one it gets
    return whole
