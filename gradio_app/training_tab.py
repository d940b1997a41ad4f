"""The Training tab: loss curves of the store's fine-tune runs, any two overlaid.

Layout and wiring only; the work is :class:`gradio_app.handlers.AppHandlers`' methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from gradio_app.events import user_errors
from gradio_app.handlers import AppHandlers

NO_RUNS = "no fine-tune run recorded in this store yet: run `ft-hallu finetune` or launch one"


@dataclass(frozen=True)
class TrainingTab:
    load: Any  # fn() -> (run picker update, figure)
    outputs: list[Any]


def build_training_tab(handlers: AppHandlers) -> TrainingTab:
    """Lay out the Training tab inside the current ``gr.Blocks`` and wire its events."""

    @user_errors
    def load_runs():
        """Every run, the served adapter's run picked (else the newest), and its curves."""
        choices = handlers.finetune_choices()
        served = handlers.served_run_id()
        picked = [served] if served else [value for _label, value in choices[:1]]
        return gr.update(choices=choices, value=picked), handlers.loss_curves(picked), _note(handlers, served)

    @user_errors
    def curves(picked):
        if picked and len(picked) > 2:
            gr.Warning("showing the first two picked runs: overlay at most two")
        return handlers.loss_curves(picked)

    with gr.Tab("Training"):
        gr.Markdown(
            "Train loss at each logged step; the dashed line joins the eval loss before and after "
            "training (the trainer evaluates at those two points). Pick up to two runs to overlay."
        )
        with gr.Row():
            runs = gr.CheckboxGroup(label="Fine-tune runs", choices=[], scale=4, elem_id="finetune-runs")
            refresh_btn = gr.Button("Refresh runs", scale=1)
        note = gr.Markdown("", elem_id="training-note")
        plot = gr.Plot(label="Loss", elem_id="loss-curves")

    runs.input(curves, runs, plot, api_name="loss_curves")
    refresh_btn.click(load_runs, None, [runs, plot, note], api_name="finetune_runs")
    return TrainingTab(load=load_runs, outputs=[runs, plot, note])


def _note(handlers: AppHandlers, served: str | None) -> str:
    if served:
        return f"Picked: run #{served}, whose adapter the Compare tab serves."
    if handlers.settings.adapter_dir:
        return "The served adapter was not trained in this store: showing the newest run."
    return "No adapter is served: showing the newest run."
