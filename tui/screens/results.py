"""Results: the sweeps in the store, a per-cell table with the main metrics, a chosen cell's samples."""

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

from store import metrics as metrics_store
from tui.screens.base import StepScreen, guarded, step_bar, step_footer, step_worker

# (column title, cell_metrics column) shown per cell; the full set is in store.metrics.CELL_COLUMNS.
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

    class Scored(Message):
        def __init__(self, sweep_id: int, scored: int) -> None:
            super().__init__()
            self.sweep_id = sweep_id
            self.scored = scored

    def __init__(self) -> None:
        super().__init__()
        self.sweep_id: int | None = None
        self.cell_keys: dict[str, tuple[str, float, float, int, str]] = {}

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

    # ------------------------------------------------------------ sweeps

    def action_reload(self) -> None:
        from store import core

        table = self.query_one("#results-sweeps", DataTable)
        try:
            store = self.ft_app.open_store()
            try:
                sweeps = core.list_sweeps(store)
            finally:
                store.close()
        except Exception as exc:  # noqa: BLE001
            self.report_error(exc, where="reading sweeps")
            return
        selected = self.sweep_id
        table.clear()
        for sweep in sweeps:
            config = sweep.get("config") or {}
            table.add_row(
                str(sweep["id"]),
                Text(str(sweep.get("name") or "")),
                sweep.get("status") or "",
                f"{sweep.get('generation_count', 0)}/{sweep.get('expected_rows') or '?'}",
                ",".join(config.get("variants") or []) or "-",
                (sweep.get("created_at") or "")[:16].replace("T", " "),
                key=str(sweep["id"]),
            )
        note = self.query_one("#results-note", Static)
        if not sweeps:
            note.update("No sweeps in the store yet: run one on the Sweep step (F4).")
            return
        if selected is not None and any(s["id"] == selected for s in sweeps):
            table.move_cursor(row=table.get_row_index(str(selected)))
        else:
            self.show_sweep(int(sweeps[0]["id"]))

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
        """Fill the cell table: scored cells when metrics exist, else plain generation counts."""
        from store import core

        try:
            store = self.ft_app.open_store()
            try:
                scored = self._scored_cells(store, sweep_id)
                cells = scored if scored else self._unscored_cells(core.iter_generations(store, sweep_id))
            finally:
                store.close()
        except Exception as exc:  # noqa: BLE001
            self.report_error(exc, where=f"sweep {sweep_id}")
            return
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
            key = (
                cell["variant"],
                float(cell["temperature"]),
                float(cell["top_p"]),
                int(cell["top_k"]),
                cell["prompt_id"],
            )
            row_key = json.dumps(key)
            self.cell_keys[row_key] = key
            values = [cell["variant"], _num(key[1]), _num(key[2]), str(key[3]), Text(key[4]), str(cell["n"])]
            if scored:
                values += [_num(cell.get(column)) for _title, column in METRIC_COLUMNS]
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

    @staticmethod
    def _scored_cells(store: Any, sweep_id: int) -> list[dict[str, Any]]:
        return metrics_store.cell_table(store, sweep_id)

    @staticmethod
    def _unscored_cells(generations: list[dict[str, Any]]) -> list[dict[str, Any]]:
        cells: dict[tuple, dict[str, Any]] = {}
        for row in generations:
            key = (row["variant"], row["temperature"], row["top_p"], row["top_k"], row["prompt_id"])
            cell = cells.setdefault(
                key,
                {
                    "variant": key[0],
                    "temperature": key[1],
                    "top_p": key[2],
                    "top_k": key[3],
                    "prompt_id": key[4],
                    "n": 0,
                },
            )
            cell["n"] += 1
        return list(cells.values())

    # ------------------------------------------------------------ samples of a cell

    @on(DataTable.RowHighlighted, "#results-cells")
    @on(DataTable.RowSelected, "#results-cells")
    @guarded
    def _cell_chosen(self, event: DataTable.RowHighlighted | DataTable.RowSelected) -> None:
        key = self.cell_keys.get(str(event.row_key.value))
        if key is not None and self.sweep_id is not None:
            self.show_samples(self.sweep_id, key)

    def show_samples(self, sweep_id: int, key: tuple[str, float, float, int, str]) -> None:
        from store import core

        variant, temperature, top_p, top_k, prompt_id = key
        try:
            store = self.ft_app.open_store()
            try:
                rows = core.iter_generations(
                    store,
                    sweep_id,
                    variant=variant,
                    temperature=temperature,
                    top_p=top_p,
                    top_k=top_k,
                    prompt_id=prompt_id,
                )
            finally:
                store.close()
        except Exception as exc:  # noqa: BLE001
            self.report_error(exc, where="reading samples")
            return
        text = Text()
        text.append(f"{variant} T={temperature:g} p={top_p:g} k={top_k}  ", style="bold")
        if rows:
            text.append(f"prompt: {rows[0]['prompt']}\n", style="italic")
            if rows[0].get("reference"):
                text.append(f"reference: {rows[0]['reference']}\n", style="green")
        for row in rows:
            text.append(f"#{row['sample_index']}: ", style="bold cyan")
            text.append((row.get("text") or "").strip() + "\n")
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
        from engine import metrics

        store = self.ft_app.open_store()
        try:
            scored = metrics.compute_missing(store, sweep_id)
        finally:
            store.close()
        self.post_message(self.Scored(sweep_id, scored))

    def on_results_screen_scored(self, message: Scored) -> None:
        self.notify(f"Sweep {message.sweep_id}: {message.scored} generations scored.")
        if self.sweep_id == message.sweep_id:
            self.show_sweep(message.sweep_id)
