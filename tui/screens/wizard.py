"""The wizard: a step list on the left, the current step on the right, Back/Next below.

Every step edits one shared Draft, so moving between steps never loses a value. Next runs the step's
checks (slow ones in a thread) and moves on only when they pass; the step list shows where you are.
Only the first step is mounted before the first frame: the other five are most of the screen's 400 widgets and
took the first frame from under 0.6 s to 1.3 s (bench/startup.py), so they are mounted one by one after it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, ContentSwitcher, Footer, Header, Static

from core.errors import UserError
from tui.draft import Draft
from tui.screens.steps.base import Findings, Step
from tui.screens.steps.dataset import DatasetStep
from tui.screens.steps.framework import FrameworkStep
from tui.screens.steps.model import ModelStep
from tui.screens.steps.review import ReviewStep
from tui.screens.steps.tokenizer import TokenizerStep
from tui.screens.steps.training import TrainingStep
from tui.widgets.field_row import FieldRow
from tui.widgets.step_list import StepList

MOUNT_PAUSE_S = 0.05  # between mounting the steps after the first: room for a frame and a key press
FIRST_FRAME_S = 0.25  # time for the first frame to reach the terminal before the other steps are mounted
STEP_CLASSES: tuple[type[Step], ...] = (FrameworkStep, ModelStep, DatasetStep, TokenizerStep, TrainingStep, ReviewStep)


def _start(config: Any, base: Path | None) -> Path:
    from core.launch import start_detached

    return start_detached(config, base=base).path


class WizardScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+n", "next", "Next"),
        Binding("ctrl+b", "back", "Back"),
    ]

    def __init__(self, draft: Draft, *, config_path: Path | None = None) -> None:
        super().__init__(id="wizard")
        self.draft = draft
        self.config_path = config_path
        self.findings = Findings()
        self.index = 0
        self.reached = 0
        self._steps: list[Step] = [
            ReviewStep(draft, self.findings, save_path=config_path) if cls is ReviewStep else cls(draft, self.findings)
            for cls in STEP_CLASSES
        ]
        self._all_mounted = asyncio.Event()

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="wizard-body"):
            yield StepList([cls.TITLE for cls in STEP_CLASSES], id="step-list")
            with Vertical(id="step-pane"):
                with ContentSwitcher(initial=f"step-{STEP_CLASSES[0].NAME}", id="steps"):
                    yield self._steps[0]
                yield Static("", id="problems", markup=False)
                with Horizontal(id="nav"):
                    yield Button("◀ Back", id="back", compact=True, disabled=True)
                    yield Static("", id="busy")
                    yield Button("Next ▶", id="next", variant="primary", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        self.title = "finetune-tui"
        self._go(0)
        # Not on the first layout signal: Textual writes frames from a thread, and mounting at once holds the GIL
        # until the frame is late (bench/startup.py measured 0.7-0.8 s that way, 0.57 s with this pause).
        self.set_timer(FIRST_FRAME_S, self._mount_next_step)

    async def _mount_next_step(self) -> None:
        """One step at a time with a pause between, so the first frame and key presses never wait behind all five."""
        step = next(s for s in self._steps if s.parent is None)
        step.display = False  # the switcher shows only the current step
        await self.query_one("#steps", ContentSwitcher).mount(step)
        if all(s.parent is not None for s in self._steps):
            self._all_mounted.set()
        else:
            self.set_timer(MOUNT_PAUSE_S, self._mount_next_step)

    async def steps_ready(self) -> None:
        """Until every step is mounted (moments after the first frame); tests wait on it before querying steps."""
        await self._all_mounted.wait()

    # --- moving between steps ------------------------------------------------------------------
    @property
    def steps(self) -> list[Step]:
        return self._steps

    @property
    def current(self) -> Step:
        return self.steps[self.index]

    def _go(self, index: int) -> None:
        self.index = index
        self.reached = max(self.reached, index)
        step = self.steps[index]
        for other in self.steps:
            other.current = other is step
        self.query_one("#steps", ContentSwitcher).current = step.id
        self.query_one(StepList).show(index, self.reached)
        self.sub_title = f"Step {index + 1} of {len(STEP_CLASSES)}: {step.TITLE}"
        self._show_problems([])
        self.query_one("#back", Button).disabled = index == 0
        self.query_one("#next", Button).display = index < len(STEP_CLASSES) - 1
        step.on_enter()
        step.scroll_home(animate=False)
        step.focus_first()

    def action_back(self) -> None:
        if self.index > 0:
            self.workers.cancel_group(self, "advance")
            self._busy("")
            self._go(self.index - 1)

    def action_next(self) -> None:
        if self.index < len(STEP_CLASSES) - 1:
            self._advance()

    def on_step_advance(self, event: Step.Advance) -> None:
        event.stop()
        self.action_next()

    def on_step_list_selected(self, event: StepList.Selected) -> None:
        # Only back, or forward to steps already passed with the current values.
        if event.index <= self.reached and event.index != self.index:
            if event.index < self.index:
                self._go(event.index)
            else:
                self._advance(target=event.index)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "back":
            self.action_back()
        elif event.button.id == "next":
            self.action_next()

    def on_field_row_changed(self, event: FieldRow.Changed) -> None:
        # A changed value may invalidate what later steps saw; they must be passed again.
        step = next((a for a in event.row.ancestors if isinstance(a, Step)), None)
        if step is not None and step.current:
            self._show_problems([])  # stale once the person edits; Next checks again
            index = self.steps.index(step)
            if self.reached > index:
                self.reached = index
                self.query_one(StepList).show(self.index, self.reached)

    @work(exclusive=True, group="advance", exit_on_error=False)
    async def _advance(self, target: int | None = None) -> None:
        """Check the current step (and any passed steps up to `target`), then move on."""
        goal = self.index + 1 if target is None else target
        while self.index < goal:
            step = self.current
            while True:
                before = self.draft.fingerprint()
                problems = await self._check(step)
                # Typing during a slow check changes what was checked: check the new values instead.
                if problems or self.draft.fingerprint() == before:
                    break
            if step is not self.current:
                # Another Next (or Back) moved while this one checked: its result is for a step no longer shown, and
                # moving on from here would pass the shown step unchecked.
                return
            if problems:
                self._show_problems(problems)
                return
            await self._all_mounted.wait()  # a Next pressed in the first moment waits for the step to exist
            self._go(self.index + 1)

    async def _check(self, step: Step) -> list[str]:
        problems = step.quick_problems()
        if problems:
            return problems
        self._busy(f"Checking {step.TITLE.lower()}…")
        try:
            return await step.slow_problems()
        except UserError as err:
            return [err.message]
        except Exception as err:  # a bug in a check must not leave the person stuck without a word
            return [f"unexpected error while checking: {type(err).__name__}: {err}"]
        finally:
            self._busy("")

    def _busy(self, text: str) -> None:
        self.query_one("#busy", Static).update(text)
        self.query_one("#next", Button).disabled = bool(text)

    def _show_problems(self, problems: list[str]) -> None:
        box = self.query_one("#problems", Static)
        box.update("\n".join(f"✗ {p}" for p in problems))
        box.display = bool(problems)

    # --- starting the run ----------------------------------------------------------------------
    def on_review_step_start_requested(self, event: ReviewStep.StartRequested) -> None:
        self._busy("Starting the run…")
        self.query_one("#start", Button).disabled = True
        self._start_run(event.config)

    @work(thread=True, exclusive=True, group="start", exit_on_error=False)
    def _start_run(self, config: Any) -> None:
        base = self.config_path.resolve().parent if self.config_path is not None else None
        try:
            run_path = _start(config, base)
        except UserError as err:
            self.app.call_from_thread(self._start_failed, err.message)
            return
        except Exception as err:  # e.g. cannot spawn the process: report, keep the wizard usable
            self.app.call_from_thread(self._start_failed, f"{type(err).__name__}: {err}")
            return
        self.app.call_from_thread(self._started, run_path)

    def _start_failed(self, message: str) -> None:
        self._busy("")
        self.query_one("#start", Button).disabled = False
        self.query_one(ReviewStep).start_failed(message)

    def _started(self, run_path: Path) -> None:
        self._busy("")
        self.query_one("#start", Button).disabled = False
        self.app.notify(f"Run started in {run_path}", timeout=5)
        open_monitor = getattr(self.app, "open_monitor", None)
        if open_monitor is not None:
            open_monitor(run_path)
