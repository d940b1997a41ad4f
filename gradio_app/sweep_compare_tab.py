"""The Sweep vs sweep tab: one metric's heatmaps of two stored sweeps and the second minus the first.

For example the imported original run against a new sweep, or two adapters' fine-tuned sides. It
opens drawn on a sensible pair (the two newest sweeps that are not ad-hoc live rows, on the main
hallucination score and one prompt both answer), or says in one line what it needs.
Layout and wiring only: the callbacks are :class:`gradio_app.runners.VersusRunner`'s methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from engine.metrics.catalog import MAIN_SCORE
from gradio_app.handlers import ALL, AppHandlers
from gradio_app.runners import VersusRunner, VersusView

VARIANTS = ["finetuned", "base"]


@dataclass(frozen=True)
class SweepCompareTab:
    refresh: Any  # fn(first, second) -> the pickers' updates
    pickers: list[Any]
    load: Any  # fn() -> the pickers, the prompt picker, the figure and the note, for a sensible pair
    load_outputs: list[Any]


def build_sweep_compare_tab(handlers: AppHandlers) -> SweepCompareTab:
    """Lay out the tab inside the current ``gr.Blocks`` and wire its events."""
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
    view = VersusView(
        first=first,
        first_variant=first_variant,
        second=second,
        second_variant=second_variant,
        metric=metric,
        prompt=prompt,
        compare_btn=compare_btn,
        note=note,
        plot=plot,
    )
    runner = VersusRunner(handlers, view)
    compare_btn.click(runner.compare, view.inputs, [plot, note], api_name="compare_sweeps")
    return SweepCompareTab(
        refresh=runner.refresh, pickers=view.pickers, load=runner.load, load_outputs=view.load_outputs
    )
