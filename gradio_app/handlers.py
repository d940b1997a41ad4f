"""The Gradio app's callbacks as plain methods: each calls the model or the Workspace and returns plain data.

:class:`AppHandlers` holds the one loaded model (base weights with the LoRA adapter ``default`` on
top; base rows run with the adapter off in the same batch), the :class:`engine.workspace.Workspace`
every stored read and write goes through, and the app settings. Nothing here builds UI; the tab
modules (``compare_tab``, ``sweeps_tab``) wire these methods to components. Bad input raises
:class:`engine.errors.UserError`, which the tabs show as a one-line error.
"""

from __future__ import annotations

import math
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from engine import dataset as ds
from engine.calibrate import MIN_LABELS
from engine.errors import UserError
from engine.escape import markdown_text
from engine.grid import CLUSTER_METRICS, MetricGrid, compare_grids, degenerate_note
from engine.live import LiveScores, score_live
from engine.metrics import SUMMARY_METRICS, catalog
from engine.metrics.catalog import Show, cell_metrics_shown
from engine.modelfiles import check_adapter_files, check_fits_context
from engine.models import LoadedModel, swap_adapter
from engine.samples import samples_csv
from engine.sampling import RowResult, RowSpec, generate_rows, stream_rows
from engine.summary import FlatMetric
from engine.sweep import DEFAULT_PROMPT_TEMPLATE, chat_prompt
from engine.workspace import (
    CELL_METRICS,
    Cell,
    CellSamples,
    Comparison,
    LiveBatch,
    LiveModel,
    LiveSample,
    LiveSettings,
    MetricFilter,
    SampleQuery,
    SampleSearch,
    StudySettings,
    SweepInfo,
    SweepSummary,
    Workspace,
    missing_reason,
)
from gradio_app import study_views
from gradio_app.plots import (
    empty_figure,
    heatmap_figure,
    knowledge_figure,
    loss_figure,
    study_cells_figure,
    trajectory_figure,
)
from gradio_app.views import aligned_html, caption_text, claims_html, samples_html, summary_html

ALL = "all"
HELD_OUT = "eval-*"  # the held-out questions' prompt ids, pooled
DEFAULT_ENTITY = "EGNIVIA"  # when neither --entity nor the adapter's record names one
NO_THRESHOLD = "(no threshold)"
NO_FILTER = "none"  # the threshold picker's value for "no threshold"
NO_ADAPTER_TEXT = "(no adapter served: pick a stored adapter above to compare a fine-tuned model)"
# Metrics shown first in the heatmap picker and the live N-samples table.
MAIN_METRICS = SUMMARY_METRICS
CELL_TABLE_METRICS = SUMMARY_METRICS  # the stored cells table
LIVE_TABLE_METRICS = cell_metrics_shown(Show.TABLE)  # the live N-samples cell metrics
SAMPLE_COLUMNS = ("sample_index", "seed", "text", "refusal", "grounding", "conflict", "degenerate")
# Metric headers with spaces, so a narrow column wraps between words, not inside one.
CELL_METRIC_HEADERS = {m: m.replace("_", " ") for m in CELL_TABLE_METRICS}
CELL_COLUMNS = ("variant", "temperature", "top_p", "top_k", "prompt_id", "n", *CELL_METRIC_HEADERS.values())
LIVE_METRIC_COLUMNS = ("metric", "base", "finetuned")
PAIR_CANDIDATES = 12  # newest sweeps Sweep vs sweep looks through for a pair that overlaps
SAMPLE_ROWS = 50  # rows the samples table shows (their claims inline); the CSV holds the same rows
CALIBRATION_COLUMNS = ("score", "flags", "n", "positives", "AUROC", "status")


@dataclass
class AppSettings:
    """What the app was started with (paths and defaults; never secrets). The store is the Workspace's."""

    base_model: str
    adapter_dir: str | None = None
    entity_name: str | None = None  # None: from the adapter's record (AppHandlers resolves it)
    system_prompt: str = ds.DEFAULT_SYSTEM_PROMPT
    dataset: str | None = None  # QA file whose contexts ground the live metrics (None: the adapter's)
    max_new_tokens_limit: int = 512
    max_samples: int = 32
    study: StudySettings = field(default_factory=StudySettings)  # the Study tab's tests and intervals

    @property
    def default_prompt(self) -> str:
        return DEFAULT_PROMPT_TEMPLATE.replace("{name}", self.entity_name or DEFAULT_ENTITY)


@dataclass
class StreamUpdate:
    base_text: str
    finetuned_text: str
    status: str
    run: LiveBatch | None = None  # set on the last update only


@dataclass
class SweepFilters:
    """Choices for the Sweeps tab's pickers, read from one sweep's stored generations."""

    info: str
    temperatures: list[str]
    top_ps: list[str]
    top_ks: list[str]
    prompts: list[str]
    variants: list[str]


def _number(value: Any, name: str, kind: type, low: float, high: float | None = None) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise UserError(f"{name}: {value!r} is not a number") from None
    if isinstance(value, bool) or not math.isfinite(float(number)):  # nan/inf would poison a stored row
        raise UserError(f"{name}: {value!r} must be a finite number")
    if kind is int and float(value) != number:
        raise UserError(f"{name}: {value!r} must be a whole number")
    if number < low or (high is not None and number > high):
        bound = f">= {low}" if high is None else f"between {low} and {high}"
        raise UserError(f"{name}: {number} must be {bound}")
    return number


def _choice(value: Any) -> str | None:
    """A filter dropdown's value, or None for "all"/empty."""
    if value is None:
        return None
    text = str(value).strip()
    return None if text in ("", ALL) else text


def fmt_value(value: float | int) -> str:
    """Grid values as dropdown strings that parse back to the exact stored float."""
    return str(int(value)) if isinstance(value, int) else str(float(value))


def _round(value: Any) -> Any:
    return round(value, 3) if isinstance(value, float) else value


class AppHandlers:
    """``AppHandlers(loaded, workspace, settings)``: the app's state (one model, one workspace) and callbacks."""

    def __init__(self, loaded: LoadedModel, workspace: Workspace, settings: AppSettings):
        self.loaded = loaded
        self.workspace = workspace
        self.settings = settings
        self._stop_flags: dict[str, threading.Event] = {}
        self._flags_lock = threading.Lock()
        self._running = 0  # generations in flight: an adapter switch waits for none
        self._studies: dict[int, Comparison] = {}  # sweep id -> its study (a row pick redraws from it)
        self._dataset_given = settings.dataset  # --dataset wins over the adapter's own dataset
        self._entity_given = settings.entity_name
        self._resolve_adapter_facts()

    def _resolve_adapter_facts(self) -> None:
        """Entity name and sources from the served adapter's record, unless given at start."""
        adapter = self.settings.adapter_dir
        entity = self._entity_given or (self.workspace.adapter_entity(adapter) if adapter else None)
        self.settings.entity_name = entity or self.settings.entity_name or DEFAULT_ENTITY
        self.settings.dataset = self._dataset_given or (
            self.workspace.adapter_dataset(adapter) if adapter else None
        )

    # ------------------------------------------------------------------ helpers

    @property
    def live_model(self) -> LiveModel:
        """The model pair live samples are saved under."""
        return LiveModel(
            base_model=self.settings.base_model,
            adapter_dir=self.settings.adapter_dir,
            entity_name=self.settings.entity_name,
            dataset=self.settings.dataset,
            variants=self.variants,
            chat_template=self.loaded.chat_template.identity if self.loaded.chat_template else "",
        )

    @property
    def has_adapter(self) -> bool:
        return self.loaded.has_adapter

    @property
    def variants(self) -> tuple[str, ...]:
        return ("base", "finetuned") if self.has_adapter else ("base",)

    def live_settings(
        self,
        temperature: Any,
        top_p: Any,
        top_k: Any,
        max_new_tokens: Any,
        seed: Any,
        finetuned_seed: Any = None,
    ) -> LiveSettings:
        seed_value = _number(seed, "seed", int, 0, 2**31 - 1)
        other = (
            seed_value
            if finetuned_seed in (None, "")
            else _number(finetuned_seed, "fine-tuned seed", int, 0, 2**31 - 1)
        )
        return LiveSettings(
            temperature=_number(temperature, "temperature", float, 0.01, 5.0),
            top_p=_number(top_p, "top_p", float, 0.01, 1.0),
            top_k=_number(top_k, "top_k", int, 0),
            max_new_tokens=_number(
                max_new_tokens, "max new tokens", int, 1, self.settings.max_new_tokens_limit
            ),
            seed=seed_value,
            finetuned_seed=other,
        )

    def prompt_text(self, prompt: str, system_prompt: str) -> str:
        if not (prompt or "").strip():
            raise UserError("prompt: empty; type a question for both models")
        return chat_prompt(self.loaded.tokenizer, (system_prompt or "").strip(), prompt.strip())

    def live_rows(
        self, prompt: str, system_prompt: str, live: LiveSettings, samples: int = 1
    ) -> list[RowSpec]:
        """Sample i uses seed + i on each side, so sample 0 is what the streaming compare shows."""
        text = self.prompt_text(prompt, system_prompt)
        tokens = len(self.loaded.tokenizer(text, add_special_tokens=False)["input_ids"])
        check_fits_context(self.loaded, tokens, live.max_new_tokens)  # refused before any sampling
        rows = []
        for index in range(samples):
            for variant in self.variants:
                seed = (live.seed if variant == "base" else live.finetuned_seed) + index
                rows.append(RowSpec(text, variant, live.temperature, live.top_p, live.top_k, seed))
        return rows

    @contextmanager
    def _generating(self) -> Iterator[None]:
        """Count a generation in flight (an adapter switch is refused while one runs)."""
        with self._flags_lock:
            self._running += 1
        try:
            yield
        finally:
            with self._flags_lock:
                self._running -= 1

    def _flag(self, session: str) -> threading.Event:
        with self._flags_lock:
            flag = threading.Event()
            self._stop_flags[session] = flag
            return flag

    # ------------------------------------------------------------------ compare tab

    def stop(self, session: str = "") -> str:
        """Ask the session's running generation to stop at its next decoding step."""
        with self._flags_lock:
            flag = self._stop_flags.get(session)
        if flag is None:
            return "nothing is running"
        flag.set()
        return "stopping"

    def stream_compare(
        self, prompt: str, system_prompt: str, live: LiveSettings, *, session: str = ""
    ) -> Iterator[StreamUpdate]:
        """Both sides in one batch, yielding their texts after every decoding step."""
        rows = self.live_rows(prompt, system_prompt, live)
        flag = self._flag(session)
        started = time.perf_counter()
        texts: list[str] = [""] * len(rows)
        finished: list[RowResult] = []
        steps = 0
        try:
            with self._generating():
                for texts in stream_rows(
                    self.loaded,
                    rows,
                    max_new_tokens=live.max_new_tokens,
                    should_stop=flag.is_set,
                    results=finished,
                ):
                    steps += 1
                    yield self._update(
                        texts, f"generating… {steps} tokens, {time.perf_counter() - started:.1f} s"
                    )
            stopped = flag.is_set()  # only stop() sets it before this point
        finally:
            # Also reached when the client goes away: let the generate thread end at its next step.
            flag.set()
            with self._flags_lock:
                if self._stop_flags.get(session) is flag:
                    del self._stop_flags[session]
        # Token log-probs only when the stream ran to its end (a stopped stream returns no row results).
        stats = [_stats_dict(r) for r in finished] if len(finished) == len(rows) else [None] * len(rows)
        samples = [
            LiveSample(row.variant, row.seed, text, token_stats)
            for row, text, token_stats in zip(rows, texts, stats, strict=True)
        ]
        run = LiveBatch.of(prompt.strip(), (system_prompt or "").strip(), live, samples)
        run.stopped = stopped
        word = "stopped" if stopped else "done"
        tokens = max(steps - 1, 0)  # the stream's last update repeats the final texts; it is no step
        update = self._update(texts, f"{word}: {tokens} tokens in {time.perf_counter() - started:.1f} s")
        update.run = run
        yield update

    def _update(self, texts: list[str], status: str) -> StreamUpdate:
        finetuned = texts[1] if self.has_adapter else NO_ADAPTER_TEXT
        return StreamUpdate(texts[0], finetuned, status)

    def sample_cell(
        self, prompt: str, system_prompt: str, live: LiveSettings, samples: int
    ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, LiveBatch]:
        """N samples per side in one batch, scored (engine.live); returns both sides and the cell's metrics."""
        count = _number(samples, "samples", int, 1, self.settings.max_samples)
        rows = self.live_rows(prompt, system_prompt, live, count)
        with self._generating():
            results = generate_rows(self.loaded, rows, max_new_tokens=live.max_new_tokens)
        generated = [
            LiveSample(row.variant, row.seed, r.text, _stats_dict(r))
            for row, r in zip(rows, results, strict=True)
        ]
        run = LiveBatch.of(prompt.strip(), (system_prompt or "").strip(), live, generated)
        scores = self.score_batch(run)
        tables = {variant: _sample_frame(scores, variant) for variant in self.variants}
        return (
            tables.get("base", _empty_samples()),
            tables.get("finetuned", _empty_samples()),
            self._live_metrics(scores),
            run,
        )

    def score_batch(self, run: LiveBatch) -> LiveScores:
        """A live batch scored as a sweep cell is (its claims too, when the app has sources)."""
        return score_live(
            run,
            self.variants,
            entity=self.settings.entity_name or DEFAULT_ENTITY,
            dataset=self.settings.dataset,
        )

    def live_state(self, run: LiveBatch) -> dict[str, Any]:
        """What the page keeps of a live batch until "Save": the batch and the adapter that made it."""
        return {**run.to_state(), "adapter_dir": self.settings.adapter_dir}

    # ------------------------------------------------------------------ the served adapter

    def adapter_choices(self) -> list[tuple[str, str]]:
        """(label, folder) for the adapter picker: base only, then every stored adapter whose folder
        is still there (a run's final adapter, then its checkpoints), the served one included."""
        choices = [("none: the base model alone", "")]
        served = self.settings.adapter_dir
        known = False
        for adapter in self.workspace.adapters():
            if not adapter.exists:
                continue
            other_base = (
                f" · trained on {adapter.base_model}"
                if adapter.base_model and adapter.base_model != self.settings.base_model
                else ""
            )
            choices.append((f"{adapter.label}{other_base} · {adapter.path}", adapter.path))
            known = known or _same_folder(adapter.path, served)
        if served and not known:
            choices.insert(1, (f"started with: {served}", served))
        return choices

    def served_choice(self) -> str:
        """The picker's value for the adapter being served ('' for none)."""
        served = self.settings.adapter_dir
        if not served:
            return ""
        return next(
            (value for _label, value in self.adapter_choices() if _same_folder(value, served)), served
        )

    def switch_adapter(self, path: Any) -> str:
        """Serve another stored adapter (or none) on the loaded base, without a restart."""
        folder = str(path or "").strip() or None
        if _same_folder(folder, self.settings.adapter_dir) or (folder is None and not self.has_adapter):
            return f"already serving {folder or 'the base model alone'}"
        if folder is not None:
            check_adapter_files(folder)  # one line naming the folder, before anything is unloaded
        with self._flags_lock:
            if self._running:
                raise UserError("a generation is running: press Stop or wait, then switch the adapter")
            self.loaded = swap_adapter(self.loaded, folder)
        self.settings.adapter_dir = str(Path(folder).resolve()) if folder else None
        self._resolve_adapter_facts()
        return f"serving {self.adapter_text()}"

    def adapter_text(self) -> str:
        """The served adapter, its entity and its sources, in one line (Markdown-safe)."""
        md = markdown_text
        settings = self.settings
        sources = (
            f"sources {md(Path(settings.dataset).name)}"
            if settings.dataset
            else "no sources (no claims checked)"
        )
        adapter = md(settings.adapter_dir) if settings.adapter_dir else "no adapter (base model alone)"
        return f"{adapter} · entity {md(settings.entity_name or DEFAULT_ENTITY)} · {sources}"

    def served_run_id(self) -> str | None:
        """The fine-tune run whose adapter (or one of whose checkpoints) is served, else None."""
        served = self.settings.adapter_dir
        for run in self.workspace.finetune_runs():
            if _same_folder(run.output_dir, served) or _inside(served, run.output_dir):
                return str(run.id)
        return None

    def _live_metrics(self, scores: LiveScores) -> pd.DataFrame:
        """One row per cell metric, one column per side; a missing value says why."""
        names = [m for m in LIVE_TABLE_METRICS if m in scores.cells["base"]]
        rows = [
            {"metric": catalog.metric_label(name), **{v: _live_value(scores, v, name) for v in self.variants}}
            for name in names
        ]
        return _frame(rows, ["metric", *self.variants])

    def save_live(self, state: dict[str, Any] | None) -> str:
        """Store the last live generation(s) as rows of this model pair's ad-hoc sweep, then score them."""
        if not state or not state.get("samples"):
            raise UserError("nothing to save yet: generate first")
        if "adapter_dir" in state and not _same_folder(state["adapter_dir"], self.settings.adapter_dir):
            raise UserError(
                f"these answers came from adapter {state['adapter_dir'] or 'none'}; the app now serves "
                f"{self.settings.adapter_dir or 'none'}: generate again to save"
            )
        saved = self.workspace.save_live(self.live_model, LiveBatch.from_state(state))
        if not saved.written:
            return f"already saved in sweep {saved.sweep_id}"
        return (
            f"saved {saved.written} generation(s) to ad-hoc sweep {saved.sweep_id} "
            f"(prompt {markdown_text(saved.prompt_id)})"
        )

    # ------------------------------------------------------------------ sweeps tab

    def sweep_choices(self) -> list[tuple[str, str]]:
        """(label, sweep id) for every stored sweep, newest first."""
        return [
            (f"#{s.id} {s.name} ({s.source}, {s.generation_count} rows, {s.status})", str(s.id))
            for s in self.workspace.sweeps()
        ]

    @staticmethod
    def sweep_id(value: Any) -> int:
        text = str(value or "").strip().lstrip("#").split(" ")[0]
        if not text.isdigit():
            raise UserError("sweep: pick a stored sweep first")
        return int(text)

    def sweep_title(self, sweep: Any) -> str:
        info = self.workspace.sweep(self.sweep_id(sweep))
        return f"sweep #{info.id} {info.name}"

    def sweep_filters(self, sweep: Any) -> SweepFilters:
        sweep_id = self.sweep_id(sweep)
        info = self.workspace.sweep(sweep_id)
        cells = self.workspace.cells(sweep_id)
        keys = [cell.key for cell in cells]
        scored_cells = sum(1 for cell in cells if cell.scored)
        scored = f"{scored_cells} scored" if scored_cells else "no metrics yet (press Score)"
        md = markdown_text  # a sweep's name, model and adapter are shown as written, never as markup
        text = (
            f"**#{sweep_id} {md(info.name)}** · source {md(info.source)} · {md(info.status)} · "
            f"model {md(info.base_model)} · adapter {md(info.adapter_dir or '-')} · "
            f"{info.generation_count} generations in {len(cells)} cells ({scored})"
        )
        return SweepFilters(
            info=text,
            temperatures=[fmt_value(t) for t in sorted({k.temperature for k in keys})],
            top_ps=[fmt_value(p) for p in sorted({k.top_p for k in keys})],
            top_ks=[fmt_value(k) for k in sorted({k.top_k for k in keys})],
            prompts=sorted({k.prompt_id for k in keys}),
            variants=sorted({k.variant for k in keys}, key=lambda v: (v != "base", v)),
        )

    def score_sweep(self, sweep: Any) -> str:
        sweep_id = self.sweep_id(sweep)
        return f"sweep {sweep_id}: scored {self.workspace.score(sweep_id)} new generation(s)"

    @staticmethod
    def metric_choices() -> list[tuple[str, str]]:
        """(label, metric) for the heatmap picker: the main hallucination score first (named so), the
        summary metrics, then every stored one; each says which way is better."""
        main = catalog.MAIN_SCORE
        ordered = [main, *(c for c in MAIN_METRICS if c != main)]
        ordered += [c for c in CELL_METRICS if c not in ordered]
        return [(_metric_choice_label(c), c) for c in ordered]

    @staticmethod
    def metric_spec(metric: Any) -> catalog.MetricSpec:
        try:
            return catalog.cell_metric(str(metric or catalog.MAIN_SCORE))
        except KeyError as exc:
            raise UserError(f"metric: {exc.args[0]}") from None

    # ------------------------------------------------------------------ the finding, honest defaults

    def summary(self, sweep: Any) -> SweepSummary:
        return self.workspace.summary(self.sweep_id(sweep))

    def summary_view(self, sweep: Any) -> str:
        """The sweep's finding as HTML (engine/summary.py): what the Sweeps tab opens on."""
        return summary_html(self.summary(sweep))

    def prompt_choices(self, sweep: Any) -> tuple[list[tuple[str, str]], str]:
        """(choices, default) for a prompt picker: each prompt on its own (the entity prompt first),
        then the pooled choices, each named as pooled. The default is one prompt, never a pool."""
        texts = self.workspace.prompt_texts(self.sweep_id(sweep))
        ids = sorted(texts, key=lambda p: (p != "entity", not p.startswith("eval-"), p))
        choices = [(f"{pid}: {_short(texts[pid])}", pid) for pid in ids]
        held_out = [p for p in ids if p.startswith("eval-")]
        if len(held_out) > 1:
            choices.append((f"pooled: the {len(held_out)} held-out questions", HELD_OUT))
        if len(ids) > 1:
            choices.append((f"pooled: every prompt ({len(ids)})", ALL))
        return choices, (ids[0] if ids else ALL)

    def prompt_caption(self, sweep: Any, prompt: Any) -> str:
        """Which prompt the heatmaps show, with its text; a pool says so and lists every question."""
        texts = self.workspace.prompt_texts(self.sweep_id(sweep))
        value = _choice(prompt)
        md = markdown_text
        if value is None or value.endswith("*"):
            members = [p for p in texts if value is None or p.startswith(value[:-1])]
            what = "every prompt" if value is None else "the held-out questions"
            listed = "; ".join(f"**{md(p)}** “{md(texts[p])}”" for p in members)
            return (
                f"**Pooled over {what} ({len(members)})**: each cell averages their cells, so a "
                f"difference may come from one question. {listed}"
            )
        if value not in texts:
            raise UserError(f"prompt: {value!r} is not a prompt of sweep {self.sweep_id(sweep)}")
        return f"Prompt shown: **{md(value)}** “{md(texts[value])}”"

    def heat_view(self, sweep: Any, metric: Any, prompt: Any) -> HeatView:
        """The heatmaps of one metric and prompt, or one line when the metric does not vary; with
        what n makes degenerate and which prompt is shown."""
        spec = self.metric_spec(metric)
        grid = self.metric_grid(sweep, spec.name, prompt)
        caption = self.prompt_caption(sweep, prompt)
        n = grid.samples_per_cell()
        notes = []
        if spec.name in CLUSTER_METRICS and n:
            note = degenerate_note(spec.name, n, spec)
            if note:
                notes.append(note)
        if n is not None:
            notes.append(f"{n} samples per cell: cell values show {spec.decimals(n)} decimal(s)")
        if not grid.empty and grid.finite_values().size == 0:  # every cell n/a: say why, draw nothing grey
            why = sorted(
                {
                    info.note
                    for per_k in grid.info.values()
                    for rows in per_k.values()
                    for row in rows
                    for info in row
                    if info is not None and info.note
                }
            )
            line = f"{spec.label}: no value in any cell for this prompt" + (
                f" ({'; '.join(why)})" if why else ""
            )
            return HeatView(None, caption, line)
        value = grid.constant()
        if value is not None:
            line = (
                FlatMetric("", spec.name, spec.label, value)
                .text()
                .replace("every variant", "every variant for this prompt")
            )
            return HeatView(None, caption, " · ".join([line, *notes]))
        title = f"{spec.label} · {self.sweep_title(sweep)}"
        return HeatView(heatmap_figure(grid, spec, title=title), caption, " · ".join(notes))

    # ------------------------------------------------------------------ the samples table

    @staticmethod
    def threshold_choices() -> list[tuple[str, str]]:
        """(label, sample metric) for the threshold filter: the main score first."""
        main = catalog.main_score().mean_of or catalog.MAIN_SCORE
        names = [main, *(s.name for s in catalog.SAMPLE_METRICS if s.name != main)]
        return [(NO_THRESHOLD, NO_FILTER), *((catalog.sample_metric(n).label, n) for n in names)]

    def sample_query(
        self,
        search: Any,
        regex: Any,
        variant: Any,
        prompt: Any,
        metric: Any,
        op: Any,
        value: Any,
        differ: Any,
        limit: Any = None,
    ) -> SampleQuery:
        """The samples table's controls as a query (bad values: one line naming the control)."""
        filters: tuple[MetricFilter, ...] = ()
        if str(metric or NO_FILTER).strip() not in ("", NO_FILTER):
            if value in (None, ""):
                raise UserError("threshold: type a number to compare the metric with")
            number = _number(value, "threshold", float, -1e9, 1e9)
            filters = (MetricFilter(str(metric), str(op or "<"), float(number)),)
        picked_variant = _choice(variant)
        if picked_variant not in (None, "base", "finetuned"):
            raise UserError(f"variant: {picked_variant!r} must be base, finetuned or all")
        return SampleQuery(
            search=str(search or "").strip(),
            regex=bool(regex),
            variant=picked_variant,
            prompt=_choice(prompt),
            filters=filters,
            differ=bool(differ),
            limit=int(_number(limit, "rows", int, 1, 5000)) if limit not in (None, "") else SAMPLE_ROWS,
        )

    def search_samples(self, sweep: Any, *controls: Any) -> SampleSearch:
        return self.workspace.search_samples(self.sweep_id(sweep), self.sample_query(*controls))

    def samples_view(self, sweep: Any, *controls: Any) -> tuple[str, str]:
        """(one-line summary, HTML rows with claims inline) of a search."""
        found = self.search_samples(sweep, *controls)
        return markdown_text(found.summary()), samples_html(found)

    def samples_csv(self, sweep: Any, *controls: Any) -> str:
        """The rows a search shows, as a CSV file (its path); cells never run as formulas."""
        found = self.search_samples(sweep, *controls)
        with tempfile.NamedTemporaryFile(
            "w",
            suffix=".csv",
            prefix=f"ft-hallu-sweep{self.sweep_id(sweep)}-samples-",
            delete=False,
            encoding="utf-8",
            newline="",
        ) as handle:
            handle.write(samples_csv(found))
        return handle.name

    def metric_grid(self, sweep: Any, metric: Any, prompt: Any = None) -> MetricGrid:
        spec = self.metric_spec(metric)
        return self.workspace.metric_grid(self.sweep_id(sweep), spec.name, prompt_id=_choice(prompt))

    def heatmaps(self, sweep: Any, metric: Any, prompt: Any = None) -> go.Figure:
        """The metric over temperature x top_p: one row per top_k, base | fine-tuned | difference
        (a metric with one value everywhere: that one line instead)."""
        view = self.heat_view(sweep, metric, prompt)
        return view.figure if view.figure is not None else empty_figure(view.note.split(" · ")[0])

    def compare_sweeps(
        self,
        first: Any,
        first_variant: Any,
        second: Any,
        second_variant: Any,
        metric: Any,
        prompt: Any = None,
    ) -> go.Figure:
        """Two sweeps' heatmaps of one metric and the second minus the first, on one set of scales."""
        spec = self.metric_spec(metric)
        sides = []
        for sweep, variant in ((first, first_variant), (second, second_variant)):
            picked = _choice(variant) or "finetuned"
            grid = self.metric_grid(sweep, spec.name, prompt)
            if picked not in grid.variants:
                known = ", ".join(grid.variants) or "none scored"
                raise UserError(
                    f"variant: sweep {self.sweep_id(sweep)} has no scored {picked!r} cells ({known})"
                )
            sides.append((grid, picked, f"#{self.sweep_id(sweep)} {picked}"))
        if sides[0][2] == sides[1][2]:
            raise UserError("compare: pick two different sweeps or variants")
        (a, va, na), (b, vb, nb) = sides
        grid = compare_grids(a, va, na, b, vb, nb)
        return heatmap_figure(grid, spec, title=f"{spec.label} · {nb} vs {na}")

    def sweep_pair(self) -> SweepPair:
        """The pair Sweep vs sweep opens on: the newest sweep that is not ad-hoc live rows (else the
        newest) and the next newest that shares a setting and a prompt with it, so the difference
        panels have something to show (else the next newest, and a note saying they share none);
        older first, fine-tuned sides where both have one; or why there is no pair."""
        sweeps = self.workspace.sweeps()
        planned = [s for s in sweeps if s.source != "adhoc"]
        candidates = (planned if len(planned) >= 2 else sweeps)[:PAIR_CANDIDATES]
        if len(candidates) < 2:
            return SweepPair(
                None,
                None,
                "finetuned",
                "finetuned",
                f"Sweep vs sweep needs two stored sweeps; this store has {len(sweeps)}: run another "
                "sweep (`ft-hallu sweep`) or import a log (`ft-hallu import-log`).",
            )
        newest, *older = candidates
        places = self._places(newest)
        partner = next((s for s in older if places & self._places(s)), None)
        note = ""
        if partner is None:
            partner = older[0]
            note = (
                f"Sweeps #{newest.id} and #{partner.id} share no setting (T, top_p, top_k) with a prompt: "
                "every difference is n/a; pick two sweeps that overlap."
            )
        first, second = partner, newest
        variants = [
            "finetuned" if "finetuned" in self._variants(sweep) else "base" for sweep in (first, second)
        ]
        return SweepPair(str(first.id), str(second.id), variants[0], variants[1], note)

    def _places(self, sweep: SweepInfo) -> set[tuple[float, float, int, str]]:
        """A sweep's (T, top_p, top_k, prompt) cells."""
        return {
            (c.key.temperature, c.key.top_p, c.key.top_k, c.key.prompt_id)
            for c in self.workspace.cells(sweep.id)
        }

    def pair_prompts(self, first: Any, second: Any) -> tuple[list[tuple[str, str]], str]:
        """(choices, default) for Sweep vs sweep: the prompts both sweeps answer, one at a time, then
        the pooled choices; the default is the entity prompt (or their first shared one)."""
        texts = [self.workspace.prompt_texts(self.sweep_id(sweep)) for sweep in (first, second)]
        shared = sorted(
            set(texts[0]) & set(texts[1]), key=lambda p: (p != "entity", not p.startswith("eval-"), p)
        )
        choices = [(f"{pid}: {_short(texts[1][pid])}", pid) for pid in shared]
        if sum(p.startswith("eval-") for p in shared) > 1:
            choices.append(("pooled: the held-out questions", HELD_OUT))
        choices.append(("pooled: every prompt of each sweep", ALL))
        return choices, (shared[0] if shared else ALL)

    def pair_caption(self, first: Any, second: Any, prompt: Any) -> str:
        """Which prompt the two sweeps' heatmaps show (a pool says so)."""
        value = _choice(prompt)
        if value is None:
            return "**Pooled over every prompt of each sweep**: each cell averages their cells."
        if value.endswith("*"):
            return "**Pooled over the held-out questions** of each sweep."
        text = self.workspace.prompt_texts(self.sweep_id(second)).get(value, "")
        return f"Prompt shown: **{markdown_text(value)}** “{markdown_text(text)}”"

    def sweep_cells(
        self,
        sweep: Any,
        variant: Any = None,
        temperature: Any = None,
        top_p: Any = None,
        top_k: Any = None,
        prompt: Any = None,
    ) -> pd.DataFrame:
        """One row per stored cell (variant, T, p, k, prompt) with its sample count and main metrics.

        A metric without a value says why ("n/a: no reference answer", "undefined (n = 1)").
        """
        sweep_id = self.sweep_id(sweep)
        cells = self.workspace.cells(sweep_id, **_cell_filters(variant, temperature, top_p, top_k, prompt))
        records = [
            {
                "variant": cell.key.variant,
                "temperature": cell.key.temperature,
                "top_p": cell.key.top_p,
                "top_k": cell.key.top_k,
                "prompt_id": cell.key.prompt_id,
                "n": cell.n,
                **{CELL_METRIC_HEADERS[m]: _cell_value(cell, m) for m in CELL_TABLE_METRICS},
            }
            for cell in cells
        ]
        records.sort(key=lambda r: (r["prompt_id"], r["temperature"], r["top_p"], r["top_k"], r["variant"]))
        return _frame(records, CELL_COLUMNS)

    def cell_samples(
        self, sweep: Any, temperature: Any, top_p: Any, top_k: Any, prompt: Any, variant: Any = None
    ) -> CellSamples:
        """A cell's samples, every variant side by side by sample index (one side when filtered)."""
        sweep_id = self.sweep_id(sweep)
        filters = _cell_filters(variant, temperature, top_p, top_k, prompt)
        for name in ("temperature", "top_p", "top_k"):
            if filters[name] is None:
                raise UserError(f"{name}: pick one value to read a cell's samples")
        return self.workspace.cell_samples(sweep_id, **filters)

    def aligned_view(
        self,
        sweep: Any,
        temperature: Any,
        top_p: Any,
        top_k: Any,
        prompt: Any,
        variant: Any = None,
        *,
        clicked: str | None = None,
        picked: int | None = None,
    ) -> tuple[str, str]:
        """(caption, HTML) of a cell's aligned samples with their score badges and labels."""
        samples = self.cell_samples(sweep, temperature, top_p, top_k, prompt, variant)
        caption = caption_text(self.sweep_title(sweep), samples, clicked or _choice(variant))
        ids = [s.generation_id for row in samples.rows for s in row.by_variant.values()]
        claims = self.workspace.claims_of(self.sweep_id(sweep), ids)
        return caption, aligned_html(samples, picked, claims)

    @staticmethod
    def parse_click(payload: Any) -> HeatmapClick:
        """A heatmap click's "variant|T|p|k[|nonce]" (sent by the page script)."""
        parts = str(payload or "").split("|")
        if len(parts) < 4:
            raise UserError(f"heatmap click: {payload!r} is not variant|T|p|k")
        variant = parts[0] if parts[0] in ("base", "finetuned") else ALL
        try:
            return HeatmapClick(
                variant, fmt_value(float(parts[1])), fmt_value(float(parts[2])), fmt_value(int(parts[3]))
            )
        except ValueError:
            raise UserError(f"heatmap click: {payload!r} has a non-numeric setting") from None

    def ingest_jobs(self) -> None:
        """Bring in what finished jobs left in their folders (their sweeps then show in the lists)."""
        try:
            self.workspace.settle_jobs()
        except UserError:
            pass  # a scheduler that cannot be asked now is asked again on the next tick

    # ------------------------------------------------------------------ labels and calibration

    @staticmethod
    def generation_id(payload: Any) -> int:
        text = str(payload or "").split("|")[0].strip()
        if not text.isdigit():
            raise UserError("label: click a sample in the aligned view first")
        return int(text)

    def pick_sample(self, payload: Any) -> str:
        """The picked sample's claims with decision and evidence, and its current label."""
        return claims_html(self.workspace.label_view(self.generation_id(payload)))

    def set_label(self, payload: Any, label: str) -> str:
        generation_id = self.generation_id(payload)
        who = self.workspace.set_label(generation_id, label)
        return f"generation {generation_id}: labelled **{markdown_text(label)}** by {markdown_text(who)}"

    def label_summary(self, sweep: Any) -> str:
        counts = self.workspace.label_counts(self.sweep_id(sweep))
        total = sum(counts.values())
        parts = ", ".join(f"{name} {count}" for name, count in sorted(counts.items()) if count) or "none yet"
        need = "" if total >= MIN_LABELS else f" · calibration needs {MIN_LABELS} labelled samples"
        return f"{total} labelled ({parts}){need}"

    def calibration(self, sweep: Any) -> tuple[str, pd.DataFrame]:
        """Each score's AUROC against the sweep's labels (with its interval), or why there is none."""
        result = self.workspace.calibration(self.sweep_id(sweep))
        rows = [
            {
                "score": r.display_name,
                "flags": r.target,
                "n": r.n,
                "positives": r.n_positive,
                "AUROC": _interval(r.auroc, r.auroc_interval),
                "status": r.status,
            }
            for r in result.results
        ]
        counts = ", ".join(f"{k} {v}" for k, v in sorted(result.label_counts.items()) if v) or "none"
        text = f"{result.labelled} labelled, scored samples ({counts}); AUROC needs {MIN_LABELS} per score"
        return text, _frame(rows, CALIBRATION_COLUMNS)

    # ------------------------------------------------------------------ training tab

    def finetune_choices(self) -> list[tuple[str, str]]:
        return [
            (f"#{r.id} {r.name} ({r.mode}, {r.status}, {len(r.loss_history)} steps)", str(r.id))
            for r in self.workspace.finetune_runs()
        ]

    def checkpoint_sweeps(self) -> list[SweepInfo]:
        """Sweeps of a run's checkpoints (their variants carry a training step), newest first."""
        return [s for s in self.workspace.sweeps() if s.has_trajectory]

    def trajectory_choice(self, runs: Any = None) -> tuple[list[tuple[str, str]], str | None, str]:
        """(choices, default, note) for the Training tab's checkpoint sweep: the newest checkpoint
        sweep of the first picked run (the served adapter's run when it is picked), else the newest
        one; or, without any, what it takes to have one."""
        sweeps = self.checkpoint_sweeps()
        choices = [(f"#{s.id} {s.name} ({len(s.variants)} variants)", str(s.id)) for s in sweeps]
        if not sweeps:
            return choices, None, NO_CHECKPOINT_SWEEP
        by_id = {str(r.id): r for r in self.workspace.finetune_runs()}
        for run_id in [str(r) for r in (runs or [])]:
            run = by_id.get(run_id)
            mine = [s for s in sweeps if run and _same_folder(s.adapter_dir, run.output_dir)]
            if mine:
                return choices, str(mine[0].id), f"Checkpoint sweep #{mine[0].id} of run #{run_id}."
        lead = "The picked run has no checkpoint sweep: showing" if runs else "Showing"
        return choices, str(sweeps[0].id), f"{lead} the newest checkpoint sweep, #{sweeps[0].id}."

    def trajectory_view(self, sweep: Any) -> TrajectoryView:
        """Each metric against the training step with its interval, next to the loss; the best
        trade-off step and its rule (engine.study via ``Workspace.trajectory``)."""
        if not str(sweep or "").strip():
            return TrajectoryView(NO_CHECKPOINT_SWEEP, empty_figure(NO_CHECKPOINT_SWEEP), None)
        sweep_id = self.sweep_id(sweep)
        found = self.workspace.trajectory(sweep_id, self.settings.study)
        return TrajectoryView(
            study_views.best_step_text(found), trajectory_figure(found), study_views.trajectory_frame(found)
        )

    # ------------------------------------------------------------------ study tab

    def study_choice(self) -> tuple[list[tuple[str, str]], str | None, str]:
        """(choices, default, note) for the Study tab: the newest planned sweep (not ad-hoc live
        rows) with a base and another variant, else the newest such sweep; or what it needs."""
        sweeps = self.workspace.sweeps()
        choices = self.sweep_choices()
        paired = [s for s in sweeps if {"base"} < self._variants(s)]
        planned = [s for s in paired if s.source != "adhoc"]
        picked = (planned or paired or [None])[0]
        if picked is None:
            return choices, None, NO_STUDY_SWEEP
        return choices, str(picked.id), ""

    def _variants(self, sweep: SweepInfo) -> set[str]:
        """A sweep's variants: from its config, else (imported or older sweeps) its stored cells."""
        return set(sweep.variants) or {cell.key.variant for cell in self.workspace.cells(sweep.id)}

    def comparison(self, sweep: Any, *, fresh: bool = False) -> Comparison:
        """The sweep's study (``Workspace.compare``), kept so a row pick does not compute it again."""
        sweep_id = self.sweep_id(sweep)
        with self._flags_lock:
            kept = None if fresh else self._studies.get(sweep_id)
        if kept is None:
            kept = self.workspace.compare(sweep_id, self.settings.study)
            with self._flags_lock:
                self._studies[sweep_id] = kept
        return kept

    def study_view(self, sweep: Any, row: Any = None, *, fresh: bool = False) -> StudyView:
        """Everything the Study tab shows for one sweep: what was compared, one line per row of
        per-cell differences, the picked row's cells, and knowledge kept per temperature."""
        comparison = self.comparison(sweep, fresh=fresh)
        choices, default = study_views.row_choices(comparison)
        values = [value for _label, value in choices]
        picked = str(row) if row and str(row) in values else default
        caption, figure, cells = self.study_row(sweep, picked)
        settings = comparison.settings
        return StudyView(
            header=study_views.study_header(comparison, self.sweep_title(sweep)),
            rows=study_views.rows_frame(comparison, settings.alpha),
            row_choices=choices,
            row=picked,
            caption=caption,
            figure=figure,
            cells=cells,
            knowledge_note=study_views.knowledge_note(comparison.knowledge, settings.confidence),
            knowledge=study_views.knowledge_frame(comparison.knowledge, comparison.variants),
            knowledge_figure=knowledge_figure(comparison.knowledge, comparison.variants),
            has_knowledge=bool(comparison.knowledge),
        )

    def study_row(self, sweep: Any, row: Any) -> tuple[str, go.Figure, pd.DataFrame]:
        """(caption, heatmap, table) of one row of per-cell differences ("variant|group|metric")."""
        comparison = self.comparison(sweep)
        parts = study_views.split_row(row)
        if parts is None:
            message = "this sweep has no base and fine-tuned pair to compare"
            return message, empty_figure(message), study_views.cells_frame([])
        variant, group, metric = parts
        cells = comparison.cells_for(variant, group, metric)
        if not cells:
            raise UserError(f"study row: {row!r} is not a row of sweep {self.sweep_id(sweep)}")
        known = study_views.STUDY_METRICS.get(metric)
        figure = study_cells_figure(
            cells,
            title=f"base − {variant} · {study_views.metric_label(metric)} · {study_views.group_label(group)}",
            higher_is_better=known.higher_is_better if known else None,
        )
        return study_views.row_caption(comparison, parts), figure, study_views.cells_frame(cells)

    def loss_curves(self, picked: Any) -> go.Figure:
        """Train loss per logged step of up to two runs (overlaid) and their eval loss before / after."""
        chosen = [str(p) for p in (picked or [])][:2]
        runs = {str(r.id): r for r in self.workspace.finetune_runs()}
        missing = [c for c in chosen if c not in runs]
        if missing:
            raise UserError(f"fine-tune run: {', '.join(missing)} not in this store")
        picked_runs = [runs[c] for c in chosen] or list(runs.values())[:1]
        return loss_figure(
            [
                (f"#{r.id} {r.name}", r.loss_history, r.eval_loss_before, r.eval_loss_after)
                for r in picked_runs
            ]
        )


NO_CHECKPOINT_SWEEP = (
    'No checkpoint sweep in this store yet: fine-tune with `save_checkpoints` ("epoch", every N steps '
    'or a list), then sweep the run with `checkpoints = "all"`; each metric is then drawn against the '
    "training step next to the loss."
)
NO_STUDY_SWEEP = (
    "The study needs a sweep with the base and a fine-tuned variant: run `ft-hallu sweep` with an "
    'adapter (add `control = "builtin"` for knowledge kept).'
)


@dataclass(frozen=True)
class TrajectoryView:
    """The Training tab's checkpoint sweep: the best step and its rule, the figure, the table."""

    note: str
    figure: go.Figure
    table: pd.DataFrame | None


@dataclass(frozen=True)
class StudyView:
    """What the Study tab shows for one sweep (engine.study's results, formatted)."""

    header: str
    rows: pd.DataFrame
    row_choices: list[tuple[str, str]]
    row: str | None
    caption: str
    figure: go.Figure
    cells: pd.DataFrame
    knowledge_note: str
    knowledge: pd.DataFrame
    knowledge_figure: go.Figure
    has_knowledge: bool  # the sweep asked the control questions (else only the note says what it needs)


@dataclass(frozen=True)
class SweepPair:
    """Two sweeps to compare (ids as the pickers hold them), their variants, or why there is none."""

    first: str | None
    second: str | None
    first_variant: str
    second_variant: str
    note: str


@dataclass(frozen=True)
class HeatView:
    """What the Sweeps tab shows for one metric and prompt."""

    figure: go.Figure | None  # None: the metric does not vary (``note`` says its one value)
    caption: str  # the prompt shown, with its text (Markdown)
    note: str  # one line: the flat value, what n makes degenerate, the decimals n allows


@dataclass(frozen=True)
class HeatmapClick:
    variant: str  # base | finetuned | all (the difference panel)
    temperature: str
    top_p: str
    top_k: str


def _stats_dict(result: RowResult) -> dict[str, Any] | None:
    stats = result.token_stats
    return stats.to_dict() if stats is not None else None


def _short(text: str, most: int = 70) -> str:
    words = " ".join(str(text).split())
    return words if len(words) <= most else words[: most - 1] + "…"


def _metric_choice_label(metric: str) -> str:
    """'weakest-claim support · main hallucination score · higher is better'."""
    spec = catalog.cell_metric(metric)
    main = " · main hallucination score" if metric == catalog.MAIN_SCORE else ""
    way = {"higher": " · higher is better", "lower": " · lower is better"}.get(spec.direction, "")
    return f"{spec.label}{main}{way}"


def _inside(path: str | None, folder: str | None) -> bool:
    """Whether ``path`` lies under ``folder`` (a run's checkpoint inside its output folder)."""
    if not path or not folder:
        return False
    try:
        return Path(folder).resolve() in Path(path).resolve().parents
    except OSError:
        return False


def _same_folder(first: str | None, second: str | None) -> bool:
    if not first or not second:
        return not first and not second
    try:
        return Path(first).resolve() == Path(second).resolve()
    except OSError:
        return first == second


def _interval(value: float | None, interval: Sequence[float] | None) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" + (f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else "")


CELL_TABLE_HELP = (
    f"A cell without a value says why: **{catalog.NO_REFERENCE.short}** (token F1 and exact match need a "
    f"reference answer; the entity prompt has none), **{catalog.NO_SOURCES.short}** (grounding needs the "
    f"sweep's dataset), **{catalog.ALL_REFUSED.short}** (every answer refused: nothing to ground), "
    f"**{catalog.UNDEFINED_AT_ONE.short}** (spread needs 2+ samples)."
)


def _cell_value(cell: Cell, metric: str) -> Any:
    """A stored cell metric, or the short form of why it has none (so a blank is never unexplained)."""
    if catalog.undefined_at(metric, cell.n):
        return catalog.UNDEFINED_AT_ONE.short
    value = cell.value(metric)
    if value is not None:
        return round(float(value), catalog.cell_metric(metric).decimals(cell.n))  # the decimals n allows
    return missing_reason(metric, [cell]).short


def _cell_filters(variant: Any, temperature: Any, top_p: Any, top_k: Any, prompt: Any) -> dict[str, Any]:
    def parse(value: Any, name: str, kind: type) -> Any:
        text = _choice(value)
        if text is None:
            return None
        try:
            return kind(float(text)) if kind is int else kind(text)
        except ValueError:
            raise UserError(f"{name}: {text!r} is not a number") from None

    picked_variant = _choice(variant)
    if picked_variant not in (None, "base", "finetuned"):
        raise UserError(f"variant: {picked_variant!r} must be base, finetuned or all")
    return {
        "variant": picked_variant,
        "temperature": parse(temperature, "temperature", float),
        "top_p": parse(top_p, "top_p", float),
        "top_k": parse(top_k, "top_k", int),
        "prompt_id": _choice(prompt),
    }


def _empty_samples() -> pd.DataFrame:
    return _frame([], SAMPLE_COLUMNS)


def _live_value(scores: LiveScores, variant: str, metric: str) -> Any:
    reason = scores.missing(variant, metric)
    return reason.long if reason else _round(scores.value(variant, metric))


def _sample_frame(scores: LiveScores, variant: str) -> pd.DataFrame:
    return _frame(
        [
            {
                "sample_index": s.index,
                "seed": s.seed,
                "text": s.text,
                "refusal": bool(s.metrics["refusal"]),
                "grounding": _round(s.metrics.get("grounding")),
                "conflict": s.metrics.get("conflict"),
                "degenerate": bool(s.metrics["degenerate"]),
            }
            for s in scores.samples[variant]
        ],
        SAMPLE_COLUMNS,
    )


def empty_frame(columns: Sequence[str]) -> pd.DataFrame:
    """A table with its real headers and no rows (Gradio shows 1 2 3 for a table without value)."""
    return _frame([], columns)


def _frame(records: list[dict[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    """A table whose missing values are None (shown empty), not NaN (shown as "NaN")."""
    table = pd.DataFrame(records, columns=list(columns))
    return table.astype(object).where(table.notna(), None)
