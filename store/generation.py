"""QA-generation runs and the status of each chunk they send to an LLM endpoint.

The raw items file is the source of truth for resuming; these tables let front ends list runs and
show which chunk failed without reading the files. API keys are never stored here.
"""

from __future__ import annotations

from typing import Any

from sqlite_utils import Migrations

from store.db import Store, decode_json_columns, to_json, utc_now, write_transaction
from store.liveness import run_owner, settle, with_live_status

MIGRATIONS = Migrations("ft_hallu.generation")


@MIGRATIONS(name="001_generation_tables")
def _m001(db) -> None:
    db["generation_runs"].create(
        {
            "id": int,
            "name": str,
            "output_dir": str,
            "model": str,
            "base_url": str,
            "status": str,  # running | completed | failed
            "chunks_total": int,
            "chunks_done": int,
            "items": int,
            "dataset_id": int,
            "error": str,
            "source_json": str,
            "config_json": str,
            "started_at": str,
            "finished_at": str,
        },
        pk="id",
    )
    db["generation_runs"].create_index(["output_dir"], unique=True)
    db["generation_chunks"].create(
        {
            "run_id": int,
            "chunk_id": str,
            "status": str,  # done | failed
            "items": int,
            "dropped": int,
            "attempts": int,
            "error": str,
            "updated_at": str,
        },
        pk=("run_id", "chunk_id"),
        foreign_keys=[("run_id", "generation_runs", "id")],
    )


@MIGRATIONS(name="002_generation_run_owner")
def _m002(db) -> None:
    # The process running a generation: a 'running' row whose process is gone reads as interrupted.
    db["generation_runs"].add_column("host", str)
    db["generation_runs"].add_column("pid", int)
    db["generation_runs"].add_column("pid_started", float)


def start_generation_run(
    store: Store,
    *,
    name: str,
    output_dir: str,
    model: str,
    base_url: str | None,
    chunks_total: int,
    source: dict[str, Any],
    config: dict[str, Any],
) -> int:
    """Return the run writing to ``output_dir`` (a resumed run keeps its id), marked running.

    ``base_url`` must come redacted (engine.secrets.redact_url): the store never holds a password.
    """
    settle(store, ("generation_runs",))
    with write_transaction(store.db):
        return _start_generation_run(
            store, name, output_dir, model, base_url, chunks_total, source=source, config=config
        )


def _start_generation_run(
    store: Store,
    name: str,
    output_dir: str,
    model: str,
    base_url: str | None,
    chunks_total: int,
    *,
    source: dict[str, Any],
    config: dict[str, Any],
) -> int:
    table = store.db["generation_runs"]
    existing = list(table.rows_where("output_dir = ?", [output_dir]))
    values = {
        "name": name,
        "model": model,
        "base_url": base_url,
        "status": "running",
        **run_owner(),
        "chunks_total": chunks_total,
        "error": None,
        "source_json": to_json(source),
        "config_json": to_json(config),
        "finished_at": None,
    }
    if existing:
        run_id = int(existing[0]["id"])
        table.update(run_id, values)
        return run_id
    table.insert({**values, "output_dir": output_dir, "chunks_done": 0, "items": 0, "started_at": utc_now()})
    return int(table.last_pk)


def record_chunk(
    store: Store,
    run_id: int,
    chunk_id: str,
    *,
    status: str,
    items: int = 0,
    dropped: int = 0,
    attempts: int = 0,
    error: str | None = None,
) -> None:
    with store.db.conn:
        store.db["generation_chunks"].upsert(
            {
                "run_id": run_id,
                "chunk_id": chunk_id,
                "status": status,
                "items": items,
                "dropped": dropped,
                "attempts": attempts,
                "error": error,
                "updated_at": utc_now(),
            },
            pk=("run_id", "chunk_id"),
        )
        done = store.db["generation_chunks"].count_where("run_id = ? and status = 'done'", [run_id])
        store.db["generation_runs"].update(run_id, {"chunks_done": done})


def finish_generation_run(
    store: Store,
    run_id: int,
    *,
    status: str,
    items: int = 0,
    dataset_id: int | None = None,
    error: str | None = None,
) -> None:
    store.db["generation_runs"].update(
        run_id,
        {
            "status": status,
            "items": items,
            "dataset_id": dataset_id,
            "error": error,
            "finished_at": utc_now(),
        },
    )


def stop_generation_run(store: Store, run_id: int, *, status: str, error: str) -> None:
    """Record why a run ended early (status 'interrupted' or 'failed'), keeping its counts."""
    with write_transaction(store.db):
        store.db["generation_runs"].update(run_id, {"status": status, "error": error, "finished_at": utc_now()})


def get_generation_run(store: Store, run_id: int) -> dict[str, Any]:
    row = store.db["generation_runs"].get(run_id)
    return with_live_status(decode_json_columns(dict(row)))


def list_generation_runs(store: Store) -> list[dict[str, Any]]:
    rows = store.db["generation_runs"].rows_where(order_by="id desc")
    return [with_live_status(decode_json_columns(row)) for row in rows]


def list_generation_chunks(store: Store, run_id: int) -> list[dict[str, Any]]:
    return list(store.db["generation_chunks"].rows_where("run_id = ?", [run_id], order_by="chunk_id"))
