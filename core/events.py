"""events.jsonl: the one way a UI, the monitor command or a test learns what a run is doing.

One JSON object a line, each with `type` and `time` (seconds since the epoch). Writers append whole lines
and flush; readers skip a half-written last line (it is read again once complete) and corrupt lines.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

EVENT_TYPES = (
    "run_started",  # versions, device, dataset sizes, labels, total_steps
    "step",  # step, epoch, loss, learning_rate, grad_norm, samples_per_second, total_steps
    "eval",  # step, epoch, split, metrics {loss, accuracy, ...}
    "device",  # periodic snapshot of GPUs, CPU, RAM and the run's memory
    "checkpoint",  # step, path
    "sample",  # step, split, samples [{prompt, reference, generated}]: what the model answers now (text-generation)
    "finished",  # metrics, model_dir, runtime_s
    "failed",  # error, hint, error_type, traceback_tail
    "stopped",  # step, checkpoint: the run was asked to stop and stopped cleanly
)
TERMINAL_TYPES = ("finished", "failed", "stopped")


def _clean(value: Any) -> Any:
    """JSON has no NaN or inf; write them as strings a reader can still show."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


class EventWriter:
    """Appends events to a run's events.jsonl. Only the main training process holds one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the run
        self._lock = threading.Lock()  # the device sampler thread writes too
        self.written: set[str] = set()  # the event types this writer has emitted (this segment of the run)
        # Called with each event once it is written: the trackers of engines that do not track by themselves
        # (core.tracking.EventTrackers). They must not raise.
        self.observers: list[Callable[[dict[str, Any]], None]] = []

    def emit(self, type_: str, **fields: Any) -> dict[str, Any]:
        if type_ not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type_!r}")
        event = {"type": type_, "time": round(time.time(), 3), **_clean(fields)}
        line = json.dumps(event, allow_nan=False) + "\n"
        with self._lock:
            self.written.add(type_)
            self._file.write(line)
            self._file.flush()
            if type_ in TERMINAL_TYPES:
                os.fsync(self._file.fileno())
        for observe in self.observers:
            observe(event)
        return event

    def close(self) -> None:
        self._file.close()


@dataclass
class EventTail:
    """Incremental reader: each poll() returns the events appended since the last one.

    A line without its newline yet is left for the next poll; a line that is not valid JSON is skipped
    and counted in `skipped` so a UI can warn.
    """

    path: Path
    offset: int = 0
    skipped: int = 0
    warnings: list[str] = field(default_factory=list)
    _line_no: int = 0

    def poll(self, max_bytes: int = 16 * 1024 * 1024) -> list[dict[str, Any]]:
        try:
            if self.path.stat().st_size < self.offset:
                # The log was replaced (a run restarted with --overwrite): read the new one from its start.
                self.offset, self._line_no = 0, 0
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read(max_bytes)
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n")
        if end < 0:
            return []
        complete = chunk[: end + 1]
        self.offset += len(complete)
        return list(self._parse(complete))

    def _parse(self, data: bytes) -> Iterator[dict[str, Any]]:
        for raw in data.split(b"\n")[:-1]:
            self._line_no += 1
            if not raw.strip():
                continue
            try:
                event = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                event = None
            if not isinstance(event, dict) or "type" not in event:
                self.skipped += 1
                self.warnings.append(f"{self.path}: line {self._line_no} is not a valid event; skipped")
                continue
            yield event


def number(value: Any) -> float | None:
    """A number from an event field; NaN and inf arrive as strings ("nan", see _clean), anything else odd is None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def read_events(path: Path) -> list[dict[str, Any]]:
    """All complete, valid events of a run so far."""
    tail = EventTail(Path(path))
    events: list[dict[str, Any]] = []
    while batch := tail.poll():
        events.extend(batch)
    return events
