"""The ft-hallu TUI application: one mode (screen) per workflow step, keyboard only.

F1..F7 switch between steps from anywhere (also from inside a text field); ctrl+p opens the
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

from engine.workspace import Workspace
from tui.dialogs import ChoiceScreen
from tui.prefs import default_prefs_path, load_prefs, save_prefs
from tui.screens.base import error_line
from tui.screens.check import CheckScreen
from tui.screens.finetune import FinetuneScreen
from tui.screens.generate import GenerateScreen
from tui.screens.jobs import JobsScreen
from tui.screens.mask import MaskScreen
from tui.screens.results import ResultsScreen
from tui.screens.sweep import SweepScreen
from tui.steps import STEP_NAMES, STEPS

__all__ = ["STEPS", "STEP_NAMES", "FtHalluApp"]


# Imported at the top: a broken step module is an import error at start-up, not a hidden screen.
SCREENS: dict[str, type[Screen]] = {
    "generate": GenerateScreen,
    "check": CheckScreen,
    "mask": MaskScreen,
    "finetune": FinetuneScreen,
    "jobs": JobsScreen,
    "sweep": SweepScreen,
    "results": ResultsScreen,
}


class FtHalluApp(App[int]):
    """``FtHalluApp(workspace)``: the TUI over one Workspace. ``prefs_path`` defaults to the data folder.

    Screens call the workspace only from thread workers, which post typed messages back.
    """

    TITLE = "ft-hallu"
    NOTIFICATION_TIMEOUT = 4  # seconds; errors stay ERROR_SECONDS (nothing waits for a key press)
    SUB_TITLE = "fine-tuning vs hallucinations"
    CSS_PATH = "app.tcss"
    MODES = {name: SCREENS[name] for name in STEP_NAMES}
    BINDINGS = [
        *(
            Binding(
                key, f"goto('{name}')", title, priority=True, show=False, id=f"app.goto-{name}",
                tooltip=f"Open the {title} step (also from inside a text field)",
            )
            for name, key, title in STEPS
        ),
        Binding(
            "ctrl+q", "quit", "Quit", priority=True, id="app.quit",
            tooltip="Quit; asks first when work is in progress (jobs keep running)",
        ),
        # Priority: the focus moves before the next key is handed to a field. As a plain binding,
        # tab reached the screen through the focused field's queue, so letters typed right after
        # it (a fast typist, a busy machine) still went into the field being left.
        Binding(
            "tab", "focus_next", "Next field", priority=True, show=False, id="app.next-field",
            tooltip="Move to the next field",
        ),
        Binding(
            "shift+tab", "focus_previous", "Previous field", priority=True, show=False,
            id="app.previous-field", tooltip="Move to the previous field",
        ),
    ]  # fmt: skip

    def __init__(
        self,
        workspace: Workspace,
        *,
        start: str | None = None,
        prefs_path: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.workspace = workspace
        self.prefs_path = Path(prefs_path) if prefs_path is not None else default_prefs_path()
        self.prefs: dict[str, Any] = load_prefs(self.prefs_path)
        remembered = self.prefs.get("last_step")
        self.start_step = start or (remembered if remembered in STEP_NAMES else "generate")
        self.handoffs: dict[str, dict[str, str]] = {}
        # What was still stopping in this process when the TUI closed (cli.tui_cmd says so).
        self.left_stopping: list[str] = []
        self.left_running: list[str] = []  # jobs that keep running after the TUI quits

    # ------------------------------------------------------------ lifecycle

    def on_mount(self) -> None:
        self.switch_mode(self.start_step)

    def remember(self, section: str, values: dict[str, Any]) -> None:
        self.prefs[section] = values
        self.write_prefs()

    def write_prefs(self) -> None:
        try:
            save_prefs(self.prefs, self.prefs_path)
        except OSError as exc:
            self.notify(f"could not save preferences: {exc}", severity="warning", markup=False)

    # ------------------------------------------------------------ hand-offs between steps

    def handoff(self, step: str, values: dict[str, Any]) -> None:
        """Pre-fill ``step``'s fields (input id -> value) with what this step just wrote.

        Applied when that step is shown next, and kept in the preferences for the next run.
        """
        text_values = {key: "" if value is None else str(value) for key, value in values.items()}
        self.handoffs.setdefault(step, {}).update(text_values)
        saved = self.prefs.get(step)
        self.prefs[step] = {**(saved if isinstance(saved, dict) else {}), **text_values}
        handed = self.prefs.get("handed")
        handed = handed if isinstance(handed, dict) else {}
        handed[step] = {**(handed.get(step) or {}), **text_values}
        self.prefs["handed"] = handed  # so a loaded TOML keeps them after a restart too
        self.write_prefs()

    def take_handoff(self, step: str) -> dict[str, str]:
        return self.handoffs.pop(step, {})

    # ------------------------------------------------------------ quitting

    def busy_work(self) -> list[str]:
        lines: list[str] = []
        for screen in self._all_step_screens():
            busy = getattr(screen, "busy_work", None)
            if busy is not None:
                try:
                    lines.extend(busy())
                except Exception:  # noqa: BLE001 - a screen that cannot say is treated as idle
                    pass
        return list(dict.fromkeys(lines))  # a job listed by two screens is said once

    async def action_quit(self) -> None:
        """Quit at once when nothing runs; otherwise say what keeps running (jobs) and what stops."""
        busy = self.busy_work()
        if not busy:
            self.quit_now()
            return
        question = "\n".join(f"- {line}" for line in busy)
        self.push_screen(
            ChoiceScreen(
                "Quit with work in progress?",
                question,
                [("y", "Quit now (jobs keep running; ft-hallu tui reattaches)", True), ("n", "Stay", False)],
            ),
            lambda answer: self.quit_now() if answer else None,
        )

    def quit_now(self) -> None:
        self.left_running = [line for line in self.busy_work() if "keeps running" in line]
        for screen in self._all_step_screens():
            stop = getattr(screen, "stop_for_quit", None)
            if stop is not None:
                try:
                    self.left_stopping.extend(stop())
                except Exception:  # noqa: BLE001 - quitting never fails
                    pass
        for screen in self._all_step_screens():
            remember = getattr(screen, "remember", None)
            if remember is not None:
                try:
                    remember()
                except Exception:  # noqa: BLE001 - quitting never fails; that form is just not saved
                    pass
        if self.current_mode in STEP_NAMES:
            self.prefs["last_step"] = self.current_mode
        self.write_prefs()
        self.exit(0)

    def _all_step_screens(self) -> list[Screen]:
        screens: list[Screen] = []
        for stack in self._screen_stacks.values():
            screens.extend(screen for screen in stack if screen not in screens)
        return screens

    # ------------------------------------------------------------ navigation

    def action_goto(self, name: str) -> None:
        if name not in STEP_NAMES:
            return
        try:
            if self.current_mode != name:
                self.switch_mode(name)
        except Exception as exc:  # noqa: BLE001 - stay on the current step, say why
            self.notify(error_line(exc), title=f"cannot open {name}", severity="error", markup=False)
            return
        self.prefs["last_step"] = name
        self.write_prefs()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for name, key, title in STEPS:
            yield SystemCommand(
                f"Go to {title}", f"Open the {title} step ({key.upper()})", partial(self.action_goto, name)
            )
        yield from screen_action_commands(screen)


def screen_action_commands(screen: Screen) -> Iterable[SystemCommand]:
    """The screen's own actions (and those of its focused table, e.g. accept/reject), by name."""
    prefix = getattr(screen, "TITLE_TEXT", "") or "Step"
    sources: list[tuple[Any, list[Any]]] = [(screen, list(getattr(screen, "BINDINGS", [])))]
    focused = screen.focused
    if focused is not None and type(focused).__module__.startswith("tui."):
        sources.append((focused, list(type(focused).BINDINGS)))
    for target, bindings in sources:
        for binding in bindings:
            # Hidden keys too: the palette is where a key the footer has no room for is found.
            if not (isinstance(binding, Binding) and binding.description):
                continue
            key = binding.key.split(",")[0]
            yield SystemCommand(
                f"{prefix}: {binding.description}",
                f"{binding.tooltip or binding.description} (key {key})",
                partial(screen.app.run_action, binding.action, target),
            )
