"""``ft-hallu dataset check FILE [--drop-duplicates OUT]``."""

from __future__ import annotations

import argparse
import sys

from cli.common import Checked
from engine import dataset as ds
from engine.finetune import FinetuneConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("dataset", help="inspect QA datasets")
    verbs = parser.add_subparsers(dest="dataset_command", metavar="VERB")
    check = verbs.add_parser("check", help="rows, duplicates, split leakage and lengths of a QA file")
    check.add_argument("file")
    check.add_argument(
        "--eval-fraction", action=Checked, field=(FinetuneConfig, "eval_fraction"), default=0.1,
        help="share of questions held out (default: %(default)s)",
    )  # fmt: skip
    check.add_argument(
        "--seed", action=Checked, field=(FinetuneConfig, "seed"), default=2024, help="split seed (default: %(default)s)"
    )
    check.add_argument(
        "--drop-duplicates",
        metavar="OUT",
        help="also write a copy without the exact duplicate rows to the NEW file OUT (FILE is not changed)",
    )
    check.set_defaults(func=_check)
    parser.set_defaults(func=lambda _args: parser.print_help() or 2)


def _check(args: argparse.Namespace) -> int:
    if args.drop_duplicates:  # a bad OUT is said before the report, and nothing is written
        ds.check_dedupe_target(args.file, args.drop_duplicates)
    report = ds.check(args.file, eval_fraction=args.eval_fraction, seed=args.seed)
    print("\n".join(report.lines()))
    if args.drop_duplicates:
        print(ds.write_deduplicated(args.file, args.drop_duplicates).line())
    if report.duplicate_ids:
        # A sweep keys its eval prompts by id; repeated ids are a problem to fix, not a statistic.
        key, places = next(iter(report.duplicate_ids.items()))
        others = len(report.duplicate_ids) - 1
        print(
            f"ft-hallu: error: {places[1]}: id {key!r} already used at {places[0]}"
            + (f" ({others} more ids repeat)" if others else ""),
            file=sys.stderr,
        )
        return 1
    return 0
