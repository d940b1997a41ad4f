"""Mask: entity, new name, ticker, aliases -> proposed rules with counts, a row-by-row diff preview
with the changes highlighted, accept/reject per rule or row, apply to a NEW file, leak report, undo.

The leak report (the same engine report ``ft-hallu mask leaks`` prints) follows every preview and
every apply: name leaks and the identifying names (products, people, tickers) the plan leaves;
ctrl+n adds those names to the plan with invented replacements. The step counts as done only when
the leak report of the written file is empty.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Static

from engine.errors import UserError
from engine.workspace import LeakReport, MaskPlan, MaskResult, MaskUndo
from tui.screens.base import StepScreen, guarded, step_bar, step_footer, step_worker
from tui.steps import step_key


class ToggleTable(DataTable):
    """A row table whose highlighted row is accepted / rejected with space (or x)."""

    BINDINGS = [
        Binding(
            "space,x", "toggle", "Accept/reject", id="mask.toggle", tooltip="Accept or reject this rule / row"
        )
    ]

    class Toggled(Message):
        def __init__(self, table: ToggleTable, key: str) -> None:
            super().__init__()
            self.table, self.key = table, key

        @property
        def control(self) -> ToggleTable:
            return self.table

    def action_toggle(self) -> None:
        if self.row_count:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
            if key is not None:
                self.post_message(self.Toggled(self, key))


def row_place(plan: Any, row: int, line: int) -> str:
    """Where a row is: a line of a JSONL file, or the n-th record of a JSON array (not a line)."""
    if plan.source is None:
        return f"row {row}"
    name = Path(plan.source.path).name
    if plan.source.format == "jsonl":
        return f"{name} line {line}"
    return f"{name} record {row}"


def highlight_row(plan: Any, row: int) -> Text:
    """The row's changed fields in full (wrapped by the view), each change shown as old -> new."""
    diff = plan.row_diff(row)
    text = Text()
    text.append(f"row {row} ({row_place(plan, row, diff.line)})\n", style="bold")
    by_field: dict[str, list[tuple[Any, bool]]] = {}
    for edit, accepted in zip(diff.edits, diff.accepted, strict=True):
        by_field.setdefault(edit.field, []).append((edit, accepted))
    for field, edits in by_field.items():
        text.append(f"{field}: ", style="bold cyan")
        original = _field_text(plan.records[row].data, edits[0][0].path)
        position = 0
        for edit, accepted in sorted(edits, key=lambda pair: pair[0].start):
            text.append(original[position : edit.start])
            if accepted:
                # The arrow keeps old and new apart where colours are missing (NO_COLOR, mono).
                text.append(edit.old, style="bold red strike")
                text.append("→", style="dim")
                text.append(edit.new, style="bold black on green")
            else:
                text.append(edit.old, style="yellow underline")
                text.append(f"[kept: {edit.rule_id}]", style="dim")
            position = edit.end
        text.append(original[position:])
        text.append("\n")
    return text


# What to do about identifying names, in this screen's keys.
RULE_COLUMNS = ("rule", "on", "hits", "new")
RULES_BOX_WIDTH = 42  # #mask-tables in app.tcss: the width before the table is laid out


def rule_widths(rows: list[tuple[str, str, str, str]], room: int) -> list[int]:
    """Widths of (rule, on, hits, new) within ``room``: on and hits whole, the rule and its
    replacement whole where both fit, else wrapped at spaces (no word cut where the words fit)."""

    def longest(values: list[str], title: str, *, word: bool) -> int:
        parts = [part for value in values for part in (value.split() if word else [value])]
        return max([len(title), *(len(part) for part in parts)])

    rules, replacements = [row[0] for row in rows], [row[3] for row in rows]
    on = longest([row[1] for row in rows], "on", word=False)
    hits = longest([row[2] for row in rows], "hits", word=False)
    left = max(room - on - hits, 8)
    rule, new = longest(rules, "rule", word=False), longest(replacements, "new", word=False)
    if rule + new > left:
        rule_word, new_word = longest(rules, "rule", word=True), longest(replacements, "new", word=True)
        rule = min(rule, max(rule_word, left - new))
        if rule_word + new_word <= left:
            rule = min(rule, left - new_word)
        new = left - rule
    return [rule, on, hits, new]


NAMES_HINT = "ctrl+n masks them too (invented names, in the diff); space on a leak: rule keeps that name"


def leak_text(head: str, report: Any, style: str) -> Text:
    """The engine's leak report lines (those ``ft-hallu mask leaks`` prints) under a head line.
    A Text, not markup: names and snippets from the dataset are shown as they are."""
    return Text("\n".join([head, *report.lines(limit=20, hint=NAMES_HINT)]), style=style)


def _field_text(data: Any, path: tuple[str | int, ...]) -> str:
    for part in path:
        data = data[part]
    return data


class MaskScreen(StepScreen):
    STEP = "mask"
    TITLE_TEXT = "Mask"
    # Short descriptions: at 80 columns the footer must hold all of them plus ctrl+q.
    BINDINGS = [
        Binding(
            "ctrl+r", "preview", "Preview", id="mask.preview",
            tooltip="Propose the rules and preview every change",
        ),
        Binding("ctrl+s", "apply", "Apply", id="mask.apply", tooltip="Write the accepted changes to a NEW file"),
        Binding(
            "ctrl+z", "undo", "Undo", id="mask.undo",
            tooltip="Undo the last applied masking (removes its output)",
        ),
        Binding("ctrl+o", "focus_widget('mask-file')", "Form", id="mask.form", tooltip="Move to the form"),
        Binding(
            "ctrl+g", "focus_widget('mask-rules')", "Rules", id="mask.rules",
            tooltip="Move to the rules table (space accepts or rejects a rule)",
        ),
        Binding(
            "ctrl+l", "focus_widget('mask-rows')", "Rows", id="mask.rows",
            tooltip="Move to the rows table (space accepts or rejects a row)",
        ),
        # Hidden (the footer is full at 80 columns); the leak report says it when names remain.
        Binding(
            "ctrl+n", "mask_names", "Mask names", id="mask.names", show=False,
            tooltip="Mask the identifying names too",
        ),
        # Hidden (the footer is full at 80 columns): scroll a long diff from the tables; in docs/TUI.md.
        Binding(
            "shift+down", "scroll_diff(3)", "Diff down", show=False, priority=True, id="mask.diff-down",
            tooltip="Scroll the diff down",
        ),
        Binding(
            "shift+up", "scroll_diff(-3)", "Diff up", show=False, priority=True, id="mask.diff-up",
            tooltip="Scroll the diff up",
        ),
    ]  # fmt: skip

    class Applied(Message):
        def __init__(self, result: MaskResult) -> None:
            super().__init__()
            self.result = result

    class Undone(Message):
        def __init__(self, undone: MaskUndo) -> None:
            super().__init__()
            self.undone = undone

    class Reported(Message):
        def __init__(self, plan: MaskPlan, report: LeakReport, serial: int) -> None:
            super().__init__()
            self.plan, self.report, self.serial = plan, report, serial

    class NamesAdded(Message):
        def __init__(self, plan: MaskPlan, added: int) -> None:
            super().__init__()
            self.plan, self.added = plan, added

    def __init__(self) -> None:
        super().__init__()
        self.plan: MaskPlan | None = None
        self.form: dict[str, Any] = {}
        self.done = False
        self.last_mask_id: int | None = None  # the masking ctrl+z undoes
        self.report_serial = 0  # a preview report older than the latest preview or apply is dropped

    def compose(self) -> ComposeResult:
        yield step_bar(self.STEP)
        yield Static(
            "Mask: replace the company's name; nothing is written until ctrl+s", classes="step-title"
        )
        with Vertical(classes="form"):
            yield self.field(
                "QA file", "mask-file", "", "JSON or JSONL with question/answer/context",
                help="the QA set to mask (Generate or Check fills it in); it is never written",
            )  # fmt: skip
            yield self.field(
                "entity", "mask-entity", "", "the real name, e.g. NVIDIA",
                help="the company's name as written, e.g. NVIDIA; its possessive and suffixes are found too",
            )  # fmt: skip
            yield self.field(
                "new name", "mask-new", "", "the invented name, e.g. EGNIVIA",
                help="the invented name that replaces it everywhere, e.g. EGNIVIA",
            )  # fmt: skip
            yield self.field(
                "ticker", "mask-ticker", "", "e.g. NVDA (optional)", help="the stock ticker, replaced too (optional)"
            )
            yield self.field(
                "aliases", "mask-aliases", "", "comma separated; OLD=NEW sets a replacement",
                help="other names of the company, comma separated; OLD=NEW sets the replacement",
            )  # fmt: skip
            yield self.field(
                "output file", "mask-out", "", "a NEW file (default: <file>.masked.jsonl)",
                help="a NEW file for the masked rows (default: <file>.masked.jsonl); ctrl+z undoes it",
            )  # fmt: skip
        yield self.help_line()
        with Horizontal(id="mask-review"):
            with Vertical(id="mask-tables"):
                yield ToggleTable(id="mask-rules", cursor_type="row")
                yield ToggleTable(id="mask-rows", cursor_type="row")
            with VerticalScroll(id="mask-diff-box"):
                yield Static("ctrl+r proposes the rules and previews every change.", id="mask-diff")
        with VerticalScroll(id="mask-leaks-box"):
            yield Static("", id="mask-leaks")
        yield step_footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#mask-rules", DataTable).add_columns(*RULE_COLUMNS)
        self.query_one("#mask-rows", DataTable).add_columns("row", "at", "edits", "on")

    # ------------------------------------------------------------ preview

    def action_preview(self) -> None:
        # Any error (UserError or not) is reported by the StepScreen guard; the old plan stays.
        # Planning reads only the QA file (not the store), so it runs here and the diff is at hand.
        path = self.value("mask-file")
        if not path:
            raise UserError("QA file: required")
        aliases = [a.strip() for a in self.value("mask-aliases").split(",") if a.strip()]
        self.plan = self.workspace.plan_mask(
            path,
            entity=self.value("mask-entity"),
            new_name=self.value("mask-new"),
            ticker=self.value("mask-ticker") or None,
            aliases=aliases,
        )
        self.form = {"entity": self.value("mask-entity"), "new_name": self.value("mask-new")}
        self.done = False
        self.remember()
        self.query_one("#mask-leaks", Static).update(Text("Leak report: checking what the plan leaves..."))
        self.show_plan()
        accepted = len(self.plan.accepted_edits)
        self.notify(
            f"{len(self.plan.edits)} occurrence(s) in {len(self.plan.rows_with_edits)} row(s); {accepted} to replace."
        )

    def show_plan(self) -> None:
        """Tables, the first row's diff and (in a worker) the leak report of the current plan."""
        assert self.plan is not None
        self.refresh_rules()
        self.refresh_rows()
        rows = self.plan.rows_with_edits
        if rows:
            self.show_row(rows[0])
        else:
            self.query_one("#mask-diff", Static).update(Text("No occurrence found: nothing to replace."))
        self.query_one("#mask-rules", DataTable).focus()
        self.start_report()

    def start_report(self) -> None:
        assert self.plan is not None
        self.report_serial += 1
        self._report(self.plan, self.report_serial)

    @step_worker(group="mask-report", exclusive=True)
    def _report(self, plan: MaskPlan, serial: int) -> None:
        self.post_message(self.Reported(plan, self.workspace.mask_leak_report(plan), serial))

    def on_mask_screen_reported(self, message: Reported) -> None:
        if message.serial != self.report_serial:  # a newer preview or an apply came since
            return
        report = message.report
        head = "Preview: " + (
            "nothing identifying would remain." if report.clean else "this plan would leave:"
        )
        style = "green" if report.clean else "yellow"
        self.query_one("#mask-leaks", Static).update(leak_text(head, report, style))

    def action_mask_names(self) -> None:
        if self.plan is None:
            self.notify("Preview first (ctrl+r): the names come from the plan.", severity="warning")
            return
        self.query_one("#mask-leaks", Static).update(Text("Adding the identifying names to the plan..."))
        self._add_names(self.plan)

    @step_worker(group="mask-names", exclusive=True)
    def _add_names(self, plan: MaskPlan) -> None:
        before = len(plan.rules)
        added = self.workspace.mask_identifying_names(plan)
        self.post_message(self.NamesAdded(added, len(added.rules) - before))

    def on_mask_screen_names_added(self, message: NamesAdded) -> None:
        self.plan = message.plan
        self.done = False
        self.show_plan()
        if message.added:
            self.notify(
                f"{message.added} identifying name(s) added as leak: rules (space on one keeps that name).",
                markup=False,
            )
        else:
            self.notify("No identifying name left to add.")

    def refresh_rules(self) -> None:
        assert self.plan is not None
        table = self.query_one("#mask-rules", DataTable)
        cursor = table.cursor_row
        counts = self.plan.counts()
        rows = [
            (
                rule.id,
                "no" if rule.id in self.plan.rejected_rules else "yes",
                str(sum(counts[rule.id].values())),
                rule.replacement,
            )
            for rule in self.plan.rules
        ]
        # Widths that fit the box: a long rule or name (leak:Mara Lindqvist) wraps onto a second
        # line instead of being cut or pushing the table into a sideways scroll.
        table.clear(columns=True)
        for title, width in zip(RULE_COLUMNS, rule_widths(rows, self.rules_room(table)), strict=True):
            table.add_column(title, width=width)
        for values in rows:
            rule_id, on, hits, replacement = values
            table.add_row(Text(rule_id), on, hits, Text(replacement), key=rule_id, height=None)
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1))

    @staticmethod
    def rules_room(table: DataTable) -> int:
        """Columns the rule table's cells may use: its width less the focus bar, the vertical
        scrollbar and each column's padding."""
        width = table.outer_size.width or RULES_BOX_WIDTH  # the same focused or not
        return width - 2 - 2 * table.cell_padding * len(RULE_COLUMNS)

    def refresh_rows(self) -> None:
        assert self.plan is not None
        table = self.query_one("#mask-rows", DataTable)
        cursor = table.cursor_row
        table.clear()
        for row in self.plan.rows_with_edits:
            diff_edits = [e for e in self.plan.edits if e.row == row]
            accepted = sum(1 for e in diff_edits if self.plan.is_accepted(e))
            on = "no" if row in self.plan.rejected_rows else "yes"
            jsonl = self.plan.source is not None and self.plan.source.format == "jsonl"
            at = f"l{diff_edits[0].line}" if jsonl else f"#{row}"  # a line, or a record number
            table.add_row(str(row), at, f"{accepted}/{len(diff_edits)}", on, key=str(row))
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1))

    def action_scroll_diff(self, lines: int) -> None:
        box = self.query_one("#mask-diff-box", VerticalScroll)
        box.scroll_relative(y=lines, animate=False)

    def show_row(self, row: int) -> None:
        if self.plan is not None:
            self.query_one("#mask-diff", Static).update(highlight_row(self.plan, row))

    @on(DataTable.RowHighlighted, "#mask-rows")
    @guarded
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.show_row(int(event.row_key.value))

    @on(ToggleTable.Toggled)
    @guarded
    def _toggled(self, event: ToggleTable.Toggled) -> None:
        if self.plan is None:
            return
        if event.table.id == "mask-rules":
            if event.key in self.plan.rejected_rules:
                self.plan.accept_rule(event.key)
            else:
                self.plan.reject_rule(event.key)
        else:
            row = int(event.key)
            if row in self.plan.rejected_rows:
                self.plan.accept_row(row)
            else:
                self.plan.reject_row(row)
        self.done = False
        self.refresh_rules()
        self.refresh_rows()
        rows_table = self.query_one("#mask-rows", DataTable)
        if rows_table.row_count:
            key = rows_table.coordinate_to_cell_key(rows_table.cursor_coordinate).row_key.value
            if key is not None:
                self.show_row(int(key))
        self.start_report()  # the choices change what would be left

    # ------------------------------------------------------------ apply and leak report

    def output_path(self) -> Path:
        out = self.value("mask-out")
        if out:
            return Path(out).expanduser()
        source = Path(self.value("mask-file")).expanduser()
        return source.with_name(f"{source.stem}.masked.jsonl")

    def action_apply(self) -> None:
        if self.plan is None:
            self.notify("Preview first (ctrl+r): nothing is applied unseen.", severity="warning")
            return
        out = self.output_path()
        self.remember()
        if out.is_file():  # asked before anything is written; the engine refuses it otherwise
            self.confirm(
                "Overwrite?",
                f"{out} already exists. Overwrite it with the masked rows? "
                "(ctrl+z afterwards restores what it replaces)",
                "Yes, overwrite it",
                lambda: self.start_apply(out, overwrite=True),
            )
            return
        self.start_apply(out, overwrite=False)

    def start_apply(self, out: Path, *, overwrite: bool) -> None:
        assert self.plan is not None
        self.report_serial += 1  # the written file's report replaces any preview report
        self.query_one("#mask-leaks", Static).update(Text(f"Writing {out}..."))
        self._apply(self.plan, out, self.form.get("entity"), self.form.get("new_name"), overwrite)

    @step_worker(group="mask-apply", exclusive=True)
    def _apply(
        self, plan: MaskPlan, out: Path, entity: str | None, new_name: str | None, overwrite: bool
    ) -> None:
        # A failure is reported by StepScreen.on_worker_state_changed -> worker_failed below.
        result = self.workspace.apply_mask(plan, out, entity=entity, new_name=new_name, overwrite=overwrite)
        self.post_message(self.Applied(result))

    def worker_failed(self, worker: Any, line: str) -> None:
        if worker.group == "mask-apply":  # the input file is untouched; say so in place
            self.query_one("#mask-leaks", Static).update(Text(f"Not written: {line}", style="bold red"))

    def on_mask_screen_applied(self, message: Applied) -> None:
        leaks_box = self.query_one("#mask-leaks", Static)
        result = message.result
        self.last_mask_id = result.mask_id
        report = result.leaks
        head = f"Wrote {result.output_path} ({result.rows} rows, {result.edits_applied} edits). "
        if report.clean:
            self.done = True
            leaks_box.update(leak_text(head + "Leak report empty: step done.", report, "green"))
            written = str(Path(result.output_path).resolve())
            self.ft_app.handoff("finetune", {"ft-dataset": written})
            new_name = self.form.get("new_name") or ""
            self.ft_app.handoff(
                "sweep", {"sw-dataset": written, **({"sw-entity_name": new_name} if new_name else {})}
            )
            self.notify(
                f"Masked file written; leak report is empty. {step_key('finetune')} fine-tunes on it (filled in)."
            )
        else:
            self.done = False
            leaks_box.update(leak_text(head + "LEAKS REMAIN (step not done):", report, "bold red"))
            remain = [f"{len(report.leaks)} name leak(s)"] if report.leaks else []
            if report.names:
                remain.append(f"{len(report.names)} identifying name(s) (ctrl+n masks them)")
            self.notify(
                f"{' and '.join(remain)} remain in {result.output_path}.", severity="warning", markup=False
            )

    # ------------------------------------------------------------ undo

    def action_undo(self) -> None:
        """Undo the last masking applied here (or, after a restart, the latest one in the store).

        The engine removes the output (or restores what it replaced) and refuses when the file
        changed since; the QA input was never written, so nothing else needs restoring.
        """
        which = f"masking {self.last_mask_id}" if self.last_mask_id else "the latest applied masking"
        self.confirm(
            "Undo the masking?",
            f"Undo {which}: its output file is removed (or what it replaced is restored). "
            "The QA input is not touched.",
            "Yes, undo it",
            lambda: self._undo(self.last_mask_id),
        )

    @step_worker(group="mask-undo", exclusive=True)
    def _undo(self, mask_id: int | None) -> None:
        # A refusal (nothing to undo, file changed) is reported by StepScreen.on_worker_state_changed.
        self.post_message(self.Undone(self.workspace.undo_mask(mask_id)))

    def on_mask_screen_undone(self, message: Undone) -> None:
        undone = message.undone
        self.last_mask_id = None
        self.done = False
        self.query_one("#mask-leaks", Static).update(
            Text(f"Undone masking {undone.mask_id}: {undone.message}.", style="yellow")
        )
        self.notify(f"Undone masking {undone.mask_id}: {undone.message}.", markup=False)
