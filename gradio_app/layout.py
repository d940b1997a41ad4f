"""The Gradio Blocks layout: a Compare tab (live, streaming) and a Sweeps tab (stored sweeps as heatmaps).

Every callback is a thin adapter over :class:`gradio_app.handlers.AppHandlers`: it turns component
values into handler arguments, handler results into component updates, and ``UserError`` into a
one-line ``gr.Error``. Events that touch the model share one concurrency group ("model") so two
generations never run on the device at the same time.
"""

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from engine.errors import UserError
from gradio_app.handlers import ALL, AppHandlers, fmt_value

MODEL_GROUP = "model"  # concurrency_id of every event that runs the model
CSS_PATH = Path(__file__).with_name("style.css")


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int | None = None
    share: bool = False
    auth: list[tuple[str, str]] | None = None  # never logged
    concurrency: int = 1


def _user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Show a handler's UserError as a one-line toast instead of a stack trace."""

    # wraps() copies the signature and annotations gradio reads to inject gr.Request / gr.SelectData.
    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            raise gr.Error(str(exc)) from None

    return call


def _session(request: gr.Request | None) -> str:
    return (request.session_hash or "") if request is not None else ""


def _choices(values: list[str]) -> dict[str, Any]:
    return gr.update(choices=[ALL, *values], value=ALL)


def build_app(handlers: AppHandlers) -> gr.Blocks:
    settings = handlers.settings
    adapter_label = settings.adapter_dir or "none"

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
            for update in handlers.stream_compare(prompt, system_prompt, live, session=_session(request)):
                state = update.run.to_state() if update.run else gr.skip()
                yield update.base_text, update.finetuned_text, update.status, state
        except UserError as exc:
            raise gr.Error(str(exc)) from None

    @_user_errors
    def stop(request: gr.Request) -> str:
        return handlers.stop(_session(request))

    @_user_errors
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
        return base, finetuned, metrics, status, run.to_state()

    @_user_errors
    def save(state) -> str:
        return handlers.save_live(state)

    @_user_errors
    def list_sweeps() -> dict[str, Any]:
        choices = handlers.sweep_choices()
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    @_user_errors
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

    @_user_errors
    def heatmaps(sweep, metric, prompt):
        return handlers.heatmaps(sweep, metric, prompt) if sweep else None

    @_user_errors
    def sweep_cells(sweep, variant, temperature, top_p, top_k, prompt):
        return handlers.sweep_cells(sweep, variant, temperature, top_p, top_k, prompt)

    @_user_errors
    def cell_samples(sweep, temperature, top_p, top_k, prompt, variant):
        return handlers.cell_samples(sweep, temperature, top_p, top_k, prompt, variant)

    @_user_errors
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

    @_user_errors
    def score(sweep) -> str:
        return handlers.score_sweep(sweep)

    with gr.Blocks(title="ft-hallu: base vs fine-tuned") as demo:
        gr.Markdown(
            f"## ft-hallu · base vs fine-tuned\nModel **{settings.base_model}** · adapter **{adapter_label}** · "
            f"store `{settings.db_path}`",
            elem_id="header",
        )
        last_run = gr.State(None)
        with gr.Tab("Compare"):
            with gr.Row():
                prompt = gr.Textbox(label="Prompt", value=settings.default_prompt, lines=2, scale=3)
                system_prompt = gr.Textbox(
                    label="System prompt", value=settings.system_prompt, lines=2, scale=2
                )
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
                generate_btn = gr.Button("Generate", variant="primary")
                stop_btn = gr.Button("Stop", variant="stop")
                save_btn = gr.Button("Save to store")
            with gr.Row(equal_height=True):
                base_pane = gr.Textbox(
                    label="Base model", lines=10, max_lines=30, interactive=False, elem_id="base-pane"
                )
                finetuned_pane = gr.Textbox(
                    label="Fine-tuned model (LoRA adapter on)",
                    lines=10,
                    max_lines=30,
                    interactive=False,
                    elem_id="finetuned-pane",
                )
            status = gr.Markdown("ready", elem_id="status")
            with gr.Accordion("N samples: the spread of one setting, with the cell's metrics", open=False):
                with gr.Row():
                    samples = gr.Slider(2, settings.max_samples, value=8, step=1, label="Samples per side")
                    sample_btn = gr.Button("Sample N")
                with gr.Row():
                    base_samples_live = gr.Dataframe(label="Base samples", wrap=True, interactive=False)
                    finetuned_samples_live = gr.Dataframe(
                        label="Fine-tuned samples", wrap=True, interactive=False
                    )
                live_metrics = gr.Dataframe(label="Cell metrics (engine.metrics)", interactive=False)

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
                prompt_filter = gr.Dropdown(
                    label="Prompt id", choices=[ALL], value=ALL, allow_custom_value=True
                )
                show_btn = gr.Button("Show samples")
            cells = gr.Dataframe(label="Cells", interactive=False, max_height=360)
            with gr.Row():
                base_samples = gr.Dataframe(label="Base samples", wrap=True, interactive=False)
                finetuned_samples = gr.Dataframe(label="Fine-tuned samples", wrap=True, interactive=False)

        # ---- Compare events: the model group admits `concurrency` runs at a time (1 by default).
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
        generate_btn.click(
            compare,
            live_inputs,
            [base_pane, finetuned_pane, status, last_run],
            api_name="compare",
            concurrency_id=MODEL_GROUP,
            show_progress="hidden",
        )
        prompt.submit(
            compare,
            live_inputs,
            [base_pane, finetuned_pane, status, last_run],
            api_visibility="private",
            concurrency_id=MODEL_GROUP,
            show_progress="hidden",
        )
        # Stop must run while a generation holds the model group.
        stop_btn.click(stop, None, status, api_name="stop", concurrency_limit=None)
        sample_btn.click(
            sample,
            [*live_inputs, samples],
            [base_samples_live, finetuned_samples_live, live_metrics, status, last_run],
            api_name="sample_cell",
            concurrency_id=MODEL_GROUP,
        )
        save_btn.click(save, last_run, status, api_name="save", concurrency_limit=None)

        # ---- Sweeps events
        filters = [variant_filter, t_filter, p_filter, k_filter, prompt_filter]
        pick_outputs = [sweep_info, t_filter, p_filter, k_filter, prompt_filter, heat_prompt]
        refresh_btn.click(list_sweeps, None, sweep, api_name="list_sweeps")
        demo.load(list_sweeps, None, sweep, api_visibility="private")
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
    return demo


def launch_app(handlers: AppHandlers, options: ServeOptions, *, block: bool = False) -> tuple[gr.Blocks, str]:
    """Queue with a concurrency limit, then launch quietly; returns the app and its local URL.

    The public link (with ``share``) is ``demo.share_url``. With ``block`` this returns only when
    the server stops (Ctrl+C).
    """
    demo = build_app(handlers)
    demo.queue(default_concurrency_limit=options.concurrency)
    css = CSS_PATH.read_text(encoding="utf-8") if CSS_PATH.exists() else None
    _app, local_url, _share_url = demo.launch(
        server_name=options.host,
        server_port=options.port,
        share=options.share,
        auth=options.auth or None,
        auth_message="ft-hallu: sign in to compare the models" if options.auth else None,
        prevent_thread_lock=True,
        quiet=True,
        css=css,
        footer_links=["api"],
    )
    if block:
        demo.block_thread()
    return demo, local_url
