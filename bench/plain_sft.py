"""The plain TRL script bench/sft.py compares `finetune-tui run` with: what a careful user writes from TRL's docs to
fine-tune a decoder LM on Alpaca-style JSON with LoRA on every linear layer (SFTTrainer's own dataset preparation:
prompt + completion, loss on the completion only, optional best-fit packing, padding-free). Prints one JSON line with
the training metrics; saves the merged model so it does as much as the product does with its result.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--train", required=True)
    p.add_argument("--output-dir", required=True)
    p.add_argument("--template", required=True)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--learning-rate", type=float, default=2e-4)
    p.add_argument("--epochs", type=float, default=1)
    p.add_argument("--packing", action="store_true")
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args()
    started = time.perf_counter()

    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model)
    data = load_dataset("json", data_files=args.train, split="train")

    def to_prompt_completion(row: dict) -> dict:
        prompt = args.template.format(instruction=row["instruction"], input=row["input"]) if row["input"] else \
            args.template.replace("### Input:\n{input}\n\n", "").format(instruction=row["instruction"])
        return {"prompt": prompt, "completion": row["output"] + tokenizer.eos_token}

    data = data.map(to_prompt_completion, remove_columns=data.column_names)
    config = SFTConfig(output_dir=args.output_dir, max_length=args.max_length, packing=args.packing,
                       per_device_train_batch_size=args.batch_size, learning_rate=args.learning_rate,
                       num_train_epochs=args.epochs, seed=args.seed, logging_steps=10, save_strategy="no",
                       eval_strategy="no", report_to="none", disable_tqdm=True, use_cpu=True, bf16=False,
                       gradient_checkpointing=False, lr_scheduler_type="linear", warmup_steps=0.0,
                       weight_decay=0.01)
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=config, train_dataset=data, processing_class=tokenizer, peft_config=lora)
    result = trainer.train()
    trainer.model.merge_and_unload().save_pretrained(args.output_dir + "/model")
    tokenizer.save_pretrained(args.output_dir + "/model")
    print(json.dumps({"plain_sft": {**result.metrics, "rows": len(trainer.train_dataset),
                                    "wall_inside_s": round(time.perf_counter() - started, 2)}}), flush=True)


if __name__ == "__main__":
    main()
