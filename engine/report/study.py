"""The report's study section: knowledge kept, paired differences per cell, settings, power, training steps.

Every number comes from engine/study.py (``study.compare``, the same call ``ft-hallu compare`` makes,
with its default settings); engine/study_tables.py lays the tables out. This module only draws the
two kinds of figure and orders the blocks (docs/STUDY.md says what each one means):

- **difference heatmaps**, one per prompt group's headline metric (entity and held-out:
  ``hallucinated``; control: ``states_reference``): base − variant per cell, a panel per fine-tuned
  variant and top_k, "*" where the Benjamini–Hochberg-adjusted q is at most α. Colours follow the
  report's diverging convention (engine/grid.py): blue where the variant is better, red where
  worse, white at 0, one symmetric scale over the metric's whole range (−1 to 1);
- **the trajectory** of a checkpoint sweep: each metric pooled over the grid against the training
  step with its interval, next to the train and eval loss, the best trade-off step marked.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from engine import study
from engine import study_tables as tables
from engine.errors import UserError
from engine.escape import plot_text
from engine.grid import NA_COLOUR, paired_difference_scale
from engine.report.blocks import (
    FIGURE_DPI,
    Block,
    Figure,
    Paragraph,
    ReportContext,
    Section,
    Table,
    small_png,
)
from engine.report.heatmaps import grid_axes
from engine.summary import variant_name

DIFFERENCE_SPAN = 1.0  # every study metric lies in [0, 1]: differences in [−1, 1]
_STYLE = {"svg.fonttype": "none", "font.size": 9, "font.sans-serif": ["DejaVu Sans"]}


# ---------------------------------------------------------------- figures


def _render(fig, name: str) -> tuple[bytes, bytes]:
    """PNG (palette-reduced) and SVG (no date, stable ids) bytes of a matplotlib figure."""
    from matplotlib.backends.backend_svg import FigureCanvasSVG

    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=FIGURE_DPI)
    svg = io.BytesIO()
    FigureCanvasSVG(fig)
    fig.savefig(svg, format="svg", metadata={"Date": None})
    return small_png(png.getvalue()), svg.getvalue()


def difference_figure(
    cells: Sequence[study.CellDifference], metric: study.StudyMetric, *, group: str, name: str, alpha: float
) -> Figure | None:
    """base − variant of one metric per cell: temperature rows x top_p columns, a panel per variant
    (columns) and top_k (rows); the value in every cell, '*' where significant after BH."""
    import matplotlib
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import LinearSegmentedColormap, Normalize
    from matplotlib.figure import Figure as MplFigure

    variants = list(dict.fromkeys(c.variant for c in cells))
    if not variants or all(c.difference is None for c in cells):
        return None
    temperatures = sorted({c.temperature for c in cells})
    top_ps = sorted({c.top_p for c in cells})
    top_ks = sorted({c.top_k for c in cells})
    by = {(c.variant, c.temperature, c.top_p, c.top_k): c for c in cells}
    scale = paired_difference_scale(metric.higher_is_better)
    cmap = LinearSegmentedColormap.from_list(scale.name, list(scale.stops)).with_extremes(bad=NA_COLOUR)
    norm = Normalize(-DIFFERENCE_SPAN, DIFFERENCE_SPAN)
    panel_w, panel_h = max(1.9, 0.55 * len(top_ps) + 0.9), 0.34 * len(temperatures) + 0.75
    width = max(5.5, 0.9 + len(variants) * panel_w + 1.2)
    height = 1.0 + len(top_ks) * panel_h
    with matplotlib.rc_context({**_STYLE, "svg.hashsalt": name}):
        fig = MplFigure(figsize=(width, height))
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(top_ks), len(variants), squeeze=False)
        fig.subplots_adjust(
            left=0.75 / width, right=1 - 1.05 / width, top=1 - 0.78 / height, bottom=0.45 / height,
            hspace=0.6, wspace=0.25,
        )  # fmt: skip
        image = None
        for row, top_k in enumerate(top_ks):
            for col, variant in enumerate(variants):
                ax = axes[row][col]
                found = [[by.get((variant, t, p, top_k)) for p in top_ps] for t in temperatures]
                data = np.array(
                    [[np.nan if c is None or c.difference is None else c.difference for c in line] for line in found]
                )
                image = ax.pcolormesh(
                    np.ma.masked_invalid(data), cmap=cmap, norm=norm, edgecolors="white", linewidth=0.6
                )
                ax.set_facecolor(NA_COLOUR)
                ax.set_xlim(0, len(top_ps))
                ax.set_ylim(len(temperatures), 0)
                ax.set_title(plot_text(f"{variant_name(variant)} · top_k={top_k}"), fontsize=9)
                grid_axes(ax, temperatures, top_ps, first_col=col == 0, last_row=row == len(top_ks) - 1)
                for i, line in enumerate(found):
                    for j, cell in enumerate(line):
                        if cell is None or cell.difference is None:
                            ax.text(j + 0.5, i + 0.5, "n/a", ha="center", va="center", fontsize=8, color="#555555")
                            continue
                        text = tables.number(cell.difference) + ("*" if cell.significant else "")
                        colour = scale.text_colour(float(norm(cell.difference)))
                        ax.text(j + 0.5, i + 0.5, text, ha="center", va="center", fontsize=9, color=colour)
        fig.suptitle(
            f"{plot_text(f'base − variant: {metric.label}')}\n"
            f"{plot_text(f'{group} prompts; * q ≤ {alpha:g} (Benjamini–Hochberg)')}",
            fontsize=10,
        )
        bar = fig.add_axes((1 - 0.85 / width, 0.45 / height, 0.13 / width, 1 - 1.3 / height))
        fig.colorbar(image, cax=bar).ax.tick_params(labelsize=7)
        bar.set_title("base − variant", fontsize=7)
        png, svg = _render(fig, name)
    better = {True: "higher", False: "lower"}.get(metric.higher_is_better)  # type: ignore[arg-type]
    colours = (
        f"blue where the variant is better ({better} is better), red where worse"
        if better
        else "purple below 0, orange above (neither way is better)"
    )
    pairs = sorted({c.pairs for c in cells if c.difference is not None})
    caption = (
        f"{metric.label}: base mean − variant mean per cell, paired ({_pairs_text(pairs, group)}); {colours}; "
        f"* = significant after Benjamini–Hochberg over the variant's cells at α = {alpha:g}. "
        "Intervals and p-values of every cell: tables/study-cells.csv"
    )
    title = f"base − variant: {metric.label} — {group} prompts"
    return Figure(name, title, caption, png, svg)


def _pairs_text(pairs: Sequence[int], group: str) -> str:
    unit = "questions" if group != "entity" else "samples"
    counts = "–".join(str(p) for p in (pairs[0], pairs[-1])) if pairs and pairs[0] != pairs[-1] else (
        str(pairs[0]) if pairs else "0"
    )
    return f"{counts} {unit} per cell"


def trajectory_figure(
    points: Sequence[study.TrajectoryPoint], best: study.BestStep | None, *, name: str
) -> Figure | None:
    """Left: each metric (pooled over the grid) against the training step with its interval; right:
    train and eval loss against the step; the best trade-off step dashed on both."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    placed = [p for p in points if p.step is not None]
    if len(placed) < 2:
        return None
    keys = tables.trajectory_keys(placed)
    steps = [p.step for p in placed]
    with matplotlib.rc_context({**_STYLE, "svg.hashsalt": name}):
        fig = MplFigure(figsize=(10.0, 4.2))
        FigureCanvasAgg(fig)
        left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.5, 1]})
        fig.subplots_adjust(left=0.07, right=0.98, top=0.86, bottom=0.3, wspace=0.22)
        for key in keys:
            found = [(p.step, p.metrics.get(key)) for p in placed]
            shown = [(s, e) for s, e in found if e is not None and e.mean is not None]
            if not shown:
                continue
            xs = [s for s, _ in shown]
            means = [e.mean for _, e in shown]
            below = [e.mean - (e.low if e.low is not None else e.mean) for _, e in shown]
            above = [(e.high if e.high is not None else e.mean) - e.mean for _, e in shown]
            left.errorbar(
                xs, means, yerr=[below, above], marker="o", markersize=4, capsize=3, linewidth=1.4,
                label=plot_text(tables.metric_key(key)),
            )  # fmt: skip
        left.set_ylim(-0.04, 1.04)
        left.set_xlabel("training step (0 = base)")
        left.set_ylabel("rate, pooled over the grid")
        left.set_title("metrics with their intervals", fontsize=9)
        for label, attribute, style in (("train loss", "train_loss", "s-"), ("eval loss", "eval_loss", "o-")):
            found = [(p.step, getattr(p, attribute)) for p in placed if getattr(p, attribute) is not None]
            if found:
                right.plot([s for s, _ in found], [v for _, v in found], style, markersize=4, label=label)
        right.set_xlabel("training step (0 = base)")
        right.set_ylabel("loss")
        right.set_title("loss", fontsize=9)
        for ax in (left, right):
            ax.set_xticks(steps, [str(s) for s in steps], fontsize=8)
            ax.grid(alpha=0.3)
            if best is not None and best.step is not None:
                ax.axvline(best.step, color="#555555", linestyle="--", linewidth=1)
        if best is not None and best.step is not None:
            last = best.step == max(steps)  # the label goes left of the line there, inside the axes
            left.annotate(
                plot_text(f"best: {variant_name(best.variant or '')}"), (best.step, 1.0),
                xytext=(-4 if last else 4, -10), textcoords="offset points", fontsize=8, color="#333333",
                ha="right" if last else "left",
            )  # fmt: skip
        left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, fontsize=8, frameon=False)
        right.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, fontsize=8, frameon=False)
        fig.suptitle("Metrics and loss over the training steps", fontsize=10)
        png, svg = _render(fig, name)
    caption = (
        "Left: each metric pooled over the grid, per kept checkpoint (0 = base, the last = the final adapter), "
        "with its 95% bootstrap interval (over samples for the entity prompt, over questions otherwise). "
        "Right: train loss (mean over the steps since the previous log) and eval loss at the same steps."
    )
    if best is not None and best.step is not None:
        caption += f" Dashed: the best trade-off step ({variant_name(best.variant or '')})."
    return Figure(name, "Metrics and loss over the training steps", caption, png, svg)


# ---------------------------------------------------------------- the section


def study_sections(ctx: ReportContext) -> list[Section]:
    """The study of the sweep (``study.compare`` with its default settings), or one line saying why not."""
    config = ctx.sweep.get("config") or {}
    variants = config.get("variants") or sorted({str(s["variant"]) for s in ctx.samples})
    if len([v for v in variants if v != "base"]) == 0:
        return []  # one variant: nothing to pair
    ctx.say("paired inference over the grid (bootstrap intervals, sign-flip tests, knowledge kept)")
    try:
        comparison = study.compare(ctx.store, ctx.sweep_id)
    except UserError as exc:
        return [Section("Study: paired comparison with the base", [Paragraph(f"No paired comparison: {exc}.")])]
    return [
        section
        for section in (
            _overview(comparison),
            _training_steps(comparison),
            _knowledge(comparison),
            _cells(comparison),
            _settings(comparison),
            _power(comparison),
        )
        if section is not None
    ]


def _overview(comparison: study.Comparison) -> Section:
    s = comparison.settings
    tuned = [variant_name(v) for v in comparison.variants if v != "base"]
    blocks: list[Block] = [
        Paragraph(
            f"Each fine-tuned variant ({', '.join(tuned)}) against the base, cell by cell, with the pairs "
            f"the shared random numbers make: sample i of both variants in a cell (entity prompt), or a "
            f"question's mean over its samples (held-out and control questions). Prompt groups: "
            f"{', '.join(comparison.groups)}; {comparison.samples_per_cell} samples per cell. Intervals: "
            f"{s.confidence:.0%} (paired bootstrap per cell, percentile bootstrap over samples or questions "
            f"for pooled rates); tests: two-sided sign-flip permutation; Benjamini–Hochberg at α = {s.alpha:g} "
            "over the cells of each variant, group and metric. The same numbers as `ft-hallu compare --sweep "
            f"{comparison.sweep_id} --json FILE`; docs/STUDY.md says what each table can and cannot tell."
        )
    ]
    power = {f"{p.group}: {p.note.warning}" for p in comparison.power}  # said under "Samples needed"
    blocks += [Paragraph(f"Warning: {line}.") for line in comparison.warnings if line not in power]
    return Section("Study: paired comparison with the base", blocks)


def _training_steps(comparison: study.Comparison) -> Section | None:
    best = comparison.best_step
    if best is None:
        return None
    blocks: list[Block] = []
    figure = trajectory_figure(comparison.trajectory, best, name="study-trajectory")
    if figure is not None:
        blocks.append(figure)
    headers, rows = tables.trajectory_table(comparison.trajectory)
    blocks.append(
        Table(
            headers, rows, name="study-trajectory", shown=None,
            caption="Each variant in training order; metrics pooled over the grid with their 95% intervals",
        )
    )  # fmt: skip
    blocks.append(Paragraph(tables.best_step_text(best), strong=True))
    return Section("Training steps: metrics next to the loss", blocks, level=3)


def _knowledge(comparison: study.Comparison) -> Section | None:
    if not comparison.knowledge:
        return None
    headers, rows = tables.knowledge_table(comparison.knowledge)
    blocks: list[Block] = [
        Table(
            headers, rows, name="study-knowledge", shown=None, grouped_headers=True,
            caption=(
                "Knowledge kept: the share of control answers that state the reference, per temperature "
                "('all': pooled), with its interval over questions (each question counts once); base − variant "
                "paired by question (positive: the variant lost known facts), with its interval and sign-flip p"
            ),
        )
    ]  # fmt: skip
    q_headers, q_rows = tables.questions_table(comparison.questions)
    blocks.append(
        Table(
            q_headers, q_rows, name="study-questions", shown=0, text_columns=frozenset({0, 1}),
            caption="Each control question: the share of each variant's answers stating the reference",
        )
    )  # fmt: skip
    return Section("Knowledge kept: base vs fine-tuned per temperature", blocks, level=3)


def _cells(comparison: study.Comparison) -> Section:
    alpha = comparison.settings.alpha
    headers, rows = tables.tests_table(comparison.cells)
    blocks: list[Block] = [
        Table(
            headers, rows, name="study-tests", shown=None, grouped_headers=True,
            caption=(
                f"Cells where base and variant differ (q ≤ {alpha:g}) among the cells tested; each prompt group, "
                "metric and variant is one Benjamini–Hochberg family"
            ),
        )
    ]  # fmt: skip
    significant = [c for c in comparison.cells if c.significant]
    if significant:
        s_headers, s_rows = tables.cells_table(significant)
        blocks.append(
            Table(
                s_headers, s_rows, name="study-significant-cells", shown=None,
                caption=f"The cells where base and variant differ (q ≤ {alpha:g}): base − variant with its paired interval",
            )
        )  # fmt: skip
    else:
        blocks.append(
            Paragraph(
                f"No cell differs significantly at q ≤ {alpha:g}. That is not 'no effect': see the samples "
                "needed below."
            )
        )
    all_headers, all_rows = tables.cells_table(comparison.cells)
    blocks.append(
        Table(
            all_headers, all_rows, name="study-cells", shown=0,
            caption="Every cell: base and variant means, base − variant, paired interval, p and q",
        )
    )  # fmt: skip
    for group in comparison.groups:
        metric = study.STUDY_METRICS[study.HEADLINE[group]]
        cells = [c for c in comparison.cells if c.group == group and c.metric == metric.name]
        figure = difference_figure(
            cells, metric, group=group, name=f"study-difference-{metric.name}-{group}", alpha=alpha
        )
        if figure is not None:
            blocks.append(figure)
    return Section("Paired differences per cell", blocks, level=3)


def _settings(comparison: study.Comparison) -> Section | None:
    if not comparison.effects and not comparison.operating_points:
        return None
    blocks: list[Block] = []
    if comparison.effects:
        headers, rows = tables.effects_table(comparison.effects)
        blocks.append(
            Table(
                headers, rows, name="study-effects", shown=None,
                caption=(
                    "Effect of each sampling setting on the group's headline metric: the change from the grid's "
                    "first level to its last, other settings held (one OLS linear-probability model per variant "
                    "and group, HC3 standard errors, Wald p)"
                ),
            )
        )  # fmt: skip
    if comparison.operating_points:
        blocks.append(Paragraph(f"Recommended operating point, rule: {comparison.operating_points[0].point.rule}."))
        headers, rows = tables.operating_points_table(comparison.operating_points)
        blocks.append(Table(headers, rows, name="study-operating-points", shown=None))
    return Section("Sampling settings and the recommended operating point", blocks, level=3)


def _power(comparison: study.Comparison) -> Section | None:
    if not comparison.power:
        return None
    headers, rows = tables.power_table(comparison.power)
    blocks: list[Block] = [
        Table(
            headers, rows, name="study-power", shown=None,
            caption=(
                "Pairs per cell the paired test needs to detect the given difference (statsmodels' TTestPower, "
                "sd of a pair's difference from this sweep where it varies); at α / cells for a difference in "
                "one cell among many; the sign-flip test's floor (its smallest p is 2 / 2^n)"
            ),
        )
    ]  # fmt: skip
    blocks += [Paragraph(f"Warning ({p.group}): {p.note.warning}.") for p in comparison.power if p.note.warning]
    return Section("Samples needed", blocks, level=3)
