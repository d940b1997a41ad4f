"""A job's life in the store: launch, follow, settle, re-submit, cancel.

These functions keep the ``jobs`` table up to date, so front ends can list jobs and reattach after
the operator's SSH session drops. Two ways of looking at jobs differ on purpose:

- :func:`list_jobs` and :func:`poll` only read the store and ask the launcher for a state. They
  never read a results file, never ingest and never score, so listing is cheap and has no side
  effect beyond the new state.
- :func:`settle_jobs` (and :func:`refresh`, for a job it sees end) also reads what finished jobs
  left in their folders into the store (:mod:`engine.jobs.ingest`), which may score a sweep.
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from engine.errors import UserError
from engine.jobs.ingest import IngestResult, ingest_job
from engine.jobs.jobrun import write_manifest
from engine.jobs.local import LocalLauncher
from engine.jobs.model import FINAL_STATES, UNKNOWN, Job, Launcher, tail_file
from engine.jobs.results_file import SweepJobProgress, job_progress, read_job_results
from engine.jobs.slurm import SlurmLauncher
from engine.jobs.spec import LaunchSpec
from store import jobs as job_store
from store.db import Store, utc_now


def get_launcher(name: str, env: Mapping[str, str] | None = None) -> Launcher:
    if name == "slurm":
        return SlurmLauncher(env)
    if name == "local":
        return LocalLauncher(env)
    raise UserError(f"launcher {name!r}: unknown (use slurm or local)")


# ------------------------------------------------------------------ submitting


def launch(store: Store, spec: LaunchSpec, launcher: Launcher) -> Job:
    """Submit ``spec`` and record it; returns the stored job.

    The job folder and its manifest are written first (the job reads them); a rejected submission
    removes the folder again, so a failed launch leaves neither a row nor files.
    """

    if spec.dependency and launcher.name != "slurm":
        raise UserError("--after: only Slurm jobs can wait for another job; drop --local or --after")
    created = spec.job_dir is not None and not spec.job_dir.exists()
    if spec.job_dir is not None:
        write_manifest(spec.job_dir, spec.manifest)
    try:
        submission = launcher.submit(spec)
    except BaseException:
        if created and spec.job_dir is not None:
            shutil.rmtree(spec.job_dir, ignore_errors=True)
        raise
    row_id = job_store.add_job(
        store,
        launcher=launcher.name,
        job_id=submission.job_id,
        name=spec.name,
        config_path=str(spec.config_path),
        config=spec.record(),
        state=submission.state,
        output_dir=spec.output_dir,
        log_path=str(submission.log_path),
        script_path=str(submission.script_path),
        kind=spec.kind,
        job_dir=str(spec.job_dir) if spec.job_dir else None,
        # A local sweep runs its shards one after another in one process: no array there.
        array=spec.array if launcher.name == "slurm" else None,
        shards=spec.shards,
        depends_on=spec.dependency,
        started_at=utc_now() if submission.state == "RUNNING" else None,
    )
    return get_job(store, row_id)


def resubmit(store: Store, job: Job, task: int, launcher: Launcher | None = None) -> Job:
    """Queue one shard of a sweep job again; rows its earlier attempts finished are not redone.

    Refused while that shard is still queued or running, so two attempts never run at once.
    """
    if job.kind != "sweep":
        raise UserError(f"job {job.id}: only sweep jobs have shards to re-submit (this is a {job.kind})")
    parent = get_job(store, job.parent_id) if job.parent_id else job
    shards = parent.shards or 1
    if not 0 <= task < shards:
        raise UserError(f"--task {task}: job {parent.id} has shards 0-{shards - 1}")
    for attempt in [parent, *(Job.from_row(r) for r in job_store.children(store, parent.id))]:
        attempt = refresh(store, attempt)
        runs_task = task in attempt.task_ids() or (not attempt.array and attempt.launcher == "local")
        if runs_task and not attempt.finished:
            state = attempt.tasks.get(str(task), {}).get("state", attempt.state)
            if state not in FINAL_STATES:
                raise UserError(
                    f"job {attempt.id} ({attempt.ref}) still runs shard {task} ({state}); cancel it first"
                )
    launcher = launcher or get_launcher(parent.launcher)
    submission = launcher.resubmit(parent, task)
    row_id = job_store.add_job(
        store,
        launcher=launcher.name,
        job_id=submission.job_id,
        name=parent.name,
        config_path=parent.config_path,
        config=parent.config,
        state=submission.state,
        output_dir=parent.output_dir,
        log_path=str(submission.log_path),
        script_path=str(submission.script_path),
        kind="sweep",
        job_dir=parent.job_dir,
        array=str(task) if launcher.name == "slurm" else None,
        shards=shards,
        parent_id=parent.id,
        started_at=utc_now() if submission.state == "RUNNING" else None,
    )
    return get_job(store, row_id)


# ------------------------------------------------------------------ finding and listing


def get_job(store: Store, row_id: int) -> Job:
    row = job_store.get_job(store, row_id)
    if not row:
        raise UserError(f"job {row_id}: no such job in {store.path}")
    return Job.from_row(row)


def resolve_job(store: Store, ref: str) -> Job:
    """A job by store id (``3``) or by launcher and scheduler id (``slurm:1234``, ``local:5678``)."""
    text = ref.strip()
    if ":" in text:
        launcher, _, job_id = text.partition(":")
        row = job_store.find_job(store, launcher, job_id)
        if not row:
            raise UserError(f"job {ref}: no {launcher} job {job_id} in {store.path}")
        return Job.from_row(row)
    if not text.isdigit():
        raise UserError(
            f"job {ref!r}: expected a job number from `ft-hallu job list`, or slurm:ID / local:PID"
        )
    return get_job(store, int(text))


def list_jobs(store: Store, *, refresh_active: bool = True) -> list[Job]:
    """Every job, newest first; active ones are asked for their state first (nothing is ingested)."""
    jobs = [Job.from_row(row) for row in job_store.list_jobs(store)]
    if not refresh_active:
        return jobs
    return [job if job.finished else _poll_or_note(store, job) for job in jobs]


def settle_jobs(store: Store, job_ids: Iterable[int] | None = None) -> list[Job]:
    """Every job (or those in ``job_ids``), newest first, each asked for its state, and what the
    finished ones left in their folders read into the store (which may score a sweep).

    A job another thread of this process is ingesting right now is returned as stored, not
    ingested twice: the caller sees it finished but not ingested yet and asks again later.
    """
    if job_ids is None:
        jobs = [Job.from_row(row) for row in job_store.list_jobs(store)]
    else:
        jobs = [get_job(store, job_id) for job_id in job_ids]
    settled = []
    for job in jobs:
        if not job.finished:
            job = _poll_or_note(store, job)
        if job.finished and job.job_dir and not job.ingested_at:  # ended now, or while nobody looked
            job = _auto_ingest(store, job)
        settled.append(job)
    return settled


def _poll_or_note(store: Store, job: Job) -> Job:
    try:
        return poll(store, job)
    except UserError as exc:  # e.g. squeue missing here: show what the store knows, and why
        job_store.update_job(store, job.id, detail=str(exc))
        return dataclasses.replace(job, detail=str(exc))


# ------------------------------------------------------------------ following


def poll(store: Store, job: Job, launcher: Launcher | None = None) -> Job:
    """Ask the launcher for the job's state and store it in one write; a finished job is left as
    it is. Reads no results file."""
    if job.finished:
        return job
    launcher = launcher or get_launcher(job.launcher)
    status = launcher.status(job)
    if status.state == UNKNOWN:  # Slurm unreachable or record gone: keep what we knew
        values: dict[str, Any] = {"detail": status.detail}
    else:
        values = {"state": status.state, "exit_code": status.exit_code, "detail": status.detail}
        if status.tasks is not None:
            values["tasks"] = status.tasks
        if status.state not in ("PENDING", "CANCELLED") and not job.started_at:
            values["started_at"] = utc_now()
        if status.state in FINAL_STATES and not job.finished_at:
            values["finished_at"] = utc_now()
    job_store.update_job(store, job.id, **values)
    return dataclasses.replace(job, **values)


def refresh(store: Store, job: Job, launcher: Launcher | None = None) -> Job:
    """:func:`poll`, and a job seen ending here has its results read in (a finished job is left as
    it is)."""
    if job.finished:
        return job
    job = poll(store, job, launcher)
    if job.finished and job.job_dir:
        job = _auto_ingest(store, job)
    return job


def wait(
    store: Store, job: Job, *, timeout: float, poll_seconds: float = 0.5, launcher: Launcher | None = None
) -> Job:
    """Refresh until the job finishes or ``timeout`` seconds pass; returns the last stored state."""
    deadline = time.monotonic() + timeout
    current = refresh(store, job, launcher)
    while not current.finished and time.monotonic() < deadline:
        time.sleep(poll_seconds)
        current = refresh(store, current, launcher)
    return current


def follow(refresh: Callable[[Job], Job], job: Job, *, poll_seconds: float = 1.0) -> Iterator[Job]:
    """The job after each ``refresh(job)``, until it finishes (the last one yielded is final)."""
    current = refresh(job)
    yield current
    while not current.finished:
        time.sleep(poll_seconds)
        current = refresh(current)
        yield current


def tail(job: Job, lines: int = 50, launcher: Launcher | None = None, task: int | None = None) -> str:
    """The end of the job's log; for a job array, of task ``task`` (default: each task in turn)."""
    if "%a" not in job.log_path:
        return (launcher or get_launcher(job.launcher)).tail(job, lines)
    tasks = [task] if task is not None else job.task_ids()
    parts = []
    for number in tasks:
        text = tail_file(job.log_path.replace("%a", str(number)), lines)
        parts.append(text if task is not None else f"== task {number} ==\n{text}".rstrip())
    return "\n".join(parts)


def progress(job: Job) -> SweepJobProgress | None:
    """A sweep job's rows done / planned and rate, read from its results files (never written)."""
    if job.kind != "sweep" or not job.job_dir:
        return None
    return job_progress(job.job_dir, job.config.get("planned_per_shard") or [])


def latest_rows(job: Job, limit: int = 8) -> list[dict[str, Any]]:
    """The last rows a sweep job wrote (variant, cell, prompt, sample, text), read from its files."""
    if job.kind != "sweep" or not job.job_dir:
        return []
    rows = [row for parsed in read_job_results(job.job_dir) for row in parsed.rows]
    rows.sort(key=lambda row: float(row.get("t") or 0))
    return rows[-limit:]


# ------------------------------------------------------------------ ingesting


def ingest(store: Store, job: Job) -> IngestResult:
    """Refresh ``job``, then read its results files into the store; calling it again adds nothing.

    A running sweep gives the rows its shards have finished so far.
    """

    try:
        job = refresh(store, job)  # a job seen ending here is ingested on the way
    except UserError:
        pass  # no Slurm on this machine: the files are still there to read
    return ingest_job(store, get_job(store, job.id))


# Jobs a thread of this process is ingesting now: another caller skips them instead of scoring twice.
_INGESTING: set[int] = set()
_INGESTING_LOCK = threading.Lock()


def _auto_ingest(store: Store, job: Job) -> Job:
    """Read a finished job's results files into the store; a problem is kept as the job's detail."""
    with _INGESTING_LOCK:
        if job.id in _INGESTING:
            return job
        _INGESTING.add(job.id)
    try:
        ingest_job(store, job)
    except UserError as exc:
        job_store.update_job(store, job.id, detail=f"ingest: {exc}")
    finally:
        with _INGESTING_LOCK:
            _INGESTING.discard(job.id)
    return get_job(store, job.id)


# ------------------------------------------------------------------ cancelling


def cancel(store: Store, job: Job, launcher: Launcher | None = None, task: int | None = None) -> Job:
    """Cancel a queued or running job (or one task of a job array); the store shows CANCELLED once
    the scheduler agrees."""
    launcher = launcher or get_launcher(job.launcher)
    if job.finished:
        raise UserError(f"job {job.id} ({job.ref}) already finished: {job.state}")
    if task is not None:
        if not isinstance(launcher, SlurmLauncher) or task not in job.task_ids():
            raise UserError(
                f"--task {task}: job {job.id} has no such array task (tasks: {job.array or 'none'})"
            )
        launcher.cancel_task(job, task)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            job = refresh(store, job, launcher)
            if job.finished or job.tasks.get(str(task), {}).get("state") in FINAL_STATES:
                break
            time.sleep(0.2)
        return job
    launcher.cancel(job)
    if isinstance(launcher, LocalLauncher):
        # The launcher's files say how it ended, also where the caller's copy was stale (a job that
        # exited by itself keeps its end); a poll in another thread reads the same. Rows it wrote
        # before the kill are read in.
        ended = refresh(store, job, launcher)
        if ended.state != "CANCELLED":
            raise UserError(f"job {job.id} ({job.ref}) already finished: {ended.state}")
        return ended
    # scancel returns at once; the job passes through COMPLETING before Slurm reports CANCELLED.
    return wait(store, job, timeout=5.0, poll_seconds=0.2, launcher=launcher)
