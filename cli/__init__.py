"""The ``ft-hallu`` command line: one sub-module per verb group, each with ``register(subparsers)``.

Each module's ``register`` adds its sub-commands and sets ``func`` on them; ``func(args)`` returns
the process exit code. Errors the user can fix are raised as :class:`engine.errors.UserError` and
printed as one line.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from engine.errors import UserError
from engine.paths import default_db_path

COMMAND_MODULES = (
    "cli.dataset_cmd",
    "cli.finetune_cmd",
    "cli.sweep_cmd",
    "cli.demo_cmd",
    "cli.metrics_cmd",
    "cli.mask_cmd",
    "cli.generate_cmd",
    "cli.launch_cmd",
    "cli.serve_cmd",
    "cli.tui_cmd",
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
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def db_path_from(args: argparse.Namespace) -> str:
    return str(args.db or default_db_path())


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
