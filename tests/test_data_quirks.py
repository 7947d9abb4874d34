"""Real public data and its quirks: GLUE's TSVs (a field that starts with an unmatched ", "" inside text, BOM, CRLF),
integer labels whose names live elsewhere (data.label_names), sentence pairs under any names, whitespace-only lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import DataConfig
from core.data import inspect_dataset, load_file, load_sources, prepare_data, source_notes
from core.errors import DataError

# MRPC's train file as GLUE ships it: BOM, CRLF, a header of 5 fields, and texts with " that are not CSV quotes: one
# field opens with a " that never closes, another holds "" and " the witness " in the middle.
MRPC_HEADER = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"
MRPC_ROWS = [
    '1\t702876\t702977\tAmrozi accused his brother , whom he called " the witness " , of deliberately distorting '
    'his evidence .\tReferring to him as only " the witness " , Amrozi accused his brother of deliberately '
    "distorting his evidence .",
    "0\t2108705\t2108831\tYucaipa owned Dominick 's before selling the chain to Safeway in 1998 for $ 2.5 billion .\t"
    '"Yucaipa bought Dominick \'s in 1995 for $ 693 million and sold it to Safeway for $ 1.8 billion in 1998 .',
    "1\t1330381\t1330521\tThey had published an advertisement on the Internet on June 10 , offering the cargo .\t"
    "On June 10 , the ship 's owners had published an advertisement on the Internet , offering the explosives .",
    '0\t3344667\t3344648\t"The Nasdaq had a weekly gain of 17.27 , or 1.2 percent , closing at 1,520.15 on Friday .\t'
    "The tech-laced Nasdaq Composite .IXIC rallied 30.46 points , or 2.04 percent , to 1,520.15 .",
    '1\t1236820\t1236712\tHe said "" quoted "" text stays as it is written here .\tThe other sentence with "" quotes '
    '"" in it stays as well .',
    "0\t1000001\t1000002\tA plain sentence without any quote in it at all .\tAnother plain sentence , also unquoted .",
]


def _write(path: Path, lines: list[str], *, bom: bool = True, newline: str = "\r\n") -> Path:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + (newline.join(lines) + newline).encode())
    return path


@pytest.fixture
def mrpc(tmp_path: Path) -> Path:
    return _write(tmp_path / "mrpc_train.tsv", [MRPC_HEADER, *MRPC_ROWS])


def test_glue_tsv_loads_every_line_without_quote_processing(mrpc: Path) -> None:
    ds, source = load_file(mrpc)
    assert len(ds) == len(MRPC_ROWS)  # one row per data line: no line swallowed by a quote
    assert ds.column_names == ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
    assert ds[1]["#2 String"].startswith('"Yucaipa bought')  # the " is text
    assert '"" quoted ""' in ds[4]["#1 String"]
    assert ds["Quality"] == [1, 0, 1, 0, 1, 0]
    assert any("no quote processing" in note and "data.quoting: none" in note for note in source.notes)


def test_glue_pair_task_prepares_with_detected_pair(mrpc: Path) -> None:
    prepared = prepare_data(DataConfig(train_file=mrpc, validation_fraction=0.34))
    assert (prepared.text_column, prepared.text_pair_column, prepared.label_column) == (
        "#1 String", "#2 String", "Quality")
    assert sum(prepared.sizes.values()) == len(MRPC_ROWS)
    assert any("no quote processing" in note for note in prepared.notes)


def test_quoting_csv_keeps_quoted_fields_and_escapes(tmp_path: Path) -> None:
    path = tmp_path / "quoted.csv"
    path.write_text('text,label\n"He said ""hi"", then left",pos\n"two\nlines, one text",neg\nplain text,pos\n')
    ds, source = load_file(path)
    assert ds["text"] == ['He said "hi", then left', "two\nlines, one text", "plain text"]
    assert source.notes == []


def test_quoting_none_keeps_quotes_as_text(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text('text,label\n"quoted",pos\nplain,neg\n')
    ds, _ = load_file(path, quoting="none")
    assert ds["text"] == ['"quoted"', "plain"]


def test_quoting_csv_forced_on_a_glue_file_says_how_to_read_it(mrpc: Path) -> None:
    with pytest.raises(DataError) as info:
        load_file(mrpc, quoting="csv")
    assert "data.quoting: none" in info.value.fix


def test_a_malformed_glue_line_is_named_by_its_real_line(tmp_path: Path) -> None:
    rows = list(MRPC_ROWS)
    rows.insert(3, "1\t11\t12\tA sentence with a stray\ttab in it .\tThe second sentence .")  # file line 5
    path = _write(tmp_path / "broken.tsv", [MRPC_HEADER, *rows])
    with pytest.raises(DataError) as info:
        load_file(path)
    assert "line 5 has 6 fields but the header has 5" in info.value.message
    assert "line 5" in info.value.fix and "double quotes" not in info.value.fix


def test_ragged_csv_line_after_a_multiline_quote_is_named(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text('text,label\n"one\ntwo",pos\nok,neg\nthree,fields,here\nfine,pos\n')
    with pytest.raises(DataError, match="line 5 has 3 fields but the header has 2"):
        load_file(path)


def test_whitespace_only_separator_lines_are_blank(tmp_path: Path) -> None:
    path = _write(tmp_path / "ws.tsv", ["text\tlabel", "good film\tpos", "   \t ", "bad film\tneg", "\t", "ok\tpos"],
                  bom=False, newline="\n")
    ds, _ = load_file(path)
    assert ds["text"] == ["good film", "bad film", "ok"]


def test_headerless_crlf_tsv_with_bom(tmp_path: Path) -> None:
    path = _write(tmp_path / "sst.tsv", ["it 's a charming journey .\t1", "a dull , lifeless film .\t0",
                                         "great fun for all\t1", "not worth it\t0"])
    ds, _ = load_file(path)
    assert ds.column_names == ["column_0", "column_1"]
    assert ds["column_0"][0] == "it 's a charming journey ."  # no BOM glued to the first text
    assert ds["column_1"] == [1, 0, 1, 0]


def test_invalid_utf8_deep_in_a_file_is_named_by_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    lines = [b"text,label"] + [b"fine text %d,pos" % i for i in range(30000)] + [b"caf\xe9 au lait,neg"]
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(DataError) as info:
        load_file(path)
    assert "byte 0xe9 at line 30002, byte 4" in info.value.message


# --- label names ------------------------------------------------------------------------------------

def _sst(tmp_path: Path) -> Path:
    rows = [f"text {i} is {'good' if i % 3 else 'bad'}\t{int(i % 3 != 0)}" for i in range(30)]
    return _write(tmp_path / "sst2.tsv", ["sentence\tlabel", *rows], bom=False, newline="\n")


def test_label_names_name_integer_ids(tmp_path: Path) -> None:
    prepared = prepare_data(DataConfig(train_file=_sst(tmp_path), label_names=["negative", "positive"]))
    assert prepared.label_names == ["negative", "positive"]
    assert prepared.dataset["train"].features["label"].names == ["negative", "positive"]


def test_label_names_from_a_file_and_more_names_than_seen_ids(tmp_path: Path) -> None:
    names = tmp_path / "labels.txt"
    names.write_text("negative\npositive\nneutral\n\n")
    prepared = prepare_data(DataConfig(train_file=_sst(tmp_path), label_names=names))
    assert prepared.label_names == ["negative", "positive", "neutral"]  # a class with no example still has its id


def test_label_names_order_text_labels(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.tsv", ["text\tlabel", *[f"t{i}\t{'yes' if i % 2 else 'no'}" for i in range(20)]],
                  bom=False, newline="\n")
    assert prepare_data(DataConfig(train_file=path)).label_names == ["no", "yes"]
    prepared = prepare_data(DataConfig(train_file=path, label_names=["yes", "no"]))
    assert prepared.label_names == ["yes", "no"]  # id 0 = yes, as the names say
    assert prepared.dataset["train"].features["label"].int2str(0) == "yes"


def test_label_names_errors_name_the_problem(tmp_path: Path) -> None:
    sst = _sst(tmp_path)
    with pytest.raises(DataError, match=r"id 1 but data.label_names names only ids 0-0|at least two"):
        prepare_data(DataConfig(train_file=sst, label_names=["only"]))
    with pytest.raises(DataError, match="more than once"):
        prepare_data(DataConfig(train_file=sst, label_names=["a", "a"]))
    three = _write(tmp_path / "three.tsv", ["text\tlabel", *[f"t{i}\t{i % 3}" for i in range(30)]], bom=False,
                   newline="\n")
    with pytest.raises(DataError) as info:
        prepare_data(DataConfig(train_file=three, label_names=["a", "b"]))
    assert "id 2" in info.value.message and "file lines" in info.value.message
    assert "3 or more names" in info.value.fix
    with pytest.raises(DataError, match="cannot read the label names file"):
        prepare_data(DataConfig(train_file=sst, label_names=tmp_path / "missing.txt"))


def test_label_names_as_typed_in_the_wizard(tmp_path: Path) -> None:
    assert DataConfig(train_file=_sst(tmp_path), label_names="negative, positive").label_names == [
        "negative", "positive"]


def test_inspect_shows_balance_by_label_names(tmp_path: Path) -> None:
    raw, _ = load_sources(DataConfig(train_file=_sst(tmp_path)))
    info = inspect_dataset(raw, "label", label_names=["negative", "positive"])
    assert info.class_balance == {"positive": 20, "negative": 10}


# --- pairs --------------------------------------------------------------------------------------------

def test_two_prose_columns_are_suggested_as_a_pair(tmp_path: Path) -> None:
    path = tmp_path / "nli.jsonl"
    rows = [{"id": f"r{i}", "claim": f"The cat number {i} sat on the mat today",
             "evidence": f"A report says cat {i} was seen sitting on a mat", "verdict": ["true", "false"][i % 2]}
            for i in range(20)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    raw, _ = load_sources(DataConfig(train_file=path))
    suggestion = inspect_dataset(raw).suggestion
    assert (suggestion.text, suggestion.text_pair, suggestion.label) == ("claim", "evidence", "verdict")
    assert "two columns of sentences" in suggestion.reasons["text_pair"]


def test_one_prose_column_is_no_pair(tmp_path: Path) -> None:
    path = tmp_path / "single.jsonl"
    rows = [{"id": f"row-{i}", "review": f"This film number {i} was really rather good", "label": i % 2}
            for i in range(20)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    raw, _ = load_sources(DataConfig(train_file=path))
    assert inspect_dataset(raw).suggestion.text_pair is None


# --- the CLI says how it read the file ---------------------------------------------------------------------

def test_inspect_cli_says_which_quoting_it_chose(mrpc: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "tui.cli", "inspect", str(mrpc)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "no quote processing" in result.stdout
    assert "text_pair_column=#2 String" in result.stdout and "label_column=Quality" in result.stdout
    assert "splits: {'train': 6}" in result.stdout


def test_source_notes_are_deduplicated(mrpc: Path, tmp_path: Path) -> None:
    dev = _write(tmp_path / "mrpc_dev.tsv", [MRPC_HEADER, *MRPC_ROWS[:3]])
    _, sources = load_sources(DataConfig(train_file=mrpc, validation_file=dev))
    notes = source_notes(sources)
    assert len(notes) == 2 and all("no quote processing" in n for n in notes)
