"""The Gradio app's callbacks as plain methods: each calls the model or the Workspace and returns plain data.

:class:`AppHandlers` holds the one loaded model (base weights with the LoRA adapter ``default`` on
top; base rows run with the adapter off in the same batch), the :class:`engine.workspace.Workspace`
every stored read and write goes through, and the app settings. Nothing here builds UI; the tab
modules (``compare_tab``, ``sweeps_tab``) wire these methods to components. Bad input raises
:class:`engine.errors.UserError`, which the tabs show as a one-line error.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from engine import dataset as ds
from engine.calibrate import MIN_LABELS
from engine.errors import UserError
from engine.escape import markdown_text
from engine.grid import MetricGrid, compare_grids
from engine.live import LiveScores, score_live
from engine.metrics import SUMMARY_METRICS, catalog
from engine.metrics.catalog import Show, cell_metrics_shown
from engine.modelfiles import check_fits_context
from engine.models import LoadedModel
from engine.sampling import RowSpec, generate_rows, stream_rows
from engine.sweep import DEFAULT_PROMPT_TEMPLATE, chat_prompt
from engine.workspace import (
    CELL_METRICS,
    Cell,
    CellSamples,
    LiveBatch,
    LiveModel,
    LiveSample,
    LiveSettings,
    Workspace,
    missing_reason,
)
from gradio_app.plots import heatmap_figure, loss_figure
from gradio_app.views import aligned_html, caption_text, claims_html

ALL = "all"
NO_ADAPTER_TEXT = "(no adapter loaded: start the app with --adapter DIR to compare a fine-tuned model)"
# Metrics shown first in the heatmap picker and the live N-samples table.
MAIN_METRICS = SUMMARY_METRICS
CELL_TABLE_METRICS = SUMMARY_METRICS  # the stored cells table
LIVE_TABLE_METRICS = cell_metrics_shown(Show.TABLE)  # the live N-samples cell metrics
SAMPLE_COLUMNS = ("sample_index", "seed", "text", "refusal", "grounding", "conflict", "degenerate")
# Metric headers with spaces, so a narrow column wraps between words, not inside one.
CELL_METRIC_HEADERS = {m: m.replace("_", " ") for m in CELL_TABLE_METRICS}
CELL_COLUMNS = ("variant", "temperature", "top_p", "top_k", "prompt_id", "n", *CELL_METRIC_HEADERS.values())
LIVE_METRIC_COLUMNS = ("metric", "base", "finetuned")
CALIBRATION_COLUMNS = ("score", "flags", "n", "positives", "AUROC", "status")


@dataclass
class AppSettings:
    """What the app was started with (paths and defaults; never secrets). The store is the Workspace's."""

    base_model: str
    adapter_dir: str | None = None
    entity_name: str = "EGNIVIA"
    system_prompt: str = ds.DEFAULT_SYSTEM_PROMPT
    dataset: str | None = None  # QA file whose contexts ground the live N-samples metrics
    max_new_tokens_limit: int = 512
    max_samples: int = 32

    @property
    def default_prompt(self) -> str:
        return DEFAULT_PROMPT_TEMPLATE.replace("{name}", self.entity_name)


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
        steps = 0
        try:
            for texts in stream_rows(
                self.loaded, rows, max_new_tokens=live.max_new_tokens, should_stop=flag.is_set
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
        samples = [LiveSample(row.variant, row.seed, text) for row, text in zip(rows, texts, strict=True)]
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
        results = generate_rows(self.loaded, rows, max_new_tokens=live.max_new_tokens)
        generated = [LiveSample(row.variant, row.seed, r.text) for row, r in zip(rows, results, strict=True)]
        run = LiveBatch.of(prompt.strip(), (system_prompt or "").strip(), live, generated)
        scores = score_live(
            run, self.variants, entity=self.settings.entity_name, dataset=self.settings.dataset
        )
        tables = {variant: _sample_frame(scores, variant) for variant in self.variants}
        return (
            tables.get("base", _empty_samples()),
            tables.get("finetuned", _empty_samples()),
            self._live_metrics(scores),
            run,
        )

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
        """(label, metric) for the heatmap picker: the summary metrics first, then every stored one."""
        ordered = [*MAIN_METRICS, *(c for c in CELL_METRICS if c not in MAIN_METRICS)]
        return [(catalog.metric_label(c), c) for c in ordered]

    @staticmethod
    def metric_spec(metric: Any) -> catalog.MetricSpec:
        try:
            return catalog.cell_metric(str(metric or "refusal_rate"))
        except KeyError as exc:
            raise UserError(f"metric: {exc.args[0]}") from None

    def metric_grid(self, sweep: Any, metric: Any, prompt: Any = None) -> MetricGrid:
        spec = self.metric_spec(metric)
        return self.workspace.metric_grid(self.sweep_id(sweep), spec.name, prompt_id=_choice(prompt))

    def heatmaps(self, sweep: Any, metric: Any, prompt: Any = None) -> go.Figure:
        """The metric over temperature x top_p: one row per top_k, base | fine-tuned | difference."""
        spec = self.metric_spec(metric)
        grid = self.metric_grid(sweep, spec.name, prompt)
        return heatmap_figure(grid, spec, title=f"{spec.label} · {self.sweep_title(sweep)}")

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
        return caption, aligned_html(samples, picked)

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
                "score": r.label,
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


@dataclass(frozen=True)
class HeatmapClick:
    variant: str  # base | finetuned | all (the difference panel)
    temperature: str
    top_p: str
    top_k: str


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
        return _round(value)
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
