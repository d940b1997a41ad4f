"""Where ft-hallu keeps its files unless told otherwise."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "FT_HALLU_HOME"


def data_dir() -> Path:
    """The working folder: $FT_HALLU_HOME, else ./ft-hallu-data in the current directory."""
    return Path(os.environ.get(DATA_DIR_ENV) or "ft-hallu-data").resolve()


def default_db_path() -> Path:
    return data_dir() / "ft-hallu.db"


def models_dir() -> Path:
    return data_dir() / "models"


def bundled_data_dir() -> Path:
    return Path(__file__).resolve().parent / "data"
