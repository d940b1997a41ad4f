"""Jobs: fine-tunes and sweeps launched through Slurm or as a detached local process, and followed.

The modules, bottom up (each imports only modules listed before it; a ``layers`` contract in
pyproject.toml checks the order):

- ``settings``: :class:`ClusterSettings` (the cluster TOML) and the environment a job is handed;
- ``torchrun``: :class:`DistributedLaunch`, the torchrun / srun commands of a fine-tune over
  several processes and the wrapper that gives each rank its log and exit status;
- ``spec``: :class:`LaunchSpec`, built from checked data, never from a sweep or fine-tune config;
- ``model``: :class:`Job`, its states, :class:`JobStatus`, :class:`Submission`, the
  :class:`Launcher` protocol;
- ``scripts``: the sbatch script and the local wrapper;
- ``slurm`` and ``local``: the two launchers;
- ``results_file``, ``shards`` and ``jobrun``: what a job leaves in its folder on the node;
- ``ingest``: reading those files into the login node's store;
- ``lifecycle``: launch, list, poll, settle, re-submit, cancel, keeping the ``jobs`` table current.

Every job gets a folder of its own under the log folder (manifest, script, logs, results). A
fine-tune job runs ``ft-hallu job-run finetune``; a sweep runs as one Slurm job array whose task K
runs ``ft-hallu job-run sweep`` on shard K. Neither is given the login node's store: results come
back as files in the job folder and are read in by :func:`settle_jobs` (or :func:`ingest`).
Listing (:func:`list_jobs`) only reads the store and asks the launcher. Scripts hold no secrets:
every value in them comes from config paths and the cluster settings, and the environment handed
to ``sbatch`` (or to the local process) has API keys, tokens and passwords removed.

What a fine-tune and a sweep are as jobs (their specs from config files, and what they run on the
node) is :mod:`engine.job_kinds`, which sits above this package and above the steps.
"""

from engine.jobs.ingest import IngestResult, SweepIngest, ingest_job
from engine.jobs.jobrun import FileAudit, array_task, read_audits, read_manifest, write_manifest
from engine.jobs.lifecycle import (
    cancel,
    follow,
    get_job,
    get_launcher,
    ingest,
    latest_rows,
    launch,
    list_jobs,
    poll,
    progress,
    refresh,
    resolve_job,
    resubmit,
    settle_jobs,
    tail,
    wait,
)
from engine.jobs.local import LocalLauncher
from engine.jobs.model import (
    ACTIVE_STATES,
    FINAL_STATES,
    UNKNOWN,
    Job,
    JobStatus,
    Launcher,
    Submission,
    combine_task_states,
    tail_file,
)
from engine.jobs.results_file import ShardProgress, SweepJobProgress, job_progress, read_job_results
from engine.jobs.scripts import render_local_script, render_sbatch_script
from engine.jobs.settings import DEFAULT_KEEP_ENV, ClusterSettings, job_environment, load_cluster_settings
from engine.jobs.slurm import SlurmLauncher
from engine.jobs.spec import LaunchSpec, default_command, finetune_spec, sweep_spec
from engine.jobs.torchrun import DistributedLaunch

__all__ = [
    "ACTIVE_STATES",
    "DEFAULT_KEEP_ENV",
    "FINAL_STATES",
    "UNKNOWN",
    "ClusterSettings",
    "DistributedLaunch",
    "FileAudit",
    "IngestResult",
    "Job",
    "JobStatus",
    "LaunchSpec",
    "Launcher",
    "LocalLauncher",
    "ShardProgress",
    "SlurmLauncher",
    "Submission",
    "SweepIngest",
    "SweepJobProgress",
    "array_task",
    "cancel",
    "combine_task_states",
    "default_command",
    "follow",
    "finetune_spec",
    "get_job",
    "get_launcher",
    "ingest",
    "ingest_job",
    "job_environment",
    "job_progress",
    "latest_rows",
    "launch",
    "list_jobs",
    "load_cluster_settings",
    "poll",
    "progress",
    "read_audits",
    "read_job_results",
    "read_manifest",
    "refresh",
    "render_local_script",
    "render_sbatch_script",
    "resolve_job",
    "resubmit",
    "settle_jobs",
    "sweep_spec",
    "tail",
    "tail_file",
    "wait",
    "write_manifest",
]
