"""text-generation end to end: tiny Llama/Qwen2/GPT-2 models built on the fly learn a handful of answers on the
trainer and torch-loop engines (instruction data as an Alpaca-style JSON array, chat data as JSONL, packing, LoRA
by default), write `sample` events as they learn, save a merged model that pipeline("text-generation") loads and an
adapter whose outputs equal it, and answer through `finetune-tui predict`; bad input exits 2 with the row or key."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.config import parse_config
from core.errors import ConfigError
from core.rundir import RunDir
from tests.llm_fixtures import build_causal_lm, build_llm_tokenizer
from tests.test_trainer_run import _cli, _run_in_process

TASK = "text-generation"
QA = [("what colour is the sun", "yellow"), ("what is two plus two", "four"), ("name a farm animal", "a cow"),
      ("what is the capital of france", "paris"), ("what colour is grass", "green"), ("say hello", "hello there")]
ALPACA = "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tiny-llama")
    build_causal_lm(build_llm_tokenizer(), "llama", directory)
    return directory


def _alpaca(path: Path, n: int = 48) -> Path:
    """Alpaca's layout: one JSON array of {instruction, input, output}, input often empty."""
    rows = [{"instruction": q, "input": "" if i % 2 else "please", "output": a}
            for i, (q, a) in enumerate(QA[i % len(QA)] for i in range(n))]
    path.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return path


def _chats(path: Path, n: int = 48) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            q, a = QA[i % len(QA)]
            system = [{"role": "system", "content": "you answer briefly"}] if i % 3 == 0 else []
            f.write(json.dumps({"messages": [*system, {"role": "user", "content": q},
                                             {"role": "assistant", "content": a}]}) + "\n")
    return path


def _raw(model: Path, data: dict[str, Any], out: Path, engine: str = "trainer", **training: Any) -> dict[str, Any]:
    return {"task": TASK, "engine": engine, "model": {"name_or_path": str(model)}, "data": data,
            "tokenizer": {"max_length": 64},
            "training": {"num_train_epochs": 12, "learning_rate": 5e-3, "per_device_train_batch_size": 8,
                         "logging_steps": 2, "save_total_limit": 1, **training},
            "output_dir": str(out)}


def _losses(run: RunDir) -> list[float]:
    return [e["loss"] for e in run.events() if e["type"] == "step"]


def _validation(run: RunDir) -> list[dict[str, Any]]:
    return [e for e in run.events() if e["type"] == "eval" and e["split"] == "validation"]


# --- config -----------------------------------------------------------------------------------------------------------

def test_lora_on_every_linear_layer_is_the_default_and_null_means_full_fine_tuning() -> None:
    data = {"train_file": "a.json", "prompt_template": "{instruction}", "response_column": "output"}
    config = parse_config({"task": TASK, "data": data})
    assert config.training.lora is not None and config.training.lora.target_modules == ["all-linear"]
    assert config.metrics == ["perplexity"] and config.tokenizer.max_length == 1024
    assert parse_config({"task": TASK, "data": data, "training": {"lora": None}}).training.lora is None
    # Another task keeps its own defaults and refuses this task's settings.
    assert parse_config({"data": {"train_file": "a.csv"}}).training.lora is None
    with pytest.raises(ConfigError, match=r"data\.prompt_template .* of text-generation"):
        parse_config({"data": {"train_file": "a.csv", "prompt_template": "{x}"}})
    # keras trains KerasHub's causal LMs (tests/test_task_generation_keras.py) without what they have no part for.
    assert parse_config({"task": TASK, "engine": "keras", "data": data}).training.lora is not None
    with pytest.raises(ConfigError, match=r"training\.packing is not available on the keras engine"):
        parse_config({"task": TASK, "engine": "keras", "data": data, "training": {"packing": True}})
    with pytest.raises(ConfigError, match=r"quantization 4bit .* set training\.lora"):
        parse_config({"task": TASK, "data": data, "training": {"lora": None, "quantization": "4bit"}})


# --- training ---------------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_trainer_learns_alpaca_answers_and_the_model_answers_through_predict_and_pipeline(
        llama: Path, tmp_path: Path) -> None:
    data = {"train_file": str(_alpaca(tmp_path / "alpaca.json")), "prompt_template": ALPACA,
            "response_column": "output"}
    run = _run_in_process(_raw(llama, data, tmp_path / "run", lora=None))
    losses = _losses(run)
    assert losses[-1] < losses[0] / 3, losses
    import torch

    checkpoint = next((run.path / "checkpoints").glob("checkpoint-*"))
    args = torch.load(checkpoint / "training_args.bin", weights_only=False)
    assert type(args).__name__ == "SFTConfig" and args.dataset_kwargs == {"skip_prepare_dataset": True}  # TRL's
    evals = _validation(run)
    assert [set(e["metrics"]) for e in evals][-1] == {"loss", "perplexity"}
    assert evals[-1]["metrics"]["perplexity"] == pytest.approx(2.718281828 ** evals[-1]["metrics"]["loss"], rel=1e-6)
    assert evals[-1]["metrics"]["loss"] < evals[0]["metrics"]["loss"]
    # At every evaluation the model answers the same validation prompts, and by the end it answers them right.
    samples = [e for e in run.events() if e["type"] == "sample"]
    assert [s["step"] for s in samples] == [e["step"] for e in evals]
    assert {s["prompt"] for s in samples[0]["samples"]} == {s["prompt"] for s in samples[-1]["samples"]}
    assert all(s["generated"] == s["reference"] for s in samples[-1]["samples"]), samples[-1]

    # The evaluation report: the engine's loss and perplexity, and the answers to the validation prompts.
    report = json.loads((run.path / "evaluation/validation/metrics.json").read_text())
    assert report["metrics"] == pytest.approx(evals[-1]["metrics"])
    answers = [json.loads(line) for line in (run.path / "evaluation/validation/predictions.jsonl").open()]
    assert answers and {"prompt", "reference", "generated"} <= set(answers[0])
    meta = json.loads((run.model_dir / "task.json").read_text())
    assert meta["format"] == "instruction" and meta["prompt_template"] == ALPACA
    assert "pipeline_tag: text-generation" in (run.model_dir / "README.md").read_text()

    # predict puts a typed prompt into the template, as training wrote prompts: a memorised answer comes back.
    result = _cli("predict", str(run.path), "what is two plus two", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["generated_text"] == "four"
    # A file of prompts gives JSONL answers.
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"text": q}) + "\n" for q, _ in QA[:3]))
    result = _cli("predict", str(run.path), "--input", str(prompts), "--output", str(tmp_path / "answers.jsonl"))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in (tmp_path / "answers.jsonl").open()]
    assert [r["text"] for r in rows] == [q for q, _ in QA[:3]] and all("generated_text" in r for r in rows)

    # The model directory is a plain transformers one: pipeline("text-generation") stops where the answer ends.
    from transformers import pipeline

    generator = pipeline("text-generation", model=str(run.model_dir))
    prompt = ALPACA.format(instruction="what colour is grass", input="please")  # as every such row was written
    out = generator(prompt, max_new_tokens=20, do_sample=False, return_full_text=False)
    assert out[0]["generated_text"].strip() == "green"


@pytest.mark.slow
def test_torch_loop_trains_lora_on_packed_chats_and_the_adapter_equals_the_merged_model(
        llama: Path, tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    data = {"train_file": str(_chats(tmp_path / "chats.jsonl")), "messages_column": "messages"}
    run = _run_in_process(_raw(llama, data, tmp_path / "run", engine="torch-loop", packing=True,
                               learning_rate=2e-2, gradient_checkpointing=True))
    losses = _losses(run)
    assert losses[-1] < losses[0], losses
    started = next(e for e in run.events() if e["type"] == "run_started")
    steps = [e for e in run.events() if e["type"] == "step"]
    assert steps[-1]["step"] == started["total_steps"]  # counted over the packed rows, not the examples
    assert any(e["type"] == "sample" for e in run.events())
    adapter = run.path / "adapter"
    assert (adapter / "adapter_config.json").is_file()
    assert json.loads((adapter / "adapter_config.json").read_text())["task_type"] == "CAUSAL_LM"

    ids = torch.tensor([[5, 17, 42, 9, 3, 77]])
    merged = AutoModelForCausalLM.from_pretrained(run.model_dir).eval()
    base = AutoModelForCausalLM.from_pretrained(llama).eval()
    with torch.no_grad():
        before = base(ids).logits  # PeftModel wraps the base model in place
        with_adapter = PeftModel.from_pretrained(base, adapter).eval()
        assert torch.allclose(merged(ids).logits, with_adapter(ids).logits, atol=1e-5)
        # The adapter changed the model (LoRA's B starts at zero: an untrained adapter would equal the base).
        assert (merged(ids).logits - before).abs().max() > 1e-2


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["trainer", "torch-loop"])
def test_packed_chats_train_and_resume_to_the_same_losses(llama: Path, tmp_path: Path, engine: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Packed rows on either engine (trainer: TRL's SFTTrainer; both: the same collator); a run stopped at a
    checkpoint and resumed logs the losses of one that was never stopped."""
    from core.launch import create_run, resolve_config, resume_checkpoint
    from core.worker import main as worker_main
    from tests.test_stop_resume import _stop_at

    data = {"train_file": str(_chats(tmp_path / "chats.jsonl")), "messages_column": "messages"}
    raw = _raw(llama, data, tmp_path / "whole", engine=engine, packing=True, lora=None, num_train_epochs=4,
               per_device_train_batch_size=2, save_total_limit=None, logging_steps=1)
    whole = _run_in_process(raw)
    losses = _losses(whole)
    assert losses[-1] < losses[0], losses
    started = next(e for e in whole.events() if e["type"] == "run_started")
    assert [e for e in whole.events() if e["type"] == "step"][-1]["step"] == started["total_steps"]

    parted = create_run(resolve_config(parse_config({**raw, "output_dir": str(tmp_path / "parted")})))
    with monkeypatch.context() as m:
        _stop_at(m, parted, 4)
        assert worker_main([str(parted.path)]) == 0
    assert [e["type"] for e in parted.events()][-1] == "stopped"
    assert worker_main([str(parted.path), "--resume", str(resume_checkpoint(parted))]) == 0
    assert _losses(parted)[-len(losses):] == pytest.approx(losses, rel=1e-4)


# --- bad input --------------------------------------------------------------------------------------------------------

def _validate(tmp_path: Path, raw: dict[str, Any]) -> Any:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return _cli("validate", str(path))


def test_bad_input_is_refused_before_training_with_the_row_or_key(llama: Path, tmp_path: Path) -> None:
    alpaca = str(_alpaca(tmp_path / "alpaca.json"))
    missing = _validate(tmp_path, _raw(llama, {"train_file": alpaca, "prompt_template": "{instruction} {context}",
                                               "response_column": "output"}, tmp_path / "r"))
    assert missing.returncode == 2 and "'context'" in missing.stderr and "Traceback" not in missing.stderr

    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant",
                                                                                   "content": "hello"}]}) + "\n"
                      + json.dumps({"messages": [{"from": "human", "value": "hi"}]}) + "\n")
    shape = _validate(tmp_path, _raw(llama, {"train_file": str(broken), "messages_column": "messages"}, tmp_path / "r"))
    assert shape.returncode == 2 and "row 2" in shape.stderr and "ShareGPT" in shape.stderr

    # One row's turns unlike the others' (a number for content): Arrow cannot store the column; the row is named.
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("".join(json.dumps({"messages": turns}) + "\n" for turns in (
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
        [{"role": "user", "content": 5}, {"role": "assistant", "content": "five"}])))
    result = _validate(tmp_path, _raw(llama, {"train_file": str(mixed), "messages_column": "messages"}, tmp_path / "r"))
    assert result.returncode == 2 and "row 3 (line 3)" in result.stderr and "content: number" in result.stderr
    assert "Traceback" not in result.stderr

    rows = json.loads(Path(alpaca).read_text())
    rows[3]["output"] = "  "
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps(rows))
    result = _validate(tmp_path, _raw(llama, {"train_file": str(empty), "prompt_template": ALPACA,
                                              "response_column": "output"}, tmp_path / "r"))
    assert result.returncode == 2 and "empty response" in result.stderr

    encoder = _validate(tmp_path, _raw("bundled:all-MiniLM-L6-v2", {"train_file": alpaca, "prompt_template": ALPACA,
                                                                   "response_column": "output"}, tmp_path / "r"))
    assert encoder.returncode == 2 and "not a decoder language model" in encoder.stderr

    quantized = _validate(tmp_path, _raw(llama, {"train_file": alpaca, "prompt_template": ALPACA,
                                                 "response_column": "output"}, tmp_path / "r", quantization="4bit"))
    assert quantized.returncode == 2 and "no CUDA GPU" in quantized.stderr

    # A base model's tokenizer has no chat template: validate loads it and says how to write the chats.
    base = tmp_path / "base-llama"
    build_causal_lm(build_llm_tokenizer(chat_template=None), "llama", base)
    chats_raw = _raw(base, {"train_file": str(_chats(tmp_path / "chats.jsonl")), "messages_column": "messages"},
                     tmp_path / "r")
    untemplated = _validate(tmp_path, chats_raw)
    assert untemplated.returncode == 2 and "has no chat template" in untemplated.stderr
    assert "data.chat_template: chatml" in untemplated.stderr and "Traceback" not in untemplated.stderr
    chats_raw["data"]["chat_template"] = "chatml"
    assert _validate(tmp_path, chats_raw).returncode == 0

    # The reverse: chat data given to a classifier (the default task) is pointed to text-generation.
    chats = _validate(tmp_path, {"model": {"name_or_path": str(llama)}, "data": {"train_file": str(broken)}})
    assert chats.returncode == 2 and "holds conversations" in chats.stderr and "set task: text-generation" in \
        chats.stderr


# --- trying the model -------------------------------------------------------------------------------------------------

async def test_the_try_screen_streams_the_answer_and_ctrl_s_stops_it(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A chat model's answer is written into the Try screen piece by piece as it is generated, equals the greedy
    answer predict gives, and ctrl+s ends a long one early."""
    from textual.app import App
    from textual.widgets import Input, Static

    from core.predict import load_predictor
    from core.tasks.model_meta import write_meta
    from tui.screens.try_model import TryModelScreen

    model_dir = tmp_path / "model"
    build_causal_lm(build_llm_tokenizer(), "llama", model_dir, seed=3)  # untrained: long, rambling answers
    write_meta(model_dir, {"task": TASK, "labels": [], "format": "chat", "max_new_tokens": 200})
    expected = load_predictor(model_dir).predict(["what colour is the sun"])[0]["generated_text"]

    class Host(App[None]):
        def on_mount(self) -> None:
            self.push_screen(TryModelScreen(model_dir))

    async def until(pilot: Any, condition: Any, timeout: float = 60) -> None:
        import time

        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, "timed out"
            await pilot.pause(0.02)

    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, TryModelScreen)
        await until(pilot, lambda: screen.predictor is not None)
        seen: list[str] = []
        show = screen._show_stream
        screen._show_stream = lambda text, answer, done, note="": (seen.append(answer), show(text, answer, done, note))
        screen.query_one("#try-text", Input).value = "what colour is the sun"
        await pilot.press("enter")
        await until(pilot, lambda: "done" in str(screen.query_one("#try-bars", Static).border_subtitle or ""))
        assert screen.answer["generated_text"].strip() == expected
        partial = [a for a in seen[:-1] if a]
        assert len(partial) > 3 and all(len(a) <= len(b) for a, b in itertools.pairwise(partial))

        # A tiny model writes 200 tokens in a fraction of a second: slowed down, a person's ctrl+s lands mid-answer.
        from core.tasks import get_task

        task = type(get_task(TASK))
        fast = task.stream_answer

        def slow(self: Any, predictor: Any, text: str, stop: Any) -> Any:
            import time

            for piece in fast(self, predictor, text, stop):
                time.sleep(0.05)
                yield piece

        monkeypatch.setattr(task, "stream_answer", slow)
        seen.clear()
        await pilot.press("enter")
        await until(pilot, lambda: len(seen) >= 2)
        await pilot.press("ctrl+s")
        panel = screen.query_one("#try-bars", Static)
        await until(pilot, lambda: str(panel.border_subtitle or "").startswith("stopped"))
        assert len(screen.answer["generated_text"]) < len(expected)


# --- the wizard -------------------------------------------------------------------------------------------------------

async def test_the_wizard_walks_text_generation_from_model_to_memory_estimate(
        llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Choosing text-generation: the model step offers well-known instruction models and refuses an encoder, the
    dataset step takes the prompt template and response column, the tokenizer step says what max_length cuts and
    how well examples pack, and the training step estimates the memory for the settings as they change."""
    from textual.widgets import Select, Static

    from tests.test_wizard import choose_task, current, next_step, problems, row, settle, type_into, wait_until
    from tui.app import make_app

    monkeypatch.chdir(tmp_path)
    _alpaca(tmp_path / "alpaca.json")
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await choose_task(pilot, TASK)
        assert screen.draft.get("training.lora.target_modules") == ["all-linear"]
        await next_step(pilot)
        assert current(pilot) == "model"
        offered = screen.query_one("#suggested-model", Select)
        assert offered.display and "Qwen/Qwen2.5-0.5B-Instruct (0.5B)" in str(offered._options)
        step = screen.current
        await wait_until(pilot, lambda: step.key() in step.findings.model_results, timeout=60)
        await next_step(pilot)  # the bundled MiniLM is an encoder
        assert current(pilot) == "model" and "not a decoder language model" in problems(pilot)
        await type_into(pilot, "model.name_or_path", str(llama))
        await next_step(pilot)
        assert current(pilot) == "dataset", problems(pilot)
        await type_into(pilot, "data.train_file", "alpaca.json")
        await pilot.press("enter")
        await settle(pilot)
        assert not row(pilot, "data.prompt_template").has_class("-inactive")
        await type_into(pilot, "data.prompt_template", ALPACA.replace("\n", "\\n"))  # typed as the README writes it
        assert screen.draft.get("data.prompt_template") == ALPACA
        await type_into(pilot, "data.response_column", "output")
        await next_step(pilot)
        assert current(pilot) == "tokenizer", problems(pilot)
        # The task fixes padding (per batch, or packed) and truncation (always, counted): those fields are hidden.
        assert row(pilot, "tokenizer.padding").has_class("-inactive")
        assert row(pilot, "tokenizer.truncation").has_class("-inactive")
        await type_into(pilot, "tokenizer.max_length", "64")
        summary = screen.query_one("#length-summary", Static)
        await wait_until(pilot, lambda: "carry loss" in str(summary.render()), timeout=60)
        assert "have their answer cut" in str(summary.render())
        await next_step(pilot)
        assert current(pilot) == "training", problems(pilot)
        memory = screen.query_one("#memory-estimate", Static)
        await wait_until(pilot, lambda: "memory estimate" in str(memory.render()), timeout=60)
        before = str(memory.render())
        await type_into(pilot, "training.per_device_train_batch_size", "32")
        await wait_until(pilot, lambda: str(memory.render()) != before, timeout=60)
        assert "parameters train" in str(memory.render())
        config = screen.draft.build()
        assert config.task == TASK and config.data.response_column == "output" and config.training.lora is not None


def test_the_batch_probe_runs_a_causal_lm_with_lora(llama: Path, tmp_path: Path) -> None:
    """The batch-size probe that confirms the memory estimate on the device: a decoder LM with the task's default
    LoRA trains a step at each batch size, with labels shaped like its inputs."""
    from core.probe import probe

    data = {"train_file": str(_alpaca(tmp_path / "alpaca.json")), "prompt_template": ALPACA,
            "response_column": "output"}
    config = parse_config(_raw(llama, data, tmp_path / "r", per_device_train_batch_size=2,
                               gradient_accumulation_steps=2))
    rows: list[int] = []
    result = probe(config, on_row=lambda row: rows.append(row.batch_size))
    assert rows == [1, 2, 4] and all(r.fits and r.peak_memory_mb for r in result.rows)
    assert result.per_device_train_batch_size * result.gradient_accumulation_steps == 4


# --- exported scripts -------------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize(("engine", "shape", "training"), [
    ("trainer", "alpaca", {"packing": True, "gradient_checkpointing": True}),  # LoRA by default
    ("torch-loop", "chat", {"packing": True, "lora": None, "eval_strategy": "steps", "eval_steps": 3}),
])
def test_the_exported_script_reproduces_the_run(engine: str, shape: str, training: dict[str, Any], llama: Path,
                                                tmp_path: Path) -> None:
    """The standalone script reads the Alpaca JSON array (or the chat JSONL, written with data.chat_template
    chatml), tokenizes, masks and packs with the task's own code inlined, trains with TRL's SFTTrainer (or the
    plain loop) and reaches the run's loss and perplexity on validation and test; its saved model generates as the
    run's does (the same weights, task.json, generation config and chat template), and LoRA's adapter is saved too."""
    from safetensors.torch import load_file

    from tests.test_export import _render, _run_and_script_agree

    if shape == "alpaca":
        data = {"train_file": str(_alpaca(tmp_path / "alpaca.json")), "test_file": str(_alpaca(tmp_path / "t.json", 8)),
                "prompt_template": ALPACA, "response_column": "output"}
    else:
        data = {"train_file": str(_chats(tmp_path / "chat.jsonl")), "test_file": str(_chats(tmp_path / "t.jsonl", 8)),
                "messages_column": "messages", "chat_template": "chatml"}
    raw = _raw(llama, data, tmp_path / "run", engine, **{**training, "num_train_epochs": 2})
    text = _render(raw)
    assert "core/tasks/text_generation/shared.py, inlined" in text and "def training_rows(" in text
    assert ("from trl import SFTConfig, SFTTrainer" in text) == (engine == "trainer")
    run, _, _ = _run_and_script_agree(raw, tmp_path, {"loss", "perplexity"})
    ours = tmp_path / "script-out"
    for name in ("task.json", "generation_config.json", "chat_template.jinja"):
        assert (ours / "model" / name).read_text() == (run.model_dir / name).read_text(), name
    theirs, mine = load_file(run.model_dir / "model.safetensors"), load_file(ours / "model" / "model.safetensors")
    assert theirs.keys() == mine.keys() and all(theirs[k].allclose(mine[k], atol=1e-5) for k in theirs)
    assert (ours / "adapter").is_dir() == (engine == "trainer") == (run.path / "adapter").is_dir()


def test_the_exported_trainer_script_sets_sftconfig_as_the_engine_does(llama: Path, tmp_path: Path) -> None:
    """Every SFTConfig argument of the script equals the trainer engine's (TRL's dataset preparation skipped, loss
    only evaluation, gradient checkpointing left to the model)."""
    import ast
    from types import SimpleNamespace

    from trl import SFTConfig

    from core.engines.trainer import training_arguments
    from tests.test_export import _render

    data = {"train_file": str(_alpaca(tmp_path / "alpaca.json")), "prompt_template": ALPACA,
            "response_column": "output"}
    raw = _raw(llama, data, tmp_path / "run", packing=True)
    text = _render(raw)
    call = next(n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Call) and getattr(n.func, "id", "") ==
                "SFTConfig")
    kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg not in ("output_dir", "run_name")}
    script_args = SFTConfig(output_dir=str(tmp_path / "x"), **kwargs).to_dict()
    ctx = SimpleNamespace(config=parse_config(raw), device="cpu",
                          run_dir=SimpleNamespace(checkpoints_dir=tmp_path / "x", path=tmp_path / "run"))
    engine_args = training_arguments(ctx).to_dict()  # type: ignore[arg-type]
    ignore = {"use_cpu", "dataloader_pin_memory", "disable_tqdm", "output_dir", "logging_dir",
              "include_num_input_tokens_seen", "run_name"}
    assert {k: (script_args.get(k), v) for k, v in engine_args.items() if k not in ignore and
            script_args.get(k) != v} == {}
    assert engine_args["prediction_loss_only"] and engine_args["dataset_kwargs"] == {"skip_prepare_dataset": True}
