"""The operator's choices, remembered between TUI runs in ``<data folder>/tui-prefs.json``.

Only form values and the last screen are kept; API keys never pass through here (the Generate
screen keeps the *name* of the variable and of the env file, not the key).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.dataset import write_atomic
from engine.paths import data_dir

PREFS_FILE = "tui-prefs.json"


def default_prefs_path() -> Path:
    return data_dir() / PREFS_FILE


def load_prefs(path: str | Path | None = None) -> dict[str, Any]:
    """The saved preferences, or {} when the file is missing or unreadable (never an error)."""
    prefs_path = Path(path) if path is not None else default_prefs_path()
    try:
        data = json.loads(prefs_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save_prefs(prefs: dict[str, Any], path: str | Path | None = None) -> None:
    """Write the preferences atomically (temp file + rename), so a crash never leaves half a file."""
    prefs_path = Path(path) if path is not None else default_prefs_path()
    write_atomic(prefs_path, json.dumps(prefs, indent=2, sort_keys=True) + "\n")
