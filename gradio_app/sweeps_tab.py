"""The Sweeps tab: a stored sweep's heatmaps, its cells (filterable) and a cell's samples side by side.

Layout and wiring only; the work is :class:`gradio_app.handlers.AppHandlers`' methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from gradio_app.events import user_errors
from gradio_app.handlers import ALL, AppHandlers, fmt_value


@dataclass(frozen=True)
class SweepsTab:
    """The sweep picker and the function that refills it (for events of other tabs)."""

    sweep: gr.Dropdown
    list_sweeps: Any


def _choices(values: list[str]) -> dict[str, Any]:
    return gr.update(choices=[ALL, *values], value=ALL)


def build_sweeps_tab(handlers: AppHandlers) -> SweepsTab:
    """Lay out the Sweeps tab inside the current ``gr.Blocks`` and wire its events."""

    @user_errors
    def list_sweeps() -> dict[str, Any]:
        choices = handlers.sweep_choices()
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    @user_errors
    def pick_sweep(sweep):
        if not sweep:
            return (
                "no sweep stored yet: run `ft-hallu sweep`, import a log, or save a live generation",
                *([gr.update()] * 5),
            )
        filters = handlers.sweep_filters(sweep)
        prompts = [
            *filters.prompts,
            *(["eval-*"] if any(p.startswith("eval-") for p in filters.prompts) else []),
        ]
        return (
            filters.info,
            _choices(filters.temperatures),
            _choices(filters.top_ps),
            _choices(filters.top_ks),
            _choices(filters.prompts),
            _choices(prompts),
        )

    @user_errors
    def heatmaps(sweep, metric, prompt):
        return handlers.heatmaps(sweep, metric, prompt) if sweep else None

    @user_errors
    def sweep_cells(sweep, variant, temperature, top_p, top_k, prompt):
        return handlers.sweep_cells(sweep, variant, temperature, top_p, top_k, prompt)

    @user_errors
    def cell_samples(sweep, temperature, top_p, top_k, prompt, variant):
        return handlers.cell_samples(sweep, temperature, top_p, top_k, prompt, variant)

    @user_errors
    def select_cell(sweep, variant, evt: gr.SelectData):
        row = evt.row_value  # variant, temperature, top_p, top_k, prompt_id, ...
        temperature, top_p, top_k, prompt = (
            fmt_value(float(row[1])),
            fmt_value(float(row[2])),
            fmt_value(int(row[3])),
            str(row[4]),
        )
        base, finetuned = handlers.cell_samples(sweep, temperature, top_p, top_k, prompt, variant)
        return (
            gr.update(value=temperature),
            gr.update(value=top_p),
            gr.update(value=top_k),
            gr.update(value=prompt),
            base,
            finetuned,
        )

    @user_errors
    def score(sweep) -> str:
        return handlers.score_sweep(sweep)

    with gr.Tab("Sweeps"):
        with gr.Row():
            sweep = gr.Dropdown(
                label="Stored sweep", choices=handlers.sweep_choices(), allow_custom_value=True, scale=4
            )
            refresh_btn = gr.Button("Refresh list", scale=1)
            score_btn = gr.Button("Score sweep", scale=1)
        sweep_info = gr.Markdown()
        with gr.Row():
            metric = gr.Dropdown(label="Metric", choices=handlers.metric_choices(), value="refusal_rate")
            heat_prompt = gr.Dropdown(
                label="Prompt (heatmaps)", choices=[ALL], value=ALL, allow_custom_value=True
            )
        plot = gr.Plot(label="Heatmaps over temperature x top_p, one row per top_k")
        gr.Markdown(
            "Filter the cells, then click a row (or pick T / p / k and press Show) to read its samples."
        )
        with gr.Row():
            variant_filter = gr.Dropdown(label="Variant", choices=[ALL, "base", "finetuned"], value=ALL)
            t_filter = gr.Dropdown(label="T", choices=[ALL], value=ALL, allow_custom_value=True)
            p_filter = gr.Dropdown(label="p", choices=[ALL], value=ALL, allow_custom_value=True)
            k_filter = gr.Dropdown(label="k", choices=[ALL], value=ALL, allow_custom_value=True)
            prompt_filter = gr.Dropdown(label="Prompt id", choices=[ALL], value=ALL, allow_custom_value=True)
            show_btn = gr.Button("Show samples")
        cells = gr.Dataframe(label="Cells", interactive=False, max_height=360)
        with gr.Row():
            base_samples = gr.Dataframe(label="Base samples", wrap=True, interactive=False)
            finetuned_samples = gr.Dataframe(label="Fine-tuned samples", wrap=True, interactive=False)

    filters = [variant_filter, t_filter, p_filter, k_filter, prompt_filter]
    pick_outputs = [sweep_info, t_filter, p_filter, k_filter, prompt_filter, heat_prompt]
    refresh_btn.click(list_sweeps, None, sweep, api_name="list_sweeps")
    picked = sweep.change(pick_sweep, sweep, pick_outputs, api_name="sweep_filters")
    # These two are also the named API endpoints for scripts and tests.
    picked.then(heatmaps, [sweep, metric, heat_prompt], plot, api_name="heatmaps")
    picked.then(sweep_cells, [sweep, *filters], cells, api_name="sweep_cells")
    for control in (metric, heat_prompt):
        control.input(heatmaps, [sweep, metric, heat_prompt], plot, api_visibility="private")
    for control in filters:
        control.input(sweep_cells, [sweep, *filters], cells, api_visibility="private")
    show_btn.click(
        cell_samples,
        [sweep, t_filter, p_filter, k_filter, prompt_filter, variant_filter],
        [base_samples, finetuned_samples],
        api_name="cell_samples",
    )
    cells.select(
        select_cell,
        [sweep, variant_filter],
        [t_filter, p_filter, k_filter, prompt_filter, base_samples, finetuned_samples],
        api_visibility="private",
    )
    score_btn.click(score, sweep, sweep_info, api_name="score_sweep").then(
        heatmaps, [sweep, metric, heat_prompt], plot, api_visibility="private"
    ).then(sweep_cells, [sweep, *filters], cells, api_visibility="private")
    return SweepsTab(sweep=sweep, list_sweeps=list_sweeps)
