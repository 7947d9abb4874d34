"""Export a run config: commented YAML, JSON, the `finetune-tui run` command line, or a standalone training script.

Every export goes through `redact`, so a Hub token that found its way into a config value (or that sits in the
environment and was pasted into one) is never written out. Tokens belong in HF_TOKEN or `hf auth login`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel

from core.config import RunConfig

ExportFormat = Literal["yaml", "json", "command", "script"]
FORMATS: tuple[str, ...] = ("yaml", "json", "command", "script")
REDACTED = "<hf-token-removed>"
TOKEN_ENV_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_HUB_TOKEN", "HF_API_TOKEN", "HUGGINGFACE_TOKEN")
# Hub user access tokens look like hf_ followed by 30+ letters and digits.
_TOKEN_PATTERN = re.compile(r"hf_[A-Za-z0-9]{30,}")
_WIDTH = 118


@dataclass
class Exported:
    text: str
    format: str
    suggested_name: str  # a file name for saving it, e.g. finetune.yaml or train_trainer.py
    secrets_removed: int = 0


def export_config(config: RunConfig, fmt: str, *, config_path: str | Path | None = None) -> Exported:
    """The config in one of FORMATS. `command` needs the path the config is (or will be) saved at."""
    if fmt == "yaml":
        text, name = to_commented_yaml(config), "finetune.yaml"
    elif fmt == "json":
        text, name = to_json(config), "finetune.json"
    elif fmt == "command":
        if config_path is None:
            from core.errors import ConfigError

            raise ConfigError("the run command needs the config saved to a file first",
                              "save the config (e.g. export it as yaml) and export the command for that file")
        text, name = to_command(config_path) + "\n", "run.sh"
    elif fmt == "script":
        from core.export_templates import render_script

        text, name = render_script(config), f"train_{config.engine.replace('-', '_')}.py"
    else:
        from core.errors import ConfigError

        raise ConfigError(f"export format {fmt!r} is unknown", f"choose one of {', '.join(FORMATS)}")
    clean, removed = redact(text)
    return Exported(clean, fmt, name, removed)


def redact(text: str) -> tuple[str, int]:
    """Remove Hub tokens: the values of the token environment variables, and anything shaped like a token."""
    removed = 0
    secrets = {os.environ.get(name, "").strip() for name in TOKEN_ENV_VARS}
    for secret in sorted((s for s in secrets if len(s) >= 8), key=len, reverse=True):
        removed += text.count(secret)
        text = text.replace(secret, REDACTED)
    text, n = _TOKEN_PATTERN.subn(REDACTED, text)
    return text, removed + n


# --- yaml with comments ------------------------------------------------------------------------------------------

def to_commented_yaml(config: RunConfig) -> str:
    """YAML that `load_config` reads back to the same config, each field preceded by its description."""
    lines = [
        "# finetune-tui run config. Train it with: finetune-tui run <this file>",
        "# Each key is preceded by what it means; null means the default described there.",
        "",
    ]
    _emit(config, 0, lines)
    return "\n".join(lines) + "\n"


def _emit(model: BaseModel, indent: int, lines: list[str]) -> None:
    pad = "  " * indent
    fields = type(model).model_fields
    for name, info in fields.items():
        value = getattr(model, name)
        if info.description:
            lines.extend(textwrap.wrap(info.description, _WIDTH - len(pad), initial_indent=f"{pad}# ",
                                       subsequent_indent=f"{pad}# "))
        if isinstance(value, BaseModel):
            lines.append(f"{pad}{name}:")
            _emit(value, indent + 1, lines)
        else:
            lines.append(pad + _scalar_line(name, value))
        if indent == 0:
            lines.append("")


def _scalar_line(name: str, value: Any) -> str:
    plain = json.loads(json.dumps(value, default=str))  # Paths -> str, like the config's own JSON dump
    dumped = yaml.safe_dump({name: plain}, default_flow_style=True, sort_keys=False, allow_unicode=True,
                            width=10_000).strip()
    # safe_dump in flow style wraps the mapping in braces: {name: value}
    return dumped[1:-1] if dumped.startswith("{") and dumped.endswith("}") else dumped


# --- json and command ------------------------------------------------------------------------------------------

def to_json(config: RunConfig) -> str:
    return json.dumps(config.to_dict(), indent=2) + "\n"


def to_command(config_path: str | Path) -> str:
    """The exact command that trains this config: `finetune-tui run <path>` (quoted for a POSIX shell)."""
    return f"finetune-tui run {shlex.quote(str(config_path))}"
