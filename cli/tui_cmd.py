"""``ft-hallu tui``: the keyboard-only terminal UI (Textual), for use over SSH."""

from __future__ import annotations

import argparse

from cli.common import db_path_from

STEPS = ("generate", "mask", "finetune", "sweep", "results")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tui",
        help="terminal UI for the whole workflow (keyboard only, 80x24 or more)",
        description="Generate -> mask -> fine-tune -> sweep -> results in one keyboard-only screen set. "
        "F1..F5 switch steps, ctrl+p opens the command palette, ctrl+q quits.",
    )
    parser.add_argument("--step", choices=STEPS, help="open on this step (default: the last one used)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Textual is imported here, not at module level: engine/ never imports a front end on import.
    from tui.app import FtHalluApp

    app = FtHalluApp(db_path_from(args), start=args.step)
    result = app.run()
    return int(result or 0)
