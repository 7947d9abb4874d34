"""text-generation: supervised fine-tuning of decoder LLMs on instruction, chat or plain-text data.

    formats.py   rows as prompt + completion, messages or text, checked (errors name the rows)
    shared.py    the prompt template, tokens and labels (-100 where no loss), truncation, packing, the batches and
                 the saved model's generation settings: plain Python that exported scripts inline verbatim
    tokenize.py  shared.py's tokens with finetune-tui's errors, and the tokenizer step's length facts
    generate.py  prompts as the model reads them, greedy and streamed answers
    task.py      the Task the engines, evaluation and predict ask
    export/      the exported scripts' pieces (core/export_templates includes them)
"""

from core.tasks.text_generation.task import TASK

__all__ = ["TASK"]
