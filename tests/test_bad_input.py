"""Bad input through the real CLI: each gets the problem and the fix, exit 2, no traceback, and nothing touched.

The CLI runs in-process (tui.cli.main) for speed; a few cases also run as a real subprocess to prove the exit
code and the absence of a traceback end to end.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.config import DataConfig
from core.data import prepare_data
from core.errors import DataError
from tests.conftest import tiny_rows, write_tsv
from tui.cli import main

GOOD_ROWS = tiny_rows(40, seed=3)


@dataclass
class Case:
    """Build files in a folder and return the CLI arguments; `expect` are fragments the message must hold."""

    id: str
    build: Callable[[Path, Path], list[str]]
    expect: tuple[str, ...]


def _config(folder: Path, model: Path, *, data: dict | None = None, training: dict | None = None,
            tokenizer: dict | None = None, engine: str = "trainer", output: Path | None = None,
            model_path: str | None = None) -> Path:
    if not (folder / "train.tsv").exists():
        write_tsv(folder / "train.tsv", GOOD_ROWS)
    raw = {
        "engine": engine,
        "model": {"name_or_path": model_path or str(model)},
        "data": {"train_file": str(folder / "train.tsv"), "text_column": "text", "label_column": "label",
                 **(data or {})},
        "tokenizer": {"max_length": 32, **(tokenizer or {})},
        "training": {"num_train_epochs": 1, **(training or {})},
        "output_dir": str(output or folder / "runs" / "r"),
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _validate(folder: Path, model: Path, **kw: object) -> list[str]:
    return ["validate", str(_config(folder, model, **kw))]  # type: ignore[arg-type]


def _raw_config(text: str | bytes, name: str = "config.yaml") -> Callable[[Path, Path], list[str]]:
    def build(folder: Path, model: Path) -> list[str]:
        path = folder / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return ["validate", str(path)]
    return build


def _data_file(name: str, content: str | bytes, **data: object) -> Callable[[Path, Path], list[str]]:
    def build(folder: Path, model: Path) -> list[str]:
        path = folder / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return _validate(folder, model, data={"train_file": str(path), **data})
    return build


def _tsv(rows: list[tuple[str, ...]], header: tuple[str, ...] = ("text", "label")) -> str:
    return "\n".join("\t".join(r) for r in [header, *rows]) + "\n"


def _unseen_test_label(folder: Path, model: Path) -> list[str]:
    test = write_tsv(folder / "test.tsv", [("good film", "pos"), ("odd film", "meh")])
    return _validate(folder, model, data={"test_file": str(test)})


def _not_a_model(folder: Path, model: Path) -> list[str]:
    (folder / "weights").mkdir()
    (folder / "weights" / "pytorch_model.bin").write_bytes(b"\0" * 16)
    return _validate(folder, model, model_path=str(folder / "weights"))


def _remote_code_model(folder: Path, model: Path) -> list[str]:
    (folder / "custom").mkdir()
    (folder / "custom" / "config.json").write_text(json.dumps(
        {"model_type": "my-custom-arch", "auto_map": {"AutoConfig": "configuration_x.XConfig"}}))
    return _validate(folder, model, model_path=str(folder / "custom"))


def _no_classification_head(folder: Path, model: Path) -> list[str]:
    from transformers import CLIPConfig

    CLIPConfig().save_pretrained(folder / "clip")
    return _validate(folder, model, model_path=str(folder / "clip"))


def _existing_output(folder: Path, model: Path) -> list[str]:
    out = folder / "runs" / "r"
    out.mkdir(parents=True)
    (out / "notes.txt").write_text("my earlier run")
    return ["run", str(_config(folder, model, output=out))]


def _live_run(folder: Path, model: Path) -> list[str]:
    out = folder / "runs" / "live"
    out.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from core.rundir import RunDir; import time; RunDir({str(out)!r}).acquire_lock(); "
                               "print('held', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True, process_group=0)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    _LIVE.append(holder)
    return ["run", str(_config(folder, model, output=out)), "--overwrite"]


def _run_single_class(folder: Path, model: Path) -> list[str]:
    """`run` leaves the data checks to the run process; its bad input still ends as exit 2, leaving nothing."""
    write_tsv(folder / "one.tsv", [(t, "pos") for t, _ in GOOD_ROWS])
    return ["run", str(_config(folder, model, data={"train_file": str(folder / "one.tsv")},
                               output=folder / "runs" / "new" / "r"))]


def _overwrite_with_bad_data(folder: Path, model: Path) -> list[str]:
    """--overwrite checks everything before it deletes the earlier run: bad input must not cost that run."""
    out = folder / "runs" / "r"
    out.mkdir(parents=True)
    (out / "config.yaml").write_text("engine: trainer\n")
    (out / "events.jsonl").write_text('{"type": "run_started", "time": 1}\n')
    write_tsv(folder / "one.tsv", [(t, "pos") for t, _ in GOOD_ROWS])
    return ["run", str(_config(folder, model, data={"train_file": str(folder / "one.tsv")}, output=out)),
            "--overwrite"]


_LIVE: list[subprocess.Popen[str]] = []

CASES = [
    # config files
    Case("config-not-yaml", _raw_config("data: [train_file: x\n  - ]: :"), ("not valid YAML at line",)),
    Case("config-empty", _raw_config(""), ("is empty",)),
    Case("config-not-json", _raw_config("{'data': 1", "config.json"), ("not valid JSON",)),
    Case("config-binary", _raw_config(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe"), ("not a text file",)),
    Case("config-wrong-type", lambda f, m: _validate(f, m, training={"learning_rate": "fast"}),
         ("training.learning_rate", "'fast'", "valid number")),
    Case("config-unknown-key", lambda f, m: _validate(f, m, training={"num_epochs": 3}),
         ("training.num_epochs", "unknown key", "did you mean 'num_train_epochs'")),
    Case("config-negative-lr", lambda f, m: _validate(f, m, training={"learning_rate": -0.001}),
         ("training.learning_rate", "-0.001", "greater than 0")),
    Case("config-zero-batch", lambda f, m: _validate(f, m, training={"per_device_train_batch_size": 0}),
         ("per_device_train_batch_size", "0", "greater than or equal to 1")),
    Case("config-max-length-above-model", lambda f, m: _validate(f, m, tokenizer={"max_length": 512}),
         ("max_length is 512", "limit of 128", "128 or less")),
    Case("config-future-schema", _raw_config("schema_version: 9\ndata: {train_file: x.tsv}\n"),
         ("schema_version", "newer", "upgrade finetune-tui")),
    Case("config-missing", lambda f, m: ["validate", str(f / "nope.yaml")], ("nope.yaml", "does not exist")),
    # data files
    Case("data-missing", lambda f, m: _validate(f, m, data={"train_file": str(f / "trian.tsv")}),
         ("trian.tsv does not exist", "did you mean", "train.tsv?")),
    Case("data-directory", lambda f, m: _validate(f, m, data={"train_file": str(f)}),
         ("is a directory, not a data file", "train.tsv")),
    Case("data-empty", _data_file("e.tsv", ""), ("e.tsv is empty",)),
    Case("data-binary", _data_file("b.csv", bytes(range(256)) * 8), ("b.csv is a binary file, not text",)),
    Case("data-wrong-delimiter",
         _data_file("semi.csv", "text;label\n" + "".join(f"{t};{lab}\n" for t, lab in GOOD_ROWS)),
         ("semi.csv", "separated by ';'")),
    Case("data-ragged-rows", _data_file("rag.tsv", _tsv(GOOD_ROWS[:5]) + "a\tb\tc\td\n" + _tsv(GOOD_ROWS[5:])[11:]),
         ("rag.tsv is malformed: line 7 has 4 fields but the header has 2",)),
    Case("data-text-is-numbers", _data_file("num.tsv", _tsv([(str(i * 7), "pos" if i % 2 else "neg")
                                                            for i in range(30)])),
         ("column 'text' (data.text_column)", "num.tsv holds numbers (e.g. 0, 7, 14), not text")),
    Case("data-label-blanks", _data_file("blank.tsv", _tsv([*GOOD_ROWS[:10], ("fine movie", ""), *GOOD_ROWS[10:]])),
         ("label column 'label'", "blank.tsv has 1 missing value, at data rows 11")),
    Case("data-single-class", _data_file("one.tsv", _tsv([(t, "pos") for t, _ in GOOD_ROWS])),
         ("one.tsv has only one class ('pos')",)),
    Case("data-unseen-test-label", _unseen_test_label,
         ("test.tsv has label 'meh' in column 'label' that the training data never has",)),
    Case("data-invalid-utf8", _data_file("latin.tsv", _tsv(GOOD_ROWS[:5]).encode() + "café\tpos\n".encode("latin-1")),
         ("latin.tsv is not valid UTF-8: byte 0xe9 at line 7",)),
    Case("data-header-only", _data_file("head.tsv", "text\tlabel\n"),
         ("head.tsv has a header row (text, label) but no data rows",)),
    Case("data-huge-single-line", _data_file("huge.tsv", "word " * 2_000_000),
         ("huge.tsv", "characters", "one example per line")),
    Case("data-missing-column", lambda f, m: _validate(f, m, data={"text_column": "sentence"}),
         ("column 'sentence' (data.text_column) is not in the train data", "its columns are: text, label")),
    # models
    Case("model-not-a-model", _not_a_model, ("not a model directory", "config.json")),
    Case("model-hub-offline", lambda f, m: _validate(f, m, model_path="someone/not-cached-model"),
         ("'someone/not-cached-model' is not a local path", "HF_HUB_OFFLINE")),
    Case("model-no-classification-head", _no_classification_head, ("clip", "text-classification")),
    Case("model-needs-remote-code", _remote_code_model, ("own Python code", "trust_remote_code")),
    # run directories
    Case("rundir-existing", _existing_output, ("not a finetune-tui run", "nothing in it was touched")),
    Case("run-data-single-class", _run_single_class, ("only one class", "pos")),
    Case("run-overwrite-bad-data", _overwrite_with_bad_data, ("only one class", "pos")),
    Case("rundir-live", _live_run, ("belongs to a run that is still going (pid",)),
    Case("rundir-read-only", lambda f, m: ["run", str(_config(f, m, output=Path("/sys/finetune-tui-test/run")))],
         ("cannot write", "/sys/finetune-tui-test/run")),
]


def _fingerprint(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))
            if p.name not in ("run.lock", "run.pid")}  # the live-run case's own lock holder writes these


def test_there_are_at_least_thirty_distinct_cases() -> None:
    assert len({c.id for c in CASES}) == len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_named_with_a_fix(case: Case, tiny_model: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    args = case.build(tmp_path, tiny_model)
    before = _fingerprint(tmp_path)
    try:
        code = main(args)
    finally:
        for holder in _LIVE:
            holder.kill()
        _LIVE.clear()
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and "fix:" in err and "Traceback" not in err
    for fragment in case.expect:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    assert _fingerprint(tmp_path) == before, "bad input must not create, change or delete anything"


@pytest.mark.parametrize("case_id", ["config-unknown-key", "data-single-class", "rundir-existing"])
def test_real_process_exit_code_and_no_traceback(case_id: str, tiny_model: Path, tmp_path: Path) -> None:
    case = next(c for c in CASES if c.id == case_id)
    args = case.build(tmp_path, tiny_model)
    result = subprocess.run([sys.executable, "-m", "tui.cli", *args], capture_output=True, text=True, cwd=tmp_path,
                            env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)}, timeout=120)
    assert result.returncode == 2 and "fix:" in result.stderr and "Traceback" not in result.stderr
    debug = subprocess.run([sys.executable, "-m", "tui.cli", "--debug", *args], capture_output=True, text=True,
                           cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)},
                           timeout=120)
    assert "Traceback" in debug.stderr  # --debug shows it


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=300), suffix=st.sampled_from([".csv", ".tsv", ".json", ".jsonl", ".parquet", ".txt"]))
def test_fuzzed_data_files_give_only_clean_errors(tmp_path: Path, content: bytes, suffix: str) -> None:
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(content)
    try:
        prepare_data(DataConfig(train_file=path))
    except DataError as err:
        assert err.fix, err.problem


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(st.text(max_size=20), st.text(max_size=6)), max_size=12))
def test_fuzzed_tables_give_only_clean_errors(tmp_path: Path, rows: list[tuple[str, str]]) -> None:
    import csv

    path = tmp_path / "fuzz.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("text", "label"), *rows])
    try:
        prepare_data(DataConfig(train_file=path, text_column="text", label_column="label"))
    except DataError as err:
        assert err.fix, err.problem
