"""The help screen: keys, what each step does, and where things are written."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

HELP = """\
# finetune-tui

Configure a fine-tuning run step by step, start it, and watch it live.

## Keys

| Key | Does |
|---|---|
| `ctrl+n` | Next step (checks this step first) |
| `ctrl+b` | Previous step (keeps every value) |
| `tab` / `shift+tab` | Next / previous field |
| `→` or `end` in a path | Accept the suggested completion |
| `enter` in a data path | Load the preview |
| `ctrl+p` | Command palette (themes, keys, quit) |
| `f1` or `?` | This help |
| `ctrl+q` | Quit (a started run keeps going) |

The mouse works too: click a done step in the list to go back to it.

## Steps

1. **Framework**: Hugging Face Trainer, a native PyTorch loop, or Keras.
2. **Model**: a Hub id or a local directory; its config is read to show its size.
3. **Dataset**: a local file or a Hub dataset; pick the text, pair and label columns.
4. **Tokenizer**: padding, truncation and max length, against your data's real token lengths.
5. **Training**: epochs, learning rate, batch size; the rest under *Advanced*.
6. **Review**: the YAML, warnings, save it, copy the command, start.

A run is a separate process writing its own run directory (under `runs/` unless you set one):
closing this app never stops it. Reattach with `finetune-tui monitor RUN_DIR`; list runs with
`finetune-tui runs`.

## Runs list and comparison

`finetune-tui runs --ui` lists the runs.

| Key | Does |
|---|---|
| `enter` | Open the highlighted run in the monitor |
| `space` | Mark or unmark the run for comparison |
| `c` | Compare the marked runs (two or more) side by side |
| `n` / `p` in a comparison | Next / previous curve (or click its name) |
| `r` | Read the runs again |
| `escape` | Back |

A comparison overlays the runs' curves and lists the config keys whose values differ and the
final metrics (the best in bold). `finetune-tui runs --compare RUN_A RUN_B` prints the same table.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,f1,q,question_mark", "close", "Close")]

    def compose(self) -> ComposeResult:
        # Rich's Markdown in one Static, not Textual's Markdown widget: that builds a widget per block and took
        # 0.6 s to open this screen (bench/long_runs.py, "key press to help screen").
        from rich.markdown import Markdown

        with VerticalScroll(id="help-box"):
            yield Static(Markdown(HELP), id="help-text")

    def action_close(self) -> None:
        self.dismiss(None)
