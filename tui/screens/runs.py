"""The runs under an output root, newest first; Enter opens one in the monitor, space marks runs and c compares the
marked ones side by side.

Listing reads every run's events, so it happens in a thread worker and arrives as a message; the table is
refreshed every few seconds and keeps the highlighted run across refreshes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar

from rich.cells import cell_len
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static
from textual.worker import Worker, WorkerState

from core.rundir import RunSummary, list_runs
from tui.screens.compare import CompareScreen
from tui.screens.monitor import MonitorScreen, leave_screen, status_text
from tui.widgets.results_panel import format_metric

REFRESH_S = 3.0
COLUMNS = (
    ("run", "Run"),
    ("status", "Status"),
    ("step", "Step"),
    ("best", "Best"),
    ("started", "Started"),
    ("model", "Model"),
    ("dataset", "Dataset"),
    ("engine", "Engine"),
)


def _short(text: str, width: int = 28) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


MARK = "✓ "


def summary_cells(run: RunSummary, *, marked: bool = False) -> tuple[str | Text, ...]:
    best = f"{run.metric} {format_metric(run.best)}" if run.best is not None else "-"
    started = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.started)) if run.started else "-"
    return (
        # Every name keeps the mark's room, so marking a run never shifts the column.
        Text.assemble((MARK if marked else " " * len(MARK), "bold green"), _short(run.path.name, 32)),
        status_text(run.status),
        f"{run.step}/{run.total_steps or '?'}",
        best,
        started,
        _short(run.model),
        _short(run.dataset),
        run.engine,
    )


class RunsTable(DataTable[str | Text]):
    # DataTable's own Enter binding is hidden from the footer; this one says what Enter does here.
    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "select_cursor", "Open")]


class RunsScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "toggle_mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("r", "refresh", "Refresh"),
        Binding("escape,q", "back", "Back"),
    ]

    class Loaded(Message):
        def __init__(self, runs: list[RunSummary]) -> None:
            super().__init__()
            self.runs = runs

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = Path(root)
        self.runs: list[RunSummary] = []
        self.loads = 0  # completed listings; tests wait on it
        self.marked: list[str] = []  # row keys (run paths) marked for comparison, in the order they were marked

    def compose(self) -> ComposeResult:
        yield Static(id="runs-title")
        yield RunsTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="runs-empty")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#runs-empty", Static).display = False
        self._show_title()
        self.action_refresh()
        self.set_interval(REFRESH_S, self.action_refresh)

    def action_refresh(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="runs-list", exit_on_error=False)
    def _load(self) -> None:
        self.post_message(self.Loaded(list_runs(self.root)))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "runs-list" and event.state == WorkerState.ERROR:
            self.notify(f"Could not list runs in {self.root}: {event.worker.error}", severity="error")

    def on_runs_screen_loaded(self, message: Loaded) -> None:
        self.runs = message.runs
        self.loads += 1
        table = self.query_one(RunsTable)
        empty = self.query_one("#runs-empty", Static)
        table.display = bool(self.runs)
        empty.display = not self.runs
        if not self.runs:
            empty.update(
                f"No runs under {self.root} yet.\n\n"
                "Start one with the wizard (finetune-tui); each run writes its own directory here."
            )
        keys = [str(run.path) for run in self.runs]
        if any(key not in keys for key in self.marked):  # a marked run was deleted
            self.marked = [key for key in self.marked if key in keys]
            self._show_title()
        rows = [summary_cells(run, marked=str(run.path) in self.marked) for run in self.runs]
        # Explicit widths: DataTable measures auto widths on idle, and a render that comes first (as it can
        # when rows arrive from a worker) keeps the header's widths until something else changes.
        widths = {
            key: max([cell_len(label), *(cell_len(str(row[index])) for row in rows)])
            for index, (key, label) in enumerate(COLUMNS)
        }
        same_rows = keys and keys == [row.value for row in table.rows]
        if same_rows and all(widths[key] <= table.columns[key].width for key, _ in COLUMNS):
            # Same runs in the same order: update cells in place so the cursor and scroll stay put.
            for key, row in zip(keys, rows, strict=True):
                for (column, _), value in zip(COLUMNS, row, strict=True):
                    table.update_cell(key, column, value)
            return
        highlighted = self.highlighted_run()
        table.clear(columns=True)
        for key, label in COLUMNS:
            table.add_column(label, key=key, width=widths[key])
        for key, row in zip(keys, rows, strict=True):
            table.add_row(*row, key=key)
        if highlighted is not None and str(highlighted) in keys:
            table.move_cursor(row=keys.index(str(highlighted)))
        if self.runs:
            table.focus()

    def highlighted_run(self) -> Path | None:
        table = self.query_one(RunsTable)
        if not table.row_count:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return Path(row_key.value) if row_key.value else None

    def _show_title(self) -> None:
        title = Text.assemble(("Runs", "bold"), (f" in {self.root}", "dim"))
        if self.marked:
            title.append(f"  {len(self.marked)} marked", style="bold green")
            if len(self.marked) >= 2:
                title.append(": c compares them", style="dim")
        self.query_one("#runs-title", Static).update(title)

    def action_toggle_mark(self) -> None:
        path = self.highlighted_run()
        if path is None:
            return
        key = str(path)
        if key in self.marked:
            self.marked.remove(key)
        else:
            self.marked.append(key)
        table = self.query_one(RunsTable)
        run = next((run for run in self.runs if str(run.path) == key), None)
        if run is not None:
            table.update_cell(key, "run", summary_cells(run, marked=key in self.marked)[0])
        self._show_title()
        table.action_cursor_down()  # on to the next run, as space does in file managers

    def action_compare(self) -> None:
        if len(self.marked) < 2:
            self.notify("Mark two or more runs with space, then press c to compare them.", title="Compare runs")
            return
        self.app.push_screen(CompareScreen([Path(key) for key in self.marked]))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value:
            self.app.push_screen(MonitorScreen(Path(event.row_key.value)))

    def action_back(self) -> None:
        leave_screen(self)
