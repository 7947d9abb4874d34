"""The loss chart: training loss, evaluation loss and the primary metric, drawn by chart_canvas.

Every point ever logged stays in memory (arrays of floats: 100,000 steps is under 2 MB), but a redraw only
plots about two points per terminal column, keeping each bucket's minimum and maximum so spikes survive.
Redraws are throttled: new data only marks the chart dirty and a timer draws at most a few times a second.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Iterable, Sequence

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.app import ComposeResult
from textual.color import Color
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Static

from tui.widgets.chart_canvas import Series, render_chart

REDRAW_INTERVAL_S = 0.5
MIN_PLOT_SIZE = (24, 6)  # columns, rows
TRAIN_COLOR, EVAL_COLOR, METRIC_COLOR = "cyan", "orange", "green"


def downsample_minmax(
    xs: Sequence[float] | np.ndarray, ys: Sequence[float] | np.ndarray, max_points: int
) -> tuple[np.ndarray, np.ndarray]:
    """At most max_points of (xs, ys), in order, keeping each bucket's min and max; non-finite points dropped."""
    x = np.asarray(xs, dtype=float)
    y = np.asarray(ys, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    if not keep.all():
        x, y = x[keep], y[keep]
    n = len(x)
    if n <= max_points:
        return x, y
    buckets = max(1, max_points // 2)
    edges = np.linspace(0, n, buckets + 1).astype(int)
    picked: list[int] = []
    for lo, hi in itertools.pairwise(edges):
        if hi <= lo:
            continue
        segment = y[lo:hi]
        low, high = lo + int(segment.argmin()), lo + int(segment.argmax())
        picked.extend((low, high) if low < high else (high, low) if high < low else (low,))
    index = np.asarray(picked, dtype=int)
    return x[index], y[index]


def show_message(chart: Widget, text: str | None) -> None:
    """A chart widget's plot, or in its place a message (e.g. "waiting for the first step"); None shows the plot."""
    chart.message = text  # type: ignore[attr-defined]
    chart.query_one(ChartView).display = text is None
    message = chart.query_one(".chart-message", Static)
    message.display = text is not None
    message.update(text or "")


class ChartView(Widget):
    """Shows the rows chart_canvas drew, through Textual's line API (one Strip a row, nothing re-parsed)."""

    def __init__(self) -> None:
        super().__init__()
        self._strips: list[Strip] = []
        self.drawn_size: tuple[int, int] = (0, 0)  # the size the rows were drawn for

    def show(self, rows: list[list[tuple[str, str | None]]], size: tuple[int, int]) -> None:
        self.drawn_size = size
        styles: dict[str | None, Style | None] = {None: None}  # axes take the widget's own color
        strips = []
        for runs in rows:
            segments = []
            for text, color in runs:
                if color not in styles:  # Textual's color names (CSS ones like orange), not only Rich's
                    styles[color] = Style(color=Color.parse(color).rich_color)
                segments.append(Segment(text, styles[color]))
            strips.append(Strip(segments))
        self._strips = strips
        self.refresh()

    def render_line(self, y: int) -> Strip:
        style = self.rich_style
        if y < len(self._strips):  # drawn for another width until the next redraw: cut or pad to this one
            return self._strips[y].crop_extend(0, self.size.width, style).apply_style(style)
        return Strip.blank(self.size.width, style)


class LossChart(Widget):
    """Training loss per logged step, evaluation loss and the primary metric (right axis) per evaluation."""

    DEFAULT_CSS = """
    LossChart {
        height: 1fr;
        min-height: 6;
    }
    LossChart > ChartView {
        height: 1fr;
        color: $text-muted;
    }
    LossChart > .chart-message {
        height: 1fr;
        width: 1fr;
        content-align: center middle;
        text-align: center;
        color: $text-muted;
    }
    """

    def __init__(
        self, metric: str = "accuracy", *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.metric = metric
        self._train_x = array("d")
        self._train_y = array("d")
        self._eval_x = array("d")
        self._eval_y = array("d")
        self._metric_x = array("d")
        self._metric_y = array("d")
        self._dirty = True
        self.redraws = 0  # how many times the plot was rebuilt (tests and throttling checks read it)
        self.drawn_points = 0  # train points in the last redraw, after downsampling
        self.message: str | None = None  # what the chart shows instead of a plot, if anything
        self.non_finite = 0  # logged losses that were NaN or inf

    def compose(self) -> ComposeResult:
        yield ChartView()
        yield Static(classes="chart-message")

    def on_mount(self) -> None:
        self._show_legend()
        self.set_interval(REDRAW_INTERVAL_S, self._redraw_if_dirty)
        self._redraw()

    def on_resize(self) -> None:
        self._dirty = True

    # --- data ------------------------------------------------------------------------------------
    @property
    def train_points(self) -> int:
        return len(self._train_x)

    @property
    def eval_points(self) -> int:
        return len(self._eval_x)

    @property
    def metric_points(self) -> int:
        return len(self._metric_x)

    def set_metric(self, metric: str) -> None:
        if metric != self.metric:
            self.metric = metric
            self._dirty = True
            self._show_legend()

    def _show_legend(self) -> None:
        # In the border, not in the plot, where a legend would sit on top of the first points of the curve.
        self.border_title = (
            f"Loss  [{TRAIN_COLOR}]━ train[/] [{EVAL_COLOR}]• eval[/] [{METRIC_COLOR}]━ {self.metric} (R)[/]"
        )

    def add_train(self, steps: Iterable[float], losses: Iterable[float]) -> None:
        before = len(self._train_y)
        self._train_x.extend(steps)
        self._train_y.extend(losses)
        added = np.array(self._train_y[before:])
        self.non_finite += int(np.count_nonzero(~np.isfinite(added)))
        self._dirty = True

    def add_eval(self, step: float, loss: float | None, metric_value: float | None) -> None:
        if loss is not None:
            self._eval_x.append(step)
            self._eval_y.append(loss)
        if metric_value is not None:
            self._metric_x.append(step)
            self._metric_y.append(metric_value)
        self._dirty = True

    # --- drawing ---------------------------------------------------------------------------------
    def _redraw_if_dirty(self) -> None:
        # The plot's own size also changes when the message beside it hides or shows, not only the chart's.
        plot = self.query_one(ChartView)
        size = (plot.size.width, plot.size.height)
        if self._dirty or (plot.display and size[0] > 0 and plot.drawn_size != size):  # 0: hidden by the layout
            self._redraw()

    def _show_message(self, text: str | None) -> None:
        show_message(self, text)

    def _redraw(self) -> None:
        self._dirty = False
        self.redraws += 1
        plot = self.query_one(ChartView)
        # Before the first layout (or while a message hides the plot) its size is 0: draw for the chart's size.
        size = (plot.size.width or self.size.width or 80, plot.size.height or self.size.height or 24)
        width = size[0]
        # np.array copies: a view would pin the array.array buffers and make the next extend() fail.
        train_x, train_y = downsample_minmax(np.array(self._train_x), np.array(self._train_y), 2 * width)
        eval_x, eval_y = downsample_minmax(self._eval_x, self._eval_y, 2 * width)
        metric_x, metric_y = downsample_minmax(self._metric_x, self._metric_y, 2 * width)
        self.drawn_points = len(train_x)
        plural = "es" if self.non_finite > 1 else ""
        self.border_subtitle = f"{self.non_finite} NaN/inf loss{plural} not drawn" if self.non_finite else ""
        if not (len(train_x) or len(eval_x) or len(metric_x)):
            if self.train_points:
                self._show_message(f"No finite loss yet: all {self.train_points} logged losses are NaN or inf.")
            else:
                self._show_message("Waiting for the first logged training step…")
            return
        if plot.size.width and (plot.size.width < MIN_PLOT_SIZE[0] or plot.size.height < MIN_PLOT_SIZE[1]):
            # A squeezed chart has no room for its axes; say so rather than show a smudge.
            self._show_message("Enlarge the terminal to see the loss chart.")
            return
        try:
            self._plot(plot, size, (train_x, train_y), (eval_x, eval_y), (metric_x, metric_y))
        except Exception as err:  # a drawing bug must never take the monitor down
            self._show_message(f"Chart unavailable: {err}")
            return
        self._show_message(None)
        plot.refresh()

    def _plot(
        self,
        plot: ChartView,
        size: tuple[int, int],
        train: tuple[np.ndarray, np.ndarray],
        evals: tuple[np.ndarray, np.ndarray],
        metric: tuple[np.ndarray, np.ndarray],
    ) -> None:
        series = [Series(*train, color=TRAIN_COLOR), Series(*evals, color=EVAL_COLOR, kind="points")]
        right_range = None
        if len(metric[0]):
            # A one-point line is a single dot nobody sees: the first evaluation gets a marker.
            kind = "line" if len(metric[0]) > 1 else "points"
            series.append(Series(*metric, color=METRIC_COLOR, kind=kind, axis="right"))
            if float(metric[1].min()) >= 0.0 and float(metric[1].max()) <= 1.0:
                right_range = (0.0, 1.0)
        plot.show(render_chart(*size, series, x_label="step", right_range=right_range), size)
