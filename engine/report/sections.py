"""The entity's section builders: headline, summary, examples, heatmaps, answers to read, meaning
clusters per temperature, per-cell scores, the other modules' tables and the run's metadata.

Each builder reads a :class:`~engine.report.blocks.ReportContext` and returns a section (or a
list of them); engine/report/build.py lists them in the report's order.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from engine import calibrate as engine_calibrate
from engine import judge as engine_judge
from engine import labels as engine_labels
from engine import metrics as engine_metrics
from engine import scoring
from engine import summary as engine_summary
from engine import verifier as engine_verifier
from engine.grid import MetricGrid
from engine.metrics import catalog
from engine.report.blocks import Block, Paragraph, ReportContext, Section, Table
from engine.report.display import (
    announce_embeddings,
    collapse_repeats,
    display_path,
    file_stem,
    one_line,
    temperatures_text,
    unsupported_words,
    variant_label,
)
from engine.report.heatmaps import heatmap_figure
from store import metrics as store_metrics

# Heatmaps, and the columns of the per-cell table, in the catalogue's display order.
REPORT_METRICS = catalog.cell_metrics_shown(catalog.Show.HEATMAP)
# Heatmaps drawn inside report.html (the main score's and the summary metrics'); the others are
# linked: 24 inlined PNGs made the demo's page 0.9 MB.
INLINE_METRICS = frozenset({catalog.MAIN_SCORE, *catalog.SUMMARY_METRICS})
TABLE_COLUMNS = catalog.cell_metrics_shown(catalog.Show.TABLE)
TOP_SAMPLES = 10


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
        prompts = "; ".join(f"“{one_line(p.text)}”" for p in group.prompts)
        caption = f"{group.title[0].upper()}{group.title[1:]}: {prompts}"
        blocks.append(
            Table(
                headers,
                rows,
                name=f"summary-{file_stem(group.group)}",
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
        headers = ["cell", *(variant_label(v) for v in variants)]
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
                line.append(f"{one_line(answer.text) or '(empty)'} [{score}]")
            rows.append(line)
        prompt = next((p for p in group.prompts if p.prompt_id == group.examples[0].prompt_id), None)
        caption = f"{group.title[0].upper()}{group.title[1:]}"
        if prompt:
            caption += f": “{one_line(prompt.text)}”"
            if prompt.reference:
                caption += f" (reference: “{one_line(prompt.reference)}”)"
        blocks.append(
            Table(
                headers,
                rows,
                name=f"examples-{file_stem(group.group)}",
                caption=caption,
                text_columns=frozenset(range(1, len(headers))),
                shown=None,
            )
        )
    return Section("Example answers, base next to fine-tuned", blocks)


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
            name = f"{metric}-{file_stem(group.group)}"
            figure = heatmap_figure(grid, spec, title=title, name=name, n=ctx.summary.samples_per_cell)
            blocks.append(dataclasses.replace(figure, inline=metric in INLINE_METRICS))
        prompts = "; ".join(f"“{one_line(p.text)}”" for p in group.prompts)
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
    collapsed = collapse_repeats(ranked, key=lambda s: (s["variant"], s["prompt_id"], one_line(s["text"])))
    least_rows = []
    for first, members in collapsed[:TOP_SAMPLES]:
        terms = unsupported_words(first["text"], (first.get("metrics") or {}).get("unsupported") or [])
        least_rows.append(
            [
                str(len(members)),
                variant_label(first["variant"]),
                first["prompt_id"],
                temperatures_text(members),
                f"{hallucination(first):.2f}",
                "yes" if first.get("conflict") else "no",
                ", ".join(terms[:12]),
                one_line(first["text"]),
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
        pairs, key=lambda p: (p["key"][3], one_line(p["base"]["text"]), one_line(p["finetuned"]["text"]))
    )
    pair_rows = [
        [
            str(len(members)),
            first["key"][3],
            ", ".join(sorted({f"{m['key'][0]:g}" for m in members}, key=float)),
            f"{first['divergence']:.2f}",
            one_line(first["base"]["text"]),
            one_line(first["finetuned"]["text"]),
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
    announce_embeddings(ctx.say, "to cluster each temperature's answers by meaning (one sample per cell)")
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
                variant_label(variant),
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
            variant_label(c["variant"]),
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
    """Calibration, every sample's claims, the judge's and the verifier's tables (their own modules build them)."""
    sections = []
    tables = [
        ("calibration", engine_calibrate.report_section(ctx.store, ctx.sweep_id)),
        ("profile", scoring.profile_section(ctx.store, ctx.sweep_id)),
        ("claims", engine_labels.claims_section(ctx.store, ctx.sweep_id)),
        *((f"judge-{i}", t) for i, t in enumerate(engine_judge.report_sections(ctx.store, ctx.sweep_id), 1)),
        *(
            (f"verifier-{i}", t)
            for i, t in enumerate(engine_verifier.report_sections(ctx.store, ctx.sweep_id), 1)
        ),
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
