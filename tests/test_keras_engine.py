"""The keras engine: what it refuses, how it logs the loss, what it leaves behind, and how it says it is missing."""

from __future__ import annotations

import importlib.util
import json
from functools import partial
from pathlib import Path

import pytest

from core.config import parse_config
from core.engines import ENGINES, get_engine
from core.engines.base import RunContext
from core.errors import ConfigError, ModelError
from core.events import read_events
from core.launch import create_run, resolve_config
from core.rundir import RunDir
from core.worker import main as worker_main
from tests.conftest import engine_context, tiny_config

HINT = 'pip install "finetune-tui[keras]"'


def _keras_installed() -> bool:
    return importlib.util.find_spec("keras_hub") is not None


needs_keras = pytest.mark.skipif(not _keras_installed(), reason=f"the keras engine needs {HINT}")


def _run(raw: dict) -> RunDir:
    run_dir = create_run(resolve_config(parse_config({**raw, "engine": "keras"})))
    assert worker_main([str(run_dir.path)]) == 0, run_dir.log_tail(40)
    return run_dir


_context = partial(engine_context, "keras")


def _steps(run: RunDir) -> list[dict]:
    return [e for e in read_events(run.events_path) if e["type"] == "step"]


@needs_keras
def test_unconvertible_architecture_is_refused_before_any_work(tiny_data: dict, tmp_path: Path) -> None:
    from transformers import GPT2Config

    from core.engines import keras as keras_engine
    from core.engines.keras_convert import supported_model_types

    model_dir = tmp_path / "tiny-gpt2"
    GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=50, n_positions=64).save_pretrained(model_dir)
    config = parse_config({**tiny_config(model_dir, tiny_data, tmp_path / "run"), "engine": "keras"})
    supported = supported_model_types()
    assert {"bert", "distilbert", "roberta"} <= set(supported) and "gpt2" not in supported
    with pytest.raises(ModelError) as err:
        keras_engine.preflight(config)
    assert "GPT2" in err.value.problem and "gpt2" in err.value.problem
    assert all(kind in err.value.problem for kind in supported)
    assert "engine: trainer" in (err.value.fix or "")
    # train() refuses first: nothing of the context (data, tokenizer, run directory) is touched.
    untouched = RunContext(config=config, run_dir=None, events=None, prepared=None, tokenizer=None,  # type: ignore[arg-type]
                           tokenized=None, stop_requested=lambda: False, device="cpu")
    with pytest.raises(ModelError, match="cannot convert"):
        keras_engine.train(untouched)


@needs_keras
def test_step_events_carry_each_logging_window_not_the_epoch_running_mean(tiny_model: Path, tiny_data: dict,
                                                                          tmp_path: Path) -> None:
    """Training is deterministic, so a run logging every step gives the per-step losses that a run logging every
    third step must average in windows of three; Keras's own logs["loss"] would be the mean since the epoch began."""
    common = {"max_steps": 9, "save_strategy": "no", "eval_strategy": "no", "group_by_length": False}
    every = [e["loss"] for e in _steps(_run(tiny_config(tiny_model, tiny_data, tmp_path / "a", logging_steps=1,
                                                        **common)))]
    windows = [e["loss"] for e in _steps(_run(tiny_config(tiny_model, tiny_data, tmp_path / "b", logging_steps=3,
                                                          **common)))]
    assert len(every) == 9 and len(windows) == 3
    assert windows == pytest.approx([sum(every[i:i + 3]) / 3 for i in (0, 3, 6)], abs=1e-5)
    running_mean = sum(every[:6]) / 6
    assert abs(windows[1] - running_mean) > 1e-4


@needs_keras
def test_result_directory_and_frozen_encoder(tiny_model: Path, tiny_data: dict, tmp_path: Path) -> None:
    """The model directory holds the Keras model, the tokenizer and the label maps; with freeze_encoder only the
    head trained, so the encoder still has the checkpoint's weights."""
    from safetensors.numpy import load_file

    from core.predict import KERAS_FORMAT_FILE, load_predictor

    run = _run(tiny_config(tiny_model, tiny_data, tmp_path / "run", max_steps=4, freeze_encoder=True,
                           eval_strategy="no", save_strategy="no"))
    model_dir = run.model_dir
    for name in ("model.keras", "labels.json", KERAS_FORMAT_FILE, "tokenizer.json"):
        assert (model_dir / name).is_file(), name
    labels = json.loads((model_dir / "labels.json").read_text())
    assert labels == {"id2label": {"0": "neg", "1": "pos"}, "label2id": {"neg": 0, "pos": 1}}
    predictor = load_predictor(run.path)
    embeddings = predictor.model.backbone.get_layer("token_embedding").embeddings.numpy()
    original = load_file(str(tiny_model / "model.safetensors"))["embeddings.word_embeddings.weight"]
    assert embeddings == pytest.approx(original, abs=1e-7)
    assert predictor.predict(["great lovely superb film"])[0]["label"] in {"neg", "pos"}


@needs_keras
def test_stop_and_resume_with_lora_matches_an_uninterrupted_run(tiny_model: Path, tiny_data: dict,
                                                                tmp_path: Path) -> None:
    """Weights, optimizer moments, LoRA adapters (which a .keras file stores merged), dropout state and data order
    all come back: the resumed run logs the very losses of the uninterrupted one."""
    from core.engines import keras as keras_engine

    settings = {"max_steps": 8, "eval_strategy": "no", "save_strategy": "no",
                "lora": {"r": 4, "alpha": 8, "dropout": 0.0}}
    whole = _context(tiny_config(tiny_model, tiny_data, tmp_path / "whole", **settings))
    expected = keras_engine.train(whole)
    raw = tiny_config(tiny_model, tiny_data, tmp_path / "parts", **settings)
    first = _context(raw, stop_after=3)
    stopped = keras_engine.train(first)
    assert stopped.stopped and Path(str(stopped.last_checkpoint)).name == "checkpoint-3"
    assert (Path(str(stopped.last_checkpoint)) / "lora.npz").exists()
    resumed = keras_engine.train(_context(raw, resume=Path(str(stopped.last_checkpoint)), run_dir=first.run_dir))
    assert resumed.test_metrics == pytest.approx(expected.test_metrics, abs=1e-6)
    assert [e["loss"] for e in _steps(first.run_dir)] == pytest.approx([e["loss"] for e in _steps(whole.run_dir)],
                                                                       abs=1e-6)
    # The result is a plain model: the adapters are merged into its weights.
    from core.predict import load_predictor

    model = load_predictor(first.run_dir.path).model
    assert not any(getattr(layer, "lora_enabled", False) for layer in model._flatten_layers())


@needs_keras
def test_mixed_precision_without_a_tensorflow_gpu_is_refused(tiny_model: Path, tiny_data: dict,
                                                             tmp_path: Path) -> None:
    from core.engines import keras as keras_engine
    from core.engines.keras import _tf_gpus

    if _tf_gpus():
        pytest.skip("TensorFlow sees a GPU here")
    raw = tiny_config(tiny_model, tiny_data, tmp_path / "run", mixed_precision="bf16")
    with pytest.raises(ConfigError, match="TensorFlow sees no GPU") as err:
        keras_engine.preflight(parse_config({**raw, "engine": "keras"}))
    assert "mixed_precision: no" in (err.value.fix or "")


def test_missing_tensorflow_is_reported_with_the_install_command(monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str],
                                                                 tiny_model: Path, tiny_data: dict,
                                                                 tmp_path: Path) -> None:
    real = importlib.util.find_spec

    def without_tensorflow(name: str, *args: object, **kwargs: object) -> object:
        return None if name.split(".")[0] in {"tensorflow", "keras", "keras_hub"} else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", without_tensorflow)
    info = ENGINES["keras"]
    assert not info.available() and HINT in (info.unavailable_reason() or "")
    assert ENGINES["torch-loop"].available()
    with pytest.raises(ConfigError) as err:
        get_engine("keras")
    assert HINT in err.value.problem and "tensorflow" in err.value.problem
    # The CLI says the same, before anything is loaded or created.
    import yaml

    from tui.cli import main as cli_main

    raw = tiny_config(tiny_model, tiny_data, tmp_path / "run")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**raw, "engine": "keras"}))
    assert cli_main(["validate", str(path)]) == 2
    assert HINT in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
