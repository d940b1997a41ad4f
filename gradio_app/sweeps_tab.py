"""The Sweeps tab: a stored sweep's finding first (headline, per-temperature table, example answers),
then the main hallucination score's heatmaps (one prompt at a time), a cell's aligned samples with
their claims, every sample searchable with CSV export, the cells, labels and calibration.

Layout and wiring only: :func:`build_sweeps_tab` lays the components out, collects them in a
:class:`gradio_app.sweeps_runner.SweepsView`, and wires each event to a method of
:class:`gradio_app.sweeps_runner.SweepsRunner`, which returns ``{component: value}``. A heatmap
click and a click on a sample reach Python through two hidden textboxes that the page script
(``layout.PAGE_JS``) fills in: ``#heat-click`` ("variant|T|p|k|nonce") and ``#picked-sample``
("generation id|nonce"). Keys f / h / r / u press the label buttons.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from engine.labels import LABEL_KEYS
from engine.metrics.catalog import MAIN_SCORE
from engine.samples import OPERATORS
from gradio_app.handlers import (
    ALL,
    CALIBRATION_COLUMNS,
    CELL_COLUMNS,
    CELL_TABLE_HELP,
    NO_FILTER,
    AppHandlers,
    empty_frame,
)
from gradio_app.sweeps_runner import EMPTY_CAPTION, EMPTY_CLAIMS, SweepsRunner, SweepsView
from gradio_app.views import EMPTY_VIEW, claims_legend_html

# Wide enough that no header breaks inside a word (variant, T, p, k, prompt, n, then the metrics).
CELL_COLUMN_WIDTHS = ["95px", "115px", "70px", "70px", "95px", "45px"] + ["115px"] * (len(CELL_COLUMNS) - 6)
MISSING_HELP = (
    "Grey cells have no value and say why: **n/a** (every answer refused, no reference answer, "
    "no sources) or **undef. n=1** (spread metrics need several samples). Hover a cell for its "
    "value, n and 95% interval; **click it to read its samples** below."
)


@dataclass(frozen=True)
class SweepsTab:
    """The sweep picker and what other tabs' events call to refresh it (a save, an ingest)."""

    sweep: gr.Dropdown
    refresh: Callable[..., Any]  # fn(current sweep) -> the picker's update (keeps the current sweep)
    follow: Callable[..., Any]  # fn(*load_inputs) -> picker and, if nothing was shown, load_outputs
    load: Callable[..., Any]  # fn(*load_inputs) -> load_outputs: everything the tab shows for a sweep
    load_inputs: list[Any]
    load_outputs: list[Any]


def build_sweeps_tab(handlers: AppHandlers) -> SweepsTab:
    """Lay out the Sweeps tab inside the current ``gr.Blocks`` and wire its events."""
    view = _layout(handlers)
    runner = SweepsRunner(handlers, view)
    _wire(view, runner)
    return SweepsTab(
        sweep=view.sweep,
        refresh=runner.list_sweeps,
        follow=runner.follow,
        load=runner.load_sweep,
        load_inputs=view.load_inputs,
        load_outputs=view.load_outputs,
    )


def _layout(handlers: AppHandlers) -> SweepsView:
    """The tab's components, top to bottom: the finding first, then the main score's heatmaps."""
    with gr.Tab("Sweeps"):
        with gr.Row():
            sweep = gr.Dropdown(
                label="Stored sweep", choices=[], allow_custom_value=True, scale=4, elem_id="sweeps-picker"
            )
            refresh_btn = gr.Button("Refresh list", scale=1)
            score_btn = gr.Button("Score sweep", scale=1)
        # Until the page's load has read the store: never "no sweep" while one is being drawn.
        sweep_info = gr.Markdown("Reading the stored sweeps…", elem_id="sweep-info")
        finding = gr.HTML("", elem_id="sweep-finding")
        gr.Markdown("### Heatmaps over temperature × top_p, one row per top_k", elem_id="heat-title")
        with gr.Row():
            metric = gr.Dropdown(
                label="Metric",
                choices=handlers.metric_choices(),
                value=MAIN_SCORE,
                elem_id="metric-picker",
                scale=3,
            )
            heat_prompt = gr.Dropdown(  # empty until a sweep loads: it opens on one prompt, never a pool
                label="Prompt (heatmaps and the samples a click opens)",
                choices=[],
                value=None,
                allow_custom_value=True,
                elem_id="heat-prompt",
                scale=3,
            )
        heat_caption = gr.Markdown("", elem_id="heat-caption")
        heat_note = gr.Markdown("", elem_id="heat-note")
        plot = gr.Plot(show_label=False, elem_id="sweep-heatmaps")
        gr.Markdown(MISSING_HELP)
        heat_click = gr.Textbox(visible="hidden", elem_id="heat-click", label="heatmap click")
        gr.Markdown(
            "### Samples of the clicked cell, aligned by sample index (base and fine-tuned share seeds)"
        )
        caption = gr.Markdown(EMPTY_CAPTION, elem_id="sample-caption")
        aligned = gr.HTML(EMPTY_VIEW, elem_id="aligned-samples")
        gr.Markdown("Label a sample: click it, then press **f** / **h** / **r** / **u** or a button.")
        with gr.Row(elem_id="label-row"):
            picked = gr.Textbox(visible="hidden", elem_id="picked-sample", label="picked sample")
            buttons = {
                label: gr.Button(f"{label} ({key})", elem_id=f"label-{label}", size="sm")
                for key, label in LABEL_KEYS.items()
            }
            label_status = gr.Markdown("", elem_id="label-status")
        claims = gr.HTML(EMPTY_CLAIMS, elem_id="sample-claims")
        gr.Markdown("### Every sample of the sweep: search, filter, export", elem_id="samples-title")
        with gr.Row(elem_id="samples-controls"):
            search = gr.Textbox(
                label="Text contains", placeholder="robot, New York, …", scale=3, elem_id="samples-search"
            )
            regex = gr.Checkbox(label="regular expression", value=False, scale=1, elem_id="samples-regex")
            search_variant = gr.Dropdown(
                label="Variant",
                choices=[ALL, "base", "finetuned"],
                value=ALL,
                scale=1,
                elem_id="samples-variant",
            )
            search_prompt = gr.Dropdown(
                label="Prompt",
                choices=[ALL],
                value=ALL,
                allow_custom_value=True,
                scale=2,
                elem_id="samples-prompt",
            )
        with gr.Row(elem_id="samples-filters"):
            threshold_metric = gr.Dropdown(
                label="Metric threshold",
                choices=handlers.threshold_choices(),
                value=NO_FILTER,
                scale=3,
                elem_id="samples-metric",
            )
            threshold_op = gr.Dropdown(
                label="is", choices=list(OPERATORS), value="<", scale=1, elem_id="samples-op"
            )
            threshold_value = gr.Number(label="value", value=0.5, scale=1, elem_id="samples-value")
            differ = gr.Checkbox(
                label="only where base and fine-tuned differ (same cell and sample index: other verdict, "
                "or a main-score gap ≥ 0.5)",
                value=False,
                scale=3,
                elem_id="samples-differ",
            )
        with gr.Row():
            search_btn = gr.Button("Search", variant="primary", scale=0, elem_id="samples-search-button")
            export_btn = gr.Button("Export these rows as CSV", scale=0, elem_id="samples-export")
            samples_file = gr.File(
                label="CSV", visible=False, interactive=False, scale=2, elem_id="samples-file"
            )
        samples_summary = gr.Markdown("", elem_id="samples-summary")
        gr.HTML(claims_legend_html())
        samples_table = gr.HTML("", elem_id="samples-table")
        with gr.Accordion("Cells (filter, or click a row to read its samples)", open=True):
            with gr.Row():
                variant_filter = gr.Dropdown(label="Variant", choices=[ALL, "base", "finetuned"], value=ALL)
                t_filter = gr.Dropdown(label="T", choices=[ALL], value=ALL, allow_custom_value=True)
                p_filter = gr.Dropdown(label="p", choices=[ALL], value=ALL, allow_custom_value=True)
                k_filter = gr.Dropdown(label="k", choices=[ALL], value=ALL, allow_custom_value=True)
                prompt_filter = gr.Dropdown(
                    label="Prompt id", choices=[ALL], value=ALL, allow_custom_value=True
                )
                show_btn = gr.Button("Show samples")
            cells = gr.Dataframe(
                value=empty_frame(CELL_COLUMNS),
                label="Cells",
                interactive=False,
                max_height=320,
                wrap=True,
                elem_id="cells-table",
                column_widths=CELL_COLUMN_WIDTHS,
            )
            gr.Markdown(CELL_TABLE_HELP)
        with gr.Accordion("Calibration: each score's AUROC against the human labels", open=False):
            with gr.Row():
                label_counts = gr.Markdown("", elem_id="label-counts")
                calibrate_btn = gr.Button("Update calibration", scale=0)
            calibration_text = gr.Markdown("")
            calibration_table = gr.Dataframe(
                value=empty_frame(CALIBRATION_COLUMNS), interactive=False, wrap=True, label="AUROC per score"
            )
    view = SweepsView(
        sweep=sweep,
        sweep_info=sweep_info,
        finding=finding,
        metric=metric,
        heat_prompt=heat_prompt,
        heat_caption=heat_caption,
        heat_note=heat_note,
        plot=plot,
        heat_click=heat_click,
        variant_filter=variant_filter,
        t_filter=t_filter,
        p_filter=p_filter,
        k_filter=k_filter,
        prompt_filter=prompt_filter,
        cells=cells,
        caption=caption,
        aligned=aligned,
        picked=picked,
        label_status=label_status,
        claims=claims,
        label_counts=label_counts,
        calibration_text=calibration_text,
        calibration_table=calibration_table,
        view_state=gr.State(None),
        refresh_btn=refresh_btn,
        score_btn=score_btn,
        show_btn=show_btn,
        label_buttons=buttons,
        calibrate_btn=calibrate_btn,
        search=search,
        regex=regex,
        search_variant=search_variant,
        search_prompt=search_prompt,
        threshold_metric=threshold_metric,
        threshold_op=threshold_op,
        threshold_value=threshold_value,
        differ=differ,
        search_btn=search_btn,
        export_btn=export_btn,
        samples_summary=samples_summary,
        samples_table=samples_table,
        samples_file=samples_file,
    )
    return view


def _wire(view: SweepsView, runner: SweepsRunner) -> None:
    """Each event to its runner method; the first listener of a group is its named API endpoint."""
    load = (runner.load_sweep, view.load_inputs, view.load_outputs)
    view.refresh_btn.click(runner.list_sweeps, view.sweep, view.sweep, api_name="list_sweeps").then(
        *load, api_visibility="private"
    )
    # A user's pick reloads everything (and clears the previous sweep's samples).
    view.sweep.input(*load, api_name="sweep_filters")
    heat_inputs = [view.sweep, view.metric, view.heat_prompt]
    view.metric.input(runner.heatmaps, heat_inputs, view.heat_outputs, api_name="heatmaps")
    view.heat_prompt.input(runner.heatmaps, heat_inputs, view.heat_outputs, api_visibility="private")
    search_inputs = [view.sweep, *view.search_controls]
    view.search_btn.click(
        runner.search_samples,
        search_inputs,
        [view.samples_summary, view.samples_table],
        api_name="search_samples",
    )
    view.search.submit(
        runner.search_samples,
        search_inputs,
        [view.samples_summary, view.samples_table],
        api_visibility="private",
    )
    view.export_btn.click(runner.export_samples, search_inputs, view.samples_file, api_name="export_samples")
    for index, control in enumerate(view.filters):
        control.input(
            runner.sweep_cells,
            [view.sweep, *view.filters],
            view.cells,
            **({"api_name": "sweep_cells"} if index == 0 else {"api_visibility": "private"}),
        )
    # .change, not .input: Gradio 6 textboxes dispatch "input" from key events only, and the page
    # script sets the value. The app never writes #heat-click; it clears #picked-sample on a load.
    view.heat_click.change(
        runner.open_cell,
        [view.sweep, view.heat_click, view.variant_filter, view.heat_prompt],
        view.cell_view,
        api_name="open_cell",
    )
    view.cells.select(
        runner.select_cell,
        [view.sweep, view.variant_filter, view.prompt_filter],
        [*view.cell_view, view.prompt_filter],
        api_visibility="private",
    )
    view.show_btn.click(
        runner.cell_samples,
        [view.sweep, view.t_filter, view.p_filter, view.k_filter, view.prompt_filter, view.variant_filter],
        [view.caption, view.aligned, view.view_state],
        api_name="cell_samples",
    )
    view.picked.change(runner.pick_sample, view.picked, view.claims, api_name="pick_sample")
    for label, button in view.label_buttons.items():
        button.click(
            runner.labeller(label),
            [view.picked, view.view_state, view.sweep],
            [view.label_status, view.aligned, view.claims, view.label_counts],
            api_name=f"label_{label}",
        )
    view.calibrate_btn.click(
        runner.calibration,
        view.sweep,
        [view.calibration_text, view.calibration_table],
        api_name="calibration",
    )
    view.score_btn.click(runner.score, view.sweep, view.sweep_info, api_name="score_sweep").then(
        *load, api_visibility="private"
    )
