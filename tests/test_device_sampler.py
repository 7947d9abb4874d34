"""The run process's device sampler never writes after the run's terminal event."""

from __future__ import annotations

import threading
import time
from typing import Any

from core.worker import DeviceSampler


class _SlowEvents:
    """Takes a moment per event, as a busy machine does, and records when each one landed."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.inside = threading.Event()

    def emit(self, kind: str, **fields: Any) -> None:
        self.inside.set()
        time.sleep(0.3)
        self.times.append(time.monotonic())


def test_stop_waits_for_a_reading_in_flight() -> None:
    events = _SlowEvents()
    sampler = DeviceSampler(events, interval=0.01)  # type: ignore[arg-type]
    sampler.start()
    assert events.inside.wait(5)  # a reading is being written now
    sampler.stop()
    stopped = time.monotonic()
    assert not sampler.is_alive()
    time.sleep(0.5)
    # Everything the sampler wrote landed before stop() returned: a `finished` written next is the last event.
    assert events.times and all(t <= stopped for t in events.times)


def test_stop_before_start_is_harmless() -> None:
    DeviceSampler(_SlowEvents()).stop()  # type: ignore[arg-type]
