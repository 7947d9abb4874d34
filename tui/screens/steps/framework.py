"""Step 1: what the model learns (the task) and which training framework runs the fine-tuning."""

from __future__ import annotations

from rich.console import Group
from rich.padding import Padding
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, OptionList, Select, Static
from textual.widgets.option_list import Option

from core.engines import DEFAULT_ENGINE, EngineInfo
from core.tasks import DEFAULT_TASK, TASKS
from tui.draft import ENGINES
from tui.screens.steps.base import Step


def _prompt(choice: EngineInfo, missing: list[str]) -> Group:
    """Title, then the when-to-choose line (and any install hint) indented under it, wrapped as a block."""
    title = Text.assemble((choice.title, "bold"), (f"  ({choice.name})", "dim"))
    body = Text(choice.when)
    if missing:
        body.append(f"\nNot installed ({', '.join(missing)}): ", style="bold red")
        body.append(choice.install_hint, style="red")
    return Group(title, Padding(body, (0, 0, 0, 2)))


class FrameworkStep(Step):
    TITLE = "Framework"
    NAME = "framework"

    def compose(self) -> ComposeResult:
        task = self._task_name()
        with Horizontal(classes="field-line", id="task-line"):
            yield Label("Task", classes="field-label")
            yield Select([(info.title, info.name) for info in TASKS.values()], value=task, allow_blank=False,
                         compact=True, id="task-select")
        yield Static(TASKS[task].when, id="task-when", classes="field-help", markup=False)
        yield Static("Which framework should train the model?", classes="step-title")
        yield Static("↑/↓ and Enter to choose. All three write the same run directory and metrics.",
                     classes="step-intro")
        options = []
        for choice in ENGINES:
            missing = choice.missing()
            options.append(Option(_prompt(choice, missing), id=choice.name, disabled=bool(missing)))
        yield OptionList(*options, id="engine-list")

    def on_mount(self) -> None:
        self._highlight(self._engine())

    def focus_first(self) -> None:
        # The framework list, as before tasks existed: most runs keep the default task, which is a Shift+Tab away.
        self.query_one("#engine-list", OptionList).focus()

    def _task_name(self) -> str:
        return str(self.draft.get("task")) if self.draft.loaded and self.draft.get("task") in TASKS else DEFAULT_TASK

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id != "task-select" or event.value == self._task_name() or event.value not in TASKS:
            return
        event.stop()
        self.draft.set_task(str(event.value))
        self.query_one("#task-when", Static).update(TASKS[str(event.value)].when)

    def _engine(self) -> str:
        # A new draft holds the config's defaults; reading it loads the config schema, which the first frame
        # need not wait for (bench/startup.py).
        return str(self.draft.get("engine")) if self.draft.loaded else DEFAULT_ENGINE

    def _highlight(self, engine: str) -> None:
        options = self.query_one("#engine-list", OptionList)
        try:
            index = options.get_option_index(engine)
        except Exception:  # an unknown engine in a loaded config: fall back to the default
            index = 0
        if options.get_option_at_index(index).disabled:
            # The saved engine is not installed here; keep it in the draft so Next explains why.
            options.highlighted = None
            return
        options.highlighted = index

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id is not None and event.option.id != self._engine():
            self.draft.set("engine", event.option.id)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        # Enter on a framework chooses it and moves on, as a person pressing Enter expects.
        if event.option.id is not None:
            self.draft.set("engine", event.option.id)
            self.post_message(self.Advance())

    def quick_problems(self) -> list[str]:
        engine = self.draft.get("engine")
        for choice in ENGINES:
            if choice.name == engine and not choice.available():
                return [f"{choice.title} is not installed here; "
                        f"install it with {choice.install_hint}, or choose another"]
        if engine not in {c.name for c in ENGINES}:
            return [f"unknown framework {engine!r}; choose one of the list"]
        return []
