"""What a real GPU box is like, proven on a CPU: a proxy or a Hub mirror in the way, CUDA_VISIBLE_DEVICES, checkpoints
saved in half precision, RoBERTa's position offset, several processes, models that bring their own code."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from core.config import parse_config, save_config
from core.errors import ConfigError, ModelError, UserError
from tests.conftest import tiny_config, write_tsv

# --- the Hub check goes where downloads go: HF_ENDPOINT, through HTTPS_PROXY / HTTP_PROXY ---------------------------

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy",
              "no_proxy")


class _Recorder(BaseHTTPRequestHandler):
    """Answers as a Hub (or a proxy in front of one) would, and writes down every request line it gets."""

    seen: list[str]
    connect_status = 403  # what CONNECT (an https request through the proxy) gets: no tunnel here

    def _answer(self, status: int) -> None:
        self.seen.append(self.requestline)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self) -> None:
        self._answer(200)

    def do_GET(self) -> None:
        self._answer(200)

    def do_CONNECT(self) -> None:
        self._answer(self.connect_status)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    handler = type("Handler", (_Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def hub_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No proxy, no offline flag, the default endpoint; huggingface_hub's session and our answer built afresh (both
    read the environment once per process) before and after the test."""
    from huggingface_hub import close_session

    from core import hub

    for name in (*PROXY_VARS, "HF_ENDPOINT", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    close_session()
    hub.hub_reachable.cache_clear()
    yield monkeypatch
    close_session()
    hub.hub_reachable.cache_clear()


def _unused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_hub_check_goes_through_the_http_proxy_to_hf_endpoint(hub_env: pytest.MonkeyPatch,
                                                              recorder: tuple[str, list[str]]) -> None:
    from core.hub import hub_reachable

    proxy, seen = recorder
    # .invalid never resolves (RFC 2606): the only way to an answer is through the proxy.
    hub_env.setenv("HF_ENDPOINT", "http://hub-mirror.invalid")
    hub_env.setenv("HTTP_PROXY", proxy)
    assert hub_reachable() is True
    assert seen == ["HEAD http://hub-mirror.invalid/ HTTP/1.1"]


def test_hub_check_tunnels_through_https_proxy(hub_env: pytest.MonkeyPatch, recorder: tuple[str, list[str]]) -> None:
    from core.hub import hub_reachable, require_hub

    proxy, seen = recorder
    hub_env.setenv("HTTPS_PROXY", proxy)
    started = time.monotonic()
    assert hub_reachable() is False  # this proxy refuses the tunnel
    assert seen == ["CONNECT huggingface.co:443 HTTP/1.1"]
    with pytest.raises(ModelError) as err:
        require_hub("model", "some-org/model", ModelError)
    assert f"through the proxy {proxy}" in err.value.problem and "https://huggingface.co" in err.value.problem
    assert "HTTPS_PROXY" in (err.value.fix or "")
    assert time.monotonic() - started < 5


def test_hub_check_asks_hf_endpoint(hub_env: pytest.MonkeyPatch, recorder: tuple[str, list[str]]) -> None:
    from core.hub import hub_reachable

    endpoint, seen = recorder
    hub_env.setenv("HF_ENDPOINT", endpoint + "/")
    assert hub_reachable() is True
    assert seen == ["HEAD / HTTP/1.1"]


def test_unreachable_endpoint_fails_fast_and_says_where(hub_env: pytest.MonkeyPatch) -> None:
    from core.hub import hub_reachable, require_hub

    endpoint = f"http://127.0.0.1:{_unused_port()}"
    hub_env.setenv("HF_ENDPOINT", endpoint)
    started = time.monotonic()
    assert hub_reachable() is False
    with pytest.raises(UserError) as err:
        require_hub("dataset", "someone/reviews")
    assert time.monotonic() - started < 5
    assert f"the Hugging Face Hub at {endpoint} cannot be reached" in err.value.problem
    assert "someone/reviews" in err.value.problem and "HF_ENDPOINT" in (err.value.fix or "")


def test_hf_hub_offline_is_answered_without_any_request(hub_env: pytest.MonkeyPatch,
                                                        recorder: tuple[str, list[str]]) -> None:
    from core.hub import hub_reachable, require_hub

    proxy, seen = recorder
    hub_env.setenv("HF_ENDPOINT", proxy)
    hub_env.setenv("HTTP_PROXY", proxy)
    hub_env.setenv("HF_HUB_OFFLINE", "1")
    assert hub_reachable() is False
    with pytest.raises(ModelError) as err:
        require_hub("model", "some-org/model", ModelError)
    assert "HF_HUB_OFFLINE is set" in err.value.problem
    assert seen == []


# --- num_processes: null counts the GPUs CUDA_VISIBLE_DEVICES leaves -------------------------------------------------

UUIDS = ["GPU-8f2a0000-aaaa", "GPU-1c3b0000-bbbb", "GPU-1c3b1111-cccc", "GPU-77e00000-dddd"]


@pytest.fixture
def four_gpus(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """NVML reports four GPUs; what CUDA lets the process use is up to CUDA_VISIBLE_DEVICES."""
    from core import device

    gpus = [{"index": i, "name": "NVIDIA H100", "uuid": u, "compute_capability": (9, 0)} for i, u in enumerate(UUIDS)]
    monkeypatch.setattr(device, "_nvml_gpus", lambda: [dict(g) for g in gpus])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return monkeypatch


@pytest.mark.parametrize(("mask", "visible"), [
    (None, [0, 1, 2, 3]),  # unset: every GPU
    ("0,2", [0, 2]),
    ("2,0", [2, 0]),  # CUDA's order is the mask's
    ("", []),  # set but empty: none (a CPU run)
    ("-1", []),
    ("1,-1,3", [1]),  # the list ends at the first entry that is no GPU
    ("0,7,1", [0]),  # ... or past the last GPU
    ("0,0", []),  # a repeated GPU hides them all
    (" 3 , 1 ", [3, 1]),
    ("GPU-77e00000-dddd,GPU-8f2a", [3, 0]),  # UUIDs, or unique prefixes of them
    ("GPU-1c3b", []),  # a prefix two GPUs share names none
])
def test_gpu_count_applies_cuda_visible_devices(four_gpus: pytest.MonkeyPatch, mask: str | None,
                                                visible: list[int]) -> None:
    from core.config import RunConfig
    from core.device import gpu_count, snapshot, supported_precisions, visible_indices
    from core.engines.base import requested_processes

    if mask is not None:
        four_gpus.setenv("CUDA_VISIBLE_DEVICES", mask)
    assert visible_indices(UUIDS, mask) == visible
    assert gpu_count() == len(visible)
    config = RunConfig.model_validate({"data": {"train_file": "x.tsv"}, "training": {"num_processes": None}})
    assert requested_processes(config) == max(1, len(visible))
    assert [g["index"] for g in snapshot()["gpus"]] == visible  # the monitor shows the run's GPUs
    assert supported_precisions() == (["no", "fp16", "bf16"] if visible else ["no"])


def test_mig_instances_are_counted_by_torch(four_gpus: pytest.MonkeyPatch) -> None:
    import torch

    from core.device import gpu_count, visible_indices

    four_gpus.setenv("CUDA_VISIBLE_DEVICES", "MIG-5d1e0000-0000")
    assert visible_indices(UUIDS, "MIG-5d1e0000-0000") is None
    four_gpus.setattr(torch.cuda, "device_count", lambda: 1)
    assert gpu_count() == 1


# --- a checkpoint saved in bf16 trains in float32 -------------------------------------------------------------------

@pytest.fixture(scope="module")
def bf16_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import BertForSequenceClassification

    out = tmp_path_factory.mktemp("bf16-model")
    model = BertForSequenceClassification.from_pretrained(tiny_model, num_labels=2).to(torch.bfloat16)
    model.save_pretrained(out)
    for f in tiny_model.iterdir():
        if f.name.startswith(("vocab", "tokenizer", "special_tokens")):
            shutil.copy(f, out / f.name)
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    return out


@pytest.mark.parametrize("engine", ["trainer", "torch-loop"])
def test_bf16_checkpoint_loads_float32_master_weights(engine: str, bf16_model: Path, tiny_data: dict,
                                                      tmp_path: Path) -> None:
    import torch

    from core.engines.hf_model import build_model

    config = parse_config({**tiny_config(bf16_model, tiny_data, tmp_path / "run", mixed_precision="bf16"),
                           "engine": engine})
    model = build_model(config, ["neg", "pos"])
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_bf16_checkpoint_trains_and_saves_float32(bf16_model: Path, tiny_data: dict, tmp_path: Path) -> None:
    """A real torch-loop run with bf16 autocast: what it saves (its trained master weights) is float32."""
    from safetensors import safe_open

    from core.rundir import RunDir
    from tests.test_trainer_run import _cli, _write

    raw = tiny_config(bf16_model, tiny_data, tmp_path / "run", max_steps=2, eval_strategy="no", save_strategy="no",
                      mixed_precision="bf16")
    # Its own process, as every run has: Accelerate's state allows one mixed-precision setting per process.
    result = _cli("run", str(_write(tmp_path, {**raw, "engine": "torch-loop"})))
    assert result.returncode == 0, result.stdout + result.stderr
    run = RunDir(tmp_path / "run")
    with safe_open(str(run.model_dir / "model.safetensors"), "pt") as f:
        dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}  # noqa: SIM118 (safe_open is not a mapping)
    assert dtypes == {"F32"}


@pytest.mark.skipif(not __import__("importlib.util").util.find_spec("keras_hub"), reason="keras engine not installed")
def test_keras_converts_a_bf16_checkpoint_to_float32_variables(bf16_model: Path) -> None:
    from core.engines.keras_convert import build_classifier, import_keras

    keras = import_keras()
    keras.config.set_dtype_policy("mixed_bfloat16")  # what the engine sets for mixed_precision: bf16
    try:
        classifier, _ = build_classifier(bf16_model, 2)
    finally:
        keras.config.set_dtype_policy("float32")
    assert {str(w.dtype) for w in classifier.weights} == {"float32"}


# --- position limits: RoBERTa's 514 positions take 512 tokens; truncation: false is checked before training ---------

def _roberta_dir(path: Path) -> Path:
    from transformers import RobertaConfig

    RobertaConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                  max_position_embeddings=514, pad_token_id=1).save_pretrained(path)
    return path


def test_roberta_limit_is_its_positions_less_the_padding_offset(tmp_path: Path) -> None:
    from transformers import AutoConfig, BertConfig

    from core.models import check_max_length, input_limit, position_limit

    roberta = AutoConfig.from_pretrained(_roberta_dir(tmp_path / "roberta"))
    assert position_limit(roberta) == 512
    assert check_max_length(512, roberta) == 512
    with pytest.raises(ConfigError) as err:
        check_max_length(513, roberta)
    assert "tokenizer.max_length is 513" in err.value.problem and "limit of 512" in err.value.problem
    assert "514 position embeddings, 2 reserved" in err.value.problem and "512 or less" in (err.value.fix or "")
    bert = BertConfig(max_position_embeddings=512)
    assert position_limit(bert) == 512
    # A tokenizer that says less than the positions allow sets the limit; transformers' "no limit" sentinel does not.
    assert input_limit(bert, SimpleNamespace(model_max_length=256)) == (256, "its tokenizer's model_max_length 256")
    assert input_limit(bert, SimpleNamespace(model_max_length=int(1e30)))[0] == 512  # type: ignore[index]


@pytest.mark.parametrize(("max_length", "ok"), [(512, True), (513, False), (514, False)])
def test_validate_refuses_roberta_max_length_past_512(max_length: int, ok: bool, tiny_data: dict, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    from tui.cli import main

    raw = tiny_config(_roberta_dir(tmp_path / "roberta"), tiny_data, tmp_path / "run")
    raw["tokenizer"]["max_length"] = max_length
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    assert main(["validate", str(tmp_path / "c.yaml")]) == (0 if ok else 2)
    err = capsys.readouterr().err
    assert ok or ("limit of 512" in err and "set tokenizer.max_length to 512 or less" in err)


def test_untruncated_rows_past_the_limit_fail_before_training(tiny_model: Path, tmp_path: Path) -> None:
    from core.events import read_events
    from core.launch import create_run, resolve_config
    from core.worker import main as worker_main
    from tests.conftest import tiny_rows

    long_text = " ".join(["good"] * 140)  # 142 tokens with [CLS]/[SEP]: the tiny BERT has 128 positions
    train, test = tiny_rows(40, seed=3), tiny_rows(8, seed=4)
    train[4], train[9], test[0] = (long_text, "pos"), (long_text + " film", "pos"), (long_text, "pos")
    data = {"train": write_tsv(tmp_path / "train.tsv", train), "test": write_tsv(tmp_path / "test.tsv", test)}
    raw = tiny_config(tiny_model, data, tmp_path / "run", max_steps=2, eval_strategy="no", save_strategy="no")
    raw["data"]["validation_file"] = str(write_tsv(tmp_path / "valid.tsv", tiny_rows(8, seed=5)))
    raw["tokenizer"].update(truncation=False, max_length=128)
    run = create_run(resolve_config(parse_config({**raw, "engine": "torch-loop"})))
    assert worker_main([str(run.path)]) == 2  # bad input found before training
    events = read_events(run.events_path)
    failed = events[-1]
    assert failed["bad_input"] is True
    assert failed["type"] == "failed" and not [e for e in events if e["type"] in ("run_started", "step")]
    assert "2 of the 40 train rows (the longest 143 tokens); 1 of the 8 test rows (the longest 142" in failed["error"]
    assert "validation" not in failed["error"] and "limit of 128 tokens" in failed["error"]
    assert "tokenizer.truncation: true" in failed["hint"]


# --- samples/s of the trainer engine is the run's, over every process ------------------------------------------------

def test_trainer_samples_per_second_counts_every_process(tmp_path: Path) -> None:
    from transformers import TrainingArguments

    from core.engines.base import StepTimer
    from core.engines.trainer import examples_per_step

    one = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, gradient_accumulation_steps=2,
                            use_cpu=True, report_to="none")
    assert examples_per_step(one) == 16
    # Four torchrun processes: each trains 8 x 2 per step, the run 64, as torch-loop and keras count it.
    four = SimpleNamespace(train_batch_size=8, gradient_accumulation_steps=2, world_size=4)
    assert examples_per_step(four) == 64
    timer = StepTimer(examples_per_step(four))
    timer._last_time -= 2.0  # two seconds for the next 3 steps
    rate, _ = timer.sample(3)
    assert rate == pytest.approx(3 * 64 / 2.0, rel=0.05)


# --- predict runs a model's own code when its run allowed it ----------------------------------------------------------

CUSTOM_CONFIG = """
from transformers import BertConfig


class TinyCustomConfig(BertConfig):
    model_type = "tiny-custom-bert"
"""
CUSTOM_MODEL = """
from transformers import BertForSequenceClassification

from .configuration_tiny_custom import TinyCustomConfig


class TinyCustomForSequenceClassification(BertForSequenceClassification):
    config_class = TinyCustomConfig
"""


def _remote_code_run(tiny_model: Path, root: Path, trust: bool) -> Path:
    """A run directory whose model is a custom architecture saved with its code (what transformers writes for a
    trust_remote_code model), and whose config.yaml says whether that code may run."""
    from transformers import BertForSequenceClassification

    model_dir = root / "model"
    model = BertForSequenceClassification.from_pretrained(tiny_model, num_labels=2, id2label={0: "neg", 1: "pos"},
                                                          label2id={"neg": 0, "pos": 1})
    model.save_pretrained(model_dir)
    for f in tiny_model.iterdir():
        if f.name.startswith(("vocab", "tokenizer", "special_tokens")):
            shutil.copy(f, model_dir / f.name)
    (model_dir / "configuration_tiny_custom.py").write_text(CUSTOM_CONFIG)
    (model_dir / "modeling_tiny_custom.py").write_text(CUSTOM_MODEL)
    config = json.loads((model_dir / "config.json").read_text())
    config.update(model_type="tiny-custom-bert", architectures=["TinyCustomForSequenceClassification"], auto_map={
        "AutoConfig": "configuration_tiny_custom.TinyCustomConfig",
        "AutoModelForSequenceClassification": "modeling_tiny_custom.TinyCustomForSequenceClassification"})
    (model_dir / "config.json").write_text(json.dumps(config))
    train = write_tsv(root / "train.tsv", [("good", "pos"), ("bad", "neg")])
    run_config = parse_config({"model": {"name_or_path": str(tiny_model), "trust_remote_code": trust},
                               "data": {"train_file": str(train)}, "output_dir": str(root)})
    save_config(run_config, root / "config.yaml")
    return root


def test_predict_honours_the_runs_trust_remote_code(tiny_model: Path, tmp_path: Path) -> None:
    from core.predict import load_predictor

    predictor = load_predictor(_remote_code_run(tiny_model, tmp_path / "trusted", trust=True))
    assert type(predictor.model).__name__ == "TinyCustomForSequenceClassification"  # type: ignore[attr-defined]
    assert predictor.labels == ["neg", "pos"] and len(predictor.predict(["good film"])) == 1

    untrusted = _remote_code_run(tiny_model, tmp_path / "untrusted", trust=False)
    with pytest.raises(ModelError) as err:
        load_predictor(untrusted)
    assert "needs its own Python code" in err.value.problem and "model.trust_remote_code" in err.value.problem
    assert f"set model.trust_remote_code: true in {untrusted / 'config.yaml'}" in (err.value.fix or "")
