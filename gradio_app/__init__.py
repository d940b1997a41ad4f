"""Gradio front end: base and fine-tuned side by side, and stored sweeps as heatmaps.

``AppHandlers(loaded, workspace, settings)`` (plain callbacks over the model and the Workspace),
one module per tab (``compare_tab``, ``sweeps_tab``: layout and wiring only), ``build_app`` (the
Blocks) and ``launch_app`` (queue + launch) are what ``ft-hallu serve`` calls.
"""

from gradio_app.handlers import AppHandlers, AppSettings, LiveSettings
from gradio_app.layout import ServeOptions, build_app, launch_app

__all__ = ["AppHandlers", "AppSettings", "LiveSettings", "ServeOptions", "build_app", "launch_app"]
