"""``ft-hallu job {launch,list,logs,cancel,resubmit,ingest}`` and ``job-run``: fine-tunes and sweeps as jobs.

``job launch [finetune] --config FT.toml`` submits a fine-tune, ``job launch sweep --config S.toml``
a sweep (``--shards N`` makes it a job array, ``--after JOB`` chains it behind a fine-tune) and
``job resubmit JOB --task K`` queues one shard again. ``job list`` shows every job and reads what
finished ones left in their folders into the store; ``job ingest JOB`` does that for one job, also
while it runs. ``job-run`` is what the job script runs on the node; it never opens a store.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from cli.common import NAME, Checked, db_path_from
from engine import job_kinds
from engine.errors import UserError
from engine.paths import data_dir
from engine.sweep import SweepConfig, SweepProgress
from engine.workspace import ClusterSettings, Job, Workspace, load_cluster_settings

DEFAULT_CLUSTER_FILE = "cluster.toml"

JOB_HELP = "job number from `ft-hallu job list`, or slurm:ID / local:PID"
TASK = {"min": 0}  # array task numbers start at 0


def _job_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cluster", help="cluster settings TOML (see configs/cluster.example.toml)")
    parser.add_argument("--local", action="store_true", help="run on this machine instead of Slurm")
    parser.add_argument("--name", action=Checked, rules=NAME, help="job name (default: ft-hallu-<config name>)")
    parser.add_argument("--log-dir", help="folder for the job folders (default: from settings)")


def _distributed_options(parser: argparse.ArgumentParser) -> None:
    """Fine-tune settings that say how many processes train (override the config's; docs/LAUNCH.md).

    No defaults (SUPPRESS): given before or after `finetune`, an option is not reset by the other parser.
    """
    unset = argparse.SUPPRESS
    parser.add_argument(
        "--distributed", default=unset, help="none | ddp | fsdp | deepspeed: one process per GPU, started by torchrun"
    )
    parser.add_argument(
        "--processes-per-node", type=int, default=unset,
        help="processes (GPUs) per node (default: the cluster's gpus)",
    )  # fmt: skip
    parser.add_argument("--nodes", type=int, default=unset, help="nodes (more than 1 needs Slurm)")


def _finetune_overrides(args: argparse.Namespace) -> dict[str, object]:
    names = ("distributed", "processes_per_node", "nodes")
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser(
        "job",
        help="launch fine-tunes and sweeps on Slurm or locally, and follow them",
        description="Jobs run on Slurm (default) or as a detached local process (--local); they "
        "write their results into their job folder, which `job list` reads into the store once they end.",
    )
    actions = group.add_subparsers(dest="job_action", metavar="ACTION", required=True)
    _register_launch(actions)

    jobs = actions.add_parser(
        "list", help="list launched jobs with their state, reading in what finished ones left"
    )
    jobs.add_argument(
        "--no-refresh", action="store_true", help="show stored states without asking Slurm or ingesting"
    )
    jobs.set_defaults(func=_jobs)

    logs = actions.add_parser("logs", help="show the end of a job's log")
    logs.add_argument("job", metavar="JOB", help=JOB_HELP)
    logs.add_argument(
        "-n", "--lines", action=Checked, kind=int, rules={"min": 1}, default=50, help="lines to show (default 50)"
    )
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing until the job finishes")
    logs.add_argument("--task", action=Checked, kind=int, rules=TASK, help="for a sweep array: this task's log only")
    logs.set_defaults(func=_logs)

    cancel = actions.add_parser("cancel", help="cancel a queued or running job")
    cancel.add_argument("job", metavar="JOB", help=JOB_HELP)
    cancel.add_argument("--task", action=Checked, kind=int, rules=TASK, help="for a sweep array: cancel only this task")
    cancel.set_defaults(func=_cancel)

    again = actions.add_parser(
        "resubmit", help="queue one shard of a sweep job again (finishes what is left)"
    )
    again.add_argument("job", metavar="JOB", help=JOB_HELP)
    again.add_argument(
        "--task", action=Checked, kind=int, rules=TASK, required=True, help="the shard (array task) number"
    )
    again.set_defaults(func=_resubmit)

    ingest = actions.add_parser(
        "ingest",
        help="read a launched job's results files into the store (idempotent)",
        description="Sweep jobs write their rows to files in their job folder and fine-tune jobs their run "
        "record; this reads them into the store. `job list` does it by itself once a job ends; a "
        "running sweep gives the rows finished so far. A second ingest adds nothing.",
    )
    ingest.add_argument("job", metavar="JOB", help=JOB_HELP)
    ingest.set_defaults(func=_ingest)

    run = subparsers.add_parser(
        "job-run",
        help="(run by job scripts on the node) a fine-tune or sweep shard that writes files, not the store",
    )
    what = run.add_subparsers(dest="job_kind", metavar="KIND", required=True)
    run_ft = what.add_parser("finetune", help="fine-tune; the run record goes to the job folder")
    run_ft.add_argument("--config", required=True)
    run_ft.add_argument("--job-dir", required=True)
    run_ft.set_defaults(func=_job_run_finetune)
    run_sweep = what.add_parser("sweep", help="one shard (SLURM_ARRAY_TASK_ID or --task), else every shard")
    run_sweep.add_argument("--job-dir", required=True)
    run_sweep.add_argument("--task", action=Checked, kind=int, rules=TASK)
    run_sweep.set_defaults(func=_job_run_sweep)


def _register_launch(actions: argparse._SubParsersAction) -> None:
    launch = actions.add_parser(
        "launch",
        help="submit a fine-tune or a sweep to Slurm (default) or start it locally (--local)",
        description="`job launch --config FT.toml` (or `job launch finetune --config FT.toml`) submits a "
        "fine-tune; `job launch sweep --config S.toml [--shards N] [--after JOB]` a sweep. Cluster "
        "settings come from --cluster, else <data folder>/cluster.toml.",
    )
    launch.add_argument("--config", help="fine-tune TOML (see configs/finetune.tiny.toml)")
    _job_options(launch)
    _distributed_options(launch)
    launch.set_defaults(func=_launch)
    kinds = launch.add_subparsers(dest="launch_kind", metavar="KIND")

    finetune = kinds.add_parser("finetune", help="a fine-tune job (the default)")
    finetune.add_argument("--config", required=True, help="fine-tune TOML")
    _job_options(finetune)
    _distributed_options(finetune)
    finetune.set_defaults(func=_launch)

    sweep = kinds.add_parser(
        "sweep",
        help="a sweep job; --shards N makes it a Slurm job array",
        description="Each array task generates a fixed slice of the sweep's rows (whole grid cells) into "
        "a results file in the job folder; the login node ingests them into its store.",
    )
    sweep.add_argument("--config", required=True, help="sweep TOML (see configs/sweep.example.toml)")
    sweep.add_argument(
        "--shards", action=Checked, kind=int, rules={"min": 1}, default=1,
        help="array tasks to split the rows over (default 1)",
    )
    sweep.add_argument("--after", metavar="JOB", help="start only once this job (a fine-tune) COMPLETED")
    sweep.add_argument(
        "--samples", action=Checked, field=(SweepConfig, "samples_per_cell"), help="override samples_per_cell"
    )
    sweep.add_argument(
        "--batch-size", action=Checked, field=(SweepConfig, "batch_size"), help="override rows per generate call"
    )
    _job_options(sweep)
    sweep.set_defaults(func=_launch_sweep)


def _cluster_settings(path: str | None) -> ClusterSettings:
    if path:
        return load_cluster_settings(path)
    default = data_dir() / DEFAULT_CLUSTER_FILE
    if default.exists():
        return load_cluster_settings(default)
    return ClusterSettings()


def _launch(args: argparse.Namespace) -> int:
    if not args.config:
        raise UserError("launch: --config FT.toml is required (or use `job launch sweep --config S.toml`)")
    cluster = _cluster_settings(args.cluster)
    # The job gets no --db: it writes its run record into its job folder; `job list` ingests it here.
    with Workspace.open(db_path_from(args)) as workspace:
        job = workspace.launch(
            args.config, cluster, "local" if args.local else "slurm", name=args.name, log_dir=args.log_dir,
            overrides=_finetune_overrides(args),
        )  # fmt: skip
    _print_launched(job)
    return 0


def _print_launched(job: Job) -> None:
    print(f"job {job.id}: {job.ref} {job.state}  name={job.name}")
    if job.array:
        print(f"  tasks:  {job.array} ({job.shards} shards)")
    if job.depends_on:
        print(f"  after:  slurm:{job.depends_on} completes")
    print(f"  folder: {job.job_dir}")
    print(f"  log:    {job.log_path}")
    print(f"  script: {job.script_path}")
    print(f"  output: {job.output_dir}")
    distributed = job.config.get("distributed")
    if distributed:
        print(
            f"  ranks:  {distributed['world_size']} ({distributed['strategy']}, {distributed['nodes']} node(s) x "
            f"{distributed['processes_per_node']}); ranks other than 0 log to {job.job_dir}/ranks/"
        )
    print(f"follow with: ft-hallu job logs {job.id} --follow")


def _launch_sweep(args: argparse.Namespace) -> int:
    overrides = {}
    if args.samples is not None:
        overrides["samples_per_cell"] = args.samples
    if args.batch_size is not None:
        overrides["batch_size"] = args.batch_size
    cluster = _cluster_settings(args.cluster)
    with Workspace.open(db_path_from(args)) as workspace:
        job = workspace.launch_sweep_file(
            args.config, cluster, "local" if args.local else "slurm",
            shards=args.shards, after=args.after, name=args.name, log_dir=args.log_dir, overrides=overrides,
        )  # fmt: skip
    _print_launched(job)
    print(
        f"results come back with: ft-hallu job ingest {job.id}  (automatic once `ft-hallu job list` sees it end)"
    )
    return 0


def _resubmit(args: argparse.Namespace) -> int:
    with Workspace.open(db_path_from(args)) as workspace:
        job = workspace.resubmit(workspace.job(args.job), args.task)
    print(f"job {job.id}: {job.ref} {job.state}  shard {args.task} of job {job.parent_id}")
    print(f"  log:    {job.log_path}")
    return 0


def _jobs(args: argparse.Namespace) -> int:
    with Workspace.open(db_path_from(args)) as workspace:
        # Listing here also settles: jobs that ended bring their results files in.
        jobs = workspace.jobs(refresh=False) if args.no_refresh else workspace.settle_jobs()
    if not jobs:
        print("no jobs yet (start one with `ft-hallu job launch --config FT.toml`)")
        return 0
    header = f"{'ID':>4}  {'JOB':<16} {'STATE':<11} {'EXIT':>4}  {'SUBMITTED':<19}  NAME / OUTPUT"
    print(header)
    for job in jobs:
        code = "" if job.exit_code is None else str(job.exit_code)
        print(
            f"{job.id:>4}  {job.ref:<16} {job.state:<11} {code:>4}  {job.submitted_at[:19]:<19}  "
            f"{job.kind:<8} {job.name}  ->  {job.output_dir}"
        )
        for line in _job_notes(job):
            print(f"{'':>6}{line}")
    return 0


def _job_notes(job: Job) -> list[str]:
    """Progress of a sweep (from its results files), what it waits for, what the last ingest added."""
    notes = []
    done = Workspace.job_progress(job)
    if done is not None and (not job.finished or not job.ingested_at):
        notes.append(f"progress: {done.line()}")
    if job.parent_id:
        notes.append(f"re-submits shard {job.array} of job {job.parent_id}")
    if job.depends_on and job.state == "PENDING":
        notes.append(f"waits for slurm:{job.depends_on}")
    failed = job.finished and job.state != "COMPLETED"
    if job.detail and (not job.finished or failed or job.detail.startswith("ingest:")):
        notes.append(job.detail)
    if job.ingested_at:
        notes.append(_ingest_line(job.ingest))
    return notes


def _ingest_line(summary: dict) -> str:
    """What the store holds from this job (not what the last ingest added, which may be 0)."""
    if summary.get("kind") == "finetune":
        run = summary.get("finetune_run_id")
        return f"ingested: fine-tune run {run}" if run else "ingested: no run record"
    sweeps = [
        f"sweep {s['sweep_id']} {s['stored']}/{s['expected']} rows {s['status']}"
        for s in summary.get("sweeps", [])
    ]
    return "ingested: " + (", ".join(sweeps) or "no results files yet")


def _logs(args: argparse.Namespace) -> int:
    with Workspace.open(db_path_from(args)) as workspace:
        job = workspace.job(args.job)
        text = workspace.job_log(job, args.lines, task=args.task)
        if text:
            print(text, flush=True)
        if args.follow:
            job = _follow(workspace, job)
            print(
                f"[job {job.id} {job.ref}: {job.state}"
                + ("" if job.exit_code is None else f", exit code {job.exit_code}")
                + "]"
            )
    return 0


def _follow(workspace: Workspace, job: Job, poll_seconds: float = 1.0) -> Job:
    """Print the log as it grows until the job reaches a final state."""
    path = Path(job.log_path)
    position = path.stat().st_size if path.exists() else 0
    current = job
    # The log is read after every poll; the last job yielded is the final state.
    for current in workspace.follow_job(job, poll_seconds=poll_seconds):  # noqa: B007
        if path.exists():
            with open(path, "rb") as handle:
                handle.seek(position)
                chunk = handle.read()
            position += len(chunk)
            if chunk:
                sys.stdout.write(chunk.decode("utf-8", errors="replace"))
                sys.stdout.flush()
    return current


def _cancel(args: argparse.Namespace) -> int:
    with Workspace.open(db_path_from(args)) as workspace:
        job = workspace.cancel_job(workspace.job(args.job), task=args.task)
    if args.task is not None:
        print(f"job {job.id}: {job.ref} task {args.task} {job.tasks.get(str(args.task), {}).get('state')}")
    else:
        print(f"job {job.id}: {job.ref} {job.state}")
    return 0


def _ingest(args: argparse.Namespace) -> int:
    with Workspace.open(db_path_from(args)) as workspace:
        result = workspace.ingest_job(workspace.job(args.job))
    print(result.line())
    return 0


# ------------------------------------------------------------------ inside the job (no store)


def _job_run_finetune(args: argparse.Namespace) -> int:
    record = job_kinds.run_finetune_task(args.config, args.job_dir)
    print(f"fine-tune done; run record in {record}" if record else "fine-tune rank done", flush=True)
    return 0


def _job_run_sweep(args: argparse.Namespace) -> int:
    stop = {"signal": None}

    def on_term(signum, _frame) -> None:  # scancel: finish the batch in hand, keep it, exit
        stop["signal"] = signum

    signal.signal(signal.SIGTERM, on_term)
    tasks = job_kinds.tasks_to_run(args.job_dir, args.task)

    def show(progress: SweepProgress) -> None:
        print(f"shard rows {progress.done}/{progress.total}", flush=True)

    complete = job_kinds.run_sweep_tasks(
        args.job_dir, tasks, should_stop=lambda: stop["signal"] is not None, progress=show,
        say=lambda message: print(message, flush=True),
    )  # fmt: skip
    return 0 if complete else 143
