"""Checkpoints a fine-tune kept: one row per kept adapter of a run (step, epoch, losses, folder)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlite_utils import Migrations

from store.db import Store, utc_now

MIGRATIONS = Migrations("ft_hallu.checkpoints")


@MIGRATIONS(name="001_finetune_checkpoints")
def _m001(db) -> None:
    db["finetune_checkpoints"].create(
        {
            "id": int,
            "run_id": int,
            "label": str,  # step-<N>: the checkpoint's variant name in a sweep
            "step": int,
            "epoch": float,
            "train_loss": float,  # mean over the steps since the previous log
            "eval_loss": float,  # NULL when the run had no eval split
            "path": str,  # the adapter folder
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("run_id", "finetune_runs", "id")],
    )
    db["finetune_checkpoints"].create_index(["run_id", "step"], unique=True)


def add_checkpoints(store: Store, run_id: int, records: Sequence[dict[str, Any]], *, output_dir: str) -> int:
    """Record a run's kept checkpoints (paths relative to ``output_dir``); ones already stored are kept."""
    now = utc_now()
    rows = [
        {
            "run_id": run_id,
            "label": record["label"],
            "step": int(record["step"]),
            "epoch": record.get("epoch"),
            "train_loss": record.get("train_loss"),
            "eval_loss": record.get("eval_loss"),
            "path": str(Path(output_dir) / record["path"]),
            "created_at": now,
        }
        for record in records
    ]
    with store.db.conn:
        before = store.db["finetune_checkpoints"].count
        store.db["finetune_checkpoints"].insert_all(rows, ignore=True)
        return store.db["finetune_checkpoints"].count - before


def list_checkpoints(store: Store, run_id: int) -> list[dict[str, Any]]:
    """A run's checkpoints by step."""
    return list(store.db["finetune_checkpoints"].rows_where("run_id = ?", [run_id], order_by="step"))
