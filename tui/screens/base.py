"""What every step screen shares: a compact one-line form, remembered values, error reporting."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, cast

from rich.text import Text
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Input, Label, Static

from engine.errors import UserError

if TYPE_CHECKING:
    from tui.app import FtHalluApp


def step_bar(current: str) -> Static:
    """The top line: every step with its key, the current one highlighted (replaces a Header)."""
    from tui.app import STEPS

    text = Text(" ft-hallu ", style="bold")
    for name, key, title in STEPS:
        style = "bold reverse" if name == current else ""
        text.append(" ")
        text.append(f"{key.upper()} {title}", style=style)
    return Static(text, classes="step-bar")


class StepScreen(Screen):
    """A workflow step. Its Inputs are saved to the preferences under ``STEP`` and restored on mount."""

    STEP: ClassVar[str] = ""
    TITLE_TEXT: ClassVar[str] = ""

    @property
    def ft_app(self) -> FtHalluApp:
        return cast("FtHalluApp", self.app)

    def field(self, label: str, input_id: str, value: Any = "", placeholder: str = "") -> Horizontal:
        """A one-line 'label  [input]' row; the label says what the field holds."""
        return Horizontal(
            Label(label, classes="field-label"),
            Input(value="" if value is None else str(value), id=input_id, placeholder=placeholder),
            classes="field",
        )

    def value(self, input_id: str) -> str:
        return self.query_one(f"#{input_id}", Input).value.strip()

    def set_value(self, input_id: str, value: Any) -> None:
        self.query_one(f"#{input_id}", Input).value = "" if value is None else str(value)

    def action_focus_widget(self, widget_id: str) -> None:
        self.query_one(f"#{widget_id}").focus()

    def on_mount(self) -> None:
        saved = self.ft_app.prefs.get(self.STEP, {})
        if isinstance(saved, dict):
            for widget in self.query(Input):
                if widget.id and isinstance(saved.get(widget.id), str):
                    widget.value = saved[widget.id]

    def remember(self) -> None:
        """Save this screen's form values (called when the operator starts something and on exit)."""
        values = {widget.id: widget.value for widget in self.query(Input) if widget.id}
        self.ft_app.remember(self.STEP, values)

    def report_error(self, exc: BaseException, *, where: str = "") -> str:
        """Show an error as a notification (one line for a UserError); returns the line shown."""
        if isinstance(exc, UserError):
            line = str(exc)
        else:
            line = f"{type(exc).__name__}: {exc}"
        if where:
            line = f"{where}: {line}"
        # markup=False: a path or message with [brackets] is shown as written.
        self.notify(line, title="error", severity="error", timeout=8, markup=False)
        return line


def parse_number_list(text: str, kind: type, *, field_name: str) -> list[Any]:
    """'0.5, 1.0' -> [0.5, 1.0]; a bad item raises UserError naming the field."""
    values: list[Any] = []
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            values.append(kind(part))
        except ValueError:
            raise UserError(f"{field_name}: {part!r} is not a {kind.__name__}") from None
    if not values:
        raise UserError(f"{field_name}: give at least one value")
    return values


def parse_int(text: str, *, field_name: str, default: int | None = None) -> int | None:
    if not text.strip():
        return default
    try:
        return int(text)
    except ValueError:
        raise UserError(f"{field_name}: {text!r} is not a whole number") from None
