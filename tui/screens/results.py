"""Results: the sweeps in the store; per cell (T, p, k, prompt) base | fine-tuned | difference for the
summary metrics, with a legend; the chosen cell's samples of both variants side by side, and a
human label on any of them.

Every read goes through the workspace in a thread worker; the worker posts what it read as a typed
message and the handler fills the tables, so the UI thread never waits on the store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Static

from engine.errors import UserError
from engine.labels import LABEL_KEYS
from engine.metrics import catalog
from engine.workspace import Cell, CellSamples, SweepInfo
from tui.screens.base import StepScreen, guarded, step_bar, step_footer, step_worker
from tui.screens.blind import BlindLabelScreen
from tui.steps import step_key

# The summary metrics in catalogue order: (cell metric, short title).
METRIC_COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (name, catalog.cell_metric(name).title) for name in catalog.SUMMARY_METRICS
)
SWEEP_COLUMNS = ("id", "name", "status", "rows", "variants", "created")
VARIANT_SHORT = {"base": "b", "finetuned": "ft"}
DELTA = "Δ"


def _num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _delta(tuned: float | None, base: float | None) -> Text:
    if tuned is None or base is None:
        return Text("-")
    diff = tuned - base
    return Text(f"{diff:+.2f}", style="bold" if abs(diff) >= 0.005 else "dim")


def variant_short(variant: str) -> str:
    return VARIANT_SHORT.get(variant, variant[:5])


@dataclass(frozen=True)
class GridCell:
    """One (T, p, k, prompt) cell with every variant's aggregate: the row of the comparison table."""

    temperature: float
    top_p: float
    top_k: int
    prompt_id: str
    by_variant: dict[str, Cell]

    @property
    def key(self) -> str:
        return json.dumps([self.temperature, self.top_p, self.top_k, self.prompt_id])

    def value(self, variant: str, metric: str) -> float | None:
        cell = self.by_variant.get(variant)
        return cell.value(metric) if cell is not None else None


def group_cells(cells: list[Cell]) -> list[GridCell]:
    grouped: dict[tuple[float, float, int, str], dict[str, Cell]] = {}
    for cell in cells:
        k = cell.key
        grouped.setdefault((k.temperature, k.top_p, k.top_k, k.prompt_id), {})[k.variant] = cell
    return [
        GridCell(t, p, k, prompt, by_variant)
        for (t, p, k, prompt), by_variant in sorted(
            grouped.items(), key=lambda item: (item[0][3], item[0][:3])
        )
    ]


def legend(variants: tuple[str, ...]) -> Text:
    text = Text()
    shorts = ", ".join(f"{variant_short(v)} = {v}" for v in variants)
    if len(variants) > 1:
        shorts += f", {DELTA} = fine-tuned - base; n = samples per variant"
    text.append(shorts + ". ", style="bold")
    text.append("; ".join(f"{title} = {catalog.metric_label(name)}" for name, title in METRIC_COLUMNS))
    return text


class ResultsScreen(StepScreen):
    STEP = "results"
    TITLE_TEXT = "Results"
    AUTO_FOCUS = "#results-sweeps"
    BINDINGS = [
        Binding("r", "reload", "Reload", id="results.reload", tooltip="Read the stored sweeps again"),
        Binding(
            "m", "score", "Score", id="results.score",
            tooltip="Compute the metrics the sweep's samples still lack",
        ),
        Binding(
            "s", "focus_widget('results-sweeps')", "Sweeps", id="results.sweeps",
            tooltip="Move to the sweep list",
        ),
        Binding(
            "c", "focus_widget('results-cells')", "Cells", id="results.cells",
            tooltip="Move to the cell table",
        ),
        Binding("n", "move_sample(1)", "Next", id="results.next", tooltip="Next sample of the cell"),
        Binding("p", "move_sample(-1)", "Prev", id="results.prev", tooltip="Previous sample of the cell"),
        Binding("v", "other_side", "Side", id="results.side", tooltip="Move to the other variant's sample"),
        Binding("l", "label", "Label", id="results.label", tooltip="Set a human label on the marked sample"),
        Binding(
            "b", "blind", "Blind", id="results.blind",
            tooltip="Label this sweep blind: no variant, settings or scores",
        ),
    ]  # fmt: skip

    class SweepsLoaded(Message):
        def __init__(self, sweeps: list[SweepInfo]) -> None:
            super().__init__()
            self.sweeps = sweeps

    class CellsLoaded(Message):
        def __init__(self, sweep_id: int, cells: list[Cell]) -> None:
            super().__init__()
            self.sweep_id, self.cells = sweep_id, cells

    class SamplesLoaded(Message):
        def __init__(self, key: str, samples: CellSamples, labels: dict[int, str]) -> None:
            super().__init__()
            self.key, self.samples, self.labels = key, samples, labels

    class Scored(Message):
        def __init__(self, sweep_id: int, scored: int) -> None:
            super().__init__()
            self.sweep_id = sweep_id
            self.scored = scored

    class Labelled(Message):
        def __init__(self, generation_id: int, label: str, who: str) -> None:
            super().__init__()
            self.generation_id, self.label, self.who = generation_id, label, who

    def __init__(self) -> None:
        super().__init__()
        self.sweep_id: int | None = None
        self.wanted_sweep: int | None = None  # the sweep whose cells are being read
        self.wanted_cell: tuple[int, str] | None = None
        self.grid_cells: dict[str, GridCell] = {}
        self.variants: tuple[str, ...] = ()
        self.samples: CellSamples | None = None
        self.labels: dict[int, str] = {}
        self.mark: tuple[int, int] = (0, 0)  # (row of the cell's samples, variant column) to label

    def compose(self) -> ComposeResult:
        yield step_bar(self.STEP)  # no title line: at 80x24 every row goes to the comparison
        yield DataTable(id="results-sweeps", cursor_type="row", zebra_stripes=True)
        yield Static("", id="results-note", classes="hint")
        yield Static("", id="results-legend", classes="hint")
        yield DataTable(id="results-cells", cursor_type="row", zebra_stripes=True, header_height=2)
        yield Static("", id="results-prompt", classes="hint")
        yield Horizontal(id="results-sides")
        yield step_footer()

    def on_mount(self) -> None:
        super().on_mount()
        sweeps = self.query_one("#results-sweeps", DataTable)
        sweeps.add_columns(*SWEEP_COLUMNS)
        self.action_reload()
        sweeps.focus()

    def on_screen_resume(self) -> None:
        self.take_handoff()
        self.action_reload()

    def take_handoff(self) -> None:
        """A sweep handed on (just finished, or identical to a new config) becomes the chosen one."""
        wanted = self.ft_app.take_handoff(self.STEP).get("sweep")
        if wanted and wanted.isdigit():
            self.sweep_id = None
            self.wanted_sweep = int(wanted)

    def worker_failed(self, worker, line: str) -> None:
        if worker.group == "results-sweeps":
            self.query_one("#results-note", Static).update(Text(f"reading sweeps: {line}"))

    # ------------------------------------------------------------ sweeps

    def action_reload(self) -> None:
        self._load_sweeps()

    @step_worker(group="results-sweeps", exclusive=True)
    def _load_sweeps(self) -> None:
        self.post_message(self.SweepsLoaded(self.workspace.sweeps()))

    def on_results_screen_sweeps_loaded(self, message: SweepsLoaded) -> None:
        sweeps = message.sweeps
        table = self.query_one("#results-sweeps", DataTable)
        selected = self.sweep_id or self.wanted_sweep
        rows = [
            (
                str(sweep.id),
                sweep.name,
                sweep.status,
                f"{sweep.generation_count}/{sweep.expected_rows or '?'}",
                ",".join(sweep.variants) or "-",
                sweep.created_at[:16].replace("T", " "),
            )
            for sweep in sweeps
        ]
        # Widths from the content (see the cell table): a name or state is never cut.
        table.clear(columns=True)
        for index, title in enumerate(SWEEP_COLUMNS):
            table.add_column(title, width=max([len(title), *(len(row[index]) for row in rows)]))
        for sweep, row in zip(sweeps, rows, strict=True):
            table.add_row(*(Text(value) for value in row), key=str(sweep.id))
        note = self.query_one("#results-note", Static)
        if not sweeps:
            note.update(f"No sweeps in the store yet: run one on the Sweep step ({step_key('sweep')}).")
            return
        if selected is not None and any(s.id == selected for s in sweeps):
            table.move_cursor(row=table.get_row_index(str(selected)))
            if self.sweep_id != selected:
                self.show_sweep(selected)
        else:
            self.show_sweep(sweeps[0].id)

    @on(DataTable.RowHighlighted, "#results-sweeps")
    @guarded
    def _sweep_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None and int(event.row_key.value) != self.sweep_id:
            self.show_sweep(int(event.row_key.value))

    @on(DataTable.RowSelected, "#results-sweeps")
    @guarded
    def _sweep_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            if int(event.row_key.value) != self.sweep_id:
                self.show_sweep(int(event.row_key.value))
            self.query_one("#results-cells", DataTable).focus()

    def show_sweep(self, sweep_id: int) -> None:
        """Read the sweep's cells (scored ones with their metrics) and fill the cell table."""
        self.wanted_sweep = sweep_id
        self._load_cells(sweep_id)

    @step_worker(group="results-cells", exclusive=True)
    def _load_cells(self, sweep_id: int) -> None:
        self.post_message(self.CellsLoaded(sweep_id, self.workspace.cells(sweep_id)))

    def on_results_screen_cells_loaded(self, message: CellsLoaded) -> None:
        if message.sweep_id != self.wanted_sweep:
            return  # the operator moved on to another sweep meanwhile
        sweep_id, cells = message.sweep_id, message.cells
        scored = any(cell.scored for cell in cells)
        present = {cell.key.variant for cell in cells}
        variants = tuple(sorted(present, key=lambda v: (v != "base", v)))
        table = self.query_one("#results-cells", DataTable)
        # Re-showing the same sweep (reload, scoring) keeps the operator on the cell they chose.
        keep_row = table.cursor_row if self.sweep_id == sweep_id and self.grid_cells else 0
        table.clear(columns=True)
        grid = group_cells(cells)
        self.grid_cells = {cell.key: cell for cell in grid}
        self.variants = variants
        # Fixed widths from the content: auto-widths are applied only on the table's next refresh
        # after rows arrive, so a freshly filled, unfocused table was drawn at header widths.
        prompt_width = max([len("prompt"), *(len(c.prompt_id) for c in grid)])
        n_text = {
            c.key: "/".join(str(c.by_variant[v].n) if v in c.by_variant else "0" for v in variants)
            for c in grid
        }
        n_width = max([1, *(len(text) for text in n_text.values())])
        for title, width in (("T", 4), ("p", 4), ("k", 3), ("prompt", prompt_width), ("n", n_width)):
            table.add_column(Text(f"\n{title}"), width=width)
        table.fixed_columns = 5  # the cell stays in view while left/right scroll the metrics
        others = [v for v in variants if v != "base"]
        if scored:
            for _name, title in METRIC_COLUMNS:
                for index, variant in enumerate(variants):
                    head = title if index == 0 else ""
                    table.add_column(Text(f"{head}\n{variant_short(variant)}"), width=max(len(title), 5))
                if "base" in variants:
                    for other in others:
                        label = DELTA if len(others) == 1 else f"{DELTA}{variant_short(other)}"
                        table.add_column(Text(f"\n{label}"), width=5)
        for cell in grid:
            values: list[Any] = [
                _num(cell.temperature),
                _num(cell.top_p),
                str(cell.top_k),
                Text(cell.prompt_id),
                n_text[cell.key],
            ]
            if scored:
                for name, _title in METRIC_COLUMNS:
                    values += [_num(cell.value(v, name)) for v in variants]
                    if "base" in variants:
                        values += [_delta(cell.value(o, name), cell.value("base", name)) for o in others]
            table.add_row(*values, key=cell.key)
        if 0 < keep_row < table.row_count:
            table.move_cursor(row=keep_row)
        self.sweep_id = sweep_id
        note = self.query_one("#results-note", Static)
        self.query_one("#results-legend", Static).update(legend(variants) if scored else "")
        if not cells:
            note.update(f"Sweep {sweep_id} has no generations yet.")
        elif scored:
            note.update(f"Sweep {sweep_id}: {len(grid)} cells x {len(variants)} variant(s). c: cells")
        else:
            note.update(f"Sweep {sweep_id}: {len(grid)} cells, metrics not computed yet (m scores them)")
        self.clear_samples()
        if grid:
            self.show_samples(sweep_id, grid[min(keep_row, len(grid) - 1)].key)

    # ------------------------------------------------------------ samples of a cell, side by side

    def clear_samples(self) -> None:
        self.samples = None
        self.query_one("#results-prompt", Static).update("")
        self.query_one("#results-sides", Horizontal).remove_children()

    @on(DataTable.RowHighlighted, "#results-cells")
    @on(DataTable.RowSelected, "#results-cells")
    @guarded
    def _cell_chosen(self, event: DataTable.RowHighlighted | DataTable.RowSelected) -> None:
        key = str(event.row_key.value)
        if key in self.grid_cells and self.sweep_id is not None and self.wanted_cell != (self.sweep_id, key):
            self.show_samples(self.sweep_id, key)

    def show_samples(self, sweep_id: int, key: str) -> None:
        self.wanted_cell = (sweep_id, key)
        self._load_samples(sweep_id, key)

    @step_worker(group="results-samples", exclusive=True)
    def _load_samples(self, sweep_id: int, key: str) -> None:
        cell = self.grid_cells[key]
        samples = self.workspace.cell_samples(
            sweep_id,
            temperature=cell.temperature,
            top_p=cell.top_p,
            top_k=cell.top_k,
            prompt_id=cell.prompt_id,
        )
        labels: dict[int, str] = {}
        for row in samples.rows:
            for sample in row.by_variant.values():
                label = self.workspace.label_of(sample.generation_id)
                if label:
                    labels[sample.generation_id] = label
        self.post_message(self.SamplesLoaded(key, samples, labels))

    def on_results_screen_samples_loaded(self, message: SamplesLoaded) -> None:
        if self.wanted_cell != (message.samples.sweep_id, message.key):
            return
        same_cell = self.samples is not None and self.wanted_cell == (self.sweep_id, message.key)
        self.samples, self.labels = message.samples, message.labels
        if not same_cell:
            self.mark = (0, 0)
        self.draw_samples()

    def draw_samples(self) -> None:
        samples = self.samples
        sides = self.query_one("#results-sides", Horizontal)
        if samples is None:
            return
        head = Text()
        head.append(f"T={samples.temperature:g} p={samples.top_p:g} k={samples.top_k}  ", style="bold")
        if samples.prompt is not None:
            head.append(f"prompt: {samples.prompt}", style="italic")
        if samples.reference:
            head.append(f"  reference: {samples.reference}", style="green")
        self.query_one("#results-prompt", Static).update(head)
        mark_row, mark_side = self.mark
        boxes = []
        for side, variant in enumerate(samples.variants):
            text = Text(f"{variant}\n", style="bold underline")
            for index, row in enumerate(samples.rows):
                sample = row.get(variant)
                if sample is None:
                    continue
                marked = (index, side) == (mark_row, mark_side)
                label = self.labels.get(sample.generation_id)
                text.append(f"#{sample.sample_index}", style="bold reverse" if marked else "bold cyan")
                if label:
                    text.append(f" [{label}]", style="magenta")
                text.append(" " + " ".join(sample.text.split()) + "\n")
            box = VerticalScroll(Static(text), classes="results-side")
            boxes.append(box)
        sides.remove_children()
        sides.mount_all(boxes)

    def action_move_sample(self, step: int) -> None:
        if self.samples is None or not self.samples.rows:
            raise UserError("no samples shown: pick a cell first (c, then up/down)")
        row, side = self.mark
        self.mark = ((row + step) % len(self.samples.rows), side)
        self.draw_samples()

    def action_other_side(self) -> None:
        if self.samples is None or not self.samples.variants:
            raise UserError("no samples shown: pick a cell first (c, then up/down)")
        row, side = self.mark
        self.mark = (row, (side + 1) % len(self.samples.variants))
        self.draw_samples()

    def marked_sample(self):
        if self.samples is None or not self.samples.rows:
            return None
        row, side = self.mark
        variant = self.samples.variants[side % len(self.samples.variants)]
        return self.samples.rows[row % len(self.samples.rows)].get(variant)

    def action_label(self) -> None:
        sample = self.marked_sample()
        if sample is None:
            raise UserError("no sample marked: pick a cell (c), then n/p and v choose the sample")
        answers = [(key, label, label) for key, label in LABEL_KEYS.items()]
        preview = " ".join(sample.text.split())
        self.ask(
            f"Label {sample.variant} sample #{sample.sample_index}",
            preview[:600],
            answers,
            lambda label: label and self._label(sample.generation_id, label),
        )

    def action_blind(self) -> None:
        if self.sweep_id is None:
            raise UserError("no sweep chosen: pick one in the sweeps table (s)")
        self.app.push_screen(BlindLabelScreen(self.sweep_id))

    @step_worker(group="results-label")
    def _label(self, generation_id: int, label: str) -> None:
        who = self.workspace.set_label(generation_id, label)
        self.post_message(self.Labelled(generation_id, label, who))

    def on_results_screen_labelled(self, message: Labelled) -> None:
        self.labels[message.generation_id] = message.label
        self.draw_samples()
        self.notify(f"Labelled generation {message.generation_id} {message.label} ({message.who}).")

    # ------------------------------------------------------------ scoring

    def action_score(self) -> None:
        if self.sweep_id is None:
            self.notify("No sweep selected.", severity="warning")
            return
        self.notify(f"Scoring sweep {self.sweep_id}...")
        self._score(self.sweep_id)

    @step_worker(group="results-score", exclusive=True)
    def _score(self, sweep_id: int) -> None:
        # A failure is reported by StepScreen.on_worker_state_changed.
        self.post_message(self.Scored(sweep_id, self.workspace.score(sweep_id)))

    def on_results_screen_scored(self, message: Scored) -> None:
        self.notify(f"Sweep {message.sweep_id}: {message.scored} generations scored.")
        if self.sweep_id == message.sweep_id:
            self.show_sweep(message.sweep_id)
