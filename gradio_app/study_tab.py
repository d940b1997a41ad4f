"""The Study tab: is a difference between base and fine-tuned real? Per cell, the paired
base − variant difference of each metric with its bootstrap interval and Benjamini–Hochberg-adjusted
significance; per temperature, the knowledge kept (control questions) by base and fine-tuned.

Everything statistical is engine/study.py's (``Workspace.compare``; docs/STUDY.md says what each
test means). The tab computes a sweep's study when it is first shown and keeps it; "Compute again"
reads new scores. Layout and wiring only: the callbacks are :class:`gradio_app.runners.StudyRunner`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from gradio_app.handlers import AppHandlers, empty_frame
from gradio_app.runners import StudyRunner, StudyTabView
from gradio_app.study_views import CELL_COLUMNS, CELLS_HELP, ROWS_COLUMNS


@dataclass(frozen=True)
class StudyTab:
    sweep: gr.Dropdown  # its list is read again whenever the tab is opened
    open: Callable[..., Any]  # fn(current sweep) -> {component: value}: what opening the tab draws
    view: StudyTabView


def build_study_tab(handlers: AppHandlers) -> StudyTab:
    """Lay out the Study tab inside the current ``gr.Blocks`` and wire its events."""
    with gr.Tab("Study") as tab:
        with gr.Row():
            sweep = gr.Dropdown(
                label="Sweep", choices=[], allow_custom_value=True, scale=4, elem_id="study-sweep"
            )
            compute_btn = gr.Button("Compute again (new scores)", scale=1, elem_id="study-compute")
        header = gr.Markdown("", elem_id="study-header")
        gr.Markdown("### Paired differences per cell: base − variant", elem_id="study-cells-title")
        rows = gr.Dataframe(
            value=empty_frame(ROWS_COLUMNS),
            label="Every row: cells tested, significant after BH, the largest difference",
            interactive=False,
            wrap=True,
            column_widths=["11%", "15%", "22%", "9%", "11%", "32%"],
            elem_id="study-rows",
        )
        row = gr.Dropdown(label="Row drawn below", choices=[], elem_id="study-row", info=CELLS_HELP)
        caption = gr.Markdown("", elem_id="study-caption")
        plot = gr.Plot(show_label=False, elem_id="study-plot")
        cells = gr.Dataframe(
            value=empty_frame(CELL_COLUMNS),
            label="The row's cells",
            interactive=False,
            wrap=True,
            elem_id="study-cells",
        )
        gr.Markdown(
            "### Knowledge kept: base vs fine-tuned, per temperature", elem_id="study-knowledge-title"
        )
        knowledge_note = gr.Markdown("", elem_id="study-knowledge-note")
        knowledge = gr.Dataframe(
            value=empty_frame(("T",)),
            label="Share of control answers stating the reference [95% interval]",
            interactive=False,
            wrap=True,
            elem_id="study-knowledge",
        )
        knowledge_plot = gr.Plot(show_label=False, elem_id="study-knowledge-plot")
    view = StudyTabView(
        sweep=sweep,
        compute_btn=compute_btn,
        header=header,
        rows=rows,
        row=row,
        caption=caption,
        plot=plot,
        cells=cells,
        knowledge_note=knowledge_note,
        knowledge=knowledge,
        knowledge_plot=knowledge_plot,
    )
    runner = StudyRunner(handlers, view)
    # Drawn when the tab is first opened (the study takes a few seconds; the page does not wait for it).
    tab.select(runner.open, sweep, view.outputs, api_name="study_open")
    sweep.input(runner.show, sweep, view.outputs, api_name="study")
    compute_btn.click(runner.recompute, [sweep, row], view.outputs, api_name="study_again")
    row.input(runner.pick_row, [sweep, row], view.row_outputs, api_name="study_row")
    return StudyTab(sweep=sweep, open=runner.open, view=view)
