"""text-generation's tokens, in plain Python: the prompt template, which tokens carry the loss, truncation, packing
and the batches every engine trains on. finetune-tui trains with this code, and exported standalone scripts inline
its source verbatim (Task.script_context), so a script tokenizes, masks and packs exactly as a run does.

So it imports nothing of finetune-tui, only the standard library at module level (transformers, trl, torch and
jinja2 inside the functions that need them), and has no `from __future__` import (it would not stay at the top of a
script). Problems a user can fix are InputError (a ValueError, with the fix): finetune-tui raises them again as its
own ConfigError, DataError or ModelError (formats.user_errors), which the CLI prints without a traceback.

Which tokens carry the loss (training.train_on_prompt false, the default):
    prompt + completion   the completion's tokens and the EOS appended to it; none of the prompt's
    messages              each assistant turn as the chat template writes it, its end-of-turn marker (ChatML's
                          <|im_end|>) included, so the model learns to stop; no system or user token
    text                  every token
train_on_prompt true: every token of every shape. The first token of an example never carries loss in any shape:
nothing before it predicts it (the causal LM loss compares token i + 1 with the output at token i), and
DataCollatorWithFlattening drops it the same way where examples are packed, so counts here are the tokens trained on.

Truncation keeps the start and cuts the end (the response's end; for chat, the last turns), as TRL's keep_start does.
An example left with no loss token (a prompt that fills max_length) would cost a step and teach nothing: it is left out
and counted, never silently kept.
"""

import bisect
import math
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# The shapes of a prepared split, named as TRL's SFTTrainer names its dataset columns.
PROMPT, COMPLETION, MESSAGES, TEXT = "prompt", "completion", "messages", "text"
IGNORE_INDEX = -100
Span = tuple[int, int]  # token positions [start, end) that carry the loss
# End-of-turn markers of the common chat formats: generation stops at any the tokenizer has as one token, besides EOS.
TURN_ENDS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "</s>")
_GENERATION_TAG = re.compile(r"\{%-?\s*generation\s*-?%\}")  # as transformers looks for it


class InputError(ValueError):
    """A problem with the data, the config or the model that the user can fix: kind "data", "config" or "model"."""

    def __init__(self, kind: str, problem: str, fix: str) -> None:
        super().__init__(f"{problem}\n  fix: {fix}")
        self.kind, self.problem, self.fix = kind, problem, fix


# --- prompts --------------------------------------------------------------------------------------------------------

def is_empty(value: Any) -> bool:
    """None, a NaN (pandas' missing value) or text that is only whitespace."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    return isinstance(value, str) and not value.strip()



@dataclass(frozen=True)
class PromptTemplate:
    """data.prompt_template, e.g. "{instruction}\\n\\n{input}": text with {column} fields (literal braces doubled, as
    in str.format). An empty field drops out with the text that separates it from the field before it (for the first
    field: from the field after it), so "{instruction}\\n\\n{input}" with an empty input is just the instruction, and
    Alpaca's "### Instruction:\\n{instruction}\\n\\n### Input:\\n{input}\\n\\n### Response:\\n" loses its Input
    section. Text before the first field and after the last always stays; end the template with what the model should
    read right before the answer (the answer's tokens follow the prompt's directly)."""

    template: str
    prefix: str
    fields: tuple[str, ...]
    separators: tuple[str, ...]  # separators[i]: the text between fields[i] and fields[i + 1]
    suffix: str

    @classmethod
    def parse(cls, template: str) -> "PromptTemplate":
        key = "data.prompt_template"
        try:
            parts = list(string.Formatter().parse(template))
        except ValueError as err:
            raise InputError("config", f"{key} {template!r} is not a valid template: {err}",
                             "name columns in braces, e.g. '{instruction}\\n\\n{input}', and write a literal brace "
                             "as {{ or }}") from None
        # Formatter.parse gives (text, field) pairs, and text alone where a doubled brace splits the text: the text
        # before each field is gathered, and what follows the last field is the suffix.
        literals, fields, text = [], [], ""
        for literal, field, spec, conversion in parts:
            text += literal
            if field is None:
                continue
            literals.append(text)
            text = ""
            if not field or not re.fullmatch(r"[^.\[\]]+", field) or spec or conversion:
                shown = f"{{{field}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}"
                raise InputError("config", f"{key} {template!r} has the field {shown}, and a field names one column, "
                                 "nothing more", "write each field as {column}, e.g. {instruction}")
            fields.append(field)
        if not fields:
            raise InputError("config", f"{key} {template!r} names no column",
                             "name the columns in braces, e.g. '{instruction}\\n\\n{input}'")
        return cls(template, literals[0], tuple(fields), tuple(literals[1:]), text)

    def missing(self, columns: Iterable[str]) -> list[str]:
        """The template's columns that are not among `columns`, in the template's order."""
        have = set(columns)
        return [f for f in dict.fromkeys(self.fields) if f not in have]

    def render(self, values: Mapping[str, Any]) -> str:
        """The prompt for one row (column -> value); numbers are written as text."""
        out, kept = [self.prefix], False
        for i, field in enumerate(self.fields):
            value = values.get(field)
            if is_empty(value):
                continue
            if kept:
                out.append(self.separators[i - 1])
            out.append(str(value))
            kept = True
        out.append(self.suffix)
        return "".join(out)

    def is_empty(self, values: Mapping[str, Any]) -> bool:
        """Whether every field of the template is empty for this row."""
        return all(is_empty(values.get(f)) for f in self.fields)


# --- tokens --------------------------------------------------------------------------------------------------------

@dataclass
class Encoding:
    """One example's tokens before truncation, and the spans of them that carry the loss (never position 0)."""

    input_ids: list[int]
    spans: list[Span]

    def labels(self, max_length: int | None = None) -> list[int]:
        """The labels of the first max_length tokens: the token where it carries the loss, -100 elsewhere."""
        n = len(self.input_ids) if max_length is None else min(len(self.input_ids), max_length)
        labels = [IGNORE_INDEX] * n
        for start, end in self.spans:
            end = min(end, n)
            if start < end:
                labels[start:end] = self.input_ids[start:end]
        return labels

    def loss_tokens(self, max_length: int | None = None) -> int:
        n = len(self.input_ids) if max_length is None else min(len(self.input_ids), max_length)
        return sum(max(0, min(end, n) - start) for start, end in self.spans)


def eos_id(tokenizer: Any) -> int:
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        name = getattr(tokenizer, "name_or_path", "") or "this model"
        raise InputError("model", f"the tokenizer of {name} has no end-of-sequence token, which ends every answer "
                         "and text so the model learns where to stop",
                         "choose a decoder LM whose tokenizer sets eos_token")
    return int(eos)


def _ids(tokenizer: Any, texts: list[str], special: bool) -> list[list[int]]:
    if not texts:
        return []
    enc = tokenizer(texts, add_special_tokens=special, return_attention_mask=False, return_token_type_ids=False,
                    verbose=False)
    return [list(ids) for ids in enc["input_ids"]]


def encode(tokenizer: Any, batch: Mapping[str, Sequence[Any]], *, train_on_prompt: bool = False,
           chat_template: str | None = None, indices: Sequence[int] | None = None) -> list[Encoding]:
    """Each example of a batch in one of the shapes ({prompt, completion}, {messages} or {text}) as tokens and loss
    spans, untruncated. chat_template: the resolved template (formats.resolve_chat_template) for messages. indices:
    the examples' rows in their split, for errors (0-based; the batch's own positions by default)."""
    if MESSAGES in batch:
        if chat_template is None:
            raise ValueError("messages need the chat template (formats.resolve_chat_template)")
        return _encode_chats(tokenizer, list(batch[MESSAGES]), chat_template, train_on_prompt, indices)
    eos = eos_id(tokenizer)
    if PROMPT in batch and COMPLETION in batch:
        # Prompt and response are tokenized apart and joined: the boundary is then exact (no BPE merge straddles
        # it), and the prompt's tokens are the ones generation starts from, where the prompt is tokenized alone.
        prompts = _ids(tokenizer, [str(p) for p in batch[PROMPT]], special=True)
        responses = _ids(tokenizer, [str(c) for c in batch[COMPLETION]], special=False)
        out = []
        for prompt, response in zip(prompts, responses, strict=True):
            if prompt and prompt[-1] == eos:  # a tokenizer that ends every text with EOS (add_eos_token): not a prompt
                prompt = prompt[:-1]
            ids = prompt + response + [eos]
            out.append(Encoding(ids, [(1 if train_on_prompt else max(1, len(prompt)), len(ids))]))
        return out
    if TEXT in batch:
        out = []
        for ids in _ids(tokenizer, [str(t) for t in batch[TEXT]], special=True):
            if not ids or ids[-1] != eos:  # EOS ends each document, so packed documents stay apart in meaning too
                ids.append(eos)
            out.append(Encoding(ids, [(1, len(ids))]))
        return out
    raise ValueError(f"a batch holds {MESSAGES}, {PROMPT} and {COMPLETION}, or {TEXT}; this one: {', '.join(batch)}")


# --- chat -----------------------------------------------------------------------------------------------------------
#
# Which tokens are the assistant's. transformers 5 offers apply_chat_template(return_assistant_tokens_mask=True),
# exact because the template itself marks the assistant's text with {% generation %} blocks, but few models' own
# templates have them (Llama 3's, Qwen2.5's and Mistral's do not). So: a template with the blocks goes through
# transformers; any other is rendered once whole and once for each assistant turn's prefixes (the conversation before
# the turn with the generation prompt, and through the turn), and the turn's characters are the difference. Comparing
# rendered text, not token counts, keeps BPE merges across a boundary from shifting the span: the whole conversation
# is tokenized once and a token is the assistant's when its characters overlap the turn's, as transformers does for
# {% generation %} spans. A template that renders a conversation's beginning differently from the whole (one that
# rewrites earlier turns, as reasoning models' templates drop old thinking) is refused with the fix, never guessed.

def _encode_chats(tokenizer: Any, conversations: list[Any], template: str, train_on_prompt: bool,
                  indices: Sequence[int] | None) -> list[Encoding]:
    from jinja2 import TemplateError

    if not getattr(tokenizer, "is_fast", False):
        name = getattr(tokenizer, "name_or_path", "") or "this model"
        raise InputError("model", f"the tokenizer of {name} is a slow (Python) tokenizer, and finding the "
                         "assistant's tokens in a conversation needs a fast tokenizer's character offsets",
                         "choose a model with a fast tokenizer (tokenizer.json)")
    tagged = bool(_GENERATION_TAG.search(template))
    out = []
    for n, turns in enumerate(conversations):
        try:
            if tagged:
                enc = tokenizer.apply_chat_template(turns, chat_template=template, tokenize=True, return_dict=True,
                                                    return_assistant_tokens_mask=True)
                ids, mask = list(enc["input_ids"]), list(enc["assistant_masks"])
            else:
                ids, mask = _assistant_mask_by_prefixes(tokenizer, turns, template)
        except TemplateError as err:
            row = (indices[n] if indices is not None else n) + 1
            raise InputError("data", f"the chat template cannot write out the conversation of data row {row} "
                             f"(1 = first data row): {err}", "change that conversation as the message says, or set "
                             "data.chat_template (e.g. chatml)") from None
        spans = [(1, len(ids))] if train_on_prompt else _runs(mask)
        out.append(Encoding(ids, spans))
    return out


def _assistant_mask_by_prefixes(tokenizer: Any, turns: list[dict[str, str]], template: str) -> tuple[list[int],
                                                                                                     list[int]]:
    def render(part: list[dict[str, str]], prompt: bool) -> str:
        if not part:
            return ""
        return str(tokenizer.apply_chat_template(part, chat_template=template, tokenize=False,
                                                 add_generation_prompt=prompt))

    whole = render(turns, False)
    chars: list[Span] = []
    for k, turn in enumerate(turns):
        if turn["role"] != "assistant":
            continue
        before, through = render(turns[:k], True), render(turns[:k + 1], False)
        if not (whole.startswith(before) and whole.startswith(through) and len(before) <= len(through)):
            raise InputError(
                "model", "the chat template writes the beginning of a conversation differently from the whole "
                "conversation (it changes earlier turns), so the assistant's tokens cannot be told from the rest",
                "set data.chat_template: chatml, or give a template that marks the assistant's text with "
                "{% generation %} ... {% endgeneration %}")
        # The layout after the turn's end marker (ChatML's newline) is the template's, not the answer's.
        chars.append((len(before), len(through.rstrip())))
    enc = tokenizer(whole, add_special_tokens=False, return_offsets_mapping=True, return_attention_mask=False)
    ids = list(enc["input_ids"])
    mask, span = [0] * len(ids), 0
    for position, (start, end) in enumerate(enc["offset_mapping"]):
        while span < len(chars) and start >= chars[span][1]:
            span += 1
        if span == len(chars):
            break
        if end > chars[span][0]:  # overlaps the turn (a token trimmed to no width inside it counts too)
            mask[position] = 1
    return ids, mask


def _runs(mask: Sequence[int]) -> list[Span]:
    """[start, end) of each run of 1s in a mask, never starting at position 0."""
    spans: list[Span] = []
    start = None
    for i, m in enumerate([*mask, 0]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            if max(start, 1) < i:
                spans.append((max(start, 1), i))
            start = None
    return spans


# --- truncation ---------------------------------------------------------------------------------------------------

def tokenize_batch(tokenizer: Any, batch: Mapping[str, Sequence[Any]], *, max_length: int,
                   train_on_prompt: bool = False, chat_template: str | None = None,
                   indices: Sequence[int] | None = None) -> dict[str, list[Any]]:
    """A Dataset.map(batched=True) batch as columns: input_ids and labels cut to max_length, `length` (tokens before
    the cut), `loss_tokens` (after it) and `cut` (the cut took loss tokens). Keep the rows with loss_tokens > 0
    (Tokenized.lossless counts the others)."""
    encodings = encode(tokenizer, batch, train_on_prompt=train_on_prompt, chat_template=chat_template, indices=indices)
    out: dict[str, list[Any]] = {"input_ids": [], "labels": [], "length": [], "loss_tokens": [], "cut": []}
    for enc in encodings:
        out["input_ids"].append(enc.input_ids[:max_length])
        out["labels"].append(enc.labels(max_length))
        out["length"].append(len(enc.input_ids))
        kept = enc.loss_tokens(max_length)
        out["loss_tokens"].append(kept)
        out["cut"].append(kept < enc.loss_tokens())
    return out


def training_rows(tokenizer: Any, batch: Mapping[str, Sequence[Any]], *, max_length: int, train_on_prompt: bool,
                  chat_template: str | None, pack: bool) -> dict[str, list[Any]]:
    """A Dataset.map(batched=True) batch as the rows an engine trains on: input_ids and labels cut to max_length, the
    examples left with no loss token left out (the tokenizer step counts them), packed into sequences with `pack`
    (then with each row's seq_lengths)."""
    cols = tokenize_batch(tokenizer, batch, max_length=max_length, train_on_prompt=train_on_prompt,
                          chat_template=chat_template)
    rows = [{"input_ids": ids, "labels": labels}
            for ids, labels, n in zip(cols["input_ids"], cols["labels"], cols["loss_tokens"], strict=True) if n]
    if pack:
        packed = packing(rows, max_length).rows
        return {key: [r[key] for r in packed] for key in ("input_ids", "labels", "seq_lengths")}
    return {"input_ids": [r["input_ids"] for r in rows], "labels": [r["labels"] for r in rows]}


# --- packing --------------------------------------------------------------------------------------------------------
#
# Packing puts several examples in one sequence of at most max_length tokens, with position ids restarting at 0 for
# each, so no example attends to another: transformers' attention reads the restarts (masking_utils'
# find_packed_sequence_indices for sdpa and eager, the varlen kernels for flash attention) when no attention_mask is
# given and the forward pass builds no cache (collate_packed says use_cache=False). The layout of a sequence is exactly
# DataCollatorWithFlattening's, which lays it out here (input_ids and labels concatenated, each example's first label
# -100, position ids restarting), so it is transformers' format by construction; TRL's padding-free collator reads the
# same rows through their seq_lengths.
#
# Which examples share a sequence: best-fit decreasing (TRL's "bfd" strategy): longest first, each into the open
# sequence it fills most tightly. An example is never split across sequences: an example's second half without its
# first would be trained on without its prompt. tokenize_batch has already cut every example to max_length, so each
# fits; a longer one here is a caller's error.

def pack_lengths(lengths: Sequence[int], max_length: int) -> list[list[int]]:
    """Groups of example indices (each group's lengths summing to at most max_length, indices ascending), by
    best-fit decreasing. Open sequences are kept by remaining room (at most max_length + 1 distinct values), so
    finding the tightest fit is a bisect, not a scan over every sequence."""
    bad = next((i for i, n in enumerate(lengths) if not 0 < n <= max_length), None)
    if bad is not None:
        raise ValueError(f"example {bad} has {lengths[bad]} tokens; packing takes examples of 1 to max_length "
                         f"({max_length}) tokens (cut them to max_length first)")
    rooms: list[int] = []  # the distinct room left in open sequences, ascending
    by_room: dict[int, list[int]] = {}  # room -> open sequences with that much left
    groups: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        n = lengths[i]
        j = bisect.bisect_left(rooms, n)
        if j < len(rooms):
            room = rooms[j]
            group = by_room[room].pop()
            if not by_room[room]:
                del by_room[room], rooms[j]
        else:
            room, group = max_length, len(groups)
            groups.append([])
        groups[group].append(i)
        left = room - n
        if left:
            if left not in by_room:
                bisect.insort(rooms, left)
                by_room[left] = []
            by_room[left].append(group)
    return [sorted(g) for g in groups]


@dataclass
class Packed:
    """Packed sequences: input_ids, labels, position_ids (restarting at 0 per example) and seq_lengths per row."""

    rows: list[dict[str, list[int]]]
    groups: list[list[int]]  # the examples (positions in the input) in each row
    efficiency: float  # real tokens / (rows * max_length): the share of a max_length-wide batch that is not padding


def packing(examples: Sequence[Mapping[str, Sequence[int]]], max_length: int) -> Packed:
    """Tokenized examples (input_ids, labels; each at most max_length long) packed into sequences of at most
    max_length tokens."""
    from transformers import DataCollatorWithFlattening

    lengths = [len(e["input_ids"]) for e in examples]
    groups = pack_lengths(lengths, max_length)
    flatten = DataCollatorWithFlattening(return_tensors="np", separator_id=IGNORE_INDEX)
    rows = []
    for group in groups:
        laid = flatten([{"input_ids": list(examples[i]["input_ids"]), "labels": list(examples[i]["labels"])}
                        for i in group])
        rows.append({"input_ids": laid["input_ids"][0].tolist(), "labels": laid["labels"][0].tolist(),
                     "position_ids": laid["position_ids"][0].tolist(), "seq_lengths": [lengths[i] for i in group]})
    efficiency = sum(lengths) / (len(groups) * max_length) if groups else 0.0
    return Packed(rows, groups, efficiency)


def collator(tokenizer: Any, packed: bool, pad_to_multiple_of: int | None = None, return_tensors: str = "pt") -> Any:
    """What makes batches of tokenized rows on every engine. Unpacked rows: TRL's DataCollatorForLanguageModeling
    (the one its SFTTrainer uses), padded with an attention mask and labels -100. Packed rows (those with
    seq_lengths) stay rows: position ids restarting at 0 for each example, the row padded to the batch's longest with
    positions that go on counting (the padding joins the row's last example, after its real tokens, which causal
    attention never lets them see), and no attention mask, so transformers' attention keeps each example to itself
    (masking_utils.find_packed_sequence_indices). Not TRL's padding-free single row: with SDPA or eager attention,
    which finetune-tui loads, one row of batch x max_length tokens costs attention over all of them (batch^2 times
    the work; 2x slower on CPU in bench/sft.py), where flash attention's varlen kernels would not. use_cache=False
    goes with every batch: transformers (5.x) looks for packed sequences in the position ids only when the forward
    pass builds no cache, and a model whose config says use_cache (most do) builds one even in training."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    padded = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, pad_to_multiple_of=pad_to_multiple_of,
                                             return_tensors=return_tensors)
    pad_id = tokenizer.pad_token_id

    def collate(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        if not (packed and rows and "seq_lengths" in rows[0]):
            return {**padded([{k: r[k] for k in ("input_ids", "labels")} for r in rows]), "use_cache": False}
        width = max(len(r["input_ids"]) for r in rows)
        if pad_to_multiple_of:
            width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
        ids, labels, positions = [], [], []
        for r in rows:
            n = len(r["input_ids"])
            restart = [p for length in r["seq_lengths"] for p in range(length)]
            last = restart[-1] if restart else -1
            ids.append(list(r["input_ids"]) + [pad_id] * (width - n))
            labels.append(list(r["labels"]) + [IGNORE_INDEX] * (width - n))
            positions.append(restart + list(range(last + 1, last + 1 + width - n)))
        out: dict[str, Any] = {"input_ids": ids, "labels": labels, "position_ids": positions}
        if return_tensors == "pt":
            import torch

            out = {k: torch.tensor(v, dtype=torch.long) for k, v in out.items()}
        return {**out, "use_cache": False}

    return collate




# --- the saved model -------------------------------------------------------------------------------------------------

def stop_ids(tokenizer: Any) -> list[int]:
    """EOS and the end-of-turn markers the tokenizer has as single tokens."""
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    vocab = tokenizer.get_vocab()
    ids += [vocab[t] for t in TURN_ENDS if t in vocab and vocab[t] not in ids]
    return ids


def ready_to_generate(model: Any, tokenizer: Any) -> None:
    """Generation from the saved directory (pipeline, generate) stops where an answer ends and pads as trained; the
    cache that training turned off is back on."""
    model.config.use_cache = True
    gen = model.generation_config
    gen.eos_token_id = stop_ids(tokenizer)
    gen.pad_token_id = tokenizer.pad_token_id
