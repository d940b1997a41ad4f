"""How a recorded run ends: one rule for every run kind (fine-tune, generate, mask, judge, ingest, sweep).

A run's row records its host and pid when it starts (``store.liveness``), so a process killed with
``-9`` reads back as interrupted. Everything short of ``-9`` is recorded by the run itself:
:func:`recorded` marks the row 'interrupted' on a stop signal (SIGINT, SIGTERM, SIGHUP), naming the
signal, and 'failed' with the first line of any other error, then lets the exception go on.
:func:`stop_signals` (installed by the CLI around every command, and by :func:`recorded`) turns those
signals into a :class:`Stopped` exception, so ``finally`` blocks, atomic writes and these records run
on ``kill`` as they do on Ctrl-C.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from store import liveness, runs

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_installed = threading.local()


class Stopped(KeyboardInterrupt):
    """A stop signal, raised where the main thread was; ``reason`` names it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.reason = f"interrupted by {signal.Signals(signum).name}" + (
            " (Ctrl-C)" if signum == signal.SIGINT else ""
        )


def stop_reason(exc: BaseException) -> str:
    """Why a run stopped, for its row: the signal, or the first line of the error."""
    if isinstance(exc, Stopped):
        return exc.reason
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted by SIGINT (Ctrl-C)"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def exit_code(exc: KeyboardInterrupt) -> int:
    """The shell's exit status for a run stopped by this signal (130 for Ctrl-C, 143 for SIGTERM)."""
    return 128 + int(getattr(exc, "signum", signal.SIGINT))


def _raise_stopped(signum: int, _frame: object) -> None:
    raise Stopped(signum)


@contextmanager
def stop_signals() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise :class:`Stopped` inside the block (main thread only).

    Nested blocks share the outer one's handlers; the previous handlers come back at the end. In
    another thread (a TUI or Gradio worker) signals cannot be caught, and the block changes nothing.
    """
    if threading.current_thread() is not threading.main_thread() or getattr(_installed, "depth", 0):
        _installed.depth = getattr(_installed, "depth", 0) + 1
        try:
            yield
        finally:
            _installed.depth -= 1
        return
    previous = {}
    try:
        for signum in STOP_SIGNALS:
            previous[signum] = signal.signal(signum, _raise_stopped)
    except ValueError:  # not the main interpreter (embedded): leave signals alone
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        yield
        return
    _installed.depth = 1
    try:
        yield
    finally:
        _installed.depth = 0
        for signum, handler in previous.items():
            signal.signal(signum, handler)


Mark = Callable[[str, str], None]


@contextmanager
def recorded(mark: Mark) -> Iterator[None]:
    """Run the body of a recorded run; on the way out of an exception, ``mark(status, reason)``.

    status is 'interrupted' for a stop signal or Ctrl-C, 'failed' for anything else. A failure of
    ``mark`` itself (the store is locked or the disk is full) never hides the exception that ended
    the run: the row's host and pid still tell that it is no longer running.
    """
    with stop_signals():
        try:
            yield
        except KeyboardInterrupt as exc:
            _mark_safely(mark, "interrupted", stop_reason(exc))
            raise
        except BaseException as exc:
            _mark_safely(mark, "failed", stop_reason(exc))
            raise


def _mark_safely(mark: Mark, status: str, reason: str) -> None:
    try:
        mark(status, reason)
    except Exception:  # noqa: BLE001, S110 - the run's own error is the one to report
        pass


@contextmanager
def tracked_run(store: Any, kind: str, target: str) -> Iterator[int]:
    """A run of a step that has no table of its own (judge, ingest), recorded in ``runs``.

    The row is 'running' with this process as owner while the body runs, 'completed' after it,
    and 'interrupted' or 'failed' (with the reason) when it ends early; yields the row id.
    """
    run_id = runs.start_run(store, kind=kind, target=target)

    def mark(status: str, reason: str) -> None:
        liveness.mark(store, "runs", run_id, status, reason)

    with recorded(mark):
        yield run_id
        runs.finish_run(store, run_id)
