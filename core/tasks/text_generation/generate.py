"""text-generation's answers: what the model reads for a prompt, and greedy generation from it. Shared by the samples
a run writes at each evaluation, `finetune-tui predict`, the evaluation report and the Try screen, so all of them
ask the model exactly as training showed it questions.

How a prompt becomes the model's input follows the data the model was trained on (task.json's "format"):
    instruction   data.prompt_template with the prompt as its first field (the other fields empty)
    chat          one user turn, written by the run's chat template with the generation prompt after it
    text          the text itself, to be continued
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from core.tasks.text_generation.formats import (
    COMPLETION,
    MESSAGES,
    PROMPT,
    TEXT,
    PromptTemplate,
    resolve_chat_template,
)
from core.tasks.text_generation.shared import stop_ids

INSTRUCTION, CHAT, PLAIN = "instruction", "chat", "text"  # task.json's "format", from the prepared data's shape
MAX_NEW_TOKENS = 256  # predict's and the Try screen's bound on an answer
SAMPLE_NEW_TOKENS = 48  # the run's samples at each evaluation: enough to see the model learn, cheap to make
SAMPLES = 3  # validation prompts answered at each evaluation
_TEXT_SAMPLE_WORDS = 12  # plain text: the sample continues the first words of a validation text


def data_format(columns: Sequence[str]) -> str:
    """The shape of prepared rows (formats.py's columns) as task.json names it."""
    if MESSAGES in columns:
        return CHAT
    if PROMPT in columns and COMPLETION in columns:
        return INSTRUCTION
    if TEXT in columns:
        return PLAIN
    raise ValueError(f"rows hold neither {MESSAGES}, {PROMPT} and {COMPLETION}, nor {TEXT}: {', '.join(columns)}")


def _prompt_ids(tokenizer: Any, text: str) -> list[int]:
    """A prompt's tokens as training tokenized it (tokenize.encode): with the tokenizer's special tokens, without a
    trailing EOS (a tokenizer that ends every text with one would tell the model the text is over)."""
    ids = list(tokenizer(text, add_special_tokens=True)["input_ids"])
    if ids and ids[-1] == tokenizer.eos_token_id and len(ids) > 1:
        ids = ids[:-1]
    return ids


def _chat_ids(tokenizer: Any, turns: list[dict[str, str]], template: str) -> list[int]:
    text = tokenizer.apply_chat_template(turns, chat_template=template, tokenize=False, add_generation_prompt=True)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def user_prompt_ids(tokenizer: Any, meta: Mapping[str, Any], prompt: str) -> list[int]:
    """The model's input for a prompt someone typed (predict, the Try screen), per the format it was trained on."""
    fmt = meta.get("format", PLAIN)
    if fmt == CHAT:
        # The run's chat template is the saved tokenizer's own (TextGeneration.prepare_tokenizer).
        template = resolve_chat_template(tokenizer, None)
        return _chat_ids(tokenizer, [{"role": "user", "content": prompt}], template)
    if fmt == INSTRUCTION and meta.get("prompt_template"):
        template = PromptTemplate.parse(str(meta["prompt_template"]))
        return _prompt_ids(tokenizer, template.render({template.fields[0]: prompt}))
    return _prompt_ids(tokenizer, prompt)


def row_prompt(tokenizer: Any, row: Mapping[str, Any], chat_template: str | None) -> tuple[list[int], str, str]:
    """A prepared validation row as (the model's input, the prompt as people read it, the answer the data gives):
    the prompt and its completion; a conversation up to its last assistant turn, and that turn; or a text's first
    words and the rest."""
    if MESSAGES in row:
        turns = list(row[MESSAGES])
        last = max(i for i, t in enumerate(turns) if t["role"] == "assistant")
        shown = "\n".join(f"{t['role']}: {t['content']}" for t in turns[:last])
        return _chat_ids(tokenizer, turns[:last], str(chat_template)), shown, str(turns[last]["content"])
    if PROMPT in row:
        return _prompt_ids(tokenizer, str(row[PROMPT])), str(row[PROMPT]), str(row[COMPLETION])
    words = str(row[TEXT]).split(" ")
    head = " ".join(words[:min(_TEXT_SAMPLE_WORDS, max(1, len(words) // 2))])
    return _prompt_ids(tokenizer, head), head, str(row[TEXT])[len(head):].lstrip()


def generate(model: Any, tokenizer: Any, inputs: Sequence[Sequence[int]], max_new_tokens: int,
             batch_size: int = 8) -> list[str]:
    """Greedy answers (decoded, special tokens left out) for token inputs, batched with left padding so every
    answer starts right after its prompt."""
    if _is_keras(model):
        return _keras_generate(model, tokenizer, inputs, max_new_tokens, batch_size)
    import torch

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    answers: list[str] = []
    try:
        for start in range(0, len(inputs), max(1, batch_size)):
            chunk = [list(ids) for ids in inputs[start:start + batch_size]]
            width = max(len(ids) for ids in chunk)
            input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in chunk], device=device)
            mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in chunk], device=device)
            with torch.no_grad():
                out = model.generate(input_ids=input_ids, attention_mask=mask,
                                     **_generation_kwargs(tokenizer, max_new_tokens))
            answers += [tokenizer.decode(row, skip_special_tokens=True).strip() for row in out[:, width:].tolist()]
    finally:
        if was_training:
            model.train()
    return answers


def _is_keras(model: Any) -> bool:
    """A Keras model (the keras engine's KerasHub causal LM, during training), told without importing Keras."""
    import sys

    keras = sys.modules.get("keras")
    return keras is not None and isinstance(model, keras.Model)


_KERAS_WIDTH = 64  # Keras traces its generate function once per input width: widths are rounded up to a multiple


def _keras_generate(model: Any, tokenizer: Any, inputs: Sequence[Sequence[int]], max_new_tokens: int,
                    batch_size: int) -> list[str]:
    """Greedy answers from a KerasHub CausalLM without a preprocessor: token ids right-padded to the prompt plus
    max_new_tokens, which generation fills in where padding_mask is 0, stopping at the same tokens as the PyTorch
    path (stop_ids). Each answer is the tokens after its own prompt, up to its first stop token."""
    import numpy as np
    from keras_hub.samplers import GreedySampler

    if not isinstance(getattr(model, "sampler", None), GreedySampler):  # compile() leaves KerasHub's top-k
        model.sampler = GreedySampler()
        model.generate_function = None  # traced with the sampler it had
    stops = stop_ids(tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    limit = getattr(getattr(model, "backbone", None), "max_sequence_length", None)
    answers: list[str] = []
    for start in range(0, len(inputs), max(1, batch_size)):
        chunk = [list(ids) for ids in inputs[start:start + batch_size]]
        width = -(-(max(len(ids) for ids in chunk) + max_new_tokens) // _KERAS_WIDTH) * _KERAS_WIDTH
        if limit:  # learned positions (GPT-2's) end there: the answer is cut short instead
            width = min(width, int(limit))
        token_ids = np.full((len(chunk), width), pad, dtype="int32")
        mask = np.zeros((len(chunk), width), dtype="int32")
        for i, ids in enumerate(chunk):
            token_ids[i, :len(ids)], mask[i, :len(ids)] = ids, 1
        out = model.generate({"token_ids": token_ids, "padding_mask": mask}, stop_token_ids=stops)
        made, kept = np.asarray(out["token_ids"]), np.asarray(out["padding_mask"]).astype(bool)
        for i, ids in enumerate(chunk):
            row = [int(t) for t in made[i][kept[i]][len(ids):][:max_new_tokens]]
            row = row[:next((j for j, t in enumerate(row) if t in stops), len(row))]
            answers.append(tokenizer.decode(row, skip_special_tokens=True).strip())
    return answers


def stream(model: Any, tokenizer: Any, ids: Sequence[int], max_new_tokens: int,
           stop: Any = None) -> Iterator[str]:
    """One prompt's greedy answer as it is written, piece by piece (transformers' TextIteratorStreamer, generating
    in a thread); `stop()` returning True ends it early (at the next token)."""
    import threading

    from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

    class _Asked(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **_: Any) -> bool:
            return bool(stop is not None and stop())

    import torch

    device = next(model.parameters()).device
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    kwargs = _generation_kwargs(tokenizer, max_new_tokens) | {
        "input_ids": torch.tensor([list(ids)], device=device), "streamer": streamer,
        "attention_mask": torch.ones((1, len(ids)), dtype=torch.long, device=device),
        "stopping_criteria": StoppingCriteriaList([_Asked()])}
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with torch.no_grad():
                model.generate(**kwargs)
        except BaseException as err:  # handed to the reader below, which raises it in its own thread
            errors.append(err)
            streamer.end()

    thread = threading.Thread(target=run, daemon=True, name="generate")
    thread.start()
    for piece in streamer:
        if stop is not None and stop():  # pieces already made but not yet read are dropped too
            break
        yield piece
    thread.join()
    if errors:
        raise errors[0]


def _generation_kwargs(tokenizer: Any, max_new_tokens: int) -> dict[str, Any]:
    return {"max_new_tokens": max_new_tokens, "do_sample": False, "eos_token_id": stop_ids(tokenizer),
            "pad_token_id": tokenizer.pad_token_id, "use_cache": True}
