"""Helpers every verb module shares; kept apart from cli/__init__.py so verbs can import it at the top."""

from __future__ import annotations

import argparse

from engine.paths import default_db_path


def db_path_from(args: argparse.Namespace) -> str:
    """The store the command works on: ``--db`` or the default in the data folder."""
    return str(args.db or default_db_path())
