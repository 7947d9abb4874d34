"""core/ never imports Textual: proven in a fresh interpreter that imports every core module."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import core


def test_core_never_imports_textual() -> None:
    found = pkgutil.walk_packages(core.__path__, prefix="core.")
    modules = [m.name for m in found if not m.name.startswith("core.metric_modules")]
    modules = [m for m in modules if m != "core.engines.keras"]  # needs the optional TensorFlow stack
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'tui', 'rich'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert not [m for m in loaded if m.startswith(("textual", "tui"))], loaded
    assert "core.engines.trainer" in modules and len(modules) >= 15
