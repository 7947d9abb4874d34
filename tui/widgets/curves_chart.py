"""One curve of each of several runs, overlaid in one chart with a colour per run and a legend naming each run.

The drawing is the monitor's: chart_canvas rasterizes, ChartView shows its rows, downsample_minmax keeps about two
points per column. Only what differs lives here: any number of series, one per run, and their legend.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.color import Color
from textual.widget import Widget
from textual.widgets import Static

from tui.widgets.chart_canvas import Series, render_chart
from tui.widgets.loss_chart import MIN_PLOT_SIZE, ChartView, downsample_minmax, show_message

SPARSE_COLUMNS = 4  # a curve with at most a point per this many columns gets markers
# Bright enough to tell apart on the dark themes; the monitor's cyan and orange come first.
PALETTE = ("cyan", "orange", "lime", "magenta", "gold", "dodgerblue", "red", "violet")


def run_color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def text_color(color: str) -> str:
    """A Textual colour name (CSS names such as orange) as a style Rich's Text understands."""
    return Color.parse(color).hex


@dataclass(frozen=True)
class RunCurve:
    label: str
    steps: list[float]
    values: list[float]
    color: str


class CurvesChart(Widget):
    """The same curve of several runs against the step; `show` replaces what is drawn."""

    DEFAULT_CSS = """
    CurvesChart {
        height: 1fr;
        min-height: 6;
    }
    CurvesChart > ChartView {
        height: 1fr;
        color: $text-muted;
    }
    CurvesChart > .chart-legend {
        height: auto;
        max-height: 3;
    }
    CurvesChart > .chart-message {
        height: 1fr;
        width: 1fr;
        content-align: center middle;
        text-align: center;
        color: $text-muted;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.curve = ""
        self.curves: list[RunCurve] = []
        self.drawn: list[str] = []  # the labels of the runs whose curve is in the plot (tests read it)
        self.message: str | None = None

    def compose(self) -> ComposeResult:
        yield ChartView()
        yield Static(classes="chart-message")
        yield Static(classes="chart-legend")

    def on_mount(self) -> None:
        self._show_message("")

    def show(self, curve: str, curves: list[RunCurve]) -> None:
        self.curve = curve
        self.curves = curves
        self.border_title = curve
        legend = Text()
        for run in curves:
            finite = np.isfinite(np.asarray(run.values, dtype=float)).any() if run.values else False
            if legend:
                legend.append("  ")
            legend.append(f"━ {run.label}", style=text_color(run.color) if finite else "dim")
            if not finite:
                legend.append(" (none)", style="dim")
        self.query_one(".chart-legend", Static).update(legend)
        self._redraw()

    def on_resize(self) -> None:
        self.call_after_refresh(self._redraw)  # after the layout, when the plot has its new size

    def _show_message(self, text: str | None) -> None:
        show_message(self, text)

    def _plot_size(self) -> tuple[int, int]:
        # What is left beside the legend, whether the plot or a message shows now: a plot hidden behind a message
        # has no size of its own, and one sized while sharing the room with the message would be too small.
        legend = self.query_one(".chart-legend", Static)
        return self.content_size.width, max(0, self.content_size.height - (legend.outer_size.height or 1))

    def _redraw(self) -> None:
        plot = self.query_one(ChartView)
        size = self._plot_size()
        if not size[0]:
            return  # not laid out yet: on_resize draws
        series: list[Series] = []
        self.drawn = []
        for run in self.curves:
            xs, ys = downsample_minmax(run.steps, run.values, 2 * max(size[0], 1))
            if len(xs) > 1:
                series.append(Series(xs, ys, color=run.color))
            if 0 < len(xs) <= size[0] // SPARSE_COLUMNS:
                # Few points (evaluations, a short run's losses): a marker shows where each one is, and a lone
                # one is not a dot nobody sees.
                series.append(Series(xs, ys, color=run.color, kind="points"))
            if len(xs):
                self.drawn.append(run.label)
        if not series:
            self._show_message(f"None of these runs logged {self.curve}." if self.curves else "")
            return
        if size[0] < MIN_PLOT_SIZE[0] or size[1] < MIN_PLOT_SIZE[1]:
            self._show_message("Enlarge the terminal to see the chart.")
            return
        self._show_message(None)
        plot.show(render_chart(*size, series, x_label="step"), size)
        self.call_after_refresh(self._fit)

    def _fit(self) -> None:
        # The legend may have wrapped onto another line since: draw again for the plot's own size.
        plot = self.query_one(ChartView)
        if plot.display and plot.size.width and plot.drawn_size != (plot.size.width, plot.size.height):
            self._redraw()
