"""text-generation as a Task: supervised fine-tuning of a decoder LM (AutoModelForCausalLM) on instruction, chat or
plain-text data, LoRA on every linear layer by default (core.tasks' shape_defaults).

Its rows are not text + label: prepare_splits makes formats.py's columns (prompt + completion, messages, or text),
tokenize.py turns them into input_ids and labels with -100 where no loss is taken (and packs them), and an
evaluation keeps no per-token outputs (keeps_outputs False): its metrics are the loss and perplexity, and at each
validation evaluation the model answers a few fixed validation prompts (validation_samples, the `sample` events).
Answers are generated (generate.py): predict, the evaluation report and the Try screen all ask the model the way
the run trained it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from core.console import one_line
from core.tasks.base import Grid, LabelOverview, ReportSection, Task, TaskSplits, TryView, WizardField
from core.tasks.text_generation import formats, generate

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np

    from core.config import DataConfig, RunConfig
    from core.data.arrow import SplitSource
    from core.data.inspection import ColumnInfo
    from core.data.prepare import PreparedData
    from core.evaluation import Evaluation

_EVAL_NEW_TOKENS = 128  # answers in an evaluation report
_REPORT_EXAMPLES = 5  # answers shown in the report's text (all are in predictions.jsonl)


class TextGeneration(Task):
    name = "text-generation"
    title = "Text generation (instruction tuning)"
    metric_names = ("perplexity",)
    default_metrics = ("perplexity",)
    problem_type = ""  # a causal LM's loss is its own: no head, no problem_type
    auto_model_class = "AutoModelForCausalLM"
    peft_task_type = "CAUSAL_LM"
    pipeline_task = "text-generation"
    pipeline_kwargs: ClassVar[dict[str, Any]] = {}
    collator_class = "DataCollatorForSeq2Seq"
    keeps_outputs = False
    suggested_models: ClassVar[tuple[tuple[str, str], ...]] = (
        ("Qwen/Qwen2.5-0.5B-Instruct", "0.5B"), ("HuggingFaceTB/SmolLM2-360M-Instruct", "0.36B"),
        ("HuggingFaceTB/SmolLM2-1.7B-Instruct", "1.7B"), ("Qwen/Qwen2.5-1.5B-Instruct", "1.5B"),
        ("meta-llama/Llama-3.2-1B-Instruct", "1.2B"), ("google/gemma-2-2b-it", "2.6B"),
        ("mistralai/Mistral-7B-Instruct-v0.3", "7.2B"),
    )
    column_settings = ("data.text_column",)  # plain text; instruction and chat data name theirs in wizard_fields
    label_setting = "data.response_column"
    wizard_fields = (
        WizardField("data.prompt_template", "Prompt template", "dataset", placeholder="{instruction}\\n\\n{input}"),
        WizardField("data.response_column", "Response column", "dataset", placeholder="output"),
        WizardField("data.messages_column", "Messages column", "dataset", placeholder="messages"),
        WizardField("data.chat_template", "Chat template", "dataset", placeholder="the tokenizer's (or chatml)"),
        WizardField("training.train_on_prompt", "Train on prompts too", "training", editor="checkbox"),
        WizardField("training.packing", "Pack examples", "training", editor="checkbox"),
        WizardField("training.gradient_checkpointing", "Gradient checkpointing", "training", editor="checkbox"),
        WizardField("training.quantization", "Quantization (QLoRA, GPU)", "training", editor="select"),
    )
    own_settings: ClassVar[dict[str, tuple[Any, str]]] = {
        "data.prompt_template": (None, "writes the prompts"),
        "data.response_column": (None, "names the answers"),
        "data.messages_column": (None, "names the conversations"),
        "data.chat_template": (None, "writes conversations out"),
        "training.train_on_prompt": (False, "puts loss on prompts"),
        "training.packing": (False, "packs examples into sequences"),
        "training.quantization": (None, "quantizes a language model for QLoRA"),
    }
    unused_settings: ClassVar[dict[str, tuple[Any, str]]] = {
        "data.label_column": (None, "names a label column; a language model learns the responses themselves"),
        "data.text_pair_column": (None, "pairs texts for a classifier"),
        "data.label_names": (None, "names classes, which generated text has none of"),
        "data.label_columns": (None, "lists 0/1 columns of multi-label-classification"),
        "data.label_separator": (None, "splits the labels of multi-label-classification"),
        "data.label_scaling": ("none", "scales the scores of text-regression"),
        "training.class_weights": (None, "weighs classes, which generated text has none of"),
        "training.threshold": (0.5, "decides the labels of multi-label-classification"),
        "training.freeze_encoder": (False, "trains a classifier's head alone; a language model has no such head "
                                           "(use training.lora)"),
        "tokenizer.padding": ("dynamic", "pads whole rows; a language model's batches are padded as they are made "
                                         "(or packed, training.packing)"),
        "tokenizer.truncation": (True, "keeps over-long examples whole; a language model's examples are cut at "
                                       "max_length and the cut is counted"),
    }

    def __init__(self) -> None:
        self.train_on_prompt = False
        self.packing = False
        self.chat_template_setting: str | None = None

    # --- config --------------------------------------------------------------------------------------------------
    def check_config(self, config: RunConfig) -> None:
        from core.engines import ENGINES

        super().check_config(config)
        if ENGINES[config.engine].hf_heads:
            return
        # An engine of KerasHub's causal LMs (keras): what its models and loop have no counterpart for.
        t = config.training
        refused = [
            (t.packing, "training.packing", "false",
             "packed rows need position ids that restart per example, and KerasHub's backbones take none"),
            (t.quantization is not None, "training.quantization", "null",
             "QLoRA's 4/8-bit weights come from bitsandbytes, which loads PyTorch models only"),
            (t.gradient_checkpointing, "training.gradient_checkpointing", "false",
             "KerasHub's backbones cannot recompute their activations"),
        ]
        for refuse, path, neutral, why in refused:
            if refuse:
                raise ValueError(f"{path} is not available on the {config.engine} engine: {why}; set {path}: "
                                 f"{neutral}, or engine: trainer (or torch-loop)")

    def for_run(self, config: RunConfig) -> TextGeneration:
        run = copy.copy(self)
        run.train_on_prompt = config.training.train_on_prompt
        run.packing = config.training.packing
        run.chat_template_setting = config.data.chat_template
        return run

    def prepare_tokenizer(self, tokenizer: Any) -> None:
        """data.chat_template becomes the tokenizer's own, so training, the saved tokenizer, predict and
        pipeline("text-generation") all write conversations the same way."""
        if self.chat_template_setting is not None:
            tokenizer.chat_template = formats.resolve_chat_template(tokenizer, self.chat_template_setting)

    checks_tokenizer = True

    def check_tokenizer(self, config: RunConfig, tokenizer: Any) -> None:
        """Chat data needs a chat template (the tokenizer's, or data.chat_template); every shape needs an EOS. The
        run meets the same errors when it tokenizes; here they come before a run directory is made."""
        from core.tasks.text_generation import shared

        if config.data.messages_column is not None:
            formats.resolve_chat_template(tokenizer, config.data.chat_template, config.model.name_or_path)
        with formats.user_errors():
            shared.eos_id(tokenizer)

    # --- data ----------------------------------------------------------------------------------------------------
    def prepare_splits(self, cfg: DataConfig, raw: Any, sources: dict[str, SplitSource]) -> TaskSplits:
        import pyarrow as pa
        from datasets import Features, List, Value

        from core.data.arrow import make_dataset

        key = "|".join(str(v) for v in (cfg.prompt_template, cfg.response_column, cfg.messages_column,
                                        cfg.text_column))
        splits = {}
        for split, ds in raw.items():
            columns = formats.standard_columns(ds, prompt_template=cfg.prompt_template,
                                               response_column=cfg.response_column,
                                               messages_column=cfg.messages_column, text_column=cfg.text_column,
                                               src=sources[split])
            if formats.MESSAGES in columns:
                turn = {"role": Value("string"), "content": Value("string")}
                features = Features({formats.MESSAGES: List(turn)})
            else:
                features = Features(dict.fromkeys(columns, Value("string")))
            table = pa.table({name: pa.array(values, type=features[name].pa_type) for name, values in columns.items()})
            splits[split] = make_dataset(table, f"{ds._fingerprint}|{self.name}|{key}", features)
        column = cfg.messages_column or cfg.response_column or cfg.text_column
        assert column is not None  # standard_columns refuses data with none of them
        return TaskSplits(splits, [], column)

    def suggest_label(self, columns: list[str]) -> str | None:
        """Chat columns first, then the names instruction datasets give their answers (Alpaca's output, Dolly's
        response, TRL's completion)."""
        lowered = {c.lower(): c for c in columns}
        names = ("messages", "conversations", "output", "response", "completion", "answer", "text")
        return next((lowered[n] for n in names if n in lowered), None)

    def claims_column(self, info: ColumnInfo) -> str | None:
        if info.holds_turns():
            return f"'{info.name}' holds conversations (lists of role/content turns)"
        return None

    def prepared_stats(self, train: Any, names: list[str], cfg: DataConfig) -> dict[str, Any]:
        return {"format": generate.data_format(train.column_names), "prompt_template": cfg.prompt_template,
                "response_column": cfg.response_column, "messages_column": cfg.messages_column}

    def found_columns(self, prepared: PreparedData) -> dict[str, str | None]:
        return {}  # every column is named by the config: nothing is detected

    def encode_labels(self, raw: Any, sources: dict[str, SplitSource], label: str, cfg: DataConfig) -> Any:
        raise TypeError("text-generation's rows are standardised by prepare_splits, not as text + label")

    def strata(self, labels: np.ndarray) -> np.ndarray | None:
        return None

    def label_stats(self, train_labels: np.ndarray, names: list[str], cfg: DataConfig) -> dict[str, Any]:
        return {}

    def summary(self, prepared: PreparedData) -> str:
        stats = prepared.label_stats
        fmt = stats.get("format")
        if fmt == generate.CHAT:
            return f"chat: conversations in '{stats.get('messages_column')}'"
        if fmt == generate.INSTRUCTION:
            return (f"instructions: prompts {stats.get('prompt_template')!r}, answers in "
                    f"'{stats.get('response_column')}'")
        return f"plain text in '{prepared.text_column}'"

    def label_overview(self, ds: Any, column: str, label_names: list[str] | None) -> LabelOverview:
        """Answers by their length in words: what the model will learn to write; conversations by their turns."""
        values = ds[column]
        if values and all(isinstance(v, list) for v in values[:50]):
            turns: dict[str, int] = {}
            bad = 0
            for v in values:
                if formats.turn_problem(v) is not None:
                    bad += 1
                    continue
                n = sum(1 for t in v if t["role"] == "assistant")
                key = "1 answer" if n == 1 else f"{min(n, 5)}{'+' if n >= 5 else ''} answers"
                turns[key] = turns.get(key, 0) + 1
            warning = (f"{bad} of {len(values)} rows are not conversations the model can learn from; training "
                       "refuses them, naming the first" if bad else None)
            return LabelOverview("Conversations", dict(sorted(turns.items())),
                                 f"{len(values) - bad:,} conversations, by assistant turns", warning)
        lengths = [len(str(v).split()) for v in values if v is not None and not isinstance(v, (list, dict))]
        if not lengths:
            return LabelOverview("Responses", {}, "", f"'{column}' holds no text answers")
        bins = [(1, 5), (6, 20), (21, 50), (51, 150), (151, 500), (501, None)]
        counts = {}
        for lo, hi in bins:
            n = sum(1 for x in lengths if x >= lo and (hi is None or x <= hi))
            if n:
                counts[f"{lo}+ words" if hi is None else f"{lo}-{hi} words"] = n
        empty = len(values) - sum(1 for v in values if v is not None and str(v).strip())
        warning = f"{empty} of {len(values)} rows have an empty answer; training refuses them" if empty else None
        median = sorted(lengths)[len(lengths) // 2]
        return LabelOverview("Responses", counts, f"{len(lengths):,} answers, median {median} words", warning)

    # --- tokens --------------------------------------------------------------------------------------------------
    def _template(self, tokenizer: Any, batch: Mapping[str, Any]) -> str | None:
        return formats.resolve_chat_template(tokenizer, None) if formats.MESSAGES in batch else None

    def encode_batch(self, tokenizer: Any, batch: dict[str, list[Any]], tok: Any, padding: Any, transform: Any,
                     split: str) -> dict[str, Any]:
        """shared.training_rows: input_ids and labels cut to max_length, examples with nothing to learn left out,
        the training split packed with training.packing."""
        from core.tasks.text_generation import shared

        with formats.user_errors():
            return shared.training_rows(tokenizer, batch, max_length=tok.max_length,
                                        train_on_prompt=self.train_on_prompt,
                                        chat_template=self._template(tokenizer, batch),
                                        pack=self.packing and split == "train")

    def cache_key(self, prepared: PreparedData) -> str:
        return f"{self.name}|{self.train_on_prompt}|{self.packing}|{self.chat_template_setting}|v2"

    def collator(self, tokenizer: Any, pad_to_multiple_of: int | None, return_tensors: str) -> Any:
        from core.tasks.text_generation.tokenize import collator

        if return_tensors != "np":
            return collator(tokenizer, self.packing, pad_to_multiple_of, return_tensors)
        # The keras engine's NumPy batches: TRL's collator makes torch tensors only.
        collate = collator(tokenizer, self.packing, pad_to_multiple_of, "pt")
        return lambda rows: {k: v.numpy() if hasattr(v, "numpy") else v for k, v in collate(rows).items()}

    def trainer_classes(self) -> tuple[Any, Any, dict[str, Any]]:
        """TRL's SFTTrainer on the rows tokenized here (its dataset preparation skipped: the same tokens, masks and
        packing as torch-loop), gradient checkpointing and precision left as the config says (SFTConfig's own
        defaults differ from TrainingArguments')."""
        from trl import SFTConfig, SFTTrainer

        return SFTTrainer, SFTConfig, {"dataset_kwargs": {"skip_prepare_dataset": True}, "packing": False,
                                       "padding_free": False, "max_length": None, "gradient_checkpointing": False}

    def measure_lengths(self, prepared: PreparedData, tokenizer: Any, max_length: int, batch_size: int = 16,
                        truncation: bool = True, facts: Any = None) -> Any:
        """Prompt + response (the whole conversation, the whole text) in tokens, as training encodes them."""
        from core.tokenization import LengthStats

        facts = facts if facts is not None else self.length_facts(prepared, tokenizer)
        return LengthStats.compute(facts.lengths.tolist(), max_length, batch_size, True, total=facts.total)

    def first_example_ids(self, prepared: PreparedData, tokenizer: Any) -> list[int]:
        from core.tasks.text_generation.tokenize import encode

        train = prepared.dataset["train"]
        if not len(train):
            return []
        batch = {name: [train[0][name]] for name in train.column_names}
        return encode(tokenizer, batch, train_on_prompt=self.train_on_prompt,
                      chat_template=self._template(tokenizer, batch))[0].input_ids

    def length_facts(self, prepared: PreparedData, tokenizer: Any) -> Any:
        from core.tasks.text_generation.tokenize import length_facts
        from core.tokenization import sample_indices

        train = prepared.dataset["train"]
        sample = train.select(sample_indices(len(train)))
        batch = {name: list(sample[name]) for name in sample.column_names}
        return length_facts(tokenizer, batch, train_on_prompt=self.train_on_prompt,
                            chat_template=self._template(tokenizer, batch), total=len(train))

    def describe_lengths(self, facts: Any, max_length: int, truncation: bool) -> list[str]:
        if facts is None:
            return []
        s = facts.at(max_length)
        lines = [f"{s.cut_share:.1%} of examples have their answer cut at {max_length} tokens"
                 + (f"; {s.lossless} would have no answer left and are left out" if s.lossless else ""),
                 f"{s.loss_fraction:.0%} of the tokens trained on carry loss (answers)"]
        if s.packed_sequences:
            lines.append(f"packing: {s.examples:,} examples fill {s.packed_sequences:,} sequences of {max_length} "
                         f"tokens, {s.packing_efficiency:.0%} of them real tokens")
        return lines

    # --- model ---------------------------------------------------------------------------------------------------
    def num_outputs(self, prepared: PreparedData) -> int:
        return 0

    def label_shape(self, batch: int, names: list[str], length: int) -> tuple[int, ...]:
        return (batch, length)

    def head_config(self, names: list[str]) -> dict[str, Any]:
        return {}

    def check_hf_model(self, model_config: Any, name: str) -> None:
        from transformers.models.auto.modeling_auto import (
            MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
            MODEL_FOR_MASKED_LM_MAPPING_NAMES,
        )

        from core.errors import ModelError

        model_type = getattr(model_config, "model_type", None)
        # BERT-like encoders have a causal-LM class in transformers too, but were never trained to write text.
        encoder = model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES or getattr(model_config, "is_encoder_decoder", False)
        if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or encoder:
            raise ModelError(f"model {name} ({model_type}) is not a decoder language model, which text-generation "
                             "fine-tunes to write answers",
                             "choose a decoder LM such as Qwen/Qwen2.5-0.5B-Instruct, HuggingFaceTB/SmolLM2-360M-"
                             "Instruct or gpt2, or train this model for text-classification")

    def finalize_saved(self, model: Any, tokenizer: Any) -> None:
        from core.tasks.text_generation.shared import ready_to_generate

        ready_to_generate(model, tokenizer)

    def model_meta(self, prepared: PreparedData) -> dict[str, Any]:
        stats = prepared.label_stats
        return {"task": self.name, "labels": [], "format": stats.get("format", generate.PLAIN),
                "prompt_template": stats.get("prompt_template"), "max_new_tokens": generate.MAX_NEW_TOKENS}

    # --- exported scripts ----------------------------------------------------------------------------------------
    def script_context(self, config: RunConfig, prepared: PreparedData) -> dict[str, Any]:
        """shared.py inlined (the script tokenizes, masks and packs with this very code), the columns its rows come
        from, the chat template data.chat_template resolves to, and task.json as the run writes it; for the keras
        engine's script, core.engines.keras_weights inlined (it writes the trained model back as a run does)."""
        from core.engines import keras_weights
        from core.tasks.base import inlined_source
        from core.tasks.text_generation import shared

        d = config.data
        fmt = prepared.label_stats.get("format", generate.PLAIN)
        chat_template = formats.resolve_chat_template(None, d.chat_template) if d.chat_template else None
        return {"libraries": ["trl"], "datasets_imports": [], "shared_source": inlined_source(shared),
                "format": fmt, "prompt_template": d.prompt_template, "response_column": d.response_column,
                "messages_column": d.messages_column, "text_column": d.text_column, "chat_template": chat_template,
                "meta": self.model_meta(prepared), "collator": "collator(tokenizer, packed=PACKING)",
                "tokenized_labels": True, "keras_weights_source": inlined_source(keras_weights)}

    # --- keras ---------------------------------------------------------------------------------------------------
    keras_kind = "causal_lm"

    def keras_model(self, backbone: Any, num_outputs: int, dropout: float | None) -> Any:
        from core.engines.keras_convert import causal_lm

        return causal_lm(backbone)

    def keras_loss(self, keras: Any, weights: list[float] | None) -> Any:
        from core.engines.keras_callbacks import CausalLMLoss

        return CausalLMLoss()

    def keras_labels(self, labels: np.ndarray) -> np.ndarray:
        return labels.astype("int32")  # unshifted, -100 where no loss is taken: CausalLMLoss shifts them

    def keras_label_spec(self) -> tuple[tuple[int | None, ...], str]:
        return (None, None), "int32"

    def save_keras_model(self, model: Any, source: Path, out_dir: Path, tokenizer: Any, prepared: PreparedData) -> bool:
        """transformers format, as the PyTorch engines leave it (predict, evaluate, the Try screen and
        pipeline("text-generation") read it unchanged): the checkpoint's config with the trained, LoRA-merged
        weights (core.engines.keras_export), generation settings (finalize_saved), the tokenizer and task.json."""
        from core.engines.keras_export import save_transformers
        from core.tasks.model_meta import write_meta

        save_transformers(model.backbone, source, out_dir, lambda hf: self.finalize_saved(hf, tokenizer))
        tokenizer.save_pretrained(out_dir)
        write_meta(out_dir, self.model_meta(prepared))
        return True

    # --- outputs -------------------------------------------------------------------------------------------------
    def metrics_from_loss(self, loss: float) -> dict[str, float]:
        return {"perplexity": math.exp(min(loss, 700.0))}  # exp overflows past ~709

    def compute_metrics(self, outputs: np.ndarray, labels: np.ndarray, metrics: list[str],
                        prepared: PreparedData) -> dict[str, float]:
        raise TypeError("text-generation keeps no outputs: its metrics come from the loss (metrics_from_loss)")

    def eval_loss(self, outputs: np.ndarray, labels: np.ndarray) -> float:
        raise TypeError("text-generation keeps no outputs: the engines measure its loss")

    def validation_samples(self, model: Any, tokenizer: Any, prepared: PreparedData) -> list[dict[str, Any]] | None:
        ds = prepared.dataset.get("validation")
        if ds is None or not len(ds):
            return None
        rows = [ds[i] for i in range(min(generate.SAMPLES, len(ds)))]
        return _answer_rows(model, tokenizer, rows, generate.SAMPLE_NEW_TOKENS)

    def text_scores(self, predictor: Any, texts: list[Any], pairs: list[str] | None, batch_size: int) -> Any:
        import numpy as np

        if pairs is not None:
            raise TypeError("text-generation answers single prompts, not pairs")
        if not all(isinstance(t, str) for t in texts):
            raise TypeError("prompts must be strings")
        ids = [generate.user_prompt_ids(predictor.tokenizer, predictor.meta, t) for t in texts]
        answers = generate.generate(predictor.model, predictor.tokenizer, ids,
                                    int(predictor.meta.get("max_new_tokens", generate.MAX_NEW_TOKENS)), batch_size)
        out = np.empty(len(answers), dtype=object)
        out[:] = answers
        return out

    def scores(self, outputs: np.ndarray) -> np.ndarray:
        return outputs  # generated texts already

    def answers(self, scores: np.ndarray, meta: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"generated_text": str(text)} for text in scores]

    def format_answer(self, answer: dict[str, Any], text: str) -> str:
        return f"{text}\n=> {answer['generated_text']}"

    def answer_json(self, answer: dict[str, Any]) -> dict[str, Any]:
        return {"generated_text": answer["generated_text"]}

    def file_columns(self, answers: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, list[Any]]:
        return {"generated_text": [a["generated_text"] for a in answers]}

    def answers_summary(self, answers: list[dict[str, Any]]) -> str:
        if not answers:
            return "no answers"
        words = sorted(len(a["generated_text"].split()) for a in answers)
        return f"{len(answers)} answers, median {words[len(words) // 2]} words"

    # --- evaluation ----------------------------------------------------------------------------------------------
    def evaluate_model(self, predictor: Any, prepared: PreparedData, split: str, metric_names: list[str],
                       metrics: dict[str, float] | None, limit: int) -> tuple[Evaluation, list[dict[str, Any]]]:
        from core.evaluation import Evaluation

        ds = prepared.dataset[split]
        if metrics is None:
            loss = _mean_loss(predictor, ds, self)
            metrics = {"loss": loss, **self.metrics_from_loss(loss)}
        rows = [ds[i] for i in range(min(limit, len(ds)))]
        answered = _answer_rows(predictor.model, predictor.tokenizer, rows, _EVAL_NEW_TOKENS)
        listed = [{"index": i, **row} for i, row in enumerate(answered)]
        ev = Evaluation(split=split, labels=[], size=len(ds), metrics=dict(metrics), task=self.name,
                        details={"answered": len(listed), "examples": listed[:_REPORT_EXAMPLES]})
        return ev, listed

    def evaluate(self, names: list[str], metrics: list[str], labels: np.ndarray, scores: np.ndarray) -> Evaluation:
        raise TypeError("text-generation is evaluated by evaluate_model (loss, perplexity and generated answers)")

    def example(self, names: list[str], label: Any, scores: np.ndarray) -> dict[str, Any]:
        raise TypeError("text-generation's rows are answered by evaluate_model")

    def most_wrong(self, labels: np.ndarray, scores: np.ndarray, limit: int) -> list[tuple[int, dict[str, Any]]]:
        return []

    def report_sections(self, ev: Evaluation) -> list[ReportSection]:
        examples = ev.details.get("examples") or []
        if not examples:
            return []
        lines: list[tuple[str, str]] = []
        for row in examples:
            lines += [(f"prompt:    {one_line(row['prompt'], 100)}", "dim"),
                      (f"expected:  {one_line(row['reference'], 100)}", "ok"),
                      (f"generated: {one_line(row['generated'], 100)}", "strong"), ("", "dim")]
        total = ev.details.get("answered", len(examples))
        return [ReportSection(f"answers (greedy; {len(examples)} of {total} in predictions.jsonl)", lines[:-1])]

    def mistake_line(self, row: dict[str, Any]) -> str:
        return "answer"

    def plot_report(self, fig: Any, ax: Any, ev: Evaluation) -> None:
        ax.axis("off")
        shown = ", ".join(f"{k} {v:.3f}" for k, v in ev.metrics.items())
        lines = [f"{ev.split} ({ev.size}): {shown}", ""]
        for row in (ev.details.get("examples") or [])[:3]:
            lines += [f"Q: {one_line(row['prompt'], 70)}", f"A: {one_line(row['generated'], 70)}",
                      f"expected: {one_line(row['reference'], 62)}", ""]
        ax.text(0.0, 1.0, "\n".join(lines), va="top", ha="left", family="monospace", fontsize=8,
                transform=ax.transAxes)

    # --- screens -------------------------------------------------------------------------------------------------
    def results_grid(self, ev: Evaluation) -> Grid | None:
        return None

    streams_answers = True

    def stream_answer(self, predictor: Any, text: str, stop: Any) -> Iterator[str]:
        ids = generate.user_prompt_ids(predictor.tokenizer, predictor.meta, text)
        yield from generate.stream(predictor.model, predictor.tokenizer, ids,
                                   int(predictor.meta.get("max_new_tokens", generate.MAX_NEW_TOKENS)), stop)

    def try_intro(self, meta: dict[str, Any]) -> str:
        how = {generate.CHAT: "as a user turn of a chat", generate.INSTRUCTION: "as the instruction of the prompt "
               "template"}.get(meta.get("format", ""), "as text to continue")
        return f"Type a prompt and press Enter: the model answers it {how}, as it writes (ctrl+s stops it)."

    def try_view(self, answer: dict[str, Any], meta: dict[str, Any]) -> TryView:
        return TryView("Answer", line=answer["generated_text"])


def _answer_rows(model: Any, tokenizer: Any, rows: list[Mapping[str, Any]], max_new_tokens: int) -> list[dict[str,
                                                                                                               Any]]:
    """Prepared rows as {prompt, reference, generated}: the model's greedy answer to each row's prompt."""
    template = formats.resolve_chat_template(tokenizer, None) if rows and formats.MESSAGES in rows[0] else None
    asked = [generate.row_prompt(tokenizer, row, template) for row in rows]
    answers = generate.generate(model, tokenizer, [ids for ids, _, _ in asked], max_new_tokens)
    return [{"prompt": shown, "reference": reference, "generated": answer}
            for (_, shown, reference), answer in zip(asked, answers, strict=True)]


def _mean_loss(predictor: Any, ds: Any, task: TextGeneration) -> float:
    """The saved model's mean loss per example over a prepared split, tokenized as training tokenized it."""
    import torch

    # Tokenized as training tokenized it: the same cut, the same examples with nothing to learn left out.
    batch = {name: list(ds[name]) for name in ds.column_names}
    encoded = task.encode_batch(predictor.tokenizer, batch, predictor.settings, None, None, "evaluation")
    rows = [{"input_ids": i, "labels": lab} for i, lab in zip(encoded["input_ids"], encoded["labels"], strict=True)]
    from core.tasks.text_generation.tokenize import collator

    collate = collator(predictor.tokenizer, packed=False)
    total, count = 0.0, 0
    model = predictor.model
    for start in range(0, len(rows), 8):
        chunk = collate(rows[start:start + 8])
        with torch.no_grad():
            out = model(**{k: v.to(model.device) if hasattr(v, "to") else v for k, v in chunk.items()})
        total += float(out.loss) * len(rows[start:start + 8])
        count += len(rows[start:start + 8])
    return total / max(count, 1)


TASK = TextGeneration()
