"""Core tables: datasets, fine-tune runs, sweeps and their generations."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Migrations

from store.db import Store, decode_json_columns, to_json, utc_now, where_equal, write_transaction
from store.liveness import process_gone, run_owner, settle, with_live_status

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


@MIGRATIONS(name="003_run_owner_start")
def _m003(db) -> None:
    # The owner's process start time: a pid reused by a later process is not the run's process.
    for table in ("sweeps", "finetune_runs"):
        db[table].add_column("pid_started", float)


@MIGRATIONS(name="004_sweep_cell_leases")
def _m004(db) -> None:
    # One row per grid cell a process is sampling: two processes running the same sweep never
    # sample the same cell. A lease whose process is gone, or that expired, is free again.
    db["sweep_leases"].create(
        {
            "sweep_id": int,
            "cell": str,  # prompt_id, temperature, top_p, top_k as JSON
            "host": str,
            "pid": int,
            "pid_started": float,
            "expires_at": float,  # seconds since the epoch
        },
        pk=("sweep_id", "cell"),
        foreign_keys=[("sweep_id", "sweeps", "id")],
    )


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
    settle(store, ("finetune_runs",))  # an earlier run killed with -9 reads 'interrupted' in the file too
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
    """Return the sweep with this config hash, creating it if new (this is what makes resume work).

    One write transaction: two processes starting the same sweep get the same row.
    """
    with write_transaction(store.db):
        rows = list(store.db["sweeps"].rows_where("config_hash = ?", [config_hash]))
        if rows:
            sweep_id = int(rows[0]["id"])
            store.db["sweeps"].update(sweep_id, {"status": "running", "error": None, **run_owner()})
            return sweep_id
        return _insert_sweep(
            store, name=name, source=source, base_model=base_model, adapter_dir=adapter_dir,
            config_hash=config_hash, config=config, expected_rows=expected_rows,
        )  # fmt: skip


def _insert_sweep(
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
    # Rows this connection inserted (ignored duplicates do not count), inside one write transaction:
    # another process's rows landing meanwhile are never counted as ours.
    with write_transaction(store.db):
        before = store.db.conn.total_changes
        store.db["generations"].insert_all(records, ignore=True)
        return store.db.conn.total_changes - before


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


# ---------------------------------------------------------------- cell leases (two processes, one sweep)

# A lease outlives no process on this host (a gone pid frees it at once); the expiry only frees the
# cells of a process on another host that can no longer be asked. A CPU batch of 192 rows took 70 s.
LEASE_SECONDS = 3600.0


def cell_text(prompt_id: str, temperature: float, top_p: float, top_k: int) -> str:
    """A grid cell of one prompt as a lease key (every variant and sample of it go together)."""
    return json.dumps([prompt_id, float(temperature), float(top_p), int(top_k)])


def _lease_free(lease: dict[str, Any] | None, me: dict[str, Any], now: float) -> bool:
    if lease is None:
        return True
    if lease.get("host") == me["host"] and lease.get("pid") == me["pid"]:
        return True  # already ours
    return float(lease.get("expires_at") or 0) < now or process_gone(lease)


def claim_cells(store: Store, sweep_id: int, cells: Sequence[str], *, limit: int) -> list[str]:
    """Lease up to ``limit`` of ``cells`` (in their order) that no live process holds; returns them.

    One write transaction, so two processes never lease the same cell.
    """
    me = run_owner()
    now = time.time()
    mine: list[str] = []
    with write_transaction(store.db):
        held = {row["cell"]: row for row in store.db["sweep_leases"].rows_where("sweep_id = ?", [sweep_id])}
        for cell in cells:
            if len(mine) >= limit:
                break
            if _lease_free(held.get(cell), me, now):
                store.db["sweep_leases"].upsert(
                    {"sweep_id": sweep_id, "cell": cell, **me, "expires_at": now + LEASE_SECONDS},
                    pk=("sweep_id", "cell"),
                )
                mine.append(cell)
    return mine


def release_cells(store: Store, sweep_id: int, cells: Sequence[str]) -> None:
    """Give back this process's leases on ``cells`` (sampled and stored, or given up)."""
    me = run_owner()
    with write_transaction(store.db):
        for cell in cells:
            store.db.execute(
                "delete from sweep_leases where sweep_id = ? and cell = ? and host = ? and pid = ?",
                [sweep_id, cell, me["host"], me["pid"]],
            )


def cells_held_by_others(store: Store, sweep_id: int) -> list[dict[str, Any]]:
    """Live leases of other processes on this sweep (what a second runner waits for)."""
    me = run_owner()
    now = time.time()
    return [
        row
        for row in store.db["sweep_leases"].rows_where("sweep_id = ?", [sweep_id])
        if not _lease_free(row, me, now)
    ]


def prompt_texts(store: Store, sweep_id: int) -> dict[str, str]:
    """prompt id -> the prompt's text, for every prompt a sweep's generations answer."""
    sql = "select prompt_id, min(prompt) as prompt from generations where sweep_id = ? group by prompt_id order by prompt_id"
    return {str(row["prompt_id"]): str(row["prompt"] or "") for row in store.db.query(sql, [sweep_id])}
