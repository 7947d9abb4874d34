"""Labelled text in, a clean DatasetDict out: local files or Hub datasets, checked with messages that say the fix.

    files.py         a local file: checks, format detection, the reader for its format
    delimited.py     csv/tsv through pyarrow's CSV reader; header detection; data.quoting (GLUE's TSVs)
    json_files.py    json/jsonl (pyarrow's JSON reader, the json module where errors must name a line) and parquet
    hub_datasets.py  Hub datasets through datasets.load_dataset
    labels.py        label columns to class ids; data.label_names
    splitting.py     the stratified validation split and the subsets
    prepare.py       prepare_data: all of the above, into PreparedData
    inspection.py    what the wizard and `inspect` show: columns, suggested mapping, class balance
    arrow.py         the Arrow helpers they share

Local files are read by pyarrow straight into Arrow tables, not through load_dataset's packaged builders: those write
an Arrow copy of every file into ~/.cache and print progress bars, and their errors ("CSV parse error: Expected 2
columns, got 3") name no file, line or fix. Everything after loading is `datasets` (Arrow), so the engines see one
kind of object whatever the source. Heavy libraries are imported inside functions: the UI imports this package at
start-up.
"""

from core.data.arrow import SplitSource
from core.data.delimited import looks_like_header
from core.data.files import FILE_FORMATS, detect_format, load_file
from core.data.hub_datasets import hub_dataset_cached
from core.data.inspection import (
    ColumnInfo,
    ColumnSuggestion,
    DatasetInfo,
    class_balance,
    inspect_dataset,
    suggest_columns,
)
from core.data.prepare import PreparedData, load_raw, load_sources, prepare_data, source_notes
from core.data.splitting import split_indices

__all__ = [
    "FILE_FORMATS", "ColumnInfo", "ColumnSuggestion", "DatasetInfo", "PreparedData", "SplitSource", "class_balance",
    "detect_format", "hub_dataset_cached", "inspect_dataset", "load_file", "load_raw", "load_sources",
    "looks_like_header", "prepare_data", "source_notes", "split_indices", "suggest_columns",
]
