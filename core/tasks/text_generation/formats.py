"""text-generation's data: a dataset's rows as what a decoder LM trains on, checked, in one of three shapes named as
TRL's SFTTrainer names them (so a prepared split reads the same to TRL and to finetune-tui's own engines):

    prompt + completion   instruction data: data.prompt_template over any columns, data.response_column
    messages              chat data: data.messages_column, a list of {role, content} turns per row
    text                  plain text (continued pre-training): data.text_column; every token is a target

Which tokens of these carry the loss, and how a conversation becomes tokens, is tokenize.py's. Errors name the file,
the rows (as core.data.arrow.where does) and the fix. No torch and no Textual here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from core.data.arrow import SplitSource, where
from core.errors import ConfigError, DataError, ModelError
from core.tasks.text_generation import shared
from core.tasks.text_generation.shared import COMPLETION, MESSAGES, PROMPT, TEXT, is_empty

if TYPE_CHECKING:
    from datasets import Dataset

ROLES = ("system", "user", "assistant")
CHATML = "chatml"  # data.chat_template's name for CHATML_TEMPLATE

# ChatML (OpenAI's, and Qwen's and SmolLM's templates), for a tokenizer that has no template of its own. The
# {% generation %} block marks what the assistant says, its <|im_end|> included (so the model learns to stop), for
# transformers' return_assistant_tokens_mask; the newline after it is layout and carries no loss.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% else %}{{ message['content'] + '<|im_end|>' + '\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CHATML_TOKENS = ("<|im_start|>", "<|im_end|>")


def _source(src: SplitSource | None) -> SplitSource:
    return src if src is not None else SplitSource("the data")


@contextmanager
def user_errors() -> Iterator[None]:
    """shared.py's InputError as finetune-tui's own error of its kind (printed without a traceback)."""
    try:
        yield
    except shared.InputError as err:
        kind = {"config": ConfigError, "data": DataError, "model": ModelError}[err.kind]
        raise kind(err.problem, err.fix) from None


def _check_column(ds: Dataset, column: str | None, key: str, what: str, src: SplitSource) -> str:
    if column is None:
        raise ConfigError(f"{key} is not set", f"set {key} to the column with {what}")
    if column not in ds.column_names:
        raise DataError(f"column '{column}' ({key}) is not in {src.desc}; its columns are: "
                        f"{', '.join(ds.column_names)}", f"set {key} to the column with {what}")
    return column


def _refuse_rows(rows: list[int], src: SplitSource, problem: str, first: str, fix: str) -> None:
    """A DataError for bad rows: how many, where (the first few rows and file lines), what is wrong with the first."""
    if rows:
        raise DataError(f"{src.desc} has {len(rows)} row(s) {problem}, at {where(rows, src)}; {first}", fix)


# --- instruction data -----------------------------------------------------------------------------------------------

class PromptTemplate(shared.PromptTemplate):
    """data.prompt_template (shared.PromptTemplate), its problems raised as finetune-tui's ConfigError."""

    @classmethod
    def parse(cls, template: str) -> PromptTemplate:
        with user_errors():
            return super().parse(template)  # type: ignore[return-value]


def instruction_columns(ds: Dataset, prompt_template: str, response_column: str | None,
                        src: SplitSource | None = None) -> dict[str, list[str]]:
    """{prompt, completion} for every row: the template over the row's columns, and the response as it is."""
    src = _source(src)
    template = PromptTemplate.parse(prompt_template)
    response_column = _check_column(ds, response_column, "data.response_column", "the answers", src)
    missing = template.missing(ds.column_names)
    if missing:
        raise DataError(f"data.prompt_template {prompt_template!r} names column(s) {', '.join(map(repr, missing))}, "
                        f"which {src.desc} does not have; its columns are: {', '.join(ds.column_names)}",
                        "name only columns the data has in data.prompt_template (in braces)")
    if response_column in template.fields:
        raise ConfigError(f"data.prompt_template {prompt_template!r} shows the model the response column "
                          f"'{response_column}' (data.response_column) in its own prompt",
                          "take that field out of data.prompt_template")
    columns = {f: ds[f] for f in dict.fromkeys(template.fields)}
    responses = ds[response_column]
    rows = [{f: columns[f][i] for f in columns} for i in range(len(ds))]
    empty_prompt = [i for i, row in enumerate(rows) if template.is_empty(row)]
    _refuse_rows(empty_prompt, src, f"whose prompt columns ({', '.join(columns)}) are all empty",
                 "the model would be asked nothing", "fill in those rows or delete them")
    not_text = [i for i, r in enumerate(responses) if isinstance(r, (list, dict))]
    if not_text:
        _refuse_rows(not_text, src, f"whose response ('{response_column}', data.response_column) is not text",
                     f"the first is a {type(responses[not_text[0]]).__name__}",
                     f"give one text answer per row in '{response_column}', or set data.response_column")
    empty = [i for i, r in enumerate(responses) if is_empty(r)]
    _refuse_rows(empty, src, f"with an empty response ('{response_column}', data.response_column)",
                 "there is nothing in them for the model to learn to answer",
                 "fill in those responses or delete the rows")
    return {PROMPT: [template.render(row) for row in rows], COMPLETION: [str(r) for r in responses]}


# --- chat data ------------------------------------------------------------------------------------------------------

def turn_problem(turns: Any) -> str | None:
    """What is wrong with one row's turns as a conversation to train on, or None."""
    if isinstance(turns, str):
        return "it is text, not a list of turns (a JSON-encoded list must be decoded first)"
    if not isinstance(turns, (list, tuple)):
        return f"it is a {type(turns).__name__}, not a list of turns"
    if not turns:
        return "it is an empty list"
    for n, turn in enumerate(turns, start=1):
        if not isinstance(turn, Mapping):
            return f"turn {n} is a {type(turn).__name__}, not an object with role and content"
        role, content = turn.get("role"), turn.get("content")
        if role is None or content is None:
            absent = " and ".join(k for k, v in (("role", role), ("content", content)) if v is None)
            sharegpt = " (ShareGPT's from/value turns must be renamed to role/content, human to user, gpt to " \
                       "assistant)" if {"from", "value"} <= set(turn) else ""
            return f"turn {n} has no {absent}{sharegpt}"
        if role not in ROLES:
            return f"turn {n} has the role {role!r}; the roles are {', '.join(ROLES)}"
        if not isinstance(content, str):
            return f"turn {n}'s content is a {type(content).__name__}, not text"
        if role == "assistant" and not content.strip():
            return f"turn {n} is an empty assistant turn"
    roles = [t["role"] for t in turns]
    if "assistant" not in roles:
        return "it has no assistant turn, so nothing in it is an answer to learn"
    if roles[0] == "assistant":
        return "it starts with an assistant turn, which answers nothing"
    return None


def chat_columns(ds: Dataset, messages_column: str | None, src: SplitSource | None = None) -> dict[str, list[Any]]:
    """{messages} for every row: its turns as [{role, content}], checked (turn_problem)."""
    src = _source(src)
    column = _check_column(ds, messages_column, "data.messages_column", "the conversations", src)
    values = ds[column]
    bad = [(i, p) for i, turns in enumerate(values) if (p := turn_problem(turns)) is not None]
    if bad:
        _refuse_rows([i for i, _ in bad], src, f"whose '{column}' (data.messages_column) is not a conversation",
                     f"in row {bad[0][0] + 1}, {bad[0][1]}",
                     'give each row a list of turns such as [{"role": "user", "content": "Hi"}, {"role": '
                     '"assistant", "content": "Hello!"}], roles system, user or assistant')
    return {MESSAGES: [[{"role": t["role"], "content": t["content"]} for t in turns] for turns in values]}


def resolve_chat_template(tokenizer: Any, setting: str | None, model: str | None = None) -> str:
    """The Jinja chat template conversations are rendered with: data.chat_template (null: the tokenizer's own;
    "chatml": CHATML_TEMPLATE; or a Jinja template itself). A tokenizer with none, and no setting, is a ModelError."""
    if setting is None:
        own = getattr(tokenizer, "chat_template", None)
        if isinstance(own, dict):  # a tokenizer with several named templates: the default one
            own = own.get("default")
        if not own:
            name = model or getattr(tokenizer, "name_or_path", "") or "this model"
            raise ModelError(f"the tokenizer of {name} has no chat template, so its conversations ({MESSAGES}) cannot "
                             "be written out as the model reads them",
                             f"set data.chat_template: {CHATML} (the ChatML format, <|im_start|>role ... <|im_end|>), "
                             "or choose the model's instruct version, which comes with its template")
        return str(own)
    if setting == CHATML:
        return CHATML_TEMPLATE
    if "{{" in setting or "{%" in setting:
        return setting
    raise ConfigError(f"data.chat_template {setting!r} is neither {CHATML} nor a Jinja template",
                      f"set data.chat_template: {CHATML}, a Jinja chat template, or null for the tokenizer's own")


def missing_chat_tokens(tokenizer: Any, template: str) -> list[str]:
    """ChatML's markers that CHATML_TEMPLATE writes but the tokenizer would split into pieces (a base model's
    tokenizer): they must be added as special tokens (and the embeddings resized) before training on them."""
    if template != CHATML_TEMPLATE:
        return []
    vocab = tokenizer.get_vocab()
    return [t for t in CHATML_TOKENS if t not in vocab]


# --- plain text -----------------------------------------------------------------------------------------------------

def text_columns(ds: Dataset, text_column: str | None, src: SplitSource | None = None) -> dict[str, list[str]]:
    """{text} for every row: text for continued pre-training, where every token is a target."""
    src = _source(src)
    column = _check_column(ds, text_column, "data.text_column", "the text", src)
    values = ds[column]
    empty = [i for i, v in enumerate(values) if is_empty(v) or isinstance(v, (list, dict))]
    _refuse_rows(empty, src, f"with no text in '{column}' (data.text_column)", "there is nothing in them to learn",
                 "fill in those rows or delete them")
    return {TEXT: [str(v) for v in values]}


def standard_columns(ds: Dataset, *, prompt_template: str | None = None, response_column: str | None = None,
                     messages_column: str | None = None, text_column: str | None = None,
                     src: SplitSource | None = None) -> dict[str, list[Any]]:
    """The split in the shape its settings choose: messages_column (chat), else response_column (instruction data,
    with prompt_template), else text_column (plain text)."""
    shapes: list[tuple[str, Callable[[], dict[str, list[Any]]]]] = [
        ("data.messages_column", lambda: chat_columns(ds, messages_column, src)),
        ("data.response_column", lambda: instruction_columns(ds, prompt_template or "", response_column, src)),
        ("data.text_column", lambda: text_columns(ds, text_column, src)),
    ]
    chosen = [(key, make) for (key, make), value in zip(shapes, (messages_column, response_column, text_column),
                                                         strict=True) if value is not None]
    if len(chosen) > 1 and chosen[0][0] == "data.messages_column":
        raise ConfigError("data.messages_column is set with " + " and ".join(k for k, _ in chosen[1:]),
                          "set data.messages_column for chat data, or data.prompt_template and data.response_column "
                          "for instruction data, or data.text_column alone for plain text")
    if not chosen:
        raise ConfigError("text-generation needs to know where the examples are",
                          "set data.messages_column (chat), data.prompt_template and data.response_column "
                          "(instruction data), or data.text_column (plain text)")
    if chosen[0][0] == "data.response_column" and prompt_template is None:
        raise ConfigError("data.response_column is set but data.prompt_template is not",
                          "set data.prompt_template, e.g. '{instruction}\\n\\n{input}\\n\\n### Response:\\n'")
    return chosen[0][1]()
