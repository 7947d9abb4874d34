"""The wizard's list of steps: where you are, what is done, and (by click) a way back to a done step."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.events import Click
from textual.message import Message
from textual.widgets import Label


def _look(index: int, current: int, reached: int) -> tuple[str, dict[str, bool]]:
    """An item's marker and its state classes."""
    marker = "▶" if index == current else ("✓" if index < reached else "·")
    return marker, {"-current": index == current, "-done": index < reached and index != current,
                    "-locked": index > reached}


class StepItem(Label):
    def __init__(self, index: int, title: str, current: int, reached: int) -> None:
        # Born in its state: each class changed after mounting restyles the item, and the first frame is
        # timed (bench/startup.py).
        marker, classes = _look(index, current, reached)
        super().__init__(self._text(marker, index, title), id=f"step-item-{index}",
                         classes=" ".join(["step-item", *(name for name, on in classes.items() if on)]))
        self.index = index
        self.title = title

    @staticmethod
    def _text(marker: str, index: int, title: str) -> str:
        return f"{marker} {index + 1}. {title}"

    def show(self, current: int, reached: int) -> None:
        marker, classes = _look(self.index, current, reached)
        self.update(self._text(marker, self.index, self.title))
        for name, on in classes.items():
            self.set_class(on, name)

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
            yield StepItem(index, title, self.current, self.reached)

    def show(self, current: int, reached: int) -> None:
        if (current, reached) == (self.current, self.reached):
            return
        self.current, self.reached = current, reached
        for item in self.query(StepItem):
            item.show(current, reached)
