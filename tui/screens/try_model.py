"""Try the model: type a text (and its pair, for a sentence-pair model) and see each label's probability, or (a
model that writes its answers, text-generation) press Enter and watch the answer being written, ctrl+s to stop it.

The model is loaded once, in a thread, through core.predict (the same path as `finetune-tui predict`); each
prediction runs in a thread too, the newest text replacing any still in flight, so typing never waits on torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Input, Static
from textual.worker import get_current_worker

DEBOUNCE_S = 0.3  # predict once typing pauses, not on every key
BAR_WIDTH = 30


def probability_bars(labels: list[str], probabilities: list[float], width: int = BAR_WIDTH) -> Text:
    """One line per label: name, a bar as long as its probability, the number; the most likely label in green."""
    if not labels:
        return Text(no_wrap=True, overflow="ellipsis")
    best = max(range(len(labels)), key=lambda i: probabilities[i])
    return view_bars([(name, p, i == best) for i, (name, p) in enumerate(zip(labels, probabilities, strict=True))],
                     width)


def view_bars(bars: list[tuple[str, float, bool]], width: int = BAR_WIDTH, percent: bool = True) -> Text:
    """One line per (name, value 0 to 1, highlighted): the name, a bar as long as the value, the number; the
    highlighted ones in green (a task's TryView)."""
    out = Text(no_wrap=True, overflow="ellipsis")
    if not bars:
        return out
    name_width = min(24, max(len(name) for name, _, _ in bars))
    for name, value, strong in bars:
        shown = name if len(name) <= name_width else name[: name_width - 1] + "…"
        filled = round(value * width)
        style = "bold green" if strong else "cyan"
        out.append(f"{shown:<{name_width}} ", style="bold" if strong else "")
        out.append("█" * filled, style=style)
        out.append("░" * (width - filled), style="dim")
        out.append(f" {value:6.1%}\n" if percent else "\n", style=style)
    out.rstrip()
    return out


def run_task(run_dir: Path) -> tuple[str | None, str | None]:
    """(text column, pair column) the run trained on, from its config.yaml; (None, None) when it cannot be read."""
    from core.config import load_config
    from core.errors import ConfigError

    try:
        data = load_config(Path(run_dir) / "config.yaml").data
    except ConfigError:
        return None, None
    return data.text_column, data.text_pair_column


class TryModelScreen(Screen[None]):
    DEFAULT_CSS = """
    TryModelScreen {
        padding: 1 2;
    }
    TryModelScreen #try-title {
        text-style: bold;
        margin-bottom: 1;
    }
    TryModelScreen Input {
        margin-bottom: 1;
    }
    TryModelScreen #try-status {
        color: $text-muted;
        margin-bottom: 1;
    }
    TryModelScreen #try-bars {
        border: round $primary;
        padding: 0 1;
        height: auto;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back"),
                                             Binding("ctrl+s", "stop_answer", "Stop the answer")]

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.text_column, self.pair_column = run_task(self.run_dir)
        self.predictor: Any = None
        self.labels: list[str] = []
        self.answer: dict[str, Any] = {}  # the last prediction shown (the task's answer)
        self.shown_for: tuple[str, str | None] | None = None  # the input that prediction was made for
        self._timer: Timer | None = None
        self._stop_asked = False  # a streamed answer (Task.streams_answers) in flight ends at its next piece
        self.streaming = False

    @property
    def is_pair(self) -> bool:
        return self.pair_column is not None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"Try the model · {self.run_dir.name}", id="try-title")
            first = f"Text ({self.text_column})" if self.is_pair and self.text_column else "Text to try"
            yield Input(placeholder=first, id="try-text")
            if self.is_pair:
                yield Input(placeholder=f"Second text ({self.pair_column})", id="try-pair")
            yield Static("Loading the model…", id="try-status")
            yield Static(id="try-bars")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#try-text", Input).focus()
        self._load()

    # --- the model ---------------------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="try-load", exit_on_error=False)
    def _load(self) -> None:
        from core.errors import UserError
        from core.predict import load_predictor

        try:
            predictor = load_predictor(self.run_dir)
        except UserError as err:
            self.app.call_from_thread(self._failed, err.message)
            return
        except Exception as err:  # shown, not raised: the screen stays usable and says what went wrong
            self.app.call_from_thread(self._failed, f"{type(err).__name__}: {err}")
            return
        self.app.call_from_thread(self._loaded, predictor)

    def _loaded(self, predictor: Any) -> None:
        self.predictor = predictor
        self.labels = list(predictor.labels)
        self._status(predictor.task.try_intro(predictor.meta))
        self._schedule(0)

    def _failed(self, message: str) -> None:
        self._status(Text(f"Cannot load the model: {message}", style="bold red"))

    # --- predicting --------------------------------------------------------------------------------------------
    @property
    def streams(self) -> bool:
        """Answers that are written (text-generation) come on Enter, piece by piece, not as the text is typed."""
        return self.predictor is not None and self.predictor.task.streams_answers

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        if not self.streams:
            self._schedule(DEBOUNCE_S)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "try-text" and self.is_pair:
            self.query_one("#try-pair", Input).focus()
        if self.streams:
            if event.value.strip():
                self._stop_asked = False
                self._stream(event.value)
            return
        self._schedule(0)

    @work(thread=True, exclusive=True, group="try-predict", exit_on_error=False)
    def _stream(self, text: str) -> None:
        import time

        worker = get_current_worker()
        self.streaming = True
        self.app.call_from_thread(self.refresh_bindings)
        answer, started = "", time.monotonic()
        try:
            for piece in self.predictor.task.stream_answer(self.predictor, text,
                                                           lambda: self._stop_asked or worker.is_cancelled):
                answer += piece
                if not worker.is_cancelled:
                    self.app.call_from_thread(self._show_stream, text, answer, False)
        except Exception as err:  # shown, not raised: the screen stays usable
            if not worker.is_cancelled:
                self.app.call_from_thread(self._status, Text(f"Answering failed: {err}", style="bold red"))
            return
        finally:
            self.streaming = False
            self.app.call_from_thread(self.refresh_bindings)
        if not worker.is_cancelled:
            took = time.monotonic() - started
            self.app.call_from_thread(self._show_stream, text, answer, True,
                                      f"{'stopped' if self._stop_asked else 'done'} in {took:.1f} s")

    def _show_stream(self, text: str, answer: str, done: bool, note: str = "") -> None:
        self.answer = {"generated_text": answer}
        self.shown_for = (text, None)
        panel = self.query_one("#try-bars", Static)
        panel.border_title = "Answer" if done else "Answer (writing…)"
        panel.border_subtitle = note
        panel.update(Text(answer or "…", style="bold green" if done else "green"))

    def action_stop_answer(self) -> None:
        self._stop_asked = True

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop_answer":
            # Live while an answer is being written, greyed between answers, hidden for a model that answers at once.
            return True if self.streaming else (None if self.streams else False)
        return True

    def _schedule(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(delay, self._predict_now) if delay else None
        if not delay:
            self._predict_now()

    def _predict_now(self) -> None:
        if self.predictor is None:
            return
        text = self.query_one("#try-text", Input).value
        pair = self.query_one("#try-pair", Input).value if self.is_pair else None
        if not text.strip():
            self.query_one("#try-bars", Static).update(Text("Type a text above.", style="dim"))
            return
        if self.streams:
            return  # on Enter (_submitted)
        self._predict(text, pair)

    @work(thread=True, exclusive=True, group="try-predict", exit_on_error=False)
    def _predict(self, text: str, pair: str | None) -> None:
        worker = get_current_worker()
        try:
            answer = self.predictor.predict([text], [pair] if pair is not None else None, batch_size=1)[0]
        except Exception as err:  # e.g. a text the tokenizer refuses: say so, keep the screen
            if not worker.is_cancelled:
                self.app.call_from_thread(self._status, Text(f"Prediction failed: {err}", style="bold red"))
            return
        if not worker.is_cancelled:
            self.app.call_from_thread(self._show, text, pair, answer)

    def _show(self, text: str, pair: str | None, answer: dict[str, Any]) -> None:
        self.answer = answer
        self.shown_for = (text, pair)
        view = self.predictor.task.try_view(answer, self.predictor.meta)
        panel = self.query_one("#try-bars", Static)
        panel.border_title = view.title
        shown = view_bars(view.bars, percent=not view.line)
        if view.line:
            shown = Text(view.line, style="bold green") + (Text("\n") + shown if view.bars else Text())
        panel.update(shown)

    def _status(self, message: str | Text) -> None:
        self.query_one("#try-status", Static).update(message)

    def action_back(self) -> None:
        from tui.screens.monitor import leave_screen

        leave_screen(self)
