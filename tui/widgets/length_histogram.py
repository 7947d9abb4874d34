"""Token lengths as a horizontal histogram; bins past max_length (cut when truncating) are marked."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

BAR = "█"


class LengthHistogram(Widget):
    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.bins: list[tuple[int, int, int]] = []
        self.max_length: int | None = None

    def show(self, bins: list[tuple[int, int, int]], max_length: int | None) -> None:
        self.bins = list(bins)
        self.max_length = max_length
        self.styles.height = max(1, len(self.bins))
        self.refresh(layout=True)

    def render(self) -> Text:
        if not self.bins:
            return Text("no lengths yet", style="dim")
        biggest = max(count for _, _, count in self.bins) or 1
        range_width = max(len(f"{lo}-{hi}") for lo, hi, _ in self.bins)
        count_width = len(str(biggest))
        bar_room = max(4, self.size.width - range_width - count_width - 4)
        text = Text(no_wrap=True, overflow="ellipsis")
        for i, (lo, hi, count) in enumerate(self.bins):
            cut = self.max_length is not None and hi > self.max_length
            width = max(1 if count else 0, round(bar_room * count / biggest))
            text.append(f"{f'{lo}-{hi}':>{range_width}} ", style="dim")
            text.append(BAR * width, style="bold red" if cut else "bold green")
            text.append(" " * (bar_room - width))
            text.append(f" {count:>{count_width}}", style="red" if cut else "dim")
            if i < len(self.bins) - 1:
                text.append("\n")
        return text
