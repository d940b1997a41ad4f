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
from typing import Any, ClassVar, Protocol, TypeVar, cast

from rich.text import Text
from textual import work
from textual.actions import SkipAction
from textual.containers import Horizontal
from textual.events import DescendantBlur, DescendantFocus, Resize
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Collapsible, Footer, Input, Label, RichLog, Static
from textual.widgets._collapsible import CollapsibleTitle
from textual.worker import Worker, WorkerState

from engine.errors import UserError
from engine.secrets import redact
from engine.workspace import Workspace
from tui.dialogs import ChoiceScreen
from tui.steps import STEPS


class StepApp(Protocol):
    """What a step screen uses of its app (tui.app.FtHalluApp). A protocol rather than the app
    class itself: the app imports every screen, so a screen importing the app would close a loop."""

    workspace: Workspace
    prefs: dict[str, Any]

    def handoff(self, step: str, values: dict[str, Any]) -> None: ...

    def take_handoff(self, step: str) -> dict[str, str]: ...

    def remember(self, section: str, values: dict[str, Any]) -> None: ...

    def write_prefs(self) -> None: ...

    def action_goto(self, name: str) -> None: ...


def step_bar(current: str) -> Static:
    """The top line: every step with its key, the current one highlighted (replaces a Header),
    and the palette key, which is kept out of the footer so 80 columns hold every action.
    Seven steps and the palette key fill the 80 columns exactly: no room for more words."""
    text = Text()
    for index, (name, key, title) in enumerate(STEPS):
        style = "bold reverse" if name == current else ""
        if index:
            text.append(" ")
        text.append(f"{key.upper()} {title}", style=style)
    text.append(" ^p", style="bold")
    text.append(" palette")
    return Static(text, classes="step-bar")


def step_footer() -> Footer:
    """The key footer of every step (the palette key is in the step bar instead)."""
    return Footer(show_command_palette=False, compact=True)


MIN_SIZE = (80, 24)
ERROR_SECONDS = 8  # errors stay a little longer than other notifications (App.NOTIFICATION_TIMEOUT)


def too_small_text(width: int, height: int) -> str:
    return (
        f"Terminal {width}x{height} is too small: ft-hallu needs {MIN_SIZE[0]}x{MIN_SIZE[1]}. "
        "Enlarge the window (ctrl+q quits)."
    )


def wrapped_log(log_id: str, max_lines: int = 500) -> RichLog:
    """A log whose long lines wrap instead of being cut (and that grows with its container).

    Hidden until it holds a line (``show_lines``): while empty its rows belong to the form above."""
    log = RichLog(id=log_id, max_lines=max_lines, wrap=True, markup=False, highlight=False)
    log.display = False
    return log


def show_lines(log: RichLog, lines: Iterable[Text | str], *, clear: bool = True) -> None:
    """Put ``lines`` in ``log`` (after what it held unless ``clear``); it shows when it holds any."""
    shown = log.display
    if clear:
        log.clear()
        log.display = False
    for line in lines:
        log.write(line if isinstance(line, Text) else Text(line))
        log.display = True
    if log.display != shown:
        keep_focus_in_view(log)


def keep_focus_in_view(widget: Widget) -> None:
    """After a line or log appears or goes, the focused field stays on screen (its form may have
    just lost rows to the log): scrolled into view once the new layout is done."""
    screen = widget.screen

    def scroll() -> None:
        focused = screen.focused
        if focused is not None:
            focused.scroll_visible(animate=False)

    screen.call_after_refresh(scroll)


def show_line(widget: Static, text: str | Text) -> None:
    """A status or error line that takes no row while it says nothing."""
    widget.update(text)
    visible = bool(str(text))
    if widget.display != visible:
        widget.display = visible
        keep_focus_in_view(widget)


TOAST_WIDTH = 76  # app.tcss gives error toasts this width (at most the screen's), so paths fit whole


def wrap_words(text: str, width: int) -> str:
    """``text`` broken into lines of at most ``width`` columns at spaces, and a path longer than a
    line after one of its '/' (never inside a name); what a toast then shows is never cut mid-word."""
    width = max(width, 10)
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            for index, piece in enumerate(_path_pieces(word, width)):
                glue = " " if line and index == 0 else ""
                if line and len(line) + len(glue) + len(piece) > width:
                    lines.append(line)
                    line, glue = "", ""
                line += glue + piece
        lines.append(line)
    return "\n".join(lines)


def _path_pieces(word: str, width: int) -> list[str]:
    if len(word) <= width or "/" not in word:
        return [word]
    pieces, current = [], ""
    for segment in word.replace("/", "/\0").split("\0"):
        if current and len(current) + len(segment) > width:
            pieces.append(current)
            current = ""
        current += segment
    return [*pieces, current] if current else pieces


def log_text(log: RichLog) -> str:
    """What a wrapped log holds, as plain text (for tests and checks)."""
    return "\n".join(strip.text for strip in log.lines)


def job_line(job: Any) -> str:
    """How quitting names a job that keeps running (the same words on every screen)."""
    return (
        f"{job.kind} job {job.id} ({job.ref}, {job.name}, {job.state}) keeps running; ft-hallu tui reattaches"
    )


def error_line(exc: BaseException) -> str:
    """The one line an operator sees: a UserError as written, anything else with its type; through
    redact() as the CLI's is (the last net: no URL password or token reaches the screen)."""
    return redact(str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}")


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
    # Typing starts in the first field (not in the scrolling form around it).
    AUTO_FOCUS = "Input"
    # Width of the form labels; a screen with longer labels sets it from them (never cut).
    LABEL_WIDTH: ClassVar[int] = 16
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
    def ft_app(self) -> StepApp:
        return cast(StepApp, self.app)

    @property
    def workspace(self) -> Workspace:
        """Call it only from thread workers (``step_worker``): every operation touches the store."""
        return self.ft_app.workspace

    @property
    def help_texts(self) -> dict[str, tuple[str, str]]:
        """input id -> (label, help) of every form row, for the help line under the form."""
        if not hasattr(self, "_help_texts"):
            self._help_texts: dict[str, tuple[str, str]] = {}
        return self._help_texts

    def field(
        self, label: str, input_id: str, value: Any = "", placeholder: str = "", help: str = ""
    ) -> Horizontal:
        """A one-line 'label ▶ [input]' row; the label says what the field holds. The focused row
        shows the marker, a bar on its left and its label highlighted (app.tcss), and its help
        (``help``, else the placeholder) in the help line under the form."""
        caption = Label(label, classes="field-label")
        caption.styles.width = max(self.LABEL_WIDTH, len(label) + 1)
        self.help_texts[input_id] = (label, help or placeholder)
        return Horizontal(
            caption,
            Static("▶", classes="field-marker"),
            Input(value="" if value is None else str(value), id=input_id, placeholder=placeholder),
            classes="field",
        )

    def folded(self, title: str, folded_id: str, help: str = "") -> Collapsible:
        """A fold for the advanced rows (``with self.folded(...):``); tab reaches its title, enter
        opens it. Closed, it takes one row."""
        fold = Collapsible(title=title, id=folded_id, collapsed=True, collapsed_symbol="+", expanded_symbol="-")
        self.help_texts[folded_id] = ("", help or "enter opens or closes these settings; tab moves on")
        self.fold_titles[folded_id] = title
        return fold

    @property
    def fold_titles(self) -> dict[str, str]:
        if not hasattr(self, "_fold_titles"):
            self._fold_titles: dict[str, str] = {}
        return self._fold_titles

    @staticmethod
    def help_line() -> Static:
        """The line under a form that shows the focused field's help."""
        return Static("", id="field-help", classes="field-help")

    @guarded
    def on_descendant_focus(self, event: DescendantFocus) -> None:
        """Show the focused field's help under the form (nothing for a table or a button); a fold's
        title gets the same marker as a focused row."""
        widget = event.widget
        key = widget.id
        if isinstance(widget, CollapsibleTitle) and isinstance(widget.parent, Collapsible):
            key = widget.parent.id
            if key in self.fold_titles:
                widget.parent.title = f"▶ {self.fold_titles[key]}"
        label, text = self.help_texts.get(key or "", ("", ""))
        for line in self.query("#field-help").results(Static):
            line.update(Text(f"{label}: {text}" if label and text else text, style="italic"))

    @guarded
    def on_descendant_blur(self, event: DescendantBlur) -> None:
        widget = event.widget
        if isinstance(widget, Input):
            # A value wider than its field is shown from its start once the field is left (it
            # showed the end where typing stopped: "...a single sentence" for a system prompt).
            widget.cursor_position = 0
        if isinstance(widget, CollapsibleTitle) and isinstance(widget.parent, Collapsible):
            title = self.fold_titles.get(widget.parent.id or "")
            if title is not None:
                widget.parent.title = title

    def remembered(self, input_id: str) -> bool:
        """The field holds the operator's value from an earlier session (tui-prefs.json)."""
        saved = self.ft_app.prefs.get(self.STEP)
        return isinstance(saved, dict) and isinstance(saved.get(input_id), str)

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
        # Textual also calls this for each subclass's own on_mount (MRO dispatch): mount once.
        if not self.query("#too-small"):
            self.mount(Static("", id="too-small", classes="too-small"), before=0)
        self.check_size(self.app.size.width, self.app.size.height)
        self.take_handoff()

    @guarded
    def on_screen_resume(self) -> None:
        self.take_handoff()
        self.check_size(self.app.size.width, self.app.size.height)

    @guarded
    def on_resize(self, event: Resize) -> None:
        self.check_size(event.size.width, event.size.height)

    def check_size(self, width: int, height: int) -> None:
        """Below 80x24 a clear note says so at the top instead of a silently broken layout."""
        small = width < MIN_SIZE[0] or height < MIN_SIZE[1]
        for note in self.query("#too-small").results(Static):
            note.update(too_small_text(width, height) if small else "")
            note.display = small

    def take_handoff(self) -> None:
        """Fill the fields another step handed on (what it just wrote), and say so once."""
        values = self.ft_app.take_handoff(self.STEP)
        if not values:
            return
        filled = []
        for input_id, value in values.items():
            found = self.query(f"#{input_id}").results(Input)
            for widget in found:
                widget.value = str(value)
                self.handed[input_id] = str(value)
                if value:  # a field emptied on purpose (an old output name) is not news
                    filled.append(f"{input_id.split('-', 1)[-1]} = {value}")
        if filled:
            self.handoff_filled(filled)
            self.notify("Filled in: " + "; ".join(filled), title=self.TITLE_TEXT, timeout=6, markup=False)

    @property
    def handed(self) -> dict[str, str]:
        """Fields filled by another step's hand-off in this session (a loaded TOML keeps them)."""
        if not hasattr(self, "_handed"):
            saved = (self.ft_app.prefs.get("handed") or {}).get(self.STEP) or {}
            self._handed: dict[str, str] = {k: v for k, v in saved.items() if isinstance(v, str)}
        return self._handed

    def clear_handed(self) -> None:
        """The handed-on values were used (a launch): a TOML loaded later is taken as it is."""
        self.handed.clear()
        handed = self.ft_app.prefs.get("handed")
        if isinstance(handed, dict) and handed.pop(self.STEP, None) is not None:
            self.ft_app.write_prefs()

    def keep_handed(self, source: str) -> list[str]:
        """After loading ``source`` over the form: put the handed-on values back, say which."""
        kept = []
        for input_id, value in self.handed.items():
            if self.query(f"#{input_id}") and self.value(input_id) != value:
                self.set_value(input_id, value)
                kept.append(input_id.split("-", 1)[-1])
        if kept:
            self.notify(
                f"Loaded {source}; kept {', '.join(kept)} from the previous step (just written).",
                markup=False,
            )
        return kept

    def handoff_filled(self, filled: list[str]) -> None:
        """Hook: a screen that shows hand-offs in place (or reloads) does it here."""

    def busy_work(self) -> list[str]:
        """What this step is doing that quitting would affect, one line each ([] when idle)."""
        return []

    def ask(self, title: str, question: str, answers: list[tuple[str, str, Any]], then: Callable) -> None:
        """Ask in a modal; ``then(answer)`` runs (guarded) with the chosen value (None: escape)."""

        def answered(answer: Any) -> None:
            try:
                then(answer)
            except Exception as exc:  # noqa: BLE001 - a failing follow-up is reported, never a crash
                self.report_error(exc)

        self.app.push_screen(ChoiceScreen(title, question, answers), answered)

    def confirm(self, title: str, question: str, yes: str, then: Callable[[], None]) -> None:
        """A yes/no question; ``then()`` runs only on yes."""
        self.ask(title, question, [("y", yes, True), ("n", "No, leave it", False)], lambda a: a and then())

    def remember(self) -> None:
        """Save this screen's form values (called when the operator starts something and on exit)."""
        values = {widget.id: widget.value for widget in self.query(Input) if widget.id}
        self.ft_app.remember(self.STEP, values)

    def report_error(self, exc: BaseException, *, where: str = "", title: str = "") -> str:
        """Show an error as a notification (one line for a UserError); returns the line shown."""
        line = error_line(exc)
        if where:
            line = f"{where}: {line}"
        # markup=False: a path or message with [brackets] is shown as written; broken at spaces and
        # between a path's folders to the toast's width, so no name is cut in two.
        heading = title or (f"{self.TITLE_TEXT} error" if self.TITLE_TEXT else "error")
        width = min(TOAST_WIDTH, self.app.size.width - 2) - 4  # the toast's padding and left border
        self.notify(wrap_words(line, width), title=heading, severity="error", timeout=ERROR_SECONDS, markup=False)
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
