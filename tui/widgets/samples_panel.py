"""What the model answers now: the latest `sample` event (text-generation's greedy answers to fixed validation
prompts after each evaluation), beside the loss chart, so the user sees the model learn."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static


def _flat(value: Any) -> str:
    return " ".join(str(value or "").split())


class SamplesPanel(Static):
    """Hidden until a run writes its first sample."""

    def on_mount(self) -> None:
        self.display = False
        self.border_title = "Samples"

    def show_samples(self, event: dict[str, Any]) -> None:
        samples = [s for s in event.get("samples") or [] if isinstance(s, dict)]
        if not samples:
            return
        text = Text()
        for n, sample in enumerate(samples):
            if n:
                text.append("\n")
            generated, reference = _flat(sample.get("generated")), _flat(sample.get("reference"))
            text.append(f"{_flat(sample.get('prompt'))}\n", style="dim")
            text.append(f"→ {generated or '(nothing)'}\n", style="bold")
            right = generated == reference
            text.append(f"{'✓' if right else '≠'} {reference}\n", style="green" if right else "yellow")
        self.border_title = f"Samples (step {event.get('step', '?')})"
        self.border_subtitle = "answer · ✓/≠ the data's"
        self.update(text)
        self.display = True
