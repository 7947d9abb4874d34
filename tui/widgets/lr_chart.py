"""The learning-rate range test's curve: the loss against the rate on a log axis, drawn by chart_canvas, with the
suggested rate marked by a vertical line.

chart_canvas labels its x axis with plain numbers; on a log axis those would be exponents (-6, -4), so the two axis
rows it draws are replaced with round rates (1e-6, 1e-4) at the same columns.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from textual.app import ComposeResult
from textual.widget import Widget

from core.lr_range import plot_top, rate_label, rate_ticks
from tui.widgets.chart_canvas import Run, Series, render_chart
from tui.widgets.loss_chart import ChartView

LOSS_COLOR, TREND_COLOR, SUGGESTED_COLOR = "gray", "cyan", "green"


def lr_chart_rows(width: int, height: int, lrs: list[float], losses: list[float], trend: list[float],
                  suggested: float | None) -> list[list[Run]]:
    """The chart as rows of (text, color) runs, `width` cells wide."""
    if len(lrs) < 2 or width < 16 or height < 5:
        return [[(" " * max(0, width), None)] for _ in range(max(0, height))]
    xs = np.log10(np.asarray(lrs, dtype=float))
    top = plot_top(trend)  # a diverged loss is drawn at the top edge, not given the whole height
    ys = np.minimum(np.asarray(losses, dtype=float), top)
    smooth = np.minimum(np.asarray(trend, dtype=float), top)
    series = [Series(xs, ys, color=LOSS_COLOR), Series(xs, smooth, color=TREND_COLOR)]
    if suggested is not None:
        low, high = float(min(ys.min(), smooth.min())), float(max(ys.max(), smooth.max()))
        x = math.log10(suggested)
        series.append(Series(np.array([x, x]), np.array([low, high]), color=SUGGESTED_COLOR))
    rows = render_chart(width, height, series)
    return rows[:-2] + _rate_axis(rows[-2], float(xs[0]), float(xs[-1]))


def _rate_axis(axis_row: list[Run], lo: float, hi: float) -> list[list[Run]]:
    """The axis line and its labels again, with marks at round rates (render_chart spans exactly lo..hi)."""
    line = "".join(text for text, _ in axis_row)
    corner = line.index("└")
    columns = len(line) - corner - 1
    marks, labels = ["─"] * columns, [" "] * columns
    taken = -1
    for tick in rate_ticks(10 ** lo, 10 ** hi, max(2, columns // 8)):
        column = int(np.clip(np.rint((math.log10(tick) - lo) / (hi - lo) * (columns - 1)), 0, columns - 1))
        marks[column] = "┬"
        text = rate_label(tick)
        start = min(max(column - len(text) // 2, 0), columns - len(text))
        if start >= 0 and (taken < 0 or start > taken + 1):
            labels[start:start + len(text)] = text
            taken = start + len(text) - 1
    return [[(line[:corner + 1] + "".join(marks), None)], [(" " * (corner + 1) + "".join(labels), None)]]


class LrChart(Widget):
    """The loss of each step (gray), its trend (cyan) and the suggested rate (green line) against the rate."""

    DEFAULT_CSS = """
    LrChart {
        height: 11;
        border: round $primary 40%;
    }
    LrChart > ChartView {
        height: 1fr;
        color: $text-muted;
    }
    """

    def __init__(self, result: dict[str, Any], *, id: str | None = None) -> None:
        super().__init__(id=id)
        points = result.get("points") or []
        self.lrs = [float(p["lr"]) for p in points]
        self.losses = [float(p["loss"]) for p in points]
        self.trend = [float(v) for v in result.get("trend") or []]
        self.suggested: float | None = result.get("suggested_lr")

    def compose(self) -> ComposeResult:
        yield ChartView()

    def on_mount(self) -> None:
        legend = f"[{TREND_COLOR}]━ loss (smoothed)[/] [{LOSS_COLOR}]━ each step[/]"
        if self.suggested is not None:
            legend += f" [{SUGGESTED_COLOR}]│ {rate_label(self.suggested)}[/]"
        self.border_title = legend

    def on_resize(self) -> None:
        view = self.query_one(ChartView)
        size = (self.content_size.width, self.content_size.height)  # the view fills the content area
        if size[0] and size[1] and view.drawn_size != size:
            view.show(lr_chart_rows(*size, self.lrs, self.losses, self.trend, self.suggested), size)
