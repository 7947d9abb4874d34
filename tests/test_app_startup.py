"""The first screen appears without importing the ML libraries: they load only inside the steps' workers.

Checked in a fresh interpreter, so nothing this test process imported earlier can hide an import.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "transformers", "datasets", "tensorflow", "keras")

PROBE = """
import asyncio, json, sys
from tui.app import make_app

async def main():
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        first = [m for m in HEAVY if m in sys.modules]
        # and nothing slips in from a timer or worker started by the first screen
        await pilot.pause(1.5)
        await app.workers.wait_for_complete()
        later = [m for m in HEAVY if m in sys.modules]
        print(json.dumps({"screen": type(app.screen).__name__, "step": app.screen.current.NAME,
                          "first": first, "later": later}))

HEAVY = %r
asyncio.run(main())
"""


def test_first_screen_needs_no_ml_library(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE % (HEAVY,)], capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["screen"] == "WizardScreen"
    assert seen["step"] == "framework"
    assert seen["first"] == [], f"imported at startup: {seen['first']}"
    assert seen["later"] == [], f"imported while idle on the first screen: {seen['later']}"
