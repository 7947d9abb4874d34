"""A yes/no question in a modal. Dismisses with True (confirmed) or False.

Focus starts on the cancel button so a stray Enter never confirms something destructive; `y` confirms.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


class ConfirmScreen(ModalScreen[bool]):
    DEFAULT_CSS = """
    ConfirmScreen {
        align: center middle;
    }
    ConfirmScreen > Vertical {
        width: 60;
        max-width: 90%;
        height: auto;
        border: thick $primary;
        background: $surface;
        padding: 1 2;
    }
    ConfirmScreen.-danger > Vertical {
        border: thick $error;
    }
    ConfirmScreen .confirm-title {
        text-style: bold;
        width: 1fr;
    }
    ConfirmScreen .confirm-message {
        margin: 1 0;
    }
    ConfirmScreen Horizontal {
        height: auto;
        align-horizontal: right;
    }
    ConfirmScreen Button {
        margin-left: 2;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "confirm", "Yes"),
        Binding("n,escape", "cancel", "No"),
    ]

    def __init__(
        self,
        title: str,
        message: str = "",
        *,
        confirm_label: str = "Yes",
        cancel_label: str = "No",
        danger: bool = False,
    ) -> None:
        super().__init__(classes="-danger" if danger else None)
        self.title_text = title
        self.message = message
        self.confirm_label = confirm_label
        self.cancel_label = cancel_label
        self.danger = danger

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="confirm-title")
            if self.message:
                yield Static(self.message, classes="confirm-message")
            with Horizontal():
                yield Button(
                    f"{self.confirm_label} (y)", variant="error" if self.danger else "primary", id="confirm-yes"
                )
                yield Button(f"{self.cancel_label} (n)", id="confirm-no")

    def on_mount(self) -> None:
        self.query_one("#confirm-no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm-yes")

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
