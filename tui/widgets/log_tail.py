"""The last lines of a run's stdout/stderr, plus the monitor's own warnings (e.g. corrupt event lines).

A tail, not a viewer: it shows as many of the newest lines as fit and leaves the full log to the files.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import RenderResult
from textual.widget import Widget

TRACEBACK_MARKERS = ("Traceback", "Error", "error:", "Exception")


class LogTail(Widget):
    DEFAULT_CSS = """
    LogTail {
        height: 8;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.lines: list[str] = []
        self.warnings: list[str] = []

    def set_lines(self, lines: list[str]) -> None:
        if lines != self.lines:
            self.lines = list(lines)
            self.refresh()

    def add_warnings(self, warnings: list[str]) -> None:
        if warnings:
            self.warnings.extend(warnings)
            self.refresh()

    def render(self) -> RenderResult:
        height = max(1, self.content_size.height)
        text = Text(no_wrap=True, overflow="ellipsis")
        # Warnings come first and stay on screen: the user must learn that events were skipped.
        if len(self.warnings) > 2:
            notes = [f"{len(self.warnings)} warnings; newest: {self.warnings[-1]}"]
        else:
            notes = self.warnings
        rows: list[tuple[str, str]] = [(f"⚠ {note}", "bold yellow") for note in notes]
        room = max(0, height - len(rows))
        tail = self.lines[-room:] if room else []
        rows += [(line, "red" if line.startswith(TRACEBACK_MARKERS) else "") for line in tail]
        if not rows:
            rows = [("(the run has not written to its log yet)", "dim")]
        for i, (line, style) in enumerate(rows):
            text.append(line.expandtabs(4), style=style)
            if i < len(rows) - 1:
                text.append("\n")
        return text
