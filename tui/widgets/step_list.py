"""The wizard's list of steps: where you are, what is done, and (by click) a way back to a done step."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.events import Click
from textual.message import Message
from textual.widgets import Label


class StepItem(Label):
    def __init__(self, index: int, title: str) -> None:
        super().__init__(id=f"step-item-{index}", classes="step-item")
        self.index = index
        self.title = title

    def show(self, marker: str) -> None:
        self.update(f"{marker} {self.index + 1}. {self.title}")

    def on_click(self, event: Click) -> None:
        event.stop()
        self.post_message(StepList.Selected(self.index))


class StepList(Vertical):
    """Markers: ▶ current, ✓ passed, · not reached yet (locked until the steps before it pass)."""

    class Selected(Message):
        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    def __init__(self, titles: list[str], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.titles = titles
        self.current = 0
        self.reached = 0

    def compose(self) -> ComposeResult:
        for index, title in enumerate(self.titles):
            yield StepItem(index, title)

    def on_mount(self) -> None:
        self.show(self.current, self.reached)

    def show(self, current: int, reached: int) -> None:
        self.current, self.reached = current, reached
        for item in self.query(StepItem):
            i = item.index
            marker = "▶" if i == current else ("✓" if i < reached else "·")
            item.show(marker)
            item.set_class(i == current, "-current")
            item.set_class(i < reached and i != current, "-done")
            item.set_class(i > reached, "-locked")
