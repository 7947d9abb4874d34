"""The config: the issue's example works as written, round trips, and bad values get named clearly."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from core.config import RunConfig, field_help, load_config, parse_config, save_config
from core.errors import ConfigError

ISSUE_EXAMPLE = """
schema_version: 1
engine: trainer
model:
  name_or_path: bert-base-cased
data:
  train_file: data/train.tsv
  validation_file: null
  test_file: null
  format: auto
  header: auto
  column_names: null
  text_column: sentence
  text_pair_column: null
  label_column: label
  validation_fraction: 0.1
  max_train_samples: null
  max_eval_samples: null
  shuffle_seed: 42
tokenizer:
  padding: dynamic
  truncation: true
  max_length: 128
training:
  num_train_epochs: 3
  learning_rate: 5.0e-5
  per_device_train_batch_size: 16
  per_device_eval_batch_size: 64
  gradient_accumulation_steps: 1
  weight_decay: 0.01
  warmup_ratio: 0.0
  lr_scheduler_type: linear
  mixed_precision: "no"
  eval_strategy: epoch
  save_strategy: epoch
  logging_steps: 10
  max_steps: -1
  group_by_length: false
  early_stopping_patience: null
  freeze_encoder: false
  lora: null
  seed: 42
metrics: [accuracy]
output_dir: runs/my-run
"""


def test_issue_example_loads_as_written(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(ISSUE_EXAMPLE)
    config = load_config(path)
    assert config.model.name_or_path == "bert-base-cased"
    assert config.data.text_column == "sentence"
    assert config.training.learning_rate == 5e-5
    assert config.output_dir == Path("runs/my-run")


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_round_trip_is_lossless(tmp_path: Path, suffix: str) -> None:
    config = parse_config(yaml.safe_load(ISSUE_EXAMPLE))
    config.training.lora = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["query"]}  # type: ignore[assignment]
    config.data.hub = None
    path = save_config(config, tmp_path / f"c{suffix}")
    assert load_config(path) == config


def test_save_refuses_to_overwrite(tmp_path: Path) -> None:
    config = parse_config(yaml.safe_load(ISSUE_EXAMPLE))
    path = save_config(config, tmp_path / "c.yaml")
    path.write_text("# mine\n" + path.read_text())
    with pytest.raises(ConfigError, match="already exists"):
        save_config(config, path)
    assert path.read_text().startswith("# mine")


def test_bare_yaml_no_means_the_string_no(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("data: {train_file: x.tsv}\ntraining: {mixed_precision: no, eval_strategy: no}\n")
    config = load_config(path)
    assert config.training.mixed_precision == "no" and config.training.eval_strategy == "no"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"data": {"train_file": "x"}, "training": {"learnig_rate": 1}},
         ["training.learnig_rate", "did you mean 'learning_rate'"]),
        ({"data": {"train_file": "x"}, "training": {"learning_rate": -1}},
         ["training.learning_rate", "-1", "greater than 0"]),
        ({"data": {"train_file": "x"}, "training": {"per_device_train_batch_size": 0}},
         ["per_device_train_batch_size", "0", "greater than or equal to 1"]),
        ({"data": {"train_file": "x"}, "engine": "pytorch"}, ["engine", "'pytorch'", "'trainer'", "'keras'"]),
        ({"data": {"train_file": "x"}, "tokenizer": {"padding": "max"}}, ["tokenizer.padding", "'dynamic'"]),
        ({"data": {"train_file": "x"}, "schema_version": 7}, ["schema_version", "newer", "upgrade"]),
        ({"data": {}}, ["data", "train_file", "hub"]),
        ({"data": {"train_file": "x"}, "metrics": ["auc"]},
         ["metrics ['auc'] are not reported for text-classification", "choose from accuracy, f1"]),
        ({"data": {"train_file": "x"}, "training": {"eval_strategy": "steps"}}, ["eval_steps"]),
        ({"data": {"train_file": "x"}, "training": {"eval_strategy": "no", "early_stopping_patience": 2}},
         ["early_stopping_patience", "eval_strategy"]),
        ({"data": {"train_file": "x"}, "training": {"metric_for_best_model": "f1"}}, ["metric_for_best_model", "f1"]),
        ({"data": {"train_file": "x"}, "modle": {}}, ["modle", "did you mean 'model'"]),
    ],
)
def test_bad_values_name_key_value_and_allowed(raw: dict, expected: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    for fragment in expected:
        assert fragment in info.value.message
    assert "fix:" in info.value.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", "is empty"), ("- a\n- b\n", "must be a mapping"), ("data: [unclosed\n", "not valid YAML at line")],
)
def test_unreadable_files(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected):
        load_config(path)


def test_missing_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(ConfigError, match="not a text file"):
        load_config(binary)


def test_safe_loader_refuses_python_tags(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("data: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_every_field_explains_itself() -> None:
    from core import config as c

    for section in (c.ModelConfig, c.DataConfig, c.TokenizerConfig, c.TrainingConfig, c.LoraSettings, RunConfig):
        for name, info in section.model_fields.items():
            assert info.description, f"{section.__name__}.{name} has no description"
    assert "AdamW" in field_help("training", "learning_rate")


@settings(max_examples=150, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12))
def test_fuzzed_mappings_give_only_clean_errors(raw: object) -> None:
    with contextlib.suppress(ConfigError):
        parse_config(raw)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_fuzzed_bytes_give_only_clean_errors(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "c.yaml"
    path.write_bytes(data)
    with contextlib.suppress(ConfigError):
        load_config(path)
