"""Tiny decoder-LM pieces built on the fly, for text-generation tests: nothing can be downloaded here.

build_llm_tokenizer()   a byte-level BPE trained in well under a second on SENTENCES (a few hundred words), wrapped in
                        transformers' PreTrainedTokenizerFast with eos/pad (and optionally bos) tokens, ChatML's
                        <|im_start|>/<|im_end|> as single special tokens and a ChatML chat template (CHAT_TEMPLATE,
                        without {% generation %} blocks: like most Hub models' templates, e.g. Qwen2.5's)
build_causal_lm()       a few-layer Llama, Qwen2 or GPT-2 of random weights sized for that tokenizer

Byte-level BPE (GPT-2's, Llama-3's and Qwen2's kind) encodes any text, so tests can use words outside SENTENCES; it
only takes more tokens for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

BOS, EOS, PAD = "<s>", "<|endoftext|>", "<pad>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = [EOS, PAD, BOS, IM_START, IM_END]

# ChatML as Qwen2.5-style models render it, minus the default system prompt: each turn "<|im_start|>role\n...
# <|im_end|>\n", and "<|im_start|>assistant\n" as the generation prompt.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "a small model learns to answer short questions about colours and numbers",
    "give me a colour that is warm and bright like the sun in summer",
    "purple is a colour made of red and blue paint mixed together",
    "the answer to two plus two is four and three plus three is six",
    "write a short poem about the sea and the wind and the rain",
    "name three animals that live on a farm such as cows sheep and pigs",
    "translate this sentence into french please and keep it polite",
    "the capital of france is paris and the capital of italy is rome",
    "summarise the text below in one sentence for a busy reader",
    "you are a helpful assistant who answers clearly and briefly",
    "tell me a fact about the moon the stars or the planets",
    "water boils at one hundred degrees at sea level on earth",
    "instruction input response system user assistant question answer",
    "hello how are you today i am fine thank you very much",
    "list the days of the week monday tuesday wednesday thursday friday",
    "the cat sat on the mat while the dog slept by the door",
    "a good answer is short true and kind to the person who asked",
    "green leaves turn yellow and orange and fall from the trees in autumn",
    "explain why the sky looks blue on a clear day without clouds",
]


def build_llm_tokenizer(directory: Path | None = None, *, add_bos: bool = False, vocab_size: int = 400,
                        chat_template: str | None = CHAT_TEMPLATE, trim_offsets: bool = False) -> Any:
    """A byte-level BPE tokenizer of about vocab_size tokens as a PreTrainedTokenizerFast (saved to `directory` when
    given). add_bos: a BOS token before every text, as Llama's tokenizers add one (GPT-2's and Qwen2's add none).
    chat_template None: a base model's tokenizer, with no template. trim_offsets: token offsets leave out the spaces
    around a token (some Hub tokenizers' setting); by default a token's offsets cover the space it starts with."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(SENTENCES, trainer=trainer)
    byte_level = processors.ByteLevel(trim_offsets=trim_offsets)
    if add_bos:
        bos_id = backend.token_to_id(BOS)
        backend.post_processor = processors.Sequence([
            byte_level, processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A $B",
                                                      special_tokens=[(BOS, bos_id)]),
        ])
    else:
        backend.post_processor = byte_level
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token=EOS, pad_token=PAD, bos_token=BOS if add_bos else None,
        additional_special_tokens=[IM_START, IM_END], model_max_length=256, clean_up_tokenization_spaces=False,
    )
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        tokenizer.save_pretrained(directory)
    return tokenizer


def build_causal_lm(tokenizer: Any, model_type: str = "llama", directory: Path | None = None, seed: int = 0) -> Any:
    """A randomly initialised two-layer decoder (hidden 32) of `model_type` (llama, qwen2 or gpt2) for the tokenizer's
    vocabulary, in float32 and eval mode (saved with the tokenizer to `directory` when given)."""
    import torch
    import transformers

    vocab = len(tokenizer)
    special = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
               "pad_token_id": tokenizer.pad_token_id}
    if model_type == "gpt2":
        config: Any = transformers.GPT2Config(vocab_size=vocab, n_positions=256, n_embd=32, n_layer=2, n_head=2,
                                              **special)
    else:
        cls = {"llama": transformers.LlamaConfig, "qwen2": transformers.Qwen2Config}[model_type]
        config = cls(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                     tie_word_embeddings=False, **special)
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config).float().eval()
    if directory is not None:
        model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
    return model
