"""The Sweeps tab: a stored sweep's interactive heatmaps, its cells, a cell's aligned samples, labels.

Layout and wiring only; the work is :class:`gradio_app.handlers.AppHandlers`' methods. A heatmap
click and a click on a sample reach Python through two hidden textboxes that the page script
(``layout.PAGE_JS``) fills in: ``#heat-click`` ("variant|T|p|k|nonce") and ``#picked-sample``
("generation id|nonce"). Keys f / h / r / u press the label buttons.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from engine.labels import LABEL_KEYS
from gradio_app.events import user_errors
from gradio_app.handlers import (
    ALL,
    CALIBRATION_COLUMNS,
    CELL_COLUMNS,
    CELL_TABLE_HELP,
    AppHandlers,
    empty_frame,
    fmt_value,
)
from gradio_app.plots import empty_figure
from gradio_app.views import EMPTY_VIEW

# Wide enough that no header breaks inside a word (variant, T, p, k, prompt, n, then the metrics).
CELL_COLUMN_WIDTHS = ["95px", "115px", "70px", "70px", "95px", "45px"] + ["115px"] * (len(CELL_COLUMNS) - 6)
NO_SWEEP = "no sweep stored yet: run `ft-hallu sweep`, import a log, or save a live generation"
EMPTY_CAPTION = "No cell picked yet."
EMPTY_CLAIMS = "<p class='dim'>Click a sample above to see its claims and label it.</p>"
MISSING_HELP = (
    "Grey cells have no value and say why: **n/a** (every answer refused, no reference answer, "
    "no sources) or **undef. n=1** (spread metrics need several samples). Hover a cell for its "
    "value, n and 95% interval; **click it to read its samples** below."
)


@dataclass(frozen=True)
class SweepsTab:
    """The sweep picker and what other tabs' events call to refresh it (a save, an ingest)."""

    sweep: gr.Dropdown
    refresh: Any  # fn(current sweep) -> the picker's update (keeps the current sweep)
    follow: Any  # fn(*load_inputs) -> [picker, *load_outputs]: refresh, and draw if nothing was shown
    load: Any  # fn(*load_inputs) -> load_outputs: everything the tab shows for a sweep
    load_inputs: list[Any]
    load_outputs: list[Any]


def _choices(values: list[str], value: str = ALL) -> dict[str, Any]:
    return gr.update(choices=[ALL, *values], value=value if value in values else ALL)


def build_sweeps_tab(handlers: AppHandlers) -> SweepsTab:
    """Lay out the Sweeps tab inside the current ``gr.Blocks`` and wire its events."""

    def keep_or_newest(current: Any) -> dict[str, Any]:
        choices = handlers.sweep_choices()
        ids = [value for _label, value in choices]
        value = str(current) if current and str(current) in ids else (ids[0] if ids else None)
        return gr.update(choices=choices, value=value)

    @user_errors
    def list_sweeps(current: Any = None) -> dict[str, Any]:
        return keep_or_newest(current)

    @user_errors
    def follow(current, metric, heat_prompt):
        """After a save or an ingest: the new list; the tab is drawn only if nothing was shown."""
        update = keep_or_newest(current)
        if current or not update["value"]:
            return update, *([gr.skip()] * len(load_outputs))
        return update, *load_sweep(update["value"], metric, heat_prompt)

    @user_errors
    def load_sweep(sweep, metric, heat_prompt):
        """Everything the tab shows for one sweep; the sample view and labels are cleared."""
        cleared = (EMPTY_CAPTION, EMPTY_VIEW, EMPTY_CLAIMS, "", None, "")
        if not sweep:
            blank = gr.update(choices=[ALL], value=ALL)
            return (
                NO_SWEEP,
                blank,
                blank,
                blank,
                blank,
                blank,
                empty_figure(NO_SWEEP),
                empty_frame(CELL_COLUMNS),
                "",
                *cleared,
            )
        filters = handlers.sweep_filters(sweep)
        prompts = [
            *filters.prompts,
            *(["eval-*"] if any(p.startswith("eval-") for p in filters.prompts) else []),
        ]
        heat = _choices(prompts, str(heat_prompt or ALL))
        heat_value = heat["value"]
        return (
            filters.info,
            _choices(filters.temperatures),
            _choices(filters.top_ps),
            _choices(filters.top_ks),
            _choices(filters.prompts),
            heat,
            handlers.heatmaps(sweep, metric, heat_value),
            handlers.sweep_cells(sweep),
            handlers.label_summary(sweep),
            *cleared,
        )

    @user_errors
    def heatmaps(sweep, metric, prompt):
        return handlers.heatmaps(sweep, metric, prompt) if sweep else empty_figure(NO_SWEEP)

    @user_errors
    def sweep_cells(sweep, variant, temperature, top_p, top_k, prompt):
        return handlers.sweep_cells(sweep, variant, temperature, top_p, top_k, prompt)

    def show_cell(sweep, variant, temperature, top_p, top_k, prompt, clicked):
        caption, html = handlers.aligned_view(
            sweep, temperature, top_p, top_k, prompt, variant, clicked=clicked
        )
        state = {
            "sweep": str(sweep),
            "variant": variant,
            "temperature": temperature,
            "top_p": top_p,
            "top_k": top_k,
            "prompt": prompt,
            "clicked": clicked,
        }
        table = handlers.sweep_cells(sweep, variant, temperature, top_p, top_k, prompt)
        return (
            temperature,
            top_p,
            top_k,
            table,
            caption,
            html,
            state,
            EMPTY_CLAIMS,
            "",
        )

    @user_errors
    def open_cell(sweep, payload, variant, prompt):
        """A heatmap click: filter the cells to that setting and show its aligned samples."""
        if not payload:
            return tuple(gr.skip() for _ in cell_view)
        click = handlers.parse_click(payload)
        prompt = ALL if str(prompt or "").endswith("*") else prompt  # a prefix: every prompt's rows
        return show_cell(sweep, variant, click.temperature, click.top_p, click.top_k, prompt, click.variant)

    @user_errors
    def select_cell(sweep, variant, prompt, evt: gr.SelectData):
        row = evt.row_value  # variant, temperature, top_p, top_k, prompt_id, ...
        temperature, top_p, top_k = fmt_value(float(row[1])), fmt_value(float(row[2])), fmt_value(int(row[3]))
        picked_prompt = str(row[4]) if row[4] else prompt
        outputs = show_cell(sweep, variant, temperature, top_p, top_k, picked_prompt, str(row[0]))
        return (*outputs, picked_prompt)

    @user_errors
    def cell_samples(sweep, temperature, top_p, top_k, prompt, variant):
        caption, html = handlers.aligned_view(sweep, temperature, top_p, top_k, prompt, variant)
        state = {
            "sweep": str(sweep),
            "variant": variant,
            "temperature": temperature,
            "top_p": top_p,
            "top_k": top_k,
            "prompt": prompt,
            "clicked": None,
        }
        return caption, html, state

    @user_errors
    def pick_sample(payload):
        return handlers.pick_sample(payload) if payload else EMPTY_CLAIMS

    def labeller(label: str):
        @user_errors
        def set_label(payload, state, sweep):
            status = handlers.set_label(payload, label)
            picked = handlers.generation_id(payload)
            html = gr.update()
            if state and state.get("sweep") == str(sweep):
                _caption, html = handlers.aligned_view(
                    state["sweep"],
                    state["temperature"],
                    state["top_p"],
                    state["top_k"],
                    state["prompt"],
                    state["variant"],
                    clicked=state.get("clicked"),
                    picked=picked,
                )
            return status, html, handlers.pick_sample(payload), handlers.label_summary(sweep)

        return set_label

    @user_errors
    def calibration(sweep):
        return handlers.calibration(sweep)

    @user_errors
    def score(sweep) -> str:
        return handlers.score_sweep(sweep)

    with gr.Tab("Sweeps"):
        with gr.Row():
            sweep = gr.Dropdown(
                label="Stored sweep", choices=[], allow_custom_value=True, scale=4, elem_id="sweeps-picker"
            )
            refresh_btn = gr.Button("Refresh list", scale=1)
            score_btn = gr.Button("Score sweep", scale=1)
        sweep_info = gr.Markdown(NO_SWEEP, elem_id="sweep-info")
        with gr.Row():
            metric = gr.Dropdown(label="Metric", choices=handlers.metric_choices(), value="refusal_rate")
            heat_prompt = gr.Dropdown(
                label="Prompt (heatmaps and samples)", choices=[ALL], value=ALL, allow_custom_value=True
            )
        plot = gr.Plot(label="Heatmaps over temperature × top_p, one row per top_k", elem_id="sweep-heatmaps")
        gr.Markdown(MISSING_HELP)
        heat_click = gr.Textbox(visible="hidden", elem_id="heat-click", label="heatmap click")
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
        gr.Markdown("### Samples, aligned by sample index (base and fine-tuned share seeds)")
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
        with gr.Accordion("Calibration: each score's AUROC against the human labels", open=False):
            with gr.Row():
                label_counts = gr.Markdown("", elem_id="label-counts")
                calibrate_btn = gr.Button("Update calibration", scale=0)
            calibration_text = gr.Markdown("")
            calibration_table = gr.Dataframe(
                value=empty_frame(CALIBRATION_COLUMNS), interactive=False, wrap=True, label="AUROC per score"
            )

    view_state = gr.State(None)  # the cell on show, so a label re-renders it
    filters = [variant_filter, t_filter, p_filter, k_filter, prompt_filter]
    cell_view = [t_filter, p_filter, k_filter, cells, caption, aligned, view_state, claims, label_status]
    load_outputs = [
        sweep_info,
        t_filter,
        p_filter,
        k_filter,
        prompt_filter,
        heat_prompt,
        plot,
        cells,
        label_counts,
        caption,
        aligned,
        claims,
        picked,
        view_state,
        label_status,
    ]
    refresh_btn.click(list_sweeps, sweep, sweep, api_name="list_sweeps").then(
        load_sweep, [sweep, metric, heat_prompt], load_outputs, api_visibility="private"
    )
    # A user's pick reloads everything (and clears the previous sweep's samples).
    sweep.input(load_sweep, [sweep, metric, heat_prompt], load_outputs, api_name="sweep_filters")
    # The first listener of each group is also the named endpoint for scripts.
    metric.input(heatmaps, [sweep, metric, heat_prompt], plot, api_name="heatmaps")
    heat_prompt.input(heatmaps, [sweep, metric, heat_prompt], plot, api_visibility="private")
    for index, control in enumerate(filters):
        control.input(
            sweep_cells,
            [sweep, *filters],
            cells,
            **({"api_name": "sweep_cells"} if index == 0 else {"api_visibility": "private"}),
        )
    # .change, not .input: Gradio 6 textboxes dispatch "input" from key events only, and the page
    # script sets the value. The app never writes #heat-click; it clears #picked-sample on a load.
    heat_click.change(
        open_cell, [sweep, heat_click, variant_filter, heat_prompt], cell_view, api_name="open_cell"
    )
    cells.select(
        select_cell,
        [sweep, variant_filter, prompt_filter],
        [*cell_view, prompt_filter],
        api_visibility="private",
    )
    show_btn.click(
        cell_samples,
        [sweep, t_filter, p_filter, k_filter, prompt_filter, variant_filter],
        [caption, aligned, view_state],
        api_name="cell_samples",
    )
    picked.change(pick_sample, picked, claims, api_name="pick_sample")
    for label, button in buttons.items():
        button.click(
            labeller(label),
            [picked, view_state, sweep],
            [label_status, aligned, claims, label_counts],
            api_name=f"label_{label}",
        )
    calibrate_btn.click(calibration, sweep, [calibration_text, calibration_table], api_name="calibration")
    score_btn.click(score, sweep, sweep_info, api_name="score_sweep").then(
        load_sweep, [sweep, metric, heat_prompt], load_outputs, api_visibility="private"
    )
    return SweepsTab(
        sweep=sweep,
        refresh=list_sweeps,
        follow=follow,
        load=load_sweep,
        load_inputs=[sweep, metric, heat_prompt],
        load_outputs=load_outputs,
    )
