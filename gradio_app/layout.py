"""The Gradio Blocks app: a header and the Sweeps, Compare, Study, Blind labels, Sweep vs sweep and
Training tabs; it opens on Sweeps, the newest sweep's finding (on a new store: where answers come from).

Each tab is one module that lays out and wires its components to
:class:`gradio_app.handlers.AppHandlers`; this module puts them together, loads every tab's data
when the page opens, refreshes the sweep lists after a save, and launches the server. Events that
touch the model share one concurrency group so two generations never run on the device at once.

``gr.Plot`` has no click event, so ``PAGE_JS`` forwards Plotly's ``plotly_click`` on the Sweeps
heatmaps (and clicks on a sample in the aligned view, and the f/h/r/u label keys) into hidden
textboxes whose ``input`` events the Sweeps tab listens to.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from engine.escape import markdown_text
from gradio_app.blind_tab import build_blind_tab
from gradio_app.compare_tab import build_compare_tab
from gradio_app.events import MODEL_GROUP
from gradio_app.handlers import AppHandlers
from gradio_app.study_tab import build_study_tab
from gradio_app.sweep_compare_tab import build_sweep_compare_tab
from gradio_app.sweeps_tab import build_sweeps_tab
from gradio_app.training_tab import build_training_tab

CSS_PATH = Path(__file__).with_name("style.css")
JS_PATH = Path(__file__).with_name("page.js")
# Sweep lists re-read on this period, so sweeps ingested from finished jobs appear by themselves.
SWEEP_LIST_SECONDS = 30.0
__all__ = ["MODEL_GROUP", "ServeOptions", "build_app", "launch_app"]


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int | None = None
    share: bool = False
    auth: list[tuple[str, str]] | None = None  # never logged
    concurrency: int = 1


def build_app(handlers: AppHandlers) -> gr.Blocks:
    settings = handlers.settings
    with gr.Blocks(title="ft-hallu: base vs fine-tuned") as demo:
        md = markdown_text  # names and paths shown as written, never as markup
        gr.Markdown(
            f"## ft-hallu · base vs fine-tuned\nModel **{md(settings.base_model)}** · "
            f"store {md(handlers.workspace.db_path)}",
            elem_id="header",
        )
        # Results first: the page opens on the first tab, the newest sweep's finding.
        sweeps = build_sweeps_tab(handlers)
        compare = build_compare_tab(handlers)
        build_study_tab(handlers)
        blind = build_blind_tab(handlers)
        versus = build_sweep_compare_tab(handlers)
        training = build_training_tab(handlers)
        timer = gr.Timer(SWEEP_LIST_SECONDS)

        # On open: fill the lists, then draw the picked sweep (nothing waits for a Refresh press).
        demo.load(sweeps.refresh, sweeps.sweep, sweeps.sweep, api_visibility="private").then(
            sweeps.load, sweeps.load_inputs, sweeps.load_outputs, api_visibility="private"
        )
        demo.load(versus.load, None, versus.load_outputs, api_visibility="private")
        demo.load(blind.refresh, blind.sweep, blind.sweep, api_visibility="private")
        demo.load(training.load, None, training.outputs, api_visibility="private")
        demo.load(compare.refresh, None, compare.adapter, api_visibility="private")
        # Another adapter served: the Training tab picks its run.
        compare.switch_event.then(training.load, None, training.outputs, api_visibility="private")
        # A saved live generation or an ingested job adds a sweep: the pickers follow, keeping their value.
        for trigger in (
            compare.save_event,
            timer.tick(handlers.ingest_jobs, None, None, api_visibility="private", show_progress="hidden"),
        ):
            trigger.then(
                sweeps.follow,
                sweeps.load_inputs,
                [sweeps.sweep, *sweeps.load_outputs],
                api_visibility="private",
                show_progress="hidden",
            )
            trigger.then(
                blind.refresh, blind.sweep, blind.sweep, api_visibility="private", show_progress="hidden"
            )
            trigger.then(
                versus.refresh,
                versus.pickers,
                versus.pickers,
                api_visibility="private",
                show_progress="hidden",
            )
    return demo


def launch_app(handlers: AppHandlers, options: ServeOptions, *, block: bool = False) -> tuple[gr.Blocks, str]:
    """Queue with a concurrency limit, then launch quietly; returns the app and its local URL.

    The public link (with ``share``) is ``demo.share_url``. With ``block`` this returns only when
    the server stops (Ctrl+C).
    """
    demo = build_app(handlers)
    demo.queue(default_concurrency_limit=options.concurrency)
    css = CSS_PATH.read_text(encoding="utf-8")
    page_js = JS_PATH.read_text(encoding="utf-8")
    _app, local_url, _share_url = demo.launch(
        server_name=options.host,
        server_port=options.port,
        share=options.share,
        auth=options.auth or None,
        auth_message="ft-hallu: sign in to compare the models" if options.auth else None,
        prevent_thread_lock=True,
        quiet=True,
        css=css,
        js=page_js,
        footer_links=["api"],
    )
    if block:
        demo.block_thread()
    return demo, local_url
