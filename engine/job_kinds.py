"""What a fine-tune and a sweep are as jobs: their launch specs on the login node, their runs on the node.

:mod:`engine.jobs` knows how to queue, follow and ingest a job but reads no step's config. This
module is the adapter between it and the steps: it reads and checks a fine-tune or sweep TOML
(config, adapter folders, shard count, the plan), hands :mod:`engine.jobs` the data it needs, and
is what ``ft-hallu job-run`` calls inside the job. Neither run opens a SQLite store: a sweep shard
appends its rows to a results file in the job's folder, a fine-tune leaves its run record there.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine import jobs, parallel
from engine import sweep as sweeping
from engine.configfile import read_toml
from engine.errors import UserError
from engine.finetune import FinetuneConfig, is_adapter_dir, run_finetune
from engine.finetune import load_config as load_finetune_config
from engine.jobs import jobrun
from engine.jobs import shards as sharding
from engine.jobs.results_file import ResultsWriter, read_job_results, results_path, row_key
from engine.jobs.settings import check_path
from store.db import Store

# ------------------------------------------------------------------ on the login node


def build_spec(
    config_path: str | Path,
    cluster: jobs.ClusterSettings | None = None,
    *,
    name: str | None = None,
    log_dir: str | Path | None = None,
    workdir: str | Path | None = None,
    launcher: str = "slurm",
    overrides: dict[str, Any] | None = None,
) -> jobs.LaunchSpec:
    """Check the fine-tune config and settings on the login node, before anything is queued.

    ``overrides`` are settings from the command line (the job reads them from its manifest);
    ``launcher`` is where it will run ("slurm" or "local"), which decides what a distributed
    fine-tune may ask for. The job is given no store: it leaves its run record in its job folder
    (``finetune-result.json`` next to the ``ft-hallu-run.json`` in the adapter folder), and the
    login node ingests it.
    """
    cluster = cluster or jobs.ClusterSettings()
    cluster.validate()
    config = Path(config_path).expanduser().resolve()
    raw = read_toml(config)
    # A bad config raises UserError naming the field; so do settings that cannot run together.
    finetune = load_finetune_config(config, overrides)
    distributed = distributed_launch(finetune, cluster, launcher, source=str(config))
    return jobs.finetune_spec(
        config, raw, finetune.resolved_output_dir(), cluster, name=name, log_dir=log_dir, workdir=workdir,
        overrides=overrides, distributed=distributed,
    )  # fmt: skip


def distributed_launch(
    config: FinetuneConfig, cluster: jobs.ClusterSettings, launcher: str, *, source: str
) -> jobs.DistributedLaunch | None:
    """How many processes on how many nodes (None: one process, no torchrun).

    Processes per node default to the cluster's ``gpus`` under Slurm and to this machine's GPUs
    locally (1 without any). One process per GPU: more than there are GPUs is refused.
    """
    if config.distributed == "none":
        return None
    if config.nodes > 1 and launcher != "slurm":
        raise UserError(
            f"{source}: nodes = {config.nodes} needs Slurm (a local job runs on this machine only); "
            "launch without --local, or set nodes = 1"
        )
    if launcher == "slurm":
        gpus = cluster.gpus
        where = f"the cluster settings ask for gpus = {gpus} per node"
    else:
        gpus = _local_gpu_count()
        where = f"this machine has {gpus} GPU(s)"
    processes = config.processes_per_node or gpus or 1
    if gpus and processes > gpus:
        raise UserError(f"{source}: processes_per_node = {processes} but {where} (one process per GPU)")
    return jobs.DistributedLaunch(config.distributed, config.nodes, processes)


def _local_gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def launch_finetune(
    store: Store,
    config_path: str | Path,
    cluster: jobs.ClusterSettings | None = None,
    *,
    launcher: jobs.Launcher,
    name: str | None = None,
    log_dir: str | Path | None = None,
    workdir: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> jobs.Job:
    """Check a fine-tune config and the settings, submit it and record the job."""
    spec = build_spec(
        config_path, cluster, name=name, log_dir=log_dir, workdir=workdir, launcher=launcher.name,
        overrides=overrides,
    )  # fmt: skip
    return jobs.launch(store, spec, launcher)


def build_sweep_spec(
    config_path: str | Path,
    cluster: jobs.ClusterSettings | None = None,
    *,
    shards: int = 1,
    after: jobs.Job | None = None,
    name: str | None = None,
    log_dir: str | Path | None = None,
    workdir: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> jobs.LaunchSpec:
    """Check a sweep config for a launch: settings, shard count, adapters; nothing is written.

    An adapter folder that does not exist yet is accepted only when ``after`` is the fine-tune job
    that will write it.
    """
    cluster = cluster or jobs.ClusterSettings()
    cluster.validate()
    config_file = Path(config_path).expanduser().resolve()
    check_path("sweep config path", str(config_file))
    config = sweeping.load_sweep_config(config_file, overrides)
    sharding.check_shards(config, shards)
    if after is not None and after.finished and after.state != "COMPLETED":
        raise UserError(
            f"--after {after.id}: job {after.ref} ended {after.state}; the sweep would never start"
        )
    waits_for = Path(after.output_dir).resolve() if after is not None else None

    for variant, folder in config.adapter_dirs().items():
        field_name = "adapter" if variant == "finetuned" and not config.adapters else f"adapters.{variant}"
        check_path(f"{config_file}: {field_name}", folder)
        if Path(folder).exists():
            if not is_adapter_dir(folder):
                raise UserError(f"{config_file}: {field_name}: {folder} is not a LoRA adapter folder")
        elif waits_for is None or Path(folder).resolve() != waits_for:
            hint = f" (job {after.id} writes {waits_for})" if waits_for else " (or launch with --after JOB)"
            raise UserError(f"{config_file}: {field_name}: {folder} does not exist{hint}")
    planned = sweeping.plan_rows(config, sweeping.build_prompts(config))
    return jobs.sweep_spec(
        config_file,
        dataclasses.asdict(config),
        sharding.shard_sizes(planned, shards),
        cluster,
        dependency=after.job_id if after is not None and not after.finished else None,
        name=name,
        log_dir=log_dir,
        workdir=workdir,
    )


def launch_sweep(
    store: Store,
    config_path: str | Path,
    cluster: jobs.ClusterSettings | None = None,
    *,
    launcher: jobs.Launcher | None = None,
    shards: int = 1,
    after: str | jobs.Job | None = None,
    name: str | None = None,
    log_dir: str | Path | None = None,
    workdir: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> jobs.Job:
    """Validate and submit a sweep as one job array of ``shards`` tasks; ``after`` is a job to wait for.

    ``after`` is a :class:`~engine.jobs.Job` or a reference as :func:`engine.jobs.resolve_job`
    takes it ("3", "slurm:1234").
    """
    launcher = launcher or jobs.SlurmLauncher()
    waits_for = jobs.resolve_job(store, after) if isinstance(after, str) else after
    if waits_for is not None and waits_for.launcher != launcher.name:
        raise UserError(
            f"--after {waits_for.id}: a {waits_for.launcher} job; the sweep goes to {launcher.name}"
        )
    spec = build_sweep_spec(
        config_path, cluster, shards=shards, after=waits_for, name=name, log_dir=log_dir,
        workdir=workdir, overrides=overrides,
    )  # fmt: skip
    return jobs.launch(store, spec, launcher)


# ------------------------------------------------------------------ inside the job (no store)


def run_sweep_tasks(
    job_dir: str | Path,
    tasks: list[int],
    *,
    attempt: str | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[sweeping.SweepProgress], None] | None = None,
    say: Callable[[str], None] = lambda _message: None,
) -> bool:
    """Generate each shard in ``tasks`` into a new results file per shard; True when all are complete.

    The model is loaded once for all of them. Rows an earlier attempt of the same shard already
    wrote (same sweep identity) are skipped, so a re-submitted shard only finishes what a killed one
    left. ``should_stop`` is asked between batches (scancel sends SIGTERM first).
    """
    job_dir = Path(job_dir)
    attempt = attempt or jobrun.attempt_id()
    audit = jobrun.FileAudit(jobrun.audit_path(job_dir, attempt)).start()
    try:
        manifest = jobrun.read_manifest(job_dir)
        if manifest.get("kind") != "sweep":
            raise UserError(f"{job_dir}: not a sweep job (kind {manifest.get('kind')!r})")
        count = int(manifest["shards"])
        config = sweeping.sweep_config_from_dict(
            dict(manifest["sweep"]), where=str(job_dir / jobrun.MANIFEST)
        )
        prompts = sweeping.build_prompts(config)
        planned = sweeping.plan_rows(config, prompts)
        identity = sweeping.config_hash(config, prompts)
        loaded = None
        complete = True
        for task in tasks:
            if should_stop and should_stop():
                return False
            mine = sharding.shard_rows(planned, task, count)
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
                "config": sweeping.stored_config(config, prompts),
                "base_model": config.base_model,
                "adapter_dir": config.adapter or None,
                "expected_rows": len(planned),
                "shard": task,
                "shards": count,
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
                    loaded = sweeping.load_for_sweep(config)
                sweeping.generate_planned(
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


def _planned_key(row: sweeping.PlannedRow) -> tuple:
    return (row.variant, row.temperature, row.top_p, row.top_k, row.prompt.prompt_id, row.sample_index)


def run_finetune_task(
    config_path: str | Path, job_dir: str | Path, *, attempt: str | None = None
) -> Path | None:
    """Run the fine-tune without any store; its record goes to ``<job folder>/finetune-result.json``
    (returned; None on the ranks other than 0).

    Under torchrun every rank runs this: each keeps its own audit record, a rank that fails leaves
    its one-line error in ``ranks/``, and only rank 0 writes the run record.
    """

    job_dir = Path(job_dir)
    rank = parallel.current_rank()
    attempt = attempt or jobrun.attempt_id()
    if rank.launched:
        attempt = f"{attempt}-rank{rank.rank}"
    audit = jobrun.FileAudit(jobrun.audit_path(job_dir, attempt)).start()
    try:
        overrides = jobrun.read_manifest(job_dir).get("overrides") if (job_dir / jobrun.MANIFEST).exists() else None
        config = load_finetune_config(config_path, overrides or None)
        record: dict[str, Any] = {
            "status": "running",
            "name": config.name,
            "mode": config.mode,
            "base_model": config.base_model,
            "dataset": config.dataset,
            "output_dir": str(config.resolved_output_dir()),
            "config": dataclasses.asdict(config),
            "started_at": jobrun.utc_now(),
        }
        if rank.is_main:
            jobrun.write_finetune_record(job_dir, record)
        try:
            result = run_finetune(config, db_path=None)
        except BaseException as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if rank.launched:
                jobrun.write_rank_error(job_dir, rank.rank, message)
            if rank.is_main:
                jobrun.write_finetune_record(
                    job_dir, {**record, "status": "failed", "error": message, "finished_at": jobrun.utc_now()}
                )
            raise
        if not rank.is_main:
            return None
        jobrun.write_finetune_record(
            job_dir,
            {
                **record,
                "status": "completed",
                "result": dataclasses.asdict(result),
                "finished_at": jobrun.utc_now(),
            },
        )
        return job_dir / jobrun.FINETUNE_RESULT
    finally:
        audit.stop()


def tasks_to_run(job_dir: str | Path, task: int | None) -> list[int]:
    """The shards this process runs: ``task``, else this Slurm array task, else every shard in turn."""
    task = task if task is not None else jobrun.array_task()
    return [task] if task is not None else list(range(int(jobrun.read_manifest(job_dir)["shards"])))
