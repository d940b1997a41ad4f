"""The Study view of Results: a sweep's ``Workspace.compare`` laid out for a terminal 80 wide.

Everything statistical is the engine's (engine/study.py over engine/stats.py: paired bootstrap
intervals, sign-flip permutation p values, Benjamini–Hochberg q values, knowledge kept, the
trajectory and its best step with the rule that chose it). This module only arranges those numbers
as text, in three parts, compact ones first:

* over training (a checkpoint sweep): per variant its step, train and eval loss next to each metric
  pooled over the grid with its interval, then the best trade-off step and its rule;
* knowledge kept: per temperature (and pooled), each variant's share of control answers stating the
  reference, and base − variant with its interval and p;
* per-cell paired differences, base − variant: for each variant and prompt group the headline
  metric's every cell (base, variant, difference [interval], q, ``*`` where q ≤ alpha), and one line
  for each other metric (how many cells are significant, the largest difference); ``all_cells``
  gives every metric its table.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from engine.study import HEADLINE, STUDY_METRICS, CellDifference
from engine.summary import variant_name
from engine.workspace import Comparison

GROUP_TITLES = {"entity": "entity prompt", "eval": "held-out questions", "control": "control (known facts)"}
GAP = 2


def signed(value: float | None) -> str:
    """+0.25 / −0.25 (a true minus sign, as the Results cells), '–' without a value."""
    if value is None:
        return "–"
    shown = f"{value:+.2f}"
    if float(shown) == 0:
        return "+0.00"
    return shown.replace("-", "−")


def share(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def interval(low: float | None, high: float | None, *, signs: bool) -> str:
    if low is None or high is None:
        return ""
    shown = signed if signs else share
    return f"[{shown(low)}, {shown(high)}]"


def estimate_text(mean: float | None, low: float | None, high: float | None) -> str:
    """'0.75 [0.25, 1.00]': a share with its interval."""
    return f"{share(mean)} {interval(low, high, signs=False)}".strip()


def difference_text(difference: float | None, low: float | None, high: float | None) -> str:
    """'−0.50 [−1.00, +0.00]': base − variant with its interval."""
    return f"{signed(difference)} {interval(low, high, signs=True)}".strip()


def probability(value: float | None) -> str:
    """0.012, or <0.001; '–' where no test ran (no pairs)."""
    if value is None:
        return "–"
    return f"{value:.3f}" if value >= 0.001 else "<0.001"


def cell_name(cell: CellDifference) -> str:
    return f"T={cell.temperature:g} p={cell.top_p:g} k={cell.top_k}"


def columns(heads: Sequence[str], rows: Sequence[Sequence[str]], *, left: int = 1) -> Text:
    """A table as aligned text: the first ``left`` columns left-aligned, the rest right-aligned;
    a head may have two lines ('entity\\nhallucinated')."""
    split = [head.split("\n") for head in heads]
    depth = max(len(lines) for lines in split)
    split = [[""] * (depth - len(lines)) + lines for lines in split]
    widths = [
        max([*(len(line) for line in lines), *(len(row[i]) for row in rows)]) for i, lines in enumerate(split)
    ]

    def line(values: Sequence[str]) -> str:
        return (
            (" " * GAP)
            .join(
                value.ljust(width) if index < left else value.rjust(width)
                for index, (value, width) in enumerate(zip(values, widths, strict=True))
            )
            .rstrip()
        )

    text = Text()
    for level in range(depth):
        text.append(line([lines[level] for lines in split]) + "\n", style="bold")
    for row in rows:
        text.append(line(row) + "\n")
    return text


def wrapped(text: str, width: int, style: str = "") -> Text:
    """Words wrapped at ``width`` (a long rule or warning stays readable in a narrow terminal)."""
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return Text("\n".join(lines) + "\n", style=style)


# ------------------------------------------------------------------ over training


def _width(head: str, values: Sequence[str]) -> int:
    return max([*(len(line) for line in head.split("\n")), *(len(value) for value in values)])


def metric_head(key: str) -> str:
    """'entity:hallucinated' as a two-line column head."""
    group, _, metric = key.partition(":")
    return f"{group}\n{metric}"


def trajectory_text(comparison: Comparison, width: int) -> Text:
    points = comparison.trajectory
    text = Text()
    text.append("Over training", style="bold underline")
    if not any(point.step is not None for point in points):
        text.append("\n")
        text.append_text(
            wrapped(
                'not a checkpoint sweep: a fine-tune with save_checkpoints, swept with checkpoints = "all", '
                "puts each metric next to the training step and the loss here",
                width,
                "dim",
            )
        )
        return text
    text.append("\n")
    text.append_text(
        wrapped(
            "each variant's metrics pooled over the grid [95%], next to its step and losses", width, "dim"
        )
    )
    keys = list(dict.fromkeys(key for point in points for key in point.metrics))
    fixed_heads = ["variant", "step", "train\nloss", "eval\nloss"]
    fixed = [
        [
            variant_name(point.variant),
            "–" if point.step is None else str(point.step),
            "–" if point.train_loss is None else f"{point.train_loss:.3f}",
            "–" if point.eval_loss is None else f"{point.eval_loss:.3f}",
        ]
        for point in points
    ]
    values = {
        key: [
            estimate_text(point.metrics[key].mean, point.metrics[key].low, point.metrics[key].high)
            if key in point.metrics
            else "–"
            for point in points
        ]
        for key in keys
    }
    # The losses and as many metrics as the width holds, then the others beside variant and step.
    pending = list(keys)
    heads = fixed_heads
    while True:
        rows = [row[: len(heads)] for row in fixed]
        used = sum(_width(head, [row[i] for row in rows]) + GAP for i, head in enumerate(heads))
        chosen: list[str] = []
        for key in pending:
            room = _width(metric_head(key), values[key]) + GAP
            if chosen and used + room > width:
                break
            chosen.append(key)
            used += room
        table = [row + [values[key][index] for key in chosen] for index, row in enumerate(rows)]
        text.append_text(columns([*heads, *(metric_head(key) for key in chosen)], table))
        pending = pending[len(chosen) :]
        if not pending:
            break
        heads = fixed_heads[:2]
    best = comparison.best_step
    if best is not None:
        chosen_step = f"{variant_name(best.variant)} (step {best.step})" if best.variant else "none"
        text.append("best trade-off: ", style="bold")
        text.append(chosen_step + "\n", style="bold green" if best.variant else "bold yellow")
        text.append_text(
            wrapped(f"rule: {best.rule}" + (f"; {best.note}" if best.note else ""), width, "dim")
        )
    return text


# ------------------------------------------------------------------ knowledge kept


def knowledge_text(comparison: Comparison, width: int) -> Text:
    text = Text()
    text.append("Knowledge kept", style="bold underline")
    rows_in = comparison.knowledge
    if not rows_in:
        text.append("\n")
        text.append_text(
            wrapped(
                'no control set in this sweep: control = "builtin" (or a QA file) asks known facts over the '
                "same grid, so base and fine-tuned can be compared on what the base already knew",
                width,
                "dim",
            )
        )
        return text
    questions = max(row.questions for row in rows_in)
    text.append("\n")
    text.append_text(
        wrapped(
            f"share of control answers stating the reference; {questions} questions; [95%] over questions; "
            "base − variant paired by question, p from a sign-flip permutation test",
            width,
            "dim",
        )
    )
    rows = []
    last = object()
    for row in rows_in:
        where = "all" if row.temperature is None else f"{row.temperature:g}"
        difference = row.difference
        rows.append(
            [
                where if where != last else "",
                variant_name(row.variant),
                estimate_text(row.kept.mean, row.kept.low, row.kept.high),
                difference_text(difference.difference, difference.low, difference.high)
                if difference is not None
                else "",
                probability(difference.p_value) if difference is not None else "",
            ]
        )
        last = where
    text.append_text(columns(["T", "variant", "kept", "base − variant", "p"], rows, left=2))
    return text


# ------------------------------------------------------------------ per-cell paired differences


def families(comparison: Comparison) -> dict[tuple[str, str, str], list[CellDifference]]:
    """(variant, group, metric) -> its cells in grid order: one BH family each."""
    found: dict[tuple[str, str, str], list[CellDifference]] = {}
    for cell in comparison.cells:
        found.setdefault((cell.variant, cell.group, cell.metric), []).append(cell)
    return found


def cell_table(cells: Sequence[CellDifference], variant: str) -> Text:
    rows = [
        [
            cell_name(cell),
            share(cell.base),
            share(cell.value),
            difference_text(cell.difference, cell.low, cell.high) if cell.pairs else "no pairs",
            probability(cell.q_value),
            "*" if cell.significant else "",
        ]
        for cell in cells
    ]
    name = variant_name(variant)
    return columns(["cell", "base", name, f"base − {name}", "q", ""], rows)


def others_table(found: dict[str, list[CellDifference]], variant: str) -> Text:
    """One row per metric other than the headline: significant cells, the largest difference."""
    rows = []
    for metric, cells in found.items():
        tested = [cell for cell in cells if cell.difference is not None]
        largest = max(tested, key=lambda cell: abs(cell.difference or 0.0), default=None)
        rows.append(
            [
                metric,
                f"{sum(cell.significant for cell in tested)}/{len(tested)}",
                difference_text(largest.difference, largest.low, largest.high) if largest else "no pairs",
                probability(largest.q_value) if largest else "",
                cell_name(largest) if largest else "",
            ]
        )
    return columns(["other metrics", "signif.", f"largest base − {variant_name(variant)}", "q", "at"], rows)


def tuned_in_order(comparison: Comparison) -> list[str]:
    """The variants compared with base: in a checkpoint sweep the last step first, then back in
    training; else as the sweep lists them."""
    tuned = [variant for variant in comparison.variants if variant != "base"]
    steps = {point.variant: point.step for point in comparison.trajectory if point.step is not None}
    if all(variant in steps for variant in tuned):
        return sorted(tuned, key=lambda variant: -(steps[variant] or 0))
    return tuned


def differences_text(comparison: Comparison, width: int, *, all_cells: bool = False) -> Text:
    alpha = comparison.settings.alpha
    text = Text()
    text.append("Paired differences per cell, base − variant", style="bold underline")
    text.append("\n")
    text.append_text(
        wrapped(
            f"[{comparison.settings.confidence:.0%}] paired bootstrap; q: Benjamini–Hochberg over a metric's "
            f"cells; * q ≤ {alpha:g}; pairs: samples (entity) or questions (eval, control)"
            + ("" if all_cells else "; a: every metric's cells"),
            width,
            "dim",
        )
    )
    if not tuned_in_order(comparison):
        text.append("\n")
        text.append_text(
            wrapped(
                "no fine-tuned variant in this sweep: a sweep with an adapter (or several) pairs each "
                "of its samples with the base model's",
                width,
                "yellow",
            )
        )
        return text
    by_family = families(comparison)
    for variant in tuned_in_order(comparison):
        for group in comparison.groups:
            found = {
                metric: cells for (v, g, metric), cells in by_family.items() if (v, g) == (variant, group)
            }
            if not found:
                continue
            text.append(f"\n{variant_name(variant)} · {GROUP_TITLES.get(group, group)}\n", style="bold cyan")
            shown = found if all_cells else {HEADLINE[group]: found.get(HEADLINE[group], [])}
            for metric, cells in shown.items():
                label = STUDY_METRICS[metric].label if metric in STUDY_METRICS else metric
                significant = sum(cell.significant for cell in cells)
                text.append(f"{label}: {significant} of {len(cells)} cells significant\n", style="bold")
                text.append_text(cell_table(cells, variant))
            others = {metric: cells for metric, cells in found.items() if metric not in shown}
            if others:
                text.append_text(others_table(others, variant))
    return text


# ------------------------------------------------------------------ the whole view


def study_text(comparison: Comparison, width: int = 76, *, all_cells: bool = False) -> Text:
    """The study of one sweep: a head line, the warnings, then over training, knowledge kept and the
    per-cell paired differences."""
    tuned = [variant for variant in comparison.variants if variant != "base"]
    text = Text()
    text.append_text(
        wrapped(
            f"Study of sweep {comparison.sweep_id}: base vs {', '.join(map(variant_name, tuned)) or '(no fine-tuned variant)'}; "
            f"{comparison.samples_per_cell} samples per cell; prompts: "
            + ", ".join(GROUP_TITLES.get(group, group) for group in comparison.groups),
            width,
            "bold",
        )
    )
    for warning in comparison.warnings:
        text.append_text(wrapped(f"warning: {warning}", width, "yellow"))
    for part in (trajectory_text, knowledge_text):
        text.append("\n")
        text.append_text(part(comparison, width))
    text.append("\n")
    text.append_text(differences_text(comparison, width, all_cells=all_cells))
    return text
