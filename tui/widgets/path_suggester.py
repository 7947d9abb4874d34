"""Path completion for an Input: type part of a path, press → (or End) to accept the suggested rest."""

from __future__ import annotations

import os
from pathlib import Path

from textual.suggester import Suggester

DATA_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".parquet", ".txt", ".yaml", ".yml")


class PathSuggester(Suggester):
    """Suggests the rest of a file or directory name; directories first, then files with `suffixes`."""

    def __init__(self, suffixes: tuple[str, ...] | None = DATA_SUFFIXES, *, dirs_only: bool = False) -> None:
        # No cache: files appear and disappear while the wizard is open.
        super().__init__(use_cache=False, case_sensitive=True)
        self.suffixes = suffixes
        self.dirs_only = dirs_only

    async def get_suggestion(self, value: str) -> str | None:
        if not value:
            return None
        head, sep, partial = value.rpartition("/")
        base = Path(head or ("/" if sep else ".")).expanduser()
        try:
            entries = list(os.scandir(base))
        except OSError:
            return None
        names: list[str] = []
        for entry in entries:
            if not entry.name.startswith(partial) or (entry.name.startswith(".") and not partial.startswith(".")):
                continue
            is_dir = entry.is_dir()
            if is_dir:
                names.append(entry.name + "/")
            elif not self.dirs_only and (self.suffixes is None or entry.name.lower().endswith(self.suffixes)):
                names.append(entry.name)
        if not names:
            return None
        names.sort(key=lambda n: (not n.endswith("/"), n))
        common = os.path.commonprefix(names)  # noqa: RUF071 - names, not paths: character-wise is right
        completion = common if len(common) > len(partial) else names[0]
        if completion == partial:
            return None
        return value + completion[len(partial):]
