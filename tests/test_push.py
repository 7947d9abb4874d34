"""`finetune-tui push RUN REPO` and training.push_to_hub, with no network: what would be uploaded, the clear and
fast errors (no token, no Hub, no finished run, a bad repository id), and the upload itself against a stand-in for
huggingface_hub.HfApi, after which no file of the run holds the token."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from huggingface_hub import ModelCard

import core.hub
from core.model_card import CARD_FILE
from core.push import default_repo_id, files_to_push, push_warnings
from core.rundir import RunDir
from tests.conftest import tiny_config, tiny_rows, write_tsv
from tests.test_trainer_run import _run_in_process
from tui.cli import EXIT_USER_ERROR, main

TOKEN = "hf_TESTtokenThatMustNeverBeWritten0123"
MODEL_FILES = ["README.md", "config.json", "model.safetensors", "task.json", "tokenizer.json", "tokenizer_config.json"]
_HUB_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
            "HF_ENDPOINT", "HF_OIDC_RESOURCE")
_PROXIES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


@pytest.fixture(scope="module")
def finished(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    root = tmp_path_factory.mktemp("push-run")
    data = {"train": write_tsv(root / "train.tsv", tiny_rows(96, seed=1))}
    return _run_in_process(tiny_config(tiny_model, data, root / "run", max_steps=8, eval_strategy="no",
                                       save_strategy="no"))


@pytest.fixture
def run_copy(finished: RunDir, tmp_path: Path) -> RunDir:
    """A finished run of this test's own, to change freely."""
    return RunDir(shutil.copytree(finished.path, tmp_path / "my-run"))


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No token, no stored login, no proxy, nothing saying offline: each test adds what it is about."""
    env = {k: v for k, v in os.environ.items() if k not in _HUB_ENV + _PROXIES}
    (tmp_path / "hf-home").mkdir(exist_ok=True)
    return {**env, "HF_HOME": str(tmp_path / "hf-home"), "NO_PROXY": "*", **extra}


def _push(env: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "tui.cli", "push", *args], capture_output=True, text=True,
                            env=env, timeout=120)
    return result, time.monotonic() - started


def _files_holding(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


class FakeHfApi:
    """huggingface_hub.HfApi as far as a push uses it: records the calls and what the folder held at upload."""

    made: ClassVar[list[FakeHfApi]] = []
    fail_upload: ClassVar[Exception | None] = None

    def __init__(self, token: str | None = None, **_: Any) -> None:
        self.token = token
        self.calls: list[tuple[str, dict[str, Any]]] = []
        FakeHfApi.made.append(self)

    def create_repo(self, repo_id: str, **kwargs: Any) -> Any:
        from huggingface_hub import RepoUrl

        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        full = repo_id if "/" in repo_id else f"someone/{repo_id}"  # a bare name lands under the token's account
        return RepoUrl(f"https://huggingface.co/{full}")

    def upload_folder(self, **kwargs: Any) -> None:
        from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, filter_repo_objects

        folder = Path(kwargs["folder_path"])
        present = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        ignored = [*(kwargs.get("ignore_patterns") or []), *DEFAULT_IGNORE_PATTERNS]
        sent = list(filter_repo_objects(present, ignore_patterns=ignored))
        self.calls.append(("upload_folder", {**kwargs, "sent": sent,
                                             "card": (folder / CARD_FILE).read_text(encoding="utf-8")}))
        if FakeHfApi.fail_upload is not None:
            raise FakeHfApi.fail_upload


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> type[FakeHfApi]:
    """A reachable Hub that is this process's FakeHfApi, and a token in HF_TOKEN."""
    import huggingface_hub

    FakeHfApi.made = []
    FakeHfApi.fail_upload = None
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    monkeypatch.setattr(core.hub, "hub_reachable", lambda timeout=0.0: True)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    return FakeHfApi


# --- what goes up --------------------------------------------------------------------------------------------------

def test_files_to_push_is_the_model_directory_less_half_written_and_git_files(run_copy: RunDir) -> None:
    model = run_copy.model_dir
    assert files_to_push(model) == MODEL_FILES
    (model / "config.json.tmp").write_text("{")
    (model / ".git").mkdir()
    (model / ".git" / "HEAD").write_text("ref: main")
    (model / "extra").mkdir()
    (model / "extra" / "notes.txt").write_text("kept")
    assert files_to_push(model) == sorted([*MODEL_FILES, "extra/notes.txt"])


def test_default_repo_names_are_valid_hub_names(tmp_path: Path) -> None:
    from huggingface_hub.utils import validate_repo_id

    for name in ("trainer-reviews-20250101-120000", "my run (2)", "a..b--c", "x" * 200, "???"):
        repo = default_repo_id(tmp_path / name)
        validate_repo_id(repo)
        assert len(repo) <= 96
    assert default_repo_id(tmp_path / "trainer-reviews-20250101-120000") == "trainer-reviews-20250101-120000"


# --- clear errors, fast --------------------------------------------------------------------------------------------

def test_no_token_is_exit_2_saying_how_to_log_in(finished: RunDir, tmp_path: Path) -> None:
    result, _ = _push(_env(tmp_path), str(finished.path), "me/tiny")
    assert result.returncode == EXIT_USER_ERROR, result.stderr
    assert "no Hugging Face token found" in result.stderr and "hf auth login" in result.stderr
    assert "HF_TOKEN" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("offline", ["unreachable", "HF_HUB_OFFLINE"])
def test_no_network_is_a_fast_exit_2(finished: RunDir, tmp_path: Path, offline: str) -> None:
    # A closed port on this machine: refused at once, wherever the test runs (no request leaves the machine).
    extra = {"HF_ENDPOINT": "http://127.0.0.1:9"} if offline == "unreachable" else {"HF_HUB_OFFLINE": "1"}
    result, seconds = _push(_env(tmp_path, HF_TOKEN=TOKEN, **extra), str(finished.path), "me/tiny", "--private")
    assert result.returncode == EXIT_USER_ERROR, result.stderr
    assert seconds < 15, f"took {seconds:.1f} s"
    assert "cannot push to me/tiny" in result.stderr
    assert ("127.0.0.1:9 cannot be reached" if offline == "unreachable" else "HF_HUB_OFFLINE is set") in result.stderr
    assert f"finetune-tui push {finished.path} me/tiny --private" in result.stderr, "the command to retry with"
    assert TOKEN not in result.stdout + result.stderr and "Traceback" not in result.stderr


def test_a_run_that_is_not_finished_or_has_no_model_is_refused_by_name(run_copy: RunDir, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    events = run_copy.events_path.read_text().splitlines()
    run_copy.events_path.write_text("\n".join(e for e in events if '"finished"' not in e) + "\n")
    assert main(["push", str(run_copy.path), "me/tiny"]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert f"the run {run_copy.path} has not finished (status: died)" in err and "finetune-tui resume" in err

    run_copy.events_path.write_text("\n".join(events) + "\n")
    shutil.rmtree(run_copy.model_dir)
    assert main(["push", str(run_copy.path), "me/tiny"]) == EXIT_USER_ERROR
    assert f"the run {run_copy.path} has no saved model" in capsys.readouterr().err

    assert main(["push", str(tmp_path), "me/tiny"]) == EXIT_USER_ERROR
    assert f"{tmp_path} is not a run directory" in capsys.readouterr().err


@pytest.mark.parametrize("repo", ["me/x--y", "a/b/c", "me/", "_bad", "me/has space"])
def test_a_bad_repository_id_is_refused(finished: RunDir, repo: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["push", str(finished.path), repo]) == EXIT_USER_ERROR
    assert f"{repo!r} is not a Hub repository id" in capsys.readouterr().err


def test_validate_warns_about_a_push_without_a_token(tiny_model: Path, tiny_data: dict, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import core.push

    path = tmp_path / "push.yaml"
    raw = tiny_config(tiny_model, tiny_data, tmp_path / "run", push_to_hub=True, hub_model_id="me/x")
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setattr(core.push, "hub_token", lambda: None)
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "warning: training.push_to_hub is true but no Hugging Face token is found" in out
    assert "hf auth login" in out
    monkeypatch.setattr(core.push, "hub_token", lambda: TOKEN)
    raw["training"]["hub_model_id"] = "me/fine"
    path.write_text(yaml.safe_dump(raw))
    assert main(["validate", str(path)]) == 0
    assert "warning" not in capsys.readouterr().out
    from core.config import parse_config

    assert push_warnings(parse_config({**raw, "training": {**raw["training"], "push_to_hub": False}})) == []


# --- the upload ----------------------------------------------------------------------------------------------------

def test_push_uploads_the_model_directory_with_a_card_naming_the_repository(
        run_copy: RunDir, fake_hub: type[FakeHfApi], capsys: pytest.CaptureFixture[str]) -> None:
    (run_copy.model_dir / CARD_FILE).unlink()  # a run from before cards: push writes one first
    assert main(["push", str(run_copy.path), "me/tiny", "--private"]) == 0
    assert "pushed 6 files (README.md written) to https://huggingface.co/me/tiny" in capsys.readouterr().out
    (api,) = fake_hub.made
    assert api.token == TOKEN
    (create, create_args), (upload, upload_args) = api.calls
    assert create == "create_repo" and create_args == {"repo_id": "me/tiny", "private": True, "exist_ok": True}
    assert upload == "upload_folder" and upload_args["repo_id"] == "me/tiny"
    assert Path(upload_args["folder_path"]) == run_copy.model_dir
    assert upload_args["sent"] == files_to_push(run_copy.model_dir) == MODEL_FILES
    assert 'model="me/tiny"' in upload_args["card"] and str(run_copy.path) not in upload_args["card"]
    assert ModelCard.load(run_copy.model_dir / CARD_FILE).data.model_name == "tiny"
    assert _files_holding(run_copy.path, TOKEN) == []


def test_an_edited_card_is_uploaded_as_it_is(run_copy: RunDir, fake_hub: type[FakeHfApi],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    card = run_copy.model_dir / CARD_FILE
    edited = card.read_text().replace("license: other", "license: apache-2.0")
    card.write_text(edited)
    assert main(["push", str(run_copy.path), "me/tiny"]) == 0
    assert "README.md kept as edited" in capsys.readouterr().out
    assert fake_hub.made[0].calls[1][1]["card"] == edited == card.read_text()
    assert fake_hub.made[0].calls[0][1]["private"] is False


def test_a_refused_upload_is_a_clear_error_without_the_token(run_copy: RunDir, fake_hub: type[FakeHfApi],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    import httpx
    from huggingface_hub.errors import HfHubHTTPError

    response = httpx.Response(403, request=httpx.Request("POST", "https://huggingface.co/api/models/me/tiny/commit"))
    fake_hub.fail_upload = HfHubHTTPError(f"403 Forbidden: no write access (token {TOKEN})", response=response)
    assert main(["push", str(run_copy.path), "me/tiny"]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "this token may not write to me/tiny" in err and "write access" in err
    assert TOKEN not in err and "***" in err


# --- training.push_to_hub ------------------------------------------------------------------------------------------

def test_a_run_that_cannot_push_still_finishes_with_the_retry_command(tiny_model: Path, tiny_data: dict,
                                                                      tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tiny_model, tiny_data, out, max_steps=4, eval_strategy="no",
                                                 save_strategy="no", push_to_hub=True, hub_model_id="me/tiny")))
    result = subprocess.run([sys.executable, "-m", "tui.cli", "run", str(config)], capture_output=True, text=True,
                            env=_env(tmp_path, HF_TOKEN=TOKEN, HF_HUB_OFFLINE="1"), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    run = RunDir(out)
    finished = run.events()[-1]
    assert finished["type"] == "finished" and run.status() == "finished" and "hub_url" not in finished
    assert "HF_HUB_OFFLINE is set" in finished["push_error"]
    assert f"finetune-tui push {out} me/tiny" in finished["push_error"]
    assert "warning: the model was not pushed" in run.stdout_path.read_text()
    assert (run.model_dir / CARD_FILE).is_file()
    assert _files_holding(out, TOKEN) == []


def test_a_run_with_push_to_hub_pushes_before_it_finishes(tiny_model: Path, tiny_data: dict, tmp_path: Path,
                                                          fake_hub: type[FakeHfApi]) -> None:
    run = _run_in_process(tiny_config(tiny_model, tiny_data, tmp_path / "trainer-tiny-run", max_steps=4,
                                      eval_strategy="no", save_strategy="no", push_to_hub=True,
                                      hub_private_repo=True))
    finished = run.events()[-1]
    assert finished["type"] == "finished" and "push_error" not in finished
    # No hub_model_id: the run directory's name, under the token's account.
    assert finished["hub_url"] == "https://huggingface.co/someone/trainer-tiny-run"
    assert finished["hub_repo_id"] == "someone/trainer-tiny-run"
    (api,) = fake_hub.made
    assert api.calls[0][1] == {"repo_id": "trainer-tiny-run", "private": True, "exist_ok": True}
    assert api.calls[1][1]["repo_id"] == "someone/trainer-tiny-run"
    assert 'model="someone/trainer-tiny-run"' in api.calls[1][1]["card"]
    started = next(e for e in run.events() if e["type"] == "run_started")
    assert started["warnings"] == [], "a token was there"
    assert _files_holding(run.path, TOKEN) == []


def test_a_bad_hub_model_id_in_the_config_is_refused_when_it_loads() -> None:
    from core.config import parse_config
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"training.hub_model_id: 'me/my/model' is not valid.*owner/name"):
        parse_config({"data": {"train_file": "x.csv"}, "training": {"hub_model_id": "me/my/model"}})
    assert parse_config({"data": {"train_file": "x.csv"},
                         "training": {"hub_model_id": "me/model"}}).training.hub_model_id == "me/model"
