"""One config field in the wizard: its name, an editor, what it does (one line) and, when wrong, why."""

from __future__ import annotations

from typing import Any, Literal

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.suggester import Suggester
from textual.widgets import Checkbox, Input, Label, Select, Static

from tui.draft import Draft, FieldProblem, as_text, help_for, parse_value

Editor = Literal["input", "select", "checkbox"]


class FieldRow(Vertical):
    """Edits `draft.get(path)`; valid values go straight into the draft, invalid ones are shown inline."""

    class Changed(Message):
        """The person changed the field; `problem` is None when the value was taken."""

        def __init__(self, row: FieldRow, path: str, value: Any, problem: str | None) -> None:
            super().__init__()
            self.row = row
            self.path = path
            self.value = value
            self.problem = problem

        @property
        def control(self) -> FieldRow:
            return self.row

    def __init__(
        self,
        draft: Draft,
        path: str,
        *,
        label: str | None = None,
        editor: Editor = "input",
        options: list[tuple[str, Any]] | None = None,
        placeholder: str = "",
        suggester: Suggester | None = None,
        help: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=f"field-row {classes or ''}".strip())
        self.draft = draft
        self.path = path
        self.label = label or path.rpartition(".")[2]
        self.editor_kind = editor
        self.options = options or []
        self.placeholder = placeholder
        self.suggester = suggester
        self.help_text = help if help is not None else help_for(path)
        self.problem: str | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(classes="field-line"):
            yield Label(self.label, classes="field-label")
            yield self._make_editor()
        yield Static(self.help_text, classes="field-help", markup=False)
        yield Static("", classes="field-error", markup=False)

    def _make_editor(self) -> Input | Select[Any] | Checkbox:
        value = self.draft.get(self.path)
        editor_id = "editor"
        if self.editor_kind == "select":
            allow_blank = any(v is None for _, v in self.options)
            options = [(label, v) for label, v in self.options if v is not None]
            initial = value if any(v == value for _, v in options) else Select.NULL
            prompt = next((label for label, v in self.options if v is None), "Select")
            return Select(options, value=initial, allow_blank=allow_blank, prompt=prompt, compact=True, id=editor_id)
        if self.editor_kind == "checkbox":
            return Checkbox(_on_off(value), bool(value), compact=True, id=editor_id)
        return Input(
            as_text(value, self.path), placeholder=self.placeholder, suggester=self.suggester, compact=True,
            id=editor_id, select_on_focus=False,
        )

    # --- reading and writing -------------------------------------------------------------------
    @property
    def editor(self) -> Input | Select[Any] | Checkbox:
        return self.query_one("#editor")  # type: ignore[return-value]

    def raw_value(self) -> Any:
        editor = self.editor
        if isinstance(editor, Select):
            return None if editor.value is Select.NULL else editor.value
        return editor.value

    def reload(self) -> None:
        """Show the draft's current value (after the draft changed behind this row)."""
        value = self.draft.get(self.path)
        editor = self.editor
        if isinstance(editor, Select):
            self.set_options(self.options, value)
        elif isinstance(editor, Checkbox):
            editor.value = bool(value)
        else:
            editor.value = as_text(value, self.path)
        self._show_problem(None)

    def set_options(self, options: list[tuple[str, Any]], value: Any = None) -> None:
        """Replace a select's choices (e.g. the dataset's columns) and pick `value` if it is one of them."""
        self.options = options
        editor = self.editor
        assert isinstance(editor, Select)
        editor.set_options([(label, v) for label, v in options if v is not None])
        if any(v == value for _, v in options if v is not None):
            editor.value = value
        elif any(v is None for _, v in options):
            editor.clear()

    def validate_now(self) -> str | None:
        """Re-read the editor into the draft (quietly: nothing changed); returns the problem, if any."""
        self._take(self.raw_value(), announce=False)
        return self.problem

    def _take(self, raw: Any, *, announce: bool = True) -> None:
        try:
            value = parse_value(self.path, raw)
        except FieldProblem as err:
            self._show_problem(str(err))
            if announce:
                self.post_message(self.Changed(self, self.path, raw, self.problem))
            return
        self.draft.set(self.path, value)
        self._show_problem(None)
        if announce:
            self.post_message(self.Changed(self, self.path, value, None))

    def show_problem(self, problem: str | None) -> None:
        """Show a problem found elsewhere (e.g. a check across fields) against this field."""
        self._show_problem(problem)

    def _show_problem(self, problem: str | None) -> None:
        self.problem = problem
        error = self.query_one(".field-error", Static)
        error.update(problem or "")
        self.set_class(problem is not None, "-invalid")

    # --- events from the editor ----------------------------------------------------------------
    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._take(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        # Not stopped: a step may act on Enter (e.g. load the dataset); `event.input.parent` leads back here.
        self._take(event.value)

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self._take(None if event.value is Select.NULL else event.value)

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        event.checkbox.label = _on_off(event.value)
        self._take(event.value)


def _on_off(value: Any) -> str:
    return "on" if value else "off"
