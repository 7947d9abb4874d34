"""GPUs, CPU, RAM and the run's own memory, from the newest `device` event's snapshot.

The monitor may run on another machine than the training (it only reads the run directory), so this shows
what the run measured, never what this process could measure itself.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from core.events import number


def format_mb(mb: float | None) -> str:
    if mb is None:
        return "?"
    return f"{mb / 1024:.1f}G" if mb >= 1024 else f"{mb:.0f}M"


def _pair(used: float | None, total: float | None) -> str:
    if used is None:
        return "?"
    if total is None:
        return format_mb(used)
    if total >= 1024:
        return f"{used / 1024:.1f}/{total / 1024:.1f}G"
    return f"{used:.0f}/{total:.0f}M"


class DevicePanel(Static):
    DEFAULT_CSS = """
    DevicePanel {
        height: auto;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__("No device snapshot yet.", name=name, id=id, classes=classes)
        self.snapshot: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        return self._text().plain

    def update_snapshot(self, snapshot: dict[str, Any]) -> None:
        self.snapshot = snapshot
        self.update(self._text())

    def _text(self) -> Text:
        snap = self.snapshot
        if not snap:
            return Text("No device snapshot yet.", style="dim")
        out = Text(no_wrap=True, overflow="ellipsis")
        gpus = snap.get("gpus") or []
        for gpu in gpus if isinstance(gpus, list) else []:
            if not isinstance(gpu, dict):
                continue
            # Compact, nvtop-style: the units say which number is which, and it fits a 30-column panel.
            out.append(f"GPU{gpu.get('index', '?')} ", style="bold")
            out.append(f"{gpu.get('name', '?')}\n")
            util, temp, power = (number(gpu.get(k)) for k in ("util_pct", "temp_c", "power_w"))
            out.append(f" {util:.0f}%" if util is not None else " ?%")
            out.append("  " + _pair(number(gpu.get("mem_used_mb")), number(gpu.get("mem_total_mb"))))
            if temp is not None:
                out.append(f"  {temp:.0f}°C")
            if power is not None:
                out.append(f"  {power:.0f}W")
            out.append("\n")
        cpu = number(snap.get("cpu_pct"))
        out.append("CPU ", style="bold")
        out.append(f"{cpu:.0f}%" if cpu is not None else "?")
        out.append("  RAM ", style="bold")
        out.append(_pair(number(snap.get("ram_used_mb")), number(snap.get("ram_total_mb"))) + "\n")
        out.append("run ", style="bold")
        out.append(format_mb(number(snap.get("proc_rss_mb"))))
        out.append(" resident", style="dim")
        return out
