"""Exports: commented YAML and JSON that load back to the same config, the run command, no secrets, and standalone
scripts that reproduce a run without finetune-tui."""

from __future__ import annotations

import ast
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from core.config import load_config, parse_config
from core.engines import ENGINES
from core.export import FORMATS, export_config, redact, to_command
from core.tasks import TASKS
from tests.conftest import tiny_config, write_tsv
from tests.fixtures_data import data_dir_fixture  # noqa: F401
from tests.test_task_multilabel import TAGS, comments, write_columns, write_joined, write_jsonl
from tests.test_task_regression import ratings
from tests.test_trainer_run import _run_in_process

OFFLINE = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
FAKE_TOKEN = "hf_FakeTokenForTestsOnly0123456789abcdefXYZ"
KERAS = pytest.mark.skipif(not ENGINES["keras"].available(), reason="the keras engine is not installed here")
TOLERANCE = 1e-4  # measured on CPU: each engine's script gives exactly the run's numbers (difference 0.0)

# Runs a script with finetune-tui's own packages made unimportable (the editable install would otherwise find them).
BLOCKED_RUNNER = """
import importlib.abc, runpy, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("core", "tui"):
            raise ModuleNotFoundError(f"{name} is blocked: an exported script must not need finetune-tui")
sys.meta_path.insert(0, Block())
try:
    import core  # noqa
except ModuleNotFoundError:
    pass
else:
    raise SystemExit("the blocker failed: core is importable")
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _full_config(tmp_path: Path) -> dict[str, Any]:
    return {
        "engine": "torch-loop",
        "model": {"name_or_path": "bert-base-cased", "revision": "main"},
        "data": {"train_file": str(tmp_path / "train.csv"), "test_file": str(tmp_path / "test.csv"),
                 "text_column": "text", "label_column": "label", "validation_fraction": 0.2, "header": False,
                 "column_names": ["text", "label"], "max_train_samples": 100},
        "tokenizer": {"padding": "max_length", "max_length": 64},
        "training": {"num_train_epochs": 2, "learning_rate": 3e-5, "mixed_precision": "no", "eval_strategy": "steps",
                     "eval_steps": 10, "early_stopping_patience": 2, "metric_for_best_model": "f1",
                     "lora": {"r": 4, "alpha": 8, "target_modules": ["query", "value"]}},
        "metrics": ["accuracy", "f1", "matthews_correlation"],
        "output_dir": str(tmp_path / "out dir"),
    }


# --- yaml, json, command --------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_yaml_and_json_round_trip_through_load_config(fmt: str, tmp_path: Path) -> None:
    config = parse_config(_full_config(tmp_path))
    exported = export_config(config, fmt)
    path = tmp_path / exported.suggested_name
    path.write_text(exported.text)
    assert path.suffix == f".{fmt}"
    assert load_config(path) == config


def test_yaml_explains_every_field(tmp_path: Path) -> None:
    from core.config import field_help

    text = export_config(parse_config(_full_config(tmp_path)), "yaml").text
    assert f"# {field_help('training', 'learning_rate')}" in text
    assert f"  # {field_help('tokenizer', 'padding')[:60]}" in text  # nested fields are indented with their key
    comments = [line for line in text.splitlines() if line.lstrip().startswith("#")]
    assert len(comments) > 50 and max(len(line) for line in text.splitlines()) <= 120


def test_command_is_the_run_line(tmp_path: Path) -> None:
    path = tmp_path / "my config.yaml"
    assert to_command("finetune.yaml") == "finetune-tui run finetune.yaml"
    command = to_command(path)
    assert shlex.split(command) == ["finetune-tui", "run", str(path)]  # quoted for the space

    from tui.cli import _parser

    args = _parser().parse_args(shlex.split(command)[1:])
    assert args.command == "run" and args.config == path


def test_cli_export_prints_and_writes(tmp_path: Path) -> None:
    from tui.cli import main

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(_full_config(tmp_path)))
    result = _cli("export", str(config), "--to", "command")
    assert result.returncode == 0 and result.stdout == f"finetune-tui run {config}\n"
    out = tmp_path / "exported.json"
    assert main(["export", str(config), "--to", "json", "-o", str(out)]) == 0
    assert load_config(out) == load_config(config)
    assert main(["export", str(config), "--to", "json", "-o", str(out)]) == 2  # exists: not replaced silently
    bad = _cli("export", str(config), "--to", "command", "-o", str(out))
    assert bad.returncode == 2 and "--force" in bad.stderr and "Traceback" not in bad.stderr


def test_unknown_format_is_a_user_error(tmp_path: Path) -> None:
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown"):
        export_config(parse_config(_full_config(tmp_path)), "toml")
    assert FORMATS == ("yaml", "json", "command", "script")


# --- secrets -----------------------------------------------------------------------------------------------------

def test_planted_hub_token_never_appears_in_any_export(tiny_model: Path, tiny_data: dict, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", "plain-secret-value-42")
    raw = tiny_config(tiny_model, tiny_data, tmp_path / f"run-{FAKE_TOKEN}")
    raw["model"]["revision"] = FAKE_TOKEN  # pasted into a field by mistake
    raw["data"]["column_names"] = None
    raw["training"]["metric_for_best_model"] = None
    raw["output_dir"] = str(tmp_path / "plain-secret-value-42" / "run")
    config = parse_config(raw)
    config_path = tmp_path / f"{FAKE_TOKEN}.yaml"
    for fmt in FORMATS:
        exported = export_config(config, fmt, config_path=config_path)
        assert FAKE_TOKEN not in exported.text and "plain-secret-value-42" not in exported.text, fmt
        assert exported.secrets_removed >= 1, fmt
    # The CLI says so, without printing the token.
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = _cli("export", str(path), "--to", "yaml", env={"HF_TOKEN": FAKE_TOKEN})
    assert result.returncode == 0 and FAKE_TOKEN not in result.stdout + result.stderr
    assert "removed" in result.stderr and "HF_TOKEN" in result.stderr


def test_redact_leaves_ordinary_text_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", "")
    text = "hf_short and a path /data/hf_datasets/train.csv"
    assert redact(text) == (text, 0)


# --- scripts: what they resolve --------------------------------------------------------------------------------

def _render(raw: dict[str, Any]) -> str:
    text = export_config(parse_config(raw), "script").text
    compile(text, "script.py", "exec")
    tree = ast.parse(text)
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & {"core", "tui", "finetune_tui"}, imported
    return text


def _script_namespace(text: str, tmp_path: Path) -> dict[str, Any]:
    """The script's module globals, without running main()."""
    import runpy

    path = tmp_path / "script.py"
    path.write_text(text)
    return runpy.run_path(str(path), run_name="exported_script")


@pytest.mark.parametrize(("train", "extra"), [
    ("train.csv", {}),
    ("headerless.csv", {"column_names": ["review", "stars"], "text_column": "review", "label_column": "stars"}),
    ("train.tsv", {}),
    ("train.jsonl", {"validation_file": "valid.csv", "test_file": "test.csv"}),  # splits in other formats
    ("notes.txt", {}),
    ("train.jsonl", {"max_train_samples": 7, "max_eval_samples": 3}),
    ("train.json", {}),
    ("columns.json", {}),
    ("train.parquet", {}),
    ("pairs.jsonl", {}),
    ("ints.csv", {"validation_fraction": 0.3, "shuffle_seed": 7}),
    ("ints.csv", {"label_names": ["red", "green", "blue"]}),
    ("glue.tsv", {}),
    ("glue.tsv", {"label_names": ["not_equivalent", "equivalent"]}),
])
def test_script_loads_exactly_the_rows_and_labels_finetune_tui_trains_on(
    data_dir: Path, tiny_model: Path, tmp_path: Path, train: str, extra: dict[str, Any]
) -> None:
    from core.data import prepare_data

    files = {k: str(data_dir / v) for k, v in extra.items() if k.endswith("_file")}
    data = {"train_file": str(data_dir / train), **{k: v for k, v in extra.items() if not k.endswith("_file")},
            **files}
    raw = {"model": {"name_or_path": str(tiny_model)}, "data": data, "output_dir": str(tmp_path / "o")}
    prepared = prepare_data(parse_config(raw).data)
    ns = _script_namespace(_render(raw), tmp_path)
    assert ns["LABELS"] == prepared.label_names
    loaded = ns["load_data"]()
    assert set(loaded) == set(prepared.dataset)
    for split, ds in prepared.dataset.items():
        assert loaded[split]["text"] == ds["text"], split
        assert loaded[split]["label"] == ds["label"], split
        if prepared.is_pair:
            assert loaded[split]["text_pair"] == ds["text_pair"], split


@settings(max_examples=60, deadline=None)
@given(labels=st.lists(st.integers(0, 4), min_size=2, max_size=80), frac=st.floats(0.05, 0.9), seed=st.integers(0, 99))
def test_script_split_is_core_split(labels: list[int], frac: float, seed: int) -> None:
    import math

    from core.data import split_indices

    n_val = math.ceil(frac * len(labels))
    if len(labels) - n_val < 1:
        return
    ours = split_indices(np.array(labels), n_val, seed)[:2]
    assert _split_function()(np.array(labels), n_val, seed) == ours


def _split_function() -> Any:
    """split_indices as the exported script defines it, from the template."""
    global _SPLIT
    if "_SPLIT" not in globals():
        source = (Path(__file__).parent.parent / "core" / "export_templates" / "_data.py.j2").read_text()
        tree = ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith("{")))
        func = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "split_indices")
        ns: dict[str, Any] = {"np": np}
        exec(compile(ast.Module([func], []), "template", "exec"), ns)
        _SPLIT = ns["split_indices"]
    return _SPLIT


@pytest.mark.parametrize("training", [
    {},
    {"early_stopping_patience": 2, "eval_strategy": "steps", "eval_steps": 5, "metric_for_best_model": "loss"},
    {"group_by_length": True, "warmup_ratio": 0.1, "lr_scheduler_type": "cosine", "save_strategy": "steps",
     "save_steps": 7, "save_total_limit": None, "gradient_accumulation_steps": 3, "max_steps": 40,
     "max_grad_norm": 0.0, "seed": 7, "weight_decay": 0.0, "eval_strategy": "no"},
])
def test_script_training_arguments_match_the_trainer_engine(tiny_model: Path, tiny_data: dict, tmp_path: Path,
                                                            training: dict[str, Any]) -> None:
    from transformers import TrainingArguments

    from core.engines.trainer import training_arguments

    raw = tiny_config(tiny_model, tiny_data, tmp_path / "run", **training)
    config = parse_config(raw)
    text = _render(raw)
    call = next(n for n in ast.walk(ast.parse(text))
                if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "TrainingArguments")
    # Where it writes and what the trackers call the run come from the script's command line.
    kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg not in ("output_dir", "run_name")}
    script_args = TrainingArguments(output_dir=str(tmp_path / "x"), **kwargs).to_dict()
    ctx = SimpleNamespace(config=config, run_dir=SimpleNamespace(checkpoints_dir=tmp_path / "x", path=tmp_path / "run"),
                          device="cpu")
    engine_args = training_arguments(ctx).to_dict()  # type: ignore[arg-type]
    # Where it runs (use_cpu turns pin_memory off), what it prints and counts for the monitor: not the results.
    ignore = {"use_cpu", "dataloader_pin_memory", "disable_tqdm", "output_dir", "logging_dir",
              "include_num_input_tokens_seen", "run_name"}
    diff = {k: (script_args.get(k), v) for k, v in engine_args.items() if k not in ignore and script_args.get(k) != v}
    assert not diff


def test_bundled_model_script_names_the_local_path_and_the_hub_id(tiny_data: dict, tmp_path: Path) -> None:
    from core.models import bundled_model_dir

    raw = tiny_config(Path("x"), tiny_data, tmp_path / "run")
    raw["model"]["name_or_path"] = "bundled:all-MiniLM-L6-v2"
    text = _render(raw)
    assert f"MODEL = {json.dumps(str(bundled_model_dir()))}" in text
    assert "sentence-transformers/all-MiniLM-L6-v2" in text


def test_script_options_follow_the_config(tiny_model: Path, tiny_data: dict, tmp_path: Path) -> None:
    lora = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["query", "value"]}
    text = _render(tiny_config(tiny_model, tiny_data, tmp_path / "run", lora=lora, early_stopping_patience=2))
    assert "get_peft_model" in text and "r=4" in text and "merge_and_unload" in text
    assert "EarlyStoppingCallback(early_stopping_patience=2)" in text
    text = _render(tiny_config(tiny_model, tiny_data, tmp_path / "run", freeze_encoder=True))
    assert "requires_grad = False" in text and "peft" not in text and "EarlyStopping" not in text


@pytest.mark.parametrize("engine", ["trainer", "torch-loop"])
def test_script_loads_float32_master_weights_from_a_bf16_checkpoint(engine: str, tiny_model: Path, tiny_data: dict,
                                                                     tmp_path: Path) -> None:
    import shutil

    import torch
    from transformers import BertForSequenceClassification

    bf16 = tmp_path / "bf16"
    BertForSequenceClassification.from_pretrained(tiny_model, num_labels=2).to(torch.bfloat16).save_pretrained(bf16)
    for f in tiny_model.iterdir():
        if f.name.startswith(("vocab", "tokenizer", "special_tokens")):
            shutil.copy(f, bf16 / f.name)
    raw = {**tiny_config(bf16, tiny_data, tmp_path / "run", mixed_precision="bf16"), "engine": engine}
    text = _render(raw)
    # The script's own load line, run with the script's globals: mixed precision is autocast over float32 weights.
    call = next(n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Call)
                and ast.unparse(n.func) == "AutoModelForSequenceClassification.from_pretrained")
    model = eval(compile(ast.Expression(call), "script", "eval"), _script_namespace(text, tmp_path))
    assert {p.dtype for p in model.parameters()} == {torch.float32}


# --- scripts: tasks ------------------------------------------------------------------------------------------------

def _regression_config(model: Path, root: Path, engine: str = "trainer", rows: int = 80, **training: Any) -> dict:
    """A text-regression config on 1-5 star ratings (tests/test_task_regression.py), its default metrics."""
    train = write_tsv(root / "ratings_train.tsv", ratings(rows, seed=1), header=("review", "stars"))
    test = write_tsv(root / "ratings_test.tsv", ratings(20, seed=2), header=("review", "stars"))
    raw = tiny_config(model, {"train": train, "test": test}, root / f"run-{engine}", **training)
    raw["data"].update(text_column="review", label_column="stars", label_scaling="standard")
    del raw["metrics"]  # the task's own: pearson, spearman, mse, rmse, mae, r2
    return {**raw, "task": "text-regression", "engine": engine}


def _multi_label_config(model: Path, root: Path, engine: str = "trainer", rows: int = 48, **training: Any) -> dict:
    """A multi-label-classification config on tagged comments (tests/test_task_multilabel.py): the training tags as
    text joined by | (the separator found automatically), the test tags as JSON lists; the task's default metrics."""
    train = write_joined(root / "comments_train.tsv", comments(rows, seed=11))
    test = write_jsonl(root / "comments_test.jsonl", comments(16, seed=12), column="tags")
    raw = tiny_config(model, {"train": train, "test": test}, root / f"run-{engine}", **training)
    raw["data"].update(label_column="tags")
    del raw["metrics"]  # f1_micro, f1_macro, precision_micro, recall_micro, exact_match, hamming_loss
    return {**raw, "task": "multi-label-classification", "engine": engine}


def _engine_param(engine: str) -> Any:
    return pytest.param(engine, marks=[KERAS]) if engine == "keras" else engine


@pytest.mark.parametrize("task", ["text-classification", "text-regression", "multi-label-classification"])
@pytest.mark.parametrize("engine", [_engine_param(name) for name in ENGINES])
def test_every_task_renders_a_standalone_script_for_every_engine(task: str, engine: str, tiny_model: Path,
                                                                 tiny_data: dict, tmp_path: Path) -> None:
    """Each (task, engine) script compiles and imports nothing of finetune-tui (_render); its task-specific code
    comes from the task's export/ fragments, its engine code from the engine's template."""
    if task == "text-regression":
        raw = _regression_config(tiny_model, tmp_path, engine)
    elif task == "multi-label-classification":
        raw = _multi_label_config(tiny_model, tmp_path, engine, threshold="auto", class_weights="auto")
    else:
        raw = {**tiny_config(tiny_model, tiny_data, tmp_path / "run"), "engine": engine}
    text = _render(raw)
    tree = ast.parse(text)
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    assert {"load_data", "label_values", "validation_strata", "compute_metrics", "finish", "write_task_file"} <= defined
    assert f"for {TASKS[task].title.lower()} with" in text.splitlines()[0]
    keras = ENGINES[engine].model_format == "keras"
    if task == "text-regression":
        # shared.py is inlined as it is, not copied into a template
        from core.tasks.text_regression import shared

        assert {"quantile_strata", "standard_scaling", "regression_metrics", "fold_scaling", "unscale"} <= defined
        assert 'def unscale(outputs: "np.ndarray | torch.Tensor"' in text and shared.__doc__.strip()[:40] not in text
        assert "labels_for_training(tokenized" in text and "sklearn.metrics import accuracy" not in text
        assert ("MeanSquaredError()" in text) if keras else ('problem_type="regression"' in text)
        assert "ClassLabel" not in text and "np.argmax(outputs" not in text and "LABEL2ID" not in text
    elif task == "multi-label-classification":
        from core.tasks.multi_label import shared

        assert {"rarest_label_strata", "multi_label_metrics", "positive_weights", "tune_thresholds", "label_id",
                "class_weights", "tuned_thresholds", "validation_outputs"} <= defined
        assert shared.__doc__.strip()[:40] not in text and 'LABEL_SEPARATOR = "|"' in text
        assert "THRESHOLD_TUNING.update(validation=tokenized" in text
        assert ("WeightedBinaryCrossEntropy(weights)" in text) if keras else \
            ('problem_type="multi_label_classification"' in text and "pos_weight=weight" in text)
        assert "np.argmax(outputs" not in text and "quantile_strata" not in text and "scipy" not in text
    else:
        assert "np.argmax(outputs, axis=-1)" in text and "labels_for_training" not in text
        assert ("SparseCategoricalCrossentropy" in text) if keras else ("num_labels=len(LABELS)" in text)
        assert "quantile_strata" not in text and "scipy" not in text


def test_a_task_without_export_fragments_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.errors import ConfigError
    from core.tasks import get_task

    task = get_task("text-regression")
    monkeypatch.setattr(type(task), "export_dir", lambda self: tmp_path / "export")
    config = parse_config({"task": "text-regression", "data": {"train_file": str(tmp_path / "unread.csv")}})
    with pytest.raises(ConfigError, match="no script export for task 'text-regression'"):
        export_config(config, "script")


@pytest.mark.parametrize(("train", "extra"), [
    ("held-out", {"max_train_samples": 50, "max_eval_samples": 5}),  # validation stratified by score quantiles
    ("decimals", {"label_scaling": "none"}),  # scores as text with spaces and decimals, validation and test files
])
def test_regression_script_loads_and_scales_exactly_the_scores_finetune_tui_trains_on(
    tiny_model: Path, tmp_path: Path, train: str, extra: dict[str, Any]
) -> None:
    from core.data import prepare_data
    from core.tasks import get_task

    raw = _regression_config(tiny_model, tmp_path)
    if train == "decimals":
        rows = [(text, f" {int(stars) / 2 + 0.1 * (i % 3)} ") for i, (text, stars) in enumerate(ratings(60, seed=5))]
        raw["data"]["train_file"] = str(write_tsv(tmp_path / "decimals.tsv", rows, header=("review", "stars")))
        raw["data"]["validation_file"] = str(write_tsv(tmp_path / "valid.tsv", rows[:9], header=("review", "stars")))
    raw["data"].update(extra)
    config = parse_config(raw)
    prepared = prepare_data(config.data, config.task)
    ns = _script_namespace(_render(raw), tmp_path)
    assert ns["LABELS"] == prepared.label_names == ["stars"]
    loaded = ns["load_data"]()
    assert set(loaded) == set(prepared.dataset)
    for split, ds in prepared.dataset.items():
        assert loaded[split]["text"] == ds["text"], split
        assert loaded[split]["label"] == ds["label"], split  # float32 scores, bit for bit
    # What the model trains on: z-scored with the training split's numbers, as the tokenized splits hold them.
    trained = ns["labels_for_training"](loaded, loaded["train"])
    stats = prepared.label_stats
    assert ns["TRAINING_SCORES"]["range"] == [stats["min"], stats["max"]]
    assert ns["TRAINING_SCORES"]["whole"] == stats["whole"]
    scaling = stats["scaling"]
    assert ns["TRAINING_SCORES"]["scaling"] == ((scaling["mean"], scaling["std"]) if scaling else None)
    transform = get_task("text-regression").label_transform(prepared) or (lambda values: values)
    for split, ds in prepared.dataset.items():
        assert trained[split].features["label"].dtype == "float64"
        assert trained[split]["label"] == transform(ds["label"]), split


@settings(max_examples=60, deadline=None)
@given(scores=st.lists(st.sampled_from([1.0, 1.5, 2.0, 3.0, 4.25, 5.0, 7.5]) | st.floats(-10, 10), min_size=2,
                       max_size=80),
       frac=st.floats(0.05, 0.9), seed=st.integers(0, 99))
def test_script_regression_split_is_core_split(scores: list[float], frac: float, seed: int) -> None:
    """The script stratifies on quantile_strata (shared.py, inlined as it is) with its own split_indices."""
    import math

    from core.data import split_indices
    from core.tasks import get_task
    from core.tasks.text_regression.shared import quantile_strata

    labels = np.asarray(scores, dtype=np.float32)
    n_val = math.ceil(frac * len(labels))
    if len(labels) - n_val < 1:
        return
    ours = split_indices(get_task("text-regression").strata(labels), n_val, seed)[:2]
    assert _split_function()(quantile_strata(np.array(labels.tolist())), n_val, seed) == ours


@pytest.mark.parametrize("variant", ["joined", "semicolons", "columns", "ids", "numbers"])
def test_multi_label_script_loads_exactly_the_labels_finetune_tui_trains_on(tiny_model: Path, tmp_path: Path,
                                                                           variant: str) -> None:
    """Every way of giving the tags reads into the same multi-hot rows, label order, validation rows and positive
    weights as finetune-tui's, with what the run decides from the data (the separator, ids or names) written out."""
    from core.data import prepare_data
    from core.tasks import get_task

    rows, valid = comments(40, seed=3), comments(12, seed=4)
    raw = _multi_label_config(tiny_model, tmp_path, class_weights="auto")
    data, names = raw["data"], list(TAGS)
    if variant == "joined":  # a|b, validation held out (stratified on the rarest tag), subsets of both
        data.update(max_train_samples=25, max_eval_samples=7)
    elif variant == "semicolons":  # a configured separator; validation cells as JSON lists, "a; b" or empty
        data.update(train_file=str(write_joined(tmp_path / "semi.tsv", rows, "; ")), label_separator=";",
                    validation_file=str(write_tsv(tmp_path / "semi_valid.tsv", [
                        (text, json.dumps(tags) if i % 2 else " ; ".join(tags)) for i, (text, tags) in
                        enumerate(valid)], header=("text", "tags"))))
    elif variant == "columns":  # 0/1 columns, one of them true/false; weights given per label
        yes = {"cast": ("1", "0"), "complaint": ("true", "false"), "praise": ("1", "0")}
        train = write_tsv(tmp_path / "cols.tsv", [(text, *(yes[t][t not in tags] for t in TAGS)) for text, tags in
                                                 rows], header=("text", *TAGS))
        data.update(train_file=str(train), validation_file=str(write_columns(tmp_path / "cols_valid.tsv", valid)),
                    test_file=str(write_columns(tmp_path / "cols_test.tsv", comments(10, seed=5))),
                    label_column=None, label_columns=list(TAGS))
        raw["training"]["class_weights"] = [1.0, 2.5, 0.5]
    elif variant == "ids":  # lists of ids named by data.label_names, in Parquet and JSON lines
        pd.DataFrame({"text": [t for t, _ in rows], "tags": [[TAGS.index(t) for t in tags] for _, tags in rows]}
                     ).to_parquet(tmp_path / "ids.parquet")
        valid_ids = [(text, [TAGS.index(t) for t in tags]) for text, tags in valid]
        data.update(train_file=str(tmp_path / "ids.parquet"), label_names=list(TAGS),
                    validation_file=str(write_jsonl(tmp_path / "ids_valid.jsonl", valid_ids, column="tags")))
    else:  # whole numbers without names: the names are the numbers in numeric order, "02" is 2, and so is [2]
        number = {"cast": "1", "complaint": "2", "praise": "10"}
        test = [(text, [int(number[t]) for t in tags]) for text, tags in comments(10, seed=5)]
        data.update(train_file=str(write_joined(tmp_path / "numbers.tsv", [
            (text, [number[t] for t in tags]) for text, tags in rows])), validation_file=str(write_joined(
                tmp_path / "numbers_valid.tsv", [(text, ["0" + number[t] for t in tags]) for text, tags in valid])),
                    test_file=str(write_jsonl(tmp_path / "numbers_test.jsonl", test, column="tags")))
        names = ["1", "2", "10"]
    config = parse_config(raw)
    prepared = prepare_data(config.data, config.task)
    ns = _script_namespace(_render(raw), tmp_path)
    assert ns["LABELS"] == prepared.label_names == names
    decided = {"joined": ("|", False, None), "semicolons": (";", False, None), "columns": (None, None, list(TAGS)),
               "ids": (None, True, None), "numbers": ("|", False, None)}[variant]
    assert (ns.get("LABEL_SEPARATOR"), ns.get("LABELS_ARE_IDS"), ns.get("LABEL_COLUMNS")) == decided
    loaded = ns["load_data"]()
    assert set(loaded) == set(prepared.dataset) == {"train", "validation", "test"}
    for split, ds in prepared.dataset.items():
        assert list(loaded[split]["text"]) == list(ds["text"]), split
        assert list(loaded[split]["label"]) == list(ds["label"]), split
    assert np.asarray(loaded["train"]["label"]).sum(axis=0).min() > 0
    weights = get_task("multi-label-classification").training_weights(config, prepared)
    assert ns["class_weights"](loaded["train"]["label"]) == weights


# --- scripts: they reproduce the run -------------------------------------------------------------------------------

def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tui.cli", *args], capture_output=True, text=True,
                          env={**OFFLINE, **(env or {})}, timeout=300)


def _run_script(script: Path, out: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in OFFLINE.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-I", "-c", BLOCKED_RUNNER, str(script), str(out)], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=600)


def _close(a: dict[str, float], b: dict[str, float], tol: float) -> dict[str, tuple[float, float]]:
    return {k: (a[k], b.get(k, float("nan"))) for k in a if not abs(a[k] - b.get(k, float("nan"))) <= tol}


def _run_and_script_agree(raw: dict[str, Any], tmp_path: Path, wanted: set[str]) -> tuple[Any, dict[str, Any], str]:
    """Train `raw` with finetune-tui, export it as a script, run the script with finetune-tui unimportable (in
    tmp_path/script-out, from another directory), and check both report the `wanted` metrics alike on validation and
    test. The run, what it reported and what the script printed, for the caller's own checks."""
    run = _run_in_process(raw)
    reported = json.loads(run.metrics_path.read_text())
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(raw))
    script = tmp_path / "train.py"
    exported = _cli("export", str(config_path), "--to", "script", "-o", str(script))
    assert exported.returncode == 0, exported.stderr
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    result = _run_script(script, tmp_path / "script-out", workdir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ours = json.loads((tmp_path / "script-out" / "metrics.json").read_text())
    assert wanted <= set(ours["validation"]) and wanted <= set(reported["validation"])
    for split in ("validation", "test"):
        assert not _close({k: reported[split][k] for k in wanted}, ours[split], TOLERANCE), split
    return run, reported, result.stdout


@pytest.mark.parametrize(("engine", "training"), [
    ("trainer", {}),  # length-grouped batches (the default)
    ("trainer", {"group_by_length": False, "max_steps": 12, "gradient_accumulation_steps": 2, "warmup_ratio": 0.2}),
    ("torch-loop", {}),
    ("torch-loop", {"group_by_length": False, "max_steps": 16, "gradient_accumulation_steps": 2, "warmup_ratio": 0.2,
                    "eval_strategy": "steps", "eval_steps": 4, "early_stopping_patience": 1, "lr_scheduler_type":
                    "cosine"}),
    pytest.param("keras", {}, marks=[KERAS, pytest.mark.slow]),
    pytest.param("keras", {"group_by_length": False, "max_steps": 12, "gradient_accumulation_steps": 2,
                           "eval_strategy": "steps", "eval_steps": 4, "early_stopping_patience": 1,
                           "metric_for_best_model": "loss"}, marks=[KERAS, pytest.mark.slow]),
])
def test_exported_script_reproduces_the_run(engine: str, training: dict[str, Any], tiny_model: Path, tiny_data: dict,
                                            tmp_path: Path) -> None:
    raw = tiny_config(tiny_model, tiny_data, tmp_path / "run", **{"num_train_epochs": 3, **training})
    raw["engine"] = engine
    wanted = {"loss", "accuracy", "f1"}
    run, reported, _ = _run_and_script_agree(raw, tmp_path, wanted)
    # Evaluating the run (core.evaluation through core.predict) gives the numbers the engine reported, and what the
    # script saves is a model `finetune-tui predict` takes, whatever the engine.
    from core.evaluation import evaluate_run
    from core.predict_file import predict_file

    evaluation = evaluate_run(run.path, "validation", report=False)
    assert not _close({k: reported["validation"][k] for k in wanted}, evaluation.metrics, TOLERANCE)
    texts = tmp_path / "texts.csv"
    texts.write_text("text\ngreat film\nawful plot\n")
    result = predict_file(tmp_path / "script-out" / "model", texts)
    table = pd.read_csv(result.output)
    assert result.rows == 2 and set(table["predicted"]) <= {"neg", "pos"}
    assert np.allclose(table["probability_neg"] + table["probability_pos"], 1, atol=1e-4)


@pytest.mark.parametrize(("engine", "training"), [
    ("trainer", {}),
    # rmse picks the best model, lowest first; early stopping brings it back at the end
    ("torch-loop", {"group_by_length": False, "max_steps": 24, "eval_strategy": "steps", "eval_steps": 4,
                    "early_stopping_patience": 1, "metric_for_best_model": "rmse"}),
    pytest.param("keras", {}, marks=[KERAS, pytest.mark.slow]),
])
def test_exported_regression_script_reproduces_the_run(engine: str, training: dict[str, Any], tiny_model: Path,
                                                       tmp_path: Path) -> None:
    """label_scaling standard: the script z-scores the scores, trains with the mean squared error, reports the
    metrics in the score's units, folds the scaling into the head and writes task.json, as finetune-tui does."""
    from core.predict import load_predictor

    raw = _regression_config(tiny_model, tmp_path, engine, **{"num_train_epochs": 3, "eval_strategy": "epoch",
                                                                **training})
    wanted = {"loss", "pearson", "spearman", "mse", "rmse", "mae", "r2"}
    run, _, _ = _run_and_script_agree(raw, tmp_path, wanted)

    # The saved models: the same task.json (scaling folded) and the same raw scores through predict.
    model_dir = tmp_path / "script-out" / "model"
    assert json.loads((model_dir / "task.json").read_text()) == json.loads((run.model_dir / "task.json").read_text())
    texts = [text for text, _ in ratings(6, seed=9)]
    script_scores = load_predictor(model_dir).scores(texts)
    assert np.allclose(script_scores, load_predictor(run.path).scores(texts), atol=1e-4)
    assert 0.0 < float(np.mean(script_scores)) < 6.0


@pytest.mark.parametrize(("engine", "labels", "training"), [
    ("trainer", "joined", {"threshold": 0.4, "class_weights": "auto"}),
    # the best model by hamming_loss (lowest first) comes back at the end, and its thresholds are tuned
    ("torch-loop", "columns", {"threshold": "auto", "group_by_length": False, "max_steps": 6, "eval_strategy": "steps",
                               "eval_steps": 2, "early_stopping_patience": 1, "metric_for_best_model": "hamming_loss"}),
    pytest.param("keras", "joined", {"threshold": "auto", "class_weights": [1.0, 2.0, 3.0]},
                 marks=[KERAS, pytest.mark.slow]),
])
def test_exported_multi_label_script_reproduces_the_run(engine: str, labels: str, training: dict[str, Any],
                                                        tiny_model: Path, tmp_path: Path) -> None:
    """The script reads the tags, trains with BCE (positive weights where set), reports the metrics at the training
    threshold, tunes the thresholds on the final model's validation outputs with auto and saves them in task.json, as
    finetune-tui does; its model answers through predict and transformers' pipeline with one sigmoid per label."""
    from core.predict import load_predictor
    from core.tasks.multi_label.shared import THRESHOLD_GRID

    raw = _multi_label_config(tiny_model, tmp_path, engine, **{"num_train_epochs": 1, "eval_strategy": "epoch",
                                                                **training})
    if labels == "columns":
        raw["data"].update(train_file=str(write_columns(tmp_path / "cols.tsv", comments(48, seed=11))),
                           test_file=str(write_columns(tmp_path / "cols_test.tsv", comments(16, seed=12))),
                           label_column=None, label_columns=list(TAGS))
    wanted = {"loss", "f1_micro", "f1_macro", "precision_micro", "recall_micro", "exact_match", "hamming_loss"}
    run, reported, printed = _run_and_script_agree(raw, tmp_path, wanted)

    # The same task.json (thresholds included), and the same probabilities from both saved models.
    model_dir = tmp_path / "script-out" / "model"
    meta = json.loads((model_dir / "task.json").read_text())
    assert meta == json.loads((run.model_dir / "task.json").read_text())
    assert meta["labels"] == list(TAGS) and list(meta["thresholds"]) == list(TAGS)
    if training["threshold"] == "auto":
        assert meta["threshold"] == "auto" and set(meta["thresholds"].values()) <= set(THRESHOLD_GRID)
        # What the script says of validation at the tuned thresholds is the run's evaluation report.
        line = next(x for x in printed.splitlines() if x.startswith("validation metrics at these thresholds:"))
        tuned = ast.literal_eval(line.split(":", 1)[1].strip())
        evaluated = reported["evaluation"]["validation"]["metrics"]
        assert not _close({k: evaluated[k] for k in wanted - {"loss"}}, tuned, TOLERANCE)
    else:
        assert meta["thresholds"] == dict.fromkeys(TAGS, training["threshold"])
    texts = [text for text, _ in comments(6, seed=9)]
    probabilities = load_predictor(model_dir).scores(texts)
    assert probabilities.shape == (6, 3)
    assert np.allclose(probabilities, load_predictor(run.path).scores(texts), atol=1e-4)
    if engine != "keras":
        from transformers import pipeline

        scorer = pipeline("text-classification", model=str(model_dir), function_to_apply="sigmoid", top_k=None)
        for out, expected in zip(scorer(texts), probabilities, strict=True):
            assert np.allclose([{o["label"]: o["score"] for o in out}[t] for t in TAGS], expected, atol=1e-4)


def test_exported_scripts_carry_the_launcher_for_several_processes(tmp_path: Path) -> None:
    from core.config import parse_config
    from core.export import export_config
    from tests.conftest import tiny_rows, write_tsv

    train = write_tsv(tmp_path / "train.tsv", tiny_rows(20))
    for engine in ("trainer", "torch-loop"):
        config = parse_config({"engine": engine, "data": {"train_file": str(train)}, "training": {"num_processes": 4}})
        text = export_config(config, "script").text
        assert f"torchrun --standalone --nproc_per_node=4 train_{engine.replace('-', '_')}.py" in text
        assert "--nnodes=N" in text
        config.training.num_processes = 1
        assert "torchrun" not in export_config(config, "script").text


@KERAS
def test_exported_keras_script_spreads_over_replicas(tiny_model: Path, tiny_data: dict, tmp_path: Path) -> None:
    text = _render({**tiny_config(tiny_model, tiny_data, tmp_path / "run", num_processes=2), "engine": "keras"})
    assert "REPLICAS = 2" in text and "tf.distribute.MirroredStrategy" in text
    assert "with strategy.scope():" in text and "DROPOUT, HEAD_DROPOUT = 0.1, 0.1" in text


@pytest.mark.parametrize("engine", ["trainer", "torch-loop", pytest.param("keras", marks=[KERAS, pytest.mark.slow])])
def test_exported_script_logs_to_the_configs_trackers(engine: str, tiny_model: Path, tiny_data: dict,
                                                      tmp_path: Path) -> None:
    """training.report_to travels into the script: its TensorBoard files under OUTPUT_DIR/tensorboard hold the
    metrics the script printed, under the names the run's trackers use, and MLflow gets them in the runs' store."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util.tensor_util import make_ndarray

    raw = {**tiny_config(tiny_model, tiny_data, tmp_path / "run", num_train_epochs=2,
                         report_to=["tensorboard", "mlflow"]), "engine": engine}
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(raw))
    script = tmp_path / "train.py"
    assert _cli("export", str(config_path), "--to", "script", "-o", str(script)).returncode == 0
    result = _run_script(script, tmp_path / "out", tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    printed = json.loads((tmp_path / "out" / "metrics.json").read_text())
    found: dict[str, float] = {}
    for events in sorted((tmp_path / "out" / "tensorboard").rglob("events.out.tfevents*")):
        acc = EventAccumulator(str(events))
        acc.Reload()
        # torch's SummaryWriter writes scalars; tf.summary (keras) writes them as tensors.
        found.update({tag: acc.Scalars(tag)[-1].value for tag in acc.Tags()["scalars"]})
        tensors = {tag: make_ndarray(acc.Tensors(tag)[-1].tensor_proto) for tag in acc.Tags()["tensors"]}
        found.update({tag: float(value) for tag, value in tensors.items() if value.ndim == 0})
    for split, prefix in (("validation", "eval"), ("test", "test")):
        assert found[f"{prefix}/accuracy"] == pytest.approx(printed[split]["accuracy"], abs=1e-6), (split, found)
    assert "train/loss" in found

    # MLflow: the runs' default store (./mlruns where the script ran), experiment finetune-tui, the output's name.
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("finetune-tui")
    (run,) = client.search_runs([experiment.experiment_id], "attributes.run_name = 'out'")
    name = "eval_accuracy" if engine == "trainer" else "eval/accuracy"  # Trainer's script: its callback's own names
    assert run.data.metrics[name] == pytest.approx(printed["validation"]["accuracy"], abs=1e-6)
