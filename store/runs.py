"""Runs of the steps that have no table of their own (the judge, ingesting a job's files).

Each row is one run: what it worked on, its status (running | completed | failed | interrupted),
the host, pid and start time of its process (see :mod:`store.liveness`) and why it stopped.
"""

from __future__ import annotations

from typing import Any

from sqlite_utils import Migrations

from store.db import Store, decode_json_columns, to_json, utc_now, write_transaction
from store.liveness import run_owner, settle, with_live_status

MIGRATIONS = Migrations("ft_hallu.runs")


@MIGRATIONS(name="001_runs_table")
def _m001(db) -> None:
    db["runs"].create(
        {
            "id": int,
            "kind": str,  # judge | ingest
            "target": str,  # what it worked on: "sweep 3", "job 5"
            "status": str,  # running | completed | failed | interrupted
            "host": str,
            "pid": int,
            "pid_started": float,
            "error": str,
            "detail_json": str,
            "started_at": str,
            "finished_at": str,
        },
        pk="id",
    )
    db["runs"].create_index(["kind", "target"])


def start_run(store: Store, *, kind: str, target: str, detail: dict[str, Any] | None = None) -> int:
    """Record a run of ``kind`` on ``target`` as running by this process; returns its id."""
    settle(store, ("runs",))
    with write_transaction(store.db):
        table = store.db["runs"]
        table.insert(
            {
                "kind": kind,
                "target": target,
                "status": "running",
                **run_owner(),
                "detail_json": to_json(detail or {}),
                "started_at": utc_now(),
            }
        )
        return int(table.last_pk)


def finish_run(store: Store, run_id: int, *, detail: dict[str, Any] | None = None) -> None:
    values: dict[str, Any] = {"status": "completed", "error": None, "finished_at": utc_now()}
    if detail is not None:
        values["detail_json"] = to_json(detail)
    with write_transaction(store.db):
        store.db["runs"].update(run_id, values)


def list_runs(store: Store, kind: str | None = None) -> list[dict[str, Any]]:
    """Runs (of one kind, or every kind), newest first, with their live status."""
    where, params = ("kind = ?", [kind]) if kind else (None, [])
    rows = store.db["runs"].rows_where(where, params, order_by="id desc")
    return [with_live_status(decode_json_columns(row)) for row in rows]


def get_run(store: Store, run_id: int) -> dict[str, Any]:
    rows = list(store.db["runs"].rows_where("id = ?", [run_id]))
    return with_live_status(decode_json_columns(rows[0])) if rows else {}
