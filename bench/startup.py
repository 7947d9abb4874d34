"""3. Start-up: from typing `finetune-tui` to its first screen, and its memory then, against `import transformers`.

Primary figure: the real `finetune-tui` console script in a pseudo-terminal (120x40), timed from just before the
process starts until the wizard's first step ("Which framework should train the model?") has been written to the
terminal; its resident memory (psutil) is read at that moment, then Ctrl+Q quits it. Check figure: the same app
run headless (App.run_test) in a fresh interpreter until the wizard screen is mounted, which also reports whether
torch, transformers or datasets were imported by then. Baseline: `python -c "import transformers"`, whole
process, and its resident memory after the import. Each is repeated (after one unmeasured warm-up run that fills
the OS file cache) and the median is reported. finetune-tui's bytecode is written first, as installing it does.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from bench.common import FINETUNE_TUI, PYTHON, REPO, PtyApp, Result, Target, bench_env, log, median, settle, spread

MARKER = b"Which framework should train the model?"
SIZE = (120, 40)  # columns, rows

HEADLESS = r"""
import time
t0 = time.perf_counter()
import json, os, sys, asyncio
import psutil
from tui.app import make_app
t1 = time.perf_counter()

async def main() -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        while getattr(app.screen, "id", None) != "wizard" or not app.screen.is_mounted:
            await pilot.pause(0.005)
        t2 = time.perf_counter()
        rss = psutil.Process().memory_info().rss
        heavy = [m for m in ("torch", "transformers", "datasets", "pandas", "sklearn") if m in sys.modules]
        widgets = len(list(app.screen.walk_children()))
        print(json.dumps({"ready": True, "rss": rss, "heavy_modules": heavy, "import_s": t1 - t0,
                          "mount_s": t2 - t1, "widgets": widgets}), flush=True)
        await app.action_quit()

asyncio.run(main())
"""

BASELINE = (
    "import transformers\n"
    "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmRSS')))"
)


def first_screen_pty(command: list[str], marker: bytes = MARKER, timeout: float = 30.0) -> tuple[float, float]:
    """(seconds until marker appears on the terminal, resident MB at that moment) for a command in a pty."""
    app = PtyApp(command, marker=marker, size=SIZE)
    try:
        seconds = app.wait_for_marker(timeout)
        return seconds, app.marker_rss_mb or 0.0
    finally:
        app.quit()


def headless_first_screen() -> tuple[float, float, list[str], float, float, int]:
    start = time.perf_counter()
    proc = subprocess.Popen([PYTHON, "-c", HEADLESS], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=bench_env())
    assert proc.stdout is not None
    line = proc.stdout.readline()
    elapsed = time.perf_counter() - start
    _, err = proc.communicate(timeout=30)
    if not line.startswith(b'{"ready"'):
        raise RuntimeError(f"headless start failed: {err.decode(errors='replace')[-2000:]}")
    data = json.loads(line)
    return elapsed, data["rss"] / 2**20, data["heavy_modules"], data["import_s"], data["mount_s"], data["widgets"]


def import_transformers() -> tuple[float, float]:
    start = time.perf_counter()
    out = subprocess.run([PYTHON, "-c", BASELINE], capture_output=True, text=True, env=bench_env(), check=True)
    return time.perf_counter() - start, int(out.stdout.strip()) / 1024


def _repeat(fn, n: int) -> list[tuple]:  # type: ignore[no-untyped-def, type-arg]
    settle()
    fn()  # warm-up: the first start reads every module from disk
    return [fn() for _ in range(n)]


def _compile_bytecode() -> None:
    """Write finetune-tui's .pyc files, as installing it does. A checkout run with PYTHONDONTWRITEBYTECODE=1 (as on
    the bench machine) never writes them, so every start would compile changed modules again."""
    import compileall

    for package in ("core", "tui"):
        compileall.compile_dir(str(REPO / package), quiet=1)


def run(work: Path, quick: bool) -> Result:
    n = 3 if quick else 9
    result = Result("startup", "Start-up: finetune-tui to its first screen vs import transformers")
    _compile_bytecode()
    log(f"startup: finetune-tui in a pty x{n}")
    pty_runs = _repeat(lambda: first_screen_pty([FINETUNE_TUI]), n)
    log(f"startup: headless app x{n}")
    headless_runs = _repeat(headless_first_screen, n)
    log(f"startup: python -c 'import transformers' x{n}")
    baseline_runs = _repeat(import_transformers, n)
    log(f"startup: python -c pass x{n}")
    bare = _repeat(lambda: _timed([PYTHON, "-c", "pass"]), n)

    pty_s, pty_mb = [r[0] for r in pty_runs], [r[1] for r in pty_runs]
    hl_s, hl_mb = [r[0] for r in headless_runs], [r[1] for r in headless_runs]
    tf_s, tf_mb = [r[0] for r in baseline_runs], [r[1] for r in baseline_runs]
    heavy = sorted({m for r in headless_runs for m in r[2]})
    import_s, mount_s = median([r[3] for r in headless_runs]), median([r[4] for r in headless_runs])
    widgets = headless_runs[-1][5]
    result.figures = {
        "repeats": n,
        "first_screen_s": [round(x, 3) for x in pty_s], "first_screen_s_median": round(median(pty_s), 3),
        "first_screen_rss_mb_median": round(median(pty_mb), 1),
        "headless_first_screen_s_median": round(median(hl_s), 3), "headless_rss_mb_median": round(median(hl_mb), 1),
        "heavy_modules_at_first_screen": heavy,
        "headless_import_tui_app_s_median": round(import_s, 3),
        "headless_app_start_to_wizard_mounted_s_median": round(mount_s, 3),
        "widgets_on_first_screen": widgets,
        "import_transformers_s": [round(x, 3) for x in tf_s], "import_transformers_s_median": round(median(tf_s), 3),
        "import_transformers_rss_mb_median": round(median(tf_mb), 1),
        "python_c_pass_s_median": round(median([b[0] for b in bare]), 3),
        "terminal": f"{SIZE[0]}x{SIZE[1]} pty, TERM=xterm-256color",
    }
    result.row("finetune-tui first screen (pty)", f"{spread(pty_s)} s, {median(pty_mb):.0f} MB")
    result.row("same app headless (run_test)", f"{spread(hl_s)} s, {median(hl_mb):.0f} MB")
    result.row('python -c "import transformers"', f"{spread(tf_s)} s, {median(tf_mb):.0f} MB")
    result.row("  of which: import tui.app / app start to wizard mounted",
               f"{import_s:.2f} s / {mount_s:.2f} s ({widgets} widgets on the first screen)")
    result.row("python -c pass", f"{median([b[0] for b in bare]):.3f} s")
    result.row("ML modules loaded at first screen", ", ".join(heavy) or "none")
    result.targets.append(Target("first screen (pty, median)", round(median(pty_s), 3), "<=", 0.5, " s"))
    result.method = __doc__.split("\n\n", 1)[1].replace("\n", " ").strip()
    return result


def _timed(command: list[str]) -> tuple[float]:
    start = time.perf_counter()
    subprocess.run(command, check=True, env=bench_env())
    return (time.perf_counter() - start,)
