"""The ft-hallu TUI application: one mode (screen) per workflow step, keyboard only.

F1..F5 switch between steps from anywhere (also from inside a text field); ctrl+p opens the
command palette, which lists the steps and the current screen's actions; ctrl+q quits.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from store.db import open_db
from tui.prefs import default_prefs_path, load_prefs, save_prefs

# (mode name, key, title) in workflow order.
STEPS: tuple[tuple[str, str, str], ...] = (
    ("generate", "f1", "Generate"),
    ("mask", "f2", "Mask"),
    ("finetune", "f3", "Fine-tune"),
    ("sweep", "f4", "Sweep"),
    ("results", "f5", "Results"),
)
STEP_NAMES = tuple(name for name, _key, _title in STEPS)


def _screen_factory(name: str) -> Screen:
    # Imported lazily so that a screen whose engine module is broken shows an error screen
    # instead of taking the whole TUI down.
    from tui.screens import finetune, generate, mask, results, sweep

    screens = {
        "generate": generate.GenerateScreen,
        "mask": mask.MaskScreen,
        "finetune": finetune.FinetuneScreen,
        "sweep": sweep.SweepScreen,
        "results": results.ResultsScreen,
    }
    return screens[name]()


class FtHalluApp(App[int]):
    """``FtHalluApp(db_path)``: the TUI over one store. ``prefs_path`` defaults to the data folder."""

    TITLE = "ft-hallu"
    SUB_TITLE = "fine-tuning vs hallucinations"
    CSS_PATH = "app.tcss"
    MODES = {name: partial(_screen_factory, name) for name in STEP_NAMES}
    BINDINGS = [
        *(Binding(key, f"goto('{name}')", title, priority=True, show=False) for name, key, title in STEPS),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(
        self,
        db_path: str | Path,
        *,
        start: str | None = None,
        prefs_path: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.db_path = Path(db_path)
        self.prefs_path = Path(prefs_path) if prefs_path is not None else default_prefs_path()
        self.prefs: dict[str, Any] = load_prefs(self.prefs_path)
        remembered = self.prefs.get("last_step")
        self.start_step = start or (remembered if remembered in STEP_NAMES else "generate")

    # ------------------------------------------------------------ lifecycle

    def on_mount(self) -> None:
        # Create the store and apply migrations once; workers then open light handles.
        try:
            open_db(self.db_path).close()
        except Exception as exc:  # noqa: BLE001 - shown, not raised: the app stays usable
            self.notify(f"cannot open the store {self.db_path}: {exc}", severity="error", markup=False)
        self.switch_mode(self.start_step)

    def open_store(self):
        """A fresh store handle for the calling thread (workers must not share one)."""
        return open_db(self.db_path, migrate=False)

    def remember(self, section: str, values: dict[str, Any]) -> None:
        self.prefs[section] = values
        self.write_prefs()

    def write_prefs(self) -> None:
        try:
            save_prefs(self.prefs, self.prefs_path)
        except OSError as exc:
            self.notify(f"could not save preferences: {exc}", severity="warning", markup=False)

    async def action_quit(self) -> None:
        for screen in self._all_step_screens():
            remember = getattr(screen, "remember", None)
            if remember is not None:
                remember()
        if self.current_mode in STEP_NAMES:
            self.prefs["last_step"] = self.current_mode
        self.write_prefs()
        self.exit(0)

    def _all_step_screens(self) -> list[Screen]:
        screens: list[Screen] = []
        for stack in self._screen_stacks.values():
            screens.extend(stack)
        return screens

    # ------------------------------------------------------------ navigation

    def action_goto(self, name: str) -> None:
        if name not in STEP_NAMES:
            return
        if self.current_mode != name:
            self.switch_mode(name)
        self.prefs["last_step"] = name
        self.write_prefs()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for name, key, title in STEPS:
            yield SystemCommand(
                f"Go to {title}", f"Open the {title} step ({key.upper()})", partial(self.action_goto, name)
            )
        # The current screen's own actions, so every key is also reachable by name.
        for binding in getattr(screen, "BINDINGS", []):
            if isinstance(binding, Binding) and binding.description:
                yield SystemCommand(
                    f"{screen.TITLE_TEXT if hasattr(screen, 'TITLE_TEXT') else ''}: {binding.description}".strip(
                        ": "
                    ),
                    f"key {binding.key}",
                    partial(self.run_action, binding.action, screen),
                )
