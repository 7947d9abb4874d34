"""Answers for texts from a trained model, whichever engine and task made it: `load_predictor(run_or_model_dir)`.

Two formats are told apart by their files: a Hugging Face directory (config.json, from the trainer and torch-loop
engines) and the keras engine's directory (keras_model.json beside model.keras, labels.json and the tokenizer).
Texts are tokenized as in training: truncation and max_length come from the run's config.yaml when the model sits
in a run directory, else from what the model directory records, else from the tokenizer. What the outputs mean
(probabilities of classes, a score) is the task's, named in the model's task.json (core.tasks.model_meta).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ModelError

KERAS_FORMAT = "finetune-tui/keras"
KERAS_FORMAT_FILE = "keras_model.json"  # {"format", "model_file", "inputs", "max_length", "truncation", "versions"}
KERAS_MODEL_FILE = "model.keras"
LABELS_FILE = "labels.json"  # {"id2label": {"0": name}, "label2id": {name: 0}}
_FALLBACK_MAX_LENGTH = 512


@dataclass
class TokenizerSettings:
    truncation: bool
    max_length: int


def model_format(path: Path) -> str | None:
    """'hf', 'keras' or None for a directory that holds no model."""
    if (path / KERAS_FORMAT_FILE).is_file():
        return "keras"
    if (path / "config.json").is_file():
        return "hf"
    return None


def find_model_dir(path: str | Path) -> Path:
    """The model directory of a run directory, or the model directory itself; a clear ModelError otherwise."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelError(f"{path} does not exist", "give a run directory or its model/ directory")
    if not path.is_dir():
        raise ModelError(f"{path} is a file, not a model directory", "give a run directory or its model/ directory")
    if model_format(path) is not None:
        return path
    if (path / "model").is_dir() and model_format(path / "model") is not None:
        return path / "model"
    if (path / "events.jsonl").exists() or (path / "config.yaml").exists():
        raise ModelError(f"the run {path} has no trained model yet (no model/ directory with a model in it)",
                         "wait until the run has finished, or resume it with `finetune-tui resume`")
    raise ModelError(f"{path} holds no model (neither config.json nor {KERAS_FORMAT_FILE})",
                     "give a run directory, or a model directory that a finetune-tui run wrote")


class Predictor:
    """Scores and answers for texts (or text pairs), as the model's task reads its outputs. Subclasses turn a
    tokenized batch into logits."""

    def __init__(self, path: Path, labels: list[str], tokenizer: Any, settings: TokenizerSettings) -> None:
        from core.tasks import get_task
        from core.tasks.model_meta import read_meta

        self.path = path
        self.labels = labels
        self.tokenizer = tokenizer
        self.settings = settings
        self.meta = {**read_meta(path, labels), "labels": labels}
        self.task = get_task(self.meta["task"])

    def scores(self, texts: list[str], pairs: list[str] | None = None, batch_size: int = 32) -> np.ndarray:
        """The task's scores (Task.scores) per text: [n, classes] probabilities in the order of self.labels, or
        [n] scores."""
        texts = list(texts)
        if pairs is not None and len(pairs) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(pairs)} pairs")
        return self.task.text_scores(self, texts, list(pairs) if pairs is not None else None, batch_size)

    def predict_proba(self, texts: list[str], pairs: list[str] | None = None, batch_size: int = 32) -> np.ndarray:
        """scores() under the name scikit-learn users reach for (class probabilities for text-classification)."""
        return self.scores(texts, pairs, batch_size)

    def predict(self, texts: list[str], pairs: list[str] | None = None, batch_size: int = 32) -> list[dict[str, Any]]:
        """One answer per text, the task's (Task.answers): e.g. {label, score, probabilities {label: p}}, or
        {score}."""
        return self.task.answers(self.scores(texts, pairs, batch_size), {**self.meta, "inputs": list(texts)})

    def logits(self, enc: Any) -> Any:
        """The model's raw outputs for a tokenized batch (NumPy arrays as the tokenizer gives them)."""
        raise NotImplementedError


class HFPredictor(Predictor):
    """A transformers model with the task's head (trainer and torch-loop engines)."""

    def __init__(self, path: Path, settings_from: Path | None) -> None:
        import torch
        import transformers
        from transformers import AutoTokenizer

        from core.models import position_limit
        from core.tasks import get_task
        from core.tasks.model_meta import read_meta

        auto_class = getattr(transformers, get_task(read_meta(path, [])["task"]).auto_model_class)
        # A model trained from a repository's own code was saved with that code; the run's config says it may run.
        trust = _trusts_remote_code(settings_from)
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust)
            model = auto_class.from_pretrained(path, trust_remote_code=trust)
        except (OSError, ValueError) as err:
            if isinstance(err, ValueError) and "trust_remote_code" in str(err):
                if settings_from is None:
                    raise ModelError(f"the model in {path} needs its own Python code (saved with it) to load, and no "
                                     "run config.yaml beside it allows that (model.trust_remote_code)",
                                     "predict from the run directory the model came from") from None
                raise ModelError(f"the model in {path} needs its own Python code (saved with it) to load, and "
                                 f"model.trust_remote_code is not true in {settings_from}",
                                 f"set model.trust_remote_code: true in {settings_from}, only if you trust that code"
                                 ) from None
            raise ModelError(f"cannot load the model in {path}: {str(err).splitlines()[0]}",
                             "give the model/ directory of a finished run") from None
        id2label = model.config.id2label
        labels = [str(id2label[i]) for i in sorted(id2label)]
        limit = position_limit(model.config)
        super().__init__(path, labels, tokenizer, _settings(settings_from, tokenizer, {}, limit))
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = model.to(self.device).eval()
        self._torch = torch

    def logits(self, enc: Any) -> Any:
        inputs = {k: self._torch.as_tensor(v).to(self.device) for k, v in enc.items()}
        with self._torch.no_grad():
            return self.model(**inputs).logits.float().cpu().numpy()


class KerasPredictor(Predictor):
    """The keras engine's model: a KerasHub text classifier saved as .keras."""

    def __init__(self, path: Path, settings_from: Path | None) -> None:
        from core.engines.keras_convert import INPUT_COLUMNS, import_keras, missing_packages

        missing = missing_packages()
        if missing:
            raise ModelError(f"{path} is a Keras model, and loading it needs {', '.join(missing)}",
                             'pip install "finetune-tui[keras]"')
        meta = _read_json(path / KERAS_FORMAT_FILE)
        if meta.get("format") != KERAS_FORMAT:
            raise ModelError(f"{path / KERAS_FORMAT_FILE} is not a finetune-tui Keras model description",
                             "give the model/ directory of a finished keras run")
        id2label = _read_json(path / LABELS_FILE).get("id2label", {})
        labels = [str(id2label[k]) for k in sorted(id2label, key=int)]
        keras = import_keras()
        import keras_hub  # noqa: F401  (registers KerasHub's classes for deserialization)
        from transformers import AutoTokenizer

        from core.engines import keras_callbacks  # noqa: F401  (registers finetune-tui's, e.g. TokenTagger)

        try:
            self.model = keras.saving.load_model(str(path / meta.get("model_file", KERAS_MODEL_FILE)), compile=False)
            tokenizer = AutoTokenizer.from_pretrained(path)
        except (OSError, ValueError) as err:
            raise ModelError(f"cannot load the Keras model in {path}: {str(err).splitlines()[0]}",
                             "give the model/ directory of a finished keras run") from None
        self.inputs = [name for name in meta.get("inputs", []) if name in INPUT_COLUMNS]
        self.columns = INPUT_COLUMNS
        super().__init__(path, labels, tokenizer, _settings(settings_from, tokenizer, meta, None))

    def logits(self, enc: Any) -> Any:
        ids = np.asarray(enc["input_ids"])
        features = {}
        for name in self.inputs:
            column = enc.get(self.columns[name])
            features[name] = (np.zeros_like(ids) if column is None else np.asarray(column)).astype("int32")
        return np.asarray(self.model.predict_on_batch(features))


def load_predictor(path: str | Path) -> Predictor:
    """A Predictor for a run directory (its model/) or a model directory."""
    model_dir = find_model_dir(path)
    run_config = model_dir.parent / "config.yaml"
    settings_from = run_config if run_config.is_file() else None
    if model_format(model_dir) == "keras":
        return KerasPredictor(model_dir, settings_from)
    return HFPredictor(model_dir, settings_from)


def _trusts_remote_code(run_config: Path | None) -> bool:
    """model.trust_remote_code of the run the model comes from; False for a model directory on its own."""
    if run_config is None:
        return False
    from core.config import load_config
    from core.errors import UserError

    try:
        return load_config(run_config).model.trust_remote_code
    except UserError:
        return False


def _settings(run_config: Path | None, tokenizer: Any, meta: dict[str, Any], limit: int | None) -> TokenizerSettings:
    if run_config is not None:
        from core.config import load_config
        from core.errors import UserError

        try:
            tok = load_config(run_config).tokenizer
            return TokenizerSettings(tok.truncation, tok.max_length)
        except UserError:
            pass  # an unreadable config beside the model: fall back to what the model records
    if "max_length" in meta:
        return TokenizerSettings(bool(meta.get("truncation", True)), int(meta["max_length"]))
    max_length = getattr(tokenizer, "model_max_length", None)
    if not isinstance(max_length, int) or max_length > 1_000_000:  # transformers' "no limit" sentinel
        max_length = limit or _FALLBACK_MAX_LENGTH
    return TokenizerSettings(True, max_length)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path} is missing", "give the model/ directory of a finished run") from None
    except (OSError, json.JSONDecodeError) as err:
        raise ModelError(f"{path} cannot be read: {err}", "give the model/ directory of a finished run") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path} does not hold a JSON object", "give the model/ directory of a finished run")
    return data
