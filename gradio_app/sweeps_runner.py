"""The Sweeps tab's callbacks: methods of :class:`SweepsRunner` that return ``{component: value}``.

As LLaMA-Factory's web UI runner does, each callback names the components it changes, so a
callback that touches three of fifteen outputs says which three, and the wiring in
``sweeps_tab`` lists each event's outputs once. A named API endpoint still returns every output in
the listed order (a component a callback leaves alone comes back as ``gr.skip()``, as before).
The work itself is :class:`gradio_app.handlers.AppHandlers`' methods; bad input raises
``UserError``, shown as a one-line toast (``events.user_errors``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from engine.errors import UserError
from gradio_app.events import user_errors
from gradio_app.handlers import ALL, CELL_COLUMNS, NO_FILTER, AppHandlers, empty_frame, fmt_value
from gradio_app.plots import empty_figure
from gradio_app.views import EMPTY_VIEW

# Plain text: it is shown as Markdown, as HTML and as a figure title.
NO_SWEEP = (
    "No sweep stored yet: run ft-hallu sweep (or ft-hallu demo), import a log, or save a live "
    "generation from the Compare tab."
)
NO_SWEEP_SHORT = "No sweep stored yet."  # beside the full hint above: said once, not in every pane
EMPTY_CAPTION = "No cell picked yet."
EMPTY_CLAIMS = "<p class='dim'>Click a sample above to see its claims and label it.</p>"

Updates = dict[Any, Any]  # component -> its new value (or a gr.update / gr.skip)
# The samples table's controls when a sweep opens: no search, every variant and prompt, no threshold.
DEFAULT_SEARCH = ("", False, ALL, ALL, NO_FILTER, "<", None, False)


@dataclass(frozen=True)
class SweepsView:
    """The Sweeps tab's components, built by the layout, so callbacks can name them and the wiring
    can find them."""

    sweep: gr.Dropdown
    sweep_info: gr.Markdown
    finding: gr.HTML
    metric: gr.Dropdown
    heat_prompt: gr.Dropdown
    heat_caption: gr.Markdown
    heat_note: gr.Markdown
    plot: gr.Plot
    heat_click: gr.Textbox
    variant_filter: gr.Dropdown
    t_filter: gr.Dropdown
    p_filter: gr.Dropdown
    k_filter: gr.Dropdown
    prompt_filter: gr.Dropdown
    cells: gr.Dataframe
    caption: gr.Markdown
    aligned: gr.HTML
    picked: gr.Textbox
    label_status: gr.Markdown
    claims: gr.HTML
    label_counts: gr.Markdown
    calibration_text: gr.Markdown
    calibration_table: gr.Dataframe
    view_state: gr.State  # the cell on show, so a label re-renders it
    refresh_btn: gr.Button
    score_btn: gr.Button
    show_btn: gr.Button
    label_buttons: dict[str, gr.Button]  # label -> its button
    calibrate_btn: gr.Button
    search: gr.Textbox
    regex: gr.Checkbox
    search_variant: gr.Dropdown
    search_prompt: gr.Dropdown
    threshold_metric: gr.Dropdown
    threshold_op: gr.Dropdown
    threshold_value: gr.Number
    differ: gr.Checkbox
    search_btn: gr.Button
    export_btn: gr.Button
    samples_summary: gr.Markdown
    samples_table: gr.HTML
    samples_file: gr.File

    @property
    def search_controls(self) -> list[Any]:
        """The samples table's controls, in ``AppHandlers.sample_query``'s order."""
        return [
            self.search,
            self.regex,
            self.search_variant,
            self.search_prompt,
            self.threshold_metric,
            self.threshold_op,
            self.threshold_value,
            self.differ,
        ]

    @property
    def heat_outputs(self) -> list[Any]:
        return [self.plot, self.heat_caption, self.heat_note]

    @property
    def filters(self) -> list[Any]:
        return [self.variant_filter, self.t_filter, self.p_filter, self.k_filter, self.prompt_filter]

    @property
    def load_inputs(self) -> list[Any]:
        return [self.sweep, self.metric, self.heat_prompt]

    @property
    def cell_view(self) -> list[Any]:
        """What opening a cell changes: the setting's filters, the table, the samples, the labels."""
        return [
            self.t_filter,
            self.p_filter,
            self.k_filter,
            self.cells,
            self.caption,
            self.aligned,
            self.view_state,
            self.claims,
            self.label_status,
        ]

    @property
    def load_outputs(self) -> list[Any]:
        """Everything loading a sweep draws (and the sample view it clears), in the API's order."""
        return [
            self.sweep_info,
            self.t_filter,
            self.p_filter,
            self.k_filter,
            self.prompt_filter,
            self.heat_prompt,
            self.plot,
            self.cells,
            self.label_counts,
            self.caption,
            self.aligned,
            self.claims,
            self.picked,
            self.view_state,
            self.label_status,
            self.finding,
            self.heat_caption,
            self.heat_note,
            self.search_prompt,
            self.samples_summary,
            self.samples_table,
        ]


def _choices(values: list[str], value: str = ALL) -> dict[str, Any]:
    return gr.update(choices=[ALL, *values], value=value if value in values else ALL)


def _view_state(
    sweep: Any, variant: Any, temperature: Any, top_p: Any, top_k: Any, prompt: Any, clicked: Any
):
    return {
        "sweep": str(sweep),
        "variant": variant,
        "temperature": temperature,
        "top_p": top_p,
        "top_k": top_k,
        "prompt": prompt,
        "clicked": clicked,
    }


class SweepsRunner:
    """``SweepsRunner(handlers, view)``: the Sweeps tab's callbacks over one app's handlers."""

    def __init__(self, handlers: AppHandlers, view: SweepsView):
        self.handlers = handlers
        self.view = view

    # ------------------------------------------------------------ the sweep list and a sweep

    def _keep_or_newest(self, current: Any) -> dict[str, Any]:
        choices = self.handlers.sweep_choices()
        ids = [value for _label, value in choices]
        value = str(current) if current and str(current) in ids else (ids[0] if ids else None)
        return gr.update(choices=choices, value=value)

    @user_errors
    def list_sweeps(self, current: Any = None) -> Updates:
        return {self.view.sweep: self._keep_or_newest(current)}

    @user_errors
    def follow(self, current: Any, metric: Any, heat_prompt: Any) -> Updates:
        """After a save or an ingest: the new list; the tab is drawn only if nothing was shown."""
        update = self._keep_or_newest(current)
        if current or not update["value"]:
            return {self.view.sweep: update}
        return {self.view.sweep: update, **self.load_sweep(update["value"], metric, heat_prompt)}

    @user_errors
    def load_sweep(self, sweep: Any, metric: Any, heat_prompt: Any) -> Updates:
        """Everything the tab shows for one sweep, the finding first; the sample view and labels are
        cleared. The heatmaps open on one prompt (the entity prompt), never on a silent pool."""
        view = self.view
        cleared = {
            view.caption: EMPTY_CAPTION,
            view.aligned: EMPTY_VIEW,
            view.claims: EMPTY_CLAIMS,
            view.picked: "",
            view.view_state: None,
            view.label_status: "",
        }
        if not sweep:
            blank = gr.update(choices=[ALL], value=ALL)
            return self._in_order(
                {
                    view.sweep_info: NO_SWEEP_SHORT,
                    **{picker: blank for picker in (view.t_filter, view.p_filter, view.k_filter)},
                    view.prompt_filter: blank,
                    view.heat_prompt: gr.update(
                        choices=[], value=None
                    ),  # the next sweep opens on its default
                    view.plot: gr.update(value=empty_figure(NO_SWEEP_SHORT), visible=True),
                    view.cells: empty_frame(CELL_COLUMNS),
                    view.label_counts: "",
                    view.finding: f'<p class="headline">{NO_SWEEP}</p>',
                    view.heat_caption: "",
                    view.heat_note: "",
                    view.search_prompt: blank,
                    view.samples_summary: "",
                    view.samples_table: "",
                    **cleared,
                }
            )
        handlers = self.handlers
        filters = handlers.sweep_filters(sweep)
        prompts, default = handlers.prompt_choices(sweep)
        values = [value for _label, value in prompts]
        picked = str(heat_prompt) if heat_prompt and str(heat_prompt) in values else default
        summary, rows = handlers.samples_view(sweep, *DEFAULT_SEARCH)
        return self._in_order(
            {
                view.sweep_info: filters.info,
                view.t_filter: _choices(filters.temperatures),
                view.p_filter: _choices(filters.top_ps),
                view.k_filter: _choices(filters.top_ks),
                view.prompt_filter: _choices(filters.prompts),
                view.heat_prompt: gr.update(choices=prompts, value=picked),
                **self._heat(sweep, metric, picked),
                view.cells: handlers.sweep_cells(sweep),
                view.label_counts: handlers.label_summary(sweep),
                view.finding: handlers.summary_view(sweep),
                view.search_prompt: gr.update(choices=[("every prompt", ALL), *prompts], value=ALL),
                view.samples_summary: summary,
                view.samples_table: rows,
                **cleared,
            }
        )

    def _in_order(self, updates: Updates) -> Updates:
        """A load's updates in ``load_outputs`` order (the order its named endpoint returns them in)."""
        return {component: updates[component] for component in self.view.load_outputs}

    def _heat(self, sweep: Any, metric: Any, prompt: Any) -> Updates:
        """The plot (hidden when the metric does not vary), the prompt caption and the one-line note."""
        shown = self.handlers.heat_view(sweep, metric, prompt)
        plot = (
            gr.update(value=shown.figure, visible=True)
            if shown.figure is not None
            else gr.update(value=None, visible=False)
        )
        return {self.view.plot: plot, self.view.heat_caption: shown.caption, self.view.heat_note: shown.note}

    @user_errors
    def score(self, sweep: Any) -> Updates:
        return {self.view.sweep_info: self.handlers.score_sweep(sweep)}

    # ------------------------------------------------------------ heatmaps, cells, samples

    @user_errors
    def heatmaps(self, sweep: Any, metric: Any, prompt: Any) -> Updates:
        if not sweep:
            return {
                self.view.plot: gr.update(value=empty_figure(NO_SWEEP_SHORT), visible=True),
                self.view.heat_caption: "",
                self.view.heat_note: "",
            }
        return self._heat(sweep, metric, prompt)

    # ------------------------------------------------------------ the samples table

    @user_errors
    def search_samples(self, sweep: Any, *controls: Any) -> Updates:
        if not sweep:
            return {self.view.samples_summary: NO_SWEEP_SHORT, self.view.samples_table: ""}
        summary, rows = self.handlers.samples_view(sweep, *controls)
        return {self.view.samples_summary: summary, self.view.samples_table: rows}

    @user_errors
    def export_samples(self, sweep: Any, *controls: Any) -> Updates:
        if not sweep:
            raise UserError("sweep: pick a stored sweep first")
        path = self.handlers.samples_csv(sweep, *controls)
        return {self.view.samples_file: gr.update(value=path, visible=True)}

    @user_errors
    def sweep_cells(
        self, sweep: Any, variant: Any, temperature: Any, top_p: Any, top_k: Any, prompt: Any
    ) -> Updates:
        return {self.view.cells: self.handlers.sweep_cells(sweep, variant, temperature, top_p, top_k, prompt)}

    def _show_cell(
        self, sweep: Any, variant: Any, temperature: Any, top_p: Any, top_k: Any, prompt: Any, clicked: Any
    ) -> Updates:
        """One cell opened: its setting in the filters, the table narrowed to it, its samples."""
        view = self.view
        caption, html = self.handlers.aligned_view(
            sweep, temperature, top_p, top_k, prompt, variant, clicked=clicked
        )
        return {
            view.t_filter: temperature,
            view.p_filter: top_p,
            view.k_filter: top_k,
            view.cells: self.handlers.sweep_cells(sweep, variant, temperature, top_p, top_k, prompt),
            view.caption: caption,
            view.aligned: html,
            view.view_state: _view_state(sweep, variant, temperature, top_p, top_k, prompt, clicked),
            view.claims: EMPTY_CLAIMS,
            view.label_status: "",
        }

    @user_errors
    def open_cell(self, sweep: Any, payload: Any, variant: Any, prompt: Any) -> Updates:
        """A heatmap click: filter the cells to that setting and show its aligned samples."""
        if not payload:
            return {component: gr.skip() for component in self.view.cell_view}
        click = self.handlers.parse_click(payload)
        prompt = ALL if str(prompt or "").endswith("*") else prompt  # a prefix: every prompt's rows
        return self._show_cell(
            sweep, variant, click.temperature, click.top_p, click.top_k, prompt, click.variant
        )

    @user_errors
    def select_cell(self, sweep: Any, variant: Any, prompt: Any, evt: gr.SelectData) -> Updates:
        """A row of the cells table: that cell's samples (and its prompt in the prompt filter)."""
        row = evt.row_value  # variant, temperature, top_p, top_k, prompt_id, ...
        temperature, top_p, top_k = fmt_value(float(row[1])), fmt_value(float(row[2])), fmt_value(int(row[3]))
        picked_prompt = str(row[4]) if row[4] else prompt
        shown = self._show_cell(sweep, variant, temperature, top_p, top_k, picked_prompt, str(row[0]))
        return {**shown, self.view.prompt_filter: picked_prompt}

    @user_errors
    def cell_samples(
        self, sweep: Any, temperature: Any, top_p: Any, top_k: Any, prompt: Any, variant: Any
    ) -> Updates:
        """ "Show samples": the filtered cell's aligned samples (the table stays as filtered)."""
        caption, html = self.handlers.aligned_view(sweep, temperature, top_p, top_k, prompt, variant)
        return {
            self.view.caption: caption,
            self.view.aligned: html,
            self.view.view_state: _view_state(sweep, variant, temperature, top_p, top_k, prompt, None),
        }

    # ------------------------------------------------------------ labels and calibration

    @user_errors
    def pick_sample(self, payload: Any) -> Updates:
        return {self.view.claims: self.handlers.pick_sample(payload) if payload else EMPTY_CLAIMS}

    def set_label(self, label: str, payload: Any, state: Any, sweep: Any) -> Updates:
        """Label the picked sample; the cell on show is drawn again with the label's badge."""
        handlers = self.handlers
        status = handlers.set_label(payload, label)
        picked = handlers.generation_id(payload)
        html = gr.update()
        if state and state.get("sweep") == str(sweep):
            _caption, html = handlers.aligned_view(
                state["sweep"],
                state["temperature"],
                state["top_p"],
                state["top_k"],
                state["prompt"],
                state["variant"],
                clicked=state.get("clicked"),
                picked=picked,
            )
        return {
            self.view.label_status: status,
            self.view.aligned: html,
            self.view.claims: handlers.pick_sample(payload),
            self.view.label_counts: handlers.label_summary(sweep),
        }

    def labeller(self, label: str) -> Callable[[Any, Any, Any], Updates]:
        """The callback of one label's button (and its key)."""

        @user_errors
        def set_label(payload: Any, state: Any, sweep: Any) -> Updates:
            return self.set_label(label, payload, state, sweep)

        return set_label

    @user_errors
    def calibration(self, sweep: Any) -> Updates:
        text, table = self.handlers.calibration(sweep)
        return {self.view.calibration_text: text, self.view.calibration_table: table}
