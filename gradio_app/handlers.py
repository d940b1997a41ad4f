"""The Gradio app's callbacks as plain methods: every one calls engine/ or store/ and returns plain data.

:class:`AppHandlers` holds the one loaded model (base weights with the LoRA adapter ``default`` on
top; base rows run with the adapter off in the same batch), the store path and the app settings.
Nothing here builds UI; ``gradio_app.layout`` wires these methods to components. Bad input raises
:class:`engine.errors.UserError`, which the layout shows as a one-line error.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from engine import dataset as ds
from engine.errors import UserError
from engine.metrics import SUMMARY_METRICS
from engine.models import LoadedModel
from engine.sampling import RowSpec, generate_rows, stream_rows
from engine.sweep import DEFAULT_PROMPT_TEMPLATE, chat_prompt
from store import core
from store import metrics as store_metrics
from store.db import open_db

ALL = "all"
NO_ADAPTER_TEXT = "(no adapter loaded: start the app with --adapter DIR to compare a fine-tuned model)"
ADHOC_SOURCE = "adhoc"
# Metrics shown first in the heatmap picker and the live N-samples table.
MAIN_METRICS = SUMMARY_METRICS
CELL_TABLE_METRICS = ("refusal_rate", "grounding", "conflict_rate", "semantic_entropy", "majority_share")
SAMPLE_COLUMNS = ("sample_index", "seed", "text", "refusal", "grounding", "conflict", "degenerate")


@dataclass
class AppSettings:
    """What the app was started with (paths and defaults; never secrets)."""

    db_path: str
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


@dataclass(frozen=True)
class LiveSettings:
    """One live request's sampling settings (same on both sides except, optionally, the seed)."""

    temperature: float
    top_p: float
    top_k: int
    max_new_tokens: int
    seed: int
    finetuned_seed: int


@dataclass
class LiveRun:
    """The texts of the last live generation in a session, kept so "Save" can store them."""

    prompt: str
    system_prompt: str
    settings: LiveSettings
    # (variant, seed, text) per generated sample
    samples: list[tuple[str, int, str]] = field(default_factory=list)
    stopped: bool = False

    def to_state(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "system_prompt": self.system_prompt,
            "settings": self.settings.__dict__,
            "samples": [list(s) for s in self.samples],
            "stopped": self.stopped,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LiveRun:
        return cls(
            prompt=state["prompt"],
            system_prompt=state["system_prompt"],
            settings=LiveSettings(**state["settings"]),
            samples=[(str(v), int(s), str(t)) for v, s, t in state["samples"]],
            stopped=bool(state.get("stopped")),
        )


@dataclass
class StreamUpdate:
    base_text: str
    finetuned_text: str
    status: str
    run: LiveRun | None = None  # set on the last update only


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
    """The app's state (one model, one store path) and its callbacks."""

    def __init__(self, loaded: LoadedModel, settings: AppSettings):
        self.loaded = loaded
        self.settings = settings
        self._stop_flags: dict[str, threading.Event] = {}
        self._flags_lock = threading.Lock()
        open_db(settings.db_path).close()  # create the file and apply migrations once

    # ------------------------------------------------------------------ helpers

    def _store(self):
        return open_db(self.settings.db_path, migrate=False)

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
        run = LiveRun(prompt.strip(), (system_prompt or "").strip(), live, stopped=stopped)
        run.samples = [(row.variant, row.seed, text) for row, text in zip(rows, texts, strict=True)]
        word = "stopped" if stopped else "done"
        update = self._update(texts, f"{word}: {steps} steps in {time.perf_counter() - started:.1f} s")
        update.run = run
        yield update

    def _update(self, texts: list[str], status: str) -> StreamUpdate:
        finetuned = texts[1] if self.has_adapter else NO_ADAPTER_TEXT
        return StreamUpdate(texts[0], finetuned, status)

    def sample_cell(
        self, prompt: str, system_prompt: str, live: LiveSettings, samples: int
    ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, LiveRun]:
        """N samples per side in one batch, scored with engine.metrics; returns both sides and the cell's metrics."""
        count = _number(samples, "samples", int, 1, self.settings.max_samples)
        rows = self.live_rows(prompt, system_prompt, live, count)
        results = generate_rows(self.loaded, rows, max_new_tokens=live.max_new_tokens)
        run = LiveRun(prompt.strip(), (system_prompt or "").strip(), live)
        run.samples = [
            (row.variant, row.seed, result.text) for row, result in zip(rows, results, strict=True)
        ]
        tables, metrics = self._score_live(run)
        return tables.get("base", _empty_samples()), tables.get("finetuned", _empty_samples()), metrics, run

    def _score_live(self, run: LiveRun) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
        from engine import metrics as engine_metrics

        entity = self.settings.entity_name
        sources = engine_metrics.load_sources(self.settings.dataset, entity)
        tables: dict[str, pd.DataFrame] = {}
        cells: dict[str, dict[str, Any]] = {}
        for variant in self.variants:
            picked = [(seed, text) for v, seed, text in run.samples if v == variant]
            scored = [
                engine_metrics.score_sample(text, sources=sources, entity=entity).to_dict()
                for _, text in picked
            ]
            cell = engine_metrics.score_cell([t for _, t in picked], scored, entity=entity)
            cells[variant] = {**cell.means, **cell.to_dict()}
            tables[variant] = _frame(
                [
                    {
                        "sample_index": index,
                        "seed": seed,
                        "text": text,
                        "refusal": bool(s["refusal"]),
                        "grounding": _round(s.get("grounding")),
                        "conflict": s.get("conflict"),
                        "degenerate": bool(s["degenerate"]),
                    }
                    for index, ((seed, text), s) in enumerate(zip(picked, scored, strict=True))
                ],
                SAMPLE_COLUMNS,
            )
        names = [m for m in (*MAIN_METRICS, "distinct_1", "mean_words", "n_clusters") if m in cells["base"]]
        metric_rows = [
            {
                "metric": engine_metrics.METRIC_LABELS.get(name, (name, ""))[0],
                **{variant: _round(cells[variant].get(name)) for variant in self.variants},
            }
            for name in names
        ]
        return tables, _frame(metric_rows, ["metric", *self.variants])

    def save_live(self, state: dict[str, Any] | None) -> str:
        """Store the last live generation(s) as rows of this model pair's ad-hoc sweep, then score them."""
        if not state or not state.get("samples"):
            raise UserError("nothing to save yet: generate first")
        run = LiveRun.from_state(state)
        store = self._store()
        try:
            sweep_id = self._adhoc_sweep(store)
            prompt_id = _live_prompt_id(run)
            live = run.settings
            records = []
            for variant, seed, text in run.samples:
                existing = core.iter_generations(
                    store,
                    sweep_id,
                    variant=variant,
                    temperature=live.temperature,
                    top_p=live.top_p,
                    top_k=live.top_k,
                    prompt_id=prompt_id,
                )
                if any(r.get("seed") == seed and r.get("text") == text for r in existing):
                    continue  # already saved
                taken = {int(r["sample_index"]) for r in existing} | {
                    int(r["sample_index"]) for r in records if r["variant"] == variant
                }
                records.append(
                    {
                        "variant": variant,
                        "temperature": live.temperature,
                        "top_p": live.top_p,
                        "top_k": live.top_k,
                        "prompt_id": prompt_id,
                        "prompt": run.prompt,
                        "sample_index": max(taken, default=-1) + 1,
                        "seed": seed,
                        "text": text,
                        "extra": {
                            "system_prompt": run.system_prompt,
                            "max_new_tokens": live.max_new_tokens,
                            "stopped": run.stopped,
                            "from": "gradio",
                        },
                    }
                )
            written = core.add_generations(store, sweep_id, records)
            core.set_sweep_status(store, sweep_id, "completed")
            if written:
                from engine.sweep import compute_metrics_if_available

                compute_metrics_if_available(store, sweep_id)
        finally:
            store.close()
        if not written:
            return f"already saved in sweep {sweep_id}"
        return f"saved {written} generation(s) to ad-hoc sweep {sweep_id} (prompt {prompt_id})"

    def _adhoc_sweep(self, store) -> int:
        adapter = self.settings.adapter_dir
        identity = {
            "kind": "gradio-live",
            "base_model": self.settings.base_model,
            "adapter": adapter,
            "adapter_weights": _adapter_digest(adapter),
        }
        adapter_name = Path(adapter).name if adapter else "no adapter"
        return core.get_or_create_sweep(
            store,
            name=f"live: {self.settings.base_model} + {adapter_name}",
            source=ADHOC_SOURCE,
            base_model=self.settings.base_model,
            adapter_dir=adapter,
            config_hash=hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest(),
            config={
                **identity,
                "entity_name": self.settings.entity_name,
                "dataset_path": self.settings.dataset,
                "variants": list(self.variants),
            },
            expected_rows=0,
        )

    # ------------------------------------------------------------------ sweeps tab

    def sweep_choices(self) -> list[tuple[str, str]]:
        """(label, sweep id) for every stored sweep, newest first."""
        store = self._store()
        try:
            rows = core.list_sweeps(store)
        finally:
            store.close()
        return [
            (
                f"#{r['id']} {r['name']} ({r['source']}, {r['generation_count']} rows, {r['status']})",
                str(r["id"]),
            )
            for r in rows
        ]

    @staticmethod
    def sweep_id(value: Any) -> int:
        text = str(value or "").strip().lstrip("#").split(" ")[0]
        if not text.isdigit():
            raise UserError("sweep: pick a stored sweep first")
        return int(text)

    def sweep_filters(self, sweep: Any) -> SweepFilters:
        sweep_id = self.sweep_id(sweep)
        store = self._store()
        try:
            row = core.get_sweep(store, sweep_id)
            if not row:
                raise UserError(f"sweep {sweep_id}: no such sweep in {self.settings.db_path}")
            generations = core.iter_generations(store, sweep_id)
            scored_cells = len(store_metrics.cell_table(store, sweep_id))
        finally:
            store.close()
        temperatures = sorted({float(g["temperature"]) for g in generations})
        top_ps = sorted({float(g["top_p"]) for g in generations})
        top_ks = sorted({int(g["top_k"]) for g in generations})
        prompts = sorted({str(g["prompt_id"]) for g in generations})
        variants = sorted({str(g["variant"]) for g in generations}, key=lambda v: (v != "base", v))
        cells = len({store_metrics.cell_key(g) for g in generations})
        scored = f"{scored_cells} scored" if scored_cells else "no metrics yet (press Score)"
        info = (
            f"**#{sweep_id} {row['name']}** · source {row['source']} · {row['status']} · "
            f"model {row['base_model']} · adapter {row.get('adapter_dir') or '-'} · "
            f"{len(generations)} generations in {cells} cells ({scored})"
        )
        return SweepFilters(
            info=info,
            temperatures=[fmt_value(t) for t in temperatures],
            top_ps=[fmt_value(p) for p in top_ps],
            top_ks=[fmt_value(k) for k in top_ks],
            prompts=prompts,
            variants=variants,
        )

    def score_sweep(self, sweep: Any) -> str:
        from engine import metrics as engine_metrics

        sweep_id = self.sweep_id(sweep)
        store = self._store()
        try:
            scored = engine_metrics.compute_missing(store, sweep_id)
        finally:
            store.close()
        return f"sweep {sweep_id}: scored {scored} new generation(s)"

    def metric_choices(self) -> list[tuple[str, str]]:
        from engine.metrics import METRIC_LABELS

        ordered = [*MAIN_METRICS, *(c for c in store_metrics.CELL_COLUMNS if c not in MAIN_METRICS)]
        return [(METRIC_LABELS.get(c, (c, ""))[0], c) for c in ordered]

    def heatmaps(self, sweep: Any, metric: str, prompt: Any = None) -> Figure:
        """The metric over temperature x top_p: one row per top_k, base | fine-tuned | difference."""
        sweep_id = self.sweep_id(sweep)
        metric = metric or "refusal_rate"
        store = self._store()
        try:
            grid = store_metrics.metric_grid(store, sweep_id, metric, prompt_id=_choice(prompt))
        except ValueError as exc:
            raise UserError(f"metric: {exc}") from None
        finally:
            store.close()
        return heatmap_figure(grid, self._metric_label(metric))

    def _metric_label(self, metric: str) -> tuple[str, str]:
        from engine.metrics import METRIC_LABELS

        return METRIC_LABELS.get(metric, (metric, "context"))

    def sweep_cells(
        self,
        sweep: Any,
        variant: Any = None,
        temperature: Any = None,
        top_p: Any = None,
        top_k: Any = None,
        prompt: Any = None,
    ) -> pd.DataFrame:
        """One row per stored cell (variant, T, p, k, prompt) with its sample count and main metrics."""
        sweep_id = self.sweep_id(sweep)
        filters = _cell_filters(variant, temperature, top_p, top_k, prompt)
        store = self._store()
        try:
            generations = core.iter_generations(store, sweep_id, **filters)
            scored = {
                store_metrics.cell_key(row): row
                for row in store_metrics.cell_table(
                    store, sweep_id, variant=filters["variant"], prompt_id=filters["prompt_id"]
                )
            }
        finally:
            store.close()
        counts: dict[tuple, int] = defaultdict(int)
        for g in generations:
            counts[store_metrics.cell_key(g)] += 1
        records = []
        for key, n in counts.items():
            cell = scored.get(key, {})
            records.append(
                {
                    "variant": key[0],
                    "temperature": key[1],
                    "top_p": key[2],
                    "top_k": key[3],
                    "prompt_id": key[4],
                    "n": n,
                    **{m: _round(cell.get(m)) for m in CELL_TABLE_METRICS},
                }
            )
        columns = ["variant", "temperature", "top_p", "top_k", "prompt_id", "n", *CELL_TABLE_METRICS]
        records.sort(key=lambda r: (r["prompt_id"], r["temperature"], r["top_p"], r["top_k"], r["variant"]))
        return _frame(records, columns)

    def cell_samples(
        self, sweep: Any, temperature: Any, top_p: Any, top_k: Any, prompt: Any, variant: Any = None
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """A cell's samples, base and fine-tuned side by side (one side empty when filtered out)."""
        sweep_id = self.sweep_id(sweep)
        filters = _cell_filters(variant, temperature, top_p, top_k, prompt)
        for name in ("temperature", "top_p", "top_k"):
            if filters[name] is None:
                raise UserError(f"{name}: pick one value to read a cell's samples")
        store = self._store()
        try:
            tables = {}
            for side in ("base", "finetuned"):
                if filters["variant"] not in (None, side):
                    tables[side] = _empty_samples()
                    continue
                rows = core.iter_generations(store, sweep_id, **{**filters, "variant": side})
                scores = {}
                for key in {store_metrics.cell_key(r) for r in rows}:
                    scores.update(
                        {
                            s["generation_id"]: s["metrics"]
                            for s in store_metrics.cell_samples(store, sweep_id, key)
                        }
                    )
                tables[side] = _frame(
                    [
                        {
                            "sample_index": r["sample_index"],
                            "seed": r.get("seed"),
                            "text": r["text"],
                            "refusal": scores.get(r["id"], {}).get("refusal"),
                            "grounding": _round(scores.get(r["id"], {}).get("grounding")),
                            "conflict": scores.get(r["id"], {}).get("conflict"),
                            "degenerate": scores.get(r["id"], {}).get("degenerate"),
                        }
                        for r in rows
                    ],
                    SAMPLE_COLUMNS,
                )
        finally:
            store.close()
        return tables["base"], tables["finetuned"]


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


def _frame(records: list[dict[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    """A table whose missing values are None (shown empty), not NaN (shown as "NaN")."""
    table = pd.DataFrame(records, columns=list(columns))
    return table.astype(object).where(table.notna(), None)


def _live_prompt_id(run: LiveRun) -> str:
    """Live prompts group into cells by what they asked and how long they could answer."""
    identity = json.dumps([run.system_prompt, run.prompt, run.settings.max_new_tokens])
    return "live-" + hashlib.sha256(identity.encode()).hexdigest()[:10]


def _adapter_digest(adapter: str | None) -> str | None:
    if not adapter:
        return None
    weights = sorted(Path(adapter).glob("adapter_model.*"))
    return ds.file_sha256(weights[0]) if weights else None


def heatmap_figure(grid: dict[str, Any], label: tuple[str, str]) -> Figure:
    """Heatmaps of store.metrics.metric_grid output; colours shared across panels so they compare."""
    import numpy as np

    title, direction = label
    variants: list[str] = grid["variants"]
    top_ks: list[int] = grid["top_ks"]
    temperatures, top_ps = grid["temperatures"], grid["top_ps"]
    if not variants or not top_ks:
        figure = Figure(figsize=(8, 2.5))
        axis = figure.add_subplot()
        axis.axis("off")
        axis.text(0.5, 0.5, f"no scored cells for '{title}' yet: press Score", ha="center", va="center")
        return figure
    panels = list(variants)
    with_difference = "base" in variants and "finetuned" in variants
    if with_difference:
        panels.append("finetuned - base")
    arrays = {
        (v, k): np.array(
            [[np.nan if x is None else x for x in row] for row in grid["values"][v][k]], dtype=float
        )
        for v in variants
        for k in top_ks
    }
    finite = np.concatenate([a[np.isfinite(a)] for a in arrays.values()] or [np.array([])])
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if vmin == vmax:
        vmin, vmax = vmin - 0.5, vmax + 0.5
    cmap = "viridis_r" if direction == "lower" else "viridis"
    figure = Figure(figsize=(3.6 * len(panels) + 1, 2.6 * len(top_ks) + 0.8), layout="constrained")
    axes = figure.subplots(len(top_ks), len(panels), squeeze=False)
    for r, k in enumerate(top_ks):
        for c, panel in enumerate(panels):
            axis = axes[r][c]
            if panel == "finetuned - base":
                data = arrays[("finetuned", k)] - arrays[("base", k)]
                span = float(np.nanmax(np.abs(data))) if np.isfinite(data).any() else 1.0
                image = axis.imshow(data, cmap="coolwarm", vmin=-span or -1, vmax=span or 1, aspect="auto")
            else:
                data = arrays[(panel, k)]
                image = axis.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
            for (i, j), value in np.ndenumerate(data):
                if np.isfinite(value):
                    axis.text(
                        j,
                        i,
                        f"{value:.2f}",
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white",
                        bbox={"facecolor": "black", "alpha": 0.25, "pad": 1, "linewidth": 0},
                    )
            axis.set_xticks(range(len(top_ps)), [f"{p:g}" for p in top_ps])
            axis.set_yticks(range(len(temperatures)), [f"{t:g}" for t in temperatures])
            axis.set_xlabel("top_p")
            axis.set_ylabel("temperature")
            axis.set_title(f"{panel} · top_k={k}", fontsize=10)
            if panel in (variants[-1], "finetuned - base"):
                figure.colorbar(image, ax=axis, shrink=0.8)
    hint = {"higher": " (higher is better)", "lower": " (lower is better)"}.get(direction, "")
    figure.suptitle(f"{title}{hint}")
    return figure
