"""Launched fine-tune jobs (Slurm or local): one row per launch, refreshed as the job runs."""

from __future__ import annotations

from typing import Any

from sqlite_utils import Migrations

from store.db import Store, from_json, to_json, utc_now

MIGRATIONS = Migrations("ft_hallu.jobs")

# Columns an update may touch; everything else is fixed at submit time.
_UPDATABLE = frozenset({"state", "exit_code", "detail", "started_at", "finished_at", "log_path"})


@MIGRATIONS(name="001_jobs")
def _m001(db) -> None:
    db["jobs"].create(
        {
            "id": int,
            "launcher": str,  # slurm | local
            "job_id": str,  # the scheduler's id: Slurm job id, or the local process id
            "name": str,
            "config_path": str,  # the fine-tune TOML the job runs
            "config_json": str,  # fine-tune config, cluster settings and command as launched
            "state": str,  # PENDING | RUNNING | COMPLETED | FAILED | CANCELLED | TIMEOUT | ...
            "exit_code": int,
            "detail": str,  # last scheduler message (reason, error text)
            "output_dir": str,
            "log_path": str,
            "script_path": str,
            "submitted_at": str,
            "started_at": str,
            "finished_at": str,
            "updated_at": str,
        },
        pk="id",
    )
    db["jobs"].create_index(["launcher", "job_id"])


def add_job(
    store: Store,
    *,
    launcher: str,
    job_id: str,
    name: str,
    config_path: str,
    config: dict[str, Any],
    state: str,
    output_dir: str,
    log_path: str,
    script_path: str,
) -> int:
    now = utc_now()
    table = store.db["jobs"]
    table.insert(
        {
            "launcher": launcher,
            "job_id": job_id,
            "name": name,
            "config_path": config_path,
            "config_json": to_json(config),
            "state": state,
            "output_dir": output_dir,
            "log_path": log_path,
            "script_path": script_path,
            "submitted_at": now,
            "updated_at": now,
        }
    )
    return int(table.last_pk)


def update_job(store: Store, row_id: int, **values: Any) -> None:
    unknown = set(values) - _UPDATABLE
    if unknown:
        raise ValueError(f"jobs: cannot update {sorted(unknown)}")
    store.db["jobs"].update(row_id, {**values, "updated_at": utc_now()})


def get_job(store: Store, row_id: int) -> dict[str, Any]:
    """The job row with this id, or {} when there is none."""
    rows = list(store.db["jobs"].rows_where("id = ?", [row_id]))
    return _decode(rows[0]) if rows else {}


def find_job(store: Store, launcher: str, job_id: str) -> dict[str, Any]:
    """The newest row for this scheduler id (ids restart when a cluster is rebuilt), or {}."""
    rows = list(
        store.db["jobs"].rows_where(
            "launcher = ? and job_id = ?", [launcher, job_id], order_by="id desc", limit=1
        )
    )
    return _decode(rows[0]) if rows else {}


def list_jobs(
    store: Store, *, states: list[str] | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """Jobs newest first, optionally only those in ``states``."""
    where = None
    params: list[Any] = []
    if states:
        where = f"state in ({','.join('?' * len(states))})"
        params = list(states)
    rows = store.db["jobs"].rows_where(where, params, order_by="id desc", limit=limit)
    return [_decode(row) for row in rows]


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    decoded = dict(row)
    decoded["config"] = from_json(decoded.pop("config_json"), {})
    return decoded
