"""The plain-script side of the end-to-end benchmark: command to a saved, evaluated model, written by hand.

What a careful user writes from the Hugging Face course: datasets' CSV loading, class_encode_column, map() with
truncation, dynamic padding (DataCollatorWithPadding), length grouping, one evaluation on the validation split
with `evaluate`, save_model. Nothing of finetune-tui is imported: the bench passes the model directory, the data,
the settings and the path of a local `evaluate` metric module (the Hub is out of reach here) on the command line.

Prints the final validation metrics as one JSON line.
"""

from __future__ import annotations

import argparse
import json

import evaluate
import numpy as np
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
    p.add_argument("--validation", required=True)
    p.add_argument("--output-dir", required=True)
    p.add_argument("--metric-module", required=True, help="a local evaluate module (evaluate.load(path))")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--eval-batch-size", type=int, default=64)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--learning-rate", type=float, default=5e-5)
    p.add_argument("--logging-steps", type=int, default=10)
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args()
    set_seed(args.seed)

    dataset = load_dataset("csv", data_files={"train": args.train, "validation": args.validation})
    dataset = dataset.class_encode_column("label")
    labels = dataset["train"].features["label"].names
    tokenizer = AutoTokenizer.from_pretrained(args.model)

    def preprocess(batch: dict) -> dict:
        return tokenizer(batch["text"], truncation=True, max_length=args.max_length)

    tokenized = dataset.map(preprocess, batched=True, remove_columns=["text"])
    model = AutoModelForSequenceClassification.from_pretrained(
        args.model, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
    )
    accuracy = evaluate.load(args.metric_module, config_name="accuracy")

    def compute_metrics(prediction: evaluate.EvalPrediction) -> dict:  # type: ignore[name-defined]
        logits, references = prediction
        return accuracy.compute(predictions=np.argmax(logits, axis=-1), references=references)

    training_args = TrainingArguments(
        output_dir=args.output_dir,
        num_train_epochs=args.epochs,
        learning_rate=args.learning_rate,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.eval_batch_size,
        weight_decay=0.01,
        eval_strategy="epoch",
        save_strategy="no",
        logging_steps=args.logging_steps,
        train_sampling_strategy="group_by_length",
        seed=args.seed,
        data_seed=args.seed,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=tokenized["train"],
        eval_dataset=tokenized["validation"],
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer=tokenizer),
        compute_metrics=compute_metrics,
    )
    trainer.train()
    trainer.save_model(args.output_dir)
    evals = [entry for entry in trainer.state.log_history if "eval_loss" in entry]
    print(json.dumps({"plain_eval_metrics": evals[-1]}), flush=True)


if __name__ == "__main__":
    main()
