"""A sweep's report: self-contained HTML (PNG heatmaps inlined as base64) and Markdown (PNGs beside it).

Per metric, a heatmap over temperature x top_p for each top_k with base and fine-tuned side by side,
a per-variant summary with bootstrap intervals over cells, temperature slices (semantic entropy of
all samples at one temperature), the per-cell table and the most divergent samples.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import calibrate as engine_calibrate
from engine import files, scoring
from engine import judge as engine_judge
from engine import labels as engine_labels
from engine import metrics as engine_metrics
from engine.errors import UserError
from engine.files import (
    first_existing_parent,
    is_disk_full,
    naming,
    remove_empty,
    remove_leftovers,
    replace_folder,
    staging_folder,
)
from engine.grid import MetricGrid
from engine.markup import html_text, markdown_text
from engine.metrics import catalog
from store import core as store_core
from store import metrics as store_metrics

# Heatmaps, and the columns of the summary and per-cell tables, in the catalogue's display order.
REPORT_METRICS = catalog.cell_metrics_shown(catalog.Show.HEATMAP)
TABLE_COLUMNS = catalog.cell_metrics_shown(catalog.Show.TABLE)
TOP_SAMPLES = 10


@dataclass
class Heatmap:
    metric: str
    label: str
    prompt_group: str
    png: bytes
    filename: str


@dataclass
class Report:
    sweep: dict[str, Any]
    cells: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    slices: list[dict[str, Any]]
    heatmaps: list[Heatmap] = field(default_factory=list)
    least_grounded: list[dict[str, Any]] = field(default_factory=list)
    base_vs_finetuned: list[dict[str, Any]] = field(default_factory=list)
    # (title, headers, rows) tables after the per-cell one: calibration, then every sample's claims.
    extra_sections: list[tuple[str, list[str], list[list[str]]]] = field(default_factory=list)


@dataclass
class ReportPaths:
    html: Path
    markdown: Path
    figures: list[Path]


def _label(metric: str) -> str:
    return catalog.metric_label(metric)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def prompt_groups(prompt_ids: list[str]) -> list[str]:
    """'entity' first, held-out questions pooled as 'eval-*', any other prompt on its own."""
    groups = []
    if "entity" in prompt_ids:
        groups.append("entity")
    if any(p.startswith("eval-") for p in prompt_ids):
        groups.append("eval-*")
    groups.extend(p for p in prompt_ids if p != "entity" and not p.startswith("eval-"))
    return groups


def heatmap_png(grid: dict[str, Any], title: str) -> bytes:
    """One figure: a row per top_k, a column per variant, temperature x top_p cells annotated."""
    import matplotlib
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    metric = grid["metric"]
    variants, top_ks = grid["variants"], grid["top_ks"]
    temperatures, top_ps = grid["temperatures"], grid["top_ps"]
    matrices = MetricGrid.from_dict(grid)  # the matrices and colour range the Gradio heatmaps use too
    arrays = {(v, k): matrices.matrix(v, k) for v in variants for k in top_ks}
    spec = catalog.cell_metric(metric)
    # Bounded metrics (rates, shares, F1) on their fixed range; others from their low end to the maximum.
    vmin, vmax = matrices.colour_range(spec)
    direction = spec.direction
    cmap_name = {"higher": "RdYlGn", "lower": "RdYlGn_r"}.get(direction, "viridis")
    cmap = matplotlib.colormaps[cmap_name].with_extremes(bad="#dddddd")
    width, height = 2.4 + 2.8 * len(variants), 0.9 + 2.2 * len(top_ks)
    # A plain Figure with fixed margins: constrained layout doubled the report's run time.
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(top_ks), len(variants), squeeze=False)
    fig.subplots_adjust(
        left=0.9 / width,
        right=1 - 1.0 / width,
        top=1 - 0.55 / height,
        bottom=0.5 / height,
        hspace=0.45,
        wspace=0.3,
    )
    image = None
    for row, k in enumerate(top_ks):
        for col, variant in enumerate(variants):
            ax = axes[row][col]
            data = arrays[(variant, k)]
            image = ax.imshow(np.ma.masked_invalid(data), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
            ax.set_xticks(range(len(top_ps)), [f"{p:g}" for p in top_ps])
            ax.set_yticks(range(len(temperatures)), [f"{t:g}" for t in temperatures])
            ax.set_title(f"{variant} · top_k={k}", fontsize=9)
            if row == len(top_ks) - 1:
                ax.set_xlabel("top_p", fontsize=8)
            if col == 0:
                ax.set_ylabel("temperature", fontsize=8)
            if not np.isfinite(data).any():
                ax.text(
                    0.5,
                    0.5,
                    "no values\n(e.g. all refusals)",
                    transform=ax.transAxes,
                    ha="center",
                    va="center",
                    fontsize=8,
                )
            for i in range(data.shape[0]):
                for j in range(data.shape[1]):
                    if np.isfinite(data[i, j]):
                        shade = (data[i, j] - vmin) / (vmax - vmin)
                        colour = "white" if cmap_name == "viridis" and shade < 0.5 else "black"
                        ax.text(j, i, f"{data[i, j]:.2f}", ha="center", va="center", fontsize=7, color=colour)
    fig.suptitle(title, fontsize=10)
    if image is not None:
        fig.colorbar(
            image, cax=fig.add_axes((1 - 0.8 / width, 0.5 / height, 0.15 / width, 1 - 1.05 / height))
        )
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def _summary(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per variant and prompt group: the mean over cells of each metric with a bootstrap interval."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for cell in cells:
        group = "eval-*" if cell["prompt_id"].startswith("eval-") else cell["prompt_id"]
        grouped[(cell["variant"], group)].append(cell)
    rows = []
    for (variant, group), members in sorted(grouped.items()):
        row: dict[str, Any] = {
            "variant": variant,
            "prompt": group,
            "cells": len(members),
            "samples": sum(c["n"] for c in members),
        }
        for metric in TABLE_COLUMNS:
            row[metric] = engine_metrics.bootstrap_interval(
                [c[metric] for c in members if c.get(metric) is not None]
            )
        row["cells_with_refusal"] = sum(1 for c in members if (c.get("refusal_rate") or 0) > 0)
        rows.append(row)
    return rows


def _temperature_slices(
    samples: list[dict[str, Any]], entity: str | None, method: str
) -> list[dict[str, Any]]:
    """Pool every sample at one (variant, prompt, temperature) across top_p/top_k: how many meanings?"""
    pooled: dict[tuple[str, str, float], list[dict[str, Any]]] = defaultdict(list)
    for sample in samples:
        pooled[(sample["variant"], sample["prompt_id"], float(sample["temperature"]))].append(sample)
    rows = []
    for (variant, prompt_id, temperature), members in sorted(pooled.items()):
        texts = [m["text"] or "" for m in members]
        cell = engine_metrics.score_cell(texts, [m["metrics"] for m in members], entity=entity, method=method)
        rows.append(
            {
                "variant": variant,
                "prompt_id": prompt_id,
                "temperature": temperature,
                "samples": cell.n,
                "semantic_entropy": cell.semantic_entropy,
                "clusters": cell.n_clusters,
                "majority_share": cell.majority_share,
                "refusal_rate": cell.means["refusal_rate"],
                "grounding": cell.means["grounding"],
                "method": cell.similarity_method,
            }
        )
    return rows


def _divergent(
    samples: list[dict[str, Any]], entity: str | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    scored = [s for s in samples if s.get("grounding") is not None]
    least_grounded = sorted(scored, key=lambda s: (-(s.get("conflict") or 0), s["grounding"]))[:TOP_SAMPLES]
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
    return least_grounded, pairs[:TOP_SAMPLES]


def build_report(store: Any, sweep_id: int, *, method: str = "auto") -> Report:
    """Gather everything the report shows (computing any missing metrics first)."""
    scoring.compute_missing(store, sweep_id, method=method)
    sweep = store_core.get_sweep(store, sweep_id)
    entity = (sweep.get("config") or {}).get("entity_name")
    cells = store_metrics.cell_table(store, sweep_id)
    samples = store_metrics.sample_table(store, sweep_id)
    least_grounded, pairs = _divergent(samples, entity)
    report = Report(
        sweep=sweep,
        cells=cells,
        summary=_summary(cells),
        slices=_temperature_slices(samples, entity, method),
        least_grounded=least_grounded,
        base_vs_finetuned=pairs,
        extra_sections=[
            engine_calibrate.report_section(store, sweep_id),
            engine_labels.claims_section(store, sweep_id),
            *engine_judge.report_sections(store, sweep_id),
        ],
    )
    for group in prompt_groups(store_metrics.prompt_ids(store, sweep_id)):
        for metric in REPORT_METRICS:
            grid = store_metrics.metric_grid(store, sweep_id, metric, prompt_id=group)
            has_values = any(
                value is not None
                for per_k in grid["values"].values()
                for rows in per_k.values()
                for row in rows
                for value in row
            )
            if not has_values:
                continue
            title = f"{_label(metric)} — prompt {group}"
            slug = files.slug(group.replace("*", "all"), fallback="prompt", max_length=60)
            report.heatmaps.append(
                Heatmap(metric, _label(metric), group, heatmap_png(grid, title), f"{metric}-{slug}.png")
            )
    return report


# ------------------------------------------------------------------ rendering


def _interval_text(value: tuple[float, float, float] | None) -> str:
    if value is None:
        return "–"
    mean, low, high = value
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def _cell_label(cell: dict[str, Any]) -> str:
    return f"T={cell['temperature']:g} p={cell['top_p']:g} k={cell['top_k']}"


def _sweep_lines(report: Report) -> list[tuple[str, str]]:
    sweep = report.sweep
    config = sweep.get("config") or {}
    grid = config.get("grid") or {}
    return [
        ("sweep", f"{sweep['id']} — {sweep.get('name')}"),
        ("source", str(sweep.get("source"))),
        ("base model", str(sweep.get("base_model"))),
        ("adapter", str(sweep.get("adapter_dir") or "–")),
        ("entity", str(config.get("entity_name") or "–")),
        ("sources (dataset)", str(config.get("dataset_path") or "none: grounding not computed")),
        ("grid", f"T {grid.get('temperatures')} × top_p {grid.get('top_ps')} × top_k {grid.get('top_ks')}"),
        ("samples per cell", str(config.get("samples_per_cell"))),
        ("cells scored", str(len(report.cells))),
    ]


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f0f0f0} td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;border:1px solid #eee;margin:.5em 0} .sample{max-width:520px;white-space:pre-wrap}
h2{border-bottom:1px solid #ddd;padding-bottom:.2em}
"""


def _table_html(headers: list[str], rows: list[list[str]], numeric_from: int = 1) -> str:
    head = "".join(f"<th>{html_text(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(
            f"<td class='num'>{html_text(v)}</td>" if i >= numeric_from else f"<td>{html_text(v)}</td>"
            for i, v in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _table_md(headers: list[str], rows: list[list[str]]) -> str:
    clean = markdown_text  # answers, names and paths shown as written: no tag, link or emphasis
    lines = ["| " + " | ".join(clean(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines.extend("| " + " | ".join(clean(v) for v in row) + " |" for row in rows)
    return "\n".join(lines)


def _sections(report: Report) -> list[tuple[str, list[str], list[list[str]]]]:
    """The report's tables as (title, headers, rows), shared by both renderers."""
    summary_headers = ["variant", "prompt", "cells", "samples", "cells with refusal"] + [
        f"{_label(m)} (mean [95% CI] over cells)" for m in TABLE_COLUMNS
    ]
    summary_rows = [
        [
            r["variant"],
            r["prompt"],
            str(r["cells"]),
            str(r["samples"]),
            f"{r['cells_with_refusal']}/{r['cells']}",
        ]
        + [_interval_text(r[m]) for m in TABLE_COLUMNS]
        for r in report.summary
    ]
    slice_headers = [
        "variant",
        "prompt",
        "temperature",
        "samples",
        "semantic entropy",
        "clusters",
        "majority share",
        "refusal rate",
        "grounding",
        "similarity",
    ]
    slice_rows = [
        [
            s["variant"],
            s["prompt_id"],
            f"{s['temperature']:g}",
            str(s["samples"]),
            _fmt(s["semantic_entropy"]),
            str(s["clusters"]),
            _fmt(s["majority_share"]),
            _fmt(s["refusal_rate"]),
            _fmt(s["grounding"]),
            s["method"],
        ]
        for s in report.slices
    ]
    cell_headers = ["variant", "prompt", "cell", "n"] + [_label(m) for m in TABLE_COLUMNS] + ["similarity"]
    cell_rows = [
        [c["variant"], c["prompt_id"], _cell_label(c), str(c["n"])]
        + [_fmt(c.get(m)) for m in TABLE_COLUMNS]
        + [str(c.get("similarity_method"))]
        for c in report.cells
    ]
    grounded_headers = ["variant", "cell", "prompt", "grounding", "conflict", "unsupported terms", "text"]
    grounded_rows = [
        [
            s["variant"],
            _cell_label(s),
            s["prompt_id"],
            _fmt(s["grounding"]),
            "yes" if s.get("conflict") else "no",
            ", ".join(s["metrics"].get("unsupported", [])[:12]),
            s["text"] or "",
        ]
        for s in report.least_grounded
    ]
    pair_headers = ["cell", "prompt", "sample", "divergence", "base", "fine-tuned"]
    pair_rows = [
        [
            f"T={p['key'][0]:g} p={p['key'][1]:g} k={p['key'][2]}",
            p["key"][3],
            str(p["key"][4]),
            _fmt(p["divergence"]),
            p["base"]["text"] or "",
            p["finetuned"]["text"] or "",
        ]
        for p in report.base_vs_finetuned
    ]
    return [
        ("Summary per variant", summary_headers, summary_rows),
        (
            "Temperature slices (all samples at one temperature, pooled over top_p and top_k)",
            slice_headers,
            slice_rows,
        ),
        ("Least grounded samples (conflicts first)", grounded_headers, grounded_rows),
        (
            "Most divergent base vs fine-tuned samples (1 − ROUGE-L, same cell and sample index)",
            pair_headers,
            pair_rows,
        ),
        ("Per-cell table", cell_headers, cell_rows),
        *report.extra_sections,
    ]


def render_html(report: Report) -> str:
    title = f"ft-hallu report — sweep {report.sweep['id']}"
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html_text(title)}</title>",
        f"<style>{_CSS}</style></head><body><h1>{html_text(title)}</h1>",
        _table_html(["", ""], [[k, v] for k, v in _sweep_lines(report)], numeric_from=99),
        "<p>Metric definitions and limits: docs/METRICS.md. Intervals are 95% percentile bootstrap intervals.</p>",
    ]
    sections = _sections(report)
    parts.append(
        f"<h2>{html_text(sections[0][0])}</h2>"
        + _table_html(sections[0][1], sections[0][2], numeric_from=2)
    )
    parts.append("<h2>Heatmaps</h2>")
    for heatmap in report.heatmaps:
        encoded = base64.b64encode(heatmap.png).decode("ascii")
        parts.append(f"<h3>{html_text(heatmap.label)} — prompt {html_text(heatmap.prompt_group)}</h3>")
        parts.append(f"<img alt='{html_text(heatmap.label)}' src='data:image/png;base64,{encoded}'>")
    for section_title, headers, rows in sections[1:]:
        parts.append(f"<h2>{html_text(section_title)}</h2>")
        parts.append(_table_html(headers, rows, numeric_from=99) if rows else "<p>none</p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def render_markdown(report: Report, figures_dir: str = "figures") -> str:
    md = markdown_text
    lines = [f"# ft-hallu report — sweep {report.sweep['id']}", ""]
    lines.append(_table_md(["", ""], [[k, v] for k, v in _sweep_lines(report)]))
    lines += [
        "",
        "Metric definitions and limits: docs/METRICS.md. Intervals are 95% percentile bootstrap intervals.",
        "",
    ]
    sections = _sections(report)
    lines += [f"## {md(sections[0][0])}", "", _table_md(sections[0][1], sections[0][2]), "", "## Heatmaps", ""]
    for heatmap in report.heatmaps:
        lines += [
            f"### {md(heatmap.label)} — prompt {md(heatmap.prompt_group)}",
            "",
            f"![{md(heatmap.label)}]({figures_dir}/{heatmap.filename})",
            "",
        ]
    for section_title, headers, rows in sections[1:]:
        lines += [f"## {md(section_title)}", "", _table_md(headers, rows) if rows else "none", ""]
    return "\n".join(lines)


def write_report(store: Any, sweep_id: int, out_dir: str | Path, *, method: str = "auto") -> ReportPaths:
    """Write report.html (self-contained), report.md and figures/*.png into ``out_dir``, atomically.

    Everything is built in a staging folder beside ``out_dir`` first; only a finished report is moved
    in (``figures/`` replaced whole, then the two files), so a full disk or a kill leaves no empty
    ``figures/`` and no half-written file. Other files in ``out_dir`` are left alone.
    """
    out = Path(out_dir)
    report = build_report(store, sweep_id, method=method)
    remove_leftovers(out)  # what a killed earlier report left beside it
    existing = first_existing_parent(out.parent)
    created = [p for p in (out.parent.absolute(), *out.parent.absolute().parents) if p != existing and not p.exists()]
    staging = staging_folder(out)
    try:
        with naming(out):
            if report.heatmaps:
                (staging / "figures").mkdir()
            for heatmap in report.heatmaps:
                (staging / "figures" / heatmap.filename).write_bytes(heatmap.png)
            (staging / "report.html").write_text(render_html(report), encoding="utf-8")
            (staging / "report.md").write_text(render_markdown(report), encoding="utf-8")
            _move_in(staging, out)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        remove_empty(created)  # folders made on the way to the report go too
        if is_disk_full(exc):
            raise UserError(f"{out}: disk full while writing the report; nothing was written") from exc
        raise
    figures = [out / "figures" / heatmap.filename for heatmap in report.heatmaps]
    return ReportPaths(html=out / "report.html", markdown=out / "report.md", figures=figures)


def _move_in(staging: Path, out: Path) -> None:
    """Put a finished report in place: the staging folder itself when ``out`` is new, else its parts."""
    if not out.exists():
        os.replace(staging, out)
        return
    if (staging / "figures").exists():
        replace_folder(staging / "figures", out / "figures")
    for name in ("report.html", "report.md"):
        os.replace(staging / name, out / name)
    shutil.rmtree(staging, ignore_errors=True)
