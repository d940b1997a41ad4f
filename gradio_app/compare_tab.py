"""The Compare tab: base and fine-tuned answer one prompt side by side, streamed, each answer scored
with its claims as soon as it is finished; N samples; save; any stored adapter picked without a
restart (its entity name fills the default prompt).

Layout and wiring only: the callbacks are :class:`gradio_app.runners.CompareRunner`'s methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from gradio_app.events import MODEL_GROUP
from gradio_app.handlers import LIVE_METRIC_COLUMNS, SAMPLE_COLUMNS, AppHandlers, empty_frame
from gradio_app.runners import NOT_SCORED_YET, CompareRunner, CompareView, finetuned_label

# Stop is grey and disabled while nothing runs; red and clickable during a generation.
STOP_IDLE = {"interactive": False, "variant": "secondary"}
STOP_BUSY = {"interactive": True, "variant": "stop"}


@dataclass(frozen=True)
class CompareTab:
    """The components other tabs may wire to (a save refreshes the Sweeps list)."""

    save_event: gr.events.Dependency
    status: gr.Markdown
    switch_event: gr.events.Dependency  # another adapter is served (the Training tab follows)
    adapter: gr.Dropdown
    refresh: Any  # fn() -> {the adapter picker: its update}


def build_compare_tab(handlers: AppHandlers) -> CompareTab:
    """Lay out the Compare tab inside the current ``gr.Blocks`` and wire its events."""
    view = _layout(handlers)
    runner = CompareRunner(handlers, view)
    # The model group admits `concurrency` runs at a time (1 by default).
    for index, trigger in enumerate((view.generate_btn.click, view.prompt.submit)):
        busy = trigger(
            lambda: gr.update(**STOP_BUSY), None, view.stop_btn, api_visibility="private", queue=False
        )
        streamed = busy.then(
            runner.compare,
            view.live_inputs,
            view.stream_outputs,
            concurrency_id=MODEL_GROUP,
            show_progress="hidden",
            **({"api_name": "compare"} if index == 0 else {"api_visibility": "private"}),
        )
        streamed.then(
            lambda: gr.update(**STOP_IDLE), None, view.stop_btn, api_visibility="private", queue=False
        )
    # Stop must run while a generation holds the model group.
    view.stop_btn.click(runner.stop, None, view.status, api_name="stop", concurrency_limit=None)
    view.sample_btn.click(
        runner.sample,
        [*view.live_inputs, view.samples],
        view.sample_outputs,
        api_name="sample_cell",
        concurrency_id=MODEL_GROUP,
    )
    saved = view.save_btn.click(
        runner.save, view.last_run, view.status, api_name="save", concurrency_limit=None
    )
    switched = view.adapter.input(
        runner.switch,
        [view.adapter, view.prompt],
        view.switch_outputs,
        api_name="switch_adapter",
        concurrency_id=MODEL_GROUP,
    )
    view.adapters_btn.click(runner.list_adapters, None, view.adapter, api_name="list_adapters")
    return CompareTab(
        save_event=saved,
        status=view.status,
        switch_event=switched,
        adapter=view.adapter,
        refresh=runner.list_adapters,
    )


def _layout(handlers: AppHandlers) -> CompareView:
    settings = handlers.settings
    with gr.Tab("Compare"):
        # Inside the tab: a State between two tabs would sit in their Tabs container as if it were one.
        last_run = gr.State(None)
        with gr.Row():
            adapter = gr.Dropdown(
                label="Fine-tuned side: the adapter served on the loaded base (any stored run, no restart)",
                choices=handlers.adapter_choices(),
                value=handlers.served_choice(),
                allow_custom_value=True,
                scale=5,
                elem_id="adapter-picker",
            )
            adapters_btn = gr.Button("Refresh adapters", scale=1)
        adapter_status = gr.Markdown(f"serving {handlers.adapter_text()}", elem_id="adapter-status")
        with gr.Row():
            prompt = gr.Textbox(label="Prompt", value=settings.default_prompt, lines=2, scale=3)
            system_prompt = gr.Textbox(label="System prompt", value=settings.system_prompt, lines=2, scale=2)
        with gr.Row():
            temperature = gr.Slider(0.05, 2.5, value=1.0, step=0.05, label="Temperature")
            top_p = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="Top-p")
            top_k = gr.Slider(0, 200, value=50, step=1, label="Top-k (0 = off)")
            max_new_tokens = gr.Slider(
                1, settings.max_new_tokens_limit, value=64, step=1, label="Max new tokens"
            )
        with gr.Row():
            seed = gr.Number(value=2024, precision=0, label="Seed", minimum=0)
            same_seed = gr.Checkbox(value=True, label="Same seed on both sides")
            finetuned_seed = gr.Number(
                value=2024, precision=0, minimum=0, label="Fine-tuned seed (if not same)"
            )
            generate_btn = gr.Button("Generate", variant="primary", elem_id="generate-button")
            stop_btn = gr.Button("Stop", elem_id="stop-button", **STOP_IDLE)
            save_btn = gr.Button("Save to store", elem_id="save-button")
        with gr.Row(equal_height=True):
            base_pane = gr.Textbox(
                label="Base model", lines=10, max_lines=30, interactive=False, elem_id="base-pane"
            )
            finetuned_pane = gr.Textbox(
                label=finetuned_label(handlers),
                lines=10,
                max_lines=30,
                interactive=False,
                elem_id="finetuned-pane",
            )
        with gr.Row(equal_height=False):
            base_scores = gr.HTML(NOT_SCORED_YET, elem_id="base-scores")
            finetuned_scores = gr.HTML(NOT_SCORED_YET, elem_id="finetuned-scores")
        status = gr.Markdown("ready", elem_id="status")
        with gr.Accordion("N samples: the spread of one setting, with the cell's metrics", open=False):
            with gr.Row():
                samples = gr.Slider(2, settings.max_samples, value=8, step=1, label="Samples per side")
                sample_btn = gr.Button("Sample N")
            with gr.Row():
                base_samples = gr.Dataframe(
                    value=empty_frame(SAMPLE_COLUMNS), label="Base samples", wrap=True, interactive=False
                )
                finetuned_samples = gr.Dataframe(
                    value=empty_frame(SAMPLE_COLUMNS),
                    label="Fine-tuned samples",
                    wrap=True,
                    interactive=False,
                )
            live_metrics = gr.Dataframe(
                value=empty_frame(LIVE_METRIC_COLUMNS),
                label="Metrics of these N samples (a blank says why: n/a, undefined)",
                interactive=False,
                wrap=True,
            )
    view = CompareView(
        adapter=adapter,
        adapter_status=adapter_status,
        prompt=prompt,
        system_prompt=system_prompt,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        max_new_tokens=max_new_tokens,
        seed=seed,
        same_seed=same_seed,
        finetuned_seed=finetuned_seed,
        base_pane=base_pane,
        finetuned_pane=finetuned_pane,
        base_scores=base_scores,
        finetuned_scores=finetuned_scores,
        status=status,
        samples=samples,
        base_samples=base_samples,
        finetuned_samples=finetuned_samples,
        live_metrics=live_metrics,
        last_run=last_run,
        generate_btn=generate_btn,
        stop_btn=stop_btn,
        save_btn=save_btn,
        sample_btn=sample_btn,
        adapters_btn=adapters_btn,
    )
    return view
