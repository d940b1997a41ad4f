"""Reading the TOML files users edit (fine-tune, sweep, cluster settings)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from engine.errors import UserError


def read_toml(path: str | Path, *, table: str | None = None) -> dict[str, Any]:
    """Parse ``path``; with ``table``, return that table if present, else the top level.

    A missing file or a syntax error is a one-line UserError naming the file.
    """
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: invalid TOML: {exc}") from None
    if table is None:
        return data
    section = data.get(table, data)
    if not isinstance(section, dict):
        raise UserError(f"{path}: '{table}' must be a table")
    return dict(section)
