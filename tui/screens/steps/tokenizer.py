"""Step 4: padding, truncation and max_length, judged against this dataset's real token lengths."""

from __future__ import annotations

import json
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.widgets import Static

from core.errors import UserError
from core.tasks import get_task
from tui.draft import choices
from tui.screens.steps.base import Step, heavy, say
from tui.widgets.field_row import FieldRow
from tui.widgets.length_histogram import LengthHistogram
from tui.widgets.spinner import Spinner

HISTOGRAM_BINS = 8
EXAMPLE_TOKENS = 48


def _measure(model: dict[str, Any], prepared: Any, max_length: int, truncation: bool,
             batch_size: int) -> tuple[Any, list[str], Any]:
    """Length statistics of (a sample of) the training texts, the first example as tokens, and the task's own
    facts about the lengths (e.g. where each entity ends, in tokens)."""
    from core.config import ModelConfig
    from core.tasks import get_task
    from core.tokenization import load_tokenizer

    tokenizer = load_tokenizer(ModelConfig.model_validate(model))
    task = get_task(prepared.task)
    facts = task.length_facts(prepared, tokenizer)
    stats = task.measure_lengths(prepared, tokenizer, max_length, batch_size=batch_size, truncation=truncation,
                                 facts=facts)
    # Untruncated, with the special tokens the model sees ([CLS] ... [SEP]); the view marks the cut.
    tokens = tokenizer.convert_ids_to_tokens(task.first_example_ids(prepared, tokenizer))
    return stats, tokens, facts


def padding_key(padding: str, group_by_length: bool) -> str:
    """The LengthStats.padding_share key for a padding mode (dynamic padding gains from length grouping)."""
    return "dynamic+group_by_length" if padding == "dynamic" and group_by_length else padding


def describe(stats: Any, padding: str, group_by_length: bool, model_max: int | None) -> str:
    p = stats.percentiles
    measured = f"{len(stats.lengths):,} of {stats.total:,} examples" if stats.sampled else f"{stats.total:,} examples"
    lines = [
        f"Tokens per example: median {p.get(50)}, 90% ≤ {p.get(90)}, 99% ≤ {p.get(99)}, longest {p.get(100)} "
        f"({measured})"
    ]
    if stats.truncation:
        lines.append(f"Truncated at max_length {stats.max_length}: {stats.share_truncated:.1%} of examples.")
    else:
        lines.append(f"Truncation off: {stats.share_longer:.1%} of examples are longer than {stats.max_length}.")
    key = padding_key(padding, group_by_length)
    share = stats.padding_share.get(key)
    if share is not None:
        how = f"{padding} padding" + (" with group_by_length" if key != padding else "")
        line = f"Padding ({how}, batch {stats.batch_size}): {share:.1%} of the tokens fed are padding."
        best = min(stats.padding_share.items(), key=lambda kv: kv[1])
        if best[0] != key and share - best[1] > 0.05:
            line += f" ({best[0]}: {best[1]:.1%})"
        lines.append(line)
    if model_max is not None and stats.max_length > model_max:
        lines.append(f"⚠ max_length {stats.max_length} is above the model's limit of {model_max} tokens.")
    return "\n".join(lines)


def token_line(tokens: list[str], cut_at: int | None) -> str:
    kept = tokens if cut_at is None else tokens[:cut_at]
    text = " ".join(kept[:EXAMPLE_TOKENS])
    if len(kept) > EXAMPLE_TOKENS:
        text += f" … ({len(kept)} tokens)"
    if cut_at is not None and len(tokens) > cut_at:
        text += f"  ✂ {len(tokens) - cut_at} more tokens cut by max_length"
    return text or "(empty)"


class TokenizerStep(Step):
    TITLE = "Tokenizer"
    NAME = "tokenizer"

    def compose(self) -> ComposeResult:
        d = self.draft
        yield Static("How should texts become tokens?", classes="step-title")
        yield FieldRow(d, "tokenizer.padding", label="Padding", editor="select",
                       options=[(c, c) for c in choices("tokenizer.padding")])
        yield FieldRow(d, "tokenizer.truncation", label="Truncation", editor="checkbox")
        yield FieldRow(d, "tokenizer.max_length", label="Max length")
        yield Spinner(id="tokens-loading")
        yield Static("", id="length-summary", markup=False)
        yield Static("Token lengths", classes="section-title")
        yield LengthHistogram(id="histogram")
        yield Static("First example as tokens", classes="section-title")
        yield Static("", id="token-example", markup=False)

    def key(self) -> str:
        return json.dumps([self.draft.get("model"), self.findings.prepared_key], sort_keys=True, default=str)

    def on_enter(self) -> None:
        self.hide_unused()
        if self.findings.prepared is None:
            say(self.query_one("#length-summary", Static), "Pass the dataset step to see token lengths.")
            return
        if self.findings.stats_key != self.key():
            self.measure()
        else:
            self.refresh_view()

    def on_field_row_changed(self, event: FieldRow.Changed) -> None:
        if event.problem is None and self.findings.length_stats is not None:
            self.refresh_view()

    @work(thread=True, exclusive=True, group="token-lengths", exit_on_error=False)
    def measure(self) -> None:
        key = self.key()
        self.app.call_from_thread(self._busy, True)
        try:
            stats, tokens, facts = heavy(_measure, self.draft.get("model"), self.findings.prepared,
                                  int(self.draft.get("tokenizer.max_length")),
                                  bool(self.draft.get("tokenizer.truncation")),
                                  int(self.draft.get("training.per_device_train_batch_size") or 16))
        except UserError as err:
            self.app.call_from_thread(self._failed, err.message)
            return
        except Exception as err:  # a tokenizer that fails on this data must not end the wizard
            self.app.call_from_thread(self._failed, f"{type(err).__name__}: {err}")
            return
        finally:
            self.app.call_from_thread(self._busy, False)
        self.findings.length_stats, self.findings.example_tokens, self.findings.stats_key = stats, tokens, key
        self.findings.length_facts = facts
        self.app.call_from_thread(self.refresh_view)

    def _busy(self, busy: bool) -> None:
        self.query_one("#tokens-loading", Spinner).set_busy(busy)
        if busy:
            say(self.query_one("#length-summary", Static), "Tokenizing a sample of the training texts…")

    def _failed(self, message: str) -> None:
        say(self.query_one("#length-summary", Static), f"✗ cannot measure token lengths: {message}", "-error")

    def refresh_view(self) -> None:
        base = self.findings.length_stats
        if base is None:
            return
        max_length = int(self.draft.get("tokenizer.max_length"))
        truncation = bool(self.draft.get("tokenizer.truncation"))
        stats = base.with_settings(max_length=max_length, truncation=truncation,
                                   batch_size=int(self.draft.get("training.per_device_train_batch_size") or 16))
        model_max = getattr(self.findings.model_info, "max_length", None)
        task = get_task(self.findings.prepared.task)
        lines = task.describe_lengths(self.findings.length_facts, max_length, truncation)
        say(self.query_one("#length-summary", Static),
            "\n".join([describe(stats, self.draft.get("tokenizer.padding"),
                                 bool(self.draft.get("training.group_by_length")), model_max), *lines]))
        self.query_one(LengthHistogram).show(stats.histogram(HISTOGRAM_BINS), max_length if truncation else None)
        self.query_one("#token-example", Static).update(token_line(self.findings.example_tokens or [],
                                                                   max_length if truncation else None))

    def quick_problems(self) -> list[str]:
        return self.field_problems() + self.section_problems("tokenizer")
