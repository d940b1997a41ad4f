"""The Compare, Training, Study and Sweep vs sweep tabs' callbacks: methods that return
``{component: value}``.

As :class:`gradio_app.sweeps_runner.SweepsRunner` does for the Sweeps tab, each callback names the
components it changes; the tab modules lay components out and wire events to these methods only.
The work is :class:`gradio_app.handlers.AppHandlers`' methods (engine results, formatted); bad input
raises ``UserError``, shown as a one-line toast (``events.user_errors``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from engine.errors import UserError
from engine.metrics.catalog import MAIN_SCORE
from engine.workspace import LiveSettings
from gradio_app.events import session, user_errors
from gradio_app.handlers import NO_CHECKPOINT_SWEEP, AppHandlers, empty_frame
from gradio_app.plots import empty_figure
from gradio_app.study_views import CELL_COLUMNS, ROWS_COLUMNS, TRAJECTORY_FIXED
from gradio_app.views import live_scores_html

Updates = dict[Any, Any]  # component -> its new value (or a gr.update / gr.skip)
MOST_RUNS = 2  # loss curves overlaid at once
NO_RUNS = "No fine-tune run recorded in this store yet: run `ft-hallu finetune` (or launch one) to see its loss here."


# ---------------------------------------------------------------- Compare

PENDING = '<p class="dim">Scores and claims follow as soon as the answer is finished…</p>'
NOT_SCORED_YET = '<p class="dim">Scores and claims appear here when the answer is finished.</p>'


@dataclass(frozen=True)
class CompareView:
    adapter: gr.Dropdown
    adapter_status: gr.Markdown
    prompt: gr.Textbox
    system_prompt: gr.Textbox
    temperature: gr.Slider
    top_p: gr.Slider
    top_k: gr.Slider
    max_new_tokens: gr.Slider
    seed: gr.Number
    same_seed: gr.Checkbox
    finetuned_seed: gr.Number
    base_pane: gr.Textbox
    finetuned_pane: gr.Textbox
    base_scores: gr.HTML
    finetuned_scores: gr.HTML
    status: gr.Markdown
    samples: gr.Slider
    base_samples: gr.Dataframe
    finetuned_samples: gr.Dataframe
    live_metrics: gr.Dataframe
    last_run: gr.State  # the last live batch, until "Save to store"
    generate_btn: gr.Button
    stop_btn: gr.Button
    save_btn: gr.Button
    sample_btn: gr.Button
    adapters_btn: gr.Button

    @property
    def live_inputs(self) -> list[Any]:
        """The sampling controls, in ``CompareRunner.compare``'s order."""
        return [
            self.prompt,
            self.system_prompt,
            self.temperature,
            self.top_p,
            self.top_k,
            self.max_new_tokens,
            self.seed,
            self.same_seed,
            self.finetuned_seed,
        ]

    @property
    def stream_outputs(self) -> list[Any]:
        return [
            self.base_pane,
            self.finetuned_pane,
            self.status,
            self.last_run,
            self.base_scores,
            self.finetuned_scores,
        ]

    @property
    def sample_outputs(self) -> list[Any]:
        return [self.base_samples, self.finetuned_samples, self.live_metrics, self.status, self.last_run]

    @property
    def switch_outputs(self) -> list[Any]:
        return [
            self.adapter_status,
            self.prompt,
            self.base_pane,
            self.finetuned_pane,
            self.base_scores,
            self.finetuned_scores,
            self.last_run,
        ]


def finetuned_label(handlers: AppHandlers) -> str:
    if not handlers.has_adapter:
        return "Fine-tuned model (no adapter served: pick one above)"
    return "Fine-tuned model (LoRA adapter on)"


class CompareRunner:
    """Both models answer one prompt, streamed; each answer is scored with its claims as soon as it
    is finished; N samples; save; another stored adapter served without a restart."""

    def __init__(self, handlers: AppHandlers, view: CompareView):
        self.handlers = handlers
        self.view = view

    def _live(self, controls: Sequence[Any]) -> tuple[Any, Any, LiveSettings]:
        """(prompt, system prompt, settings) from ``CompareView.live_inputs``' values."""
        prompt, system_prompt, temperature, top_p, top_k, max_new_tokens, seed, same_seed, finetuned_seed = (
            controls
        )
        other = None if same_seed else finetuned_seed
        live = self.handlers.live_settings(temperature, top_p, top_k, max_new_tokens, seed, other)
        return prompt, system_prompt, live

    def compare(
        self,
        prompt: Any,
        system_prompt: Any,
        temperature: Any,
        top_p: Any,
        top_k: Any,
        max_new_tokens: Any,
        seed: Any,
        same_seed: Any,
        finetuned_seed: Any,
        request: gr.Request,
    ) -> Iterator[Updates]:
        handlers, view = self.handlers, self.view
        controls = (
            prompt,
            system_prompt,
            temperature,
            top_p,
            top_k,
            max_new_tokens,
            seed,
            same_seed,
            finetuned_seed,
        )
        try:
            prompt, system_prompt, live = self._live(controls)
            for update in handlers.stream_compare(prompt, system_prompt, live, session=session(request)):
                texts = {
                    view.base_pane: update.base_text,
                    view.finetuned_pane: update.finetuned_text,
                    view.status: update.status,
                }
                if update.run is None:
                    yield {**texts, view.base_scores: PENDING, view.finetuned_scores: PENDING}
                    continue
                # The answers are finished: score them (and check their claims) in the last update.
                scores = handlers.score_batch(update.run)
                yield {
                    **texts,
                    view.last_run: handlers.live_state(update.run),
                    view.base_scores: live_scores_html(scores, "base"),
                    view.finetuned_scores: live_scores_html(scores, "finetuned")
                    if handlers.has_adapter
                    else "",
                }
        except UserError as exc:  # a generator: user_errors cannot wrap it
            raise gr.Error(str(exc)) from None

    @user_errors
    def stop(self, request: gr.Request) -> Updates:
        return {self.view.status: self.handlers.stop(session(request))}

    @user_errors
    def sample(self, *controls: Any) -> Updates:
        """N samples per side: ``controls`` are ``CompareView.live_inputs``' values, then N."""
        handlers, view = self.handlers, self.view
        *live_controls, samples = controls
        prompt, system_prompt, live = self._live(live_controls)
        base, finetuned, metrics, run = handlers.sample_cell(prompt, system_prompt, live, samples)
        return {
            view.base_samples: base,
            view.finetuned_samples: finetuned,
            view.live_metrics: metrics,
            view.status: f"{int(samples)} samples per side (seeds {live.seed}…{live.seed + int(samples) - 1})",
            view.last_run: handlers.live_state(run),
        }

    @user_errors
    def switch(self, path: Any, prompt: Any) -> Updates:
        """Serve the picked adapter; a default prompt follows the new adapter's entity name."""
        handlers, view = self.handlers, self.view
        old_default = handlers.settings.default_prompt
        message = handlers.switch_adapter(path)
        kept = (prompt or "").strip() not in ("", old_default)
        return {
            view.adapter_status: message,
            view.prompt: gr.skip() if kept else handlers.settings.default_prompt,
            view.base_pane: "",
            view.finetuned_pane: gr.update(value="", label=finetuned_label(handlers)),
            view.base_scores: NOT_SCORED_YET,
            view.finetuned_scores: NOT_SCORED_YET,
            view.last_run: None,
        }

    @user_errors
    def list_adapters(self) -> Updates:
        handlers = self.handlers
        return {
            self.view.adapter: gr.update(choices=handlers.adapter_choices(), value=handlers.served_choice())
        }

    @user_errors
    def save(self, state: Any) -> Updates:
        return {self.view.status: self.handlers.save_live(state)}


# ---------------------------------------------------------------- Training


@dataclass(frozen=True)
class TrainingView:
    runs: gr.CheckboxGroup
    refresh_btn: gr.Button
    note: gr.Markdown
    plot: gr.Plot
    trajectory_sweep: gr.Dropdown
    trajectory_note: gr.Markdown
    trajectory_plot: gr.Plot
    trajectory_table: gr.Dataframe

    @property
    def trajectory_outputs(self) -> list[Any]:
        return [self.trajectory_note, self.trajectory_plot, self.trajectory_table]

    @property
    def load_outputs(self) -> list[Any]:
        return [self.runs, self.plot, self.note, self.trajectory_sweep, *self.trajectory_outputs]


def _served_note(handlers: AppHandlers, served: str | None, runs: int) -> str:
    if not runs:
        return NO_RUNS
    if served:
        return f"Picked: run #{served}, whose adapter the Compare tab serves."
    if handlers.settings.adapter_dir:
        return "The served adapter was not trained in this store: showing the newest run."
    return "No adapter is served: showing the newest run."


class TrainingRunner:
    """Loss curves of the store's runs (the served adapter's run picked) and, for a checkpoint
    sweep, each metric against the training step next to the loss."""

    def __init__(self, handlers: AppHandlers, view: TrainingView):
        self.handlers = handlers
        self.view = view

    @user_errors
    def load(self) -> Updates:
        handlers, view = self.handlers, self.view
        choices = handlers.finetune_choices()
        served = handlers.served_run_id()
        picked = [served] if served else [value for _label, value in choices[:1]]
        sweeps, sweep, note = handlers.trajectory_choice(picked)
        return {
            view.runs: gr.update(choices=choices, value=picked),
            view.plot: gr.update(
                value=handlers.loss_curves(picked) if choices else None, visible=bool(choices)
            ),
            view.note: _served_note(handlers, served, len(choices)),
            view.trajectory_sweep: gr.update(choices=sweeps, value=sweep),
            **self._trajectory(sweep, note),
        }

    @user_errors
    def curves(self, picked: Any) -> Updates:
        if picked and len(picked) > MOST_RUNS:
            gr.Warning(f"showing the first {MOST_RUNS} picked runs: overlay at most {MOST_RUNS}")
        return {self.view.plot: self.handlers.loss_curves(picked)}

    @user_errors
    def trajectory(self, sweep: Any) -> Updates:
        return self._trajectory(sweep, "")

    def _trajectory(self, sweep: Any, lead: str) -> Updates:
        view = self.view
        if not sweep:
            return {
                view.trajectory_note: NO_CHECKPOINT_SWEEP,
                view.trajectory_plot: gr.update(value=None, visible=False),
                view.trajectory_table: gr.update(value=empty_frame(TRAJECTORY_FIXED), visible=False),
            }
        shown = self.handlers.trajectory_view(sweep)
        return {
            view.trajectory_note: " ".join(part for part in (lead, shown.note) if part),
            view.trajectory_plot: gr.update(value=shown.figure, visible=True),
            view.trajectory_table: gr.update(value=shown.table, visible=True),
        }


# ---------------------------------------------------------------- Study


@dataclass(frozen=True)
class StudyTabView:
    sweep: gr.Dropdown
    compute_btn: gr.Button
    header: gr.Markdown
    rows: gr.Dataframe
    row: gr.Dropdown
    caption: gr.Markdown
    plot: gr.Plot
    cells: gr.Dataframe
    knowledge_note: gr.Markdown
    knowledge: gr.Dataframe
    knowledge_plot: gr.Plot

    @property
    def row_outputs(self) -> list[Any]:
        return [self.caption, self.plot, self.cells]

    @property
    def outputs(self) -> list[Any]:
        """Everything a sweep's study draws, in the API's order."""
        return [
            self.sweep,
            self.header,
            self.rows,
            self.row,
            *self.row_outputs,
            self.knowledge_note,
            self.knowledge,
            self.knowledge_plot,
        ]


class StudyRunner:
    """The study of one sweep: paired base − variant differences per cell (bootstrap interval,
    BH-adjusted significance) and knowledge kept per temperature, from ``Workspace.compare``."""

    def __init__(self, handlers: AppHandlers, view: StudyTabView):
        self.handlers = handlers
        self.view = view

    @user_errors
    def open(self, current: Any) -> Updates:
        """The tab is selected: keep the sweep on show (its study is kept), else a sensible one."""
        choices, default, note = self.handlers.study_choice()
        ids = [value for _label, value in choices]
        picked = str(current) if current and str(current) in ids else default
        if picked is None:
            return self._nothing(choices, note)
        return self._draw(picked, None, fresh=False, choices=choices)

    @user_errors
    def show(self, sweep: Any) -> Updates:
        """A sweep picked: its study (computed once, then kept)."""
        if not sweep:
            choices, _default, note = self.handlers.study_choice()
            return self._nothing(choices, note)
        return self._draw(sweep, None, fresh=False)

    @user_errors
    def recompute(self, sweep: Any, row: Any) -> Updates:
        """After new scores or samples: compute the sweep's study again."""
        if not sweep:
            raise UserError("sweep: pick a stored sweep first")
        return self._draw(sweep, row, fresh=True)

    @user_errors
    def pick_row(self, sweep: Any, row: Any) -> Updates:
        caption, figure, cells = self.handlers.study_row(sweep, row)
        return {self.view.caption: caption, self.view.plot: figure, self.view.cells: cells}

    def _draw(self, sweep: Any, row: Any, *, fresh: bool, choices: list | None = None) -> Updates:
        view = self.view
        shown = self.handlers.study_view(sweep, row, fresh=fresh)
        picker = (
            gr.update(value=str(sweep)) if choices is None else gr.update(choices=choices, value=str(sweep))
        )
        return {
            view.sweep: picker,
            view.header: shown.header,
            view.rows: shown.rows,
            view.row: gr.update(choices=shown.row_choices, value=shown.row),
            view.caption: shown.caption,
            view.plot: shown.figure,
            view.cells: shown.cells,
            view.knowledge_note: shown.knowledge_note,
            view.knowledge: gr.update(value=shown.knowledge, visible=shown.has_knowledge),
            view.knowledge_plot: gr.update(value=shown.knowledge_figure, visible=shown.has_knowledge),
        }

    def _nothing(self, choices: list, note: str) -> Updates:
        view = self.view
        return {
            view.sweep: gr.update(choices=choices, value=None),
            view.header: note,
            view.rows: empty_frame(ROWS_COLUMNS),
            view.row: gr.update(choices=[], value=None),
            view.caption: "",
            view.plot: empty_figure(note.split(":")[0]),
            view.cells: empty_frame(CELL_COLUMNS),
            view.knowledge_note: "",
            view.knowledge: gr.update(value=empty_frame(("T",)), visible=False),
            view.knowledge_plot: gr.update(value=None, visible=False),
        }


# ---------------------------------------------------------------- Sweep vs sweep


@dataclass(frozen=True)
class VersusView:
    first: gr.Dropdown
    first_variant: gr.Dropdown
    second: gr.Dropdown
    second_variant: gr.Dropdown
    metric: gr.Dropdown
    prompt: gr.Dropdown
    compare_btn: gr.Button
    note: gr.Markdown
    plot: gr.Plot

    @property
    def inputs(self) -> list[Any]:
        return [self.first, self.first_variant, self.second, self.second_variant, self.metric, self.prompt]

    @property
    def pickers(self) -> list[Any]:
        return [self.first, self.second]

    @property
    def load_outputs(self) -> list[Any]:
        return [
            self.first,
            self.first_variant,
            self.second,
            self.second_variant,
            self.prompt,
            self.plot,
            self.note,
        ]


class VersusRunner:
    """Two sweeps' heatmaps of one metric and the second minus the first: opened drawn on a
    sensible pair (``AppHandlers.sweep_pair``), or one line saying what it needs."""

    def __init__(self, handlers: AppHandlers, view: VersusView):
        self.handlers = handlers
        self.view = view

    @user_errors
    def refresh(self, first: Any, second: Any) -> Updates:
        """New sweeps in the store: the pickers' lists, keeping what they hold."""
        choices = self.handlers.sweep_choices()
        ids = [value for _label, value in choices]

        def keep(current: Any) -> Any:
            return gr.update(choices=choices, value=str(current) if current and str(current) in ids else None)

        return {self.view.first: keep(first), self.view.second: keep(second)}

    @user_errors
    def compare(
        self, first: Any, first_variant: Any, second: Any, second_variant: Any, metric: Any, prompt: Any
    ) -> Updates:
        if not first or not second:
            return {self.view.plot: empty_figure("pick two stored sweeps"), self.view.note: ""}
        figure = self.handlers.compare_sweeps(first, first_variant, second, second_variant, metric, prompt)
        return {self.view.plot: figure, self.view.note: self.handlers.pair_caption(first, second, prompt)}

    @user_errors
    def load(self) -> Updates:
        handlers, view = self.handlers, self.view
        choices = handlers.sweep_choices()
        pair = handlers.sweep_pair()
        if pair.first is None or pair.second is None:
            blank = gr.update(choices=choices, value=None)
            return {
                view.first: blank,
                view.second: blank,
                view.plot: empty_figure(pair.note.split(":")[0]),
                view.note: pair.note,
            }
        prompts, prompt = handlers.pair_prompts(pair.first, pair.second)
        try:
            figure = handlers.compare_sweeps(
                pair.first, pair.first_variant, pair.second, pair.second_variant, MAIN_SCORE, prompt
            )
            note = " ".join(
                part for part in (pair.note, handlers.pair_caption(pair.first, pair.second, prompt)) if part
            )
        except UserError as exc:  # e.g. the pair has no scored cells yet: say so where the plot goes
            figure, note = empty_figure(str(exc)), str(exc)
        return {
            view.first: gr.update(choices=choices, value=pair.first),
            view.first_variant: pair.first_variant,
            view.second: gr.update(choices=choices, value=pair.second),
            view.second_variant: pair.second_variant,
            view.prompt: gr.update(choices=prompts, value=prompt),
            view.plot: figure,
            view.note: note,
        }
