"""Sharing a finished run's model on the Hugging Face Hub: `finetune-tui push RUN REPO` and training.push_to_hub.

What goes up is the model directory as it is (files_to_push), with its model card (core.model_card). The token
comes from HF_TOKEN or the machine's `hf auth login` (huggingface_hub.get_token) and lives only in memory: it is
never written into the run directory, an event, a log line or the card, and any error text that might carry it is
redacted. Whether the Hub can be reached is asked once, quickly (core.hub), before anything is uploaded.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import RunDirError, UserError

if TYPE_CHECKING:
    from core.config import RunConfig
    from core.rundir import RunDir

# Left out besides huggingface_hub's own DEFAULT_IGNORE_PATTERNS (.git, .cache/huggingface): the half-written
# files of an atomic write.
NOT_PUSHED = ("*.tmp",)
TOKEN_FIX = ("run `hf auth login` (or set HF_TOKEN) with a token that may write to the Hub: "
             "https://huggingface.co/settings/tokens")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class PushError(UserError):
    """A model cannot be pushed as asked."""


@dataclass
class Pushed:
    repo_id: str
    url: str
    files: list[str]
    card: str  # what happened to README.md: "written", or "kept" (someone edited it)


# --- what, where, with what ----------------------------------------------------------------------------------------

def files_to_push(model_dir: Path) -> list[str]:
    """The files upload_folder sends from `model_dir`, as paths relative to it (sorted): it is given the same
    patterns, so this list is what the repository receives."""
    from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, filter_repo_objects

    paths = sorted(p.relative_to(model_dir).as_posix() for p in model_dir.glob("**/*") if p.is_file())
    return list(filter_repo_objects(paths, ignore_patterns=[*NOT_PUSHED, *DEFAULT_IGNORE_PATTERNS]))


def check_repo_id(repo_id: str) -> str:
    """`owner/name`, or `name` for one under the token's own account; a PushError with the rules otherwise."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    parts = repo_id.split("/")
    problem = None
    if len(parts) > 2 or not all(_NAME.fullmatch(part) for part in parts):
        problem = "it must be owner/name (letters, digits, '-', '_' and '.')"
    else:
        try:
            validate_repo_id(repo_id)
        except HFValidationError as err:
            problem = str(err).rstrip(".")
    if problem:
        raise PushError(f"{repo_id!r} is not a Hub repository id: {problem}",
                        "give one like your-name/sentiment-model (at most 96 characters, no '--' or '..')")
    return repo_id


def default_repo_id(run_dir: Path) -> str:
    """training.hub_model_id's default: the run directory's name, made a valid repository name, under the token's
    account."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", run_dir.resolve().name)
    name = re.sub(r"-{2,}", "-", re.sub(r"\.{2,}", ".", name)).strip("-.")[:96].rstrip("-.")
    return name or "finetune-tui-model"


def hub_token() -> str | None:
    """HF_TOKEN, else the token `hf auth login` stored on this machine; None when there is neither."""
    from huggingface_hub import get_token

    return get_token()


def _require_token() -> str:
    token = hub_token()
    if not token:
        raise PushError("no Hugging Face token found: HF_TOKEN is not set and this machine has no `hf auth login`",
                        TOKEN_FIX)
    return token


def _require_hub(repo_id: str, retry: str) -> None:
    """Fails in seconds when the Hub cannot be reached, instead of huggingface_hub's retries."""
    from core.hub import hub_reachable, reach_hint, unreachable_reason

    if hub_reachable():
        return
    hint = reach_hint()
    raise PushError(f"cannot push to {repo_id}: {unreachable_reason()}",
                    f"run `{retry}` where the Hub is reachable"
                    + (f" ({hint})" if hint else " (unset HF_HUB_OFFLINE and TRANSFORMERS_OFFLINE)"))


def push_warnings(config: RunConfig) -> list[str]:
    """What `validate` (and the run's start) should say about training.push_to_hub before hours of training: no
    token to push with. (A repository id that cannot be pushed to is refused when the config loads.)"""
    t = config.training
    if not t.push_to_hub:
        return []
    out = []
    if not hub_token():
        out.append("training.push_to_hub is true but no Hugging Face token is found (HF_TOKEN, `hf auth login`): the "
                   f"run would train and then fail to push; {TOKEN_FIX}")
    return out


# --- pushing -------------------------------------------------------------------------------------------------------

def finished_run(path: Path) -> RunDir:
    """The finished run of `path` (a run directory, or its model/ directory), with a saved model."""
    from core.predict import model_format
    from core.rundir import RunDir, is_run_dir

    path = path.expanduser()
    if path.name == "model" and is_run_dir(path.parent):
        path = path.parent
    run = RunDir(path)
    if not path.is_dir() or not is_run_dir(path):
        raise RunDirError(f"{path} is not a run directory", "give a folder that `finetune-tui run` made; "
                                                            "`finetune-tui runs` lists them")
    status = run.status()
    if status != "finished":
        raise RunDirError(f"the run {path} has not finished (status: {status}); only a finished run's model is pushed",
                          f"wait for it (`finetune-tui monitor {path}`)" if status in ("starting", "running") else
                          f"resume it with `finetune-tui resume {path}`, or push another run")
    if not run.model_dir.is_dir() or model_format(run.model_dir) is None:
        raise RunDirError(f"the run {path} has no saved model (nothing in {run.model_dir})",
                          "push a run that finished with its model/ directory in place")
    return run


def push_run(path: Path, repo_id: str, private: bool = False) -> Pushed:
    """`finetune-tui push`: a finished run's model directory to the Hub repository `repo_id`."""
    return upload_model(finished_run(path), check_repo_id(repo_id), private)


def upload_model(run: RunDir, repo_id: str, private: bool) -> Pushed:
    """Create the repository if needed and upload RUN/model with its card. Raises PushError; the caller decides
    whether that fails anything (the run process only warns)."""
    retry = f"finetune-tui push {run.path} {repo_id}" + (" --private" if private else "")
    token = _require_token()
    _require_hub(repo_id, retry)
    try:
        return _upload(run, repo_id, private, token)
    except PushError:
        raise
    except Exception as err:  # the Hub's answers, the network: each a reason the user can act on
        raise _upload_error(err, repo_id, retry, token) from None


def _upload(run: RunDir, repo_id: str, private: bool, token: str) -> Pushed:
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    repo = api.create_repo(repo_id, private=private, exist_ok=True)  # a bare name lands under the token's account
    try:
        card = _card_for(run, repo.repo_id)
    except Exception as err:  # not the Hub's doing: trying the upload again would not help
        raise PushError(f"the model card of {run.path} could not be written ({type(err).__name__}: {err})",
                        f"write {run.model_dir / 'README.md'} yourself (a card you edited is uploaded as it is), "
                        "then push again") from None
    files = files_to_push(run.model_dir)
    # A copy: upload_folder appends its own patterns to the list it is given.
    api.upload_folder(repo_id=repo.repo_id, folder_path=run.model_dir, ignore_patterns=list(NOT_PUSHED),
                      commit_message=f"finetune-tui: {run.path.resolve().name}")
    return Pushed(repo_id=repo.repo_id, url=str(repo), files=files, card=card)


def _card_for(run: RunDir, repo_id: str) -> str:
    """Write the card that names `repo_id`, unless someone edited the one there (then it goes up as it is)."""
    from core.model_card import CARD_FILE, card_is_generated, write_model_card

    if (run.model_dir / CARD_FILE).is_file() and not card_is_generated(run.path):
        return "kept"
    write_model_card(run.path, repo_id)
    return "written"


def _upload_error(err: Exception, repo_id: str, retry: str, token: str) -> PushError:
    status = getattr(getattr(err, "response", None), "status_code", None)
    text = (str(err).strip().splitlines() or [type(err).__name__])[0].replace(token, "***")
    if status == 401:
        return PushError(f"the Hub refused the token while pushing to {repo_id} ({text})", TOKEN_FIX)
    if status == 403:
        return PushError(f"this token may not write to {repo_id} ({text})",
                         "use a token with write access to that owner, or push to a repository under your own name")
    return PushError(f"the upload to {repo_id} failed: {type(err).__name__}: {text}",
                     f"try again: {retry}")


def redact(text: str) -> str:
    """`text` without the Hub token in it, for anything written down (events, logs)."""
    token = hub_token()
    return text.replace(token, "***") if token else text


def worker_push(run: RunDir, config: RunConfig, stop_requested: bool = False) -> dict[str, Any]:
    """training.push_to_hub at the end of a run (the model saved, `finished` not yet written): the fields for the
    `finished` event, hub_url or push_error (with the command that retries it). Never raises. A stop asked for once
    training was over skips the upload, which can take long: the person wants the run to end now."""
    import traceback

    repo_id = config.training.hub_model_id or default_repo_id(run.path)
    retry = f"finetune-tui push {run.path} {repo_id}" + (" --private" if config.training.hub_private_repo else "")
    if stop_requested:
        return {"push_error": f"not pushed: a stop was asked for before the upload; push with: {retry}"}
    try:
        pushed = upload_model(run, check_repo_id(repo_id), config.training.hub_private_repo)
    except UserError as err:
        return {"push_error": redact(f"{err.problem}; retry with: {retry}")}
    except Exception as err:  # a bug here must not cost the run: its model is saved
        print(redact(traceback.format_exc()), file=sys.stderr, flush=True)
        return {"push_error": redact(f"{type(err).__name__}: {err}; retry with: {retry}")}
    except BaseException as err:  # interrupted mid-upload (KeyboardInterrupt, SystemExit): the run still finishes
        return {"push_error": f"the upload was interrupted ({type(err).__name__}); retry with: {retry}"}
    return {"hub_url": pushed.url, "hub_repo_id": pushed.repo_id}
