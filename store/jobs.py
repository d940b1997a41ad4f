"""Launched jobs (fine-tunes and sweeps; Slurm or local): one row per launch, refreshed as the job runs."""

from __future__ import annotations

from typing import Any

from sqlite_utils import Migrations

from store.db import Store, decode_json_columns, to_json, utc_now

MIGRATIONS = Migrations("ft_hallu.jobs")

# Columns an update may touch; everything else is fixed at submit time. ``tasks`` and ``ingest``
# are dicts stored as JSON.
_UPDATABLE = frozenset(
    {
        "state",
        "exit_code",
        "detail",
        "started_at",
        "finished_at",
        "log_path",
        "tasks",
        "ingest",
        "ingested_at",
    }
)
_JSON_COLUMNS = ("config", "tasks", "ingest")


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


@MIGRATIONS(name="002_sweep_jobs")
def _m002(db) -> None:
    # Sweeps as job arrays, chained jobs and results that come back as files.
    table = db["jobs"]
    table.add_column("kind", str)  # finetune | sweep (NULL on rows from before: fine-tunes)
    table.add_column("job_dir", str)  # the job's own folder: manifest, script, logs, results files
    table.add_column("array", str)  # Slurm --array spec such as "0-2", or one task "1"; NULL: no array
    table.add_column("shards", int)  # how many slices the sweep's rows are cut into
    table.add_column("parent_id", int)  # the job this one re-submits shards of
    table.add_column("depends_on", str)  # Slurm job id this one waits for (afterok)
    table.add_column("tasks_json", str)  # per array task: state, exit code
    table.add_column("ingested_at", str)  # when its results files were last read into this store
    table.add_column("ingest_json", str)  # what the last ingest found and added


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
    kind: str = "finetune",
    job_dir: str | None = None,
    array: str | None = None,
    shards: int | None = None,
    parent_id: int | None = None,
    depends_on: str | None = None,
    started_at: str | None = None,  # set when the job is running as soon as it is submitted (local)
) -> int:
    now = utc_now()
    table = store.db["jobs"]
    table.insert(
        {
            "kind": kind,
            "job_dir": job_dir,
            "array": array,
            "shards": shards,
            "parent_id": parent_id,
            "depends_on": depends_on,
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
            "started_at": started_at,
            "updated_at": now,
        }
    )
    return int(table.last_pk)


def update_job(store: Store, row_id: int, **values: Any) -> None:
    unknown = set(values) - _UPDATABLE
    if unknown:
        raise ValueError(f"jobs: cannot update {sorted(unknown)}")
    for name in ("tasks", "ingest"):
        if name in values:
            values[f"{name}_json"] = to_json(values.pop(name))
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


def children(store: Store, row_id: int) -> list[dict[str, Any]]:
    """Jobs that re-submitted shards of job ``row_id``, oldest first."""
    return [_decode(row) for row in store.db["jobs"].rows_where("parent_id = ?", [row_id], order_by="id")]


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    decoded = decode_json_columns(row)
    for name in _JSON_COLUMNS:  # a column an older row lacks still reads as {}
        decoded.setdefault(name, {})
    decoded["kind"] = decoded.get("kind") or "finetune"
    return decoded
