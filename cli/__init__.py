"""The ``ft-hallu`` command line: one sub-module per verb group, each with ``register(subparsers)``.

Each module's ``register`` adds its sub-commands and sets ``func`` on them; ``func(args)`` returns
the process exit code. Errors the user can fix are raised as :class:`engine.errors.UserError` and
printed as one line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cli import (
    dataset_cmd,
    demo_cmd,
    finetune_cmd,
    generate_cmd,
    launch_cmd,
    mask_cmd,
    metrics_cmd,
    serve_cmd,
    sweep_cmd,
    tui_cmd,
)
from cli.common import db_path_from
from engine.errors import UserError
from engine.paths import default_db_path

__all__ = ["build_parser", "db_path_from", "main"]

# In the order `ft-hallu --help` lists them: the workflow first, then the tools around it.
COMMAND_MODULES = (
    dataset_cmd,
    finetune_cmd,
    sweep_cmd,
    demo_cmd,
    metrics_cmd,
    mask_cmd,
    generate_cmd,
    launch_cmd,
    serve_cmd,
    tui_cmd,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ft-hallu",
        description="Measure what fine-tuning does to a model's hallucinations.",
    )
    parser.add_argument(
        "--db",
        default=None,
        help=f"SQLite store (default: {default_db_path()}; set FT_HALLU_HOME to move the data folder)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"ft-hallu: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ft-hallu: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
