"""What every wizard step has: the shared draft, what earlier steps found out, and its checks.

A step is a widget inside the wizard's ContentSwitcher. It edits the draft as the person types (so Back
and Next never lose a value), says what is wrong at once (`quick_problems`), and may run slow checks in
a thread (`slow_problems`, awaited by the wizard before it moves on; the UI keeps running meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Static

from tui.draft import Draft
from tui.widgets.field_row import FieldRow

T = TypeVar("T")
_HEAVY = threading.Lock()


def heavy(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ML work (imports, loading, tokenizing) one call at a time, from any worker thread.

    transformers' lazy imports are not thread-safe (two threads importing it at once fail with
    "cannot import name AutoConfig"), and two loads at once would only fight over the same cores.
    """
    with _HEAVY:
        return fn(*args, **kwargs)


async def in_background(fn: Callable[..., T], *args: Any) -> T:
    """Await fn(*args) run in a daemon thread.

    Not asyncio.to_thread or a Textual thread worker: both use the loop's default executor, whose threads
    asyncio.run and the interpreter join on exit, so quitting waited for a check in flight (3.5 s on the model
    step, for a first transformers import). A daemon thread is left behind when the app quits; a cancelled await
    simply drops its result.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(result: Any, error: BaseException | None) -> None:
        if future.done():  # the awaiting task was cancelled
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def run() -> None:
        result: Any = None
        error: BaseException | None = None
        try:
            result = fn(*args)
        except BaseException as err:  # handed to the awaiting task, which decides
            error = err
        with contextlib.suppress(RuntimeError):  # the loop has closed: the app has quit
            loop.call_soon_threadsafe(deliver, result, error)

    threading.Thread(target=run, name=f"background-{getattr(fn, '__name__', 'call')}", daemon=True).start()
    return await future


@dataclass
class Findings:
    """What the slow checks learned, kept so later steps need not repeat them (all optional)."""

    model_results: dict[str, Any] = field(default_factory=dict)  # model key -> ModelInfo | ModelError
    model_info: Any = None  # ModelInfo of the model that passed step 2
    raw_dataset: Any = None  # DatasetDict from core.data.load_raw
    raw_key: str | None = None
    dataset_info: Any = None  # DatasetInfo
    dataset_task: str | None = None  # the task dataset_info's label overview was made for
    prepared: Any = None  # PreparedData that passed step 3
    prepared_key: str | None = None
    length_stats: Any = None  # LengthStats for (model, prepared data)
    stats_key: str | None = None
    example_tokens: list[str] | None = None
    length_facts: Any = None  # the task's own facts about the sample's token lengths (Task.length_facts)
    precisions: list[str] | None = None


class Step(VerticalScroll):
    TITLE: ClassVar[str] = ""
    NAME: ClassVar[str] = ""

    class Advance(Message):
        """The step asks the wizard to go on, as if Next were pressed (checks included)."""

    def __init__(self, draft: Draft, findings: Findings) -> None:
        super().__init__(id=f"step-{self.NAME}", classes="step")
        self.draft = draft
        self.findings = findings
        self.current = False  # set by the wizard; steps start background work only while current

    def on_enter(self) -> None:
        """The step has just become the visible one."""

    def hide_unused(self, paths: frozenset[str] = frozenset()) -> None:
        """Hide this step's generic fields that the draft's task has no use for (Task.unused_settings, which the
        task fixes: text-generation's padding and truncation), besides `paths`."""
        from core.tasks import DEFAULT_TASK, get_task

        unused = set(get_task(self.draft.get("task") or DEFAULT_TASK).unused_settings) | paths
        for row in self.query(FieldRow):
            if row.path in unused:
                row.add_class("-inactive")
            elif row.has_class("-unused"):
                row.remove_class("-inactive")
            row.set_class(row.path in unused, "-unused")

    def field_problems(self) -> list[str]:
        out = []
        for row in self.query(FieldRow):
            if row.disabled or not _active(row):
                continue
            problem = row.validate_now()
            if problem:
                out.append(f"{row.label}: {problem}")
        return out

    def section_problems(self, *sections: str) -> list[str]:
        out: list[str] = []
        rows = {row.path: row for row in self.query(FieldRow)}
        for section in sections:
            for where, message in self.draft.section_problems(section):
                row = rows.get(where)
                if row is not None and row.problem is None:
                    row.show_problem(message)
                out.append(f"{where}: {message}")
        return out

    def quick_problems(self) -> list[str]:
        return self.field_problems()

    async def slow_problems(self) -> list[str]:
        return []

    def focus_first(self) -> None:
        """Focus the first text field (typing is what comes next), else the first control."""
        for selector in ("Input", "OptionList, Select, Checkbox, RadioSet, Button"):
            for widget in self.query(selector):
                if widget.focusable and _active(widget) and widget.display:
                    widget.focus()
                    return


def say(box: Static, text: str, kind: str = "") -> None:
    """Show a message line (styled by kind: -error, -ok, -warning); an empty one takes no room."""
    box.update(text)
    box.set_classes(kind)
    box.display = bool(text)


def _active(widget: Any) -> bool:
    """Not inside a group the step switched off (class -inactive, e.g. the Hub fields while a file is used).

    A collapsed Collapsible still counts: a bad value hidden under Advanced must still block Next.
    """
    node = widget
    while node is not None and not isinstance(node, Step):
        if node.has_class("-inactive"):
            return False
        node = node.parent
    return True
