"""What sets the engines apart lives on the engine registry (core.engines.ENGINES) as capabilities, and the rest of
finetune-tui asks for a capability instead of comparing engine names."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from core.config import parse_config
from core.engines import ENGINES, EngineInfo
from core.errors import ConfigError

ROOT = Path(__file__).parent.parent
KERAS = pytest.mark.skipif(not ENGINES["keras"].available(), reason="the keras engine is not installed here")
CALLS: list[object] = []


def _config(engine: str, **training: object):  # type: ignore[no-untyped-def]
    return parse_config({"engine": engine, "data": {"train_file": "x.csv"}, "training": training})


def _swap(monkeypatch: pytest.MonkeyPatch, engine: str, **changes: object) -> None:
    monkeypatch.setitem(ENGINES, engine, dataclasses.replace(ENGINES[engine], **changes))


def record_precheck(config: object) -> None:
    """A precheck for the tests: the registry names it as "tests.test_engine_registry:record_precheck"."""
    CALLS.append(config)


# --- the registry ------------------------------------------------------------------------------------------------

def test_the_registry_states_each_engines_capabilities() -> None:
    from core.export_templates import TEMPLATE_DIR

    capabilities = {name: (e.replicas_in_process, e.precheck, e.hf_heads, e.model_format, e.script_template)
                    for name, e in ENGINES.items()}
    assert capabilities == {
        "trainer": (False, None, True, "hf", "trainer.py.j2"),
        "torch-loop": (False, None, True, "hf", "torch_loop.py.j2"),
        "keras": (True, "core.engines.keras:precheck", False, "keras", "keras.py.j2"),
    }
    for info in ENGINES.values():
        assert (TEMPLATE_DIR / info.script_template).is_file()
        if info.precheck is not None:
            module, function = info.precheck.split(":")
            assert (ROOT / (module.replace(".", "/") + ".py")).is_file()
            assert f"def {function}(" in (ROOT / (module.replace(".", "/") + ".py")).read_text()
    with pytest.raises(dataclasses.FrozenInstanceError):
        ENGINES["keras"].hf_heads = True  # type: ignore[misc]
    assert {f.name for f in dataclasses.fields(EngineInfo)} >= {
        "replicas_in_process", "precheck", "hf_heads", "model_format", "script_template"}


def test_the_registry_imports_no_engine_module() -> None:
    """The keras precheck is imported only when a keras run is checked, so TensorFlow is never imported early."""
    code = ("import sys, core.engines, core.launch, core.export_templates; "
            "bad = [m for m in ('core.engines.keras', 'tensorflow', 'keras') if m in sys.modules]; "
            "assert not bad, bad")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


# --- replicas_in_process -----------------------------------------------------------------------------------------

def test_data_parallel_size_counts_in_process_replicas_or_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.engines.base import data_parallel_size

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert data_parallel_size(_config("keras", num_processes=2)) == 2  # MirroredStrategy's replicas, one process
    assert data_parallel_size(_config("trainer", num_processes=2)) == 1  # not started by torchrun
    assert data_parallel_size(_config("torch-loop", num_processes=2)) == 1
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert data_parallel_size(_config("trainer", num_processes=2)) == 3  # torchrun's processes
    assert data_parallel_size(_config("keras", num_processes=2)) == 2
    # The capability decides, not the name.
    _swap(monkeypatch, "trainer", replicas_in_process=True)
    assert data_parallel_size(_config("trainer", num_processes=2)) == 2


def test_launch_starts_one_process_for_in_process_replicas(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.launch import _processes

    assert _processes(_config("keras", num_processes=2)) == 1
    assert _processes(_config("trainer", num_processes=2)) == 2
    assert _processes(_config("torch-loop", num_processes=4)) == 4
    _swap(monkeypatch, "torch-loop", replicas_in_process=True)
    assert _processes(_config("torch-loop", num_processes=4)) == 1
    _swap(monkeypatch, "keras", replicas_in_process=False)
    assert _processes(_config("keras", num_processes=2)) == 2


# --- precheck and hf_heads ---------------------------------------------------------------------------------------

def test_check_model_runs_the_precheck_and_the_head_check_the_registry_names(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.errors import ModelError
    from core.launch import check_model

    no_head = SimpleNamespace(model_type="not-a-transformers-model")
    bert = SimpleNamespace(model_type="bert")
    config = _config("trainer")
    check_model(config, bert)
    with pytest.raises(ModelError, match="no sequence-classification head in transformers, which "
                                         "text-classification trains"):
        check_model(config, no_head)

    CALLS.clear()
    _swap(monkeypatch, "trainer", precheck="tests.test_engine_registry:record_precheck", hf_heads=False)
    check_model(config, no_head)  # no head check now
    assert len(CALLS) == 1 and CALLS[0] is config


@KERAS
def test_the_keras_precheck_refuses_replicas_with_accumulation() -> None:
    from core.launch import check_model

    no_head = SimpleNamespace(model_type="not-a-transformers-model")  # keras has no transformers-head check
    check_model(_config("keras", num_processes=2), no_head)
    with pytest.raises(ConfigError, match="cannot combine 2 replicas"):
        check_model(_config("keras", num_processes=2, gradient_accumulation_steps=2), no_head)


# --- script_template and model_format ------------------------------------------------------------------------------

def test_the_exported_script_is_the_registrys_template(monkeypatch: pytest.MonkeyPatch, tiny_model: Path,
                                                       tiny_data: dict, tmp_path: Path) -> None:
    from core.export_templates import render_script
    from tests.conftest import tiny_config

    config = parse_config({**tiny_config(tiny_model, tiny_data, tmp_path / "run"), "engine": "torch-loop"})
    assert "(engine torch-loop)" in render_script(config)
    _swap(monkeypatch, "torch-loop", script_template="trainer.py.j2")
    text = render_script(config)
    assert "with the Hugging Face Trainer" in text and "TrainingArguments(" in text
    _swap(monkeypatch, "torch-loop", script_template="no_such_template.py.j2")
    with pytest.raises(ConfigError, match="no script export"):
        render_script(config)


def test_a_keras_model_format_makes_the_script_convert_the_checkpoint(monkeypatch: pytest.MonkeyPatch,
                                                                        tiny_model: Path, tiny_data: dict,
                                                                        tmp_path: Path) -> None:
    import core.engines.keras_convert as keras_convert
    import core.export_templates as templates
    from tests.conftest import tiny_config

    monkeypatch.setattr(templates, "_keras_model", lambda config: ("/converted", "BertTextClassifier"))
    monkeypatch.setattr(keras_convert, "checkpoint_dropouts", lambda path: (0.1, 0.2))
    config = parse_config({**tiny_config(tiny_model, tiny_data, tmp_path / "run"), "engine": "torch-loop"})
    ctx = templates.build_context(config)
    assert ctx.keras_classifier == "" and ctx.model_path == str(tiny_model)
    _swap(monkeypatch, "torch-loop", model_format="keras")
    ctx = templates.build_context(config)
    assert (ctx.model_path, ctx.keras_classifier, ctx.keras_dropout) == ("/converted", "BertTextClassifier", (0.1, 0.2))


# --- no engine names outside the registry ------------------------------------------------------------------------

_NAME = "|".join(re.escape(name) for name in ENGINES)
_QUOTED = rf"""["'](?:{_NAME})["']"""
ENGINE_NAME_CHECKS = [
    re.compile(rf"engine\s*(?:==|!=)\s*{_QUOTED}"),  # config.engine == "keras"
    re.compile(rf"{_QUOTED}\s*(?:==|!=)\s*[\w.]*engine\b"),  # "keras" == config.engine
    re.compile(rf"engine\s+(?:not\s+)?in\s*[(\[{{][^)\]}}]*{_QUOTED}"),  # engine in ("trainer", "torch-loop")
]


def test_the_scan_catches_engine_name_checks() -> None:
    caught = ['if config.engine == "keras":', "if engine != 'trainer':",
              'if config.engine in ("trainer", "torch-loop"):', 'x = 1 if self.engine not in {"keras"} else 2',
              'if "torch-loop" == cfg.engine:', '{% if engine == "keras" %}']
    ignored = ["get_engine(config.engine)", 'ENGINES[config.engine].hf_heads', 'engine = "keras"',
               'Engine = Literal["trainer", "torch-loop", "keras"]']
    assert all(any(p.search(line) for p in ENGINE_NAME_CHECKS) for line in caught)
    assert not any(p.search(line) for p in ENGINE_NAME_CHECKS for line in ignored)


def test_no_engine_name_is_compared_outside_core_engines() -> None:
    engines_dir = ROOT / "core" / "engines"
    files = [p for folder in ("core", "tui") for pattern in ("*.py", "*.j2") for p in (ROOT / folder).rglob(pattern)
             if engines_dir not in p.parents]
    assert len(files) > 20
    found = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for path in files
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if any(p.search(line) for p in ENGINE_NAME_CHECKS)]
    assert not found, "ask ENGINES[config.engine] for a capability instead:\n" + "\n".join(found)
