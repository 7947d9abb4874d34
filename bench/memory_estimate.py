"""11. Memory estimate: core.memory's estimate against the measured peak of a real training step.

Decoder LMs built on the fly with random weights (Llamas of ~5M, ~31M and ~125M parameters, and a Qwen2 with its real
152K-token vocabulary, whose logits are its largest tensors); full fine-tuning and LoRA (r 16 on every linear layer,
dropout 0.05: the product's default), gradient checkpointing off and on, batch x max_length 2 x 128 and 4 x 256, all
in float32 (the whole grid on llama-5M, a few cases on the larger ones to stay within ~5 minutes on 2 cores). For each:
the estimate `validate`, `run` and the wizard show (core.memory.estimate for the same text-generation RunConfig)
against one training step as the engines take it: the model from core.engines.hf_model.build_model, the torch-loop
engine's AdamW (make_optimizer), forward with labels, backward, gradient clipping, AdamW's step, gradients set to None.
A first step on a 1 x 8 batch allocates AdamW's state, so the measured step is the steady state, as in the batch-size
probe (core.probe).

Each case runs in a fresh process: a child forked from a server that has only imported torch, transformers and peft
(`python -m bench.memory_estimate --serve`; forking saves the 5-10 s import per case, and the child starts where a
fresh interpreter stands after its imports). Before its baseline the child builds and steps a one-layer model of the
same architecture through the same code, so lazily imported modules, the kernels' code pages and the profiler's
first-use setup do not count as the run's memory.

- On a CUDA GPU: measured = torch.cuda.max_memory_allocated(), over the build and both steps (the warm-up's memory
  is freed and the peak reset first, so nothing is subtracted), against the estimate's total minus its `overhead`
  part (0.5 GiB for the CUDA context and the allocator's caches, which max_memory_allocated does not see).
- On a CPU: measured = the process's peak resident memory (VmHWM, reset through /proc/self/clear_refs just before the
  model is built) minus its resident memory then, against the estimate's total minus `overhead` (0 on a CPU). It
  also records the tensors' peak, the CPU counterpart of max_memory_allocated: the parameters, buffers and AdamW
  state held when the measured step starts, plus the highest running sum of the step's allocations and frees
  (PyTorch's profiler with profile_memory, in allocation order), and what the forward kept for backward (that sum
  when backward starts).

How far RSS can be trusted: the interpreter's own noise is a few MB once the warm-up has run, but peak RSS is more
than the tensors: glibc keeps freed blocks under its dynamic mmap threshold (which rises to 32 MB as big tensors are
freed) in its heap, so peak RSS runs 1.0-3x the tensors' peak, the most with checkpointing (the recomputation frees
and reallocates many mid-sized blocks), and a case measured again can differ by 25% where the tensors' peak is the
same to the MiB. With MALLOC_MMAP_THRESHOLD_=131072 the two agreed within 10% (llama-31M, LoRA + checkpointing: 270
MiB RSS for 248 MiB of tensors, 604-731 MiB by default). So the RSS ratio says what a CPU run takes from the machine
and the tensors' ratio how right the estimate's model is; on the smallest cases (tens of MiB of tensors) the RSS ratio
is mostly glibc's and says little about the estimate.
Ratios are estimate / measured: above 1, the estimate is higher than what the step used.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.common import PYTHON, REPO, Result, bench_env, log, median, settle

MiB = 2**20
# Decoder configs built on the fly (nothing can be downloaded): hidden sizes and depths of the Llama/Qwen2 family
# scaled down; the vocabularies grow with the model, as real ones do, and Qwen2 keeps its real one on purpose.
MODELS: dict[str, dict[str, Any]] = {
    "llama-5M": {"model_type": "llama", "vocab_size": 4096, "hidden_size": 256, "intermediate_size": 688,
                 "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 4},
    "llama-31M": {"model_type": "llama", "vocab_size": 8192, "hidden_size": 512, "intermediate_size": 1376,
                  "num_hidden_layers": 8, "num_attention_heads": 8, "num_key_value_heads": 4},
    "llama-125M": {"model_type": "llama", "vocab_size": 32000, "hidden_size": 768, "intermediate_size": 2048,
                   "num_hidden_layers": 12, "num_attention_heads": 12, "num_key_value_heads": 4},
    "qwen2-42M": {"model_type": "qwen2", "vocab_size": 151936, "hidden_size": 256, "intermediate_size": 688,
                  "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 4,
                  "tie_word_embeddings": True},
}
LORA = {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": ["all-linear"]}  # the product's default for LLMs
SHORT, LONG = (2, 128), (4, 256)  # batch x max_length
CASE_TIMEOUT_S = 600


@dataclass(frozen=True)
class Case:
    model: str
    lora: bool
    checkpointing: bool
    batch: int
    length: int

    @property
    def setting(self) -> str:
        return ("LoRA r16" if self.lora else "full") + (" + checkpointing" if self.checkpointing else "")

    def run_config(self, model_dir: Path, batch: int | None = None, length: int | None = None) -> Any:
        """The text-generation RunConfig a user's YAML would give for this case (data is never read here)."""
        from core.config import parse_config

        return parse_config({
            "task": "text-generation", "model": {"name_or_path": str(model_dir)},
            "data": {"train_file": "train.json", "prompt_template": "{instruction}", "response_column": "output"},
            "tokenizer": {"max_length": length or self.length},
            "training": {"per_device_train_batch_size": batch or self.batch, "mixed_precision": "no",
                         "gradient_checkpointing": self.checkpointing, "lora": LORA if self.lora else None},
        })


def _grid() -> list[Case]:
    # The whole grid on the smallest model; fewer cases on the larger ones, to stay within ~5 minutes on 2 cores (a
    # 125M full fine-tuning step at 4 x 256 alone takes most of a minute on a busy one).
    both = (SHORT, LONG)
    cases = [Case("llama-5M", lora, gc, b, n) for lora in (False, True) for gc in (False, True) for b, n in both]
    cases += [Case("llama-31M", lora, gc, *LONG) for lora in (False, True) for gc in (False, True)]
    cases += [Case("llama-125M", lora, gc, *SHORT) for lora, gc in ((False, False), (True, False), (True, True))]
    cases += [Case("qwen2-42M", lora, gc, *SHORT) for lora, gc in ((False, False), (True, False), (True, True))]
    return cases


CASES = _grid()
QUICK_CASES = [Case("llama-5M", False, False, *SHORT), Case("llama-5M", True, True, *SHORT)]


# --- in the measuring processes --------------------------------------------------------------------------------------

def build_model_dir(directory: Path, name: str) -> int:
    """Save MODELS[name] with random weights (float32 safetensors) to `directory`, and a one-layer model of the same
    architecture to directory/warmup; the parameter count."""
    import torch
    import transformers

    spec = dict(MODELS[name])
    kind = spec.pop("model_type")
    sizes = {"max_position_embeddings": 1024, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.for_model(kind, **spec, **sizes))
    model.save_pretrained(directory)
    parameters = sum(p.numel() for p in model.parameters())
    del model
    tiny = transformers.AutoConfig.for_model(kind, **{**spec, "num_hidden_layers": 1, "vocab_size": 512}, **sizes)
    transformers.AutoModelForCausalLM.from_config(tiny).save_pretrained(directory / "warmup")
    return parameters


def _status() -> dict[str, int]:
    """VmRSS and VmHWM (peak) of this process, in bytes."""
    found: dict[str, int] = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0]) * 1024
    return found


def _reset_peak_rss() -> bool:
    """Make VmHWM start again from the current RSS (Linux 4.0+); False where that is refused."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


_BACKWARD = "bench.backward"  # the profiler range around backward(): what is live when it starts, the forward kept


def _step(model: Any, optimizer: Any, batch: int, length: int, device: str) -> dict[str, int | None]:
    """One optimizer step as the engines take it. The gradients' bytes after backward and, on a GPU, the bytes the
    forward kept for backward (on a CPU the profiler tells those)."""
    import torch

    vocab = int(model.config.vocab_size)
    ids = torch.randint(5, vocab, (batch, length), generator=torch.Generator().manual_seed(0)).to(device)
    before = torch.cuda.memory_allocated() if device == "cuda" else 0
    loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids.clone()).loss
    kept = torch.cuda.memory_allocated() - before if device == "cuda" else None
    with torch.profiler.record_function(_BACKWARD):
        loss.backward()
    gradients = sum(p.grad.numel() * p.grad.element_size() for p in model.parameters() if p.grad is not None)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return {"gradients": gradients, "forward_kept": kept}


def _allocations(profiler: Any) -> tuple[int, int]:
    """From the CPU allocations (+) and frees (-) the profiler saw, in the order they happened: the highest running
    sum (how far above its starting point the tensors' memory went) and the sum when backward started. kineto_results
    keeps every allocation as an event of its own; the public FunctionEvents fold them into their ops, which would
    hide a peak inside an op."""
    events = list(profiler.profiler.kineto_results.events())
    backward = min(e.start_ns() for e in events if e.name() == _BACKWARD)
    live = peak = 0
    at_backward = None
    for event in sorted((e for e in events if e.name() == "[memory]" and str(e.device_type()).endswith("CPU")),
                        key=lambda e: e.start_ns()):
        if at_backward is None and event.start_ns() >= backward:
            at_backward = live
        live += event.nbytes()
        peak = max(peak, live)
    return peak, at_backward if at_backward is not None else live


def measure_here(model_dir: Path, case: Case) -> dict[str, Any]:
    """Estimate and measure `case` in this process (which must be fresh: see the module docstring)."""
    import gc
    import resource

    import torch
    from torch.profiler import ProfilerActivity, profile

    from core.engines.hf_model import build_model
    from core.engines.torch_loop import make_optimizer
    from core.memory import estimate
    from core.models import load_model_config

    started = time.perf_counter()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    config = case.run_config(model_dir)
    t = config.training
    est = estimate(config, load_model_config(config.model), free=[], device=device)

    # Warm-up through the same code on a one-layer model: modules peft and transformers import lazily, the code
    # pages of the kernels and the profiler's first-use setup would otherwise count as the run's memory.
    warm = build_model(case.run_config(model_dir / "warmup", batch=1, length=16), []).to(device)
    warm.train()
    warm_optimizer = make_optimizer(warm, t.weight_decay, t.learning_rate)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True):
        _step(warm, warm_optimizer, 2, 16, device)
    del warm, warm_optimizer
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    # On a GPU what the warm-up allocated is freed by now: this is 0 and the peak below is the run's alone.
    allocated_before = torch.cuda.memory_allocated() if device == "cuda" else 0

    baseline = _status()["VmRSS"]
    reset = _reset_peak_rss()
    model = build_model(config, []).to(device)
    model.train()
    optimizer = make_optimizer(model, t.weight_decay, t.learning_rate)
    _step(model, optimizer, 1, 8, device)  # allocates AdamW's state: the measured step below is the steady state
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    weights += sum(b.numel() * b.element_size() for b in model.buffers())
    state = sum(v.numel() * v.element_size() for s in optimizer.state.values() for v in s.values()
                if torch.is_tensor(v))
    step_started = time.perf_counter()
    rss = None
    if device == "cuda":
        step = _step(model, optimizer, case.batch, case.length, device)
        torch.cuda.synchronize()
        measured = tensors = torch.cuda.max_memory_allocated()
        kept = step["forward_kept"]
    else:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
            step = _step(model, optimizer, case.batch, case.length, device)
        rise, kept = _allocations(profiler)
        tensors = weights + state + rise
        peak = _status()["VmHWM"] if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        measured = rss = peak - baseline
    step_s = time.perf_counter() - step_started
    compared = est.total - est.parts["overhead"]
    return {
        **asdict(case), "setting": case.setting, "device": device,
        "parameters": est.parameters, "trainable": est.trainable,
        "estimate": est.parts, "estimate_compared": compared,
        "measured": {"weights": weights, "gradients": step["gradients"], "optimizer": state, "forward_kept": kept,
                     "tensor_peak": tensors, "rss_increase": rss, "peak_reset": reset,
                     "cuda_allocated_before": allocated_before},
        "ratio": round(compared / measured, 3), "ratio_tensors": round(compared / tensors, 3),
        "step_s": round(step_s, 2), "case_s": round(time.perf_counter() - started, 2),
    }


# --- the zygote: one fresh process per call ---------------------------------------------------------------------------

_CALLS: dict[str, Callable[..., Any]] = {
    "build": lambda directory, name: build_model_dir(Path(directory), name),
    "measure": lambda model_dir, case: measure_here(Path(model_dir), Case(**case)),
}


def serve() -> None:
    """`python -m bench.memory_estimate --serve`: import torch, transformers and peft once, then for each JSON request
    on stdin ({"call", "args", "result"}) fork a child that runs it and writes {"ok": ...} or {"error": traceback} to
    the result file; answer {"exit": code} on stdout when the child is gone. Nothing has run a tensor op here, so each
    child starts where a fresh interpreter stands after its imports."""
    import importlib

    for module in ("torch", "transformers", "peft", "core.engines.hf_model", "core.engines.torch_loop", "core.memory"):
        importlib.import_module(module)  # once, here: every child inherits them
    print("ready", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.dup2(2, 1)  # stray prints from libraries must not reach the parent's protocol
                payload = {"ok": _CALLS[request["call"]](*request["args"])}
                code = 0
            except BaseException:
                payload = {"error": traceback.format_exc()}
            finally:
                with contextlib.suppress(BaseException):
                    Path(request["result"]).write_text(json.dumps(payload))
                os._exit(code)  # never back into the zygote's loop, its atexit hooks or its stdio buffers
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"exit": os.waitstatus_to_exitcode(status)}), flush=True)


class Zygote:
    """The bench's handle on `serve()`: the bench's own process never imports torch, and each call still runs in a
    process of its own (forking saves the 5-10 s import per case on a 2-core CPU)."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.calls = 0
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Zygote:
        self.work.mkdir(parents=True, exist_ok=True)
        # The children's warnings and progress bars go to a log beside their results, not into the bench's table.
        with open(self.work / "stderr.log", "w") as log_file:
            self.proc = subprocess.Popen([PYTHON, "-m", "bench.memory_estimate", "--serve"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=log_file, text=True, cwd=REPO,
                                         env=bench_env(HF_HUB_DISABLE_PROGRESS_BARS="1"), start_new_session=True)
        if self._line(120) != "ready":
            raise RuntimeError("bench.memory_estimate --serve did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.close()  # type: ignore[union-attr]
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:  # a child stuck in a step: end the whole session, the child with it
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def _line(self, timeout: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise TimeoutError(f"bench.memory_estimate --serve gave no answer in {timeout:.0f} s")
        line = self.proc.stdout.readline()
        if not line:
            log_tail = (self.work / "stderr.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"bench.memory_estimate --serve ended (exit code {self.proc.wait()}):\n{log_tail}")
        return line.strip()

    def call(self, name: str, *args: Any, timeout: float = CASE_TIMEOUT_S) -> Any:
        assert self.proc is not None and self.proc.stdin is not None
        self.calls += 1
        result = self.work / f"call-{self.calls}.json"
        self.proc.stdin.write(json.dumps({"call": name, "args": args, "result": str(result)}) + "\n")
        self.proc.stdin.flush()
        code = json.loads(self._line(timeout))["exit"]
        if not result.exists():  # killed before it could answer: most likely by the kernel, out of memory
            raise RuntimeError(f"{name}{args}: the process died (exit code {code})")
        payload = json.loads(result.read_text())
        if "error" in payload:
            raise RuntimeError(f"{name}{args} failed:\n{payload['error']}")
        return payload["ok"]

    def build(self, directory: Path, name: str) -> int:
        """build_model_dir in a fresh process; the parameter count."""
        return int(self.call("build", str(directory), name))

    def measure(self, model_dir: Path, case: Case) -> dict[str, Any]:
        """The estimate and the measured peak of one case, in a fresh process; model_dir from build()."""
        return dict(self.call("measure", str(model_dir), asdict(case)))


TENSORS = "tensors' peak"


def _mib(size: float | None) -> str:
    return "-" if size is None else f"{size / MiB:,.0f} MiB"


def table(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The per-case table README's benchmarks section shows."""
    from core.memory import count  # plain Python: no torch

    columns = ["model", "params", "setting", "batch x length", "estimate", "measured", "estimate / measured",
               TENSORS, "estimate / tensors", "device"]
    rows = []
    for r in records:
        measured = r["measured"]["rss_increase"] if r["device"] == "cpu" else r["measured"]["tensor_peak"]
        rows.append([r["model"], count(r["parameters"]), r["setting"], f"{r['batch']} x {r['length']}",
                     _mib(r["estimate_compared"]), _mib(measured) + (" RSS" if r["device"] == "cpu" else ""),
                     f"{r['ratio']:.2f}", _mib(r["measured"]["tensor_peak"]), f"{r['ratio_tensors']:.2f}",
                     r["device"]])
    return {"columns": columns, "rows": rows}


def run(work: Path, quick: bool) -> Result:
    cases = QUICK_CASES if quick else CASES
    result = Result("memory_estimate", "Memory estimate: core.memory's estimate against the measured peak of a "
                                       "training step")
    with Zygote(work / "calls") as zygote:
        dirs: dict[str, Path] = {}
        parameters: dict[str, int] = {}
        for name in dict.fromkeys(c.model for c in cases):
            dirs[name] = work / name
            parameters[name] = zygote.build(dirs[name], name)
            log(f"memory_estimate: built {name} ({parameters[name] / 1e6:.1f}M parameters)")
        records: list[dict[str, Any]] = []
        for i, case in enumerate(cases):
            settle()
            record = zygote.measure(dirs[case.model], case)
            records.append(record)
            row = dict(zip(table([record])["columns"], table([record])["rows"][0], strict=True))
            log(f"memory_estimate {i + 1}/{len(cases)}: {case.model} {case.setting} {case.batch}x{case.length}: "
                f"estimate {row['estimate']}, measured {row['measured']}, tensors {row[TENSORS]} "
                f"({record['case_s']:.0f} s)")

    ratios = [r["ratio"] for r in records]
    tensor_ratios = [r["ratio_tensors"] for r in records]
    device = records[0]["device"]
    what = "peak RSS increase" if device == "cpu" else "max_memory_allocated"
    result.row("cases", f"{len(records)} on {device} ({', '.join(dict.fromkeys(c.model for c in cases))})")
    result.row(f"estimate / {what}, median (min-max)",
               f"{median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})")
    if device == "cpu":
        result.row("estimate / tensors' peak, median (min-max)",
                   f"{median(tensor_ratios):.2f} ({min(tensor_ratios):.2f}-{max(tensor_ratios):.2f})")
    for setting in dict.fromkeys(r["setting"] for r in records):
        chosen = [r["ratio_tensors"] for r in records if r["setting"] == setting]
        result.row(f"estimate / tensors' peak, {setting}",
                   f"{median(chosen):.2f} ({min(chosen):.2f}-{max(chosen):.2f}, n={len(chosen)})")
    result.figures = {"cases": records, "parameters": parameters, "markdown_table": table(records),
                      "ratio": {"median": median(ratios), "min": min(ratios), "max": max(ratios)},
                      "ratio_tensors": {"median": median(tensor_ratios), "min": min(tensor_ratios),
                                        "max": max(tensor_ratios)}}
    result.method = (
        "Each case in a fresh process (forked from a server that only imported torch, transformers and peft), "
        "warmed up on a one-layer model of the same architecture; then build_model, the torch-loop engine's AdamW, "
        "a 1 x 8 step (allocates AdamW's state) and the measured step (forward with labels, backward, clipping, "
        "AdamW, gradients to None), all float32. Estimate: core.memory.estimate's total minus its overhead part "
        "(CUDA context, 0 on a CPU). Measured on a CPU: peak RSS (VmHWM, reset just before the build) minus the RSS "
        "then; tensors' peak: parameters, buffers and AdamW state plus the step's highest running sum of "
        "allocations (PyTorch's profiler). On a GPU: torch.cuda.max_memory_allocated. Ratios are estimate / "
        "measured (above 1: the estimate is higher).")
    result.notes.append("Random weights and random token ids: memory does not depend on the values, only on shapes, "
                        "dtypes, LoRA and checkpointing.")
    if device == "cpu":
        result.notes.append("Peak RSS above the tensors' peak is glibc's: freed blocks under its dynamic mmap "
                            "threshold (up to 32 MB) stay in the heap. With MALLOC_MMAP_THRESHOLD_=131072 the two "
                            "agreed within 10% on llama-5M and llama-31M; the default is kept here because it is what "
                            "a run gets.")
    return result


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    serve()


# --- the README's table for real models -------------------------------------------------------------------------------
# Their architectures as their config.json files give them (written out: nothing is downloaded), for the estimate
# `validate` prints at batch 4 x 1024 tokens in bf16. `python -m bench.memory_estimate --readme-table` prints it.
REAL_MODELS = {
    "Qwen2.5-0.5B": ("qwen2", {"hidden_size": 896, "num_hidden_layers": 24, "num_attention_heads": 14,
                               "num_key_value_heads": 2, "intermediate_size": 4864, "vocab_size": 151936,
                               "tie_word_embeddings": True}),
    "Qwen2.5-1.5B": ("qwen2", {"hidden_size": 1536, "num_hidden_layers": 28, "num_attention_heads": 12,
                               "num_key_value_heads": 2, "intermediate_size": 8960, "vocab_size": 151936,
                               "tie_word_embeddings": True}),
    "Mistral-7B-v0.3": ("mistral", {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
                                    "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 32768,
                                    "tie_word_embeddings": False}),
}
README_SETTINGS = {
    "LoRA": {},
    "LoRA + gradient checkpointing": {"gradient_checkpointing": True},
    "QLoRA 4bit + checkpointing": {"gradient_checkpointing": True, "quantization": "4bit"},
    "full fine-tuning + checkpointing": {"gradient_checkpointing": True, "lora": None},
}


def readme_table() -> str:
    """The README's per-GPU estimate for three real model sizes (the estimate's own figures, not measurements)."""
    from transformers import AutoConfig

    from core.config import parse_config
    from core.memory import GiB, count, estimate, meta_model

    lines = ["| model (parameters) | LoRA trains | " + " | ".join(README_SETTINGS) + " |",
             "|---" * (len(README_SETTINGS) + 2) + "|"]
    for name, (model_type, fields) in REAL_MODELS.items():
        model_config = AutoConfig.for_model(model_type, **fields)
        row: list[str] = []
        trains = ""
        for training in README_SETTINGS.values():
            config = parse_config({"task": "text-generation", "model": {"name_or_path": name},
                                   "data": {"train_file": "a.json", "prompt_template": "{q}", "response_column": "a"},
                                   "tokenizer": {"max_length": 1024},
                                   "training": {"per_device_train_batch_size": 4, "mixed_precision": "bf16",
                                                **training}})
            est = estimate(config, model_config, free=[], device="cuda", model=meta_model(config, model_config))
            trains = trains or count(est.trainable)
            row.append(f"{est.total / GiB:.1f} GiB")
        lines.append(f"| {name} ({count(est.parameters)}) | {trains} | " + " | ".join(row) + " |")
    return "\n".join(lines)


if __name__ == "__main__" and sys.argv[1:] == ["--readme-table"]:
    print(readme_table())
