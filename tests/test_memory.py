"""The memory estimate counts what the run will really hold: parameters and LoRA's trainable ones equal those of
the model the engines build, the bytes follow from them, and a run that cannot fit gets the change that makes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import parse_config
from core.memory import GiB, advice, estimate, report
from core.models import load_model_config
from tests.llm_fixtures import build_causal_lm, build_llm_tokenizer
from tests.test_trainer_run import _cli


@pytest.fixture(scope="module")
def qwen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tiny-qwen2")
    build_causal_lm(build_llm_tokenizer(), "qwen2", directory)
    return directory


def _config(model: Path, task: str = "text-generation", **training: object) -> object:
    data = ({"train_file": "a.json", "prompt_template": "{q}", "response_column": "a"} if task == "text-generation"
            else {"train_file": "a.csv"})
    return parse_config({"task": task, "model": {"name_or_path": str(model)}, "data": data, "training": training,
                         "tokenizer": {"max_length": 64}})


@pytest.mark.parametrize(("lora", "precision"), [
    ("default", "no"), ("default", "bf16"), (None, "no"), (None, "bf16"),
    ({"r": 4, "target_modules": ["q_proj", "v_proj"]}, "no"), ({"r": 8, "target_modules": None}, "no")])
def test_parameters_and_trainable_ones_are_those_of_the_model_the_engines_build(qwen: Path, lora: object,
                                                                                precision: str) -> None:
    import torch

    from core.engines.hf_model import build_model, count_trainable

    training = {"mixed_precision": precision, **({} if lora == "default" else {"lora": lora})}
    config = _config(qwen, **training)
    est = estimate(config, load_model_config(config.model), free=[GiB], device="cpu")
    model = build_model(config, [])
    trainable, _ = count_trainable(model)
    assert est.trainable == trainable
    assert est.parameters == sum(p.numel() for n, p in model.named_parameters() if "lora_" not in n)
    assert est.parts["weights"] == sum(p.numel() * p.element_size() for p in model.parameters())
    assert est.parts["optimizer"] == 2 * est.parts["gradients"] == 8 * trainable
    # What trains is float32 (AdamW's masters); LoRA's frozen weights follow 16-bit mixed precision.
    assert all(p.dtype == torch.float32 for p in model.parameters() if p.requires_grad)
    frozen = {p.dtype for p in model.parameters() if not p.requires_grad}
    assert frozen <= ({torch.bfloat16} if config.training.lora is not None and precision == "bf16" else {torch.float32})


def test_a_classifier_counts_lora_with_its_head(tiny_model: Path) -> None:
    from core.engines.hf_model import build_model, count_trainable

    config = _config(tiny_model, task="text-classification", lora={"r": 4})
    est = estimate(config, load_model_config(config.model), free=[GiB], device="cpu")
    assert est.trainable == count_trainable(build_model(config, ["a", "b"]))[0]


def test_activations_follow_the_batch_precision_and_checkpointing(qwen: Path) -> None:
    model_config = load_model_config(_config(qwen).model)

    def activations(**training: object) -> int:
        return estimate(_config(qwen, **training), model_config, free=[GiB], device="cpu").parts["activations"]

    assert activations(per_device_train_batch_size=8) == 2 * activations(per_device_train_batch_size=4)
    assert activations(mixed_precision="bf16") < activations()
    assert activations(gradient_checkpointing=True) < activations()


def test_a_run_that_cannot_fit_is_told_what_makes_it_fit(qwen: Path) -> None:
    config = _config(qwen, lora=None, per_device_train_batch_size=64)
    model_config = load_model_config(config.model)
    needed = estimate(config, model_config, free=[GiB], device="cuda").total
    tight = estimate(config, model_config, free=[needed // 3], device="cuda")
    assert tight.fits is False and "will not fit" in tight.lines()[0]
    fix = advice(tight, config, model_config)
    assert fix is not None and "gradient_checkpointing" in fix and "per_device_train_batch_size" in fix
    roomy = estimate(config, model_config, free=[needed * 2], device="cuda")
    assert roomy.fits and advice(roomy, config, model_config) is None
    # The run's own report: the estimate's line, and the warning with the fix when it does not fit.
    est, lines = report(config, model_config)
    assert est is not None and lines[0].startswith("memory estimate")


def test_validate_prints_the_estimate(qwen: Path, tmp_path: Path) -> None:
    import json

    import yaml

    data = tmp_path / "a.json"
    data.write_text(json.dumps([{"q": f"question {i}", "a": f"answer {i}"} for i in range(12)]))
    raw = {"task": "text-generation", "model": {"name_or_path": str(qwen)},
           "data": {"train_file": str(data), "prompt_template": "{q}\n", "response_column": "a"},
           "tokenizer": {"max_length": 64}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = _cli("validate", str(path))
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("memory estimate"))
    assert "parameters train" in line and "free" in line
