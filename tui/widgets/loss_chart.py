"""The loss chart: our own widget around textual-plotext, so the chart library can change in one place.

Every point ever logged stays in memory (arrays of floats: 100,000 steps is under 2 MB), but a redraw only
plots about two points per terminal column, keeping each bucket's minimum and maximum so spikes survive.
Redraws are throttled: new data only marks the chart dirty and a timer draws at most a few times a second.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Iterable, Sequence

import numpy as np
from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import Static
from textual_plotext import PlotextPlot

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


def line_marker(ys: np.ndarray, rows: int, columns: int) -> str:
    """Braille (2x4 dots a cell) for a thin line; half blocks for a noisy band. A band's braille cells are filled
    solid anyway, and plotext spends three times as long on them: 140 ms a frame at 240x70 instead of 45."""
    if len(ys) < 2:
        return "braille"
    span = float(ys.max() - ys.min())
    if span <= 0:
        return "braille"
    travel = float(np.abs(np.diff(ys)).sum()) / span * rows  # rows the line crosses, over all its segments
    return "hd" if travel > 2 * columns else "braille"


def _ticks(lo: float, hi: float, count: int) -> list[float]:
    """Whole-number step ticks: plotext's defaults are fractional steps like 50.8."""
    if hi - lo < 1:
        return [lo]
    raw = np.linspace(lo, hi, count)
    return sorted({float(round(v)) for v in raw})


class LossChart(Widget):
    """Training loss per logged step, evaluation loss and the primary metric (right axis) per evaluation."""

    DEFAULT_CSS = """
    LossChart {
        height: 1fr;
        min-height: 6;
    }
    LossChart > PlotextPlot {
        height: 1fr;
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
        yield PlotextPlot()
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
        # In the border, not in the plot: plotext's legend sits on top of the first points of the curve.
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
        if self._dirty:
            self._redraw()

    def _show_message(self, text: str | None) -> None:
        self.message = text
        self.query_one(PlotextPlot).display = text is None
        message = self.query_one(".chart-message", Static)
        message.display = text is not None
        message.update(text or "")

    def _redraw(self) -> None:
        self._dirty = False
        self.redraws += 1
        plot = self.query_one(PlotextPlot)
        width = plot.size.width or self.size.width or 80
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
            # plotext draws broken axes when squeezed; say so rather than show them.
            self._show_message("Enlarge the terminal to see the loss chart.")
            return
        try:
            self._plot(plot, (train_x, train_y), (eval_x, eval_y), (metric_x, metric_y))
        except Exception as err:  # a chart library hiccup must never take the monitor down
            self._show_message(f"Chart unavailable: {err}")
            return
        self._show_message(None)
        plot.refresh()

    def _plot(
        self,
        plot: PlotextPlot,
        train: tuple[np.ndarray, np.ndarray],
        evals: tuple[np.ndarray, np.ndarray],
        metric: tuple[np.ndarray, np.ndarray],
    ) -> None:
        plt = plot.plt
        plt.clear_figure()
        if len(train[0]):
            marker = line_marker(train[1], plot.size.height or 24, plot.size.width or 80)
            plt.plot(train[0].tolist(), train[1].tolist(), marker=marker, color=TRAIN_COLOR)
        if len(evals[0]):
            plt.scatter(evals[0].tolist(), evals[1].tolist(), marker="dot", color=EVAL_COLOR)
        if len(metric[0]):
            # A one-point braille line is a single dot nobody sees: the first evaluation gets a marker.
            marker = "braille" if len(metric[0]) > 1 else "+"
            plt.plot(metric[0].tolist(), metric[1].tolist(), marker=marker, color=METRIC_COLOR, yside="right")
            if float(metric[1].min()) >= 0.0 and float(metric[1].max()) <= 1.0:
                plt.ylim(0.0, 1.0, yside="right")
        all_x = np.concatenate([train[0], evals[0], metric[0]])
        lo, hi = float(all_x.min()), float(all_x.max())
        ticks = _ticks(lo, hi, 5)
        plt.xticks(ticks, [f"{t:g}" for t in ticks])
        plt.xlabel("step")
