"""The Workspace's jobs: launching fine-tunes and sweeps (engine.job_kinds) and following, settling,
ingesting and cancelling them (engine.jobs). Mixed into engine.workspace.Workspace, the one door."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from engine import finetune as finetune_engine
from engine import job_kinds, job_report
from engine import jobs as job_engine
from engine import verifier as engine_verifier
from engine.configfile import write_launched_config
from engine.job_report import JobReport
from engine.jobs import ClusterSettings, IngestResult, Job, SweepJobProgress
from engine.sweep import SweepConfig


class JobsMixin:
    """Launching and following jobs: methods of the Workspace (engine/workspace.py)."""

    # ------------------------------------------------------------ jobs (engine.jobs, engine.job_kinds)

    def launch(
        self,
        config_path: str | Path,
        cluster: ClusterSettings | None,
        launcher: str,
        *,
        name: str | None = None,
        log_dir: str | Path | None = None,
        workdir: str | Path | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> Job:
        """Check a fine-tune config and settings, submit it and record the job (no store goes with it).

        ``overrides`` are fine-tune settings given on the command line (distributed, nodes, ...).
        """
        chosen = job_engine.get_launcher(launcher)
        with self.handle() as store:
            return job_kinds.launch_finetune(
                store, config_path, cluster, launcher=chosen, name=name, log_dir=log_dir, workdir=workdir,
                overrides=overrides,
            )  # fmt: skip

    def launch_finetune(
        self, config: finetune_engine.FinetuneConfig, cluster: ClusterSettings | None, launcher: str
    ) -> Job:
        """Write the config as ``<data>/configs/<name>.toml`` and launch it."""
        return self.launch(write_launched_config("finetune", config), cluster, launcher)

    def launch_sweep(
        self, config: SweepConfig, cluster: ClusterSettings | None, launcher: str, *, shards: int = 1
    ) -> Job:
        """Write the config as ``<data>/configs/sweep-<name>.toml`` and launch it."""
        path = write_launched_config("sweep", config)
        return self.launch_sweep_file(path, cluster, launcher, shards=shards)

    def launch_sweep_file(
        self,
        config_path: str | Path,
        cluster: ClusterSettings | None,
        launcher: str,
        *,
        shards: int = 1,
        after: str | None = None,
        name: str | None = None,
        log_dir: str | Path | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> Job:
        """Submit a sweep TOML as a job (``shards`` > 1: a job array; ``after``: wait for that job)."""
        chosen = job_engine.get_launcher(launcher)
        with self.handle() as store:
            return job_kinds.launch_sweep(
                store, config_path, cluster, launcher=chosen, shards=shards, after=after, name=name,
                log_dir=log_dir, overrides=overrides,
            )  # fmt: skip

    def resubmit(self, job: Job, task: int) -> Job:
        """Queue one shard of a sweep job again."""
        with self.handle() as store:
            return job_engine.resubmit(store, job, task)

    def jobs(self, *, refresh: bool = True) -> list[Job]:
        """Every job, newest first; with ``refresh`` the active ones are asked for their state first.
        Only reads: no results file, no ingest, no scoring (``settle_jobs()`` does those)."""
        with self.handle() as store:
            return job_engine.list_jobs(store, refresh_active=refresh)

    def settle_jobs(self, job_ids: Sequence[int] | None = None) -> list[Job]:
        """As ``jobs()``, and finished jobs' results files read into the store (which may score a sweep)."""
        with self.handle() as store:
            settled = job_engine.settle_jobs(store, job_ids)
            engine_verifier.verify_job_sweeps(store)  # a sweep config's verifier, now its rows are in
            return settled

    def job(self, ref: str | int) -> Job:
        """A job by store id or ``launcher:scheduler-id``."""
        with self.handle() as store:
            return job_engine.resolve_job(store, str(ref))

    def refresh_job(self, job: Job) -> Job:
        """The job's state from its launcher; a job seen ending here has its results read in."""
        with self.handle() as store:
            refreshed = job_engine.refresh(store, job)
            if refreshed.finished:
                engine_verifier.verify_job_sweeps(store)
            return refreshed

    def follow_job(self, job: Job, *, poll_seconds: float = 1.0) -> Iterator[Job]:
        """The job each time it is polled, until it finishes (the last one yielded is final)."""
        return job_engine.follow(self.refresh_job, job, poll_seconds=poll_seconds)

    @staticmethod
    def job_log(job: Job, lines: int = 50, *, task: int | None = None) -> str:
        """The last ``lines`` lines of the job's output (of one array task, or of each)."""
        return job_engine.tail(job, lines, task=task)

    @staticmethod
    def job_report(job: Job, lines: int = 40) -> JobReport:
        """The job read for a person: progress, final losses or rows, a detail line that says what
        finished, where its output is and how long it took (or why it failed), and the log's last
        ``lines`` lines without progress bars. Reads the job's files only; writes nothing."""
        return job_report.report(job, lines=lines)

    @staticmethod
    def job_progress(job: Job) -> SweepJobProgress | None:
        """A sweep job's progress read from its results files (None for other jobs)."""
        return job_engine.progress(job)

    @staticmethod
    def job_latest_rows(job: Job, limit: int = 8) -> list[dict[str, Any]]:
        """The last rows a sweep job wrote (variant, cell, prompt, sample, text), read from its files."""
        return job_engine.latest_rows(job, limit)

    def ingest_job(self, job: Job) -> IngestResult:
        """Read what the job's folder holds that the store lacks (sweep rows, the fine-tune record)."""
        with self.handle() as store:
            result = job_engine.ingest(store, job)
            engine_verifier.verify_job_sweeps(store)
            return result

    def cancel_job(self, job: Job, *, task: int | None = None) -> Job:
        with self.handle() as store:
            return job_engine.cancel(store, job, task=task)
