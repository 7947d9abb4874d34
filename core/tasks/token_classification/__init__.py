"""token-classification: a tag per word (named entities, chunks, parts of speech), read as entities.

Data: a CoNLL file (core.data.conll: `tokens` and `tags` columns) or JSON/JSONL/Parquet with a list of words and a
list of tags per row (data.tokens_column, data.tags_column; tags as strings, or ids with data.label_names or a Hub
Sequence(ClassLabel)). Tags are checked against the scheme (tags.py), IOB1 becomes IOB2, and every tag the data
holds becomes one of the model's labels, O first.

Tokens: words are tokenized with is_split_into_words and labels follow word_ids(): a word's first sub-token carries
its tag, the rest -100 unless tokenizer.label_all_tokens (then B- becomes I- on them). Validation and test splits
always label first sub-tokens only, so an evaluation reads one output per word (gather_outputs) and its report lines
up with the words. Only fast tokenizers know word_ids(); a slow-only model is refused with that reason.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any, ClassVar

from core.tasks.base import Grid, LabelEncoding, LabelOverview, ReportSection, Task, TryView, WizardField, report_title
from core.tasks.token_classification import tags as T

if TYPE_CHECKING:
    import numpy as np

    from core.config import DataConfig, RunConfig
    from core.data.arrow import SplitSource
    from core.data.inspection import ColumnInfo
    from core.data.prepare import PreparedData
    from core.evaluation import Evaluation

IGNORE = -100
TOKENS_NAMES = ("tokens", "words", "token", "word")
TAGS_NAMES = ("ner_tags", "tags", "labels", "ner", "tag", "label", "entities")
_WORD = re.compile(r"\w+(?:['’\-]\w+)*|[^\w\s]")  # words and punctuation of typed text, as CoNLL tokenizes them
_DIGITS = 4
_NONE = "(none)"


def split_words(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Words of typed text and their character offsets."""
    found = list(_WORD.finditer(text))
    return [m.group() for m in found], [(m.start(), m.end()) for m in found]


class TokenClassification(Task):
    name = "token-classification"
    title = "Token classification"
    metric_names = ("f1", "precision", "recall", "accuracy")
    default_metrics = metric_names
    problem_type = ""  # transformers' token-classification heads have one loss: cross-entropy over labelled tokens
    auto_model_class = "AutoModelForTokenClassification"
    peft_task_type = "TOKEN_CLS"
    collator_class = "DataCollatorForTokenClassification"  # pads the labels too, with -100
    pipeline_task = "token-classification"
    # "first": each word takes its first sub-token's tag, as training labels words (label_all_tokens: false);
    # "simple" gives the same entity names but may split a word whose later sub-tokens were never trained.
    pipeline_kwargs: ClassVar[dict[str, Any]] = {"aggregation_strategy": "first"}
    column_settings = ()  # words and tags have settings of their own (wizard_fields)
    label_setting = "data.tags_column"
    wizard_fields = (
        WizardField("data.tokens_column", "Words column", "dataset", placeholder="detect (tokens, words)"),
        WizardField("data.tags_column", "Tags column", "dataset", placeholder="detect (ner_tags, tags)"),
        WizardField("data.tags_column_index", "CoNLL tag column", "dataset", placeholder="last"),
        WizardField("data.tag_scheme", "Tag scheme", "dataset", editor="select"),
        WizardField("tokenizer.label_all_tokens", "Label all sub-tokens", "training", editor="checkbox"),
    )
    own_settings: ClassVar[dict[str, tuple[Any, str]]] = {
        "data.tokens_column": (None, "names the words column"),
        "data.tags_column": (None, "names the tags column"),
        "data.tags_column_index": (None, "picks a CoNLL file's tag column"),
        "data.tag_scheme": ("auto", "reads the tags"),
        "tokenizer.label_all_tokens": (False, "labels sub-tokens"),
    }
    unused_settings: ClassVar[dict[str, tuple[Any, str]]] = {
        "data.label_scaling": ("none", "scales the scores of text-regression"),
        "data.label_columns": (None, "lists 0/1 columns of multi-label-classification"),
        "data.label_separator": (None, "splits the labels of multi-label-classification"),
        "data.label_column": (None, "names one label per text; the tags are data.tags_column"),
        "data.text_pair_column": (None, "pairs texts; words come one list per row"),
        "training.threshold": (0.5, "decides the labels of multi-label-classification"),
    }

    # --- data ----------------------------------------------------------------------------------------------------
    def columns(self, cfg: DataConfig, raw: Any, sources: dict[str, SplitSource]) -> tuple[str, str | None, str]:
        from core.data.arrow import arrow_column, column_kind, where
        from core.errors import DataError

        train = raw["train"]
        desc = sources["train"].desc
        names = ", ".join(train.column_names)
        lists = [c for c in train.column_names if column_kind(train, c) == "list"]

        def find(configured: str | None, candidates: tuple[str, ...], key: str, what: str) -> str:
            if configured is not None:
                if configured not in train.column_names:
                    raise DataError(f"column '{configured}' ({key}) is not in {desc}; its columns are: {names}",
                                    f"set {key} to the column with {what}")
                return configured
            found = next((c for c in lists if c.lower() in candidates), None)
            if found is None:
                if not lists:
                    raise DataError(
                        f"token-classification needs each sentence as a list of words with a list of tags, and {desc} "
                        f"holds no list columns (columns: {names})",
                        "give a CoNLL file (one word and its tag per line, a blank line between sentences; "
                        "data.format: conll), or JSON/JSONL/Parquet rows with a list of words and a list of tags; "
                        "for one label per text choose task: text-classification")
                raise DataError(f"cannot tell which column of {desc} holds {what} (list columns: {', '.join(lists)})",
                                f"set {key}")
            return found

        tokens = find(cfg.tokens_column, TOKENS_NAMES, "data.tokens_column", "the words")
        tags = find(cfg.tags_column, TAGS_NAMES, "data.tags_column", "the tags")
        if tokens == tags:
            raise DataError(f"the words and the tags are both column '{tokens}'", "choose one column for each")
        import pyarrow.compute as pc

        for split, ds in raw.items():
            src = sources[split]
            for key, column in (("data.tokens_column", tokens), ("data.tags_column", tags)):
                if column not in ds.column_names:
                    raise DataError(f"column '{column}' ({key}) is not in the {split} data {src.desc}; its columns "
                                    f"are: {', '.join(ds.column_names)}", f"set {key} to one of those columns")
                if column_kind(ds, column) != "list":
                    raise DataError(f"column '{column}' ({key}) in {src.desc} holds {column_kind(ds, column)} values, "
                                    "not a list per row", "give each row a list (one entry per word)")
            words, labels = arrow_column(ds, tokens), arrow_column(ds, tags)
            missing = pc.or_kleene(pc.is_null(words), pc.is_null(labels))
            empty = pc.fill_null(pc.or_kleene(missing, pc.equal(pc.list_value_length(words), 0)), True)
            from core.data.arrow import true_rows

            rows = true_rows(empty)
            if len(rows):
                raise DataError(f"{src.desc} has {len(rows)} row(s) with no words at {where(rows, src)}",
                                "delete those rows or give them their words and tags")
            differ = true_rows(pc.not_equal(pc.list_value_length(words), pc.list_value_length(labels)))
            if len(differ):
                i = int(differ[0])
                raise DataError(
                    f"{src.desc} has {len(differ)} row(s) whose words and tags differ in number, at "
                    f"{where(differ, src)} (the first: {len(words[i])} words, {len(labels[i])} tags)",
                    "give every word exactly one tag")
        return tokens, None, tags

    def found_columns(self, prepared: PreparedData) -> dict[str, str | None]:
        return {"tokens_column": prepared.text_column, "tags_column": prepared.label_column}

    def encode_labels(self, raw: Any, sources: dict[str, SplitSource], label: str, cfg: DataConfig) -> LabelEncoding:
        import pyarrow as pa
        from datasets import ClassLabel, List

        from core.data.arrow import where
        from core.data.labels import read_label_names
        from core.errors import DataError

        given = read_label_names(cfg.label_names) if cfg.label_names is not None else None
        if given is None:  # a Hub dataset's Sequence(ClassLabel): its names, in its id order
            inner = getattr(raw["train"].features[label], "feature", None)
            given = list(inner.names) if isinstance(inner, ClassLabel) else None
        sentences: dict[str, list[list[str]]] = {}
        for split, ds in raw.items():
            feature = ds.features[label]
            inner = getattr(feature, "feature", None)
            values = ds.data.column(label).to_pylist() if getattr(ds, "_indices", None) is None else ds[label]
            names = given or (list(inner.names) if isinstance(inner, ClassLabel) else None)
            if values and values[0] and isinstance(values[0][0], int) and not isinstance(values[0][0], bool):
                if names is None:
                    raise DataError(f"the tags in '{label}' of {sources[split].desc} are numbers, and nothing names "
                                    "them", "set data.label_names to the tag names in id order, e.g. [O, B-PER, "
                                    "I-PER, B-LOC, I-LOC]")
                bad = [i for i, row in enumerate(values) if any(not 0 <= v < len(names) for v in row)]
                if bad:
                    raise DataError(f"tag ids in '{label}' of {sources[split].desc} go past the {len(names)} names in "
                                    f"data.label_names, at {where(bad, sources[split])}",
                                    "give a name for every id in data.label_names")
                values = [[names[v] for v in row] for row in values]
            sentences[split] = [[str(t).strip() for t in row] for row in values]
        scheme = T.read_as(sentences["train"], cfg.tag_scheme)[1]
        notes = []
        for split, given_rows in sentences.items():
            src = sources[split]
            check = "iob2" if scheme == "iob1" else scheme
            rows = sentences[split] = T.read_as(given_rows, scheme)[0]
            bad = [i for i, row in enumerate(rows) if any(T.bad_tag(t, check) for t in row)]
            if bad:
                tag = next(t for t in rows[bad[0]] if T.bad_tag(t, check))
                allowed = "/".join(T.PREFIXES[scheme])
                raise DataError(f"tag {tag!r} in '{label}' of {src.desc} is not of the {scheme.upper()} scheme "
                                f"(O, or {allowed} then '-' and a type, e.g. B-PER), at {where(bad, src)}",
                                "correct those tags, or set data.tag_scheme to the scheme the file uses")
            orphans = sum(T.orphan_count(row) for row in rows) if scheme != "iob1" else 0
            if orphans:
                notes.append(f"{orphans} I- tags in {src.desc} start an entity with no B- before them; each is read as "
                             "starting one")
        if scheme == "iob1":
            notes.append("tags converted from IOB1 (I- starts an entity) to IOB2")
        seen = {t for rows in sentences.values() for row in rows for t in row}
        # Every prefix of the scheme for each type seen: a model can then tag any well-formed entity of those types,
        # and label_all_tokens has an I- to give a B- word's later sub-tokens.
        kinds = {T.split_tag(t)[1] for t in seen if t != T.OUTSIDE}
        full = {f"{p}-{k}" for k in kinds for p in T.PREFIXES["iob2" if scheme == "iob1" else scheme]}
        names = list(given) if given else T.tag_order(seen | full)
        if T.OUTSIDE not in names:
            names = [T.OUTSIDE, *names]
        index = {n: i for i, n in enumerate(names)}
        unknown = sorted(seen - set(index))
        if unknown:
            raise DataError(f"tags {unknown} are not in data.label_names", "add them to data.label_names")
        arrays = {split: pa.array([[index[t] for t in row] for row in rows], pa.list_(pa.int64()))
                  for split, rows in sentences.items()}
        return LabelEncoding(names, arrays, List(ClassLabel(names=names)), notes)  # type: ignore[arg-type]

    def references(self, column: list[Any]) -> Any:
        import numpy as np

        width = max((len(row) for row in column), default=0)
        out = np.full((len(column), width), IGNORE, dtype=np.int64)
        for i, row in enumerate(column):
            out[i, :len(row)] = row
        return out

    def strata(self, labels: np.ndarray) -> np.ndarray | None:
        return None

    def label_stats(self, train_labels: np.ndarray, names: list[str], cfg: DataConfig) -> dict[str, Any]:
        from collections import Counter

        rows = [[names[int(i)] for i in row] for row in train_labels]
        strict = T.scheme_of(names) == "iobes"
        counts = Counter(e[0] for row in rows for e in T.entities(row, strict))
        tags = Counter(int(i) for row in train_labels for i in row)
        return {"sentences": len(rows), "words": sum(len(r) for r in rows), "scheme": T.scheme_of(names),
                "entities": dict(counts.most_common()), "tag_counts": [tags.get(i, 0) for i in range(len(names))]}

    def class_counts(self, prepared: PreparedData) -> list[int]:
        """Training words per tag: what training.class_weights: auto weighs by."""
        return list(prepared.label_stats.get("tag_counts", []))

    def summary(self, prepared: PreparedData) -> str:
        s = prepared.label_stats
        kinds = ", ".join(f"{k} {n}" for k, n in s["entities"].items()) or "none"
        return (f"{len(s['entities'])} entity types in {s['sentences']} sentences of {s['words']} words "
                f"({s['scheme'].upper()}): {kinds}")

    def label_overview(self, ds: Any, column: str, label_names: list[str] | None) -> LabelOverview:
        from collections import Counter

        from core.data.arrow import column_kind

        if column_kind(ds, column) != "list":
            return LabelOverview("Entities", {}, "", f"'{column}' holds one value per row, not a tag per word; "
                                 "token-classification reads CoNLL files or lists of words and tags")
        values = ds[column]
        inner = getattr(ds.features[column], "feature", None)
        names = label_names or getattr(inner, "names", None)
        rows = [[names[v] if names and isinstance(v, int) and v < len(names) else str(v) for v in row]
                for row in values if row]
        rows, scheme = T.read_as(rows)
        counts = Counter(e[0] for row in rows for e in T.entities(row, scheme == "iobes"))
        orphans = sum(T.orphan_count(r) for r in rows) if scheme != "iob1" else 0
        caption = (f"{len(rows)} sentences, {sum(len(r) for r in rows)} words, {sum(counts.values())} entities "
                   f"({scheme.upper()})")
        warning = (f"{orphans} I- tags start an entity with no B- before them (read as starting one)"
                   if orphans else None)
        words_column = next((c for c in ds.column_names if c != column and c.lower() in TOKENS_NAMES
                             and column_kind(ds, c) == "list"), None)
        examples = []
        if words_column is not None:
            for words, tags in zip(ds[words_column][:50], rows[:50], strict=False):
                if len(words) == len(tags) and any(t != T.OUTSIDE for t in tags):
                    examples.append(mark_entities([str(w) for w in words], tags, scheme == "iobes"))
                if len(examples) == 3:
                    break
        return LabelOverview("Entities", dict(counts.most_common()), caption, warning, examples=examples)

    def claims_column(self, info: ColumnInfo) -> str | None:
        if info.dtype == "list" and any(re.search(r"['\"]?[BIES]-\w", e) for e in info.examples):
            return f"'{info.name}' holds a B-/I- tag per word"
        return None

    # --- tokens --------------------------------------------------------------------------------------------------
    def label_transform(self, prepared: PreparedData) -> Any:
        """For label_all_tokens: each tag id's id on a word's later sub-tokens (B-X's is I-X's)."""
        return T.inside_ids(list(prepared.label_names))

    def encode_batch(self, tokenizer: Any, batch: dict[str, list[Any]], tok: Any, padding: Any, transform: Any,
                     split: str) -> dict[str, Any]:
        check_fast(tokenizer)
        enc = tokenizer(batch["text"], is_split_into_words=True, truncation=tok.truncation,
                        max_length=tok.max_length, padding=padding, verbose=False)
        every = tok.label_all_tokens and split == "train"
        labels = []
        for i, tags in enumerate(batch["label"]):
            row, previous = [], None
            for word in enc.word_ids(i):
                if word is None:
                    row.append(IGNORE)
                elif word != previous:
                    row.append(tags[word])
                else:
                    row.append(transform[tags[word]] if every else IGNORE)
                previous = word
            labels.append(row)
        out = dict(enc)
        out["labels"] = labels
        return out

    def length_facts(self, prepared: PreparedData, tokenizer: Any) -> Any:
        """Per sampled training sentence: the token position of each word's first sub-token and where its entities
        end (as word indexes), and the special tokens the tokenizer adds after the words."""
        from core.tokenization import sample_indices

        check_fast(tokenizer)
        train = prepared.dataset["train"]
        rows = train.select(sample_indices(len(train))) if len(train) else train
        names = list(prepared.label_names)
        strict = prepared.label_stats.get("scheme") == "iobes"
        sentences = []
        texts, labels = rows["text"], rows["label"]
        for start in range(0, len(texts), 1000):
            enc = tokenizer(texts[start:start + 1000], is_split_into_words=True, truncation=False,
                            return_attention_mask=False, return_token_type_ids=False)
            for i, tags in enumerate(labels[start:start + 1000]):
                ids = enc.word_ids(i)
                firsts: dict[int, int] = {}
                for position, word in enumerate(ids):
                    if word is not None and word not in firsts:
                        firsts[word] = position
                trailing = next((n for n, w in enumerate(reversed(ids)) if w is not None), 0)
                ends = [last for _, _, last in T.entities([names[t] for t in tags], strict)]
                sentences.append(([firsts.get(w, 10**9) for w in range(len(tags))], ends, trailing))
        return {"sentences": sentences, "total": len(train)}

    def describe_lengths(self, facts: Any, max_length: int, truncation: bool) -> list[str]:
        if not facts or not facts["sentences"]:
            return []
        cut_sentences = cut_entities = entities = 0
        for firsts, ends, trailing in facts["sentences"]:
            seen = sum(1 for p in firsts if p < max_length - trailing)  # words whose first sub-token is kept
            entities += len(ends)
            if seen < len(firsts):
                cut_sentences += 1
                cut_entities += sum(1 for end in ends if end >= seen)
        n = len(facts["sentences"])
        measured = f" (of {n:,} sampled)" if n < facts["total"] else ""
        if not truncation:
            return [f"Truncation off: {cut_sentences:,} sentences{measured} are longer than {max_length} tokens."]
        if not cut_sentences:
            return [f"Every sentence{measured} fits in {max_length} tokens: no entity is cut."]
        return [f"⚠ max_length {max_length} cuts {cut_sentences:,} of {n:,} sentences{measured} and hides "
                f"{cut_entities:,} of {entities:,} entities from the model; evaluation counts them as missed."]

    def gather_outputs(self, outputs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each word's first sub-token: outputs [rows, words, tags] padded with NaN, labels [rows, words] with -100."""
        import numpy as np

        outputs, labels = np.asarray(outputs), np.asarray(labels)
        if outputs.ndim < 3:
            return outputs, labels
        keep = labels != IGNORE
        width = int(keep.sum(axis=1).max(initial=0))
        words = np.full((len(labels), width, outputs.shape[-1]), np.nan, dtype=np.float32)
        tags = np.full((len(labels), width), IGNORE, dtype=np.int64)
        for i in range(len(labels)):
            n = int(keep[i].sum())
            words[i, :n] = outputs[i, :labels.shape[1]][keep[i]]
            tags[i, :n] = labels[i][keep[i]]
        return words, tags

    def label_shape(self, batch: int, names: list[str], length: int) -> tuple[int, ...]:
        return (batch, length)  # a tag per token

    # --- model ---------------------------------------------------------------------------------------------------
    def head_config(self, names: list[str]) -> dict[str, Any]:
        id2label = dict(enumerate(names))
        return {"num_labels": len(names), "id2label": id2label, "label2id": {n: i for i, n in id2label.items()}}

    def check_hf_model(self, model_config: Any, name: str) -> None:
        from transformers.models.auto.modeling_auto import MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES

        from core.errors import ModelError

        model_type = getattr(model_config, "model_type", None)
        if model_type not in MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES:
            raise ModelError(f"model {name} ({model_type}) has no token-classification head in transformers",
                             "choose a text encoder such as bert, distilbert, roberta, deberta-v2 or xlm-roberta")

    def training_weights(self, config: RunConfig, prepared: PreparedData) -> list[float] | None:
        from core.class_weights import resolve_class_weights

        return resolve_class_weights(config.training.class_weights, self.class_counts(prepared), prepared.label_names)

    def describe_weights(self, weights: list[float], prepared: PreparedData) -> str:
        from core.class_weights import describe_weights

        return describe_weights(weights, prepared.label_names)

    def torch_loss(self, logits: Any, labels: Any, weight: Any) -> Any:
        # torch's weighted mean over the labelled sub-tokens, sum(w[y] * nll) / sum(w[y]), as for classification.
        import torch.nn.functional as F

        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), weight=weight,
                               ignore_index=IGNORE)

    def model_meta(self, prepared: PreparedData) -> dict[str, Any]:
        return {"task": self.name, "labels": list(prepared.label_names), "scheme": prepared.label_stats["scheme"]}

    # --- keras ---------------------------------------------------------------------------------------------------
    def keras_model(self, backbone: Any, num_outputs: int, dropout: float | None) -> Any:
        from core.engines.keras_callbacks import TokenTagger

        return TokenTagger(backbone, num_outputs, 0.1 if dropout is None else dropout)

    def keras_loss(self, keras: Any, weights: list[float] | None) -> Any:
        from core.engines.keras_callbacks import TokenCrossEntropy

        return TokenCrossEntropy(weights)

    def keras_labels(self, labels: np.ndarray) -> np.ndarray:
        return labels.astype("int32")  # [batch, tokens], -100 where a token has no label

    def keras_label_spec(self) -> tuple[tuple[int | None, ...], str]:
        return (None, None), "int32"

    # --- outputs -------------------------------------------------------------------------------------------------
    def compute_metrics(self, outputs: np.ndarray, labels: np.ndarray, metrics: list[str],
                        prepared: PreparedData) -> dict[str, float]:
        names = list(prepared.label_names)
        true, predicted = T.tag_rows(outputs, labels, names)
        found = T.entity_scores(true, predicted, strict=prepared.label_stats.get("scheme") == "iobes")
        return {m: float(found[m]) for m in metrics}  # type: ignore[arg-type]

    def eval_loss(self, outputs: np.ndarray, labels: np.ndarray) -> float:
        import numpy as np

        probs = self.scores(outputs)
        keep = np.asarray(labels) != IGNORE
        if not keep.any():
            return 0.0
        picked = np.take_along_axis(probs, np.where(keep, labels, 0)[..., None], axis=-1)[..., 0][keep]
        return float(-np.mean(np.log(np.clip(picked, 1e-12, 1.0))))

    def scores(self, outputs: np.ndarray) -> np.ndarray:
        """Probabilities per word and tag: [rows, words, tags], NaN where a row has no more words."""
        import numpy as np

        x = np.asarray(outputs, dtype=np.float64)
        if x.size:  # rows of NaN (no word there) stay NaN, without nanmax's warning about them
            top = np.max(np.where(np.isnan(x), -np.inf, x), axis=-1, keepdims=True)
            x = x - np.where(np.isfinite(top), top, 0.0)
        e = np.exp(x)
        return e / e.sum(axis=-1, keepdims=True)

    def text_scores(self, predictor: Any, texts: list[Any], pairs: list[str] | None, batch_size: int) -> Any:
        """Texts as typed (split into words and punctuation) or as lists of words; each word read from its first
        sub-token. Words past max_length get no scores (NaN) and so no tag."""
        import numpy as np

        check_fast(predictor.tokenizer)
        if pairs is not None:
            raise ValueError("token-classification takes one text (or list of words) per row, not pairs")
        words = [split_words(t)[0] if isinstance(t, str) else list(t) for t in texts]
        rows: list[np.ndarray] = []
        step = max(1, int(batch_size))
        for start in range(0, len(words), step):
            chunk = words[start:start + step]
            enc = predictor.tokenizer(chunk, is_split_into_words=True, truncation=predictor.settings.truncation,
                                      max_length=predictor.settings.max_length, padding=True, return_tensors="np")
            logits = np.asarray(predictor.logits(enc), dtype=np.float64)
            for i, row in enumerate(chunk):
                first = {}
                for position, word in enumerate(enc.word_ids(i)):
                    if word is not None and word not in first:
                        first[word] = position
                out = np.full((len(row), logits.shape[-1]), np.nan)
                for word, position in first.items():
                    out[word] = logits[i, position]
                rows.append(out)
        width = max((len(r) for r in rows), default=0)
        padded = np.full((len(rows), width, len(predictor.labels)), np.nan)
        for i, r in enumerate(rows):
            padded[i, :len(r)] = r
        return self.scores(padded)

    def answers(self, scores: np.ndarray, meta: dict[str, Any]) -> list[dict[str, Any]]:
        names = list(meta["labels"])
        strict = meta.get("scheme") == "iobes"
        out = []
        for row, given in zip(scores, meta.get("inputs") or [None] * len(scores), strict=True):
            if isinstance(given, str):
                words, offsets = split_words(given)
            else:
                words = list(given) if given is not None else [""] * _word_count(row)
                offsets = _joined_offsets(words)
            text = given if isinstance(given, str) else " ".join(words)
            tags, confidence = _row_tags(row[:len(words)], names)
            entities = []
            for kind, first, last in T.entities(tags, strict):
                start, end = offsets[first][0], offsets[last][1]
                score = sum(confidence[first:last + 1]) / (last - first + 1)
                entities.append({"entity_group": kind, "word": text[start:end], "start": start, "end": end,
                                 "score": round(score, _DIGITS)})
            out.append({"entities": entities, "tags": tags, "words": words})
        return out

    def format_answer(self, answer: dict[str, Any], text: str) -> str:
        shown = "; ".join(f"{e['entity_group']}: {e['word']}" for e in answer["entities"]) or "(no entities)"
        return f"{shown}\t{text}"

    def answer_json(self, answer: dict[str, Any]) -> dict[str, Any]:
        return {"entities": answer["entities"], "tags": answer["tags"]}

    def file_columns(self, answers: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, list[Any]]:
        return {"entities": ["; ".join(f"{e['entity_group']}: {e['word']}" for e in a["entities"]) for a in answers]}

    def answers_summary(self, answers: list[dict[str, Any]]) -> str:
        from collections import Counter

        counts = Counter(e["entity_group"] for a in answers for e in a["entities"])
        total = sum(counts.values())
        return f"{total} entities" + (": " + ", ".join(f"{k}={n}" for k, n in counts.most_common()) if total else "")

    # --- evaluation ----------------------------------------------------------------------------------------------
    def evaluate(self, names: list[str], metrics: list[str], labels: np.ndarray, scores: np.ndarray) -> Evaluation:
        """Entity metrics, per-type scores, a grid of true entity types against the types predicted on the same
        words, and the entities that truncation hid from the model."""
        import numpy as np

        from core.evaluation import ClassScores, Evaluation

        strict = T.scheme_of(names) == "iobes"
        true, predicted, hidden = [], [], 0
        for row_labels, row_scores in zip(labels, scores, strict=True):
            t = [names[int(i)] for i in row_labels if i != IGNORE]
            p, _ = _row_tags(row_scores[:len(t)], names, len(t))
            seen = _word_count(row_scores[:len(t)])
            hidden += sum(1 for e in T.entities(t, strict) if e[2] >= seen)
            true.append(t)
            predicted.append(p)
        found = T.entity_scores(true, predicted, strict) if true else {"per_type": {}}
        values = {m: float(found[m]) for m in metrics if m in found}  # type: ignore[arg-type]
        values["loss"] = _word_loss(labels, scores) if len(labels) else math.nan
        per_type = found["per_type"]  # type: ignore[index]
        per_class = [ClassScores(kind, s["precision"], s["recall"], s["f1"], s["support"])
                     for kind, s in per_type.items()]  # type: ignore[union-attr]
        kinds = sorted(per_type)  # type: ignore[arg-type]
        grid = np.zeros((len(kinds) + 1, len(kinds) + 1), dtype=int)
        axis = {k: i for i, k in enumerate(kinds)} | {_NONE: len(kinds)}
        for t, p in zip(true, predicted, strict=True):
            te = {(a, b): k for k, a, b in T.entities(t, strict)}
            pe = {(a, b): k for k, a, b in T.entities(p, strict)}
            for span in te.keys() | pe.keys():
                grid[axis[te.get(span, _NONE)], axis[pe.get(span, _NONE)]] += 1
        details = {"scheme": T.scheme_of(names), "entities_hidden_by_truncation": hidden,
                   "entity_grid": {"rows": "true entity type", "columns": "predicted type on the same words",
                                   "labels": [*kinds, _NONE], "counts": grid.tolist()}}
        return Evaluation(split="", labels=list(names), size=len(labels), metrics=values, per_class=per_class,
                          task=self.name, details=details)

    def example(self, names: list[str], label: Any, scores: np.ndarray) -> dict[str, Any]:
        t = [names[int(i)] for i in label if i != IGNORE]
        p, _ = _row_tags(scores[:len(t)], names, len(t))
        strict = T.scheme_of(names) == "iobes"
        te, pe = set(T.entities(t, strict)), set(T.entities(p, strict))
        return {"label": t, "predicted": p, "errors": len(te ^ pe),
                "missed": sorted(te - pe, key=lambda e: e[1]), "extra": sorted(pe - te, key=lambda e: e[1])}

    def most_wrong(self, labels: np.ndarray, scores: np.ndarray, limit: int) -> list[tuple[int, dict[str, Any]]]:
        """Sentences with the most wrongly tagged words first (a word the model did not see counts as tagged O)."""
        import numpy as np

        wrong = []
        for i, (label, row) in enumerate(zip(labels, scores, strict=True)):
            keep = np.asarray(label) != IGNORE
            guess = np.full(int(keep.sum()), -1)
            seen = min(len(guess), len(row))
            guess[:seen] = np.nan_to_num(np.asarray(row[:seen]), nan=-np.inf).argmax(axis=-1)
            wrong.append((int((guess != np.asarray(label)[keep]).sum()), i))
        ordered = sorted((w for w in wrong if w[0]), key=lambda w: (-w[0], w[1]))[:limit]
        return [(i, {}) for _, i in ordered]

    def report_sections(self, ev: Evaluation) -> list[ReportSection]:
        lines = [(f"{'type':<12} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}", "dim")]
        for c in ev.per_class:
            role = "ok" if c.f1 >= 0.5 else "warning"
            lines.append((f"{c.label:<12} {c.precision:>9.3f} {c.recall:>7.3f} {c.f1:>6.3f} {c.support:>8}", role))
        hidden = ev.details.get("entities_hidden_by_truncation", 0)
        out = [ReportSection(f"entities per type ({ev.details.get('scheme', 'iob2').upper()})", lines)]
        if hidden:
            out.append(ReportSection("truncation", [(f"{hidden} entities lay past tokenizer.max_length and could not "
                                                     "be found; raise max_length to see them", "warning")]))
        return out

    def mistakes_title(self) -> str:
        return "sentences with the most entity errors"

    def mistake_line(self, row: dict[str, Any]) -> str:
        words = row["text"] if isinstance(row.get("text"), list) else []

        def show(found: list[Any]) -> str:
            return ", ".join(f"{' '.join(words[a:b + 1]) or f'{a}-{b}'} ({k})" for k, a, b in found) or "-"

        return f"{row['errors']} errors; missed: {show(row['missed'])}; spurious: {show(row['extra'])}"

    def plot_report(self, fig: Any, ax: Any, ev: Evaluation) -> None:
        if not ev.per_class:
            ax.set_axis_off()
            return
        kinds = [c.label for c in ev.per_class]
        ax.barh(kinds, [c.f1 for c in ev.per_class], color="tab:blue")
        ax.set_xlim(0, 1)
        ax.set_xlabel("entity F1")
        ax.invert_yaxis()
        ax.set_title(report_title(ev), fontsize=9)

    # --- screens -------------------------------------------------------------------------------------------------
    def results_grid(self, ev: Evaluation) -> Grid | None:
        grid = ev.details.get("entity_grid")
        if not grid:
            return None
        per_type = " · ".join(f"{c.label} {c.f1:.2f}" for c in ev.per_class[:6])
        return Grid(f"Entities · {ev.split} ({ev.size}) · true type (rows), predicted on the same words (columns)",
                    grid["labels"], grid["labels"], grid["counts"], f"F1 {per_type}" if per_type else "")

    def try_intro(self, meta: dict[str, Any]) -> str:
        kinds = sorted({T.split_tag(n)[1] for n in meta["labels"] if n != T.OUTSIDE})
        return f"Finds {', '.join(kinds)}. Type a sentence, and its entities follow."

    def try_view(self, answer: dict[str, Any], meta: dict[str, Any]) -> TryView:
        bars = [(f"{e['entity_group']}: {e['word']}", float(e["score"]), True) for e in answer["entities"]]
        line = mark_entities(list(answer["words"]), answer["tags"], meta.get("scheme") == "iobes")
        return TryView("Entities", bars, line if answer["entities"] else "no entities found")

    # --- exported scripts ----------------------------------------------------------------------------------------
    def script_context(self, config: RunConfig, prepared: PreparedData) -> dict[str, Any]:
        """tags_source: tags.py without its docstring, inlined by export/data.py.j2, so a script reads schemes and
        scores entities with this very code."""
        from core.tasks.base import inlined_source

        return {"libraries": [], "datasets_imports": [], "tags_source": inlined_source(T)}


def mark_entities(words: list[str], tags: list[str], strict: bool = False) -> str:
    """The sentence with each entity bracketed and typed: "[Emma Stone]PER visited [Oslo]LOC"."""
    marked, i = [], 0
    for kind, first, last in T.entities(tags, strict):
        marked += [*words[i:first], f"[{' '.join(words[first:last + 1])}]{kind}"]
        i = last + 1
    return " ".join([*marked, *words[i:]])


def check_fast(tokenizer: Any) -> None:
    """Only a fast (Rust) tokenizer maps sub-tokens back to words (word_ids)."""
    if not getattr(tokenizer, "is_fast", False):
        from core.errors import ModelError

        raise ModelError(f"the tokenizer of {tokenizer.name_or_path} has no fast version, and token-classification "
                         "needs one to line sub-tokens up with words (word_ids)",
                         "choose a model with a fast tokenizer (tokenizer.json), as most Hub encoders have")


def _word_count(row: np.ndarray) -> int:
    """Words of a row that the model saw (scores not NaN), from the start."""
    import numpy as np

    seen = ~np.isnan(np.asarray(row)).any(axis=-1) if len(row) else np.zeros(0, dtype=bool)
    return int(seen.sum())


def _row_tags(row: np.ndarray, names: list[str], length: int | None = None) -> tuple[list[str], list[float]]:
    """The most likely tag per word and its probability; O for a word the model did not see."""
    import numpy as np

    tags, confidence = [], []
    for word in np.asarray(row):
        if np.isnan(word).any():
            tags.append(T.OUTSIDE)
            confidence.append(0.0)
        else:
            best = int(np.argmax(word))
            tags.append(names[best])
            confidence.append(float(word[best]))
    while length is not None and len(tags) < length:
        tags.append(T.OUTSIDE)
        confidence.append(0.0)
    return tags, confidence


def _word_loss(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mean cross-entropy over the words the model saw."""
    import numpy as np

    total, count = 0.0, 0
    for row_labels, row in zip(labels, scores, strict=True):
        for i, label in enumerate(row_labels):
            if label == IGNORE or i >= len(row) or np.isnan(row[i]).any():
                continue
            total -= math.log(max(float(row[i][int(label)]), 1e-12))
            count += 1
    return total / count if count else math.nan


def _joined_offsets(words: list[str]) -> list[tuple[int, int]]:
    """Character offsets of words joined by single spaces."""
    offsets, at = [], 0
    for word in words:
        offsets.append((at, at + len(word)))
        at += len(word) + 1
    return offsets


TASK = TokenClassification()
