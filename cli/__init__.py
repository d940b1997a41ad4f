"""The ``ft-hallu`` command line: one sub-module per verb group, each with ``register(subparsers)``.

Each module's ``register`` adds its sub-commands and sets ``func`` on them; ``func(args)`` returns
the process exit code. Errors the user can fix are raised as :class:`engine.errors.UserError` and
printed as one line.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import sys
import traceback
from collections.abc import Sequence

from cli import (
    calibrate_cmd,
    compare_cmd,
    dataset_cmd,
    demo_cmd,
    deprecated,
    finetune_cmd,
    generate_cmd,
    job_cmd,
    label_cmd,
    mask_cmd,
    metrics_cmd,
    profile_cmd,
    serve_cmd,
    sweep_cmd,
    tui_cmd,
)
from cli.common import db_path_from
from engine import console
from engine.errors import UserError
from engine.liveness import exit_code, stop_reason, stop_signals
from engine.paths import DATA_DIR_ENV, default_db_path
from engine.secrets import redact

__all__ = ["build_parser", "db_path_from", "main"]

# In the order `ft-hallu --help` lists them: the workflow first, then the tools around it.
COMMAND_MODULES = (
    dataset_cmd,
    finetune_cmd,
    sweep_cmd,
    demo_cmd,
    metrics_cmd,
    compare_cmd,
    profile_cmd,
    label_cmd,
    calibrate_cmd,
    mask_cmd,
    generate_cmd,
    job_cmd,
    serve_cmd,
    tui_cmd,
)


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (like every other error), exit 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"ft-hallu: error: {self.prog}: {redact(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="ft-hallu",
        description="Measure what fine-tuning does to a model's hallucinations.",
    )
    parser.add_argument(
        "--db",
        default=None,
        help=f"SQLite store (default: {default_db_path()}; set FT_HALLU_HOME to move the data folder)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also show library warnings, progress bars and hub notices (default: ft-hallu's own lines only)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


DEBUG_ENV = "FT_HALLU_DEBUG"  # =1: show the traceback behind an error line


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. The single error boundary: anything the user can fix is one line, exit 2."""
    parser = build_parser()
    # Old spellings (`jobs`, `mask-undo`, `launch sweep`, ...) run as their group's command, with a note.
    words, note = deprecated.rewrite(sys.argv[1:] if argv is None else argv)
    if note:
        print(note, file=sys.stderr)
    try:
        args = parser.parse_args(words)  # options are range-checked as they are read (cli.common.Checked)
    except UserError as exc:
        print(f"ft-hallu: error: {redact(_one_line(str(exc)))}", file=sys.stderr)
        return 2
    console.configure(verbose=True if args.verbose else None)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        check_data_dir()
        with stop_signals():  # SIGTERM and SIGHUP unwind like Ctrl-C: temp files go, runs are marked
            return int(args.func(args) or 0)
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except KeyboardInterrupt as exc:
        print(f"ft-hallu: {stop_reason(exc)}", file=sys.stderr)
        return exit_code(exc)
    except (UserError, OSError, sqlite3.DatabaseError, UnicodeDecodeError) as exc:
        if os.environ.get(DEBUG_ENV) == "1":
            traceback.print_exc()
        # redact(): the last net, so no password from a URL or token reaches the terminal.
        print(f"ft-hallu: error: {redact(error_line(exc, args))}", file=sys.stderr)
        return 2


def check_data_dir() -> None:
    """$FT_HALLU_HOME must be a folder (or not exist yet); say so before anything is written."""
    home = os.environ.get(DATA_DIR_ENV)
    if home and os.path.exists(home) and not os.path.isdir(home):
        raise UserError(f"{DATA_DIR_ENV}={home}: is a file, expected a folder (the data folder)")


def error_line(exc: BaseException, args: argparse.Namespace) -> str:
    """One line naming the path and what is wrong."""
    if isinstance(exc, UserError):
        return _one_line(str(exc))
    if isinstance(exc, UnicodeDecodeError):
        where = _path_in_traceback(exc) or "input"
        return f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})"
    if isinstance(exc, sqlite3.DatabaseError):
        text = _one_line(str(exc))
        store_path = db_path_from(args)
        return text if store_path in text else f"{store_path}: {text}"
    if isinstance(exc, OSError):
        where = exc.filename if exc.filename is not None else _path_in_traceback(exc)
        what = exc.strerror or _one_line(str(exc))
        if exc.filename2 is not None:
            return f"{exc.filename} -> {exc.filename2}: {what}"
        if isinstance(exc, (FileExistsError, NotADirectoryError)) and where is not None:
            what = f"{what} (a file stands where a folder is needed)"
        return f"{where}: {what}" if where is not None else what
    return _one_line(str(exc))


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "failed"


_PATH_NAMES = ("path", "file_path", "filename", "target", "source", "config_path", "input_path")


def _path_in_traceback(exc: BaseException) -> str | None:
    """The innermost path-named local where ``exc`` was raised (decoding errors carry no file name)."""
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        for name in _PATH_NAMES:
            value = frame.f_locals.get(name)
            if isinstance(value, (str, os.PathLike)) and str(value) and os.path.exists(value):
                return str(value)
    return None


def _quiet_broken_pipe() -> int:
    """The reader of our output (``| head``) went away: stop quietly, as a SIGPIPE would."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not complain
    except (OSError, ValueError):
        pass
    return 128 + signal.SIGPIPE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
