"""A line chart rasterized with numpy into braille cells (2x4 dots each), with a left and a right y axis.

Why our own and not plotext (through textual-plotext), which the loss chart used first: plotext rasterizes in
pure Python, cell by cell. A noisy loss that covers a 240x70 terminal cost it 180-400 ms a frame, which froze
the monitor at every redraw; here the same frame is a few milliseconds of array work (bench/long_runs.py).
Nothing in this module knows about Textual: it returns rows of (text, color) runs.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

# Braille dot bits by (row within the cell, column within the cell), Unicode's numbering.
_DOT_BITS = np.array([[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]], dtype=np.uint8)
_BRAILLE_BLANK = 0x2800
POINT_CHAR = "•"

Run = tuple[str, str | None]  # text and its color (None: the axis color)


@dataclass(frozen=True)
class Series:
    xs: np.ndarray
    ys: np.ndarray
    color: str
    kind: Literal["line", "points"] = "line"
    axis: Literal["left", "right"] = "left"


def nice_ticks(lo: float, hi: float, count: int) -> list[float]:
    """About `count` round values (steps of 1, 2 or 5 times a power of ten) between lo and hi, inclusive;
    at least two where the range allows."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo or count < 2:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / (count - 1)
    power = 10 ** math.floor(math.log10(raw))
    steps = sorted((m * power for m in (0.5, 1, 2, 5, 10)), key=lambda step: abs(math.log(step / raw)))
    ticks: list[float] = []
    for step in steps:
        first = math.ceil(lo / step - 1e-9) * step
        ticks = [round(first + i * step, 12) for i in range(int((hi - first) / step + 1e-9) + 1)]
        if len(ticks) >= 2:
            break
    return ticks


def tick_label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or abs(value) < 1e-3:
        return f"{value:.2g}"
    return f"{value:.4g}"


def count_label(value: float) -> str:
    """A step count for the x axis: 500, 20k, 1.5M."""
    for size, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.4g}{suffix}"
    return f"{value:.4g}"


def _span(values: list[np.ndarray], fixed: tuple[float, float] | None) -> tuple[float, float]:
    if fixed is not None:
        return fixed
    lo = min(float(v.min()) for v in values)
    hi = max(float(v.max()) for v in values)
    if hi == lo:  # a flat series: give it room above and below
        pad = abs(lo) * 0.1 or 0.5
        return lo - pad, hi + pad
    return lo, hi


@dataclass(frozen=True)
class _YAxis:
    lo: float
    hi: float
    labels: dict[int, str]  # plot row -> tick label (the first tick of a row wins)
    width: int  # of the widest tick label


def _y_axis(series: list[Series], fixed: tuple[float, float] | None, count: int, rows: int) -> _YAxis:
    """The range, tick labels and label width of one y axis; an axis with no series has no labels."""
    if not series:
        return _YAxis(0.0, 1.0, {}, 0)
    lo, hi = _span([s.ys for s in series], fixed)
    ticks = nice_ticks(lo, hi, count)
    texts = [tick_label(v) for v in ticks]
    labels: dict[int, str] = {}
    for row, text in zip(_scale(np.asarray(ticks, dtype=float), lo, hi, rows, flip=True).tolist(), texts,
                         strict=True):
        labels.setdefault(int(row), text)
    return _YAxis(lo, hi, labels, max((len(t) for t in texts), default=0))


def _blank(width: int, height: int) -> list[list[Run]]:
    return [[(" " * width, None)] for _ in range(height)]


def _scale(values: np.ndarray, lo: float, hi: float, size: int, *, flip: bool) -> np.ndarray:
    """Data values to dot indices 0..size-1 (flip: the highest value at index 0, the top row)."""
    position = (values - lo) / (hi - lo) * (size - 1)
    index = np.clip(np.rint(position), 0, size - 1).astype(np.int64)
    return (size - 1 - index) if flip else index


def _segments(px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every dot on the straight segments joining consecutive points, in one vectorized pass."""
    if len(px) < 2:
        return px, py
    dx, dy = np.diff(px), np.diff(py)
    lengths = np.maximum(np.abs(dx), np.abs(dy)) + 1
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    segment = np.repeat(np.arange(len(lengths)), lengths)
    t = (np.arange(int(lengths.sum())) - starts[segment]) / np.maximum(lengths[segment] - 1, 1)
    xs = np.rint(px[:-1][segment] + t * dx[segment]).astype(np.int64)
    ys = np.rint(py[:-1][segment] + t * dy[segment]).astype(np.int64)
    return xs, ys


def render_chart(
    width: int,
    height: int,
    series: list[Series],
    *,
    x_label: str = "",
    right_range: tuple[float, float] | None = None,
) -> list[list[Run]]:
    """The chart as `height` rows of runs, each row exactly `width` cells wide.

    Left-axis series share one y range (their data's), right-axis series another (`right_range` or their data's);
    the x range covers every series. Later lines draw over earlier ones where they share a cell, and points
    over every line.
    """
    series = [s for s in series if len(s.xs)]
    if not series or width < 8 or height < 4:
        return _blank(width, height)
    rows = height - 2  # the x axis line and its labels below the plot
    count = max(2, min(6, rows // 4 + 1))
    left = _y_axis([s for s in series if s.axis == "left"], None, count, rows)
    right_series = [s for s in series if s.axis == "right"]
    right = _y_axis(right_series, right_range, count, rows)
    left_width = left.width + 1  # labels, then the axis line
    right_width = right.width + 1 if right_series else 0
    columns = width - left_width - right_width
    if columns < 4:
        return _blank(width, height)

    x_lo = min(float(s.xs.min()) for s in series)
    x_hi = max(float(s.xs.max()) for s in series)
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1

    dots = np.zeros((rows, columns), dtype=np.uint8)
    color_of = np.full((rows, columns), -1, dtype=np.int16)
    points = np.zeros((rows, columns), dtype=bool)
    colors: list[str] = []
    for s in sorted(series, key=lambda s: s.kind == "points"):  # points last: a line never hides one
        axis = left if s.axis == "left" else right
        px = _scale(s.xs, x_lo, x_hi, columns * 2, flip=False)
        py = _scale(s.ys, axis.lo, axis.hi, rows * 4, flip=True)
        colors.append(s.color)
        color = len(colors) - 1
        if s.kind == "points":
            points[py // 4, px // 2] = True
            color_of[py // 4, px // 2] = color
            continue
        xs, ys = _segments(px, py)
        cell_y, cell_x = ys // 4, xs // 2
        np.bitwise_or.at(dots, (cell_y, cell_x), _DOT_BITS[ys % 4, xs % 2])
        color_of[cell_y, cell_x] = color

    codes = np.where(dots > 0, _BRAILLE_BLANK + dots.astype(np.uint32), ord(" "))
    codes = np.where(points, ord(POINT_CHAR), codes).astype("<u4")

    out: list[list[Run]] = []
    for r in range(rows):
        runs: list[Run] = []
        label = left.labels.get(r, "")
        runs.append((label.rjust(left.width) + ("┤" if label else "│"), None))
        text = codes[r].tobytes().decode("utf-32-le")
        row_colors = color_of[r]
        cuts = np.flatnonzero(np.diff(row_colors)) + 1
        bounds = [0, *cuts.tolist(), columns]
        for a, b in itertools.pairwise(bounds):
            c = int(row_colors[a])
            runs.append((text[a:b], colors[c] if c >= 0 else None))
        if right_series:
            label = right.labels.get(r, "")
            runs.append((("├" if label else "│") + label.ljust(right.width), None))
        out.append(runs)
    out.extend(_x_axis(x_lo, x_hi, left_width, columns, right_width, x_label))
    return out


def _x_axis(lo: float, hi: float, left_width: int, columns: int, right_width: int, label: str) -> list[list[Run]]:
    """The axis line with a mark under each tick, and the tick labels (centred on their mark where they fit)."""
    ticks = [t for t in nice_ticks(lo, hi, max(2, min(10, columns // 10))) if lo <= t <= hi]
    at = [int(c) for c in _scale(np.asarray(ticks, dtype=float), lo, hi, columns, flip=False)] if ticks else []
    line = ["─"] * columns
    labels = [" "] * columns
    taken = -1
    for column, value in zip(at, ticks, strict=False):
        line[column] = "┬"
        text = count_label(value)
        start = min(max(column - len(text) // 2, taken + 2 if taken >= 0 else 0), columns - len(text))
        if start < 0 or start <= taken:
            continue
        labels[start:start + len(text)] = text
        taken = start + len(text) - 1
    if label and columns - taken - 2 >= len(label):
        labels[columns - len(label):] = label
    corner_right = "┘" if right_width else ""
    axis = " " * (left_width - 1) + "└" + "".join(line) + corner_right + " " * max(0, right_width - 1)
    under = " " * left_width + "".join(labels) + " " * right_width
    return [[(axis, None)], [(under, None)]]
