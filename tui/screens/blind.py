"""Blind labelling: one sweep's samples in a seeded order, showing only the prompt, the answer and
plain source sentences (no variant, sampling setting, score or other labeller's label).

Opened from Results (b) for the chosen sweep. The order, what is hidden and where a resumed session
continues all come from ``engine.labels`` through the Workspace (``blind_start``, ``blind_next``,
``blind_label``): this screen only renders the ``BlindItem`` it is given. The labeller's name and
the order's seed are the two fields; enter in either starts (or resumes) that labeller's pass.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Input, Static

from engine.errors import UserError
from engine.labels import LABEL_KEYS, BlindItem, BlindSession, default_labeller
from tui.screens.base import StepScreen, guarded, parse_int, step_bar, step_footer, step_worker

# Footer titles short enough that every key fits in 80 columns.
_SHORT = {"faithful": "Faithful", "hallucinated": "Halluc.", "refusal": "Refusal", "unclear": "Unclear"}


def blind_text(item: BlindItem) -> Text:
    """The item as the labeller reads it; model and source text go in as plain text, never markup."""
    text = Text()
    text.append("prompt: ", style="bold")
    text.append(item.prompt + "\n")
    text.append("answer: ", style="bold")
    text.append(item.text + "\n", style="italic")
    if item.sources:
        text.append("sources near this answer (alphabetical):\n", style="bold")
        for sentence in item.sources:
            text.append(f" - {sentence}\n", style="dim")
    else:
        text.append("sources: none for this answer\n", style="dim")
    return text


class BlindLabelScreen(StepScreen):
    STEP = "blind"  # the preferences section that remembers the labeller and the seed
    TITLE_TEXT = "Blind labels"
    AUTO_FOCUS = "#blind-item"
    LABEL_WIDTH = 10
    BINDINGS = [
        *(
            Binding(
                key, f"label('{label}')", _SHORT[label], id=f"blind.label-{label}",
                tooltip=f"Label this answer {label}",
            )
            for key, label in LABEL_KEYS.items()
        ),
        Binding("s", "skip", "Skip", id="blind.skip", tooltip="Leave this sample for the next pass"),
        Binding(
            "w", "focus_widget('blind-who')", "Who", id="blind.who",
            tooltip="Change the labeller (enter starts)",
        ),
        Binding("escape", "back", "Back", id="blind.back", tooltip="Back to Results"),
    ]

    class Started(Message):
        def __init__(self, session: BlindSession) -> None:
            super().__init__()
            self.session = session

    class Shown(Message):
        def __init__(self, session: BlindSession, item: BlindItem | None, saved: str | None) -> None:
            super().__init__()
            self.session, self.item, self.saved = session, item, saved

    def __init__(self, sweep_id: int) -> None:
        super().__init__()
        self.sweep_id = sweep_id
        self.session: BlindSession | None = None
        self.item: BlindItem | None = None

    def compose(self) -> ComposeResult:
        yield step_bar("results")
        yield self.field("labeller", "blind-who", placeholder="your name (enter starts)")
        yield self.field("seed", "blind-seed", placeholder="order seed (empty: yours, else the default)")
        yield Static("", id="blind-note", classes="hint")
        yield VerticalScroll(Static("", id="blind-item"), id="blind-box")
        yield step_footer()

    def on_mount(self) -> None:
        super().on_mount()
        if not self.value("blind-who"):
            self.set_value("blind-who", default_labeller())
        self.start()

    @on(Input.Submitted)
    @guarded
    def _submitted(self, _event: Input.Submitted) -> None:
        self.start()

    def start(self) -> None:
        """(Re)start the pass of the labeller in the form; the seed field empty: the recorded one."""
        who = self.value("blind-who")
        seed = parse_int(self.value("blind-seed"), field_name="seed")
        self.remember()
        self.item = None
        self.query_one("#blind-item", Static).update("")
        self._start(who, seed)

    @step_worker(group="blind", exclusive=True)
    def _start(self, who: str, seed: int | None) -> None:
        session = self.workspace.blind_start(self.sweep_id, who=who, seed=seed)
        self.post_message(self.Started(session))
        self._show(session, 0, None)

    def _show(self, session: BlindSession, after: int, saved: str | None) -> None:
        item = self.workspace.blind_next(self.sweep_id, who=session.who, seed=session.seed, after=after)
        self.post_message(self.Shown(session, item, saved))

    def on_blind_label_screen_started(self, message: Started) -> None:
        self.session = message.session
        self.set_value("blind-seed", message.session.seed)
        self.remember()
        if message.session.previous_seed is not None:
            self.notify(f"A new order: seed {message.session.seed} (was {message.session.previous_seed}).")
        self.query_one("#blind-box", VerticalScroll).focus()

    def on_blind_label_screen_shown(self, message: Shown) -> None:
        self.session, self.item = message.session, message.item
        note = self.query_one("#blind-note", Static)
        box = self.query_one("#blind-item", Static)
        if message.saved:
            self.notify(message.saved, markup=False)
        if message.item is None:
            note.update(Text(f"Every sample seen by {message.session.who}."))
            box.update(Text("Nothing left in this pass; skipped samples come back: enter starts again."))
            return
        item = message.item
        head = f"{item.position} of {item.total} · {item.left} left for {message.session.who}"
        if item.label:
            head += f" · your label now: {item.label}"
        note.update(Text(head, style="bold"))
        box.update(blind_text(item))
        self.query_one("#blind-box", VerticalScroll).scroll_home(animate=False)

    def _current(self) -> tuple[BlindSession, BlindItem]:
        if self.session is None or self.item is None:
            raise UserError("no sample shown: enter in the labeller field starts the pass")
        return self.session, self.item

    def action_label(self, label: str) -> None:
        session, item = self._current()
        self._label(session, item.position, label)

    @step_worker(group="blind")
    def _label(self, session: BlindSession, position: int, label: str) -> None:
        self.workspace.blind_label(
            self.sweep_id, who=session.who, seed=session.seed, position=position, label=label
        )
        self._show(session, position, f"Saved {label} ({session.who}).")

    def action_skip(self) -> None:
        session, item = self._current()
        self._skip(session, item.position)

    @step_worker(group="blind")
    def _skip(self, session: BlindSession, position: int) -> None:
        self._show(session, position, None)

    def action_back(self) -> None:
        self.app.pop_screen()
