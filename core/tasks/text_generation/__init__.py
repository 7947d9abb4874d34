"""text-generation: supervised fine-tuning of decoder LLMs (issue 18). Not registered in core.tasks yet: the engines
cannot train it, so the wizard must not offer it.

    formats.py   rows as prompt + completion, messages or text, checked (errors name the rows)
    tokenize.py  tokens and labels (-100 where no loss), truncation, packing and the tokenizer step's length facts
"""
