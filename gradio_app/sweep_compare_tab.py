"""The Sweep vs sweep tab: one metric's heatmaps of two stored sweeps and the second minus the first.

For example the imported original run against a new sweep, or two adapters' fine-tuned sides.
Layout and wiring only; the work is :class:`gradio_app.handlers.AppHandlers`' methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from gradio_app.events import user_errors
from gradio_app.handlers import ALL, AppHandlers
from gradio_app.plots import empty_figure

VARIANTS = ["finetuned", "base"]


@dataclass(frozen=True)
class SweepCompareTab:
    refresh: Any  # fn(first, second) -> (first update, second update)
    pickers: list[Any]


def build_sweep_compare_tab(handlers: AppHandlers) -> SweepCompareTab:
    """Lay out the tab inside the current ``gr.Blocks`` and wire its events."""

    @user_errors
    def refresh(first, second):
        choices = handlers.sweep_choices()
        ids = [value for _label, value in choices]

        def keep(current: Any, fallback: int) -> dict[str, Any]:
            if current and str(current) in ids:
                return gr.update(choices=choices, value=str(current))
            return gr.update(choices=choices, value=ids[min(fallback, len(ids) - 1)] if ids else None)

        return keep(first, 1), keep(second, 0)

    @user_errors
    def compare(first, first_variant, second, second_variant, metric, prompt):
        if not first or not second:
            return empty_figure("pick two stored sweeps")
        return handlers.compare_sweeps(first, first_variant, second, second_variant, metric, prompt)

    with gr.Tab("Sweep vs sweep"):
        gr.Markdown(
            "The same heatmaps for two sweeps, and **second − first** on one symmetric scale "
            "(green = better by the metric's direction)."
        )
        with gr.Row():
            first = gr.Dropdown(label="First sweep", choices=[], allow_custom_value=True, scale=3)
            first_variant = gr.Dropdown(label="its variant", choices=VARIANTS, value="finetuned", scale=1)
            second = gr.Dropdown(label="Second sweep", choices=[], allow_custom_value=True, scale=3)
            second_variant = gr.Dropdown(label="its variant", choices=VARIANTS, value="finetuned", scale=1)
        with gr.Row():
            metric = gr.Dropdown(label="Metric", choices=handlers.metric_choices(), value="refusal_rate")
            prompt = gr.Dropdown(label="Prompt id", choices=[ALL], value=ALL, allow_custom_value=True)
            compare_btn = gr.Button("Compare", variant="primary", elem_id="sweep-compare-button")
        plot = gr.Plot(label="Sweep vs sweep", elem_id="sweep-compare")

    inputs = [first, first_variant, second, second_variant, metric, prompt]
    compare_btn.click(compare, inputs, plot, api_name="compare_sweeps")
    return SweepCompareTab(refresh=refresh, pickers=[first, second])
