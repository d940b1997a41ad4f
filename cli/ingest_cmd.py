"""``ft-hallu ingest JOB``: read a job's results files (sweep rows, fine-tune record) into the store."""

from __future__ import annotations

import argparse

from cli.common import db_path_from
from engine.workspace import Workspace


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ingest",
        help="read a launched job's results files into the store (idempotent)",
        description="Sweep jobs write their rows to files in their job folder and fine-tune jobs their run "
        "record; this reads them into the store. `ft-hallu jobs` does it by itself once a job ends; a "
        "running sweep gives the rows finished so far. A second ingest adds nothing.",
    )
    parser.add_argument("job", metavar="JOB", help="job number from `ft-hallu jobs`, or slurm:ID / local:PID")
    parser.set_defaults(func=_ingest)


def _ingest(args: argparse.Namespace) -> int:
    with Workspace.open(db_path_from(args)) as workspace:
        result = workspace.ingest_job(workspace.job(args.job))
    print(result.line())
    return 0
