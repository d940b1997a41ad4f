"""Helpers the Textual pilot tests of the Results step share: run a scenario, wait for a state, read
the screen."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


def run(scenario: Callable) -> None:
    asyncio.run(scenario())


async def wait_for(pilot, predicate: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await pilot.pause(0.2)


def screen_lines(app) -> list[str]:
    """What the terminal shows, line by line (the compositor's strips as plain text)."""
    return [strip.text for strip in app.screen._compositor.render_strips()]
