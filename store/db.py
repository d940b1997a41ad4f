"""Opening the database and applying every domain's migrations."""

from __future__ import annotations

import datetime as _dt
import importlib
import json
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils
from sqlite_utils import Migrations

# Domain modules, each exposing ``MIGRATIONS: Migrations``. Order matters only where a
# later set references an earlier set's tables.
DOMAIN_MODULES = (
    "store.core",
    "store.metrics",
    "store.masks",
    "store.jobs",
    "store.generation",
    "store.labels",
    "store.claims",
    "store.checkpoints",
)

_migration_lock = threading.Lock()


def utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")


def to_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def from_json(text: str | None, default: Any = None) -> Any:
    if text in (None, ""):
        return default
    return json.loads(text)


def decode_json_columns(row: Mapping[str, Any] | None) -> dict[str, Any]:
    """A row with each ``<name>_json`` column decoded into ``<name>`` ({} when empty); {} for no row."""
    if row is None:
        return {}
    decoded = dict(row)
    for key in list(decoded):
        if key.endswith("_json"):
            decoded[key[: -len("_json")]] = from_json(decoded.pop(key), {})
    return decoded


def where_equal(required: dict[str, Any], optional: dict[str, Any]) -> tuple[str, list[Any]]:
    """``a = ? and b = ?`` for every required column and every optional column whose value is not None."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (*required.items(), *optional.items()):
        if value is None and column in optional:
            continue
        clauses.append(f"{column} = ?")
        params.append(value)
    return " and ".join(clauses), params


def migration_sets() -> list[Migrations]:
    # Imported by name, not at the top: every domain module imports this one for its helpers.
    return [importlib.import_module(module_name).MIGRATIONS for module_name in DOMAIN_MODULES]


@dataclass
class Store:
    """A handle on one ft-hallu SQLite file. Cheap to create; one per thread is fine."""

    path: Path
    db: sqlite_utils.Database = field(repr=False)

    def close(self) -> None:
        self.db.close()


def open_db(path: str | Path, *, migrate: bool = True) -> Store:
    """Open (creating if needed) the store at ``path`` in WAL mode with migrations applied."""
    db_path = Path(path)
    if db_path.is_dir():
        raise StoreError(f"{db_path}: is a folder, expected an SQLite file")
    for parent in db_path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise StoreError(f"{db_path}: {parent} is a file, so the store cannot be created there")
            break
    db_path.parent.mkdir(parents=True, exist_ok=True)
    # check_same_thread=False: Textual/Gradio workers read through their own handle, but a
    # handle may be created on one thread and used on another worker thread.
    conn = sqlite3.connect(str(db_path), check_same_thread=False, timeout=30)
    try:
        db = sqlite_utils.Database(conn)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA busy_timeout=30000")
        if migrate:
            with _migration_lock:
                for migration_set in migration_sets():
                    migration_set.apply(db)
    except sqlite3.DatabaseError as exc:
        conn.close()
        # A non-SQLite file, a truncated store, a read-only folder: one line naming the file.
        raise StoreError(f"{db_path}: cannot be used as an ft-hallu store ({exc})") from exc
    return Store(path=db_path, db=db)


class StoreError(sqlite3.DatabaseError):
    """The store file cannot be opened; the message names it (front ends print it as one line)."""
