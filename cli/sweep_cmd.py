"""``ft-hallu sweep --config FILE`` and ``ft-hallu sweeps`` (list stored sweeps)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli.common import Checked, db_path_from
from engine.checkpoints import parse_steps_option
from engine.sweep import SweepConfig, SweepProgress, load_sweep_config, run_sweep
from engine.workspace import Workspace


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("sweep", help="sample base and fine-tuned over the T x top_p x top_k grid")
    parser.add_argument("--config", required=True, help="sweep TOML (see configs/sweep.example.toml)")
    parser.add_argument(
        "--samples", action=Checked, field=(SweepConfig, "samples_per_cell"), help="override samples_per_cell"
    )
    parser.add_argument("--adapter", help="override the fine-tuned adapter folder")
    parser.add_argument("--base-model", help="override base_model")
    parser.add_argument(
        "--batch-size", action=Checked, field=(SweepConfig, "batch_size"), help="override rows per generate call"
    )
    parser.add_argument(
        "--checkpoints", metavar="WHICH", help='override checkpoints: "all" or steps ("50,100") of the adapter run'
    )
    parser.add_argument("--control", metavar="SET", help='override control: "builtin", a QA file, or "" for none')
    parser.set_defaults(func=_run)
    listing = subparsers.add_parser("sweeps", help="list stored sweeps")
    listing.set_defaults(func=_list)


def print_progress(progress: SweepProgress) -> None:
    rate = progress.written / progress.elapsed if progress.elapsed > 0 else 0.0
    print(
        f"\rsweep: {progress.done}/{progress.total} rows  {rate:.1f} rows/s",
        end="",
        file=sys.stderr,
        flush=True,
    )
    if progress.done >= progress.total:
        print(file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    overrides, labels = {}, {}
    for attr, key in (
        ("samples", "samples_per_cell"),
        ("adapter", "adapter"),
        ("base_model", "base_model"),
        ("batch_size", "batch_size"),
    ):
        value = getattr(args, attr)
        if value is not None:
            overrides[key] = value
            labels[key] = "--" + attr.replace("_", "-")
    if args.checkpoints is not None:
        overrides["checkpoints"] = parse_steps_option(args.checkpoints, words=("", "all"))
        labels["checkpoints"] = "--checkpoints"
    if args.control is not None:
        # a file named on the command line is relative to where the command runs, not to the config
        given = args.control.strip()
        overrides["control"] = given if given in ("", "builtin") else str(Path(given).expanduser().resolve())
        labels["control"] = "--control"
    config = load_sweep_config(args.config, overrides, labels)
    # Not through a Workspace: the sweep checks its inputs before it creates the store.
    result = run_sweep(config, db_path=db_path_from(args), progress=print_progress)
    twice = result.sampled_now - result.generated_now
    print(
        f"sweep {result.sweep_id}: {result.generated_now} new rows, {result.skipped_existing} already stored, "
        f"{result.total_rows} planned; {result.seconds:.1f} s; store {result.db_path}"
        + (f" ({twice} sampled rows were stored first by another process)" if twice > 0 else "")
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    with Workspace.open(db_path_from(args)) as workspace:
        sweeps = workspace.sweeps()
    if not sweeps:
        print("no sweeps stored")
        return 0
    print(f"{'id':>4}  {'status':<11} {'rows':>6}/{'plan':<6} {'source':<10} name")
    for sweep in sweeps:
        print(
            f"{sweep.id:>4}  {sweep.status:<11} {sweep.generation_count:>6}/{sweep.expected_rows or 0:<6} "
            f"{sweep.source:<10} {sweep.name}" + (f"  ({sweep.error})" if sweep.error else "")
        )
    return 0
