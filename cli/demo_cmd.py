"""``ft-hallu demo``: the whole workflow offline on the bundled sample data and the tiny model."""

from __future__ import annotations

import argparse

from cli.common import db_path_from
from engine.demo import format_table, run_demo


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="offline end-to-end run: tiny model, sample data, SQLite")
    parser.add_argument("--samples", type=int, default=3, help="samples per grid cell (default 3)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    result = run_demo(db_path=db_path_from(args), samples_per_cell=args.samples)
    print("per cell (prompt: entity):")
    print(format_table(result.table))
    print("\nper variant and prompt (mean over cells):")
    print(format_table(result.summary))
    print(f"\nsweep {result.sweep_id} stored in {result.db_path}")
    print(f"adapter: {result.adapter_dir}")
    print(f"demo finished in {result.seconds:.0f} s")
    return 0
