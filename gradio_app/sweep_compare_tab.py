"""The Sweep vs sweep tab: one metric's heatmaps of two stored sweeps and the second minus the first.

For example the imported original run against a new sweep, or two adapters' fine-tuned sides. It
opens drawn on a sensible pair (the two newest sweeps that are not ad-hoc live rows, on the main
hallucination score and one prompt both answer), or says in one line what it needs.
Layout and wiring only; the work is :class:`gradio_app.handlers.AppHandlers`' methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from engine.errors import UserError
from engine.metrics.catalog import MAIN_SCORE
from gradio_app.events import user_errors
from gradio_app.handlers import ALL, AppHandlers
from gradio_app.plots import empty_figure

VARIANTS = ["finetuned", "base"]


@dataclass(frozen=True)
class SweepCompareTab:
    refresh: Any  # fn(first, second) -> (first update, second update)
    pickers: list[Any]
    load: Any  # fn() -> the pickers, the prompt picker, the figure and the note, for a sensible pair
    load_outputs: list[Any]


def build_sweep_compare_tab(handlers: AppHandlers) -> SweepCompareTab:
    """Lay out the tab inside the current ``gr.Blocks`` and wire its events."""

    @user_errors
    def refresh(first, second):
        choices = handlers.sweep_choices()
        ids = [value for _label, value in choices]

        def keep(current: Any) -> dict[str, Any]:
            return gr.update(choices=choices, value=str(current) if current and str(current) in ids else None)

        return keep(first), keep(second)

    def draw(first, first_variant, second, second_variant, metric, prompt):
        if not first or not second:
            return empty_figure("pick two stored sweeps"), ""
        try:
            figure = handlers.compare_sweeps(first, first_variant, second, second_variant, metric, prompt)
        except UserError as exc:
            return empty_figure(str(exc)), f"{exc}"
        return figure, handlers.pair_caption(first, second, prompt)

    @user_errors
    def compare(first, first_variant, second, second_variant, metric, prompt):
        if not first or not second:
            return empty_figure("pick two stored sweeps"), ""
        figure = handlers.compare_sweeps(first, first_variant, second, second_variant, metric, prompt)
        return figure, handlers.pair_caption(first, second, prompt)

    @user_errors
    def load():
        choices = handlers.sweep_choices()
        pair = handlers.sweep_pair()
        if pair.first is None or pair.second is None:
            blank = gr.update(choices=choices, value=None)
            return (blank, gr.skip(), blank, gr.skip(), gr.skip(), empty_figure(pair.note), pair.note)
        prompts, prompt = handlers.pair_prompts(pair.first, pair.second)
        figure, caption = draw(
            pair.first, pair.first_variant, pair.second, pair.second_variant, MAIN_SCORE, prompt
        )
        return (
            gr.update(choices=choices, value=pair.first),
            pair.first_variant,
            gr.update(choices=choices, value=pair.second),
            pair.second_variant,
            gr.update(choices=prompts, value=prompt),
            figure,
            f"{pair.note} {caption}".strip(),
        )

    with gr.Tab("Sweep vs sweep"):
        gr.Markdown(
            "The same heatmaps for two sweeps, and **second − first** on one symmetric scale "
            "(blue = better, red = worse by the metric's direction)."
        )
        with gr.Row():
            first = gr.Dropdown(
                label="First sweep", choices=[], allow_custom_value=True, scale=3, elem_id="versus-first"
            )
            first_variant = gr.Dropdown(label="its variant", choices=VARIANTS, value="finetuned", scale=1)
            second = gr.Dropdown(
                label="Second sweep", choices=[], allow_custom_value=True, scale=3, elem_id="versus-second"
            )
            second_variant = gr.Dropdown(label="its variant", choices=VARIANTS, value="finetuned", scale=1)
        with gr.Row():
            metric = gr.Dropdown(label="Metric", choices=handlers.metric_choices(), value=MAIN_SCORE)
            prompt = gr.Dropdown(label="Prompt", choices=[ALL], value=ALL, allow_custom_value=True)
            compare_btn = gr.Button("Compare", variant="primary", elem_id="sweep-compare-button")
        note = gr.Markdown("", elem_id="sweep-compare-note")
        plot = gr.Plot(label="Sweep vs sweep", elem_id="sweep-compare")

    inputs = [first, first_variant, second, second_variant, metric, prompt]
    compare_btn.click(compare, inputs, [plot, note], api_name="compare_sweeps")
    return SweepCompareTab(
        refresh=refresh,
        pickers=[first, second],
        load=load,
        load_outputs=[first, first_variant, second, second_variant, prompt, plot, note],
    )
