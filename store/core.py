"""Core tables: datasets, fine-tune runs, sweeps and their generations."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Migrations

from store.db import Store, decode_json_columns, to_json, utc_now, where_equal

MIGRATIONS = Migrations("ft_hallu.core")


@MIGRATIONS(name="001_core_tables")
def _m001(db) -> None:
    db["datasets"].create(
        {
            "id": int,
            "name": str,
            "path": str,
            "kind": str,  # sample | generated | masked | imported
            "rows": int,
            "unique_rows": int,
            "sha256": str,
            "source_json": str,
            "created_at": str,
        },
        pk="id",
    )
    db["finetune_runs"].create(
        {
            "id": int,
            "name": str,
            "mode": str,  # lora | qlora | full
            "base_model": str,
            "dataset_path": str,
            "output_dir": str,
            "status": str,  # running | completed | failed
            "train_loss": float,
            "eval_loss_before": float,
            "eval_loss_after": float,
            "train_seconds": float,
            "config_json": str,
            "result_json": str,
            "error": str,
            "started_at": str,
            "finished_at": str,
        },
        pk="id",
    )
    db["sweeps"].create(
        {
            "id": int,
            "name": str,
            "source": str,  # engine | import-log | adhoc
            "base_model": str,
            "adapter_dir": str,
            "config_hash": str,
            "status": str,  # running | completed | interrupted
            "expected_rows": int,
            "config_json": str,
            "created_at": str,
            "finished_at": str,
        },
        pk="id",
    )
    db["sweeps"].create_index(["config_hash"], unique=True)
    db["generations"].create(
        {
            "id": int,
            "sweep_id": int,
            "variant": str,  # base | finetuned
            "temperature": float,
            "top_p": float,
            "top_k": int,
            "prompt_id": str,
            "prompt": str,
            "reference": str,  # reference answer for held-out questions, else NULL
            "sample_index": int,
            "seed": int,
            "text": str,
            "new_tokens": int,
            "seconds": float,
            "created_at": str,
            "extra_json": str,
        },
        pk="id",
        foreign_keys=[("sweep_id", "sweeps", "id")],
    )
    db["generations"].create_index(
        ["sweep_id", "variant", "temperature", "top_p", "top_k", "prompt_id", "sample_index"],
        unique=True,
    )


@MIGRATIONS(name="002_run_owner_and_error")
def _m002(db) -> None:
    # The host and pid running a sweep or fine-tune: a 'running' row whose process is gone reads as
    # interrupted. Sweeps also keep why they failed, as fine-tune runs already do.
    for table in ("sweeps", "finetune_runs"):
        db[table].add_column("host", str)
        db[table].add_column("pid", int)
    db["sweeps"].add_column("error", str)


# ---------------------------------------------------------------- datasets


def add_dataset(
    store: Store,
    *,
    name: str,
    path: str,
    kind: str,
    rows: int,
    unique_rows: int,
    sha256: str,
    source: dict[str, Any] | None = None,
) -> int:
    table = store.db["datasets"]
    table.insert(
        {
            "name": name,
            "path": path,
            "kind": kind,
            "rows": rows,
            "unique_rows": unique_rows,
            "sha256": sha256,
            "source_json": to_json(source or {}),
            "created_at": utc_now(),
        }
    )
    return int(table.last_pk)


def list_datasets(store: Store) -> list[dict[str, Any]]:
    return [decode_json_columns(row) for row in store.db["datasets"].rows_where(order_by="id desc")]


# ---------------------------------------------------------------- fine-tune runs


def start_finetune_run(
    store: Store,
    *,
    name: str,
    mode: str,
    base_model: str,
    dataset_path: str,
    output_dir: str,
    config: dict[str, Any],
) -> int:
    table = store.db["finetune_runs"]
    table.insert(
        {
            "name": name,
            "mode": mode,
            "base_model": base_model,
            "dataset_path": dataset_path,
            "output_dir": output_dir,
            "status": "running",
            **run_owner(),
            "config_json": to_json(config),
            "started_at": utc_now(),
        }
    )
    return int(table.last_pk)


def finish_finetune_run(
    store: Store,
    run_id: int,
    *,
    status: str,
    train_loss: float | None = None,
    eval_loss_before: float | None = None,
    eval_loss_after: float | None = None,
    train_seconds: float | None = None,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    store.db["finetune_runs"].update(
        run_id,
        {
            "status": status,
            "train_loss": train_loss,
            "eval_loss_before": eval_loss_before,
            "eval_loss_after": eval_loss_after,
            "train_seconds": train_seconds,
            "result_json": to_json(result or {}),
            "error": error,
            "finished_at": utc_now(),
        },
    )


def get_finetune_run(store: Store, run_id: int) -> dict[str, Any]:
    return with_live_status(decode_json_columns(store.db["finetune_runs"].get(run_id)))


def list_finetune_runs(store: Store) -> list[dict[str, Any]]:
    rows = store.db["finetune_runs"].rows_where(order_by="id desc")
    return [with_live_status(decode_json_columns(row)) for row in rows]


# ---------------------------------------------------------------- sweeps


@dataclass(frozen=True)
class GenerationKey:
    """Identifies one generation inside a sweep: a grid cell, a prompt and a sample index."""

    variant: str
    temperature: float
    top_p: float
    top_k: int
    prompt_id: str
    sample_index: int


def get_or_create_sweep(
    store: Store,
    *,
    name: str,
    source: str,
    base_model: str,
    adapter_dir: str | None,
    config_hash: str,
    config: dict[str, Any],
    expected_rows: int,
) -> int:
    """Return the sweep with this config hash, creating it if new (this is what makes resume work)."""
    rows = list(store.db["sweeps"].rows_where("config_hash = ?", [config_hash]))
    if rows:
        sweep_id = int(rows[0]["id"])
        store.db["sweeps"].update(sweep_id, {"status": "running", "error": None, **run_owner()})
        return sweep_id
    table = store.db["sweeps"]
    table.insert(
        {
            "name": name,
            "source": source,
            "base_model": base_model,
            "adapter_dir": adapter_dir,
            "config_hash": config_hash,
            "status": "running",
            **run_owner(),
            "expected_rows": expected_rows,
            "config_json": to_json(config),
            "created_at": utc_now(),
        }
    )
    return int(table.last_pk)


def set_sweep_status(store: Store, sweep_id: int, status: str, *, error: str | None = None) -> None:
    """Record a sweep's state; ``error`` says why it failed or stopped (cleared on completion)."""
    values: dict[str, Any] = {"status": status, "error": error}
    if status == "running":
        values.update(run_owner())
    if status == "completed":
        values["finished_at"] = utc_now()
    store.db["sweeps"].update(sweep_id, values)


def run_owner() -> dict[str, Any]:
    """This process, as recorded on the rows it runs."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _process_gone(row: dict[str, Any]) -> bool:
    """True for a row whose recorded process was on this host and no longer exists."""
    pid, host = row.get("pid"), row.get("host")
    if not pid or host != socket.gethostname():
        return False  # another machine's process (a Slurm node) cannot be checked from here
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, ValueError):
        return False
    return False


def with_live_status(row: dict[str, Any]) -> dict[str, Any]:
    """A sweep or fine-tune row as it really stands: 'running' whose process died is 'interrupted'."""
    if row.get("status") == "running" and _process_gone(row):
        row["status"] = "interrupted"
        row["error"] = row.get("error") or f"process {row['pid']} on {row['host']} is gone"
    return row


def get_sweep(store: Store, sweep_id: int) -> dict[str, Any]:
    """The sweep row (config decoded), or {} when there is no such sweep."""
    rows = list(store.db["sweeps"].rows_where("id = ?", [sweep_id]))
    return with_live_status(decode_json_columns(rows[0])) if rows else {}


def find_sweep(store: Store, sweep_id: int) -> dict[str, Any] | None:
    """The sweep row (config decoded), or None when there is no such sweep; never raises."""
    return get_sweep(store, sweep_id) or None


def update_sweep_config(store: Store, sweep_id: int, *, config: dict[str, Any], expected_rows: int) -> None:
    """Replace a sweep's config and expected row count (an import merging a second variant's log)."""
    store.db["sweeps"].update(sweep_id, {"config_json": to_json(config), "expected_rows": expected_rows})


def list_sweeps(store: Store) -> list[dict[str, Any]]:
    """Every sweep with its number of stored generations, newest first."""
    sql = """
        select sweeps.*, count(generations.id) as generation_count
        from sweeps left join generations on generations.sweep_id = sweeps.id
        group by sweeps.id order by sweeps.id desc
    """
    return [with_live_status(decode_json_columns(row)) for row in store.db.query(sql)]


def done_keys(store: Store, sweep_id: int) -> set[GenerationKey]:
    rows = store.db.query(
        "select variant, temperature, top_p, top_k, prompt_id, sample_index "
        "from generations where sweep_id = ?",
        [sweep_id],
    )
    return {
        GenerationKey(
            r["variant"],
            float(r["temperature"]),
            float(r["top_p"]),
            int(r["top_k"]),
            r["prompt_id"],
            int(r["sample_index"]),
        )
        for r in rows
    }


def add_generations(store: Store, sweep_id: int, rows: Sequence[dict[str, Any]]) -> int:
    """Append finished generations in one transaction; rows already stored are ignored."""
    now = utc_now()
    records = []
    for row in rows:
        record = {
            "sweep_id": sweep_id,
            "variant": row["variant"],
            "temperature": float(row["temperature"]),
            "top_p": float(row["top_p"]),
            "top_k": int(row["top_k"]),
            "prompt_id": row["prompt_id"],
            "prompt": row["prompt"],
            "reference": row.get("reference"),
            "sample_index": int(row["sample_index"]),
            "seed": row.get("seed"),
            "text": row["text"],
            "new_tokens": row.get("new_tokens"),
            "seconds": row.get("seconds"),
            "created_at": now,
            "extra_json": to_json(row.get("extra") or {}),
        }
        records.append(record)
    with store.db.conn:
        before = store.db["generations"].count
        store.db["generations"].insert_all(records, ignore=True)
        after = store.db["generations"].count
    return after - before


def iter_generations(
    store: Store,
    sweep_id: int,
    *,
    variant: str | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    top_k: int | None = None,
    prompt_id: str | None = None,
    ids: Iterable[int] | None = None,
) -> list[dict[str, Any]]:
    where, params = where_equal(
        {"sweep_id": sweep_id},
        {
            "variant": variant,
            "temperature": temperature,
            "top_p": top_p,
            "top_k": top_k,
            "prompt_id": prompt_id,
        },
    )
    if ids is not None:
        id_list = list(ids)
        where += f" and id in ({','.join('?' * len(id_list))})" if id_list else " and 0"
        params.extend(id_list)
    rows = store.db["generations"].rows_where(
        where,
        params,
        order_by="variant, temperature, top_p, top_k, prompt_id, sample_index",
    )
    return [decode_json_columns(row) for row in rows]


def count_generations(store: Store, sweep_id: int) -> int:
    return store.db["generations"].count_where("sweep_id = ?", [sweep_id])
