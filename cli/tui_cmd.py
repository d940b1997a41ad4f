"""``ft-hallu tui``: the keyboard-only terminal UI (Textual), for use over SSH."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import threading

from cli.common import db_path_from
from engine.workspace import Workspace
from tui.steps import STEP_NAMES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tui",
        help="terminal UI for the whole workflow (keyboard only, 80x24 or more)",
        description="Generate -> check -> mask -> fine-tune -> jobs -> sweep -> results in one keyboard-only screen set. "
        "F1..F7 switch steps, ctrl+p opens the command palette, ctrl+q quits.",
    )
    parser.add_argument("--step", choices=STEP_NAMES, help="open on this step (default: the last one used)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Textual is imported here, not at module level, so the other verbs start fast.
    from tui.app import FtHalluApp

    with Workspace.open(db_path_from(args)) as workspace:
        app = FtHalluApp(workspace, start=args.step)
        # Our own loop (not app.run's asyncio.run): asyncio.run waits for worker threads before it
        # returns, which left a blank terminal while a generation finished its chunk. Here the
        # screen is restored first, then what still finishes (or keeps running) is said, then we wait.
        loop = asyncio.new_event_loop()
        # The terminal went away (an SSH connection dropped, tmux killed) or we were told to stop:
        # nobody can answer a question any more, so quit at once (detached jobs keep running). The
        # CLI's own handler raises inside whatever the loop runs, which Textual caught: a TUI left
        # on a login node after its SSH session ended kept using half a core.
        for signum in (signal.SIGHUP, signal.SIGTERM):
            loop.add_signal_handler(signum, _stop, app, signum)
        try:
            result = loop.run_until_complete(app.run_async())
            for line in [*app.left_stopping, *app.left_running]:
                try:
                    print(f"ft-hallu tui: {line}", flush=True)
                except OSError:  # no terminal left to say it on
                    break
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()
    return int(result or 0)


def _stop(app, signum: int) -> None:
    """Quit now; and if a thread still runs 5 s later (a worker mid-poll, or Textual's input thread
    reading a terminal that is gone: seen spinning a core after tmux was killed), end the process:
    the store is transactional and jobs are detached, so nothing is lost that kill -9 would keep."""
    app.exit(None, 128 + signum)
    timer = threading.Timer(5.0, os._exit, args=(128 + signum,))
    timer.daemon = True  # a clean exit before then is not held up
    timer.start()
