"""Who runs a recorded run, and whether that process still exists: one rule for every run kind.

Every run row (sweeps, fine-tune runs, generation runs, maskings, judge and ingest runs) carries the
host, pid and the process's start time of the process running it. A row still 'running' whose
process is gone, or whose pid now belongs to a process that started later (a reused pid), is
interrupted: :func:`with_live_status` reads it so, and :func:`settle` writes it so, so that a plain
SQL reader, a resumed run and every front end see the same truth. A process on another host (a Slurm
node writing to a shared store) cannot be checked from here and keeps its recorded status.
"""

from __future__ import annotations

import os
import socket
import sqlite3
from typing import Any

from store.clock import utc_now

Store = Any  # a store.db.Store (store.db opens the store and settles it with this module)

# Tables whose rows are runs with a status, host and pid; 'running' is the live state of each.
RUN_TABLES = ("sweeps", "finetune_runs", "generation_runs", "runs")
LIVE_STATUS = "running"
# A pid whose process started more than this many seconds away from the recorded start is another
# process (psutil's create_time has 10 ms resolution; the slack covers clock rounding).
_START_SLACK_S = 1.0


def process_start(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), or None when it cannot be read."""
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:  # noqa: BLE001 - no psutil, no such process, no permission: unknown
        return None


def run_owner() -> dict[str, Any]:
    """This process, as recorded on the rows it runs: host, pid and the process's start time."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "pid_started": process_start(pid)}


def owner_text(row: dict[str, Any]) -> str:
    return f"process {row.get('pid')} on {row.get('host')}"


def process_gone(row: dict[str, Any]) -> bool:
    """True for a row whose recorded process was on this host and no longer runs it."""
    pid, host = row.get("pid"), row.get("host")
    if not pid or host != socket.gethostname():
        return False  # another machine's process cannot be checked from here
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, ValueError):
        return False
    recorded = row.get("pid_started")
    if recorded is None:
        return False
    started = process_start(int(pid))
    return started is not None and abs(started - float(recorded)) > _START_SLACK_S


def gone_reason(row: dict[str, Any]) -> str:
    return f"{owner_text(row)} is gone"


def with_live_status(row: dict[str, Any], *, live: str = LIVE_STATUS) -> dict[str, Any]:
    """A run row as it really stands: ``live`` (running) whose process is gone reads 'interrupted'."""
    if row.get("status") == live and process_gone(row):
        row["status"] = "interrupted"
        row["error"] = row.get("error") or gone_reason(row)
    return row


def settle(store: Store, tables: tuple[str, ...] = RUN_TABLES) -> int:
    """Write 'interrupted' (with the reason) on every running row whose process is gone.

    Returns how many rows were settled. A store that cannot be written (read-only file) is left as
    it is: readers still see the live status through :func:`with_live_status`.
    """
    settled = 0
    existing = set(store.db.table_names())
    for table in tables:
        if table not in existing or "pid" not in store.db[table].columns_dict:
            continue
        rows = store.db.query(f"select * from [{table}] where status = ?", [LIVE_STATUS])
        gone = [row for row in rows if process_gone(row)]
        for row in gone:
            try:
                with store.db.atomic():
                    store.db.execute(
                        f"update [{table}] set status = 'interrupted', error = coalesce(error, ?) "
                        "where rowid = ? and status = ? and pid = ?",
                        [gone_reason(row), row["id"], LIVE_STATUS, row["pid"]],
                    )
            except sqlite3.OperationalError as exc:
                if "readonly" in str(exc) or "read-only" in str(exc):
                    return settled
                raise
            settled += 1
    return settled


def mark(store: Store, table: str, row_id: int, status: str, error: str | None) -> None:
    """Record how a run ended (``error`` says why it failed or stopped)."""
    values: dict[str, Any] = {"status": status, "error": error}
    if "finished_at" in store.db[table].columns_dict:
        values["finished_at"] = utc_now()
    with store.db.atomic():
        store.db[table].update(row_id, values)
