"""``ft-hallu dataset check FILE``."""

from __future__ import annotations

import argparse

from engine import dataset as ds


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("dataset", help="inspect QA datasets")
    verbs = parser.add_subparsers(dest="dataset_command", metavar="VERB")
    check = verbs.add_parser("check", help="rows, duplicates, split leakage and lengths of a QA file")
    check.add_argument("file")
    check.add_argument("--eval-fraction", type=float, default=0.1)
    check.add_argument("--seed", type=int, default=2024)
    check.set_defaults(func=_check)
    parser.set_defaults(func=lambda _args: parser.print_help() or 2)


def _check(args: argparse.Namespace) -> int:
    report = ds.check(args.file, eval_fraction=args.eval_fraction, seed=args.seed)
    print("\n".join(report.lines()))
    return 0
