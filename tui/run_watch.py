"""Follow a run directory from a thread and hand the UI one message per batch of news.

The monitor never talks to the training process: everything it shows comes from the run directory
(events.jsonl, the log files, the lock). Reading and sorting events happens here, off the UI thread, so
attaching to a run with 100,000 logged steps costs the UI one message, not 100,000.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from textual.message import Message

from core.events import TERMINAL_TYPES, EventTail, number
from core.rundir import RunDir, Status


@dataclass
class RunBatch:
    """The events of one poll, already sorted by what the UI does with them."""

    initial: bool = False
    count: int = 0
    started: dict[str, Any] | None = None
    train_steps: list[float] = field(default_factory=list)
    train_losses: list[float] = field(default_factory=list)  # NaN where the loss was not a number
    evals: list[dict[str, Any]] = field(default_factory=list)
    last_step: dict[str, Any] | None = None
    device: dict[str, Any] | None = None  # the newest snapshot only: older ones are of no use on screen
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    samples: dict[str, Any] | None = None  # the newest `sample` event: what the model answers now
    terminal: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)


def digest(events: list[dict[str, Any]], *, initial: bool = False) -> RunBatch:
    batch = RunBatch(initial=initial, count=len(events))
    for event in events:
        kind = event.get("type")
        if kind == "step":
            step = number(event.get("step"))
            if step is not None:
                loss = number(event.get("loss"))
                batch.train_steps.append(step)
                batch.train_losses.append(math.nan if loss is None else loss)
            batch.last_step = event
        elif kind == "eval":
            batch.evals.append(event)
        elif kind == "device":
            if isinstance(event.get("snapshot"), dict):
                batch.device = event["snapshot"]
        elif kind == "checkpoint":
            batch.checkpoints.append(event)
        elif kind == "sample":
            batch.samples = event
        elif kind == "run_started":
            batch.started = event
        elif kind in TERMINAL_TYPES:
            batch.terminal = event
    return batch


class RunUpdate(Message):
    """News from a run directory: new events (or None), the current status, and the log tail when it changed."""

    def __init__(self, run_dir: RunDir, batch: RunBatch | None, status: Status, log_lines: list[str] | None) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.batch = batch
        self.status = status
        self.log_lines = log_lines


class RunWatcher:
    """Reads a run directory in a loop and posts a RunUpdate whenever something changed.

    `run()` blocks; call it from a thread worker. `poll()` does one round and is what tests drive directly.
    """

    def __init__(
        self,
        run_dir: RunDir,
        post: Callable[[Message], Any],
        *,
        interval: float = 1.0,
        log_every: float = 2.0,
        log_lines: int = 40,
    ) -> None:
        self.run_dir = run_dir
        self.post = post
        self.interval = interval
        self.log_every = log_every
        self.log_lines = log_lines
        self._tail = EventTail(run_dir.events_path)
        self._stopped = threading.Event()
        self._warned = 0
        self._terminal: dict[str, Any] | None = None
        self._last: dict[str, Any] | None = None
        self._status: Status | None = None
        self._log: list[str] | None = None
        self._log_read_at = -math.inf
        self._attached = False

    def stop(self) -> None:
        self._stopped.set()

    def _read_events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        # The first read takes the whole history, which can span several 16 MB polls.
        while batch := self._tail.poll():
            events.extend(batch)
            if self._attached:
                break
        return events

    def _current_status(self) -> Status:
        # RunDir.status decides; it only needs the terminal event, or any event to tell starting from running.
        known = [self._terminal] if self._terminal else [self._last] if self._last else []
        return self.run_dir.status(known)

    def poll(self) -> RunUpdate | None:
        """One round: new events, status, and (every log_every seconds) the log tail. None when nothing changed."""
        events = self._read_events()
        initial = not self._attached
        self._attached = True
        batch = digest(events, initial=initial) if events or initial else None
        if events:
            self._last = events[-1]
            if batch and batch.terminal:
                self._terminal = batch.terminal
        new_warnings = self._tail.warnings[self._warned :]
        if new_warnings:
            self._warned = len(self._tail.warnings)
            batch = batch or RunBatch()
            name = self.run_dir.events_path.name
            batch.warnings = [w.replace(str(self.run_dir.events_path), name) for w in new_warnings]
        status = self._current_status()
        log_lines = None
        now = time.monotonic()
        if now - self._log_read_at >= self.log_every or status != self._status:
            self._log_read_at = now
            lines = self.run_dir.log_tail(self.log_lines)
            if lines != self._log:
                self._log = log_lines = lines
        if batch is None and log_lines is None and status == self._status:
            return None
        self._status = status
        return RunUpdate(self.run_dir, batch, status, log_lines)

    def run(self, cancelled: Callable[[], bool] = lambda: False) -> None:
        """Poll until stopped or cancelled. After a terminal event one last round picks up the final log."""
        while not self._stopped.is_set() and not cancelled():
            update = self.poll()
            if update is not None:
                self.post(update)
            if self._terminal is not None:
                self._stopped.wait(self.log_every)
                if (final := self.poll()) is not None:
                    self.post(final)
                return
            self._stopped.wait(self.interval)
