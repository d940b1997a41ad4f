"""The Compare tab: base and fine-tuned answer one prompt side by side, streamed, each answer scored
with its claims as soon as it is finished; N samples; save; any stored adapter picked without a
restart (its entity name fills the default prompt).

Layout and wiring only; the work is :class:`gradio_app.handlers.AppHandlers`' methods.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from engine.errors import UserError
from gradio_app.events import MODEL_GROUP, session, user_errors
from gradio_app.handlers import LIVE_METRIC_COLUMNS, SAMPLE_COLUMNS, AppHandlers, empty_frame
from gradio_app.views import live_scores_html

PENDING = '<p class="dim">Scores and claims follow as soon as the answer is finished…</p>'
NOT_SCORED_YET = '<p class="dim">Scores and claims appear here when the answer is finished.</p>'

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
    refresh: Any  # fn() -> the adapter picker's update


def build_compare_tab(handlers: AppHandlers) -> CompareTab:
    """Lay out the Compare tab inside the current ``gr.Blocks`` and wire its events."""
    settings = handlers.settings

    def compare(
        prompt,
        system_prompt,
        temperature,
        top_p,
        top_k,
        max_new_tokens,
        seed,
        same_seed,
        finetuned_seed,
        request: gr.Request,
    ) -> Iterator[tuple]:
        try:
            other = None if same_seed else finetuned_seed
            live = handlers.live_settings(temperature, top_p, top_k, max_new_tokens, seed, other)
            for update in handlers.stream_compare(prompt, system_prompt, live, session=session(request)):
                if update.run is None:
                    yield update.base_text, update.finetuned_text, update.status, gr.skip(), PENDING, PENDING
                    continue
                # The answers are finished: score them (and check their claims) in the last update.
                scores = handlers.score_batch(update.run)
                yield (
                    update.base_text,
                    update.finetuned_text,
                    update.status,
                    handlers.live_state(update.run),
                    live_scores_html(scores, "base"),
                    live_scores_html(scores, "finetuned") if handlers.has_adapter else "",
                )
        except UserError as exc:
            raise gr.Error(str(exc)) from None

    @user_errors
    def stop(request: gr.Request) -> str:
        return handlers.stop(session(request))

    @user_errors
    def sample(
        prompt,
        system_prompt,
        temperature,
        top_p,
        top_k,
        max_new_tokens,
        seed,
        same_seed,
        finetuned_seed,
        samples,
    ):
        other = None if same_seed else finetuned_seed
        live = handlers.live_settings(temperature, top_p, top_k, max_new_tokens, seed, other)
        base, finetuned, metrics, run = handlers.sample_cell(prompt, system_prompt, live, samples)
        status = f"{int(samples)} samples per side (seeds {live.seed}…{live.seed + int(samples) - 1})"
        return base, finetuned, metrics, status, handlers.live_state(run)

    @user_errors
    def switch(path, prompt):
        """Serve the picked adapter; a default prompt follows the new adapter's entity name."""
        old_default = settings.default_prompt
        message = handlers.switch_adapter(path)
        new_prompt = settings.default_prompt if (prompt or "").strip() in ("", old_default) else gr.skip()
        return (
            message,
            new_prompt,
            "",
            gr.update(value="", label=_finetuned_label(handlers)),
            NOT_SCORED_YET,
            NOT_SCORED_YET,
            None,
        )

    @user_errors
    def list_adapters():
        return gr.update(choices=handlers.adapter_choices(), value=handlers.served_choice())

    @user_errors
    def save(state) -> str:
        return handlers.save_live(state)

    last_run = gr.State(None)
    with gr.Tab("Compare"):
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
                label=_finetuned_label(handlers),
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
                base_samples_live = gr.Dataframe(
                    value=empty_frame(SAMPLE_COLUMNS), label="Base samples", wrap=True, interactive=False
                )
                finetuned_samples_live = gr.Dataframe(
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

    # The model group admits `concurrency` runs at a time (1 by default).
    live_inputs = [
        prompt,
        system_prompt,
        temperature,
        top_p,
        top_k,
        max_new_tokens,
        seed,
        same_seed,
        finetuned_seed,
    ]
    stream_outputs = [base_pane, finetuned_pane, status, last_run, base_scores, finetuned_scores]
    for index, trigger in enumerate((generate_btn.click, prompt.submit)):
        busy = trigger(lambda: gr.update(**STOP_BUSY), None, stop_btn, api_visibility="private", queue=False)
        streamed = busy.then(
            compare,
            live_inputs,
            stream_outputs,
            concurrency_id=MODEL_GROUP,
            show_progress="hidden",
            **({"api_name": "compare"} if index == 0 else {"api_visibility": "private"}),
        )
        streamed.then(lambda: gr.update(**STOP_IDLE), None, stop_btn, api_visibility="private", queue=False)
    # Stop must run while a generation holds the model group.
    stop_btn.click(stop, None, status, api_name="stop", concurrency_limit=None)
    sample_btn.click(
        sample,
        [*live_inputs, samples],
        [base_samples_live, finetuned_samples_live, live_metrics, status, last_run],
        api_name="sample_cell",
        concurrency_id=MODEL_GROUP,
    )
    saved = save_btn.click(save, last_run, status, api_name="save", concurrency_limit=None)
    switched = adapter.input(
        switch,
        [adapter, prompt],
        [adapter_status, prompt, base_pane, finetuned_pane, base_scores, finetuned_scores, last_run],
        api_name="switch_adapter",
        concurrency_id=MODEL_GROUP,
    )
    adapters_btn.click(list_adapters, None, adapter, api_name="list_adapters")
    return CompareTab(
        save_event=saved, status=status, switch_event=switched, adapter=adapter, refresh=list_adapters
    )


def _finetuned_label(handlers: AppHandlers) -> str:
    if not handlers.has_adapter:
        return "Fine-tuned model (no adapter served: pick one above)"
    return "Fine-tuned model (LoRA adapter on)"
