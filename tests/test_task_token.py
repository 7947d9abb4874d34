"""token-classification: CoNLL files as real ones come, tag schemes, word-to-sub-token alignment, entity metrics
with seqeval's semantics, training on the two transformers engines, and the model's answers (predict, pipeline)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.config import parse_config
from core.data import prepare_data
from core.data.conll import load_conll
from core.errors import ConfigError, DataError, UserError
from core.launch import create_run, resolve_config, resume_checkpoint
from core.rundir import RunDir
from core.tasks import get_task
from core.tasks.token_classification import tags as T
from core.worker import main as worker_main
from tests.ner_data import build_ner_model, sentences, write_conll
from tests.test_stop_resume import _stop_at
from tests.test_trainer_run import _run_in_process

TASK = "token-classification"
NEEDS_KERAS = pytest.mark.skipif(importlib.util.find_spec("keras_hub") is None,
                                 reason='the keras engine needs pip install "finetune-tui[keras]"')
ENGINES = ["trainer", "torch-loop", pytest.param("keras", marks=NEEDS_KERAS)]


@pytest.fixture(scope="session")
def ner_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_ner_model(tmp_path_factory.mktemp("ner-bert"))


def _data(root: Path, **conll: Any) -> dict[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    return {"train": write_conll(root / "train.conll", sentences(64, seed=1), **conll),
            "validation": write_conll(root / "valid.conll", sentences(15, seed=2)),
            "test": write_conll(root / "test.conll", sentences(20, seed=3))}


def _raw(model: Path, data: dict[str, Path], out: Path, engine: str = "trainer", **training: Any) -> dict[str, Any]:
    return {"task": TASK, "engine": engine, "model": {"name_or_path": str(model)},
            "data": {"train_file": str(data["train"]), "test_file": str(data["test"]),
                     **({"validation_file": str(data["validation"])} if data.get("validation") else {})},
            "tokenizer": {"max_length": 32},
            "training": {"num_train_epochs": 6, "learning_rate": 5e-3, "per_device_train_batch_size": 8,
                         "logging_steps": 2, "save_total_limit": 1, **training},
            "output_dir": str(out)}


# --- CoNLL files -----------------------------------------------------------------------------------------------------

def test_a_conll_2003_style_file_with_every_quirk_reads_back_its_sentences(tmp_path: Path) -> None:
    """Four columns (tags last), -DOCSTART-, CRLF, a BOM before every third sentence (files joined with cat),
    separator lines holding only spaces and a tab, and no newline at the end."""
    rows = sentences(10, seed=4)
    path = write_conll(tmp_path / "eng.train", rows, columns=4, crlf=True, bom_every=3, blank=" \t",
                       final_newline=False)
    ds, source = load_conll(path)
    assert ds["tokens"] == [[w for w, _ in s] for s in rows]
    assert ds["tags"] == [[t for _, t in s] for s in rows]
    assert source.row_lines is not None and source.row_lines[:2] == [3, 4 + len(rows[0])]
    # Another column picked as the tags: CoNLL-2003's chunk column.
    chunks, _ = load_conll(path, tags_column_index=2)
    assert set(chunks["tags"][0]) == {"I-NP"}


@pytest.mark.parametrize(("text", "expected"), [
    ("EU B-ORG\nrejects O\n\nPeter B-PER I-PER\nBlack I-PER\n", ["line 5 has 2 columns", "from line 4", "has 3"]),
    ("-DOCSTART- O\n\n  \n", ["holds no sentences"]),
    ("EU\nrejects\n", ["line 1 holds one column", "token and its tag"]),
])
def test_a_broken_conll_file_is_refused_naming_the_line(tmp_path: Path, text: str, expected: list[str]) -> None:
    path = tmp_path / "bad.conll"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_conll(path)
    message = str(err.value)
    assert str(path) in message and all(part in message for part in expected), message


# --- tag schemes and entities ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("tags", "strict", "expected"), [
    # seqeval's default (conlleval) mode: an I- after O starts an entity; a type change ends one
    (["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-LOC"], False, [("PER", 0, 1), ("LOC", 3, 4), ("LOC", 5, 5)]),
    (["B-PER", "I-LOC", "I-LOC"], False, [("PER", 0, 0), ("LOC", 1, 2)]),
    (["B-PER", "E-PER", "S-LOC", "B-ORG", "I-ORG", "E-ORG"], False, [("PER", 0, 1), ("LOC", 2, 2), ("ORG", 3, 5)]),
    # strict mode (IOBES): only well-formed entities count
    (["B-PER", "E-PER", "B-LOC", "I-LOC", "O", "I-ORG", "E-ORG", "S-MISC"], True, [("PER", 0, 1), ("MISC", 7, 7)]),
])
def test_entities_follow_seqeval(tags: list[str], strict: bool, expected: list[tuple[str, int, int]]) -> None:
    assert T.entities(tags, strict) == expected


def test_entity_scores_are_micro_over_entities_with_per_type_support() -> None:
    true = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    predicted = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O"]]
    found = T.entity_scores(true, predicted)
    assert found["precision"] == found["recall"] == pytest.approx(2 / 3)
    assert found["accuracy"] == pytest.approx(5 / 6)
    assert found["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert found["per_type"]["ORG"]["precision"] == 0.5 and found["per_type"]["ORG"]["support"] == 1


def test_iob1_is_detected_and_converted_and_orphan_i_tags_are_counted(tmp_path: Path) -> None:
    iob1 = ["I-PER", "I-PER", "B-PER", "O", "I-LOC"]
    assert T.detect_scheme([iob1]) == "iob1"
    assert T.iob1_to_iob2(iob1) == ["B-PER", "I-PER", "B-PER", "O", "B-LOC"]
    assert T.detect_scheme([["B-PER", "O", "I-LOC"]]) == "iob2"  # a B- after O: IOB2 with an orphan I-
    assert T.detect_scheme([["S-PER", "O"]]) == "iobes"

    data = _data(tmp_path, iob1=True)
    prepared = prepare_data(parse_config(_raw(Path("m"), data, tmp_path / "r")).data, TASK)
    assert "tags converted from IOB1 (I- starts an entity) to IOB2" in prepared.notes
    assert prepared.label_names == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    assert prepared.label_stats["entities"]["PER"] == prepared.sizes["train"]  # one person per sentence

    orphan = tmp_path / "orphan.conll"
    orphan.write_text("anna I-PER\nmet O\noslo B-LOC\n\n", encoding="utf-8")
    raw = _raw(Path("m"), {**data, "train": orphan}, tmp_path / "r")
    found = prepare_data(parse_config(raw).data, TASK)
    assert any("1 I- tags" in note and "no B- before them" in note for note in found.notes), found.notes


def test_a_tag_outside_the_scheme_names_the_sentence_and_its_line(tmp_path: Path) -> None:
    data = _data(tmp_path)
    bad = tmp_path / "bad.conll"
    bad.write_text("anna B-PER\nmet O\n\noslo X-LOC\n\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        prepare_data(parse_config(_raw(Path("m"), {**data, "train": bad}, tmp_path / "r")).data, TASK)
    message = str(err.value)
    assert "'X-LOC'" in message and "IOB2" in message and "data rows 2" in message and "file lines 4" in message


def test_lists_of_words_and_tag_ids_read_with_label_names_and_bad_rows_are_named(tmp_path: Path) -> None:
    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    rows = [{"words": ["anna", "met", "bruno", "kessler"], "ner_tags": [1, 0, 1, 2], "id": 1},
            {"words": ["oslo", "."], "ner_tags": [3, 0], "id": 2}] * 5
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    cfg = {"train_file": str(path), "label_names": names, "validation_fraction": 0.2}
    prepared = prepare_data(parse_config({"task": TASK, "data": cfg}).data, TASK)
    assert prepared.label_names == names and prepared.text_column == "words" and prepared.label_column == "ner_tags"
    assert prepared.label_stats["entities"] == {"PER": 8, "LOC": 4}

    with pytest.raises(DataError, match="are numbers, and nothing names them"):
        prepare_data(parse_config({"task": TASK, "data": {**cfg, "label_names": None}}).data, TASK)
    rows[3] = {"words": ["oslo"], "ner_tags": [3, 0], "id": 4}
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        prepare_data(parse_config({"task": TASK, "data": cfg}).data, TASK)
    assert "words and tags differ in number" in str(err.value) and "data rows 4" in str(err.value)
    assert "file lines 4" in str(err.value) and "1 words, 2 tags" in str(err.value)


def test_a_plain_text_and_label_file_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "reviews.tsv"
    path.write_text("text\tlabel\ngreat film\tpos\nawful\tneg\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        prepare_data(parse_config({"task": TASK, "data": {"train_file": str(path)}}).data, TASK)
    message = str(err.value)
    assert "no list columns" in message and "data.format: conll" in message and "text-classification" in message


def test_settings_of_another_task_are_refused_before_a_run() -> None:
    data = {"train_file": "train.conll"}
    with pytest.raises(UserError, match=r"data\.tags_column names the tags column of token-classification"):
        parse_config({"data": {**data, "tags_column": "ner"}})
    with pytest.raises(ConfigError, match=r"data\.label_column"):
        parse_config({"task": TASK, "data": {**data, "label_column": "tags"}})


# --- tokens ----------------------------------------------------------------------------------------------------------

def test_labels_follow_word_ids_and_label_all_tokens_turns_b_into_i(tmp_path: Path, ner_model: Path) -> None:
    """kessler is kess ##ler: its first sub-token carries the tag and the second -100, or I-PER with
    label_all_tokens, which applies to training only (evaluation reads first sub-tokens)."""
    from core.tokenization import load_tokenizer, tokenize_dataset

    path = tmp_path / "train.conll"
    path.write_text("".join("kessler B-PER\nmet O\nvolkov B-PER\n\n" for _ in range(4)), encoding="utf-8")
    raw = _raw(ner_model, {"train": path, "validation": path, "test": path}, tmp_path / "r")
    config = parse_config(raw)
    prepared = prepare_data(config.data, TASK)
    tokenizer = load_tokenizer(config.model)
    names = prepared.label_names
    assert tokenizer.convert_ids_to_tokens(tokenize_dataset(prepared, tokenizer, config.tokenizer)["train"][0][
        "input_ids"]) == ["[CLS]", "kess", "##ler", "met", "vol", "##kov", "[SEP]"]
    first = tokenize_dataset(prepared, tokenizer, config.tokenizer)["train"][0]["labels"]
    assert names == ["O", "B-PER", "I-PER"], "every type gets each prefix of the scheme"
    per, inside = names.index("B-PER"), names.index("I-PER")
    assert first == [-100, per, -100, 0, per, -100, -100]
    every = tokenize_dataset(prepared, tokenizer, config.tokenizer.model_copy(update={"label_all_tokens": True}))
    assert every["train"][0]["labels"] == [-100, per, inside, 0, per, inside, -100]
    assert every["validation"][0]["labels"] == first


def test_a_slow_only_tokenizer_is_refused_with_the_reason() -> None:
    class Slow:
        is_fast = False
        name_or_path = "some/slow-model"

    from core.tasks.token_classification import check_fast

    with pytest.raises(UserError, match=r"has no fast version.*word_ids"):
        check_fast(Slow())


def test_entities_past_max_length_are_counted_in_the_evaluation() -> None:
    task = get_task(TASK)
    names = ["O", "B-PER", "I-PER"]
    labels = task.references([[1, 2, 0, 1], [0, 1]])
    scores = np.full((2, 4, 3), np.nan)
    scores[0, :2] = [[0, 1, 0], [0, 0, 1]]  # the model saw two words of the first sentence
    scores[1, :2] = [[1, 0, 0], [0, 1, 0]]
    ev = task.evaluate(names, ["f1", "recall"], labels, scores)
    assert ev.details["entities_hidden_by_truncation"] == 1
    assert ev.metrics["recall"] == pytest.approx(2 / 3)
    assert ev.details["entity_grid"]["labels"] == ["PER", "(none)"]
    assert ev.details["entity_grid"]["counts"] == [[2, 1], [0, 0]]


# --- training and the model's answers --------------------------------------------------------------------------------

@pytest.mark.parametrize("engine", ENGINES)
def test_each_engine_learns_the_entities_and_the_model_answers_with_their_names(
        engine: str, ner_model: Path, tmp_path: Path) -> None:
    run = _run_in_process(_raw(ner_model, _data(tmp_path / "data"), tmp_path / "run", engine))
    finished = run.events()[-1]
    assert finished["type"] == "finished"
    assert finished["metrics"]["f1"] > 0.8 and finished["metrics"]["test"]["f1"] > 0.8, finished["metrics"]
    assert set(finished["metrics"]) >= {"f1", "precision", "recall", "accuracy", "loss"}
    report = json.loads((run.path / "evaluation" / "test" / "metrics.json").read_text())
    assert set(report["per_class"]) == {"PER", "LOC", "ORG"} and report["metrics"]["f1"] == pytest.approx(
        finished["metrics"]["test"]["f1"], abs=1e-6), "the report is the run's own final evaluation"
    first = json.loads((run.path / "evaluation" / "test" / "predictions.jsonl").open().readline())
    assert isinstance(first["text"], list) and len(first["label"]) == len(first["text"])

    if engine != "keras":  # a transformers model directory (the keras engine's answers come through predict)
        _pipeline_finds_the_entities(run)

    text = "Emma Stone visited Oslo"
    out = subprocess.run([sys.executable, "-m", "tui.cli", "predict", "--format", "jsonl", str(run.path), text],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert [(e["entity_group"], text[e["start"]:e["end"]]) for e in answer["entities"]] == [
        ("PER", "Emma Stone"), ("LOC", "Oslo")]


def _pipeline_finds_the_entities(run: RunDir) -> None:
    from transformers import pipeline

    task = get_task(TASK)
    sentences_ = ["today emma stone visited new york .", "bruno kessler joined globex corp ."]
    simple = pipeline("token-classification", model=str(run.model_dir), aggregation_strategy="simple")(sentences_)
    assert {e["entity_group"] for found in simple for e in found} == {"PER", "LOC", "ORG"}, "names, not LABEL_3"
    # Only a word's first sub-token was trained (label_all_tokens: false): "first" reads words as training did.
    words = pipeline("token-classification", model=str(run.model_dir), **task.pipeline_kwargs)(sentences_)
    assert [[(e["entity_group"], e["word"]) for e in found] for found in words] == [
        [("PER", "emma stone"), ("LOC", "new york")], [("PER", "bruno kessler"), ("ORG", "globex corp")]]


def test_predicting_a_text_file_writes_a_json_line_per_input(ner_model: Path, tmp_path: Path) -> None:
    from core.predict_file import predict_file

    run = _run_in_process(_raw(ner_model, _data(tmp_path / "data"), tmp_path / "run", "torch-loop"))
    texts = tmp_path / "texts.txt"
    texts.write_text("anna called acme .\n\nfarid left lima\n", encoding="utf-8")
    result = predict_file(run.path, texts)
    rows = [json.loads(line) for line in result.output.read_text().splitlines()]
    assert [r["text"] for r in rows] == ["anna called acme .", "farid left lima"]
    assert [[e["entity_group"] for e in r["entities"]] for r in rows] == [["PER", "ORG"], ["PER", "LOC"]]
    assert result.summary == "4 entities: PER=2, ORG=1, LOC=1"


@pytest.mark.parametrize("engine", ENGINES)
def test_a_stopped_run_resumes_to_the_metrics_of_an_unbroken_one(engine: str, ner_model: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    data = _data(tmp_path / "data")
    settings = {"num_train_epochs": 2, "save_strategy": "steps", "save_steps": 4, "logging_steps": 1}

    def raw(name: str) -> dict[str, Any]:
        out = _raw(ner_model, data, tmp_path / name, engine, **settings)
        out["tokenizer"]["label_all_tokens"] = True
        return out

    straight = _run_in_process(raw("straight"))
    run = create_run(resolve_config(parse_config(raw("parts"))))
    with monkeypatch.context() as m:
        _stop_at(m, run, 4 - (engine == "trainer"))
        assert worker_main([str(run.path)]) == 0, run.log_tail(40)
    assert run.status() == "stopped"
    checkpoint = resume_checkpoint(run)
    assert worker_main([str(run.path), "--resume", str(checkpoint)]) == 0, run.log_tail(40)
    after = [e for e in run.events() if e["type"] == "step" and e["step"] > int(checkpoint.name.split("-")[1])]
    expected = {e["step"]: e["loss"] for e in straight.events() if e["type"] == "step"}
    assert after and [e["loss"] for e in after] == pytest.approx([expected[e["step"]] for e in after], abs=1e-6)
    got, want = dict(run.events()[-1]["metrics"]), dict(straight.events()[-1]["metrics"])
    assert got.pop("test") == pytest.approx(want.pop("test"), abs=1e-6)
    assert got == pytest.approx(want, abs=1e-6)


def _config_of(run: RunDir) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(run.config_path.read_text())


def test_the_run_records_the_columns_it_found_under_the_tasks_own_keys(ner_model: Path, tmp_path: Path) -> None:
    run = _run_in_process(_raw(ner_model, _data(tmp_path / "data"), tmp_path / "run", "torch-loop",
                               num_train_epochs=1))
    data = _config_of(run)["data"]
    assert data["tokens_column"] == "tokens" and data["tags_column"] == "tags" and data["label_column"] is None


def test_the_tokenizer_step_counts_the_sentences_and_entities_max_length_cuts(tmp_path: Path,
                                                                             ner_model: Path) -> None:
    """[CLS] kess ##ler met vol ##kov [SEP]: at max_length 5 the third word's first sub-token is cut, and with it
    one of the sentence's two entities."""
    from core.tokenization import load_tokenizer

    path = tmp_path / "train.conll"
    path.write_text("".join("kessler B-PER\nmet O\nvolkov B-PER\n\n" for _ in range(4)), encoding="utf-8")
    config = parse_config(_raw(ner_model, {"train": path, "validation": path, "test": path}, tmp_path / "r"))
    prepared = prepare_data(config.data, TASK)
    task = get_task(TASK)
    facts = task.length_facts(prepared, load_tokenizer(config.model))
    assert facts["sentences"][0] == ([1, 3, 4], [0, 2], 1)
    assert task.describe_lengths(facts, 7, True) == ["Every sentence fits in 7 tokens: no entity is cut."]
    assert task.describe_lengths(facts, 5, True) == [
        "⚠ max_length 5 cuts 4 of 4 sentences and hides 4 of 8 entities from the model; evaluation counts them as "
        "missed."]


@pytest.mark.slow
def test_the_entities_demo_finds_unseen_names_with_the_bundled_model(tmp_path: Path) -> None:
    """README's token-classification figures: examples/demo-ner.yaml with the bundled MiniLM, run the README's way;
    the test split's people, places and organisations never occur in training, so its F1 comes from context."""
    from tests.conftest import run_example

    run = run_example("demo-ner.yaml", tmp_path / "run", epochs=3)
    finished = run.events()[-1]
    assert finished["metrics"]["f1"] > 0.9, finished["metrics"]
    test = finished["metrics"]["test"]
    assert test["f1"] > 0.6 and test["recall"] > 0.6, test
    report = json.loads((run.path / "evaluation" / "test" / "metrics.json").read_text())
    assert all(scores["f1"] > 0.4 for scores in report["per_class"].values()), report["per_class"]
    from transformers import pipeline

    found = pipeline("token-classification", model=str(run.model_dir), **get_task(TASK).pipeline_kwargs)(
        "Police in Lisbon arrested a man on Tuesday , a spokesman for Acme Bank said .")
    assert ("LOC", "lisbon") in [(e["entity_group"], e["word"]) for e in found], found


def test_class_weights_weigh_rare_tags_per_labelled_word(ner_model: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """auto: inverse frequency over the training words' tags; the loss is torch's weighted mean over labelled
    sub-tokens (padding and later sub-tokens, -100, do not count), and a run trains with it."""
    import torch

    task = get_task(TASK)
    data = _data(tmp_path / "data")
    raw = _raw(ner_model, data, tmp_path / "run", "torch-loop", num_train_epochs=2, class_weights="auto")
    config = parse_config(raw)
    prepared = prepare_data(config.data, TASK)
    counts = task.class_counts(prepared)
    assert sum(counts) == prepared.label_stats["words"] and counts[0] == max(counts), "O is the commonest tag"
    weights = task.training_weights(config, prepared)
    assert weights is not None and weights[0] == min(weights)
    logits = torch.randn(2, 4, len(weights))
    labels = torch.tensor([[-100, 1, 0, -100], [5, -100, -100, -100]])
    w = torch.tensor(weights)
    picked = [(0, 1, 1), (0, 2, 0), (1, 0, 5)]
    nll = [-torch.log_softmax(logits[i, j], -1)[y] * w[y] for i, j, y in picked]
    expected = sum(nll) / sum(w[y] for _, _, y in picked)
    assert torch.allclose(task.torch_loss(logits, labels, w), expected)

    run = _run_in_process(raw)
    assert run.events()[-1]["type"] == "finished"
    assert "class weights: O " in capsys.readouterr().out


@pytest.mark.parametrize("engine", ["trainer", "torch-loop"])
def test_lora_merges_into_a_plain_token_classification_model(engine: str, ner_model: Path, tmp_path: Path) -> None:
    """peft's TOKEN_CLS adapters, merged: only the targeted weights changed, the tag head trained, and the saved
    directory is a plain transformers model with the tag names."""
    from safetensors.torch import load_file
    from transformers import AutoModelForTokenClassification

    lora = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["query", "value"]}
    run = _run_in_process(_raw(ner_model, _data(tmp_path / "data"), tmp_path / "run", engine, lora=lora,
                               max_steps=6, eval_strategy="no", save_strategy="no"))
    model = AutoModelForTokenClassification.from_pretrained(run.model_dir)
    assert not [n for n, _ in model.named_parameters() if "lora" in n or "modules_to_save" in n]
    assert model.config.id2label[0] == "O" and "B-PER" in model.config.label2id
    before = {k.removeprefix("bert."): v for k, v in load_file(ner_model / "model.safetensors").items()}
    after = {k.removeprefix("bert."): v for k, v in load_file(run.model_dir / "model.safetensors").items()}
    changed = {k for k in before if k in after and not bool((before[k] == after[k]).all())}
    assert changed == {f"encoder.layer.{i}.attention.self.{m}.weight" for i in range(2) for m in ("query", "value")}
    assert {"classifier.weight", "classifier.bias"} <= set(after)


def test_the_batch_probe_trains_on_a_tag_per_token(ner_model: Path, tmp_path: Path) -> None:
    from core.probe import probe

    config = parse_config(_raw(ner_model, _data(tmp_path / "data"), tmp_path / "run", "trainer",
                               per_device_train_batch_size=2, gradient_accumulation_steps=2))
    result = probe(config)
    assert [(r.batch_size, r.fits) for r in result.rows] == [(1, True), (2, True), (4, True)]


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["trainer", "torch-loop"])
def test_two_torchrun_processes_match_one_with_the_combined_batch(engine: str, ner_model: Path,
                                                                  tmp_path: Path) -> None:
    """gloo on the CPU: each process pads its own batches to their own lengths, so its per-token outputs are padded
    again across processes before they are gathered; the odd-sized validation split's padding rows are dropped."""
    from tests.conftest import without_dropout
    from tests.test_multiprocess import _run

    model = without_dropout(ner_model, tmp_path / "model")
    data = _data(tmp_path / "data")
    common = {"group_by_length": False, "save_strategy": "no", "eval_strategy": "no", "max_steps": 6}
    one = _run_in_process(_raw(model, data, tmp_path / "one", engine, per_device_train_batch_size=8, **common))
    two = _run(tmp_path, "two", _raw(model, data, tmp_path / "two", engine, per_device_train_batch_size=4,
                                     num_processes=2, **common))
    losses_one = [e["loss"] for e in one.events() if e["type"] == "step"]
    losses_two = [e["loss"] for e in two.events() if e["type"] == "step"]
    assert losses_two == pytest.approx(losses_one, abs=0.01)
    final_one, final_two = one.events()[-1]["metrics"], two.events()[-1]["metrics"]
    for metric in ("f1", "precision", "recall", "accuracy"):
        assert final_two[metric] == pytest.approx(final_one[metric], abs=0.02), metric
        assert final_two["test"][metric] == pytest.approx(final_one["test"][metric], abs=0.02), metric
    rows = (two.path / "evaluation" / "validation" / "predictions.jsonl").read_text().splitlines()
    assert len(rows) == 15, "one answer per validation sentence, the padding rows dropped"


def test_hub_style_class_label_tags_keep_their_names() -> None:
    """A Hub dataset's Sequence(ClassLabel) tags (conll2003, wnut_17) are ids whose names come with the data."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

    from core.data.arrow import SplitSource

    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    features = Features({"tokens": Sequence(Value("string")), "ner_tags": Sequence(ClassLabel(names=names))})
    raw = DatasetDict({"train": Dataset.from_dict(
        {"tokens": [["anna", "met", "bruno", "kessler"], ["oslo"]], "ner_tags": [[1, 0, 1, 2], [3]]},
        features=features)})
    sources = {"train": SplitSource("hub conll-like/train")}
    task = get_task(TASK)
    cfg = parse_config({"task": TASK, "data": {"train_file": "x"}}).data
    text, pair, label = task.columns(cfg, raw, sources)
    assert (text, pair, label) == ("tokens", None, "ner_tags")
    encoding = task.encode_labels(raw, sources, label, cfg)
    assert encoding.names == names
    assert encoding.arrays["train"].to_pylist() == [[1, 0, 1, 2], [3]]


@pytest.mark.parametrize(("engine", "settings"), [
    ("trainer", {"group_by_length": False}),
    ("torch-loop", {"class_weights": "auto", "max_steps": 14, "gradient_accumulation_steps": 2}),
    pytest.param("keras", {"class_weights": "auto"}, marks=[NEEDS_KERAS, pytest.mark.slow]),
])
def test_the_exported_script_reproduces_the_run(engine: str, settings: dict[str, Any], ner_model: Path,
                                                tmp_path: Path) -> None:
    """The standalone script reads the CoNLL files itself (IOB1, four columns, CRLF), converts the tags, aligns them
    to sub-tokens (label_all_tokens) and scores entities with the inlined tags.py: the run's metrics, without
    finetune-tui, on each engine (keras: the same TokenTagger head and masked loss)."""
    from tests.test_export import _run_and_script_agree

    data = _data(tmp_path / "data", iob1=True, columns=4, crlf=True)
    raw = _raw(ner_model, {**data, "validation": None}, tmp_path / "run", engine, num_train_epochs=3, **settings)
    raw["data"]["validation_fraction"] = 0.2
    raw["tokenizer"]["label_all_tokens"] = True
    run, _, printed = _run_and_script_agree(raw, tmp_path, {"loss", "f1", "precision", "recall", "accuracy"})
    if "class_weights" in settings:
        assert "class weights: {'O': " in printed
    ours = json.loads((tmp_path / "script-out" / "model" / "task.json").read_text())
    assert ours == json.loads((run.model_dir / "task.json").read_text())


@NEEDS_KERAS
@pytest.mark.slow
def test_two_keras_replicas_tag_tokens(ner_model: Path, tmp_path: Path) -> None:
    """MirroredStrategy over two logical CPUs: each replica's part of a batch, the ragged per-token outputs of the
    evaluation joined again, every validation sentence answered."""
    from tests.test_multiprocess import _run

    run = _run(tmp_path, "two", _raw(ner_model, _data(tmp_path / "data"), tmp_path / "two", "keras",
                                     per_device_train_batch_size=4, num_processes=2, max_steps=12,
                                     eval_strategy="no", save_strategy="no"))
    assert "MirroredStrategy over /cpu:0, /cpu:1" in run.stdout_path.read_text()
    finished = run.events()[-1]
    assert finished["type"] == "finished" and set(finished["metrics"]) >= {"f1", "loss", "test"}
    rows = (run.path / "evaluation" / "validation" / "predictions.jsonl").read_text().splitlines()
    assert len(rows) == 15
