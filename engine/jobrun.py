"""What a launched job runs on its node: a fine-tune, or one shard of a sweep.

Neither opens a SQLite store. A sweep shard appends its rows to a results file in the job's own
folder (:mod:`engine.results_file`); a fine-tune leaves its adapter, the ``ft-hallu-run.json`` next
to it and a ``finetune-result.json`` in the job folder. The login node reads those files into its
store (:mod:`engine.ingest`), so the store has one writer host and never sits behind a network
filesystem's locks.

Every job keeps its own record of the files it opened for writing and of every SQLite database it
connected to (:class:`FileAudit`, built on Python's audit hooks), in ``<job folder>/audit/``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine import shards as sharding
from engine import sweep
from engine.errors import UserError
from engine.files import write_atomic
from engine.finetune import load_config, run_finetune
from engine.results_file import ResultsWriter, read_job_results, results_path, row_key

MANIFEST = "job.json"
MANIFEST_FORMAT = "ft-hallu-job/1"
FINETUNE_RESULT = "finetune-result.json"
AUDIT_DIR = "audit"

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


# ------------------------------------------------------------------ the job's record of its writes


class FileAudit:
    """Records every path this process opens for writing, renames to, or connects to as SQLite.

    Python's audit hooks see ``open``/``os.open``, ``os.rename``/``os.replace``, ``os.mkdir`` and
    ``sqlite3.connect``. Writes made inside native extensions (for example safetensors) are not
    Python events; the files they write land in the folders recorded here. Hooks cannot be removed,
    so :meth:`stop` only switches recording off.
    """

    _active: FileAudit | None = None
    _installed = False

    def __init__(self, record_path: Path) -> None:
        self.record_path = record_path
        self.written: set[str] = set()
        self.sqlite: set[str] = set()
        self._saving = False

    def start(self) -> FileAudit:
        if not FileAudit._installed:
            sys.addaudithook(FileAudit._hook)
            FileAudit._installed = True
        FileAudit._active = self
        self.save()
        return self

    def stop(self) -> None:
        self.save()
        if FileAudit._active is self:
            FileAudit._active = None

    @staticmethod
    def _hook(event: str, args: tuple[Any, ...]) -> None:
        audit = FileAudit._active
        if audit is None or audit._saving:
            return
        if event == "open" and len(args) >= 3:
            path, mode, flags = args[0], args[1], args[2]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & _WRITE_FLAGS
            )
            if writing and isinstance(path, (str, bytes, os.PathLike)):
                audit.written.add(_absolute(path))
        elif event in ("os.rename", "os.replace") and len(args) >= 2:
            audit.written.add(_absolute(args[1]))
        elif event == "os.mkdir" and args:
            audit.written.add(_absolute(args[0]))
        elif event == "sqlite3.connect" and args:
            audit.sqlite.add(_absolute(args[0]) if args[0] != ":memory:" else ":memory:")

    def save(self) -> None:
        self._saving = True
        try:
            record = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "argv": sys.argv,
                "written": sorted(self.written),
                "sqlite_connections": sorted(self.sqlite),
                "saved": time.time(),
            }
            self.record_path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.record_path, json.dumps(record, indent=1) + "\n")
        finally:
            self._saving = False


def _absolute(path: Any) -> str:
    text = os.fsdecode(path) if isinstance(path, (bytes, os.PathLike)) else str(path)
    return os.path.abspath(text)


def audit_path(job_dir: str | Path, attempt: str) -> Path:
    return Path(job_dir) / AUDIT_DIR / f"{attempt}.json"


def read_audits(job_dir: str | Path) -> list[dict[str, Any]]:
    """Every audit record the job's processes left (one per attempt)."""
    folder = Path(job_dir) / AUDIT_DIR
    if not folder.is_dir():
        return []
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


# ------------------------------------------------------------------ manifest


def read_manifest(job_dir: str | Path) -> dict[str, Any]:
    path = Path(job_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no job manifest (not an ft-hallu job folder?)") from None
    except ValueError as exc:
        raise UserError(f"{path}: not valid JSON: {exc}") from None
    if manifest.get("format") != MANIFEST_FORMAT:
        raise UserError(f"{path}: unknown job manifest format {manifest.get('format')!r}")
    return manifest


def write_manifest(job_dir: Path, manifest: dict[str, Any]) -> None:
    job_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(job_dir / MANIFEST, json.dumps({"format": MANIFEST_FORMAT, **manifest}, indent=1) + "\n")


def sweep_config_from_manifest(manifest: dict[str, Any], where: str) -> sweep.SweepConfig:
    return sweep.sweep_config_from_dict(dict(manifest["sweep"]), where=where)


# ------------------------------------------------------------------ a sweep shard


def attempt_id() -> str:
    """This attempt's name: the Slurm job id of the task, else ``local-<pid>``."""
    return os.environ.get("SLURM_JOB_ID") or f"local-{os.getpid()}"


def array_task() -> int | None:
    value = os.environ.get("SLURM_ARRAY_TASK_ID")
    return int(value) if value and value.isdigit() else None


def run_sweep_tasks(
    job_dir: str | Path,
    tasks: list[int],
    *,
    attempt: str | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[sweep.SweepProgress], None] | None = None,
    say: Callable[[str], None] = lambda _message: None,
) -> bool:
    """Generate each shard in ``tasks`` into a new results file per shard; True when all are complete.

    The model is loaded once for all of them. Rows an earlier attempt of the same shard already
    wrote (same sweep identity) are skipped, so a re-submitted shard only finishes what a killed one
    left. ``should_stop`` is asked between batches (scancel sends SIGTERM first).
    """
    job_dir = Path(job_dir)
    attempt = attempt or attempt_id()
    audit = FileAudit(audit_path(job_dir, attempt)).start()
    try:
        manifest = read_manifest(job_dir)
        if manifest.get("kind") != "sweep":
            raise UserError(f"{job_dir}: not a sweep job (kind {manifest.get('kind')!r})")
        shards = int(manifest["shards"])
        config = sweep_config_from_manifest(manifest, str(job_dir / MANIFEST))
        prompts = sweep.build_prompts(config)
        planned = sweep.plan_rows(config, prompts)
        identity = sweep.config_hash(config, prompts)
        loaded = None
        complete = True
        for task in tasks:
            if should_stop and should_stop():
                return False
            mine = sharding.shard_rows(planned, task, shards)
            done = {
                row_key(row)
                for earlier in read_job_results(job_dir, task)
                if earlier.header.get("config_hash") == identity
                for row in earlier.rows
            }
            todo = [r for r in mine if _planned_key(r) not in done]
            say(f"sweep shard {task}: {len(todo)} of {len(mine)} rows to generate")
            header = {
                "sweep_name": config.name,
                "config_hash": identity,
                "config": sweep.stored_config(config, prompts),
                "base_model": config.base_model,
                "adapter_dir": config.adapter or None,
                "expected_rows": len(planned),
                "shard": task,
                "shards": shards,
                "shard_rows": len(mine),
                "attempt": attempt,
                "host": socket.gethostname(),
            }
            writer = ResultsWriter(results_path(job_dir, task, attempt), header)

            def append(rows: list[dict[str, Any]], writer: ResultsWriter = writer) -> int:
                written = writer.append(rows)
                audit.save()
                return written

            try:
                if todo and loaded is None:
                    loaded = sweep.load_for_sweep(config)
                sweep.generate_planned(
                    config, prompts, todo, append, loaded=loaded, should_stop=should_stop, progress=progress,
                    already_done=len(mine) - len(todo), planned_total=len(mine),
                )  # fmt: skip
            except BaseException:
                writer.close("failed")
                raise
            finished = writer.rows >= len(todo)
            writer.close("completed" if finished else "stopped")
            say(f"sweep shard {task}: {'complete' if finished else 'stopped'} ({writer.rows} rows written)")
            complete = complete and finished
        return complete
    finally:
        audit.stop()


def _planned_key(row: sweep.PlannedRow) -> tuple:
    return (row.variant, row.temperature, row.top_p, row.top_k, row.prompt.prompt_id, row.sample_index)


# ------------------------------------------------------------------ a fine-tune


def run_finetune_task(config_path: str | Path, job_dir: str | Path, *, attempt: str | None = None) -> None:
    """Run the fine-tune without any store; its record goes to ``<job folder>/finetune-result.json``."""

    job_dir = Path(job_dir)
    audit = FileAudit(audit_path(job_dir, attempt or attempt_id())).start()
    try:
        config = load_config(config_path)
        record: dict[str, Any] = {
            "status": "running",
            "name": config.name,
            "mode": config.mode,
            "base_model": config.base_model,
            "dataset": config.dataset,
            "output_dir": str(config.resolved_output_dir()),
            "config": dataclasses.asdict(config),
            "started_at": _utc_now(),
        }
        _write_finetune_record(job_dir, record)
        try:
            result = run_finetune(config, db_path=None)
        except BaseException as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            _write_finetune_record(
                job_dir, {**record, "status": "failed", "error": message, "finished_at": _utc_now()}
            )
            raise
        _write_finetune_record(
            job_dir,
            {
                **record,
                "status": "completed",
                "result": dataclasses.asdict(result),
                "finished_at": _utc_now(),
            },
        )
    finally:
        audit.stop()


def _write_finetune_record(job_dir: Path, record: dict[str, Any]) -> None:
    job_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(job_dir / FINETUNE_RESULT, json.dumps(record, indent=1, default=str) + "\n")


def read_finetune_record(job_dir: str | Path) -> dict[str, Any]:
    path = Path(job_dir) / FINETUNE_RESULT
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise UserError(f"{path}: not valid JSON: {exc}") from None


def _utc_now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="milliseconds")
