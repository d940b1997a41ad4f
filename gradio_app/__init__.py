"""Gradio front end: base and fine-tuned side by side, and stored sweeps as heatmaps.

``AppHandlers`` (plain callbacks over engine/ and store/), ``build_app`` (the Blocks layout) and
``launch_app`` (queue + launch) are what ``ft-hallu serve`` calls.
"""

from gradio_app.handlers import AppHandlers, AppSettings, LiveSettings
from gradio_app.layout import ServeOptions, build_app, launch_app

__all__ = ["AppHandlers", "AppSettings", "LiveSettings", "ServeOptions", "build_app", "launch_app"]
