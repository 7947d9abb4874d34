"""Security rules that hold for the whole code base: no shell, safe YAML, no remote code by default."""

from __future__ import annotations

import re
from pathlib import Path

from core.config import RunConfig

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [p for d in ("core", "tui") for p in (ROOT / d).rglob("*.py")]


def test_no_shell_anywhere() -> None:
    pattern = re.compile(r"shell\s*=\s*True|os\.system\(|os\.popen\(|subprocess\.getoutput")
    offenders = [str(p.relative_to(ROOT)) for p in SOURCES if pattern.search(p.read_text())]
    assert not offenders, f"config values must never reach a shell: {offenders}"


def test_yaml_is_only_read_with_the_safe_loader() -> None:
    unsafe = re.compile(r"yaml\.(load|unsafe_load|full_load)\(|yaml\.Loader\b|FullLoader")
    offenders = [str(p.relative_to(ROOT)) for p in SOURCES if unsafe.search(p.read_text())]
    assert not offenders, offenders


def test_remote_code_is_off_unless_asked() -> None:
    config = RunConfig.model_validate({"data": {"train_file": "x.tsv"}})
    assert config.model.trust_remote_code is False
    calls = [p for p in SOURCES if "trust_remote_code=True" in p.read_text()]
    assert not calls, f"trust_remote_code must come from the config: {calls}"


def test_no_token_field_in_the_config() -> None:
    def fields(model: type) -> list[str]:
        out = []
        for name, info in model.model_fields.items():
            out.append(name)
            annotation = info.annotation
            for arg in getattr(annotation, "__args__", (annotation,)):
                if isinstance(arg, type) and hasattr(arg, "model_fields"):
                    out += fields(arg)
        return out

    # A secret would sit in a field named like one (hub_token, api_key); tokens_column names a data column.
    secrets = {"token", "key", "password", "secret"}
    assert not [f for f in fields(RunConfig) if secrets & set(f.lower().split("_"))]


def test_wizard_warns_what_trust_remote_code_means() -> None:
    from tui.draft import review_warnings

    config = RunConfig.model_validate({"data": {"train_file": "x.tsv"}})
    assert not any("trust_remote_code" in w for w in review_warnings(config))
    config.model.trust_remote_code = True
    warning = next(w for w in review_warnings(config) if "trust_remote_code" in w)
    assert "will run on this machine" in warning
