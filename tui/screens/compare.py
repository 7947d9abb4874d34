"""Two or more runs side by side: one curve of each overlaid in a chart, and a table of their config differences
and final metrics (core.compare builds both, as it does for `finetune-tui runs --compare`).

The runs are read in a thread worker, as the runs list reads them: a run with 100,000 logged steps must not freeze
the screen while it opens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from rich.cells import cell_len
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.markup import escape
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static
from textual.worker import Worker, WorkerState

from core.compare import Comparison, Curve, load_comparison, table_rows
from tui.screens.monitor import leave_screen, status_text
from tui.widgets.curves_chart import CurvesChart, RunCurve, run_color, text_color


class CompareScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "next_curve", "Next curve"),
        Binding("p", "previous_curve", "Prev curve"),
        Binding("r", "refresh", "Refresh"),
        Binding("escape,q", "back", "Back"),
    ]
    DEFAULT_CSS = """
    CompareScreen {
        layout: vertical;
    }
    #compare-title, #compare-curves {
        height: 1;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    #compare-title {
        background: $panel;
    }
    #compare-chart, #compare-table {
        border: round $primary 60%;
        border-title-color: $text;
    }
    #compare-chart {
        height: 1fr;
        min-height: 10;
    }
    #compare-table {
        height: 1fr;
        scrollbar-size-vertical: 1;
    }
    #compare-notes {
        height: auto;
        max-height: 2;
        padding: 0 1;
        color: $warning;
    }
    """

    class Loaded(Message):
        def __init__(self, comparison: Comparison) -> None:
            super().__init__()
            self.comparison = comparison

    def __init__(self, runs: list[Path]) -> None:
        super().__init__()
        self.paths = [Path(run) for run in runs]
        self.comparison: Comparison | None = None
        self.curve_names: list[str] = []
        self.curve = 0  # index into curve_names
        self.loads = 0  # completed readings; tests wait on it

    def compose(self) -> ComposeResult:
        yield Static(id="compare-title")
        yield Static(id="compare-curves")
        yield CurvesChart(id="compare-chart")
        yield DataTable(id="compare-table", cursor_type="row", zebra_stripes=True, fixed_columns=1)
        yield Static(id="compare-notes")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#compare-title", Static).update(
            Text.assemble((f"Comparing {len(self.paths)} runs", "bold"), ("  reading their run directories…", "dim")))
        self.query_one("#compare-table", DataTable).border_title = "Config differences and final metrics"
        self.query_one("#compare-notes", Static).display = False
        self.action_refresh()

    def action_refresh(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="compare-load", exit_on_error=False)
    def _load(self) -> None:
        self.post_message(self.Loaded(load_comparison(self.paths)))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "compare-load" and event.state == WorkerState.ERROR:
            error: Any = event.worker.error
            text = str(getattr(error, "message", error))  # a UserError's problem and fix, not its repr
            self.query_one("#compare-title", Static).update(Text(f"Could not compare the runs: {text}", "bold red"))
            self.notify(text, title="Could not compare the runs", severity="error")

    def on_compare_screen_loaded(self, message: Loaded) -> None:
        comparison = message.comparison
        self.comparison = comparison
        shown = self.curve_names[self.curve] if self.curve_names else None
        self.curve_names = comparison.curve_names()
        self.curve = self.curve_names.index(shown) if shown in self.curve_names else 0  # a refresh keeps the curve
        self.loads += 1
        self.query_one("#compare-title", Static).update(Text.assemble(
            (f"Comparing {len(comparison.runs)} runs", "bold"), ("  " + " · ".join(comparison.labels), "dim")))
        notes = self.query_one("#compare-notes", Static)
        notes.display = bool(comparison.notes)
        notes.update(Text("\n".join(comparison.notes)))
        self._fill_table(comparison)
        self._show_curve()

    def _fill_table(self, comparison: Comparison) -> None:
        table: DataTable[str | Text] = self.query_one("#compare-table", DataTable)
        row = table.cursor_row
        table.clear(columns=True)
        rows = table_rows(comparison)
        keys = [r[0] if isinstance(r, tuple) else r for r in rows]  # section titles are told apart by bold
        # Explicit widths: rows that arrive from a worker can be drawn before DataTable measures auto widths.
        table.add_column("", key="key", width=max(cell_len(k) for k in [*keys, "status"]))
        for index, run in enumerate(comparison.runs):
            cells = [cell_len(r[1][index]) for r in rows if isinstance(r, tuple)]
            table.add_column(Text(run.label, style=f"bold {text_color(run_color(index))}"), key=str(index),
                             width=max([cell_len(run.label), cell_len(str(status_text(run.status))), *cells]))
        table.add_row(Text("status", style="bold"), *(status_text(run.status) for run in comparison.runs))
        for r, key in zip(rows, keys, strict=True):
            if isinstance(r, str):
                table.add_row(Text(key, style="bold"), *("" for _ in comparison.runs))
                continue
            _, cells, best = r
            table.add_row(key, *(Text(cell, style="bold green") if i in best else cell for i, cell in enumerate(cells)))
        table.move_cursor(row=min(row, table.row_count - 1))

    # --- the curve shown -------------------------------------------------------------------------
    def _show_curve(self) -> None:
        if self.comparison is None or not self.curve_names:
            return
        name = self.curve_names[self.curve]
        choices = []
        for index, choice in enumerate(self.curve_names):
            label = escape(choice)
            style = "reverse bold" if index == self.curve else "underline"
            choices.append(f"[@click=screen.pick_curve({index})][{style}] {label} [/][/]")
        self.query_one("#compare-curves", Static).update("Curve: " + " ".join(choices) + "  [dim](n/p)[/]")
        curves = [RunCurve(run.label, *self._points(run.curves.get(name)), color=run_color(index))
                  for index, run in enumerate(self.comparison.runs)]
        self.query_one(CurvesChart).show(name, curves)

    @staticmethod
    def _points(curve: Curve | None) -> tuple[list[float], list[float]]:
        return (curve.steps, curve.values) if curve is not None else ([], [])

    def action_pick_curve(self, index: int) -> None:
        if 0 <= index < len(self.curve_names):
            self.curve = index
            self._show_curve()

    def action_next_curve(self) -> None:
        if self.curve_names:
            self.action_pick_curve((self.curve + 1) % len(self.curve_names))

    def action_previous_curve(self) -> None:
        if self.curve_names:
            self.action_pick_curve((self.curve - 1) % len(self.curve_names))

    def action_back(self) -> None:
        leave_screen(self)
