"""Where screens.css is: at the repo root in a checkout, under <prefix>/share/finetune-tui in an installed wheel."""

from __future__ import annotations

import site
import sys
from pathlib import Path

import tui

CSS_NAME = "screens.css"


def candidates() -> list[Path]:
    repo_root = Path(tui.__file__).resolve().parent.parent
    return [
        repo_root / CSS_NAME,
        Path(sys.prefix) / "share" / "finetune-tui" / CSS_NAME,
        # pip install --user puts data files under the user base instead of sys.prefix.
        Path(site.getuserbase()) / "share" / "finetune-tui" / CSS_NAME,
    ]


def css_path() -> Path:
    """The stylesheet to load; the checkout's copy wins so edits show without reinstalling."""
    for path in candidates():
        if path.is_file():
            return path
    tried = ", ".join(str(p) for p in candidates())
    raise FileNotFoundError(f"screens.css not found (looked in {tried}); reinstall finetune-tui")
