"""Class balance as one bar per label: name, bar, count and share. Shows at most `limit` labels."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

BAR = "█"


class BalanceBar(Widget):
    def __init__(self, *, limit: int = 8, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.counts: dict[str, int] = {}
        self.limit = limit

    def show(self, counts: dict[str, int]) -> None:
        self.counts = dict(counts)
        self.styles.height = max(1, min(len(self.counts), self.limit) + (1 if len(self.counts) > self.limit else 0))
        self.refresh(layout=True)

    def render(self) -> Text:
        if not self.counts:
            return Text("no labels yet", style="dim")
        total = sum(self.counts.values()) or 1
        biggest = max(self.counts.values()) or 1
        ranked = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        shown = ranked[: self.limit]
        name_width = min(16, max(len(str(name)) for name, _ in shown))
        tail = f" {biggest:>6} {100:>5.1f}%"
        bar_room = max(4, self.size.width - name_width - len(tail) - 2)
        text = Text(no_wrap=True, overflow="ellipsis")
        for i, (name, count) in enumerate(shown):
            label = str(name)
            label = label if len(label) <= name_width else label[: name_width - 1] + "…"
            width = max(1 if count else 0, round(bar_room * count / biggest))
            text.append(f"{label:<{name_width}} ")
            text.append(BAR * width, style=f"bold {_colour(i)}")
            text.append(" " * (bar_room - width))
            text.append(f" {count:>6} {100 * count / total:>5.1f}%", style="dim")
            text.append("\n")
        if len(ranked) > self.limit:
            rest = sum(c for _, c in ranked[self.limit :])
            text.append(f"… {len(ranked) - self.limit} more labels ({rest} examples)", style="dim")
        return text.rstrip() or text


def _colour(i: int) -> str:
    return ("green", "cyan", "magenta", "yellow", "blue", "red")[i % 6]
