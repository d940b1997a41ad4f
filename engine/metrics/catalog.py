"""The metric catalogue: every metric declared once, with its label, direction, range and format.

Front ends, the report, the demo and the CLI take their lists and labels from here; the store's
typed columns arrive through named migrations in store/metrics.py (tests/test_catalog.py holds
the two together). Definitions and limits are in docs/METRICS.md.

Adding a metric: compute it (a SampleMetrics field in sample.py, or a CellMetrics value in
cell.py), declare a MetricSpec in catalog_entries.py (``_sample(name, label, ...)`` or
``_cell(name, short title, label, ...)``, with ``requires=`` naming what it cannot be computed
without), and, when ``stored``, add its column in a new named migration of store/metrics.py
(``_add_metric_columns``); tests/test_catalog.py fails until both exist. Why a value is missing is
a :class:`MissingReason`, declared once in metric_spec.py with its long and short text.
A per-sample value averaged per cell is declared twice on purpose:
once as the sample metric and once as the cell metric with ``mean_of`` naming the sample one.

Modules, bottom up: metric_spec (``MetricSpec``, ``Show``, the ``MissingReason``s,
``decimals_for``), catalog_entries (``CATALOG``), and this one (lookups, the main score, the
groups), which re-exports the names of both: ``catalog.MetricSpec``, ``catalog.CATALOG`` and
``catalog.NO_SOURCES`` keep working.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.metrics.catalog_entries import CATALOG
from engine.metrics.metric_spec import (
    ALL_REFUSED,
    MISSING_REASONS,
    NO_LIVE_SOURCES,
    NO_REFERENCE,
    NO_SOURCES,
    NO_TOKEN_LOGPROBS,
    NOT_SCORED,
    REQUIREMENTS,
    UNAVAILABLE,
    UNDEFINED_AT_ONE,
    MetricKind,
    MetricSpec,
    MissingReason,
    Show,
    decimals_for,
)

# Bump when a definition changes: stored rows with an older version are recomputed.
# 2: claim_grounding over atomic claims, and claim_support_min.
METRICS_VERSION = 2


SAMPLE_METRICS: tuple[MetricSpec, ...] = tuple(s for s in CATALOG if s.kind == "sample")
CELL_METRICS: tuple[MetricSpec, ...] = tuple(s for s in CATALOG if s.kind == "cell")
_CELL_BY_NAME = {s.name: s for s in CELL_METRICS}
_SAMPLE_BY_NAME = {s.name: s for s in SAMPLE_METRICS}


def cell_metric(name: str) -> MetricSpec:
    """The per-cell metric called ``name``; KeyError naming the known ones otherwise."""
    try:
        return _CELL_BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown cell metric {name!r}; known: {', '.join(_CELL_BY_NAME)}") from None


def sample_metric(name: str) -> MetricSpec:
    """The per-generation metric called ``name``; KeyError naming the known ones otherwise."""
    try:
        return _SAMPLE_BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown sample metric {name!r}; known: {', '.join(_SAMPLE_BY_NAME)}") from None


def cell_metrics_shown(level: Show) -> tuple[str, ...]:
    """Names of the cell metrics shown at ``level`` or more prominently, in display order."""
    return tuple(s.name for s in CELL_METRICS if s.show <= level)


def undefined_at(name: str, samples: int) -> bool:
    """Whether the cell metric says nothing at ``samples`` samples (spread and clusters need two)."""
    spec = _CELL_BY_NAME.get(name)
    return spec is not None and "samples>=2" in spec.requires and samples < 2


def why_missing(
    name: str, *, every_answer_refused: bool, no_sources: MissingReason = NO_SOURCES
) -> MissingReason:
    """Why a scored cell has no value for the cell metric ``name``, from what the metric requires.

    ``no_sources`` is the reason to give when sources were never there (a sweep without a dataset,
    the live app started without ``--dataset``); with sources, a cell whose every answer refused
    has nothing to ground.
    """
    spec = _CELL_BY_NAME.get(name)
    requires = spec.requires if spec else ()
    if "reference" in requires:
        return NO_REFERENCE
    if "sources" in requires:
        return ALL_REFUSED if every_answer_refused else no_sources
    if "token_logprobs" in requires:
        return NO_TOKEN_LOGPROBS
    return UNAVAILABLE


def metric_label(name: str) -> str:
    """A cell metric's label; the name itself for anything the catalogue does not know."""
    spec = _CELL_BY_NAME.get(name)
    return spec.label if spec else name


# The main hallucination score: the one cell metric that summaries, headlines and first views open
# on (engine/summary.py). It must be the mean of a per-sample score with a direction and a bounded
# range. The weakest-claim support ranks answers best on the blind held-out set (AUROC 0.998, fine-
# tuned 0.995; docs/METRICS.md); with ``flags_below`` its summaries report the share of answers
# with an unsupported or contradicted claim: a hallucination rate.
MAIN_SCORE = "claim_support_min"


def main_score() -> MetricSpec:
    """The main hallucination score's spec (:data:`MAIN_SCORE`)."""
    return cell_metric(MAIN_SCORE)


def hallucination_side(spec: MetricSpec, value: float | None) -> float | None:
    """A directional bounded score turned so that higher means more hallucination (1 - grounding)."""
    if value is None:
        return None
    if spec.flags_below is not None:
        return 1.0 if value < spec.flags_below else 0.0
    if spec.higher_is_better is None or not spec.bounded:
        raise ValueError(f"{spec.name}: a hallucination score needs a direction and a bounded range")
    low, high = float(spec.range[0]), float(spec.range[1])  # type: ignore[arg-type]
    return low + high - value if spec.higher_is_better else value


def hallucination_label(spec: MetricSpec) -> str:
    """How the hallucination side of ``spec`` is named where it is shown: '1 − claim-level grounding'."""
    if spec.flags_below is not None:
        return "hallucination rate"
    return f"1 − {spec.label}" if spec.higher_is_better else spec.label


# The few per-cell scores front ends show first (tables, pickers, the demo's summary).
SUMMARY_METRICS: tuple[str, ...] = cell_metrics_shown(Show.SUMMARY)
# Cell column -> the sample metric averaged into it (score_cell's means).
CELL_MEANS: dict[str, str] = {s.name: s.mean_of for s in CELL_METRICS if s.mean_of}
# Cell metric -> (label, 'higher' | 'lower' | 'context'): the older view front ends still read.
METRIC_LABELS: dict[str, tuple[str, str]] = {s.name: (s.label, s.direction) for s in CELL_METRICS}


# ---------------------------------------------------------------- groups


@dataclass(frozen=True)
class MetricGroup:
    """Metrics read together, a page of the TUI's cell table: by what they compare an answer with."""

    name: str
    label: str  # what front ends print over the group


HALLUCINATION_GROUP = MetricGroup("hallucination", "hallucination: answers against the sources")
ANSWERS_GROUP = MetricGroup("answers", "the answers themselves: refusals, form, length")
AGREEMENT_GROUP = MetricGroup("agreement", "agreement and diversity between a cell's samples")
REFERENCE_GROUP = MetricGroup("reference", "against the reference answer (held-out questions)")
CONFIDENCE_GROUP = MetricGroup("confidence", "the model's own token log-probs and entropy while sampling")
# Display order: the main hallucination score's group first.
METRIC_GROUPS: tuple[MetricGroup, ...] = (
    HALLUCINATION_GROUP,
    ANSWERS_GROUP,
    AGREEMENT_GROUP,
    CONFIDENCE_GROUP,
    REFERENCE_GROUP,
)
_GROUP_BY_NAME = {group.name: group for group in METRIC_GROUPS}


def metric_group(spec: MetricSpec) -> MetricGroup:
    """A metric's group: its declared ``group``, else by what it needs. The sources -> hallucination;
    a reference answer -> reference; the cell's samples together (a cell metric that is no mean of a
    per-sample score, or needs two samples) -> agreement; the sampler's token log-probs ->
    confidence; anything else -> answers. A new metric lands in a group without being listed anywhere."""
    if spec.group:
        return _GROUP_BY_NAME[spec.group]
    if "sources" in spec.requires:
        return HALLUCINATION_GROUP
    if "reference" in spec.requires:
        return REFERENCE_GROUP
    if "samples>=2" in spec.requires or (spec.kind == "cell" and not spec.mean_of):
        return AGREEMENT_GROUP
    if "token_logprobs" in spec.requires:
        return CONFIDENCE_GROUP
    return ANSWERS_GROUP


def cell_metric_groups(level: Show = Show.HEATMAP) -> tuple[tuple[MetricGroup, tuple[str, ...]], ...]:
    """The cell metrics shown at ``level`` or more prominently, by group in :data:`METRIC_GROUPS`
    order, each group's in display order with the main score first; groups without one are left out."""
    names = cell_metrics_shown(level)
    grouped = []
    for group in METRIC_GROUPS:
        members = [name for name in names if metric_group(_CELL_BY_NAME[name]) == group]
        members.sort(key=lambda name: name != MAIN_SCORE)  # stable: the rest keep display order
        if members:
            grouped.append((group, tuple(members)))
    return tuple(grouped)


__all__ = [
    "AGREEMENT_GROUP",
    "ALL_REFUSED",
    "ANSWERS_GROUP",
    "CATALOG",
    "CELL_MEANS",
    "CELL_METRICS",
    "CONFIDENCE_GROUP",
    "HALLUCINATION_GROUP",
    "MAIN_SCORE",
    "METRICS_VERSION",
    "METRIC_GROUPS",
    "METRIC_LABELS",
    "MISSING_REASONS",
    "NOT_SCORED",
    "NO_LIVE_SOURCES",
    "NO_REFERENCE",
    "NO_SOURCES",
    "NO_TOKEN_LOGPROBS",
    "REFERENCE_GROUP",
    "REQUIREMENTS",
    "SAMPLE_METRICS",
    "SUMMARY_METRICS",
    "UNAVAILABLE",
    "UNDEFINED_AT_ONE",
    "MetricGroup",
    "MetricKind",
    "MetricSpec",
    "MissingReason",
    "Show",
    "cell_metric",
    "cell_metric_groups",
    "cell_metrics_shown",
    "decimals_for",
    "hallucination_label",
    "hallucination_side",
    "main_score",
    "metric_group",
    "metric_label",
    "sample_metric",
    "undefined_at",
    "why_missing",
]
