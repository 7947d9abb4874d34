"""Engines train a prepared run; each writes the same events and leaves the same result directory."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

from core.errors import ConfigError


def installed(module: str) -> bool:
    # find_spec looks the package up without importing it, so the wizard's framework list stays instant.
    return importlib.util.find_spec(module) is not None


@dataclass(frozen=True)
class EngineInfo:
    """One engine as the registry, the wizard and plain mode present it: wording, packages, install hint, and what
    the rest of finetune-tui must do differently for it (its capabilities)."""

    name: str
    title: str
    when: str
    packages: tuple[str, ...]
    install_hint: str
    module: str | None  # None: not built yet
    # What sets the engines apart, asked by name instead of comparing engine names outside core/engines/:
    replicas_in_process: bool  # True: its data-parallel replicas run inside one process (Keras's MirroredStrategy);
    #                            False: one process per device, started by torchrun
    precheck: str | None  # "module:function" that checks a config before a run, imported only when called; None: none
    hf_heads: bool  # the model must be a transformers model with a head for the task (checked before a run)
    model_format: str  # what its final model directory holds: "hf" (transformers) or "keras" (core.predict)
    script_template: str  # its standalone-script template in core/export_templates/
    tracks_itself: bool  # True: it feeds training.report_to's trackers itself (Trainer's integrations); False: the
    #                      worker feeds them from its events (core.tracking.EventTrackers)
    shards_model: bool = False  # it can shard the model over its processes (training.fsdp: FSDP2 through Accelerate)

    def missing(self) -> list[str]:
        return [p for p in self.packages if not installed(p)]

    def available(self) -> bool:
        return self.module is not None and not self.missing()

    def unavailable_reason(self) -> str | None:
        if self.module is None:
            return "this engine is not built into this version of finetune-tui yet"
        missing = self.missing()
        if missing:
            return f"needs {', '.join(missing)}: {self.install_hint}"
        return None


ENGINES: dict[str, EngineInfo] = {
    "trainer": EngineInfo(
        "trainer", "Hugging Face Trainer",
        "The default: checkpoints, evaluation, early stopping and mixed precision handled for you.",
        ("transformers", "torch"), "pip install torch transformers", "core.engines.trainer",
        replicas_in_process=False, precheck=None, hf_heads=True, model_format="hf", script_template="trainer.py.j2",
        tracks_itself=True, shards_model=True,
    ),
    "torch-loop": EngineInfo(
        "torch-loop", "Native PyTorch loop",
        "A plain training loop (with Accelerate) to read, change or debug step by step.",
        ("torch", "transformers", "accelerate"), "pip install torch transformers accelerate",
        "core.engines.torch_loop",
        replicas_in_process=False, precheck=None, hf_heads=True, model_format="hf",
        script_template="torch_loop.py.j2", tracks_itself=False, shards_model=True,
    ),
    "keras": EngineInfo(
        "keras", "Keras on TensorFlow",
        "For teams whose serving and tooling are already Keras/TensorFlow (uses KerasHub models).",
        ("keras", "keras_hub", "tensorflow"), 'pip install "finetune-tui[keras]"', "core.engines.keras",
        replicas_in_process=True, precheck="core.engines.keras:precheck", hf_heads=False, model_format="keras",
        script_template="keras.py.j2", tracks_itself=False,
    ),
}


DEFAULT_ENGINE = "trainer"  # the config's default (core.config uses it); the wizard opens on it


def run_precheck(info: EngineInfo, config: object) -> None:
    """The engine's own check of a config before a run (e.g. keras: the replicas fit the devices), if it has one.
    Imported only here, so a check's heavy imports (TensorFlow) happen only for its engine."""
    if info.precheck is None:
        return
    module, function = info.precheck.split(":")
    getattr(importlib.import_module(module), function)(config)


def get_engine(name: str) -> Callable[..., object]:
    info = ENGINES.get(name)
    if info is None:
        raise ConfigError(f"engine {name!r} is unknown", f"choose one of {', '.join(ENGINES)}")
    reason = info.unavailable_reason()
    if reason is not None:
        raise ConfigError(f"engine {name!r} cannot run here: {reason}", "use engine: trainer")
    module = importlib.import_module(info.module)  # type: ignore[arg-type]
    return module.train  # type: ignore[no-any-return]
