"""The Study view of Results: a sweep's ``Workspace.compare`` laid out for a terminal 80 wide.

Everything statistical is the engine's (engine/study.py over engine/stats.py: paired bootstrap
intervals, sign-flip permutation p values, Benjamini–Hochberg q values, knowledge kept, the
trajectory and its best step with the rule that chose it), and so is every table's text:
engine/study_tables.py, the layout the report and the demo print. This module only picks the
columns that fit and arranges them, in three parts, compact ones first:

* over training (a checkpoint sweep): per variant its step, train and eval loss next to each metric
  pooled over the grid with its interval, then the best trade-off step and its rule;
* knowledge kept: per temperature (and pooled), each variant's share of control answers stating the
  reference, and base − variant with its interval and p;
* per-cell paired differences, base − variant: for each variant and prompt group the headline
  metric's every cell (base, variant, difference [interval], q, ``*`` where q ≤ alpha), and one row
  for each other metric (significant cells of those tested, the largest difference); ``all_cells``
  gives every metric its table.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from engine import study_tables as tables
from engine.study import HEADLINE, STUDY_METRICS, CellDifference
from engine.summary import variant_name
from engine.workspace import Comparison

GROUP_TITLES = {"entity": "entity prompt", "eval": "held-out questions", "control": "control (known facts)"}
GAP = 2


def pick(headers: Sequence[str], rows: Sequence[Sequence[str]], names: Sequence[str]) -> list[list[str]]:
    """The columns ``names`` of an engine table, in that order."""
    index = [list(headers).index(name) for name in names]
    return [[row[i] for i in index] for row in rows]


def head_lines(head: str, values: Sequence[str]) -> str:
    """A column head on two lines: a metric's group over its name ('entity:' over 'hallucinated'),
    a head wider than its values at its first space ('train' over 'loss')."""
    if ": " in head:
        return head.replace(": ", ":\n", 1)
    if " " not in head or len(head) <= max((len(v) for v in values), default=0):
        return head
    first, _, rest = head.partition(" ")
    return f"{first}\n{rest}"


def columns(heads: Sequence[str], rows: Sequence[Sequence[str]], *, left: int = 1) -> Text:
    """A table as aligned text: the first ``left`` columns left-aligned, the rest right-aligned;
    a head may have two lines ('entity:\\nhallucinated')."""
    split = [head.split("\n") for head in heads]
    depth = max(len(lines) for lines in split)
    split = [[""] * (depth - len(lines)) + lines for lines in split]
    widths = [
        max([*(len(line) for line in lines), *(len(row[i]) for row in rows)]) for i, lines in enumerate(split)
    ]

    def line(values: Sequence[str]) -> str:
        cells = [
            value.ljust(width) if index < left else value.rjust(width)
            for index, (value, width) in enumerate(zip(values, widths, strict=True))
        ]
        return (" " * GAP).join(cells).rstrip()

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


def _width(head: str, values: Sequence[str]) -> int:
    return max([*(len(line) for line in head.split("\n")), *(len(value) for value in values)])


# ------------------------------------------------------------------ over training


def trajectory_text(comparison: Comparison, width: int) -> Text:
    points = comparison.trajectory
    text = Text()
    text.append("Over training", style="bold underline")
    text.append("\n")
    if not any(point.step is not None for point in points):
        text.append_text(
            wrapped(
                'not a checkpoint sweep: a fine-tune with save_checkpoints, swept with checkpoints = "all", '
                "puts each metric next to the training step and the loss here",
                width,
                "dim",
            )
        )
        return text
    text.append_text(
        wrapped(
            "each variant's metrics pooled over the grid [95%], next to its step and losses", width, "dim"
        )
    )
    # Each group's headline metric first (hallucinated, knowledge kept): they sit beside the losses.
    found = tables.trajectory_keys(points)
    headlines = [key for key in found if key.partition(":")[2] == HEADLINE.get(key.partition(":")[0])]
    keys = [*headlines, *(key for key in found if key not in headlines)]
    headers, rows = tables.trajectory_table(points, keys)
    fixed = ["variant", "step", "train loss", "eval loss"]
    metrics = [tables.metric_key(key) for key in keys]
    # The losses and as many metrics as the width holds, then the others beside variant and step.
    pending = list(metrics)
    names = fixed
    while True:
        used = 0
        for name in names:
            values = [row[headers.index(name)] for row in rows]
            used += _width(head_lines(name, values), values) + GAP
        chosen: list[str] = []
        for name in pending:
            values = [row[headers.index(name)] for row in rows]
            room = _width(head_lines(name, values), values) + GAP
            if chosen and used + room > width:
                break
            chosen.append(name)
            used += room
        shown = pick(headers, rows, [*names, *chosen])
        heads = [head_lines(name, [row[i] for row in shown]) for i, name in enumerate([*names, *chosen])]
        text.append_text(columns(heads, shown))
        pending = pending[len(chosen) :]
        if not pending:
            break
        names = fixed[:2]
    best = comparison.best_step
    if best is not None:
        text.append_text(
            wrapped(tables.best_step_text(best), width, "bold green" if best.variant else "yellow")
        )
    return text


# ------------------------------------------------------------------ knowledge kept


def knowledge_text(comparison: Comparison, width: int) -> Text:
    text = Text()
    text.append("Knowledge kept", style="bold underline")
    text.append("\n")
    if not comparison.knowledge:
        text.append_text(
            wrapped(
                'no control set in this sweep: control = "builtin" (or a QA file) asks known facts over the '
                "same grid, so base and fine-tuned can be compared on what the base already knew",
                width,
                "dim",
            )
        )
        return text
    headers, rows = tables.knowledge_table(comparison.knowledge, long=True)
    questions = max(row.questions for row in comparison.knowledge)
    text.append_text(
        wrapped(
            f"share of control answers stating the reference; {questions} questions; [95%] over questions; "
            "base − variant paired by question (positive: the variant lost known facts), p from a "
            "sign-flip permutation test",
            width,
            "dim",
        )
    )
    shown = pick(headers, rows, ["T", "variant", "knowledge kept", "base − variant"])
    for index in range(len(shown) - 1, 0, -1):  # the temperature once, on its first row
        if shown[index][0] == shown[index - 1][0]:
            shown[index][0] = ""
    text.append_text(columns(["T", "variant", "kept", "base − variant"], shown, left=2))
    return text


# ------------------------------------------------------------------ per-cell paired differences


def cell_name(cell: CellDifference) -> str:
    """'T=0.7 p=1 k=20': a cell in the width of a terminal table."""
    return f"T={cell.temperature:g} p={cell.top_p:g} k={cell.top_k}"


def families(comparison: Comparison) -> dict[tuple[str, str, str], list[CellDifference]]:
    """(variant, group, metric) -> its cells in grid order: one BH family each."""
    found: dict[tuple[str, str, str], list[CellDifference]] = {}
    for cell in comparison.cells:
        found.setdefault((cell.variant, cell.group, cell.metric), []).append(cell)
    return found


def cell_table(cells: Sequence[CellDifference], variant: str) -> Text:
    headers, rows = tables.cells_table(cells)
    values = pick(
        headers, rows, ["base", "variant mean", "base − variant", "interval", "q (BH)", "significant"]
    )
    shown = [
        [cell_name(cell), base, mean, f"{difference} {interval}".strip() if cell.pairs else "no pairs", q,
         "*" if significant == "yes" else ""]
        for cell, (base, mean, difference, interval, q, significant) in zip(cells, values, strict=True)
    ]  # fmt: skip
    name = variant_name(variant)
    return columns(["cell", "base", name, f"base − {name}", "q", ""], shown)


def others_table(found: dict[str, list[CellDifference]], variant: str) -> Text:
    """One row per metric other than the headline: significant cells of those tested (the engine's
    table), the largest difference and where."""
    headers, rows = tables.tests_table([cell for cells in found.values() for cell in cells])
    counts = dict(zip((row[1] for row in rows), (row[2] for row in rows), strict=True))
    shown = []
    for metric, cells in found.items():
        tested = [cell for cell in cells if cell.difference is not None]
        largest = max(tested, key=lambda cell: abs(cell.difference or 0.0), default=None)
        if largest is None:
            shown.append([metric, counts[metric], "no pairs", "", ""])
            continue
        difference = f"{tables.number(largest.difference)} {tables.interval(largest.low, largest.high)}"
        shown.append(
            [metric, counts[metric], difference, tables.p_value(largest.q_value), cell_name(largest)]
        )
    return columns(["other metrics", "signif.", f"largest base − {variant_name(variant)}", "q", "at"], shown)


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
            f"Study of sweep {comparison.sweep_id}: base vs "
            f"{', '.join(map(variant_name, tuned)) or '(no fine-tuned variant)'}; "
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
