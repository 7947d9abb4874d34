"""A loading indicator that animates only while it is shown."""

from __future__ import annotations

from textual.widgets import LoadingIndicator


class Spinner(LoadingIndicator):
    """Textual's LoadingIndicator refreshes 16 times a second even while hidden: the wizard's three kept an idle
    app at 2% of a core. This one starts hidden and refreshes only while busy."""

    def on_mount(self) -> None:
        # Later, not now: Textual calls LoadingIndicator's own mount handler (which starts the animation) after this.
        self.display = False
        self.call_later(self.set_busy, False)

    def set_busy(self, busy: bool) -> None:
        self.display = busy
        self.auto_refresh = 1 / 16 if busy else None
