"""Modal questions: the operator confirms what cannot be taken back (cancel, undo, overwrite, quit).

``ChoiceScreen`` shows a question and a few keyed answers; it dismisses with the chosen answer's
value (escape: ``None``). ``confirm()`` is the yes/no case.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static


class ChoiceScreen(ModalScreen[Any]):
    """A question with answers picked by one key each, e.g. ``[("y", "Yes, cancel it", True), ...]``."""

    DEFAULT_CSS = """
    ChoiceScreen {
        align: center middle;
        background: $background 60%;
    }
    ChoiceScreen > Vertical {
        width: 76;
        max-width: 100%;
        height: auto;
        max-height: 90%;
        border: thick $warning;
        background: $surface;
        padding: 0 1;
    }
    ChoiceScreen .question { height: auto; }
    ChoiceScreen .answers { height: auto; margin-top: 1; color: $text; }
    """
    BINDINGS = [
        Binding(
            "escape", "answer_none", "Back", show=False, id="dialog.back", tooltip="Close without answering"
        )
    ]

    def __init__(self, title: str, question: str, answers: Sequence[tuple[str, str, Any]]) -> None:
        super().__init__()
        self.title_text = title
        self.question = question
        self.answers = list(answers)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(self.title_text, style="bold"), classes="question")
            yield Static(Text(self.question), classes="question", id="choice-question")
            lines = Text()
            for key, label, _value in self.answers:
                lines.append(f" {key} ", style="bold reverse")
                lines.append(f" {label}\n")
            lines.append(" esc ", style="bold reverse")
            lines.append(" back, nothing happens")
            yield Static(lines, classes="answers", id="choice-answers")

    def on_key(self, event: Any) -> None:
        for key, _label, value in self.answers:
            if event.key == key:
                event.stop()
                self.dismiss(value)
                return

    def action_answer_none(self) -> None:
        self.dismiss(None)


def confirm_screen(title: str, question: str, yes: str, no: str = "No, keep it") -> ChoiceScreen:
    """A yes/no question: ``y`` answers True, ``n`` (or escape) False/None."""
    return ChoiceScreen(title, question, [("y", yes, True), ("n", no, False)])
