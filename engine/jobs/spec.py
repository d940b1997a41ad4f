"""The launch spec: everything a launcher needs to queue one job, checked before anything is written.

Specs are built from data the caller has already read and checked (the fine-tune's raw TOML and
adapter folder, the sweep's configuration and planned rows): this package never reads a sweep or
fine-tune config itself. :mod:`engine.job_kinds` turns those configs into specs.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.files import slug
from engine.jobs.settings import ClusterSettings, check_path, reject_control
from engine.jobs.torchrun import DistributedLaunch, default_torchrun
from engine.paths import data_dir

# Starts the CLI from this checkout even when the package is not installed: argv[1] is its root.
_BOOTSTRAP = "import sys; sys.path.insert(0, sys.argv.pop(1)); from cli import main; sys.exit(main())"


@dataclass(frozen=True)
class LaunchSpec:
    """Everything a launcher needs: what to run, where, and under which cluster settings."""

    name: str
    config_path: Path
    output_dir: str
    workdir: Path
    log_dir: Path
    argv: tuple[str, ...]  # the full command the job runs
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    finetune_config: dict[str, Any] = field(default_factory=dict)
    kind: str = "finetune"  # finetune | sweep
    job_dir: Path | None = None  # the job's own folder (scripts, logs, manifest, results files)
    array: str | None = None  # Slurm --array, e.g. "0-2": one task per sweep shard
    shards: int | None = None
    dependency: str | None = None  # Slurm job id that must end COMPLETED first (afterok)
    manifest: dict[str, Any] = field(default_factory=dict)  # what the job reads from job.json
    # A fine-tune over several processes: torchrun starts ``argv`` once per rank (engine.jobs.torchrun)
    distributed: DistributedLaunch | None = None

    def record(self) -> dict[str, Any]:
        """What the store keeps about the launch (no environment, so no secrets)."""
        record = {
            "cluster": asdict(self.cluster),
            "argv": list(self.argv),
            "workdir": str(self.workdir),
        }
        if self.kind == "sweep":
            record["sweep"] = self.manifest.get("sweep", {})
            record["planned_per_shard"] = self.manifest.get("planned_per_shard", [])
        else:
            record["finetune"] = self.finetune_config
            if self.manifest.get("overrides"):
                record["overrides"] = self.manifest["overrides"]
        if self.distributed is not None:
            record["distributed"] = self.distributed.record()
        return record


def default_command() -> tuple[str, ...]:
    """How the job starts ft-hallu: this venv's ``ft-hallu`` script, else this interpreter + checkout."""
    script = Path(sys.executable).with_name("ft-hallu")
    if script.exists():
        return (str(script),)
    root = Path(__file__).resolve().parents[2]  # engine/jobs/spec.py -> the checkout
    return (sys.executable, "-c", _BOOTSTRAP, str(root))


def job_slug(name: str) -> str:
    """A job name as a folder and file name."""
    return slug(name, fallback="job", max_length=40)


def stamp() -> str:
    """A time stamp that also tells two launches in one second apart."""
    return time.strftime("%Y%m%d-%H%M%S") + f"-{time.monotonic_ns() % 1_000_000:06d}"


def check_job_name(job_name: str) -> None:
    if not job_name.strip():
        raise UserError("job name: must not be empty")
    reject_control("job name", job_name)


def job_places(
    cluster: ClusterSettings, job_name: str, log_dir: str | Path | None, workdir: str | Path | None
) -> tuple[Path, Path, Path]:
    """(working directory, log folder, this job's own folder inside it), each checked for the script."""
    run_dir = Path(workdir).resolve() if workdir else Path.cwd()
    check_path("working directory", str(run_dir))
    logs = Path(log_dir or cluster.log_dir or data_dir() / "jobs").expanduser().resolve()
    check_path("log_dir", str(logs))
    return run_dir, logs, logs / f"{job_slug(job_name)}-{stamp()}"


def finetune_spec(
    config_path: Path,
    raw_config: dict[str, Any],
    output_dir: str | Path,
    cluster: ClusterSettings | None = None,
    *,
    name: str | None = None,
    log_dir: str | Path | None = None,
    workdir: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    distributed: DistributedLaunch | None = None,
) -> LaunchSpec:
    """A fine-tune job of the (already checked) config file ``config_path``.

    ``raw_config`` is the file's TOML as read (kept with the job) and ``output_dir`` the adapter
    folder it writes; ``overrides`` are settings given on the command line (the job reads them from
    its manifest). With ``distributed``, torchrun starts the job once per process (its ``torchrun``
    left empty is filled from the cluster settings). The job is given no store: it leaves its run
    record in its job folder.
    """
    cluster = cluster or ClusterSettings()
    cluster.validate()
    run_name = raw_config.get("finetune", raw_config).get("name")
    job_name = (
        name
        if name is not None
        else f"ft-hallu-{run_name if isinstance(run_name, str) else config_path.stem}"
    )
    check_job_name(job_name)
    check_path("fine-tune config path", str(config_path))
    run_dir, logs, job_dir = job_places(cluster, job_name, log_dir, workdir)
    prefix = cluster.command or default_command()
    output = Path(output_dir).expanduser()
    if not output.is_absolute():
        output = run_dir / output
    if distributed is not None and not distributed.torchrun:
        distributed = dataclasses.replace(distributed, torchrun=cluster.torchrun or default_torchrun(cluster.command))
    manifest: dict[str, Any] = {
        "kind": "finetune",
        "name": job_name,
        "config_path": str(config_path),
        "output_dir": str(output),
    }
    if overrides:
        manifest["overrides"] = dict(overrides)
    if distributed is not None:
        manifest["distributed"] = distributed.record()
    return LaunchSpec(
        name=job_name,
        config_path=config_path,
        output_dir=str(output),
        workdir=run_dir,
        log_dir=logs,
        argv=(*prefix, "job-run", "finetune", "--config", str(config_path), "--job-dir", str(job_dir)),
        cluster=cluster,
        finetune_config=raw_config,
        kind="finetune",
        job_dir=job_dir,
        manifest=manifest,
        distributed=distributed,
    )


def sweep_spec(
    config_path: Path,
    sweep: dict[str, Any],
    planned_per_shard: list[int],
    cluster: ClusterSettings | None = None,
    *,
    dependency: str | None = None,
    name: str | None = None,
    log_dir: str | Path | None = None,
    workdir: str | Path | None = None,
) -> LaunchSpec:
    """A sweep job: one Slurm array task per entry of ``planned_per_shard`` (rows each shard plans).

    ``sweep`` is the sweep configuration as a dict (the job rebuilds it from its manifest);
    ``dependency`` is a Slurm job id that must complete first.
    """
    cluster = cluster or ClusterSettings()
    cluster.validate()
    shards = len(planned_per_shard)
    job_name = name if name is not None else f"ft-hallu-sweep-{sweep.get('name')}"
    check_job_name(job_name)
    run_dir, logs, job_dir = job_places(cluster, job_name, log_dir, workdir)
    prefix = cluster.command or default_command()
    manifest = {
        "kind": "sweep",
        "name": job_name,
        "config_path": str(config_path),
        "sweep": sweep,
        "shards": shards,
        # The job plans again on the node (an adapter written meanwhile may change the eval split).
        "planned_per_shard": list(planned_per_shard),
    }
    return LaunchSpec(
        name=job_name,
        config_path=config_path,
        output_dir=str(job_dir / "results"),
        workdir=run_dir,
        log_dir=logs,
        argv=(*prefix, "job-run", "sweep", "--job-dir", str(job_dir)),
        cluster=cluster,
        kind="sweep",
        job_dir=job_dir,
        array=f"0-{shards - 1}",
        shards=shards,
        dependency=dependency,
        manifest=manifest,
    )
