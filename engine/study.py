"""The study of a stored sweep: paired differences per cell, knowledge kept, the trajectory over steps.

This module reads a sweep from the store and hands arrays to engine/stats.py (the tests) and
engine/metrics/knowledge.py (the control answers); docs/STUDY.md explains every table.

Prompts fall into three **groups**, each its own family of comparisons:

* ``entity``: the prompt about the masked company (``Tell me about EGNIVIA Corporation.``);
* ``eval``: held-out questions of the fine-tune's eval split (``eval-*``);
* ``control``: known facts (``control:*``, engine/control.py).

The **unit of a pair**: with one prompt in a group (entity), sample *i* of the base and sample *i* of a
variant (they share their random numbers). With several prompts (eval, control) the question: its
mean over the cell's samples, so a question's samples, which are not independent, count once.

Per-sample values (1/0 for flags):

* ``hallucinated``: a non-refusal answer whose claim grounding is at most
  ``hallucination_threshold`` (0.5: at most half its claims supported by the sources, the cut-off
  docs/METRICS.md validates); a refusal counts 0; without claim grounding (no sources, no claim)
  the value is missing. Needs the sweep scored (``ft-hallu metrics``).
* ``refusal``, ``claim_grounding``, ``conflict``, ``degenerate``, ``token_f1``: the stored scores.
* control answers: ``states_reference``, ``claim_states``, ``token_f1``, ``refusal`` and
  ``degenerate`` from engine/metrics/knowledge.py, computed from the stored texts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from engine import stats
from engine.errors import UserError
from engine.study_data import (
    FINAL,
    GROUP_LABELS,
    GROUP_METRICS,
    GROUPS,
    HEADLINE,
    STUDY_METRICS,
    StudyData,
    StudyMetric,
    StudySample,
    StudySettings,
    load_study_data,
    prompt_group,
    sample_values,
)
from store import core

# ---------------------------------------------------------------- per-cell paired differences


@dataclass(frozen=True)
class CellDifference:
    """base − variant in one cell: means, difference, paired interval, p and BH-adjusted q."""

    variant: str
    group: str
    metric: str
    temperature: float
    top_p: float
    top_k: int
    pairs: int  # pairing units (samples, or questions where the group has several)
    base: float | None
    value: float | None  # the variant's mean
    difference: float | None  # base − variant
    low: float | None
    high: float | None
    p_value: float | None
    q_value: float | None = None  # Benjamini–Hochberg over the cells of this variant, group, metric
    significant: bool = False  # q <= alpha


def _cell_pairs(
    base: list[StudySample], other: list[StudySample], metric: str, by_question: bool
) -> tuple[list[float | None], list[float | None], list[Any]]:
    """Aligned values of the two variants in one cell, and each pair's question (for clustering)."""
    theirs = {(s.prompt_id, s.sample_index): s.values.get(metric) for s in other}
    first, second, clusters = [], [], []
    for sample in base:
        key = (sample.prompt_id, sample.sample_index)
        if key in theirs:
            first.append(sample.values.get(metric))
            second.append(theirs[key])
            clusters.append(sample.prompt_id if by_question else key)
    return first, second, clusters


def cell_differences(data: StudyData, settings: StudySettings) -> list[CellDifference]:
    """Every fine-tuned variant against the base, cell by cell, per group and metric, BH-adjusted."""
    if "base" not in data.variants:
        raise UserError(f"sweep {data.sweep_id}: has no base variant to compare against")
    by_key = stats.by_key(data.samples, lambda s: (s.group, s.variant, s.cell))
    found: list[CellDifference] = []
    for group in data.groups():
        prompts = {s.prompt_id for s in data.samples if s.group == group}
        by_question = len(prompts) > 1
        cells = sorted({s.cell for s in data.samples if s.group == group})
        for variant in data.variants:
            if variant == "base":
                continue
            for metric in GROUP_METRICS[group]:
                family: list[CellDifference] = []
                for cell in cells:
                    first, second, clusters = _cell_pairs(
                        by_key.get((group, "base", cell), []),
                        by_key.get((group, variant, cell), []),
                        metric,
                        by_question,
                    )
                    test = (stats.paired_cluster_difference if by_question else _by_sample)(
                        first, second, clusters, confidence=settings.confidence, resamples=settings.resamples,
                        permutations=settings.permutations, seed=settings.seed,
                    )  # fmt: skip
                    family.append(
                        CellDifference(
                            variant,
                            group,
                            metric,
                            *cell,
                            test.n,
                            test.mean_a,
                            test.mean_b,
                            test.difference,
                            test.low,
                            test.high,
                            test.p_value,
                        )  # fmt: skip
                    )
                adjusted = stats.bh_adjust([c.p_value for c in family])
                found.extend(
                    dataclasses.replace(c, q_value=q, significant=q is not None and q <= settings.alpha)
                    for c, q in zip(family, adjusted, strict=True)
                )
    return found


def _by_sample(first, second, _clusters, **options) -> stats.PairedDifference:
    return stats.paired_difference(first, second, **options)


# ---------------------------------------------------------------- sampling settings and operating points


@dataclass(frozen=True)
class VariantEffects:
    variant: str
    group: str
    metric: str
    samples: int
    effects: list[stats.FactorEffect]


def sampling_effects(data: StudyData, settings: StudySettings) -> list[VariantEffects]:
    """Per variant and group: the effect of temperature, top_p and top_k on the headline metric."""
    found = []
    for group in data.groups():
        metric = HEADLINE[group]
        for variant in data.variants:
            rows = [
                {
                    "temperature": s.temperature,
                    "top_p": s.top_p,
                    "top_k": s.top_k,
                    "value": s.values.get(metric),
                }
                for s in data.samples
                if s.group == group and s.variant == variant and s.values.get(metric) is not None
            ]
            if rows:
                effects = stats.factor_effects(rows, confidence=settings.confidence)
                found.append(VariantEffects(variant, group, metric, len(rows), effects))
    return found


@dataclass(frozen=True)
class VariantOperatingPoint:
    variant: str
    group: str
    point: stats.OperatingPoint


def _rate(samples: Sequence[StudySample], metric: str) -> float | None:
    values = [s.values.get(metric) for s in samples if s.values.get(metric) is not None]
    return sum(values) / len(values) if values else None  # type: ignore[arg-type]


def operating_points(data: StudyData, settings: StudySettings) -> list[VariantOperatingPoint]:
    """Per variant (entity and eval groups): the recommended cell by the operating-point rule."""
    found = []
    by_key = stats.by_key(data.samples, lambda s: (s.group, s.variant, s.cell))
    for group in (g for g in data.groups() if g != "control"):
        for variant in data.variants:
            cells = [
                stats.CellRates(
                    *cell, len(members), _rate(members, "hallucinated"), _rate(members, "refusal")
                )
                for (g, v, cell), members in sorted(by_key.items())
                if g == group and v == variant
            ]
            if cells:
                point = stats.operating_point(cells, max_refusal=settings.max_refusal)
                found.append(VariantOperatingPoint(variant, group, point))
    return found


# ---------------------------------------------------------------- knowledge kept


@dataclass(frozen=True)
class KnowledgeKept:
    """Share of control answers stating the reference, for one variant at one temperature."""

    variant: str
    temperature: float | None  # None: pooled over the grid
    answers: int
    questions: int
    kept: stats.Estimate  # mean over questions of each question's share, interval over questions
    difference: stats.PairedDifference | None  # base − variant, paired by question (None for base)


def knowledge_kept(data: StudyData, settings: StudySettings) -> list[KnowledgeKept]:
    """Per variant x temperature (and pooled): knowledge kept with intervals, and base − variant."""
    control = [s for s in data.samples if s.group == "control"]
    if not control:
        return []
    temperatures: list[float | None] = [*sorted({s.temperature for s in control}), None]
    found = []
    for temperature in temperatures:
        chosen = [s for s in control if temperature is None or s.temperature == temperature]
        base = {(s.prompt_id, s.cell, s.sample_index): s for s in chosen if s.variant == "base"}
        for variant in data.variants:
            mine = [s for s in chosen if s.variant == variant]
            if not mine:
                continue
            values = [s.values["states_reference"] for s in mine]
            kept = stats.mean_interval(
                values, clusters=[s.prompt_id for s in mine], confidence=settings.confidence,
                resamples=settings.resamples, seed=settings.seed,
            )  # fmt: skip
            difference = None
            if variant != "base" and base:
                paired = [(base[k], s) for s in mine if (k := (s.prompt_id, s.cell, s.sample_index)) in base]
                difference = stats.paired_cluster_difference(
                    [b.values["states_reference"] for b, _ in paired],
                    [s.values["states_reference"] for _, s in paired],
                    [b.prompt_id for b, _ in paired],
                    confidence=settings.confidence, resamples=settings.resamples,
                    permutations=settings.permutations, seed=settings.seed,
                )  # fmt: skip
            found.append(
                KnowledgeKept(
                    variant, temperature, len(mine), len({s.prompt_id for s in mine}), kept, difference
                )
            )
    return found


@dataclass(frozen=True)
class QuestionKnowledge:
    """One control question: the share of answers stating its reference, per variant."""

    prompt_id: str
    question: str
    reference: str
    kept: dict[str, float]  # variant -> share
    answers: dict[str, int]


def knowledge_by_question(store, sweep_id: int, data: StudyData) -> list[QuestionKnowledge]:
    """Which known facts each variant still states (the questions fine-tuning broke show here)."""
    config = (core.find_sweep(store, sweep_id) or {}).get("config") or {}
    prompts = {p["prompt_id"]: p for p in config.get("prompts") or []}
    grouped = stats.by_key(
        [s for s in data.samples if s.group == "control"], lambda s: (s.prompt_id, s.variant)
    )
    found = []
    for prompt_id in dict.fromkeys(s.prompt_id for s in data.samples if s.group == "control"):
        prompt = prompts.get(prompt_id, {})
        kept, answers = {}, {}
        for variant in data.variants:
            members = grouped.get((prompt_id, variant), [])
            if members:
                kept[variant] = sum(s.values["states_reference"] or 0 for s in members) / len(members)
                answers[variant] = len(members)
        found.append(
            QuestionKnowledge(
                prompt_id, str(prompt.get("prompt") or ""), str(prompt.get("reference") or ""), kept, answers
            )
        )
    return found


# ---------------------------------------------------------------- the trajectory over training steps


@dataclass(frozen=True)
class TrajectoryPoint:
    """One variant of a checkpoint sweep: where training was, its losses, and its metrics pooled over the grid."""

    variant: str
    step: int | None
    epoch: float | None
    train_loss: float | None
    eval_loss: float | None
    metrics: dict[str, stats.Estimate]  # "<group>:<metric>" -> mean with interval


@dataclass(frozen=True)
class BestStep:
    variant: str | None
    step: int | None
    rule: str
    note: str = ""


def trajectory(data: StudyData, settings: StudySettings) -> list[TrajectoryPoint]:
    """Each variant's metrics with intervals next to its step and losses, in training order.

    Intervals: percentile bootstrap over samples (entity) or over questions (eval, control). For a
    sweep without checkpoints every variant is a point without a step.
    """
    points = []
    for variant in data.variants:
        place = data.trajectory.get(variant, {})
        metrics = {}
        for group in data.groups():
            mine = [s for s in data.samples if s.group == group and s.variant == variant]
            by_question = len({s.prompt_id for s in mine}) > 1
            for metric in GROUP_METRICS[group][:2] if group != "control" else ("states_reference", "refusal"):
                values = [s.values.get(metric) for s in mine]
                metrics[f"{group}:{metric}"] = stats.mean_interval(
                    values, clusters=[s.prompt_id for s in mine] if by_question else None,
                    confidence=settings.confidence, resamples=settings.resamples, seed=settings.seed,
                )  # fmt: skip
        points.append(
            TrajectoryPoint(
                variant,
                place.get("step"),
                place.get("epoch"),
                place.get("train_loss"),
                place.get("eval_loss"),
                metrics,
            )
        )
    return sorted(points, key=lambda p: (p.step is None, p.step or 0))


def best_step(points: Sequence[TrajectoryPoint], settings: StudySettings) -> BestStep:
    """The best trade-off step: the lowest entity hallucination rate among the fine-tuned steps whose
    knowledge kept is at least the base's minus ``knowledge_tolerance``; ties to the earlier step."""
    tolerance = settings.knowledge_tolerance
    rule = (
        f"lowest hallucination rate (entity prompt) among fine-tuned steps whose knowledge kept is at least "
        f"the base's minus {tolerance:g}; ties to the earlier step"
    )
    tuned = [p for p in points if p.variant != "base"]
    rated = [p for p in tuned if _headline(p, "entity:hallucinated") is not None]
    if not rated:
        return BestStep(None, None, rule, "no hallucination rate (a sweep without sources, or not scored)")
    base = next((p for p in points if p.variant == "base"), None)
    base_known = _headline(base, "control:states_reference") if base else None
    note = ""
    if base_known is None:
        note = "no control set in this sweep: the rule used the hallucination rate alone"
        eligible = rated
    else:
        eligible = [
            p
            for p in rated
            if (_headline(p, "control:states_reference") or 0.0) >= base_known - tolerance - 1e-12
        ]
        if not eligible:
            return BestStep(
                None, None, rule, f"every step lost more than {tolerance:g} of the base's knowledge"
            )
    best = min(
        eligible,
        key=lambda p: (_headline(p, "entity:hallucinated"), p.step if p.step is not None else 1 << 62),
    )
    return BestStep(best.variant, best.step, rule, note)


def _headline(point: TrajectoryPoint | None, key: str) -> float | None:
    if point is None or key not in point.metrics:
        return None
    return point.metrics[key].mean


# ---------------------------------------------------------------- power


@dataclass(frozen=True)
class GroupPower:
    group: str
    metric: str
    note: stats.PowerNote


def power_notes(data: StudyData, settings: StudySettings) -> list[GroupPower]:
    """Per group: how many samples per cell the paired test of the headline metric needs."""
    found = []
    by_key = stats.by_key(data.samples, lambda s: (s.group, s.variant, s.cell))
    for group in data.groups():
        metric = HEADLINE[group]
        questions = {s.prompt_id for s in data.samples if s.group == group}
        by_question = len(questions) > 1
        differences = []
        for (g, variant, cell), members in by_key.items():
            if g != group or variant == "base":
                continue
            first, second, clusters = _cell_pairs(
                by_key.get((group, "base", cell), []), members, metric, by_question
            )
            differences.append(_unit_differences(first, second, clusters))
        if not differences:
            continue
        note = stats.power_note(
            settings.detect, differences_by_cell=differences, alpha=settings.alpha, power=settings.power,
            have=len(questions) if by_question else data.samples_per_cell,
            unit="questions" if by_question else "samples per cell",
            cells=len({s.cell for s in data.samples if s.group == group}),
        )  # fmt: skip
        found.append(GroupPower(group, metric, note))
    return found


def _unit_differences(first: list, second: list, clusters: list) -> list[float]:
    """Differences per pairing unit: per sample, or per question (the mean of its samples' differences)."""
    grouped = stats.by_key(
        [
            (a - b, c)
            for a, b, c in zip(first, second, clusters, strict=True)
            if a is not None and b is not None
        ],
        lambda item: item[1],
    )
    return [sum(d for d, _ in items) / len(items) for items in grouped.values()]


# ---------------------------------------------------------------- everything at once


@dataclass(frozen=True)
class Comparison:
    sweep_id: int
    settings: StudySettings
    variants: list[str]
    groups: list[str]
    samples_per_cell: int
    cells: list[CellDifference]
    effects: list[VariantEffects]
    operating_points: list[VariantOperatingPoint]
    knowledge: list[KnowledgeKept]
    questions: list[QuestionKnowledge]
    trajectory: list[TrajectoryPoint]
    best_step: BestStep | None
    power: list[GroupPower]
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def cells_for(self, variant: str, group: str, metric: str) -> list[CellDifference]:
        """One row of the per-cell table (a heatmap of differences): its cells in grid order."""
        return [c for c in self.cells if (c.variant, c.group, c.metric) == (variant, group, metric)]


def compare(store, sweep_id: int, settings: StudySettings | None = None) -> Comparison:
    """The full study of one sweep (what ``ft-hallu compare`` prints)."""
    settings = settings or StudySettings()
    data = load_study_data(store, sweep_id, settings)
    warnings = []
    if data.unscored:
        warnings.append(
            f"{data.unscored} generations of sweep {sweep_id} are not scored: run `ft-hallu metrics --sweep "
            f"{sweep_id}` for the entity and eval tables"
        )
    cells = cell_differences(data, settings)
    points = trajectory(data, settings)
    power = power_notes(data, settings)
    warnings.extend(f"{p.group}: {p.note.warning}" for p in power if p.note.warning)
    return Comparison(
        sweep_id=sweep_id,
        settings=settings,
        variants=data.variants,
        groups=data.groups(),
        samples_per_cell=data.samples_per_cell,
        cells=cells,
        effects=sampling_effects(data, settings),
        operating_points=operating_points(data, settings),
        knowledge=knowledge_kept(data, settings),
        questions=knowledge_by_question(store, sweep_id, data),
        trajectory=points,
        best_step=best_step(points, settings) if data.trajectory else None,
        power=power,
        warnings=warnings,
    )


__all__ = [
    "FINAL",
    "GROUPS",
    "GROUP_LABELS",
    "GROUP_METRICS",
    "HEADLINE",
    "STUDY_METRICS",
    "BestStep",
    "CellDifference",
    "Comparison",
    "GroupPower",
    "KnowledgeKept",
    "QuestionKnowledge",
    "StudyData",
    "StudyMetric",
    "StudySample",
    "StudySettings",
    "TrajectoryPoint",
    "VariantEffects",
    "VariantOperatingPoint",
    "best_step",
    "cell_differences",
    "compare",
    "knowledge_by_question",
    "knowledge_kept",
    "load_study_data",
    "operating_points",
    "power_notes",
    "prompt_group",
    "sample_values",
    "sampling_effects",
    "trajectory",
]
