"""Masking runs: source, rules, output and their checksums, so a masking can be audited and undone."""

from __future__ import annotations

from typing import Any

from sqlite_utils import Migrations

from store.db import Store, decode_json_columns, to_json, utc_now, write_transaction
from store.liveness import process_gone, run_owner, with_live_status

WRITING = "writing"  # a masking's live state: its output is being written

MIGRATIONS = Migrations("ft_hallu.masks")


@MIGRATIONS(name="001_masks_table")
def _m001(db) -> None:
    db["masks"].create(
        {
            "id": int,
            "entity": str,
            "new_name": str,
            "source_path": str,
            "source_sha256": str,
            "source_format": str,
            "output_path": str,
            "output_sha256": str,
            "output_format": str,
            "backup_path": str,  # the file an overwrite replaced, kept for undo
            "status": str,  # writing | done | failed | undone
            "rows": int,
            "edits_applied": int,
            "rules_json": str,
            "rejected_json": str,  # {"rules": [...], "rows": [...], "edits": [...]}
            "counts_json": str,  # {rule id: {field: count}} of the applied edits
            "leaks_json": str,  # leak report summary of the output
            "error": str,
            "created_at": str,
            "finished_at": str,
            "undone_at": str,
        },
        pk="id",
    )
    db["masks"].create_index(["output_path"])


@MIGRATIONS(name="002_mask_writer")
def _m002(db) -> None:
    # Who writes a masking and the sha256 its output will have: a masking left 'writing' by a killed
    # process can then be finished (output complete) or failed (output missing) on the next run.
    db["masks"].add_column("host", str)
    db["masks"].add_column("pid", int)
    db["masks"].add_column("planned_sha256", str)


@MIGRATIONS(name="003_mask_writer_start")
def _m003(db) -> None:
    # The writer's process start time: a pid reused by a later process is not the writer.
    db["masks"].add_column("pid_started", float)


def start_mask(
    store: Store,
    *,
    entity: str,
    new_name: str,
    source_path: str | None,
    source_sha256: str | None,
    source_format: str | None,
    output_path: str,
    output_format: str,
    rules: list[dict[str, Any]],
    rejected: dict[str, Any],
    planned_sha256: str | None = None,
) -> int:
    """Record a masking before its output is written (status 'writing'), with this process as writer."""
    table = store.db["masks"]
    with write_transaction(store.db):
        table.insert(
            {
                "entity": entity,
                "new_name": new_name,
                "source_path": source_path,
                "source_sha256": source_sha256,
                "source_format": source_format,
                "output_path": output_path,
                "output_format": output_format,
                "status": WRITING,
                **run_owner(),
                "planned_sha256": planned_sha256,
                "rules_json": to_json(rules),
                "rejected_json": to_json(rejected),
                "created_at": utc_now(),
            }
        )
    return int(table.last_pk)


def finish_mask(
    store: Store,
    mask_id: int,
    *,
    output_sha256: str,
    backup_path: str | None,
    rows: int,
    edits_applied: int | None,
    counts: dict[str, dict[str, int]],
    leaks: dict[str, Any],
) -> None:
    with write_transaction(store.db):
        store.db["masks"].update(
            mask_id,
            {
                "status": "done",
                "output_sha256": output_sha256,
                "backup_path": backup_path,
                "rows": rows,
                "edits_applied": edits_applied,
                "counts_json": to_json(counts),
                "leaks_json": to_json(leaks),
                "finished_at": utc_now(),
            },
        )


def orphaned_masks(store: Store) -> list[dict[str, Any]]:
    """Maskings still 'writing' whose writer was on this host and is gone (killed mid-write)."""
    rows = store.db["masks"].rows_where("status = ?", [WRITING])
    return [decode_json_columns(row) for row in rows if process_gone(row)]


def fail_mask(store: Store, mask_id: int, *, error: str, status: str = "failed") -> None:
    """Record that a masking did not finish: 'failed', or 'interrupted' (a signal, a killed writer)."""
    with write_transaction(store.db):
        store.db["masks"].update(mask_id, {"status": status, "error": error[:500], "finished_at": utc_now()})


def mark_undone(store: Store, mask_id: int) -> None:
    with write_transaction(store.db):
        store.db["masks"].update(mask_id, {"status": "undone", "undone_at": utc_now()})


def get_mask(store: Store, mask_id: int) -> dict[str, Any]:
    rows = list(store.db["masks"].rows_where("id = ?", [mask_id]))
    return with_live_status(decode_json_columns(rows[0]), live=WRITING) if rows else {}


def list_masks(store: Store) -> list[dict[str, Any]]:
    rows = store.db["masks"].rows_where(order_by="id desc")
    return [with_live_status(decode_json_columns(row), live=WRITING) for row in rows]
