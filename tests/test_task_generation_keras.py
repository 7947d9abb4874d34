"""text-generation on the keras engine: KerasHub's causal LMs converted from the checkpoint, trained with LoRA, and
saved back in transformers format; what it refuses, and that its loss is transformers' own."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from core.config import parse_config
from core.errors import ConfigError
from core.events import read_events
from tests.conftest import engine_context
from tests.llm_fixtures import build_causal_lm, build_llm_tokenizer
from tests.test_keras_engine import needs_keras
from tests.test_task_generation import ALPACA, _alpaca, _losses, _raw, _validation
from tests.test_trainer_run import _cli, _run_in_process

_context = partial(engine_context, "keras")


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama, saved with rms_norm_eps 1e-5 (Llama 2's, SmolLM's): KerasHub's converter drops it, so this
    checks that the engine puts it back."""
    directory = tmp_path_factory.mktemp("tiny-llama")
    build_causal_lm(build_llm_tokenizer(), "llama", directory)
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, "rms_norm_eps": 1e-5}))
    return directory


def _data(tmp_path: Path) -> dict[str, Any]:
    return {"train_file": str(_alpaca(tmp_path / "alpaca.json")), "prompt_template": ALPACA,
            "response_column": "output"}


# --- config -----------------------------------------------------------------------------------------------------------

def test_keras_takes_text_generation_but_refuses_what_keras_hub_models_cannot_do(tmp_path: Path) -> None:
    data = {"train_file": "a.json", "prompt_template": "{instruction}", "response_column": "output"}
    raw = {"task": "text-generation", "engine": "keras", "data": data}
    assert parse_config(raw).training.lora is not None  # LoRA on every linear layer, as on the other engines
    for setting, value, why in (("packing", True, "position ids"), ("quantization", "4bit", "bitsandbytes"),
                                ("gradient_checkpointing", True, "recompute")):
        with pytest.raises(ConfigError, match=rf"training\.{setting} is not available on the keras engine: .*{why}"):
            parse_config({**raw, "training": {setting: value}})
    # The CLI refuses a packed keras run before it makes anything.
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({**raw, "training": {"packing": True}, "output_dir": str(tmp_path / "run")}))
    result = _cli("run", str(config))
    assert result.returncode == 2 and "training.packing" in result.stderr and "engine: trainer" in result.stderr
    assert not (tmp_path / "run").exists()


@needs_keras
def test_a_model_type_keras_hub_cannot_convert_is_refused_naming_those_it_can(tmp_path: Path) -> None:
    import transformers

    tokenizer = build_llm_tokenizer()
    model_dir = tmp_path / "tiny-opt"
    config = transformers.OPTConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, ffn_dim=32,
                                    num_attention_heads=2, max_position_embeddings=64, word_embed_proj_dim=16)
    transformers.OPTForCausalLM(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(_raw(model_dir, _data(tmp_path), tmp_path / "run", engine="keras")))
    result = _cli("run", str(path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "OPTForCausalLM (model type opt)" in result.stderr and "Traceback" not in result.stderr
    for kind in ("gemma", "gpt2", "llama", "mistral", "qwen2", "qwen3", "smollm3"):
        assert kind in result.stderr
    assert not (tmp_path / "run").exists()


@needs_keras
def test_settings_keras_hub_s_converter_would_leave_out_are_refused(llama: Path) -> None:
    from core.engines.keras_convert import check_decoder_config
    from core.errors import ModelError

    config = json.loads((llama / "config.json").read_text())
    check_decoder_config(config, "tiny")  # the tiny llama itself is fine
    for change, key in (({"attention_bias": True}, "attention_bias"), ({"head_dim": 4}, "head_dim"),
                        ({"rope_parameters": {"rope_type": "yarn", "factor": 2.0}}, "rope_parameters"),
                        ({"rope_scaling": {"rope_type": "linear", "factor": 2.0}}, "rope_scaling")):
        with pytest.raises(ModelError, match=key) as err:
            check_decoder_config({**config, **change}, "tiny")
        assert "engine: trainer" in (err.value.fix or "")
    # Llama 3's own rope scaling, as Hub checkpoints save it, is what the converter reads.
    check_decoder_config({**config, "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                     "high_freq_factor": 4.0,
                                                     "original_max_position_embeddings": 64}}, "tiny")


# --- the model --------------------------------------------------------------------------------------------------------

def _batches(model_dir: Path, n: int) -> tuple[Any, Any, Any]:
    """(task, tokenizer, Batches) of n Alpaca rows tokenized by the task, as a keras run makes them."""
    from datasets import Dataset
    from transformers import AutoTokenizer

    from core.engines.keras_data import Batches
    from core.tasks import get_task
    from tests.test_task_generation import QA

    task = get_task("text-generation")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    rows = {"prompt": [ALPACA.format(instruction=q, input="please") for q, _ in (QA * 3)[:n]],
            "completion": [a for _, a in (QA * 3)[:n]]}
    settings = type("Tok", (), {"max_length": 64})()
    encoded = task.encode_batch(tokenizer, rows, settings, None, None, "validation")
    ds = Dataset.from_dict({"input_ids": encoded["input_ids"], "labels": encoded["labels"]})
    return task, tokenizer, Batches(ds, tokenizer, ["token_ids", "padding_mask"], task)


@needs_keras
def test_the_converted_model_s_loss_is_transformers_loss(llama: Path) -> None:
    """Before any training the Keras causal LM computes the checkpoint's logits and transformers' loss on the same
    batches (CausalLMLoss shifts, as the model's own loss does), and its evaluation is the mean per example of the
    batches' losses, as torch-loop counts them (a last, smaller batch weighs less)."""
    import torch
    from transformers import AutoModelForCausalLM

    from core.engines.keras_callbacks import CausalLMLoss, keras
    from core.engines.keras_convert import build_model
    from core.engines.keras_data import eval_dataset

    task, _, batches = _batches(llama, 7)
    model, _ = build_model(llama, 0, task)
    torch_model = AutoModelForCausalLM.from_pretrained(llama, dtype=torch.float32).eval()
    losses = []
    for indices in ([0, 1, 2, 3], [4, 5, 6]):
        x, y = batches.make(indices)
        with torch.no_grad():
            out = torch_model(input_ids=torch.tensor(x["token_ids"]).long(),
                              attention_mask=torch.tensor(x["padding_mask"]).long(), labels=torch.tensor(y).long())
        logits = keras.ops.convert_to_numpy(model(x))
        real = x["padding_mask"].astype(bool)
        assert np.abs(logits - out.logits.numpy())[real].max() < 1e-5
        assert float(CausalLMLoss()(y, logits)) == pytest.approx(float(out.loss), abs=1e-5)
        losses.append((float(out.loss), len(indices)))
    model.compile(loss=CausalLMLoss(), weighted_metrics=[], jit_compile=False)
    evaluated = model.evaluate(eval_dataset(batches, 4), verbose=0, return_dict=True)["loss"]
    assert evaluated == pytest.approx(sum(loss * n for loss, n in losses) / 7, abs=1e-5)


@needs_keras
@pytest.mark.parametrize("model_type", ["llama", "gpt2", "mistral"])
def test_trained_weights_go_back_to_transformers_format(model_type: str, tmp_path: Path) -> None:
    """The Keras model, LoRA adapters included (changed, as training changes them), written back under the
    checkpoint's own keys and config: transformers computes the same logits from it. Mistral's converter casts its
    embeddings, which the traced inverse refuses, so KerasHub's exporter writes it."""
    import torch
    import transformers

    from core.engines.keras_callbacks import keras
    from core.engines.keras_convert import build_model, enable_lora
    from core.engines.keras_export import WEIGHTS_FILE, save_transformers
    from core.tasks import get_task

    tokenizer = build_llm_tokenizer()
    source = tmp_path / "source"
    if model_type == "mistral":
        config = transformers.MistralConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                            head_dim=8, max_position_embeddings=128,
                                            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        transformers.MistralForCausalLM(config).save_pretrained(source)
        tokenizer.save_pretrained(source)
    else:
        build_causal_lm(tokenizer, model_type, source)
    model, backbone = build_model(source, 0, get_task("text-generation"))
    enable_lora(backbone, 4, 8, ["all-linear"], decoder=True)
    rng = np.random.default_rng(0)
    for layer in backbone._flatten_layers(include_self=False):
        if getattr(layer, "lora_enabled", False):
            layer.lora_kernel_b.assign(rng.normal(0, 0.1, layer.lora_kernel_b.shape).astype("float32"))
    out = tmp_path / "out"
    route = save_transformers(backbone, source, out)
    assert ("exporter" in route) == (model_type == "mistral"), route
    from safetensors import safe_open

    with safe_open(str(source / WEIGHTS_FILE), "np") as a, safe_open(str(out / WEIGHTS_FILE), "np") as b:
        assert set(a.keys()) == set(b.keys())
    ids = np.asarray([tokenizer("the quick brown fox jumps")["input_ids"]], dtype="int32")
    mask = np.ones_like(ids)
    keras_logits = keras.ops.convert_to_numpy(model({"token_ids": ids, "padding_mask": mask}))
    hf = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    with torch.no_grad():
        torch_logits = hf(input_ids=torch.tensor(ids).long()).logits.numpy()
    assert np.abs(keras_logits - torch_logits).max() < 1e-4
    assert json.loads((out / "config.json").read_text())["vocab_size"] == len(tokenizer)
    # The Keras model's greedy answers (the run's samples) are the saved model's (predict's), prompts of unequal
    # lengths batched together.
    from core.tasks.text_generation import generate

    prompts = [tokenizer(text)["input_ids"] for text in ("the cat sat on", "hello", "give me a colour that is")]
    assert generate.generate(model, tokenizer, prompts, 8) == generate.generate(hf, tokenizer, prompts, 8)


# --- training ---------------------------------------------------------------------------------------------------------

@needs_keras
@pytest.mark.slow
def test_keras_learns_alpaca_answers_with_lora_and_leaves_a_transformers_model(
        llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run_in_process(_raw(llama, _data(tmp_path), tmp_path / "run", engine="keras",
                               per_device_train_batch_size=4))
    assert "each head has its own A matrix" in capsys.readouterr().out  # Keras LoRA's rank differs from peft's
    losses = _losses(run)
    assert losses[-1] < losses[0] - 0.3, losses
    evals = _validation(run)
    assert [set(e["metrics"]) for e in evals][-1] == {"loss", "perplexity"}
    assert evals[-1]["metrics"]["loss"] < evals[0]["metrics"]["loss"]
    # Samples at every evaluation, from the Keras model; by the end it answers the validation prompts right.
    samples = [e for e in run.events() if e["type"] == "sample"]
    assert [s["step"] for s in samples] == [e["step"] for e in evals]
    assert all(s["generated"] == s["reference"] for s in samples[-1]["samples"]), samples[-1]

    # RUN/model is a transformers model, read as the PyTorch engines' is: no Keras file in it.
    names = {p.name for p in run.model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "task.json", "tokenizer.json"} <= names
    assert not names & {"model.keras", "keras_model.json", "labels.json"}
    report = json.loads((run.path / "evaluation/validation/metrics.json").read_text())
    assert report["metrics"] == pytest.approx(evals[-1]["metrics"])
    # The report's answers come from the saved transformers model: the Keras model's, to the token.
    answers = [json.loads(line) for line in (run.path / "evaluation/validation/predictions.jsonl").open()]
    assert [a["generated"] for a in answers[:3]] == [s["generated"] for s in samples[-1]["samples"]]
    from transformers import pipeline

    generator = pipeline("text-generation", model=str(run.model_dir))
    prompt = ALPACA.format(instruction="what colour is grass", input="please")
    out = generator(prompt, max_new_tokens=20, do_sample=False, return_full_text=False)
    assert out[0]["generated_text"].strip() == "green"
    result = _cli("predict", str(run.path), "what is two plus two", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["generated_text"] == "four"


@needs_keras
@pytest.mark.slow
def test_stop_and_resume_gives_the_losses_of_an_uninterrupted_run(llama: Path, tmp_path: Path) -> None:
    from core.engines import keras as keras_engine

    settings = {"max_steps": 6, "eval_strategy": "no", "save_strategy": "no", "logging_steps": 1}
    whole = _context(_raw(llama, _data(tmp_path), tmp_path / "whole", engine="keras", **settings))
    keras_engine.train(whole)
    raw = _raw(llama, _data(tmp_path), tmp_path / "parts", engine="keras", **settings)
    first = _context(raw, stop_after=2)
    stopped = keras_engine.train(first)
    assert stopped.stopped and (Path(str(stopped.last_checkpoint)) / "lora.npz").exists()
    keras_engine.train(_context(raw, resume=Path(str(stopped.last_checkpoint)), run_dir=first.run_dir))

    def steps(run: Any) -> list[float]:
        return [e["loss"] for e in read_events(run.events_path) if e["type"] == "step"]

    assert len(steps(whole.run_dir)) == 6
    assert steps(first.run_dir) == pytest.approx(steps(whole.run_dir), abs=1e-5)
    assert (first.run_dir.model_dir / "model.safetensors").is_file()


# --- exported script --------------------------------------------------------------------------------------------------

@needs_keras
@pytest.mark.slow
@pytest.mark.parametrize("training", [
    {},  # LoRA on every linear layer (all-linear), length-grouped batches
    {"lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}, "group_by_length": False, "max_steps": 12,
     "gradient_accumulation_steps": 2, "warmup_ratio": 0.2, "eval_strategy": "steps", "eval_steps": 4,
     "early_stopping_patience": 1, "metric_for_best_model": "loss"},
])
def test_the_exported_keras_script_reproduces_the_run(training: dict[str, Any], llama: Path, tmp_path: Path) -> None:
    """The standalone keras script reads the Alpaca JSON array, tokenizes with shared.py inlined, trains KerasHub's
    causal LM with LoRA on the engine's layers and its causal-LM loss, and reaches the run's loss and perplexity on
    validation and test; it writes the model back in transformers format with core/engines/keras_weights.py inlined,
    as the run does: the same task.json and generation config, the same trained weights."""
    from safetensors.torch import load_file

    from tests.test_export import _render, _run_and_script_agree

    data = {**_data(tmp_path), "test_file": str(_alpaca(tmp_path / "t.json", 8))}
    raw = _raw(llama, data, tmp_path / "run", engine="keras",
               **{"num_train_epochs": 2, "per_device_train_batch_size": 4, **training})
    text = _render(raw)
    assert "core/tasks/text_generation/shared.py, inlined" in text and "def training_rows(" in text
    assert "core/engines/keras_weights.py, inlined" in text and "def save_transformers(" in text
    assert 'BACKBONE_SETTINGS = {"layer_norm_epsilon": 1e-05}' in text  # the engine's rms_norm_eps
    layers = '["query", "value"]' if training else '["attention_output", "feedforward_gate_dense"'
    assert f"LORA_LAYERS = {layers}" in text
    assert "model.keras" not in text and "scikit-learn" not in text
    run, _, _ = _run_and_script_agree(raw, tmp_path, {"loss", "perplexity"})
    ours = tmp_path / "script-out" / "model"
    for name in ("task.json", "generation_config.json", "config.json"):
        assert (ours / name).read_text() == (run.model_dir / name).read_text(), name
    assert not {p.name for p in ours.iterdir()} & {"model.keras", "keras_model.json", "labels.json"}
    theirs, mine = load_file(run.model_dir / "model.safetensors"), load_file(ours / "model.safetensors")
    assert theirs.keys() == mine.keys() and all(theirs[k].allclose(mine[k], atol=1e-5) for k in theirs)
    source = load_file(llama / "model.safetensors")
    assert any(not theirs[k].equal(source[k]) for k in theirs)  # trained: LoRA folded into the saved weights
