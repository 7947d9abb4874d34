"""10. Instruction tuning (text-generation) side by side with a plain TRL script, and packing against no packing.

Both sides fine-tune the same small Llama (built on the fly: 4 layers, hidden 256, a byte-level BPE trained on the
bench's words; nothing can be downloaded here) on the same Alpaca-style JSON (lengths drawn like Alpaca's: short
instructions, often no input, answers of a few to ~150 words) with LoRA r 16 on every linear layer, the same learning
rate, batch, max_length, epoch and seed: `finetune-tui run` (trainer engine: TRL's SFTTrainer on the product's own
tokenization and packing, plus its checks, events, samples, evaluation report and model card) against
bench/plain_sft.py (SFTTrainer with its own dataset preparation). Compared: Trainer's train_runtime (the training
loop alone: throughput) and the wall time from the command to its exit, each with packing and without. Runs alternate
so drift in the machine's load hits both sides.
"""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

from bench.common import (
    FINETUNE_TUI,
    REPO,
    Result,
    Target,
    alternating,
    bench_env,
    kill_run,
    log,
    median,
    read_run,
    run_python,
    settle,
    spread,
    stopwatch,
)

TEMPLATE = "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
MAX_LENGTH, BATCH, LEARNING_RATE, SEED = 256, 8, 2e-4, 42
TARGET_RATIO = 1.0  # TRL's time / finetune-tui's: at least as fast

_BUILD = """
import sys
from pathlib import Path
import torch, transformers
from tests.llm_fixtures import SENTENCES, build_llm_tokenizer
tokenizer = build_llm_tokenizer(vocab_size=800)
tokenizer.model_max_length = 512
config = transformers.LlamaConfig(vocab_size=len(tokenizer), hidden_size=256, intermediate_size=688,
    num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=512,
    bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
torch.manual_seed(0)
model = transformers.AutoModelForCausalLM.from_config(config)
model.save_pretrained(sys.argv[1])
tokenizer.save_pretrained(sys.argv[1])
print(sum(p.numel() for p in model.parameters()))
"""


def _words(rng: random.Random, n: int) -> str:
    from tests.llm_fixtures import SENTENCES  # plain text, no torch

    vocabulary = " ".join(SENTENCES).split()
    return " ".join(rng.choice(vocabulary) for _ in range(max(1, n)))


def alpaca_like(n: int, seed: int) -> list[dict[str, str]]:
    """Rows shaped like Alpaca's: instructions of ~5-40 words, an input in 40% of rows, answers log-normal around
    ~40 words (a few to ~150)."""
    rng = random.Random(seed)
    return [{"instruction": _words(rng, int(rng.lognormvariate(2.4, 0.5))),
             "input": _words(rng, int(rng.lognormvariate(2.5, 0.6))) if rng.random() < 0.4 else "",
             "output": _words(rng, min(150, int(rng.lognormvariate(3.4, 0.8))))} for _ in range(n)]


def _product(work: Path, model: Path, train: Path, validation: Path, packing: bool, index: int) -> tuple[float,
                                                                                                           float, int]:
    from core.config import parse_config, save_config

    out = work / f"product-{'packed' if packing else 'padded'}-{index}"
    config = parse_config({
        "task": "text-generation", "engine": "trainer", "model": {"name_or_path": str(model)},
        "data": {"train_file": str(train), "validation_file": str(validation), "prompt_template": TEMPLATE,
                 "response_column": "output"},
        "tokenizer": {"max_length": MAX_LENGTH},
        "training": {"num_train_epochs": 1, "learning_rate": LEARNING_RATE, "per_device_train_batch_size": BATCH,
                     "packing": packing, "eval_strategy": "no", "save_strategy": "no", "logging_steps": 10,
                     "seed": SEED, "warmup_ratio": 0.0, "weight_decay": 0.01},
        "output_dir": str(out)})
    path = save_config(config, work / f"product-{index}.yaml", overwrite=True)
    try:
        with stopwatch() as wall:
            proc = subprocess.run([FINETUNE_TUI, "run", str(path)], capture_output=True, text=True, timeout=3600,
                                  cwd=work, env=bench_env())
    except BaseException:
        kill_run(out)
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"finetune-tui run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    run = read_run(out, wall())
    steps = int(run.last("run_started")["total_steps"])
    return wall(), float(run.train_metrics["train_runtime"]), steps


def _script(work: Path, model: Path, train: Path, packing: bool, index: int) -> tuple[float, float, int]:
    out = work / f"script-{'packed' if packing else 'padded'}-{index}"
    args = [str(REPO / "bench" / "plain_sft.py"), "--model", str(model), "--train", str(train), "--output-dir",
            str(out), "--template", TEMPLATE, "--max-length", str(MAX_LENGTH), "--batch-size", str(BATCH),
            "--learning-rate", str(LEARNING_RATE), "--seed", str(SEED)] + (["--packing"] if packing else [])
    with stopwatch() as wall:
        stdout = run_python(args, timeout=3600, cwd=work, env=bench_env(HF_DATASETS_CACHE=str(work / f"hf-{index}")))
    metrics = json.loads(next(ln for ln in reversed(stdout.splitlines()) if ln.startswith('{"plain_sft"')))
    found = metrics["plain_sft"]
    return wall(), float(found["train_runtime"]), int(found["rows"])


def run(work: Path, quick: bool) -> Result:
    pairs = 1 if quick else 2
    rows = 96 if quick else 480
    result = Result("sft", "Instruction tuning: finetune-tui run vs a plain TRL SFTTrainer script; packing vs none")
    model = work / "llama"
    parameters = int(run_python(["-c", _BUILD, str(model)], timeout=600, cwd=REPO).strip().splitlines()[-1])
    train, validation = work / "alpaca.json", work / "validation.json"
    train.write_text(json.dumps(alpaca_like(rows, seed=1)))
    validation.write_text(json.dumps(alpaca_like(4, seed=2)))

    figures: dict[str, dict[str, list[float]]] = {}
    for packing in (True, False):
        name = "packed" if packing else "padded"
        walls: dict[str, list[float]] = {"product": [], "script": []}
        train_s: dict[str, list[float]] = {"product": [], "script": []}
        for i, pair in enumerate(alternating(pairs)):
            for side in pair:
                settle()
                log(f"sft ({name}): {side} run {i + 1}/{pairs}")
                if side == "product":
                    wall, seconds, _ = _product(work, model, train, validation, packing, i)
                else:
                    wall, seconds, _ = _script(work, model, train, packing, i)
                walls[side].append(round(wall, 2))
                train_s[side].append(round(seconds, 2))
        figures[name] = {"wall_s": walls, "train_runtime_s": train_s}  # type: ignore[dict-item]
        throughput = median(train_s["script"]) / median(train_s["product"])
        end_to_end = median(walls["script"]) / median(walls["product"])
        figures[name]["ratios"] = {"throughput": round(throughput, 4), "wall": round(end_to_end, 4)}  # type: ignore
        result.row(f"{name}: training loop s, TRL script / finetune-tui",
                   f"{spread(train_s['script'])} / {spread(train_s['product'])}")
        result.row(f"{name}: wall s, TRL script / finetune-tui",
                   f"{spread(walls['script'])} / {spread(walls['product'])}")
        result.targets.append(Target(f"{name} throughput finetune-tui / TRL", round(throughput, 4), ">=",
                                     TARGET_RATIO))
        result.targets.append(Target(f"{name} wall finetune-tui / TRL (speed)", round(end_to_end, 4), ">=",
                                     TARGET_RATIO))
    packed, padded = figures["packed"]["train_runtime_s"]["product"], figures["padded"]["train_runtime_s"]["product"]
    result.row("finetune-tui training loop s, packed / padded", f"{spread(packed)} / {spread(padded)}")
    result.figures = {"rows": rows, "parameters": parameters, "max_length": MAX_LENGTH, "batch_size": BATCH,
                      "repeats": pairs, **figures,
                      "packing_speedup": round(median(padded) / median(packed), 4)}
    result.method = (f"{pairs} alternating pairs per mode; {rows} Alpaca-like rows, 1 epoch, batch {BATCH}, "
                     f"max_length {MAX_LENGTH}, LoRA r 16 on all linear layers, a {parameters / 1e6:.1f}M-parameter "
                     "Llama built on the fly; ratios are the TRL script's median time / finetune-tui's (above 1: "
                     "finetune-tui is faster). finetune-tui's wall includes its checks, a 4-row validation split "
                     "evaluated with generated answers, the model card and the merged model.")
    result.notes.append("Packing packs by best-fit decreasing on both sides (TRL's bfd); finetune-tui packs within "
                        "each 1,000-example tokenization batch, TRL over the whole split.")
    return result
