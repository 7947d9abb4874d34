"""text-generation's data side (core/tasks/text_generation/formats.py and tokenize.py), on a byte-level BPE tokenizer
trained on the fly (tests/llm_fixtures.py): which tokens carry the loss in each format (decoded and compared with the
text exactly), the prompt template, every bad input with its message, truncation, the ChatML fallback, packing and
the tokenizer step's length facts. Data files are written as users write them and read by core.data.load_file."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from core.data import load_file
from core.errors import ConfigError, DataError, ModelError
from core.tasks.text_generation import formats as F
from core.tasks.text_generation import tokenize as T
from tests.llm_fixtures import EOS, IM_END, build_causal_lm, build_llm_tokenizer

ALPACA = [
    {"instruction": "Name a colour.", "input": "", "output": "Purple"},
    {"instruction": "Add the numbers.", "input": "two and two", "output": "four"},
    {"instruction": "Give the capital of France.", "input": "", "output": "Paris is the capital."},
]
ALPACA_TEMPLATE = "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
CHATS = [
    [{"role": "system", "content": "You are brief."}, {"role": "user", "content": "Hello there"},
     {"role": "assistant", "content": "Hello you"}, {"role": "user", "content": "Name a colour"},
     {"role": "assistant", "content": "Purple is warm"}],
    [{"role": "user", "content": "Two plus two?"}, {"role": "assistant", "content": "four"}],
]


@pytest.fixture(scope="module", name="tok")
def tok_fixture() -> Any:
    return build_llm_tokenizer()


@pytest.fixture(scope="module", name="tok_bos")
def tok_bos_fixture() -> Any:
    return build_llm_tokenizer(add_bos=True)


def write_json(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Alpaca's layout: one top-level JSON array."""
    path.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def loss_runs(tok: Any, row: dict[str, list[int]]) -> list[str]:
    """The decoded runs of consecutive loss-carrying tokens of a tokenized row."""
    runs, current = [], []
    for token, label in zip(row["input_ids"], row["labels"], strict=True):
        if label != T.IGNORE_INDEX:
            assert label == token  # a label is the token itself (the model shifts them)
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return [tok.decode(r) for r in runs]


def not_loss(tok: Any, row: dict[str, list[int]]) -> str:
    return tok.decode([t for t, lab in zip(row["input_ids"], row["labels"], strict=True) if lab == T.IGNORE_INDEX])


# --- the prompt template ----------------------------------------------------------------------------------------------

def test_template_drops_an_empty_field_with_its_separator() -> None:
    t = F.PromptTemplate.parse("{instruction}\n\n{input}")
    assert t.render({"instruction": "Name a colour.", "input": ""}) == "Name a colour."
    assert t.render({"instruction": "Add.", "input": "2 and 2"}) == "Add.\n\n2 and 2"
    assert t.render({"instruction": "Add.", "input": "   "}) == "Add."  # whitespace only is empty
    assert t.render({"instruction": "Add.", "input": None}) == "Add."  # a missing JSON key reads as null
    assert t.render({"instruction": "Add.", "input": float("nan")}) == "Add."  # pandas' missing value
    assert t.render({"instruction": "Add", "input": 4}) == "Add\n\n4"  # numbers as text
    # the first field empty: the separator after it goes; text around the fields stays
    assert F.PromptTemplate.parse("{context}\n\n{question}").render({"context": "", "question": "Why?"}) == "Why?"
    alpaca = F.PromptTemplate.parse(ALPACA_TEMPLATE)
    assert alpaca.fields == ("instruction", "input")
    assert alpaca.render({"instruction": "Name a colour.", "input": ""}) == \
        "### Instruction:\nName a colour.\n\n### Response:\n"
    assert alpaca.render({"instruction": "Add.", "input": "2, 2"}) == \
        "### Instruction:\nAdd.\n\n### Input:\n2, 2\n\n### Response:\n"
    # three fields, the middle one empty; literal braces
    three = F.PromptTemplate.parse("{{Q}} {a} | {b} | {c}.")
    assert three.render({"a": "x", "b": "", "c": "z"}) == "{Q} x | z."
    assert three.render({"a": "", "b": "", "c": "z"}) == "{Q} z."


@pytest.mark.parametrize(("template", "said"), [
    ("{instruction", "is not a valid template"),
    ("no fields at all", "names no column"),
    ("{} and {}", "names one column"),
    ("{row.text}", "names one column"),
    ("{text!r}", "names one column"),
    ("{text:>20}", "names one column"),
])
def test_template_syntax_errors(template: str, said: str) -> None:
    with pytest.raises(ConfigError, match=r"data\.prompt_template") as err:
        F.PromptTemplate.parse(template)
    assert said in err.value.problem


# --- instruction data -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["json", "jsonl"])
def test_instruction_loss_is_the_response_and_eos(tmp_path: Path, tok: Any, layout: str) -> None:
    path = (write_json if layout == "json" else write_jsonl)(tmp_path / f"alpaca.{layout}", ALPACA)
    ds, src = load_file(path)  # a top-level JSON array loads as JSON lines do
    cols = F.instruction_columns(ds, ALPACA_TEMPLATE, "output", src)
    assert cols["prompt"][0] == "### Instruction:\nName a colour.\n\n### Response:\n"
    assert cols["prompt"][1] == "### Instruction:\nAdd the numbers.\n\n### Input:\ntwo and two\n\n### Response:\n"
    out = T.tokenize_examples(tok, cols, max_length=128)
    assert out.kept == [0, 1, 2] and not out.cut and not out.lossless and not out.notes()
    for row, prompt, response in zip(out.rows, cols["prompt"], cols["completion"], strict=True):
        assert loss_runs(tok, row) == [response + EOS]  # exactly the response and the EOS after it
        assert not_loss(tok, row) == prompt
        assert row["labels"][0] == T.IGNORE_INDEX


def test_instruction_with_bos_and_train_on_prompt(tok: Any, tok_bos: Any) -> None:
    cols = {"prompt": ["Name a colour.\n"], "completion": ["Purple"]}
    row = T.tokenize_examples(tok_bos, cols, max_length=64).rows[0]
    assert row["input_ids"][0] == tok_bos.bos_token_id
    assert loss_runs(tok_bos, row) == ["Purple" + EOS]
    everything = T.tokenize_examples(tok_bos, cols, max_length=64, train_on_prompt=True).rows[0]
    assert everything["input_ids"] == row["input_ids"]
    assert loss_runs(tok_bos, everything) == ["Name a colour.\nPurple" + EOS]  # all but the BOS nothing predicts
    plain = T.tokenize_examples(tok, cols, max_length=64, train_on_prompt=True).rows[0]
    assert plain["labels"][0] == T.IGNORE_INDEX and sum(lab != -100 for lab in plain["labels"]) == \
        len(plain["input_ids"]) - 1


def test_template_naming_a_missing_column(tmp_path: Path) -> None:
    ds, src = load_file(write_json(tmp_path / "alpaca.json", ALPACA))
    with pytest.raises(DataError) as err:
        F.instruction_columns(ds, "{instruction}\n\n{context}", "output", src)
    problem = err.value.problem
    assert "'context'" in problem and "'{instruction}\\n\\n{context}'" in problem
    assert "its columns are: instruction, input, output" in problem and "alpaca.json" in problem


def test_response_column_problems(tmp_path: Path) -> None:
    rows = [*ALPACA, {"instruction": "Say nothing.", "input": "", "output": "  "},
            {"instruction": "Again.", "input": "", "output": None}]
    ds, src = load_file(write_jsonl(tmp_path / "train.jsonl", rows))
    with pytest.raises(DataError) as err:
        F.instruction_columns(ds, "{instruction}", "output", src)
    assert "2 row(s) with an empty response ('output'" in err.value.problem
    assert "data rows 4, 5 (1 = first data row); file lines 4, 5" in err.value.problem
    with pytest.raises(DataError, match=r"'answer' \(data.response_column\) is not in"):
        F.instruction_columns(ds, "{instruction}", "answer", src)
    with pytest.raises(ConfigError, match=r"data\.response_column is not set"):
        F.instruction_columns(ds, "{instruction}", None, src)
    with pytest.raises(ConfigError, match="shows the model the response column 'output'"):
        F.instruction_columns(ds, "{instruction} {output}", "output", src)


def test_a_row_whose_prompt_is_all_empty(tmp_path: Path) -> None:
    rows = [*ALPACA, {"instruction": "", "input": "", "output": "An answer to nothing"}]
    ds, src = load_file(write_jsonl(tmp_path / "train.jsonl", rows))
    with pytest.raises(DataError, match=r"1 row\(s\) whose prompt columns \(instruction, input\) are all empty, at "
                                        r"data rows 4 .*file lines 4"):
        F.instruction_columns(ds, ALPACA_TEMPLATE, "output", src)


# --- chat data --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["json", "jsonl"])
def test_chat_loss_is_the_assistant_turns(tmp_path: Path, tok: Any, layout: str) -> None:
    path = (write_json if layout == "json" else write_jsonl)(tmp_path / f"chat.{layout}",
                                                               [{"messages": c} for c in CHATS])
    ds, src = load_file(path)
    cols = F.chat_columns(ds, "messages", src)
    assert cols["messages"] == CHATS
    template = F.resolve_chat_template(tok, None)
    assert template == tok.chat_template and "{% generation %}" not in template  # the prefix-rendering path
    out = T.tokenize_examples(tok, cols, max_length=256, chat_template=template)
    for row, chat in zip(out.rows, CHATS, strict=True):
        assert tok.decode(row["input_ids"]) == tok.apply_chat_template(chat, tokenize=False)
        # each assistant turn and its end marker, nothing of the system or user turns, not the newline after
        assert loss_runs(tok, row) == [t["content"] + IM_END for t in chat if t["role"] == "assistant"]
        kept_out = not_loss(tok, row)
        assert all(t["content"] in kept_out for t in chat if t["role"] != "assistant")
    everything = T.tokenize_examples(tok, cols, max_length=256, chat_template=template, train_on_prompt=True)
    assert loss_runs(tok, everything.rows[1]) == [tok.decode(everything.rows[1]["input_ids"][1:])]


def test_chat_masks_agree_between_generation_blocks_and_prefix_rendering(tok: Any) -> None:
    """CHATML_TEMPLATE marks the assistant's text with {% generation %}, so transformers' own
    return_assistant_tokens_mask finds it; the fixture's plain ChatML template (no blocks) goes through prefix
    rendering. The two render the same text and must give the same tokens and labels."""
    cols = {"messages": CHATS}
    tagged = T.tokenize_examples(tok, cols, max_length=256, chat_template=F.CHATML_TEMPLATE)
    plain = T.tokenize_examples(tok, cols, max_length=256, chat_template=tok.chat_template)
    assert tagged.rows == plain.rows
    assert loss_runs(tok, tagged.rows[0]) == ["Hello you" + IM_END, "Purple is warm" + IM_END]


@pytest.mark.parametrize("trim_offsets", [False, True])
def test_chat_masks_with_whitespace_and_trimmed_offsets(trim_offsets: bool) -> None:
    """Answers that start or end with spaces and newlines keep them in the loss, whether the tokenizer's offsets
    cover a token's spaces or trim them (a whitespace token then has no width)."""
    tok = build_llm_tokenizer(trim_offsets=trim_offsets)
    chat = [{"role": "user", "content": "Hi\n\nthere"}, {"role": "assistant", "content": "Purple\n\n  is warm \n"},
            {"role": "user", "content": " ok "}, {"role": "assistant", "content": "  yes"}]
    for template in (tok.chat_template, F.CHATML_TEMPLATE):
        row = T.tokenize_examples(tok, {"messages": [chat]}, max_length=256, chat_template=template).rows[0]
        assert loss_runs(tok, row) == ["Purple\n\n  is warm \n" + IM_END, "  yes" + IM_END]


def test_chat_turns_in_the_wrong_shape(tmp_path: Path) -> None:
    good = {"messages": CHATS[1]}
    cases = {
        "unknown_role": ([{"role": "user", "content": "Hi"}, {"role": "robot", "content": "Beep"}],
                         "turn 2 has the role 'robot'; the roles are system, user, assistant"),
        "no_content": ([{"role": "user"}, {"role": "assistant", "content": "Hi"}], "turn 1 has no content"),
        "no_role": ([{"content": "Hi"}, {"role": "assistant", "content": "Hi"}], "turn 1 has no role"),
        "empty": ([], "it is an empty list"),
        "no_assistant": ([{"role": "user", "content": "Hi"}], "it has no assistant turn"),
        "assistant_first": ([{"role": "assistant", "content": "Hi"}, {"role": "user", "content": "Yo"}],
                            "it starts with an assistant turn"),
        "empty_answer": ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": " "}],
                         "turn 2 is an empty assistant turn"),
    }
    for name, (turns, said) in cases.items():
        ds, src = load_file(write_jsonl(tmp_path / f"{name}.jsonl", [good, good, {"messages": turns}]))
        with pytest.raises(DataError) as err:
            F.chat_columns(ds, "messages", src)
        problem = err.value.problem
        assert f"{name}.jsonl has 1 row(s) whose 'messages' (data.messages_column) is not a conversation" in problem
        assert "data rows 3 (1 = first data row); file lines 3" in problem and f"in row 3, {said}" in problem, name
    # a column of text, not lists (a CSV, or JSON-encoded turns)
    ds, src = load_file(write_jsonl(tmp_path / "text.jsonl", [{"messages": "user: hi"}] * 2))
    with pytest.raises(DataError, match="in row 1, it is text, not a list of turns"):
        F.chat_columns(ds, "messages", src)
    with pytest.raises(DataError, match=r"'turns' \(data.messages_column\) is not in"):
        F.chat_columns(ds, "turns", src)
    # shapes Arrow cannot hold in one column, as Python values
    assert F.turn_problem(["hi"]) == "turn 1 is a str, not an object with role and content"
    assert F.turn_problem([{"role": "user", "content": ["a", "b"]}]) == "turn 1's content is a list, not text"
    assert F.turn_problem({"role": "user"}) == "it is a dict, not a list of turns"
    assert "ShareGPT" in F.turn_problem([{"from": "human", "value": "hi"}])
    assert F.turn_problem(CHATS[0]) is None


def test_a_tokenizer_without_chat_template(tok: Any) -> None:
    base = build_llm_tokenizer(chat_template=None)
    with pytest.raises(ModelError) as err:
        F.resolve_chat_template(base, None, "tiny-base")
    assert "tokenizer of tiny-base has no chat template" in err.value.problem
    assert "data.chat_template: chatml" in err.value.fix
    template = F.resolve_chat_template(base, "chatml")
    assert template == F.CHATML_TEMPLATE and F.missing_chat_tokens(base, template) == []
    row = T.tokenize_examples(base, {"messages": [CHATS[1]]}, max_length=64, chat_template=template).rows[0]
    assert base.decode(row["input_ids"]) == \
        "<|im_start|>user\nTwo plus two?<|im_end|>\n<|im_start|>assistant\nfour<|im_end|>\n"
    assert loss_runs(base, row) == ["four" + IM_END]
    jinja = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    assert F.resolve_chat_template(base, jinja) == jinja
    with pytest.raises(ConfigError, match="'llama3' is neither chatml nor a Jinja template"):
        F.resolve_chat_template(base, "llama3")

    class NoChatML:  # a base model's vocabulary without ChatML's markers: they must be added before training
        def get_vocab(self) -> dict[str, int]:
            return {"<|im_start|>": 5}

    assert F.missing_chat_tokens(NoChatML(), F.CHATML_TEMPLATE) == ["<|im_end|>"]
    assert F.missing_chat_tokens(NoChatML(), jinja) == []


def test_chat_templates_that_cannot_be_masked_or_rendered(tok: Any) -> None:
    # a template that writes the last turn differently from the same turn inside a longer conversation
    rewrites = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}{% if loop.last %} (latest){% endif %}\n"
                "{% endfor %}")
    with pytest.raises(ModelError, match="writes the beginning of a conversation differently") as err:
        T.tokenize_examples(tok, {"messages": [CHATS[0]]}, max_length=256, chat_template=rewrites)
    assert "chatml" in err.value.fix and "{% generation %}" in err.value.fix
    strict = ("{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system turns here') }}"
              "{% endif %}{{ m['content'] }}{% endfor %}")
    with pytest.raises(DataError, match=r"conversation of data row 2 .*no system turns here"):
        T.tokenize_examples(tok, {"messages": [CHATS[1], CHATS[0]]}, max_length=256, chat_template=strict)


# --- plain text -------------------------------------------------------------------------------------------------------

def test_plain_text_every_token_carries_loss(tmp_path: Path, tok: Any, tok_bos: Any) -> None:
    ds, src = load_file(write_jsonl(tmp_path / "corpus.jsonl", [{"text": "the cat sat on the mat"},
                                                                 {"text": "water boils at one hundred degrees"}]))
    cols = F.text_columns(ds, "text", src)
    for t in (tok, tok_bos):
        rows = T.tokenize_examples(t, cols, max_length=64).rows
        for row, text in zip(rows, cols["text"], strict=True):
            assert row["input_ids"][-1] == t.eos_token_id
            # every token but the first, which nothing before it predicts: with a BOS that is the BOS
            first = t.decode(row["input_ids"][:1])
            assert loss_runs(t, row) == [(text if t is tok_bos else text[len(first):]) + EOS]
    ds, src = load_file(write_jsonl(tmp_path / "gaps.jsonl", [{"text": "fine"}, {"text": ""}]))
    with pytest.raises(DataError, match=r"1 row\(s\) with no text in 'text' \(data.text_column\), at data rows 2 "):
        F.text_columns(ds, "text", src)


def test_standard_columns_picks_the_shape(tmp_path: Path) -> None:
    ds, src = load_file(write_json(tmp_path / "alpaca.json", ALPACA))
    assert set(F.standard_columns(ds, prompt_template="{instruction}", response_column="output", src=src)) == \
        {"prompt", "completion"}
    assert set(F.standard_columns(ds, text_column="output", src=src)) == {"text"}
    with pytest.raises(ConfigError, match=r"data\.prompt_template is not"):
        F.standard_columns(ds, response_column="output", src=src)
    with pytest.raises(ConfigError, match="needs to know where the examples are"):
        F.standard_columns(ds, src=src)
    with pytest.raises(ConfigError, match=r"data\.messages_column is set with data\.response_column"):
        F.standard_columns(ds, messages_column="m", response_column="output", prompt_template="{instruction}")


# --- truncation -------------------------------------------------------------------------------------------------------

def test_truncation_cuts_the_response_and_counts_what_it_cut(tok: Any) -> None:
    cols = {"prompt": ["Name a colour.\n", "Say something long.\n", "the quick brown fox jumps over the lazy dog " * 4],
            "completion": ["Purple", "the cat sat on the mat while the dog slept by the door", "four"]}
    full = T.tokenize_examples(tok, cols, max_length=1000)
    lengths = [len(r["input_ids"]) for r in full.rows]
    prompt0 = len(tok("Name a colour.\n").input_ids)
    max_length = 16
    assert lengths[0] <= max_length < lengths[1] and len(tok(cols["prompt"][2]).input_ids) >= max_length
    out = T.tokenize_examples(tok, cols, max_length=max_length)
    assert out.cut == [1, 2] and out.lossless == [2] and out.kept == [0, 1]
    assert out.rows[0] == full.rows[0] and prompt0 < lengths[0]
    cut = out.rows[1]
    assert len(cut["input_ids"]) == max_length == len(cut["labels"])
    assert cut["input_ids"] == full.rows[1]["input_ids"][:max_length]
    (kept,) = loss_runs(tok, cut)
    assert kept and (cols["completion"][1] + EOS).startswith(kept) and EOS not in kept  # the response's start
    notes = out.notes()
    assert "cuts the loss-carrying tokens (responses, assistant turns) of 2 of 3 examples" in notes[0]
    assert "1 example is left out: the prompt fills max_length 16" in notes[1] and "(rows 3, 1 = first)" in notes[1]
    # the batch columns for Dataset.map say the same per row
    batch = T.tokenize_batch(tok, cols, max_length=max_length)
    assert batch["cut"] == [False, True, True] and batch["loss_tokens"][2] == 0
    assert batch["length"] == [lengths[0], lengths[1], len(T.encode(tok, cols)[2].input_ids)]


def test_truncation_of_a_conversation_cuts_its_last_turns(tok: Any) -> None:
    template = tok.chat_template
    whole = T.tokenize_examples(tok, {"messages": [CHATS[0]]}, max_length=256, chat_template=template).rows[0]
    second = whole["labels"].index(next(t for t, lab in zip(whole["input_ids"], whole["labels"], strict=True)
                                        if lab != -100))  # first loss token
    runs_end = max(i for i, lab in enumerate(whole["labels"]) if lab != -100)
    max_length = runs_end - 2  # inside the second assistant turn
    out = T.tokenize_examples(tok, {"messages": [CHATS[0]]}, max_length=max_length, chat_template=template)
    assert out.cut == [0] and not out.lossless and second < max_length
    runs = loss_runs(tok, out.rows[0])
    assert runs[0] == "Hello you" + IM_END and "Purple is warm".startswith(runs[1]) and runs[1]
    with pytest.raises(ValueError, match="max_length"):
        T.tokenize_examples(tok, {"messages": [CHATS[0]]}, max_length=1, chat_template=template)


# --- packing ----------------------------------------------------------------------------------------------------------

def test_pack_lengths_is_best_fit_decreasing() -> None:
    # longest first, each into the open sequence it fills most tightly: 6+4 and 5+3+2 fill two sequences of 10
    assert T.pack_lengths([6, 5, 4, 3, 2], 10) == [[0, 2], [1, 3, 4]]
    assert T.pack_lengths([3, 5, 6, 2, 4], 10) == [[2, 4], [0, 1, 3]]  # the same lengths in another order
    # the 3 joins the 7 (room 3 left), the tightest fit, not the 5 (room 5): sequences are listed as opened
    assert T.pack_lengths([5, 7, 3], 10) == [[1, 2], [0]]
    assert T.pack_lengths([10, 10, 1], 10) == [[0], [1], [2]]
    assert T.pack_lengths([], 8) == []
    with pytest.raises(ValueError, match="example 1 has 9 tokens"):
        T.pack_lengths([3, 9], 8)
    with pytest.raises(ValueError, match="example 0 has 0 tokens"):
        T.pack_lengths([0], 8)
    rng = random.Random(0)
    lengths = [rng.randint(1, 512) for _ in range(20000)]
    groups = T.pack_lengths(lengths, 512)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))  # each example once, whole
    assert all(sum(lengths[i] for i in g) <= 512 for g in groups)
    assert sum(lengths) / (len(groups) * 512) > 0.97  # bfd packs uniform lengths nearly full


def test_packing_keeps_examples_whole_and_apart(tok: Any) -> None:
    cols = {"prompt": [f"Question {i}: {'the cat sat ' * (i % 4)}?\n" for i in range(12)],
            "completion": [f"answer {'on the mat ' * (i % 3)}" for i in range(12)]}
    examples = T.tokenize_examples(tok, cols, max_length=48).rows
    packed = T.packing(examples, 48)
    lengths = [len(e["input_ids"]) for e in examples]
    assert sorted(i for g in packed.groups for i in g) == list(range(12))
    assert len(packed.rows) < len(examples)
    assert packed.efficiency == pytest.approx(sum(lengths) / (len(packed.rows) * 48))
    for row, group in zip(packed.rows, packed.groups, strict=True):
        assert len(row["input_ids"]) == len(row["labels"]) == len(row["position_ids"]) <= 48
        assert row["seq_lengths"] == [lengths[i] for i in group]
        assert row["input_ids"] == [t for i in group for t in examples[i]["input_ids"]]  # whole, in order
        assert row["position_ids"] == [p for i in group for p in range(lengths[i])]  # restart at 0 per example
        # the labels are the examples' own: each example's first token carries no loss in both
        assert row["labels"] == [lab for i in group for lab in examples[i]["labels"]]
        starts = [sum(row["seq_lengths"][:k]) for k in range(len(group))]
        assert all(row["labels"][s] == T.IGNORE_INDEX for s in starts)
    with pytest.raises(ValueError, match="cut them to max_length first"):
        T.packing(examples, 8)


@pytest.mark.parametrize("model_type", ["llama", "qwen2", "gpt2"])
def test_packed_rows_attend_only_within_their_example(tok: Any, model_type: str) -> None:
    """A tiny decoder's logits for a batch of packed rows (the engines' collator: position ids restarting, rows
    padded with positions that go on counting, no attention mask, no cache) equal its logits for each example alone:
    no token sees another example."""
    import torch

    model = build_causal_lm(tok, model_type)
    cols = {"prompt": ["Name a colour.\n", "Two plus two?\n", "Capital of France?\n", "Hi\n"],
            "completion": ["Purple", "four", "Paris", "Hello there"]}
    examples = T.tokenize_examples(tok, cols, max_length=24).rows
    packed = T.packing(examples, 24)
    assert any(len(g) > 1 for g in packed.groups)
    batch = T.collator(tok, packed=True)(packed.rows)
    assert batch["input_ids"].shape[0] == len(packed.rows) and "attention_mask" not in batch
    assert batch["use_cache"] is False and len({len(r["input_ids"]) for r in packed.rows}) > 1  # rows were padded
    order = [i for g in packed.groups for i in g]
    with torch.no_grad():
        together = model(**batch)
        naive = model(input_ids=batch["input_ids"]).logits  # without the restarts, later examples see earlier ones
        alone = [model(input_ids=torch.tensor([examples[i]["input_ids"]])).logits[0] for i in order]
    start = 0
    for r, group in enumerate(packed.groups):
        rows_alone = torch.cat(alone[start:start + len(group)])
        start += len(group)
        assert torch.allclose(together.logits[r, :len(rows_alone)], rows_alone, atol=1e-5)
        if len(group) > 1:
            assert not torch.allclose(naive[r, :len(rows_alone)], rows_alone, atol=1e-3)
    # the packed batch's loss is the loss over the same target tokens as the examples' own
    expected = torch.nn.functional.cross_entropy(
        torch.cat([logits[:-1] for logits in alone]),
        torch.cat([torch.tensor(examples[i]["labels"][1:]) for i in order]), ignore_index=T.IGNORE_INDEX)
    assert together.loss.item() == pytest.approx(expected.item(), rel=1e-5)


# --- the tokenizer step's facts -------------------------------------------------------------------------------------

def test_length_facts_match_what_tokenizing_does(tok: Any) -> None:
    rng = random.Random(1)
    words = ["the", "cat", "sat", "on", "mat", "while", "dog", "slept", "by", "door"]
    cols = {"prompt": [" ".join(rng.choices(words, k=rng.randint(1, 20))) + "\n" for _ in range(40)],
            "completion": [" ".join(rng.choices(words, k=rng.randint(1, 20))) for _ in range(40)]}
    facts = T.length_facts(tok, cols, total=400)
    encodings = T.encode(tok, cols)
    assert facts.lengths.tolist() == [len(e.input_ids) for e in encodings]
    for max_length in (8, 16, 24, 64):
        summary = facts.at(max_length)
        out = T.tokenize_examples(tok, cols, max_length=max_length)
        assert (summary.examples, summary.total) == (40, 400)
        assert summary.cut == len(out.cut) and summary.lossless == len(out.lossless)
        assert summary.cut_share == len(out.cut) / 40
        tokens = sum(len(r["input_ids"]) for r in out.rows)
        loss = sum(lab != T.IGNORE_INDEX for r in out.rows for lab in r["labels"])
        assert summary.loss_fraction == pytest.approx(loss / tokens)
        packed = T.packing(out.rows, max_length)
        assert summary.packed_sequences == len(packed.rows)
        assert summary.packing_efficiency == pytest.approx(packed.efficiency)
    assert facts.at(int(facts.lengths.max())).cut == 0 and facts.at(8).cut > 0


def test_length_facts_of_conversations(tok: Any) -> None:
    facts = T.length_facts(tok, {"messages": CHATS}, chat_template=tok.chat_template)
    rows = T.tokenize_examples(tok, {"messages": CHATS}, max_length=256, chat_template=tok.chat_template).rows
    summary = facts.at(256)
    loss = sum(lab != -100 for r in rows for lab in r["labels"])
    assert summary.cut == 0 and summary.total == 2
    assert summary.loss_fraction == pytest.approx(loss / sum(len(r["input_ids"]) for r in rows))
    assert facts.at(10).lossless == 2  # ten tokens hold no assistant turn of either
