"""Step 6: the whole config as YAML, warnings, save to a file, the command to run it, and Start."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Input, Label, Static

from core.errors import ConfigError, UserError
from tui.draft import DEFAULT_SAVE_PATH, review_warnings, run_command
from tui.screens.steps.base import Step, say
from tui.widgets.path_suggester import PathSuggester

if TYPE_CHECKING:
    from core.config import RunConfig


def _gpu_present() -> bool:
    from core.device import snapshot

    return bool(snapshot().get("gpus"))


class ReviewStep(Step):
    TITLE = "Review"
    NAME = "review"

    class StartRequested(Message):
        """Start pressed with a valid config; the wizard starts the run and opens the monitor."""

        def __init__(self, config: RunConfig) -> None:
            super().__init__()
            self.config = config

    def __init__(self, *args: Any, save_path: Path | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.save_path = save_path or DEFAULT_SAVE_PATH
        self.saved: Path | None = None
        self.config: RunConfig | None = None

    def compose(self) -> ComposeResult:
        yield Static("Review, save and start", classes="step-title")
        yield Static("", id="review-problems", markup=False)
        yield Static("", id="review-warnings", markup=False)
        with Horizontal(classes="save-row"):
            yield Label("Save to", classes="field-label")
            yield Input(str(self.save_path), id="save-path", compact=True, suggester=PathSuggester())
            yield Button("Save", id="save", compact=True)
        yield Static("", id="save-status", markup=False)
        with Horizontal(classes="command-row"):
            yield Static("", id="run-command", markup=False)
            yield Button("Copy", id="copy-command", compact=True)
            yield Button("Export script", id="export-script", compact=True)
        with Horizontal(classes="button-row"):
            yield Button("Start training", id="start", variant="success", compact=True)
        # Below the actions, so Save and Start are in view without scrolling even at 80x24.
        with VerticalScroll(id="review-yaml"):
            yield Static("", id="review-yaml-text")

    def on_mount(self) -> None:
        for box in ("#review-problems", "#review-warnings", "#save-status"):
            self.query_one(box).display = False

    def on_enter(self) -> None:
        self.refresh_review()

    def refresh_review(self) -> None:
        problems = self.query_one("#review-problems", Static)
        try:
            self.config = self.draft.build()
        except ConfigError as err:
            self.config = None
            say(problems, f"✗ {err.problem}", "-error")
            self.query_one("#start", Button).disabled = True
            return
        say(problems, "")
        self.query_one("#start", Button).disabled = False
        from rich.syntax import Syntax  # pygments: loaded when the review is first shown

        yaml_text = self.config.to_yaml()
        self.query_one("#review-yaml-text", Static).update(
            Syntax(yaml_text, "yaml", theme="ansi_dark", background_color="default", word_wrap=True)
        )
        self._show_command()
        self._show_warnings(None)
        self.check_device()

    @work(thread=True, exclusive=True, group="review-device", exit_on_error=False)
    def check_device(self) -> None:
        try:
            device = "cuda" if _gpu_present() else "cpu"
        except Exception:  # no monitoring library: skip the GPU warning rather than guess
            device = None
        self.app.call_from_thread(self._show_warnings, device)

    def _show_warnings(self, device: str | None) -> None:
        if self.config is None:
            return
        info = self.findings.model_info
        prepared = self.findings.prepared
        warnings = review_warnings(
            self.config,
            model_max_length=getattr(info, "max_length", None),
            model_parameters=getattr(info, "parameters", None),
            train_rows=(prepared.sizes.get("train") if prepared is not None else None),
            device=device,
        )
        say(self.query_one("#review-warnings", Static), "\n".join(f"⚠ {w}" for w in warnings), "-warning")

    def _show_command(self) -> None:
        path = self.saved or Path(self.query_one("#save-path", Input).value.strip() or DEFAULT_SAVE_PATH)
        note = "" if self.saved else "   (after saving)"
        self.query_one("#run-command", Static).update(f"$ {run_command(path)}{note}")

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "save-path":
            self.saved = None
            self._show_command()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "save-path":
            event.stop()
            self.save()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "save":
            self.save()
        elif event.button.id == "copy-command":
            path = self.saved or Path(self.query_one("#save-path", Input).value.strip() or DEFAULT_SAVE_PATH)
            self.app.copy_to_clipboard(run_command(path))
            self.app.notify(f"Copied: {run_command(path)}", timeout=3)
        elif event.button.id == "start":
            self.start()
        elif event.button.id == "export-script" and self.config is not None:
            folder = Path(self.query_one("#save-path", Input).value.strip() or DEFAULT_SAVE_PATH).expanduser().parent
            self._save_status("exporting a standalone training script…", "-warning")
            self.export_script(self.config, folder)

    # --- exporting -----------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="export", exit_on_error=False)
    def export_script(self, config: RunConfig, folder: Path) -> None:
        """The script reads the data to settle columns and labels (and imports TensorFlow for keras): a worker."""
        from core.export import export_config
        from core.launch import resolve_config

        try:
            resolved = resolve_config(config)
            resolved.output_dir = config.output_dir  # the script takes its output folder as an argument
            exported = export_config(resolved, "script")
            path = folder / exported.suggested_name
            if path.exists():
                raise UserError(f"{path} already exists", "move it away, or use `finetune-tui export --force`")
            folder.mkdir(parents=True, exist_ok=True)
            path.write_text(exported.text, encoding="utf-8")
        except (UserError, OSError) as err:
            self.app.call_from_thread(self._save_status, f"✗ {getattr(err, 'message', err)}", "-error")
            return
        note = f" ({exported.secrets_removed} token value(s) removed)" if exported.secrets_removed else ""
        self.app.call_from_thread(self._save_status, f"✓ script written to {path}{note}: python {path}", "-ok")

    # --- saving --------------------------------------------------------------------------------
    def save(self) -> None:
        if self.config is None:
            return
        text = self.query_one("#save-path", Input).value.strip()
        if not text:
            self._save_status("✗ give a file name to save to, e.g. finetune.yaml", "-error")
            return
        path = Path(text).expanduser()
        if path.is_dir():
            self._save_status(f"✗ {path} is a directory; give a file name such as {path / 'finetune.yaml'}",
                              "-error")
            return
        if path.exists():
            from tui.screens.confirm import ConfirmScreen

            def answered(replace: bool | None) -> None:
                if replace:
                    self._write(path, overwrite=True)
                else:
                    self._save_status(f"Not saved: {path} already exists. Choose another name.", "-warning")

            self.app.push_screen(
                ConfirmScreen(f"Replace {path}?", "A file with this name exists. Its contents will be lost.",
                              confirm_label="Replace", danger=True),
                answered,
            )
            return
        self._write(path, overwrite=False)

    def _write(self, path: Path, *, overwrite: bool) -> None:
        from core.config import save_config

        assert self.config is not None
        try:
            save_config(self.config, path, overwrite=overwrite)
        except (UserError, OSError) as err:
            self._save_status(f"✗ {getattr(err, 'message', err)}", "-error")
            return
        self.saved = path
        self._save_status(f"✓ saved to {path}", "-ok")
        self._show_command()

    def _save_status(self, text: str, kind: str) -> None:
        say(self.query_one("#save-status", Static), text, kind)

    # --- starting ------------------------------------------------------------------------------
    def start(self) -> None:
        self.refresh_review()
        if self.config is not None:
            self.post_message(self.StartRequested(self.config))

    def start_failed(self, message: str) -> None:
        self._save_status(f"✗ could not start: {message}", "-error")

