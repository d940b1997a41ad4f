"""The study's tables as (headers, rows) of strings: one layout for the report, the demo and any front end.

engine/study.py computes every number (with engine/stats.py); this module only lays them out, as
engine/summary.py's ``summary_table`` does for the summary. Nothing here tests or estimates.

Numbers: means and intervals with two decimals; a negative difference with a real minus sign
("−0.12"), a positive one unsigned, so a CSV cell never starts with '+' or '-' (which
engine/escape.py's ``csv_text`` would have to defuse as a spreadsheet formula); p and q with three
decimals, "<0.001" below.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine import study
from engine.stats import Estimate, PairedDifference, PowerNote
from engine.summary import variant_name

MINUS = "−"


# ---------------------------------------------------------------- numbers


def number(value: float | None, decimals: int = 2) -> str:
    """A value with a real minus sign when negative; '–' when missing."""
    if value is None:
        return "–"
    text = f"{abs(value):.{decimals}f}"
    return f"{MINUS}{text}" if value < 0 and float(text) != 0 else text


def interval(low: float | None, high: float | None, decimals: int = 2) -> str:
    """'[0.12, 0.75]' ('' when missing)."""
    if low is None or high is None:
        return ""
    return f"[{number(low, decimals)}, {number(high, decimals)}]"


def estimate(found: Estimate) -> str:
    """A mean with its interval: '0.55 [0.43, 0.67]' (or '–')."""
    if found.mean is None:
        return "–"
    shown = interval(found.low, found.high)
    return f"{number(found.mean)} {shown}".strip()


def p_value(value: float | None) -> str:
    """'0.016', '<0.001' or '–'."""
    if value is None:
        return "–"
    return f"{value:.3f}" if value >= 0.001 else "<0.001"


def difference(found: PairedDifference | None) -> str:
    """A paired difference with its interval and p: '0.14 [−0.02, 0.29] p=0.140' (or '–')."""
    if found is None or found.difference is None:
        return "–"
    return f"{number(found.difference)} {interval(found.low, found.high)} p={p_value(found.p_value)}".strip()


def cell_text(temperature: float, top_p: float, top_k: int) -> str:
    return f"T={temperature:g} top_p={top_p:g} top_k={top_k}"


def temperature_text(temperature: float | None) -> str:
    return "all" if temperature is None else f"{temperature:g}"


def metric_key(key: str) -> str:
    """A trajectory key ('entity:hallucinated') as a column title ('entity: hallucinated')."""
    group, _, metric = key.partition(":")
    return f"{group}: {metric}" if metric else key


# ---------------------------------------------------------------- knowledge kept


def knowledge_table(
    rows: Sequence[study.KnowledgeKept], *, long: bool = False
) -> tuple[list[str], list[list[str]]]:
    """Knowledge kept per temperature (and pooled, 'all'), base and each variant, with the paired
    base − variant difference (positive: the variant lost known facts).

    Wide (pages): a row per temperature; "knowledge kept · <variant>" columns, then "base − variant
    · <variant>" columns, then n (questions × answers per variant). ``long`` (terminals): a row per
    temperature and variant.
    """
    variants = list(dict.fromkeys(r.variant for r in rows))
    temperatures = list(dict.fromkeys(r.temperature for r in rows))
    by = {(r.variant, r.temperature): r for r in rows}
    if long:
        headers = ["T", "variant", "knowledge kept", "base − variant", "questions", "answers"]
        body = [
            [
                temperature_text(t),
                variant_name(r.variant),
                estimate(r.kept),
                "" if r.variant == "base" else difference(r.difference),
                str(r.questions),
                str(r.answers),
            ]
            for t in temperatures
            for r in (by.get((v, t)) for v in variants)
            if r is not None
        ]
        return headers, body
    tuned = [v for v in variants if v != "base"]
    headers = ["T"]
    headers += [f"knowledge kept · {variant_name(v)}" for v in variants]
    headers += [f"base − variant · {variant_name(v)}" for v in tuned]
    headers += ["questions", "answers per variant"]
    body = []
    for t in temperatures:
        found = [by.get((v, t)) for v in variants]
        line = [temperature_text(t)]
        line += [estimate(r.kept) if r else "–" for r in found]
        line += [difference(by[(v, t)].difference) if (v, t) in by else "–" for v in tuned]
        present = [r for r in found if r is not None]
        line += [str(max(r.questions for r in present)), str(max(r.answers for r in present))]
        body.append(line)
    return headers, body


def questions_table(questions: Sequence[study.QuestionKnowledge]) -> tuple[list[str], list[list[str]]]:
    """Every control question with each variant's share of answers stating its reference."""
    variants = list(dict.fromkeys(v for q in questions for v in q.kept))
    headers = ["question", "reference", *(variant_name(v) for v in variants), "answers per variant"]
    body = [
        [
            q.question,
            q.reference,
            *(number(q.kept.get(v)) for v in variants),
            str(max(q.answers.values(), default=0)),
        ]
        for q in questions
    ]
    return headers, body


# ---------------------------------------------------------------- paired differences per cell


def tests_table(cells: Sequence[study.CellDifference]) -> tuple[list[str], list[list[str]]]:
    """Per prompt group and metric, a column per variant (each one Benjamini–Hochberg family):
    'significant / tested' cells."""
    variants = list(dict.fromkeys(c.variant for c in cells))
    families: dict[tuple[str, str], dict[str, list[study.CellDifference]]] = {}
    for cell in cells:
        families.setdefault((cell.group, cell.metric), {}).setdefault(cell.variant, []).append(cell)
    headers = ["prompts", "metric", *(f"significant / tested · {variant_name(v)}" for v in variants)]
    body = []
    for (group, metric), by_variant in families.items():
        line = [group, metric]
        for variant in variants:
            members = by_variant.get(variant, [])
            tested = sum(c.difference is not None for c in members)
            line.append(f"{sum(c.significant for c in members)} / {tested}" if members else "–")
        body.append(line)
    return headers, body


def cells_table(cells: Sequence[study.CellDifference]) -> tuple[list[str], list[list[str]]]:
    """One row per cell: base and variant means, base − variant with its paired interval, p and q."""
    headers = [
        "variant", "prompts", "metric", "T", "top_p", "top_k", "pairs", "base", "variant mean",
        "base − variant", "interval", "p", "q (BH)", "significant",
    ]  # fmt: skip
    body = [
        [
            variant_name(c.variant),
            c.group,
            c.metric,
            f"{c.temperature:g}",
            f"{c.top_p:g}",
            str(c.top_k),
            str(c.pairs),
            number(c.base),
            number(c.value),
            number(c.difference),
            interval(c.low, c.high),
            p_value(c.p_value),
            p_value(c.q_value),
            "yes" if c.significant else "no",
        ]
        for c in cells
    ]
    return headers, body


# ---------------------------------------------------------------- sampling settings, operating points, power


def effects_table(found: Sequence[study.VariantEffects]) -> tuple[list[str], list[list[str]]]:
    """Per variant, group and sampling setting: the change of the headline metric from the grid's
    first level to its last, other settings held, with its interval and Wald p."""
    headers = ["variant", "prompts", "metric", "setting", "levels", "effect", "interval", "p", "note"]
    body = []
    for row in found:
        for e in row.effects:
            levels = f"{e.levels[0]:g} → {e.levels[-1]:g}" if len(e.levels) > 1 else ", ".join(
                f"{v:g}" for v in e.levels
            )
            body.append(
                [
                    variant_name(row.variant), row.group, row.metric, e.factor, levels, number(e.effect),
                    interval(e.low, e.high), p_value(e.p_value), e.note,
                ]
            )  # fmt: skip
    return headers, body


def operating_points_table(found: Sequence[study.VariantOperatingPoint]) -> tuple[list[str], list[list[str]]]:
    """Per variant and group: the recommended cell and its rates, or why there is none."""
    headers = ["variant", "prompts", "recommended cell", "hallucinated", "refusal", "samples", "cells within the bound"]
    body = []
    for row in found:
        cell = row.point.cell
        if cell is None:
            body.append([variant_name(row.variant), row.group, f"none: {row.point.note}", "–", "–", "–", "0"])
            continue
        body.append(
            [
                variant_name(row.variant), row.group, cell_text(cell.temperature, cell.top_p, cell.top_k),
                number(cell.hallucination), number(cell.refusal), str(cell.n), str(row.point.candidates),
            ]
        )  # fmt: skip
    return headers, body


def power_table(found: Sequence[study.GroupPower]) -> tuple[list[str], list[list[str]]]:
    """Per group: what the paired test of its headline metric needs, and what the sweep has."""
    headers = [
        "prompts", "metric", "pair unit", "this sweep has", "to detect", "sd of a pair's difference",
        "needed at α", "needed at α / cells", "fewest for p ≤ α",
    ]  # fmt: skip
    body = [[row.group, row.metric, *_power_cells(row.note)] for row in found]
    return headers, body


def _power_cells(note: PowerNote) -> list[str]:
    return [
        note.unit,
        str(note.have),
        f"{note.detect:g} (power {note.power:g}, α = {note.alpha:g})",
        f"{note.sd:.2f} ({note.sd_source})",
        str(note.needed),
        f"{note.needed_all_cells} ({note.cells} cells)",
        str(note.floor),
    ]


# ---------------------------------------------------------------- the trajectory over training steps


def trajectory_keys(points: Sequence[study.TrajectoryPoint]) -> list[str]:
    """The trajectory's metric keys in the order the points hold them ('entity:hallucinated', ...)."""
    return list(dict.fromkeys(k for p in points for k in p.metrics))


def trajectory_table(
    points: Sequence[study.TrajectoryPoint], keys: Sequence[str] | None = None
) -> tuple[list[str], list[list[str]]]:
    """Each variant in training order: step, epoch, train and eval loss, and its metrics pooled over
    the grid with their intervals (``keys``: which metrics; default every one)."""
    keys = list(keys) if keys is not None else trajectory_keys(points)
    headers = ["variant", "step", "epoch", "train loss", "eval loss", *(metric_key(k) for k in keys)]
    body = [
        [
            variant_name(p.variant),
            "–" if p.step is None else str(p.step),
            number(p.epoch),
            number(p.train_loss, 3),
            number(p.eval_loss, 3),
            *(estimate(p.metrics[k]) if k in p.metrics else "–" for k in keys),
        ]
        for p in points
    ]
    return headers, body


def best_step_text(best: study.BestStep) -> str:
    """'Best trade-off step: step-20 (step 20). Rule: ...' with the rule's note."""
    chosen = f"{variant_name(best.variant)} (step {best.step})" if best.variant else "none"
    text = f"Best trade-off step: {chosen}. Rule: {best.rule}."
    return f"{text} Note: {best.note}." if best.note else text
