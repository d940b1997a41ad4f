"""What every step screen shares: a compact one-line form, remembered values, error reporting.

Errors never reach the shell: every entry point Textual calls on a step screen (``action_*``,
``on_*`` handlers, ``compose``) is wrapped by ``guarded`` when the class is created, ``@on``
handlers must carry ``@guarded`` themselves (checked at class creation), and thread workers made
with ``step_worker`` report a failure through ``on_worker_state_changed``. All of them end in
``report_error``: a UserError as its one line, anything else as "Type: message".
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

from rich.text import Text
from textual import work
from textual.actions import SkipAction
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Input, Label, Static
from textual.worker import Worker, WorkerState

from engine.errors import UserError
from engine.workspace import Workspace
from tui.steps import STEPS

if TYPE_CHECKING:
    from tui.app import FtHalluApp


def step_bar(current: str) -> Static:
    """The top line: every step with its key, the current one highlighted (replaces a Header),
    and the palette key, which is kept out of the footer so 80 columns hold every action."""
    text = Text(" ft-hallu ", style="bold")
    for name, key, title in STEPS:
        style = "bold reverse" if name == current else ""
        text.append(" ")
        text.append(f"{key.upper()} {title}", style=style)
    text.append("  ^p", style="bold")
    text.append(" palette")
    return Static(text, classes="step-bar")


def step_footer() -> Footer:
    """The key footer of every step (the palette key is in the step bar instead)."""
    return Footer(show_command_palette=False, compact=True)


def error_line(exc: BaseException) -> str:
    """The one line an operator sees: a UserError as written, anything else with its type."""
    return str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"


F = TypeVar("F", bound=Callable[..., Any])


def guarded(method: F) -> F:
    """Run a screen entry point so that any exception becomes an error notification, not a crash."""
    if getattr(method, "_ft_guarded", False):
        return method
    if inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def async_guard(self: StepScreen, *args: Any, **kwargs: Any) -> Any:
            try:
                return await method(self, *args, **kwargs)
            except SkipAction:  # Textual's own "not handled here" signal
                raise
            except Exception as exc:  # noqa: BLE001 - the point: report, stay up
                self.report_error(exc)
                return None

        wrapper: Any = async_guard
    else:

        @functools.wraps(method)
        def guard(self: StepScreen, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except SkipAction:
                raise
            except Exception as exc:  # noqa: BLE001
                self.report_error(exc)
                return None

        wrapper = guard
    wrapper._ft_guarded = True
    return cast(F, wrapper)


def _guarded_compose(compose: Callable[[StepScreen], Iterable[Widget]]) -> Callable[..., Any]:
    """A compose that fails part-way still shows the step bar, the error and the footer."""
    if getattr(compose, "_ft_guarded", False):
        return compose

    @functools.wraps(compose)
    def safe_compose(self: StepScreen) -> Iterable[Widget]:
        try:
            yield from compose(self)
        except Exception as exc:  # noqa: BLE001 - e.g. a broken engine module behind the form
            self.compose_error = error_line(exc)
            yield Static(Text(f"This step cannot open: {self.compose_error}"), classes="error")
            yield step_footer()

    safe_compose._ft_guarded = True  # type: ignore[attr-defined]
    return safe_compose


def step_worker(*, group: str, exclusive: bool = False) -> Callable[[F], F]:
    """``@work`` for step screens: a cancellable thread worker whose failure is reported
    (StepScreen.on_worker_state_changed) instead of exiting the app."""
    return cast(Callable[[F], F], work(thread=True, exclusive=exclusive, group=group, exit_on_error=False))


class StepScreen(Screen):
    """A workflow step. Its Inputs are saved to the preferences under ``STEP`` and restored on mount."""

    STEP: ClassVar[str] = ""
    TITLE_TEXT: ClassVar[str] = ""
    compose_error: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, value in list(vars(cls).items()):
            if not inspect.isfunction(value):
                continue
            if name == "compose":
                setattr(cls, name, _guarded_compose(value))
            elif name.startswith(("action_", "on_", "_on_")):
                setattr(cls, name, guarded(value))
            elif getattr(value, "_textual_on", None) and not getattr(value, "_ft_guarded", False):
                # Textual registered this @on handler before we could wrap it: insist on @guarded.
                raise TypeError(f"{cls.__name__}.{name}: put @guarded under @on(...)")

    @property
    def ft_app(self) -> FtHalluApp:
        return cast("FtHalluApp", self.app)

    @property
    def workspace(self) -> Workspace:
        """Call it only from thread workers (``step_worker``): every operation touches the store."""
        return self.ft_app.workspace

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

    @guarded
    def action_focus_widget(self, widget_id: str) -> None:
        self.query_one(f"#{widget_id}").focus()

    @guarded
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A thread worker that raised: report it like any other error and let the screen recover."""
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        line = self.report_error(error if error is not None else RuntimeError("worker failed"))
        self.worker_failed(event.worker, line)

    def worker_failed(self, worker: Worker, line: str) -> None:
        """Hook: reset 'running' flags and show ``line`` in place. ``worker.group`` says which."""

    @guarded
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

    def report_error(self, exc: BaseException, *, where: str = "", title: str = "") -> str:
        """Show an error as a notification (one line for a UserError); returns the line shown."""
        line = error_line(exc)
        if where:
            line = f"{where}: {line}"
        # markup=False: a path or message with [brackets] is shown as written.
        heading = title or (f"{self.TITLE_TEXT} error" if self.TITLE_TEXT else "error")
        self.notify(line, title=heading, severity="error", timeout=8, markup=False)
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
