"""The study's tables and lines as the app shows them: engine/study.py's results, formatted.

Nothing here computes a statistic: the paired differences, their intervals, p and BH-adjusted q,
knowledge kept and the trajectory all come from :mod:`engine.study` (through the Workspace).
Numbers carry the decimals their n allows (``catalog.decimals_for``); text from a dataset (a
control question) is escaped where it is rendered as Markdown.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from engine.escape import markdown_text
from engine.metrics.catalog import decimals_for
from engine.study import GROUP_LABELS, HEADLINE, STUDY_METRICS
from engine.workspace import CellDifference, Comparison, KnowledgeKept, Trajectory

ROW_SEPARATOR = "|"  # a row of the per-cell table: "variant|group|metric"
ROWS_COLUMNS = ("variant", "prompts", "metric", "cells tested", "significant", "largest difference")
CELL_COLUMNS = (
    "T",
    "top_p",
    "top_k",
    "pairs",
    "base",
    "variant",
    "base − variant",
    "p",
    "q (BH)",
    "significant",
)


def metric_label(metric: str) -> str:
    found = STUDY_METRICS.get(metric)
    return found.label if found else metric


def group_label(group: str) -> str:
    return GROUP_LABELS.get(group, group)


def _decimals(n: int) -> int:
    return min(decimals_for(max(n, 1)), 2)


def share(value: float | None, n: int) -> str:
    return "–" if value is None else f"{value:.{_decimals(n)}f}"


def signed(value: float | None, n: int) -> str:
    return "–" if value is None else f"{value:+.{_decimals(n)}f}"


def interval(low: float | None, high: float | None, n: int, *, sign: bool = False) -> str:
    if low is None or high is None:
        return ""
    form = signed if sign else share
    return f"[{form(low, n)}, {form(high, n)}]"


def p_text(value: float | None) -> str:
    """'0.004' or '<0.001' ('–' without a test)."""
    if value is None:
        return "–"
    return f"{value:.3f}" if value >= 0.001 else "<0.001"


def estimate_text(estimate: Any) -> str:
    """A mean with its interval: '0.50 [0.25, 0.75]'."""
    n = estimate.n
    return f"{share(estimate.mean, n)} {interval(estimate.low, estimate.high, n)}".strip()


def difference_text(cell: CellDifference | Any, n: int | None = None) -> str:
    """A difference with its interval: '+0.50 [+0.25, +0.75]'."""
    pairs = n if n is not None else cell.pairs
    if cell.difference is None:
        return "–"
    return f"{signed(cell.difference, pairs)} {interval(cell.low, cell.high, pairs, sign=True)}".strip()


def _where(cell: CellDifference) -> str:
    return f"T = {cell.temperature:g} · p = {cell.top_p:g} · k = {cell.top_k}"


# ---------------------------------------------------------------- per-cell paired differences


def row_key(variant: str, group: str, metric: str) -> str:
    return ROW_SEPARATOR.join((variant, group, metric))


def split_row(value: Any) -> tuple[str, str, str] | None:
    parts = str(value or "").split(ROW_SEPARATOR)
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


def row_choices(comparison: Comparison) -> tuple[list[tuple[str, str]], str | None]:
    """(label, 'variant|group|metric') for every row of the per-cell table; the default is the last
    fine-tuned variant (the final adapter) on the first group's headline metric."""
    rows = list(dict.fromkeys((c.variant, c.group, c.metric) for c in comparison.cells))
    choices = [
        (f"{variant} · {group_label(group)} · {metric_label(metric)}", row_key(variant, group, metric))
        for variant, group, metric in rows
    ]
    tuned = [v for v in comparison.variants if v != "base"]
    default = None
    if tuned and comparison.groups:
        group = comparison.groups[0]
        wanted = row_key(tuned[-1], group, HEADLINE[group])
        default = wanted if any(value == wanted for _label, value in choices) else None
    return choices, default or (choices[0][1] if choices else None)


def rows_frame(comparison: Comparison, alpha: float) -> pd.DataFrame:
    """One line per (variant, group, metric): cells tested, significant ones, the largest difference."""
    grouped: dict[tuple[str, str, str], list[CellDifference]] = {}
    for cell in comparison.cells:
        grouped.setdefault((cell.variant, cell.group, cell.metric), []).append(cell)
    records = []
    for (variant, group, metric), cells in grouped.items():
        tested = [c for c in cells if c.difference is not None]
        largest = max(tested, key=lambda c: abs(c.difference or 0.0), default=None)
        records.append(
            {
                "variant": variant,
                "prompts": group_label(group),
                "metric": metric_label(metric),
                "cells tested": f"{len(tested)} of {len(cells)}",
                "significant": f"{sum(c.significant for c in tested)} (q ≤ {alpha:g})",
                "largest difference": _largest(largest),
            }
        )
    return pd.DataFrame(records, columns=list(ROWS_COLUMNS))


def _largest(cell: CellDifference | None) -> str:
    if cell is None:
        return "no pairs with a value on both sides (not scored, no sources, or no reference)"
    if not cell.difference:
        return "none: 0 in every cell"
    return f"{_where(cell)}: {difference_text(cell)}, q {p_text(cell.q_value)}"


def cells_frame(cells: Sequence[CellDifference]) -> pd.DataFrame:
    """The cells of one row: base and variant means, base − variant with its interval, p, q."""
    records = [
        {
            "T": f"{c.temperature:g}",
            "top_p": f"{c.top_p:g}",
            "top_k": str(c.top_k),
            "pairs": c.pairs,
            "base": share(c.base, c.pairs),
            "variant": share(c.value, c.pairs),
            "base − variant": difference_text(c),
            "p": p_text(c.p_value),
            "q (BH)": p_text(c.q_value),
            "significant": "yes ★" if c.significant else "no",
        }
        for c in cells
    ]
    return pd.DataFrame(records, columns=list(CELL_COLUMNS))


def study_header(comparison: Comparison, title: str) -> str:
    """What was compared and how, in two lines, then the engine's warnings (unscored, too few samples)."""
    s = comparison.settings
    tuned = [v for v in comparison.variants if v != "base"]
    md = markdown_text
    lines = [
        f"**{md(title)}**: base vs {md(', '.join(tuned) or '(no fine-tuned variant)')} · "
        f"{comparison.samples_per_cell} samples per cell · prompts: "
        f"{md(', '.join(group_label(g) for g in comparison.groups))}",
        f"Each cell: **base − variant**, paired by sample (several questions: by question), with a "
        f"{s.confidence:.0%} paired bootstrap interval; p from a sign-flip permutation test, q adjusted "
        f"by Benjamini–Hochberg over each row's cells; ★ = significant at q ≤ {s.alpha:g}.",
    ]
    lines += [f"⚠ {md(line)}" for line in comparison.warnings]
    return "\n\n".join(lines)


def row_caption(comparison: Comparison, row: tuple[str, str, str]) -> str:
    variant, group, metric = row
    found = STUDY_METRICS.get(metric)
    way = {True: "higher is better", False: "lower is better"}.get(
        found.higher_is_better if found else None, ""
    )
    cells = comparison.cells_for(variant, group, metric)
    significant = sum(c.significant for c in cells)
    return (
        f"**base − {markdown_text(variant)}** on **{markdown_text(metric_label(metric))}** "
        f"({way}) · {markdown_text(group_label(group))} · {significant} of {len(cells)} cells significant. "
        f"Blue: {markdown_text(variant)} better; red: worse."
    )


# ---------------------------------------------------------------- knowledge kept


def knowledge_frame(rows: Sequence[KnowledgeKept], variants: Sequence[str]) -> pd.DataFrame:
    """Per temperature (then all pooled): each variant's share of control answers stating the
    reference with its interval over questions, and base − variant, paired by question."""
    temperatures = list(dict.fromkeys(r.temperature for r in rows))
    by_key = {(r.variant, r.temperature): r for r in rows}
    shown = [v for v in variants if any(r.variant == v for r in rows)]
    columns = ["T", *(f"{v} kept" for v in shown)]
    columns += [f"base − {v}" for v in shown if v != "base"]
    columns += ["questions"]
    records = []
    for temperature in temperatures:
        record: dict[str, Any] = {"T": "all (pooled)" if temperature is None else f"{temperature:g}"}
        questions = 0
        for variant in shown:
            row = by_key.get((variant, temperature))
            record[f"{variant} kept"] = estimate_text(row.kept) if row else "–"
            questions = max(questions, row.questions if row else 0)
            if variant != "base":
                change = row.difference if row else None
                record[f"base − {variant}"] = (
                    f"{difference_text(change, change.n)}, p {p_text(change.p_value)}"
                    if change is not None and change.difference is not None
                    else "–"
                )
        record["questions"] = questions
        records.append(record)
    return pd.DataFrame(records, columns=columns)


NO_CONTROL = (
    'No control set in this sweep: knowledge kept needs the known-facts questions (`control = "builtin"` '
    "in the sweep config, or `--control builtin`)."
)


def knowledge_note(rows: Sequence[KnowledgeKept], confidence: float) -> str:
    if not rows:
        return NO_CONTROL
    return (
        "**Knowledge kept**: the share of control answers that state the reference answer, per "
        f"temperature, with a {confidence:.0%} interval over questions; base − variant is paired by "
        "question (positive: the variant lost knowledge)."
    )


# ---------------------------------------------------------------- the trajectory over training steps


TRAJECTORY_FIXED = ("variant", "step", "epoch", "train loss", "eval loss")


def trajectory_keys(trajectory: Trajectory) -> list[str]:
    return list(dict.fromkeys(key for point in trajectory.points for key in point.metrics))


def key_label(key: str) -> str:
    """'entity:hallucinated' -> 'hallucinated (claims mostly unsupported) · entity prompt'."""
    group, _, metric = key.partition(":")
    return f"{metric_label(metric)} · {group_label(group)}"


def _loss(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def trajectory_frame(trajectory: Trajectory) -> pd.DataFrame:
    keys = trajectory_keys(trajectory)
    records = [
        {
            "variant": p.variant,
            "step": "–" if p.step is None else str(p.step),
            "epoch": "–" if p.epoch is None else f"{p.epoch:.2f}",
            "train loss": _loss(p.train_loss),
            "eval loss": _loss(p.eval_loss),
            **{key_label(k): estimate_text(p.metrics[k]) if k in p.metrics else "–" for k in keys},
        }
        for p in trajectory.points
    ]
    return pd.DataFrame(records, columns=[*TRAJECTORY_FIXED, *(key_label(k) for k in keys)])


def best_step_text(trajectory: Trajectory) -> str:
    """The best trade-off step and the rule that chose it (or why there is none)."""
    best = trajectory.best
    if best is None:
        return "This sweep has no checkpoints: every variant is one point without a step."
    md = markdown_text
    chosen = (
        f"**best trade-off: {md(best.variant)} (step {best.step})**" if best.variant else "**no best step**"
    )
    note = f" · {md(best.note)}" if best.note else ""
    return f"{chosen} · rule: {md(best.rule)}{note}"


CELLS_HELP = (
    "Pick a row (variant · prompts · metric) to draw its cells. A cell without a value had no pair "
    "with a value on both sides (an unscored sweep, no sources, every answer refused)."
)
