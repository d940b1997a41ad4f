"""``ft-hallu launch``, ``jobs``, ``logs`` and ``cancel``: run fine-tunes through Slurm or locally."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from cli.common import db_path_from
from engine import launch as launching
from engine.errors import UserError
from engine.paths import data_dir
from store.db import open_db

DEFAULT_CLUSTER_FILE = "cluster.toml"


def register(subparsers: argparse._SubParsersAction) -> None:
    launch = subparsers.add_parser(
        "launch",
        help="submit a fine-tune to Slurm (default) or start it locally (--local)",
        description="Submit `ft-hallu finetune --config FT.toml` as a Slurm batch job, or run it as a "
        "detached local process. Cluster settings come from --cluster, else <data folder>/cluster.toml.",
    )
    launch.add_argument("--config", required=True, help="fine-tune TOML (see configs/finetune.tiny.toml)")
    launch.add_argument("--cluster", help="cluster settings TOML (see configs/cluster.example.toml)")
    launch.add_argument("--local", action="store_true", help="run on this machine instead of Slurm")
    launch.add_argument("--name", help="job name (default: ft-hallu-<config name>)")
    launch.add_argument("--log-dir", help="folder for the job script and log (default: from settings)")
    launch.set_defaults(func=_launch)

    jobs = subparsers.add_parser("jobs", help="list launched jobs with their current state")
    jobs.add_argument("--no-refresh", action="store_true", help="show stored states without asking Slurm")
    jobs.set_defaults(func=_jobs)

    logs = subparsers.add_parser("logs", help="show the end of a job's log")
    logs.add_argument("job", metavar="JOB", help="job number from `ft-hallu jobs`, or slurm:ID / local:PID")
    logs.add_argument("-n", "--lines", type=int, default=50, help="lines to show (default 50)")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing until the job finishes")
    logs.set_defaults(func=_logs)

    cancel = subparsers.add_parser("cancel", help="cancel a queued or running job")
    cancel.add_argument("job", metavar="JOB", help="job number from `ft-hallu jobs`, or slurm:ID / local:PID")
    cancel.set_defaults(func=_cancel)


def _cluster_settings(path: str | None) -> launching.ClusterSettings:
    if path:
        return launching.load_cluster_settings(path)
    default = data_dir() / DEFAULT_CLUSTER_FILE
    if default.exists():
        return launching.load_cluster_settings(default)
    return launching.ClusterSettings()


def _launch(args: argparse.Namespace) -> int:
    cluster = _cluster_settings(args.cluster)
    spec = launching.build_spec(
        args.config,
        cluster,
        name=args.name,
        log_dir=args.log_dir,
        db_path=args.db,  # only when given: otherwise the job uses its own default store
    )
    store = open_db(db_path_from(args))
    try:
        launcher = launching.get_launcher("local" if args.local else "slurm")
        job = launching.launch(store, spec, launcher)
    finally:
        store.close()
    print(f"job {job.id}: {job.ref} {job.state}  name={job.name}")
    print(f"  log:    {job.log_path}")
    print(f"  script: {job.script_path}")
    print(f"  output: {job.output_dir}")
    print(f"follow with: ft-hallu logs {job.id} --follow")
    return 0


def _jobs(args: argparse.Namespace) -> int:
    store = open_db(db_path_from(args))
    try:
        jobs = launching.list_jobs(store, refresh_active=not args.no_refresh)
    finally:
        store.close()
    if not jobs:
        print("no jobs yet (start one with `ft-hallu launch --config FT.toml`)")
        return 0
    header = f"{'ID':>4}  {'JOB':<16} {'STATE':<11} {'EXIT':>4}  {'SUBMITTED':<19}  NAME / OUTPUT"
    print(header)
    for job in jobs:
        code = "" if job.exit_code is None else str(job.exit_code)
        print(
            f"{job.id:>4}  {job.ref:<16} {job.state:<11} {code:>4}  {job.submitted_at[:19]:<19}  "
            f"{job.name}  ->  {job.output_dir}"
        )
        if job.detail and not job.finished:
            print(f"{'':>6}{job.detail}")
    return 0


def _logs(args: argparse.Namespace) -> int:
    if args.lines < 0:
        raise UserError("logs: -n must be >= 0")
    store = open_db(db_path_from(args))
    try:
        job = launching.resolve_job(store, args.job)
        text = launching.tail(job, args.lines)
        if text:
            print(text, flush=True)
        if args.follow:
            job = _follow(store, job)
            print(
                f"[job {job.id} {job.ref}: {job.state}"
                + ("" if job.exit_code is None else f", exit code {job.exit_code}")
                + "]"
            )
    finally:
        store.close()
    return 0


def _follow(store, job: launching.Job, poll_seconds: float = 1.0) -> launching.Job:
    """Print the log as it grows until the job reaches a final state."""
    path = Path(job.log_path)
    position = path.stat().st_size if path.exists() else 0
    while True:
        job = launching.refresh(store, job)
        if path.exists():
            with open(path, "rb") as handle:
                handle.seek(position)
                chunk = handle.read()
            position += len(chunk)
            if chunk:
                sys.stdout.write(chunk.decode("utf-8", errors="replace"))
                sys.stdout.flush()
        if job.finished:
            return job
        time.sleep(poll_seconds)


def _cancel(args: argparse.Namespace) -> int:
    store = open_db(db_path_from(args))
    try:
        job = launching.resolve_job(store, args.job)
        job = launching.cancel(store, job)
    finally:
        store.close()
    print(f"job {job.id}: {job.ref} {job.state}")
    return 0
