"""The runs list: recorded runs with their status, Enter opens the monitor, empty state, refresh."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from textual.pilot import Pilot

from tests.screen_harness import Harness, wait_until
from tui.screens.monitor import MonitorScreen
from tui.screens.runs import RunsScreen, RunsTable

FIXTURES = Path(__file__).parent / "fixtures" / "recorded"


async def loaded(pilot: Pilot[None]) -> RunsScreen:
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, RunsScreen))
    screen = pilot.app.screen
    assert isinstance(screen, RunsScreen)
    await wait_until(pilot, lambda: screen.loads >= 1)
    await pilot.pause()
    return screen


def row_texts(table: RunsTable) -> dict[str, list[str]]:
    return {str(key.value): [str(cell) for cell in table.get_row(key)] for key in table.rows}


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Start times are shown in local time; pin it so the table reads the same everywhere."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def test_lists_recorded_runs_with_status(utc: None) -> None:
    app = Harness(lambda: RunsScreen(FIXTURES))
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await loaded(pilot)
        rows = row_texts(screen.query_one(RunsTable))
        by_name = {Path(key).name: cells for key, cells in rows.items()}
        assert set(by_name) == {"sst2-finished", "mrpc-corrupt", "imdb-failed", "agnews-died"}
        assert by_name["sst2-finished"][1:5] == ["✔ finished", "60/60", "accuracy 0.9000", "2025-01-15 10:00"]
        assert by_name["imdb-failed"][1] == "✘ failed"
        assert by_name["agnews-died"][1] == "✘ died"
        assert by_name["agnews-died"][5:] == ["distilbert-base-uncased", "ag_news", "trainer"]
        assert not screen.query_one("#runs-empty").display


async def test_enter_opens_the_monitor_and_escape_comes_back() -> None:
    app = Harness(lambda: RunsScreen(FIXTURES))
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await loaded(pilot)
        table = screen.query_one(RunsTable)
        target = str(FIXTURES / "imdb-failed")
        table.move_cursor(row=table.get_row_index(target))
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, MonitorScreen))
        monitor = app.screen
        assert isinstance(monitor, MonitorScreen)
        assert monitor.run_dir.path == Path(target)
        await wait_until(pilot, lambda: monitor.status == "failed")
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is screen)
        assert screen.highlighted_run() == Path(target)
        assert app.return_code is None  # still running: Back from the monitor came back to the list
        await pilot.press("escape")  # the list is the first screen: Back quits, as `finetune-tui runs --ui` expects
        await pilot.pause()
        assert app.return_code == 0


async def test_empty_root_says_how_to_start_a_run(tmp_path: Path) -> None:
    app = Harness(lambda: RunsScreen(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await loaded(pilot)
        empty = screen.query_one("#runs-empty")
        assert empty.display and not screen.query_one(RunsTable).display
        assert f"No runs under {tmp_path} yet" in str(empty.content)


async def test_refresh_picks_up_new_runs_and_keeps_the_cursor(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "agnews-died", tmp_path / "agnews-died")
    shutil.copytree(FIXTURES / "imdb-failed", tmp_path / "imdb-failed")
    app = Harness(lambda: RunsScreen(tmp_path))
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await loaded(pilot)
        table = screen.query_one(RunsTable)
        assert table.row_count == 2
        table.move_cursor(row=table.get_row_index(str(tmp_path / "imdb-failed")))
        shutil.copytree(FIXTURES / "sst2-finished", tmp_path / "sst2-finished")
        await pilot.press("r")
        await wait_until(pilot, lambda: table.row_count == 3)
        assert screen.highlighted_run() == tmp_path / "imdb-failed"


def test_snapshot_runs_screen(snap_compare: Callable[..., bool], utc: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES.parent)  # the title shows the root as given: keep it the same on every machine

    async def run_before(pilot: Pilot[None]) -> None:
        await loaded(pilot)

    app = Harness(lambda: RunsScreen(Path("recorded")))
    assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)
