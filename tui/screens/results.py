"""Results: the sweeps in the store, a per-cell table with the main metrics, a chosen cell's samples.

Every read goes through the workspace in a thread worker; the worker posts what it read as a typed
message and the handler fills the tables, so the UI thread never waits on the store.
"""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Static

from engine.workspace import Cell, CellKey, CellSamples, SweepInfo
from tui.screens.base import StepScreen, guarded, step_bar, step_footer, step_worker

# (column title, cell metric) shown per cell; the full set is engine.workspace.CELL_METRICS.
METRIC_COLUMNS: tuple[tuple[str, str], ...] = (
    ("refus", "refusal_rate"),
    ("F1", "token_f1"),
    ("ground", "grounding"),
    ("entity", "uses_entity_rate"),
    ("entropy", "semantic_entropy"),
)


def _num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


class ResultsScreen(StepScreen):
    STEP = "results"
    TITLE_TEXT = "Results"
    BINDINGS = [
        Binding("r", "reload", "Reload"),
        Binding("m", "score", "Score metrics"),
        Binding("s", "focus_widget('results-sweeps')", "Sweeps"),
        Binding("c", "focus_widget('results-cells')", "Cells"),
    ]

    class SweepsLoaded(Message):
        def __init__(self, sweeps: list[SweepInfo]) -> None:
            super().__init__()
            self.sweeps = sweeps

    class CellsLoaded(Message):
        def __init__(self, sweep_id: int, cells: list[Cell]) -> None:
            super().__init__()
            self.sweep_id, self.cells = sweep_id, cells

    class SamplesLoaded(Message):
        def __init__(self, key: CellKey, samples: CellSamples) -> None:
            super().__init__()
            self.key, self.samples = key, samples

    class Scored(Message):
        def __init__(self, sweep_id: int, scored: int) -> None:
            super().__init__()
            self.sweep_id = sweep_id
            self.scored = scored

    def __init__(self) -> None:
        super().__init__()
        self.sweep_id: int | None = None
        self.wanted_sweep: int | None = None  # the sweep whose cells are being read
        self.wanted_cell: tuple[int, CellKey] | None = None
        self.cell_keys: dict[str, CellKey] = {}

    def compose(self) -> ComposeResult:
        yield step_bar(self.STEP)
        yield Static("Results: sweeps in the store (enter or arrows pick one)", classes="step-title")
        yield DataTable(id="results-sweeps", cursor_type="row", zebra_stripes=True)
        yield Static("", id="results-note", classes="hint")
        yield DataTable(id="results-cells", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="results-samples-box"):
            yield Static("", id="results-samples")
        yield step_footer()

    def on_mount(self) -> None:
        super().on_mount()
        sweeps = self.query_one("#results-sweeps", DataTable)
        sweeps.add_columns("id", "name", "status", "rows", "variants", "created")
        self.action_reload()
        sweeps.focus()

    def on_screen_resume(self) -> None:
        self.action_reload()

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
        selected = self.sweep_id
        table.clear()
        for sweep in sweeps:
            table.add_row(
                str(sweep.id),
                Text(sweep.name),
                sweep.status,
                f"{sweep.generation_count}/{sweep.expected_rows or '?'}",
                ",".join(sweep.variants) or "-",
                sweep.created_at[:16].replace("T", " "),
                key=str(sweep.id),
            )
        note = self.query_one("#results-note", Static)
        if not sweeps:
            note.update("No sweeps in the store yet: run one on the Sweep step (F4).")
            return
        if selected is not None and any(s.id == selected for s in sweeps):
            table.move_cursor(row=table.get_row_index(str(selected)))
        else:
            self.show_sweep(sweeps[0].id)

    @on(DataTable.RowHighlighted, "#results-sweeps")
    @guarded
    def _sweep_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.show_sweep(int(event.row_key.value))

    @on(DataTable.RowSelected, "#results-sweeps")
    @guarded
    def _sweep_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
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
        table = self.query_one("#results-cells", DataTable)
        # Re-showing the same sweep (reload, scoring) keeps the operator on the cell they chose.
        keep_row = table.cursor_row if self.sweep_id == sweep_id and self.cell_keys else 0
        table.clear(columns=True)
        self.cell_keys = {}
        # Fixed widths: auto-widths are only applied on the table's next refresh after rows arrive, so a
        # freshly filled, unfocused table was drawn at header widths ("0.50" shown as "0").
        headers = [("variant", 9), ("T", 4), ("p", 4), ("k", 3), ("prompt", 7), ("n", 2)]
        if scored:
            headers += [(title, max(len(title), 4)) for title, _column in METRIC_COLUMNS]
        for title, width in headers:
            table.add_column(title, width=width)
        for cell in cells:
            key = cell.key
            row_key = json.dumps(list(key))
            self.cell_keys[row_key] = key
            values = [
                key.variant,
                _num(key.temperature),
                _num(key.top_p),
                str(key.top_k),
                Text(key.prompt_id),
                str(cell.n),
            ]
            if scored:
                values += [_num(cell.value(column)) for _title, column in METRIC_COLUMNS]
            table.add_row(*values, key=row_key)
        if 0 < keep_row < table.row_count:
            table.move_cursor(row=keep_row)
        self.sweep_id = sweep_id
        note = self.query_one("#results-note", Static)
        if not cells:
            note.update(f"Sweep {sweep_id} has no generations yet.")
        elif scored:
            note.update(f"Sweep {sweep_id}: {len(cells)} cells (c: cells, enter: samples of a cell)")
        else:
            note.update(f"Sweep {sweep_id}: {len(cells)} cells, metrics not computed yet (m scores them)")
        self.query_one("#results-samples", Static).update("")

    # ------------------------------------------------------------ samples of a cell

    @on(DataTable.RowHighlighted, "#results-cells")
    @on(DataTable.RowSelected, "#results-cells")
    @guarded
    def _cell_chosen(self, event: DataTable.RowHighlighted | DataTable.RowSelected) -> None:
        key = self.cell_keys.get(str(event.row_key.value))
        if key is not None and self.sweep_id is not None:
            self.show_samples(self.sweep_id, key)

    def show_samples(self, sweep_id: int, key: CellKey) -> None:
        self.wanted_cell = (sweep_id, key)
        self._load_samples(sweep_id, key)

    @step_worker(group="results-samples", exclusive=True)
    def _load_samples(self, sweep_id: int, key: CellKey) -> None:
        samples = self.workspace.cell_samples(
            sweep_id,
            temperature=key.temperature,
            top_p=key.top_p,
            top_k=key.top_k,
            prompt_id=key.prompt_id,
            variant=key.variant,
        )
        self.post_message(self.SamplesLoaded(key, samples))

    def on_results_screen_samples_loaded(self, message: SamplesLoaded) -> None:
        if self.wanted_cell != (message.samples.sweep_id, message.key):
            return
        key, samples = message.key, message.samples
        text = Text()
        text.append(f"{key.variant} T={key.temperature:g} p={key.top_p:g} k={key.top_k}  ", style="bold")
        if samples.prompt is not None:
            text.append(f"prompt: {samples.prompt}\n", style="italic")
            if samples.reference:
                text.append(f"reference: {samples.reference}\n", style="green")
        for sample in samples.side(key.variant):
            text.append(f"#{sample.sample_index}: ", style="bold cyan")
            text.append(sample.text.strip() + "\n")
        self.query_one("#results-samples", Static).update(text)

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
