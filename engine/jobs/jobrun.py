"""What a launched job keeps in its own folder on the node: manifest, audit records, run record.

A job never opens a SQLite store. A sweep shard appends its rows to a results file in the job's
own folder (:mod:`engine.jobs.results_file`); a fine-tune leaves its adapter, the
``ft-hallu-run.json`` next to it and a ``finetune-result.json`` in the job folder. The login node
reads those files into its store (:mod:`engine.jobs.ingest`), so the store has one writer host and
never sits behind a network filesystem's locks. What a fine-tune or a sweep shard runs inside the
job is :mod:`engine.job_kinds` (``ft-hallu job-run``).

Every job keeps its own record of the files it opened for writing and of every SQLite database it
connected to (:class:`FileAudit`, built on Python's audit hooks), in ``<job folder>/audit/``.

A fine-tune over several processes (:mod:`engine.jobs.torchrun`) also leaves ``ranks/``: each rank
but rank 0 its log, every rank its exit status and host, a rank that raised its one-line error;
:func:`rank_failures` reads them to name the rank that failed first.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.files import write_atomic

MANIFEST = "job.json"
MANIFEST_FORMAT = "ft-hallu-job/1"
FINETUNE_RESULT = "finetune-result.json"
AUDIT_DIR = "audit"
RANKS_DIR = "ranks"

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


# ------------------------------------------------------------------ which attempt of which task


def attempt_id() -> str:
    """This attempt's name: the Slurm job id of the task, else ``local-<pid>``."""
    return os.environ.get("SLURM_JOB_ID") or f"local-{os.getpid()}"


def array_task() -> int | None:
    value = os.environ.get("SLURM_ARRAY_TASK_ID")
    return int(value) if value and value.isdigit() else None


# ------------------------------------------------------------------ a fine-tune's run record


def write_finetune_record(job_dir: Path, record: dict[str, Any]) -> None:
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


def utc_now() -> str:
    """Now, as the run record writes it (the node has no store to ask)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


# ------------------------------------------------------------------ ranks of a fine-tune over several processes


@dataclass(frozen=True)
class RankFailure:
    """A rank that ended with a non-zero status (from ``ranks/rank-<N>.exit`` and ``.error``)."""

    rank: int
    exit_code: int
    host: str
    error: str  # the rank's own one-line error; "" when it wrote none (killed, or failed outside Python)
    log: str  # where its output is
    ended: float  # when its exit status was written (the file's time)


def rank_log_path(job_dir: str | Path, rank: int) -> Path:
    return Path(job_dir) / RANKS_DIR / f"rank-{int(rank)}.log"


def write_rank_error(job_dir: str | Path, rank: int, message: str) -> None:
    """A rank's one-line reason for failing, next to the exit status its wrapper writes."""
    folder = Path(job_dir) / RANKS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / f"rank-{int(rank)}.error", message.strip().splitlines()[0][:500] + "\n")


def rank_failures(job_dir: str | Path) -> list[RankFailure]:
    """Every rank that failed, the first to fail first (torchrun then stops the others)."""
    folder = Path(job_dir) / RANKS_DIR
    failures = []
    for path in folder.glob("rank-*.exit") if folder.is_dir() else []:
        rank_text = path.stem.removeprefix("rank-")
        try:
            code_text, _, host = path.read_text().strip().partition(" ")
            ended = path.stat().st_mtime
        except OSError:
            continue
        if not rank_text.isdigit() or not code_text.isdigit() or int(code_text) == 0:
            continue
        rank = int(rank_text)
        try:
            error = path.with_suffix(".error").read_text().strip()
        except OSError:
            error = ""
        log = "the job log" if rank == 0 else str(rank_log_path(job_dir, rank))
        failures.append(RankFailure(rank, int(code_text), host.strip(), error, log, ended))
    return sorted(failures, key=lambda failure: (failure.ended, failure.rank))


def failure_line(failures: list[RankFailure]) -> str:
    """One line naming the rank that failed first (and how many others did)."""
    first = failures[0]
    where = f" on {first.host}" if first.host else ""
    line = f"rank {first.rank} failed first (exit code {first.exit_code}{where})"
    if first.error:
        line += f": {first.error}"
    line += f"; its log: {first.log}"
    others = len(failures) - 1
    return line + (f"; {others} other rank(s) failed after it" if others else "")
