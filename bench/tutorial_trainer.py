"""The hand-written baseline: fine-tuning the way the Hugging Face tutorials write it.

load_dataset("csv") -> class_encode_column -> AutoTokenizer -> map(truncation) -> DataCollatorWithPadding ->
AutoModelForSequenceClassification -> TrainingArguments -> Trainer.train(). Nothing of finetune-tui is imported:
the bench passes the model directory, the data and the settings on the command line, so this script and a
finetune-tui run train the same model on the same rows, in the same order, with the same settings and seed.

Prints Trainer's own train metrics as one JSON line (train_runtime, train_samples_per_second, ...).
"""

from __future__ import annotations

import argparse
import json

from datasets import load_dataset
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
    set_seed,
)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--train", required=True)
    p.add_argument("--output-dir", required=True)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-steps", type=int, default=-1)
    p.add_argument("--learning-rate", type=float, default=5e-5)
    p.add_argument("--logging-steps", type=int, default=10)
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args()
    set_seed(args.seed)  # before the model, so its new classifier head starts from the same weights as finetune-tui's

    dataset = load_dataset("csv", data_files={"train": args.train})
    tokenizer = AutoTokenizer.from_pretrained(args.model)

    dataset = dataset.class_encode_column("label")  # string labels -> ClassLabel ids
    labels = dataset["train"].features["label"].names
    label2id = {label: i for i, label in enumerate(labels)}

    def preprocess(batch: dict) -> dict:
        return tokenizer(batch["text"], truncation=True, max_length=args.max_length)

    tokenized = dataset.map(preprocess, batched=True)
    data_collator = DataCollatorWithPadding(tokenizer=tokenizer)

    model = AutoModelForSequenceClassification.from_pretrained(
        args.model, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id
    )
    training_args = TrainingArguments(
        output_dir=args.output_dir,
        learning_rate=args.learning_rate,
        per_device_train_batch_size=args.batch_size,
        max_steps=args.max_steps,
        weight_decay=0.01,
        eval_strategy="no",
        save_strategy="no",
        logging_steps=args.logging_steps,
        seed=args.seed,
        data_seed=args.seed,
        report_to="none",
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=tokenized["train"],
        processing_class=tokenizer,
        data_collator=data_collator,
    )
    result = trainer.train()
    print(json.dumps({"tutorial_train_metrics": result.metrics}), flush=True)


if __name__ == "__main__":
    main()
