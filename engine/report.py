"""A sweep's report, fit for a paper: report.html (self-contained), report.md, figures/ and tables/.

Order: the headline and the summary (engine/summary.py: per prompt group, per variant x
temperature, hallucination, refusals and agreement with 95% intervals), example answers base next
to fine-tuned, heatmaps (base, fine-tuned and their difference per metric and prompt group; a
metric with one value everywhere is one line instead), the least grounded and most divergent
answers (repeated texts once, with a count), the other tables, and last the run's metadata with
paths relative to the data folder.

Structure: the report is a list of :class:`Section` (title + blocks: paragraphs, tables,
figures), each built by one function of :data:`SECTION_BUILDERS` from a :class:`ReportContext`;
both renderers walk the same sections, so a new section is one builder appended there. Every
text a model, a dataset or a user wrote goes through engine/escape.py in each output format.

Files: figures/<name>.png and .svg for every heatmap, tables/<name>.csv and .tex for every
table with a name; report.html inlines the PNGs, report.md links them.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import io
import os
import re
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import calibrate as engine_calibrate
from engine import judge as engine_judge
from engine import labels as engine_labels
from engine import metrics as engine_metrics
from engine import scoring
from engine import summary as engine_summary
from engine.errors import UserError
from engine.escape import csv_text, html_text, latex_text, markdown_text
from engine.files import (
    first_existing_parent,
    is_disk_full,
    naming,
    remove_empty,
    remove_leftovers,
    replace_folder,
    staging_folder,
)
from engine.grid import NA_COLOUR, MetricGrid, degenerate_note, difference_scale, value_scale
from engine.metrics import catalog
from engine.metrics.catalog import MetricSpec
from engine.metrics.cell import EMBEDDING_MODEL_NAME, embedding_model_loaded
from engine.metrics.text import stem, words
from engine.paths import bundled_data_dir
from store import core as store_core
from store import metrics as store_metrics

# Heatmaps, and the columns of the per-cell table, in the catalogue's display order.
REPORT_METRICS = catalog.cell_metrics_shown(catalog.Show.HEATMAP)
# Heatmaps drawn inside report.html (the main score's and the summary metrics'); the others are
# linked: 24 inlined PNGs made the demo's page 0.9 MB.
INLINE_METRICS = frozenset({catalog.MAIN_SCORE, *catalog.SUMMARY_METRICS})
TABLE_COLUMNS = catalog.cell_metrics_shown(catalog.Show.TABLE)
TOP_SAMPLES = 10
SHOWN_ROWS = 60  # rows of a long table shown in the HTML/Markdown; the CSV holds them all
FIGURE_DPI = 100

Say = Callable[[str], None]


# ------------------------------------------------------------------ blocks and sections


@dataclass(frozen=True)
class Paragraph:
    text: str
    strong: bool = False  # the headline


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]
    name: str = ""  # file stem under tables/ (csv and tex); '' = not written as a file
    caption: str = ""
    text_columns: frozenset[int] = frozenset()  # columns holding answers: wrapped, left-aligned
    shown: int | None = SHOWN_ROWS  # rows shown in HTML/Markdown (None: all)
    # Headers written "group · column" get a spanning group row in HTML (CSV/Markdown keep them whole).
    grouped_headers: bool = False


@dataclass(frozen=True)
class Figure:
    name: str  # file stem under figures/
    title: str
    caption: str
    png: bytes
    svg: bytes
    inline: bool = True  # drawn inside report.html; else linked (its files are always written)


Block = Paragraph | Table | Figure


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)
    level: int = 2


@dataclass
class Report:
    title: str
    sections: list[Section]
    summary: engine_summary.SweepSummary

    def tables(self) -> list[Table]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, Table) and b.name]

    def figures(self) -> list[Figure]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, Figure)]


@dataclass(frozen=True)
class ReportPaths:
    html: Path
    markdown: Path
    figures: list[Path]
    tables: list[Path]
    seconds: float


@dataclass
class ReportContext:
    """What every section builder may read: the store, the sweep, its summary, cells and samples."""

    store: Any
    sweep_id: int
    sweep: dict[str, Any]
    summary: engine_summary.SweepSummary
    cells: list[dict[str, Any]]
    samples: list[dict[str, Any]]
    data_folder: Path
    method: str
    say: Say

    @property
    def entity(self) -> str | None:
        return (self.sweep.get("config") or {}).get("entity_name")


# ------------------------------------------------------------------ small helpers


def display_path(value: str | None, data_folder: Path) -> str:
    """A path as the report shows it: relative to the data folder ('<data>/runs/x'), to the
    bundled data ('<ft-hallu>/engine/data/x'), else only its last two parts ('…/a/b')."""
    if not value:
        return "–"
    path = Path(value)
    if not path.is_absolute():
        return str(path)
    for root, label in ((data_folder, "<data>"), (bundled_data_dir().parent.parent, "<ft-hallu>")):
        try:
            return f"{label}/{path.resolve().relative_to(root.resolve())}"
        except ValueError:
            continue
    return "…/" + "/".join(path.parts[-2:])


def _variant(variant: str) -> str:
    return engine_summary.variant_name(variant)


def _cell_label(row: dict[str, Any]) -> str:
    return f"T={row['temperature']:g} p={row['top_p']:g} k={row['top_k']}"


def _one_line(text: str) -> str:
    return " ".join((text or "").split())


def unsupported_words(text: str, stems: Sequence[str]) -> list[str]:
    """The answer's own words behind grounding's unsupported stems ('multin' -> 'multinational')."""
    by_stem: dict[str, str] = {}
    for word in words(text or ""):
        by_stem.setdefault(stem(word), word)
    return list(dict.fromkeys(by_stem.get(s, s) for s in stems))


def collapse_repeats(
    rows: Sequence[dict[str, Any]], key: Callable[[dict[str, Any]], Any]
) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Rows with the same key once, in first-seen order, each with every row it stands for."""
    groups: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    return [(members[0], members) for members in groups.values()]


def _temperatures_text(members: Sequence[dict[str, Any]]) -> str:
    values = sorted({float(m["temperature"]) for m in members})
    return ", ".join(f"{t:g}" for t in values)


def _announce_embeddings(say: Say, why: str) -> None:
    """A progress line before the sentence-embedding model loads (once per process)."""
    if engine_metrics.embeddings_available() and not embedding_model_loaded():
        say(f"loading the sentence-embedding model {EMBEDDING_MODEL_NAME} (CPU) {why}")


# ------------------------------------------------------------------ heatmaps


def heatmap_figure(grid: MetricGrid, spec: MetricSpec, *, title: str, name: str, n: int | None) -> Figure:
    """One figure: a row per top_k; each variant, then fine-tuned − base; numbers in every cell.

    Value panels share the metric's colour scale and range (engine/grid.py: blue better, red
    worse); difference panels share one symmetric scale over the metric's whole range, so a
    colour means the same amount in every figure of this metric.
    """
    import matplotlib
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.colors import LinearSegmentedColormap, Normalize
    from matplotlib.figure import Figure as MplFigure

    variants, top_ks = list(grid.variants), list(grid.top_ks)
    with_difference = grid.has_difference
    columns = len(variants) + (1 if with_difference else 0)
    vmin, vmax = grid.colour_range(spec)
    span = grid.difference_range(spec)
    scales = {False: value_scale(spec), True: difference_scale(spec)}
    norms = {False: Normalize(vmin, vmax), True: Normalize(-span, span)}
    cmaps = {
        kind: LinearSegmentedColormap.from_list(scale.name, list(scale.stops)).with_extremes(bad=NA_COLOUR)
        for kind, scale in scales.items()
    }
    decimals = spec.decimals(n or 1)
    panel_w, panel_h = 0.42 * len(grid.top_ps) + 0.9, 0.32 * len(grid.temperatures) + 0.75
    width = 0.9 + columns * panel_w + (1.3 if with_difference else 0.7)
    height = 0.95 + len(top_ks) * panel_h
    style = {"svg.fonttype": "none", "svg.hashsalt": name, "font.size": 9, "font.sans-serif": ["DejaVu Sans"]}
    with matplotlib.rc_context(style):
        fig = MplFigure(figsize=(width, height))
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(top_ks), columns, squeeze=False)
        fig.subplots_adjust(
            left=0.75 / width,
            right=1 - (1.15 if with_difference else 0.6) / width,
            top=1 - 0.72 / height,
            bottom=0.45 / height,
            hspace=0.55,
            wspace=0.25,
        )
        images = {}
        for row, k in enumerate(top_ks):
            panels = [(v, grid.matrix(v, k), False) for v in variants]
            if with_difference:
                panels.append(("fine-tuned − base", grid.difference(k), True))
            for col, (label, data, is_diff) in enumerate(panels):
                ax = axes[row][col]
                # Vector cells (not an image): crisp in the SVG and a few hundred bytes each.
                images[is_diff] = ax.pcolormesh(
                    np.ma.masked_invalid(data),
                    cmap=cmaps[is_diff],
                    norm=norms[is_diff],
                    edgecolors="white",
                    linewidth=0.6,
                )
                ax.set_facecolor(NA_COLOUR)  # cells without a value
                ax.set_xlim(0, data.shape[1])
                ax.set_ylim(data.shape[0], 0)
                ax.set_title(f"{_variant(label)} · top_k={k}", fontsize=9)
                ax.set_xticks(
                    [j + 0.5 for j in range(len(grid.top_ps))], [f"{p:g}" for p in grid.top_ps], fontsize=8
                )
                ax.set_yticks(
                    [i + 0.5 for i in range(len(grid.temperatures))],
                    [f"{t:g}" for t in grid.temperatures] if col == 0 else [],
                    fontsize=8,
                )
                ax.tick_params(length=0)
                if row == len(top_ks) - 1:
                    ax.set_xlabel("top_p", fontsize=8)
                if col == 0:
                    ax.set_ylabel("temperature", fontsize=8)
                for i in range(data.shape[0]):
                    for j in range(data.shape[1]):
                        value = data[i, j]
                        if not np.isfinite(value):
                            ax.text(
                                j + 0.5, i + 0.5, "n/a", ha="center", va="center", fontsize=8, color="#555555"
                            )
                            continue
                        text = f"{value:+.{decimals}f}" if is_diff else f"{value:.{decimals}f}"
                        if is_diff and round(value, decimals) == 0:
                            text = f"{0:.{decimals}f}"
                        colour = scales[is_diff].text_colour(float(norms[is_diff](value)))
                        ax.text(j + 0.5, i + 0.5, text, ha="center", va="center", fontsize=9, color=colour)
        direction = {"higher": "higher is better", "lower": "lower is better"}.get(
            spec.direction, "neither way is better"
        )
        fig.suptitle(f"{title}\n({direction}; n = {n} samples per cell)" if n else title, fontsize=10)
        right = 1 - 1.0 / width
        bar_h = (1 - 1.17 / height) / (2 if with_difference else 1)
        bar = fig.add_axes(
            (
                right + 0.12 / width,
                0.45 / height + (bar_h if with_difference else 0),
                0.13 / width,
                bar_h * 0.9,
            )
        )
        fig.colorbar(images[False], cax=bar).ax.tick_params(labelsize=7)
        bar.set_title("value", fontsize=7)
        if with_difference:
            diff_bar = fig.add_axes((right + 0.12 / width, 0.45 / height, 0.13 / width, bar_h * 0.9))
            fig.colorbar(images[True], cax=diff_bar).ax.tick_params(labelsize=7)
            diff_bar.set_title("difference", fontsize=7)
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=FIGURE_DPI)
        svg = io.BytesIO()
        FigureCanvasSVG(fig)
        fig.savefig(svg, format="svg", metadata={"Date": None})
    caption_parts = [f"{spec.label}: {spec.description}" if spec.description else spec.label]
    if n and (note := degenerate_note(spec.name, n, spec)):
        caption_parts.append(f"Note: {note}")
    if with_difference:
        caption_parts.append(
            "Difference panel: fine-tuned − base, blue where fine-tuned is better, red where worse"
            if spec.direction != "context"
            else "Difference panel: fine-tuned − base (purple lower, orange higher)"
        )
    return Figure(name, title, ". ".join(caption_parts) + ".", _small_png(png.getvalue()), svg.getvalue())


def _small_png(data: bytes) -> bytes:
    """The PNG with a 256-colour palette: a heatmap has few colours, so the file shrinks ~3x (95 -> 34 KB)
    with no banding in the colour bars (64 colours banded them)."""
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB")
    out = io.BytesIO()
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, format="PNG", optimize=True)
    return out.getvalue()


# ------------------------------------------------------------------ section builders


def headline_section(ctx: ReportContext) -> Section:
    """The finding first: one headline per prompt group and what the score means."""
    summary = ctx.summary
    blocks: list[Block] = [Paragraph(group.headline, strong=True) for group in summary.groups]
    blocks.append(
        Paragraph(
            f"Hallucination = {summary.hallucination_label} (higher = more hallucination), over the "
            f"answers that make at least one claim. Refusal rate over every answer. Agreement = the "
            f"majority-answer share of a cell's samples, averaged over the cells at that temperature "
            f"(all top_p and top_k). Brackets: 95% Wilson intervals; 'no clear difference' where the "
            f"intervals of base and fine-tuned overlap."
        )
    )
    return Section(f"Sweep {ctx.sweep_id}: {ctx.sweep.get('name') or ''}".rstrip(": "), blocks, level=1)


def summary_section(ctx: ReportContext) -> Section:
    """Per prompt group: the prompt text(s), the summary table, flat metrics and n notes."""
    blocks: list[Block] = []
    for group in ctx.summary.groups:
        headers, rows = engine_summary.summary_table(group)
        prompts = "; ".join(f"“{_one_line(p.text)}”" for p in group.prompts)
        caption = f"{group.title[0].upper()}{group.title[1:]}: {prompts}"
        blocks.append(
            Table(
                headers,
                rows,
                name=f"summary-{_file_stem(group.group)}",
                caption=caption,
                shown=None,
                grouped_headers=True,
            )
        )
    if ctx.summary.notes:
        blocks.append(Paragraph("Note: " + "; ".join(ctx.summary.notes) + "."))
    return Section("Summary per temperature", blocks)


def examples_section(ctx: ReportContext) -> Section:
    """Base next to fine-tuned at a low, a middle and a high temperature (same cell, same sample)."""
    blocks: list[Block] = []
    for group in ctx.summary.groups:
        if not group.examples:
            continue
        variants = list(group.variants)
        headers = ["cell", *(_variant(v) for v in variants)]
        rows = []
        for pair in group.examples:
            line = [f"T={pair.temperature:g} p={pair.top_p:g} k={pair.top_k} · sample {pair.sample_index}"]
            for variant in variants:
                answer = pair.get(variant)
                if answer is None:
                    line.append("–")
                    continue
                score = (
                    "refused"
                    if answer.refusal
                    else (
                        "no claim"
                        if answer.hallucination is None
                        else f"hallucination {answer.hallucination:.2f}"
                    )
                )
                line.append(f"{_one_line(answer.text) or '(empty)'} [{score}]")
            rows.append(line)
        prompt = next((p for p in group.prompts if p.prompt_id == group.examples[0].prompt_id), None)
        caption = f"{group.title[0].upper()}{group.title[1:]}"
        if prompt:
            caption += f": “{_one_line(prompt.text)}”"
            if prompt.reference:
                caption += f" (reference: “{_one_line(prompt.reference)}”)"
        blocks.append(
            Table(
                headers,
                rows,
                name=f"examples-{_file_stem(group.group)}",
                caption=caption,
                text_columns=frozenset(range(1, len(headers))),
                shown=None,
            )
        )
    return Section("Example answers, base next to fine-tuned", blocks)


def _file_stem(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def heatmap_sections(ctx: ReportContext) -> list[Section]:
    """Per prompt group: a heatmap per metric that varies; one line for each that does not."""
    sections = []
    main = catalog.main_score().name
    metrics = [main, *(m for m in REPORT_METRICS if m != main)]
    known = set(store_metrics.cell_columns(ctx.store))
    for group in ctx.summary.groups:
        blocks: list[Block] = []
        flat = {f.metric: f for f in group.flat}
        for metric in metrics:
            if metric not in known:
                continue
            if metric in flat:
                blocks.append(Paragraph(flat[metric].text()))
                continue
            grid = ctx_grid(ctx, metric, group)
            if grid.finite_values().size == 0:
                continue
            spec = catalog.cell_metric(metric)
            title = f"{spec.label} — {group.title}"
            name = f"{metric}-{_file_stem(group.group)}"
            figure = heatmap_figure(grid, spec, title=title, name=name, n=ctx.summary.samples_per_cell)
            blocks.append(dataclasses.replace(figure, inline=metric in INLINE_METRICS))
        prompts = "; ".join(f"“{_one_line(p.text)}”" for p in group.prompts)
        blocks.insert(
            0, Paragraph(f"Prompt: {prompts}" if len(group.prompts) == 1 else f"Prompts (pooled): {prompts}")
        )
        sections.append(Section(f"Heatmaps — {group.title}", blocks))
    return sections


def ctx_grid(ctx: ReportContext, metric: str, group: engine_summary.GroupSummary) -> MetricGrid:
    return MetricGrid.from_dict(
        store_metrics.metric_grid(ctx.store, ctx.sweep_id, metric, prompt_id=group.prompt_filter)
    )


def samples_section(ctx: ReportContext) -> Section:
    """The least grounded answers and the most divergent base/fine-tuned pairs, repeats collapsed."""
    spec = catalog.main_score()
    sample_name = spec.mean_of or spec.name
    scored = [s for s in ctx.samples if (s.get("metrics") or {}).get(sample_name) is not None]

    def hallucination(sample: dict[str, Any]) -> float:
        return float(catalog.hallucination_side(spec, float(sample["metrics"][sample_name])) or 0.0)

    ranked = sorted(scored, key=lambda s: (-(s.get("conflict") or 0), -hallucination(s)))
    collapsed = collapse_repeats(ranked, key=lambda s: (s["variant"], s["prompt_id"], _one_line(s["text"])))
    least_rows = []
    for first, members in collapsed[:TOP_SAMPLES]:
        terms = unsupported_words(first["text"], (first.get("metrics") or {}).get("unsupported") or [])
        least_rows.append(
            [
                str(len(members)),
                _variant(first["variant"]),
                first["prompt_id"],
                _temperatures_text(members),
                f"{hallucination(first):.2f}",
                "yes" if first.get("conflict") else "no",
                ", ".join(terms[:12]),
                _one_line(first["text"]),
            ]
        )
    least = Table(
        ["×", "variant", "prompt", "T", "hallucination", "conflict", "unsupported words", "answer"],
        least_rows,
        name="least-grounded",
        caption=(
            f"Highest hallucination ({catalog.hallucination_label(spec)}), answers contradicting the sources "
            "first; an answer given several times is listed once, × = how often, T = where"
        ),
        text_columns=frozenset({6, 7}),
        shown=None,
    )
    pairs = _divergent_pairs(ctx.samples, ctx.entity)
    collapsed_pairs = collapse_repeats(
        pairs, key=lambda p: (p["key"][3], _one_line(p["base"]["text"]), _one_line(p["finetuned"]["text"]))
    )
    pair_rows = [
        [
            str(len(members)),
            first["key"][3],
            ", ".join(sorted({f"{m['key'][0]:g}" for m in members}, key=float)),
            f"{first['divergence']:.2f}",
            _one_line(first["base"]["text"]),
            _one_line(first["finetuned"]["text"]),
        ]
        for first, members in collapsed_pairs[:TOP_SAMPLES]
    ]
    divergent = Table(
        ["×", "prompt", "T", "divergence", "base", "fine-tuned"],
        pair_rows,
        name="most-divergent",
        caption="Most divergent base/fine-tuned pairs: 1 − ROUGE-L of the two answers in one cell at one sample index",
        text_columns=frozenset({4, 5}),
        shown=None,
    )
    return Section("Answers to read", [least, divergent])


def _divergent_pairs(samples: Sequence[dict[str, Any]], entity: str | None) -> list[dict[str, Any]]:
    by_key: dict[tuple, dict[str, dict[str, Any]]] = defaultdict(dict)
    for s in samples:
        key = (
            float(s["temperature"]),
            float(s["top_p"]),
            int(s["top_k"]),
            s["prompt_id"],
            int(s["sample_index"]),
        )
        by_key[key][s["variant"]] = s
    pairs = []
    for key, variants in by_key.items():
        if "base" in variants and "finetuned" in variants:
            base, tuned = variants["base"], variants["finetuned"]
            similarity = engine_metrics.lexical_similarity_matrix(
                [base["text"] or "", tuned["text"] or ""], entity
            )[0, 1]
            pairs.append(
                {"key": key, "base": base, "finetuned": tuned, "divergence": 1.0 - float(similarity)}
            )
    pairs.sort(key=lambda p: -p["divergence"])
    return pairs


def slices_section(ctx: ReportContext) -> Section | list[Section]:
    """With one sample per cell (the original run's), a cell has no spread: pool every answer of a
    variant and prompt at one temperature over top_p and top_k and count its meanings. With more
    samples per cell the summary's agreement says it, and this costs an embedding pass: left out."""
    if (ctx.summary.samples_per_cell or 0) > 1 or not ctx.samples:
        return []
    pooled: dict[tuple[str, str, float], list[dict[str, Any]]] = defaultdict(list)
    for sample in ctx.samples:
        pooled[(sample["variant"], str(sample["prompt_id"]), float(sample["temperature"]))].append(sample)
    _announce_embeddings(ctx.say, "to cluster each temperature's answers by meaning (one sample per cell)")
    entropy = catalog.cell_metric("semantic_entropy")
    rows = []
    for (variant, prompt_id, temperature), members in sorted(pooled.items()):
        cell = engine_metrics.score_cell(
            [m["text"] or "" for m in members],
            [m.get("metrics") or {} for m in members],
            entity=ctx.entity,
            method=ctx.method,
        )
        rows.append(
            [
                _variant(variant),
                prompt_id,
                f"{temperature:g}",
                str(cell.n),
                entropy.format(cell.semantic_entropy, cell.n),
                str(cell.n_clusters),
                f"{cell.majority_share:.{catalog.decimals_for(cell.n)}f}",
                cell.similarity_method,
            ]
        )
    headers = [
        "variant",
        "prompt",
        "T",
        "n",
        "semantic entropy (nats)",
        "clusters",
        "majority share",
        "similarity",
    ]
    return Section(
        "Meaning clusters per temperature (one sample per cell: every top_p and top_k pooled)",
        [Table(headers, rows, name="temperature-slices")],
    )


def cells_section(ctx: ReportContext) -> Section:
    """Every cell's scores (short column titles; the legend names them)."""
    specs = [catalog.cell_metric(m) for m in TABLE_COLUMNS]
    headers = ["variant", "prompt", "T", "top_p", "top_k", "n"] + [s.title for s in specs]
    rows = [
        [
            _variant(c["variant"]),
            c["prompt_id"],
            f"{c['temperature']:g}",
            f"{c['top_p']:g}",
            str(c["top_k"]),
            str(c["n"]),
        ]
        + [s.format(c.get(s.name), int(c["n"])) for s in specs]
        for c in ctx.cells
    ]
    legend = "; ".join(f"{s.title} = {s.label}" for s in specs)
    return Section(
        "Per-cell scores",
        [
            Table(
                headers,
                rows,
                name="cells",
                caption=f"Columns: {legend}. Decimals follow n (catalog.decimals_for).",
            )
        ],
    )


def other_sections(ctx: ReportContext) -> list[Section]:
    """Calibration, every sample's claims and the judge's tables (their own modules build them)."""
    sections = []
    tables = [
        ("calibration", engine_calibrate.report_section(ctx.store, ctx.sweep_id)),
        ("profile", scoring.profile_section(ctx.store, ctx.sweep_id)),
        ("claims", engine_labels.claims_section(ctx.store, ctx.sweep_id)),
        *((f"judge-{i}", t) for i, t in enumerate(engine_judge.report_sections(ctx.store, ctx.sweep_id), 1)),
    ]
    for name, (title, headers, rows) in tables:
        text = frozenset(i for i, h in enumerate(headers) if h in ("claim", "evidence", "source sentence", "value"))
        sections.append(Section(title, [Table(headers, rows, name=name, text_columns=text)]))
    return sections


def metadata_section(ctx: ReportContext) -> Section:
    """The run: models, adapter, seed, grid, dataset; paths relative to the data folder."""
    sweep = ctx.sweep
    config = sweep.get("config") or {}
    grid = config.get("grid") or {}
    rows = [
        ["sweep", f"{sweep['id']} — {sweep.get('name')} ({sweep.get('source')}, {sweep.get('status')})"],
        ["base model", str(sweep.get("base_model"))],
        ["adapter", display_path(sweep.get("adapter_dir"), ctx.data_folder)],
        ["entity", str(config.get("entity_name") or "–")],
        ["dataset (sources)", display_path(config.get("dataset_path"), ctx.data_folder)],
        ["seed", str(config.get("seed", "–"))],
        [
            "grid",
            f"T {grid.get('temperatures')} × top_p {grid.get('top_ps')} × top_k {grid.get('top_ks')}",
        ],
        ["samples per cell", str(config.get("samples_per_cell") or ctx.summary.samples_per_cell)],
        ["max new tokens", str(config.get("max_new_tokens", "–"))],
        ["cells scored", str(len(ctx.cells))],
        ["main score", f"{ctx.summary.score_label} ({ctx.summary.score}; catalog.MAIN_SCORE)"],
        ["data folder", "<data> = the folder holding the store"],
    ]
    return Section(
        "Run metadata",
        [Table(["", ""], rows, name="metadata", shown=None, text_columns=frozenset({1}))],
    )


SectionBuilder = Callable[[ReportContext], "Section | list[Section]"]
# The report's order. Another section is one function appended (or inserted) here.
SECTION_BUILDERS: list[SectionBuilder] = [
    headline_section,
    summary_section,
    examples_section,
    heatmap_sections,
    samples_section,
    slices_section,
    cells_section,
    other_sections,
    metadata_section,
]


# ------------------------------------------------------------------ building


def report_context(
    store: Any,
    sweep_id: int,
    *,
    method: str = "auto",
    say: Say | None = None,
    data_folder: str | Path | None = None,
) -> ReportContext:
    """Score what is missing (saying so, and saying when a model loads), then read what the
    section builders need."""
    say = say or (lambda _message: None)
    missing = store_metrics.generations_missing_metrics(store, sweep_id)
    if missing:
        _announce_embeddings(
            say, f"to score {len(missing)} unscored answers (claim evidence, meaning clusters)"
        )
        say(f"scoring {len(missing)} answers of sweep {sweep_id}")
    scoring.compute_missing(store, sweep_id, method=method)
    return ReportContext(
        store=store,
        sweep_id=sweep_id,
        sweep=store_core.get_sweep(store, sweep_id),
        summary=engine_summary.build_summary(store, sweep_id),
        cells=store_metrics.cell_table(store, sweep_id),
        samples=store_metrics.sample_table(store, sweep_id),
        data_folder=Path(data_folder) if data_folder else Path(store.path).resolve().parent,
        method=method,
        say=say,
    )


def build_report(
    store: Any,
    sweep_id: int,
    *,
    method: str = "auto",
    say: Say | None = None,
    data_folder: str | Path | None = None,
) -> Report:
    """Every section of :data:`SECTION_BUILDERS`, in order."""
    ctx = report_context(store, sweep_id, method=method, say=say, data_folder=data_folder)
    sections: list[Section] = []
    for builder in SECTION_BUILDERS:
        built = builder(ctx)
        sections.extend(built if isinstance(built, list) else [built])
    return Report(f"ft-hallu report — sweep {sweep_id}", sections, ctx.summary)


# ------------------------------------------------------------------ rendering: HTML

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1180px;color:#222;line-height:1.4;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.3em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
p.headline{font-size:1.12em;font-weight:600;background:#f4f7fb;border-left:4px solid #2166ac;padding:.5em .8em}
table{border-collapse:collapse;margin:.4em 0 1.2em;font-size:13px}
caption{caption-side:top;text-align:left;font-size:13px;color:#444;padding:.2em 0}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right;vertical-align:top;font-variant-numeric:tabular-nums}
th{background:#f0f0f0;font-weight:600} th.group{text-align:center} td.text,th.text{text-align:left;max-width:460px;white-space:normal}
td.first{text-align:left;white-space:nowrap}
figure{margin:.6em 0 1.4em} figure img{max-width:100%} figcaption{font-size:13px;color:#444}
p.more{font-size:12px;color:#666}
"""


def _header_html(table: Table) -> str:
    """One header row, or two when headers are grouped ('hallucination · base' under 'hallucination')."""

    def css(i: int) -> str:
        return "text" if i in table.text_columns or i == 0 else ""

    if not table.grouped_headers:
        return (
            "<tr>"
            + "".join(f"<th class='{css(i)}'>{html_text(h)}</th>" for i, h in enumerate(table.headers))
            + "</tr>"
        )
    split = [h.split(" · ", 1) if " · " in h else [h] for h in table.headers]
    top, bottom = [], []
    i = 0
    while i < len(split):
        parts = split[i]
        if len(parts) == 1:
            top.append(f"<th rowspan='2' class='{css(i)}'>{html_text(parts[0])}</th>")
            i += 1
            continue
        span = 1
        while i + span < len(split) and len(split[i + span]) == 2 and split[i + span][0] == parts[0]:
            span += 1
        top.append(f"<th colspan='{span}' class='group'>{html_text(parts[0])}</th>")
        bottom.extend(f"<th>{html_text(split[j][1])}</th>" for j in range(i, i + span))
        i += span
    return f"<tr>{''.join(top)}</tr><tr>{''.join(bottom)}</tr>"


def _table_html(table: Table) -> str:
    head = _header_html(table)
    shown = table.rows if table.shown is None else table.rows[: table.shown]
    body = []
    for row in shown:
        cells = []
        for i, value in enumerate(row):
            css = "text" if i in table.text_columns else ("first" if i == 0 else "")
            cells.append(f"<td class='{css}'>{html_text(value)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    caption = f"<caption>{html_text(table.caption)}</caption>" if table.caption else ""
    more = ""
    if len(shown) < len(table.rows):
        more = f"<p class='more'>{len(shown)} of {len(table.rows)} rows shown; all in tables/{html_text(table.name)}.csv</p>"
    return f"<table>{caption}{head}{''.join(body)}</table>{more}"


def _block_html(block: Block) -> str:
    if isinstance(block, Paragraph):
        css = " class='headline'" if block.strong else ""
        return f"<p{css}>{html_text(block.text)}</p>"
    if isinstance(block, Table):
        return _table_html(block)
    if not block.inline:
        return (
            f"<p class='more'>Heatmap: {html_text(block.title)} — "
            f"<a href='figures/{html_text(block.name)}.png'>PNG</a>, "
            f"<a href='figures/{html_text(block.name)}.svg'>SVG</a> (not inlined, to keep this page small)</p>"
        )
    encoded = base64.b64encode(block.png).decode("ascii")
    return (
        f"<figure><img alt='{html_text(block.title)}' src='data:image/png;base64,{encoded}'>"
        f"<figcaption>{html_text(block.caption)} (also figures/{html_text(block.name)}.svg)</figcaption></figure>"
    )


def render_html(report: Report) -> str:
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html_text(report.title)}</title>",
        f"<style>{_CSS}</style></head><body>",
    ]
    anchors = [f"s{i}" for i in range(len(report.sections))]
    for index, section in enumerate(report.sections):
        tag = f"h{min(section.level, 6)}"
        parts.append(f"<{tag} id='{anchors[index]}'>{html_text(section.title)}</{tag}>")
        parts.extend(_block_html(block) for block in section.blocks)
        if index == 0 and len(report.sections) > 1:  # after the headline: where everything else is
            links = " · ".join(
                f"<a href='#{anchor}'>{html_text(s.title)}</a>"
                for anchor, s in zip(anchors[1:], report.sections[1:], strict=True)
            )
            parts.append(f"<p class='more'>Contents: {links}</p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


# ------------------------------------------------------------------ rendering: Markdown


def _table_md(table: Table) -> str:
    shown = table.rows if table.shown is None else table.rows[: table.shown]
    lines = []
    if table.caption:
        lines += [f"*{markdown_text(table.caption)}*", ""]
    lines.append("| " + " | ".join(markdown_text(h) or " " for h in table.headers) + " |")
    lines.append(
        "|"
        + "".join("---|" if i in table.text_columns or i == 0 else "--:|" for i in range(len(table.headers)))
    )
    lines.extend("| " + " | ".join(markdown_text(v) for v in row) + " |" for row in shown)
    if len(shown) < len(table.rows):
        lines += [
            "",
            f"{len(shown)} of {len(table.rows)} rows shown; all in tables/{markdown_text(table.name)}.csv",
        ]
    return "\n".join(lines)


def _block_md(block: Block) -> str:
    if isinstance(block, Paragraph):
        text = markdown_text(block.text)
        return f"**{text}**" if block.strong else text
    if isinstance(block, Table):
        return _table_md(block)
    return (
        f"![{markdown_text(block.title)}](figures/{block.name}.png)\n\n"
        f"*{markdown_text(block.caption)}* ([SVG](figures/{block.name}.svg))"
    )


def render_markdown(report: Report) -> str:
    lines = [f"# {markdown_text(report.title)}", ""]
    for section in report.sections:
        if section.level > 1:
            lines += [f"{'#' * min(section.level, 6)} {markdown_text(section.title)}", ""]
        else:
            lines += [f"## {markdown_text(section.title)}", ""]
        for block in section.blocks:
            lines += [_block_md(block), ""]
    return "\n".join(lines)


# ------------------------------------------------------------------ tables as files


def table_csv(table: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([csv_text(h) for h in table.headers])
    writer.writerows([[csv_text(v) for v in row] for row in table.rows])
    return out.getvalue()


def table_latex(table: Table) -> str:
    """A booktabs tabular (answers in p{} columns), every cell escaped."""
    spec = "".join(
        "p{6cm}" if i in table.text_columns else ("l" if i == 0 else "r") for i in range(len(table.headers))
    )
    lines = [
        "% written by ft-hallu report; needs \\usepackage{booktabs}. Answers may hold any Unicode",
        "% character: compile with LuaLaTeX or XeLaTeX.",
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        " & ".join(latex_text(h) for h in table.headers) + " \\\\",
        "\\midrule",
    ]
    lines += [" & ".join(latex_text(v) for v in row) + " \\\\" for row in table.rows]
    lines += ["\\bottomrule", "\\end{tabular}"]
    if table.caption:
        lines.insert(2, f"% {latex_text(table.caption)}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ writing


def write_report(
    store: Any,
    sweep_id: int,
    out_dir: str | Path,
    *,
    method: str = "auto",
    say: Say | None = None,
    data_folder: str | Path | None = None,
) -> ReportPaths:
    """Write report.html, report.md, figures/ (PNG + SVG) and tables/ (CSV + LaTeX) into ``out_dir``.

    Everything is built in a staging folder beside ``out_dir`` first; only a finished report is
    moved in (a new ``out_dir`` whole; else figures/ and tables/ swapped in whole, then the two
    reports), so a failed run (a full disk, a kill) leaves the old report as it was, no empty
    folder and no half-written file. Other files in ``out_dir`` are never touched.
    """
    started = time.perf_counter()
    out = Path(out_dir)
    report = build_report(store, sweep_id, method=method, say=say, data_folder=data_folder)
    remove_leftovers(out)  # what a killed earlier report left beside it
    existing = first_existing_parent(out.parent)
    created = [p for p in (out.parent.absolute(), *out.parent.absolute().parents) if p != existing and not p.exists()]
    staging = staging_folder(out)
    try:
        with naming(out):
            for folder in ("figures", "tables"):
                (staging / folder).mkdir()
            for figure in report.figures():
                (staging / "figures" / f"{figure.name}.png").write_bytes(figure.png)
                (staging / "figures" / f"{figure.name}.svg").write_bytes(figure.svg)
            for table in report.tables():
                (staging / "tables" / f"{table.name}.csv").write_text(table_csv(table), encoding="utf-8")
                (staging / "tables" / f"{table.name}.tex").write_text(table_latex(table), encoding="utf-8")
            (staging / "report.html").write_text(render_html(report), encoding="utf-8")
            (staging / "report.md").write_text(render_markdown(report), encoding="utf-8")
            _move_in(staging, out)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        remove_empty(created)  # folders made on the way to the report go too
        if is_disk_full(exc):
            raise UserError(f"{out}: disk full while writing the report; nothing was written") from exc
        raise
    return ReportPaths(
        html=out / "report.html",
        markdown=out / "report.md",
        figures=sorted((out / "figures").iterdir()),
        tables=sorted((out / "tables").iterdir()),
        seconds=time.perf_counter() - started,
    )


def _move_in(staging: Path, out: Path) -> None:
    """Put a finished report in place: the staging folder itself when ``out`` is new, else its parts."""
    if not out.exists():
        os.replace(staging, out)
        return
    for folder in ("figures", "tables"):
        replace_folder(staging / folder, out / folder)
    for name in ("report.html", "report.md"):
        os.replace(staging / name, out / name)
    shutil.rmtree(staging, ignore_errors=True)
