"""The Textual app and the one factory that builds it, for the CLI and the tests alike.

Starting the app imports no ML library: torch, transformers and datasets load only inside the workers of
the steps that need them, so the first screen appears at once, even over SSH.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.screen import Screen

from tui import startup_gc
from tui.css_path import css_path
from tui.draft import Draft

if TYPE_CHECKING:
    from core.config import RunConfig


class FinetuneApp(App[None]):
    TITLE = "finetune-tui"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1", "help", "Help"),
        Binding("question_mark", "help", "Help", show=False),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(
        self,
        draft: Draft,
        *,
        config_path: Path | None = None,
        monitor: Path | None = None,
        runs_root: Path = Path("runs"),
        show_runs: bool = False,
    ) -> None:
        super().__init__(css_path=css_path())
        self.draft = draft
        self.config_path = config_path
        self.monitor = monitor
        self.runs_root = runs_root
        self.show_runs = show_runs

    def get_default_screen(self) -> Screen[None]:
        # The first screen is the app's default screen rather than one pushed over an empty default: one screen
        # less to compose, lay out and paint before the first frame (bench/startup.py). Leaving the first screen
        # quits (monitor.leave_screen), as the monitor and runs commands expect.
        if self.monitor is not None:
            from tui.screens.monitor import MonitorScreen

            return MonitorScreen(Path(self.monitor))
        if self.show_runs:
            from tui.screens.runs import RunsScreen

            return RunsScreen(self.runs_root)
        from tui.screens.wizard import WizardScreen

        return WizardScreen(self.draft, config_path=self.config_path)

    def on_ready(self) -> None:
        startup_gc.resume()  # Ready: the first frame is on screen

    def open_monitor(self, run_dir: Path) -> None:
        from tui.screens.monitor import MonitorScreen

        self.push_screen(MonitorScreen(Path(run_dir)))

    def action_help(self) -> None:
        from tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())


def _beside_config(config: RunConfig, config_path: Path) -> RunConfig:
    """Data paths in a saved config may be relative to the config's folder (as `finetune-tui run` reads
    them); point them at the files so the wizard finds them from the working directory."""
    base = config_path.resolve().parent
    fixed = config.model_copy(deep=True)
    for name in ("train_file", "validation_file", "test_file"):
        path = getattr(fixed.data, name)
        if path is None or path.is_absolute() or path.exists() or not (base / path).exists():
            continue
        found = base / path
        try:
            setattr(fixed.data, name, Path(os.path.relpath(found)))
        except ValueError:  # another drive on Windows: keep it absolute
            setattr(fixed.data, name, found)
    return fixed


def make_app(
    config: RunConfig | None = None,
    config_path: Path | None = None,
    monitor: Path | None = None,
    runs_root: Path = Path("runs"),
    show_runs: bool = False,
) -> FinetuneApp:
    """The app: the wizard (prefilled from `config`), or the monitor of `monitor`, or the runs list."""
    if config is not None and config_path is not None:
        config = _beside_config(config, config_path)
    draft = Draft.from_config(config) if config is not None else Draft()
    return FinetuneApp(draft, config_path=config_path, monitor=monitor, runs_root=runs_root, show_runs=show_runs)
