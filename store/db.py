"""Opening the database and applying every domain's migrations."""

from __future__ import annotations

import importlib
import json
import random
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils
from sqlite_utils import Migrations

from store.clock import utc_now  # noqa: F401 - the domain modules take it from here
from store.liveness import settle

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
    "store.profiles",
    "store.runs",
    "store.checkpoints",
    "store.verifier",
)
# How long a writer waits for another process's write to finish before giving up (SQLite's busy
# timeout). Creating and migrating a store, a sweep's batch of rows: all well under a second.
BUSY_TIMEOUT_S = 60.0

_migration_lock = threading.Lock()


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
    conn = sqlite3.connect(str(db_path), check_same_thread=False, timeout=BUSY_TIMEOUT_S)
    try:
        db = sqlite_utils.Database(conn)
        db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")  # before anything that locks
        _set_wal(db)
        db.execute("PRAGMA foreign_keys=ON")
        if migrate:
            with _migration_lock:
                _migrate(db)
    except sqlite3.DatabaseError as exc:
        conn.close()
        if _is_busy(exc):
            # Another process holds the store longer than the busy timeout: the file is fine.
            raise StoreError(
                f"{db_path}: busy, another process kept it locked for {BUSY_TIMEOUT_S:g} s; try again"
            ) from exc
        # A non-SQLite file, a truncated store, a read-only folder: one line naming the file.
        raise StoreError(f"{db_path}: cannot be used as an ft-hallu store ({exc})") from exc
    store = Store(path=db_path, db=db)
    if migrate:
        settle(store)  # runs whose process died read 'interrupted' in the file itself
    return store


def _is_busy(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc))


def _set_wal(db: sqlite_utils.Database) -> None:
    """WAL mode, unless already set (setting it needs a lock another opener may hold).

    Openers that meet on a new file can each hold a shared lock while asking for the exclusive one;
    SQLite then answers "locked" at once instead of waiting (its busy handler would deadlock), so
    this waits and asks again, up to the busy timeout (seen once in the suite: 2 of 6 processes
    opening a new store on a loaded 2-core machine failed here).
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            mode = db.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02 + random.random() * 0.08)  # apart, so the next try does not meet again


def _migrate(db: sqlite_utils.Database) -> None:
    """Apply every pending migration in ONE exclusive transaction.

    Two processes opening a new store at once: the second waits (busy timeout) for the first to
    finish creating it, then finds nothing pending. Without the lock, both would read "not applied"
    and the slower one would fail on a table the other had just created.
    """
    sets = migration_sets()
    if not any(migration_set.pending(db) for migration_set in sets):
        return
    with write_transaction(db, exclusive=True):
        for migration_set in sets:
            migration_set.apply(db)  # each migration nests as a savepoint


@contextmanager
def write_transaction(db: sqlite_utils.Database, *, exclusive: bool = False) -> Iterator[sqlite_utils.Database]:
    """``BEGIN IMMEDIATE`` (or ``EXCLUSIVE``) ... ``COMMIT``: the write lock is taken first, waiting
    for other writers up to the busy timeout, so a read-then-write never fails half-way with
    "database is locked" (which a deferred transaction does in WAL mode). Nested: a savepoint.
    """
    if db.conn.in_transaction:
        with db.atomic():
            yield db
        return
    db.execute("BEGIN EXCLUSIVE" if exclusive else "BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.rollback()
        raise
    db.execute("COMMIT")


class StoreError(sqlite3.DatabaseError):
    """The store file cannot be opened; the message names it (front ends print it as one line)."""
