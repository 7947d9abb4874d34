"""text-generation: supervised fine-tuning of decoder LLMs on instruction, chat or plain-text data.

    formats.py   rows as prompt + completion, messages or text, checked (errors name the rows)
    tokenize.py  tokens and labels (-100 where no loss), truncation, packing and the tokenizer step's length facts
    generate.py  prompts as the model reads them, greedy and streamed answers
    task.py      the Task the engines, evaluation and predict ask
"""

from core.tasks.text_generation.task import TASK

__all__ = ["TASK"]
