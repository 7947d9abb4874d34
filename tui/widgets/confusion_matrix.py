"""A task's results grid in the terminal (core.tasks.base.Grid): true down, predicted across (classes for the
confusion matrix, ranges of scores for text-regression), counts coloured by share of the row (green on the diagonal,
red off it), so the worst confusions stand out whatever the class sizes."""

from __future__ import annotations

from typing import Any

from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

MAX_CLASSES = 15  # beyond this the table is wider than a terminal; the PNG report has them all
LABEL_WIDTH = 10


def _short(name: str, width: int = LABEL_WIDTH) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def _cell_style(share: float, diagonal: bool) -> Style:
    """Background from the terminal's own background (share 0) to full green/red (share 1)."""
    if share <= 0:
        return Style(dim=True)
    strength = 0.25 + 0.75 * share
    base = (46, 160, 67) if diagonal else (200, 55, 45)
    r, g, b = (round(c * strength) for c in base)
    return Style(bgcolor=f"rgb({r},{g},{b})", color="white" if strength > 0.45 else "bright_white", bold=diagonal)


def render_confusion(labels: list[str], matrix: list[list[int]], max_classes: int = MAX_CLASSES,
                     col_labels: list[str] | None = None) -> Table:
    col_labels = labels if col_labels is None else col_labels
    shown = min(len(labels), max_classes)
    table = Table(box=None, padding=(0, 1), show_edge=False, pad_edge=False, collapse_padding=True,
                  title_justify="left", caption_justify="left")
    table.add_column(Text("true ╲ pred", style="dim"), no_wrap=True)
    for name in col_labels[:shown]:
        table.add_column(_short(name), justify="right", no_wrap=True)
    table.add_column(Text("n", style="dim"), justify="right", no_wrap=True)
    for i in range(shown):
        row = matrix[i]
        total = sum(row)
        cells = [Text(str(n), style=_cell_style(n / total if total else 0.0, i == j))
                 for j, n in enumerate(row[:shown])]
        table.add_row(Text(_short(labels[i]), style="bold"), *cells, Text(str(total), style="dim"))
    if shown < len(labels):
        table.caption = f"first {shown} of {len(labels)} rows; report.png shows all"
    return table


class ConfusionMatrix(Static):
    DEFAULT_CSS = """
    ConfusionMatrix {
        height: auto;
    }
    """

    def __init__(self, labels: list[str] | None = None, matrix: list[list[int]] | None = None, *,
                 name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__("", name=name, id=id, classes=classes)
        self.labels: list[str] = list(labels or [])
        self.col_labels: list[str] = list(self.labels)
        self.matrix: list[list[int]] = [list(r) for r in (matrix or [])]

    def on_mount(self) -> None:
        self._redraw()

    def set_matrix(self, labels: list[str], matrix: list[list[int]], col_labels: list[str] | None = None) -> None:
        self.labels, self.matrix = list(labels), [list(r) for r in matrix]
        self.col_labels = list(labels if col_labels is None else col_labels)
        self._redraw()

    def set_grid(self, grid: Any) -> None:
        """Show a core.tasks.base.Grid: its cells, and its title and subtitle on the border."""
        self.set_matrix(grid.row_labels, grid.cells, grid.col_labels)
        self.border_title = grid.title
        self.border_subtitle = grid.subtitle

    def _redraw(self) -> None:
        if not self.labels:
            self.update(Text("no evaluation yet", style="dim"))
        else:
            self.update(render_confusion(self.labels, self.matrix, col_labels=self.col_labels))
