"""What every benchmark shares: timing, results, the machine description, bench data and helpers for runs.

The bench never imports torch or transformers into its own process (the product's processes and the tutorial
script do that), so what it measures in subprocesses is not disturbed by a warm parent.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.metadata as md
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from core.demo import DETAILS, LABELS, OPENERS, PRODUCTS, TWISTS

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
PYTHON = sys.executable
# The console script next to this interpreter: what a user types.
FINETUNE_TUI = str(Path(PYTHON).with_name("finetune-tui"))


# --- results ---------------------------------------------------------------------------------------

@dataclass
class Target:
    """One pass/fail line: `value` compared with `limit` by `op` ("<=" or ">=")."""

    what: str
    value: float | None
    op: str
    limit: float
    unit: str = ""

    @property
    def passed(self) -> bool | None:
        if self.value is None:
            return None
        return self.value <= self.limit if self.op == "<=" else self.value >= self.limit

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "target": f"{self.op} {self.limit:g}{self.unit}", "passed": self.passed}


@dataclass
class Result:
    name: str
    title: str
    figures: dict[str, Any] = field(default_factory=dict)  # every number measured, flat where possible
    table: list[tuple[str, str]] = field(default_factory=list)  # (label, formatted value) for the printed table
    targets: list[Target] = field(default_factory=list)
    method: str = ""  # how it was measured, in a sentence or two
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0  # how long the benchmark took
    load_average: dict[str, Any] = field(default_factory=dict)  # the machine's load before and after it ran

    def row(self, label: str, value: str) -> None:
        self.table.append((label, value))

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title, "method": self.method, "table": [list(row) for row in self.table],
            "figures": self.figures,
            "targets": [t.as_dict() for t in self.targets], "notes": self.notes, "seconds": round(self.seconds, 1),
            "load_average": self.load_average,
        }


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def spread(values: list[float]) -> str:
    """`median (min-max, n=k)`, the way the table shows a repeated measurement."""
    return f"{median(values):.3g} ({min(values):.3g}-{max(values):.3g}, n={len(values)})"


@contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    """`with stopwatch() as elapsed: ...; elapsed()` gives seconds since entering (frozen on exit)."""
    start = time.perf_counter()
    end: list[float] = []
    yield lambda: (end[0] if end else time.perf_counter()) - start
    end.append(time.perf_counter())


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the machine -----------------------------------------------------------------------------------

def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(pkg: str) -> str | None:
    try:
        return md.version(pkg)
    except md.PackageNotFoundError:
        return None


def _gpus() -> list[str]:
    try:
        import pynvml

        pynvml.nvmlInit()
        names = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i))
            names.append(name.decode() if isinstance(name, bytes) else str(name))
        return names
    except Exception:  # no driver or no GPU: the machine simply has none
        return []


def machine() -> dict[str, Any]:
    vm = psutil.virtual_memory()
    return {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "ram_gb": round(vm.total / 2**30, 1),
        "gpus": _gpus(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": {pkg: _version(pkg) for pkg in (
            "torch", "transformers", "datasets", "accelerate", "tokenizers", "textual", "numpy", "psutil",
        )},
    }


# --wait-idle: before each measured run, wait up to this many seconds for the machine to be quiet.
IDLE_WAIT_S = 0.0
IDLE_CPU_PCT = 20.0  # the whole machine's CPU use (all cores) below which it counts as quiet
idle_waits: list[dict[str, float]] = []  # what settle() did, recorded in results.json


def settle() -> None:
    """Wait (up to IDLE_WAIT_S) until the machine's CPU use stays under IDLE_CPU_PCT for 3 s in a row.

    Between measured runs nothing of the bench is running, so what uses the CPU then is someone else's work; on a
    shared machine this keeps their bursts out of the figures. A wait that times out is recorded, not hidden."""
    if IDLE_WAIT_S <= 0:
        return
    start = time.monotonic()
    quiet = 0
    busy = 100.0
    while time.monotonic() - start < IDLE_WAIT_S:
        busy = psutil.cpu_percent(interval=1.0)
        quiet = quiet + 1 if busy < IDLE_CPU_PCT else 0
        if quiet >= 3:
            break
    waited = time.monotonic() - start
    idle_waits.append({"waited_s": round(waited, 1), "cpu_pct_last": busy, "quiet": float(quiet >= 3)})
    if waited > 5:
        log(f"waited {waited:.0f} s for a quiet machine ({'reached' if quiet >= 3 else 'gave up'}; cpu {busy:.0f}%)")


def load() -> dict[str, float]:
    one, five, fifteen = os.getloadavg()
    return {"1min": round(one, 2), "5min": round(five, 2), "15min": round(fifteen, 2)}


# --- bench data ------------------------------------------------------------------------------------

# Word counts per text: log-normal (median ~34 words, ~45 tokens) cut to 5..230 words, i.e. roughly 8..256 tokens
# with the special tokens. Most texts are short and a long tail is long, the shape of review and news data.
MEDIAN_WORDS = 34
SIGMA = 0.8
MIN_WORDS, MAX_WORDS = 5, 230


def _varied_text(rng: random.Random, label: str, min_words: int = MIN_WORDS) -> str:
    target = min(MAX_WORDS, max(min_words, round(rng.lognormvariate(0.0, SIGMA) * MEDIAN_WORDS)))
    product = rng.choice(PRODUCTS)
    # Half the texts open neutrally, and long texts are mostly neutral filler around a few sentences that carry
    # the label, as in real reviews. Short texts with a neutral opening carry no signal at all, so accuracy stays
    # below 100% and can tell the padding modes apart if they differ.
    opener = OPENERS[label] if rng.random() < 0.5 else OPENERS["neutral"]
    parts = [rng.choice(opener).format(p=product)]
    words = len(parts[0].split())
    while words < target:
        pool = DETAILS[label] + TWISTS[label] if rng.random() < 0.2 else DETAILS["neutral"]
        sentence = rng.choice(pool)
        parts.append(sentence)
        words += len(sentence.split())
    return " ".join(parts)


def varied_rows(n: int, seed: int, min_words: int = MIN_WORDS) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = [(_varied_text(rng, label, min_words), label) for label in (LABELS[i % len(LABELS)] for i in range(n))]
    rng.shuffle(rows)
    return rows


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def token_lengths(path: Path) -> dict[str, Any]:
    """Token-length percentiles of a csv's texts with the bundled tokenizer, in a subprocess (transformers)."""
    code = (
        "import json, sys, csv\n"
        "from core.config import ModelConfig\n"
        "from core.tokenization import load_tokenizer, length_stats\n"
        "rows = list(csv.DictReader(open(sys.argv[1], encoding='utf-8')))\n"
        "s = length_stats([r['text'] for r in rows], None, load_tokenizer(ModelConfig()), 256, 16)\n"
        "print(json.dumps({'percentiles': s.percentiles, 'min': min(s.lengths), 'mean': round(s.mean, 1),\n"
        "                  'padding_share': s.padding_share, 'share_longer_than_256': s.share_longer}))\n"
    )
    out = run_python(["-c", code, str(path)], timeout=300)
    return json.loads(out.strip().splitlines()[-1])


# --- processes -------------------------------------------------------------------------------------

def bundled_model_dir() -> str:
    """The bundled model's directory, which the plain scripts load as a user would load any local model."""
    from core.config import BUNDLED_MODEL
    from core.models import resolve_model

    return str(resolve_model(BUNDLED_MODEL))


def alternating(pairs: int) -> list[tuple[str, str]]:
    """(script, product), (product, script), ...: the order of a side-by-side bench's runs, so drift in the
    machine's load hits both sides alike."""
    return [("script", "product") if i % 2 == 0 else ("product", "script") for i in range(pairs)]


def bench_env(**extra: str) -> dict[str, str]:
    """The environment for every process the bench starts: offline, quiet, the repo importable."""
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1", TOKENIZERS_PARALLELISM="false",
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
    )
    env.update(extra)
    return env


def run_python(args: list[str], *, timeout: float, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run `python ARGS`; its stdout, or a RuntimeError with the end of its stderr."""
    proc = subprocess.run([PYTHON, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd or REPO,
                          env=env or bench_env())
    if proc.returncode != 0:
        raise RuntimeError(f"python {' '.join(args[:2])} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


_TRAIN_METRICS = re.compile(r"\{[^{}]*'train_samples_per_second'[^{}]*\}")


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def trainer_train_metrics(text: str) -> dict[str, float]:
    """The dict Trainer logs at the end of train() ({'train_runtime': ..., 'train_samples_per_second': ...}), found
    in a process's output: Trainer prints its logs when tqdm is off (its PrinterCallback; transformers 5 prints the
    values as strings)."""
    found = _TRAIN_METRICS.findall(text)
    if not found:
        raise ValueError("no train_samples_per_second line in the output")
    import ast

    parsed = {k: _number(v) for k, v in ast.literal_eval(found[-1]).items()}
    return {k: v for k, v in parsed.items() if v is not None}


def step_throughput(events: list[dict[str, Any]], batch: int) -> float | None:
    """Samples per second between the first and the last logged step (the first window holds warm-up)."""
    steps = [e for e in events if e.get("type") == "step"]
    if len(steps) < 2:
        return None
    first, last = steps[0], steps[-1]
    seconds = float(last["elapsed_s"]) - float(first["elapsed_s"])
    return (int(last["step"]) - int(first["step"])) * batch / seconds if seconds > 0 else None


# --- finetune-tui runs -----------------------------------------------------------------------------

def write_config(path: Path, train: Path, validation: Path, output_dir: Path, *,
                 tokenizer: dict[str, Any] | None = None, training: dict[str, Any] | None = None) -> Path:
    """A finetune-tui config for the bundled model on bench data; checked by the product's own schema."""
    from core.config import parse_config, save_config

    config = parse_config({
        "model": {"name_or_path": "bundled:all-MiniLM-L6-v2"},
        "data": {"train_file": str(train), "validation_file": str(validation), "text_column": "text",
                 "label_column": "label"},
        "tokenizer": tokenizer or {},
        "training": training or {},
        "metrics": ["accuracy"],
        "output_dir": str(output_dir),
    })
    save_config(config, path, overwrite=True)
    return path


@dataclass
class ProductRun:
    run_dir: Path
    events: list[dict[str, Any]]
    stdout: str
    wall_s: float

    @property
    def train_metrics(self) -> dict[str, float]:
        return trainer_train_metrics(self.stdout)

    def last(self, kind: str) -> dict[str, Any]:
        found = [e for e in self.events if e.get("type") == kind]
        if not found:
            raise RuntimeError(f"{self.run_dir}: no {kind} event; stderr.log ends:\n{self.stderr_tail()}")
        return found[-1]

    def stderr_tail(self) -> str:
        path = self.run_dir / "stderr.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def read_run(run_dir: Path, wall_s: float = 0.0) -> ProductRun:
    from core.events import read_events

    stdout = (run_dir / "stdout.log").read_text(errors="replace") if (run_dir / "stdout.log").exists() else ""
    run = ProductRun(run_dir, read_events(run_dir / "events.jsonl"), stdout, wall_s)
    if not any(e.get("type") == "finished" for e in run.events):
        raise RuntimeError(f"{run_dir} did not finish; stderr.log ends:\n{run.stderr_tail()}")
    return run


def kill_run(run_dir: Path) -> None:
    """End a run the bench started (and gave up on) with the product's own Kill, so no worker outlives the bench."""
    from core.rundir import RunDir

    with contextlib.suppress(OSError):
        RunDir(run_dir).kill()


def product_run(config: Path, output_dir: Path, timeout: float = 3600) -> ProductRun:
    """`finetune-tui run CONFIG` in the foreground, as a user runs it; the run directory's record of it."""
    try:
        with stopwatch() as wall:
            proc = subprocess.run([FINETUNE_TUI, "run", str(config), "--output-dir", str(output_dir), "--overwrite"],
                                  capture_output=True, text=True, timeout=timeout, cwd=output_dir.parent,
                                  env=bench_env())
    except BaseException:  # a timeout or Ctrl-C: the worker runs in its own process group and would live on
        kill_run(output_dir)
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"finetune-tui run {config} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
                           f"\n{proc.stdout[-2000:]}")
    return read_run(output_dir, wall())


# --- the app in a pseudo-terminal ------------------------------------------------------------------

_ESCAPES = re.compile(rb"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")


class PtyApp:
    """A command in a pseudo-terminal of a fixed size, its output drained by a thread (a terminal app blocks when
    nobody reads its output). `marker_s` is when `marker` first appeared on the screen, `marker_rss_mb` the
    process's resident memory at that moment."""

    def __init__(self, command: list[str], *, marker: bytes | None = None, size: tuple[int, int] = (120, 40),
                 cwd: Path | None = None) -> None:
        import fcntl
        import struct
        import termios
        import threading

        self.marker = marker
        self.marker_s: float | None = None
        self.marker_rss_mb: float | None = None
        self.tail = b""
        self._found = threading.Event()
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
        env = bench_env(TERM="xterm-256color", COLORTERM="truecolor")
        self.start = time.perf_counter()
        self.proc = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd,
                                     start_new_session=True, close_fds=True)
        os.close(slave)
        self.master = master
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        import select

        screen = b""
        while True:
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                if self.proc.poll() is not None:
                    return
                continue
            try:
                chunk = os.read(self.master, 1 << 16)
            except OSError:  # the child closed the terminal
                return
            if not chunk:
                return
            self.tail = (self.tail + chunk)[-(1 << 16):]
            if self.marker is not None and self.marker_s is None:
                screen += chunk
                if self.marker in _ESCAPES.sub(b"", screen):
                    self.marker_s = time.perf_counter() - self.start
                    with contextlib.suppress(psutil.Error):
                        self.marker_rss_mb = psutil.Process(self.proc.pid).memory_info().rss / 2**20
                    self._found.set()
                    screen = b""

    def screen_text(self) -> str:
        """The last 64 KB the app wrote, without escape sequences: enough to see what its screen says."""
        return _ESCAPES.sub(b"", self.tail).decode(errors="replace")

    def wait_for_marker(self, timeout: float = 30.0) -> float:
        deadline = time.monotonic() + timeout
        while not self._found.wait(0.05):
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.proc.args[0]} exited ({self.proc.returncode}): {self.tail[-1500:]!r}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {self.marker!r} on screen in {timeout:.0f} s; the screen ends "
                                   f"{_ESCAPES.sub(b'', self.tail)[-800:]!r}")
        assert self.marker_s is not None
        return self.marker_s

    def quit(self, timeout: float = 5.0) -> None:
        with contextlib.suppress(OSError):
            os.write(self.master, b"\x11")  # Ctrl+Q
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._thread.join(2)
        with contextlib.suppress(OSError):
            os.close(self.master)
