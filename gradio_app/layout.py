"""The Gradio Blocks app: a header, the Compare tab (live, streaming) and the Sweeps tab (stored sweeps).

Each tab is one module (``compare_tab``, ``sweeps_tab``) that lays out and wires its components to
:class:`gradio_app.handlers.AppHandlers`; this module puts them together and launches the server.
Events that touch the model share one concurrency group so two generations never run on the
device at the same time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from gradio_app.compare_tab import build_compare_tab
from gradio_app.events import MODEL_GROUP
from gradio_app.handlers import AppHandlers
from gradio_app.sweeps_tab import build_sweeps_tab

CSS_PATH = Path(__file__).with_name("style.css")
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
    adapter_label = settings.adapter_dir or "none"
    with gr.Blocks(title="ft-hallu: base vs fine-tuned") as demo:
        gr.Markdown(
            f"## ft-hallu · base vs fine-tuned\nModel **{settings.base_model}** · adapter **{adapter_label}** · "
            f"store `{handlers.workspace.db_path}`",
            elem_id="header",
        )
        build_compare_tab(handlers)
        sweeps = build_sweeps_tab(handlers)
        demo.load(sweeps.list_sweeps, None, sweeps.sweep, api_visibility="private")
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
