"""A small app that opens one screen as its first screen, as finetune-tui's app does, with the real screens.css."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from textual.app import App
from textual.pilot import Pilot
from textual.screen import Screen

from tui.css_path import css_path


class Harness(App[None]):
    CSS_PATH = css_path()

    def __init__(self, make_screen: Callable[[], Screen[None]]) -> None:
        super().__init__()
        self._make_screen = make_screen
        self.notified: list[str] = []  # every notification's text: on a loaded machine a toast can expire first

    def get_default_screen(self) -> Screen[None]:
        return self._make_screen()

    def notify(self, message: str, **kwargs: Any) -> None:  # type: ignore[override]
        self.notified.append(message)
        super().notify(message, **kwargs)


async def wait_until(pilot: Pilot[None], condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.02)
