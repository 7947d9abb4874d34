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
    """One engine as the registry, the wizard and plain mode present it: wording, packages, install hint."""

    name: str
    title: str
    when: str
    packages: tuple[str, ...]
    install_hint: str
    module: str | None  # None: not built yet

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
    ),
    "torch-loop": EngineInfo(
        "torch-loop", "Native PyTorch loop",
        "A plain training loop (with Accelerate) to read, change or debug step by step.",
        ("torch", "transformers", "accelerate"), "pip install torch transformers accelerate",
        "core.engines.torch_loop",
    ),
    "keras": EngineInfo(
        "keras", "Keras on TensorFlow",
        "For teams whose serving and tooling are already Keras/TensorFlow (uses KerasHub models).",
        ("keras", "keras_hub", "tensorflow"), 'pip install "finetune-tui[keras]"', "core.engines.keras",
    ),
}


DEFAULT_ENGINE = "trainer"  # the config's default (core.config uses it); the wizard opens on it


def get_engine(name: str) -> Callable[..., object]:
    info = ENGINES.get(name)
    if info is None:
        raise ConfigError(f"engine {name!r} is unknown", f"choose one of {', '.join(ENGINES)}")
    reason = info.unavailable_reason()
    if reason is not None:
        raise ConfigError(f"engine {name!r} cannot run here: {reason}", "use engine: trainer")
    module = importlib.import_module(info.module)  # type: ignore[arg-type]
    return module.train  # type: ignore[no-any-return]
