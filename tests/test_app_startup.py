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
        # and nothing slips in from a timer or worker started by the first screen, nor from the other steps, which
        # mount one by one after the first frame (all of them before the app closes: closing while one mounts would
        # tear its widgets down half made)
        await pilot.pause(1.5)
        await app.screen.steps_ready()
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


def test_app_is_built_before_the_config_schema_loads(tmp_path: Path) -> None:
    # The schema (pydantic, yaml) is a fifth of the time to the first frame; a new draft loads it on first read.
    probe = ("import sys; from tui.app import make_app; app = make_app(); "
             "print([m for m in ('pydantic', 'yaml', 'core.config') if m in sys.modules], app.draft.loaded)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["[]", "False"]


async def test_framework_list_opens_on_the_default_without_reading_the_draft() -> None:
    from textual.app import App, ComposeResult
    from textual.widgets import OptionList

    from core.config import RunConfig
    from core.engines import ENGINES
    from tui.draft import Draft
    from tui.screens.steps.base import Findings
    from tui.screens.steps.framework import FrameworkStep

    draft = Draft()
    step = FrameworkStep(draft, Findings())

    class Host(App[None]):
        def compose(self) -> ComposeResult:
            yield step

    async with Host().run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        options = step.query_one(OptionList)
        assert options.highlighted_option is not None
        assert options.highlighted_option.id == RunConfig.model_fields["engine"].default
        assert not draft.loaded  # showing the list read nothing from the draft
        options.focus()
        await pilot.press("down")
        assert draft.loaded
        assert draft.get("engine") == list(ENGINES)[1]


async def test_an_idle_wizard_animates_nothing() -> None:
    # Hidden loading indicators used to refresh 16 times a second each: 2% of a core for a wizard nobody touched.
    from tui.app import make_app
    from tui.screens.wizard import WizardScreen

    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, WizardScreen)
        await screen.steps_ready()
        await pilot.pause(0.2)
        animated = [w for w in screen.walk_children() if getattr(w, "auto_refresh", None)]
        assert animated == []


async def test_the_wizard_is_the_first_screen_and_the_collector_rests_until_its_first_frame() -> None:
    # One screen to compose and paint before the first frame, not an empty default under a pushed wizard, and no
    # full garbage collection in the middle of it (bench/startup.py measured both).
    import gc

    from tui import startup_gc
    from tui.app import make_app
    from tui.screens.wizard import WizardScreen

    assert gc.isenabled()
    startup_gc.pause()  # as the CLI does before it imports Textual
    try:
        assert not gc.isenabled()
        app = make_app()
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            assert [type(s) for s in app.screen_stack] == [WizardScreen]
            assert gc.isenabled()  # the app resumed collection once its first frame was up
            assert gc.get_freeze_count() > 0  # and moved the start-up objects out of its way
            await app.screen.steps_ready()  # the other steps are still being mounted: leave after them
    finally:
        gc.unfreeze()
        gc.enable()
