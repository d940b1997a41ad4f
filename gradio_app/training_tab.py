"""The Training tab: loss curves of the store's fine-tune runs (the served adapter's run picked, any
two overlaid) and, for a sweep of a run's checkpoints, each metric against the training step with
its interval next to the loss, the best trade-off step and the rule that picked it.

Layout and wiring only: the callbacks are :class:`gradio_app.runners.TrainingRunner`'s methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from gradio_app.handlers import AppHandlers, empty_frame
from gradio_app.runners import TrainingRunner, TrainingView
from gradio_app.study_views import TRAJECTORY_FIXED


@dataclass(frozen=True)
class TrainingTab:
    load: Any  # fn() -> {component: value} for ``outputs``
    outputs: list[Any]


def build_training_tab(handlers: AppHandlers) -> TrainingTab:
    """Lay out the Training tab inside the current ``gr.Blocks`` and wire its events."""
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
        gr.Markdown(
            "### Hallucination over training steps\nA sweep of a run's checkpoints samples each kept "
            "adapter as a variant (base = step 0). Each metric is pooled over the grid, with its 95% "
            "interval, above the train and eval loss: the loss alone does not show when the answers change.",
            elem_id="trajectory-title",
        )
        trajectory_sweep = gr.Dropdown(
            label="Checkpoint sweep", choices=[], allow_custom_value=True, elem_id="trajectory-sweep"
        )
        trajectory_note = gr.Markdown("", elem_id="trajectory-note")
        trajectory_plot = gr.Plot(show_label=False, elem_id="trajectory-plot")
        trajectory_table = gr.Dataframe(
            value=empty_frame(TRAJECTORY_FIXED),
            label="Each variant: step, losses, metrics [95% interval]",
            interactive=False,
            wrap=True,
            column_widths=["100px", "60px", "70px", "80px", "80px"],  # then the metrics share the rest
            elem_id="trajectory-table",
        )
    view = TrainingView(
        runs=runs,
        refresh_btn=refresh_btn,
        note=note,
        plot=plot,
        trajectory_sweep=trajectory_sweep,
        trajectory_note=trajectory_note,
        trajectory_plot=trajectory_plot,
        trajectory_table=trajectory_table,
    )
    runner = TrainingRunner(handlers, view)
    runs.input(runner.curves, runs, plot, api_name="loss_curves")
    refresh_btn.click(runner.load, None, view.load_outputs, api_name="finetune_runs")
    trajectory_sweep.input(
        runner.trajectory, trajectory_sweep, view.trajectory_outputs, api_name="trajectory"
    )
    return TrainingTab(load=runner.load, outputs=view.load_outputs)
