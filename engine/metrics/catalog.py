"""The metric catalogue: every metric declared once, with its label, direction, range and format.

Front ends, the report, the demo and the CLI take their lists and labels from here; the store's
typed columns arrive through named migrations in store/metrics.py (tests/test_catalog.py holds
the two together). Definitions and limits are in docs/METRICS.md.

Adding a metric: compute it (a SampleMetrics field in sample.py, or a CellMetrics value in
cell.py), declare a MetricSpec below (``_sample(name, label, ...)`` or ``_cell(name, short title,
label, ...)``, with ``requires=`` naming what it cannot be computed without), and, when ``stored``,
add its column in a new named migration of store/metrics.py (``_add_metric_columns``);
tests/test_catalog.py fails until both exist. Why a value is missing is a :class:`MissingReason`,
declared once below with its long and short text.
A per-sample value averaged per cell is declared twice on purpose:
once as the sample metric and once as the cell metric with ``mean_of`` naming the sample one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

# Bump when a definition changes: stored rows with an older version are recomputed.
# 2: claim_grounding over atomic claims, and claim_support_min.
METRICS_VERSION = 2

MetricKind = Literal["sample", "cell"]

# What a metric may need besides the answer, as lm-evaluation-harness's metric specs say it:
# a reference answer, the source contexts, or at least two samples of the cell.
REQUIREMENTS = ("reference", "sources", "samples>=2")


@dataclass(frozen=True)
class MissingReason:
    """Why a metric has no value, declared once: a code, the long text (hovers, notes) and a short
    one (narrow table columns). Front ends pick the text by the code, never by matching the words."""

    code: str
    long: str
    short: str


NOT_SCORED = MissingReason("not_scored", "not scored yet: press Score sweep", "not scored")
NO_REFERENCE = MissingReason("no_reference", "n/a: no reference answer for this prompt", "n/a: no ref.")
NO_SOURCES = MissingReason(
    "no_sources", "n/a: no source contexts (sweep without a dataset)", "n/a: no sources"
)
NO_LIVE_SOURCES = MissingReason("no_live_sources", "n/a: start with --dataset for sources", "n/a: no sources")
ALL_REFUSED = MissingReason("all_refused", "n/a: every answer refused", "n/a: refused")
UNDEFINED_AT_ONE = MissingReason("undefined_at_one", "undefined (n = 1)", "undef. n=1")
UNAVAILABLE = MissingReason("unavailable", "n/a", "n/a")
MISSING_REASONS: dict[str, MissingReason] = {
    reason.code: reason
    for reason in (
        NOT_SCORED,
        NO_REFERENCE,
        NO_SOURCES,
        NO_LIVE_SOURCES,
        ALL_REFUSED,
        UNDEFINED_AT_ONE,
        UNAVAILABLE,
    )
}


class Show(IntEnum):
    """How prominently front ends show a metric; each level includes the levels before it."""

    SUMMARY = 1  # the few scores shown first: tables, pickers, the demo's summary
    TABLE = 2  # also in the report's per-variant and per-cell tables
    HEATMAP = 3  # also gets a heatmap in the report
    STORED = 4  # stored and selectable, not shown by default


@dataclass(frozen=True)
class MetricSpec:
    """One metric: what it is called, how to read it, and where it is shown."""

    name: str  # the key in SampleMetrics/CellMetrics and the store's column name
    label: str  # what the front ends print
    kind: MetricKind  # 'sample': one value per generation; 'cell': one per grid cell
    higher_is_better: bool | None  # None: neither (read it in context)
    range: tuple[float, float | None] = (0.0, 1.0)  # (low, high); high None when unbounded
    fmt: str = ".3f"  # format spec for one value
    description: str = ""
    column_type: type = float  # the store column's type: int for flags and counts
    stored: bool = True  # a typed store column (else only inside metrics_json)
    mean_of: str | None = None  # cell metrics: the sample metric whose mean this is
    show: Show = Show.STORED
    short: str = ""  # a column title for narrow tables (the TUI's); the name when empty
    # A score whose values below this mark an answer as hallucinated (its rate is what summaries
    # report); None: the score is read as it is.
    flags_below: float | None = None
    requires: tuple[str, ...] = ()  # of REQUIREMENTS: without it the value is missing (or undefined)
    group: str = ""  # of METRIC_GROUPS; empty: derived from what it requires (see metric_group)

    def __post_init__(self) -> None:
        unknown = [r for r in self.requires if r not in REQUIREMENTS]
        if unknown:
            raise ValueError(f"metric {self.name}: unknown requirement {unknown[0]!r}; known: {REQUIREMENTS}")

    @property
    def direction(self) -> str:
        """'higher', 'lower' or 'context': which way is better, as the front ends say it."""
        if self.higher_is_better is None:
            return "context"
        return "higher" if self.higher_is_better else "lower"

    @property
    def title(self) -> str:
        """The short column title, or the name."""
        return self.short or self.name

    @property
    def bounded(self) -> bool:
        """Both ends of the range are known (rates, shares, F1): plots can use a fixed scale."""
        return self.range[1] is not None

    def format(self, value: float | None, n: int | None = None) -> str:
        """One value as the front ends print it; '–' for a missing value.

        With ``n`` (the values the number is a mean of) the decimals follow :func:`decimals_for`
        (at most the spec's own for unbounded metrics such as lengths).
        """
        if value is None:
            return "–"
        if self.fmt.endswith("d"):
            return format(int(value), "d")
        if n is None:
            return format(value, self.fmt)
        return f"{value:.{self.decimals(n)}f}"

    def decimals(self, n: int) -> int:
        """Decimals for a mean of ``n`` values of this metric (see :func:`decimals_for`)."""
        if self.bounded:
            return decimals_for(n, float(self.range[1]) - float(self.range[0]))  # type: ignore[arg-type]
        own = int(self.fmt[1:-1]) if self.fmt[1:-1].isdigit() else 3
        return min(own, decimals_for(n))


def decimals_for(n: int, span: float = 1.0) -> int:
    """Decimals a mean of ``n`` values on a range ``span`` wide can honestly carry.

    Rule: a mean of n values moves in steps of about span / n (a rate exactly 1/n), so digits
    far below that step say nothing. On a unit range: n < 4 -> 1 decimal (halves and thirds),
    n < 100 -> 2 (quarters read exactly: n = 4 shows 0.25, not 0.250), from 100 -> 3.
    """
    if n <= 0 or span <= 0:
        return 1
    steps = n / span
    return 1 if steps < 4 else 2 if steps < 100 else 3


def _sample(name: str, label: str, higher: bool | None, description: str, **extra) -> MetricSpec:
    return MetricSpec(name, label, "sample", higher, description=description, **extra)


def _cell(name: str, short: str, label: str, higher: bool | None, description: str, **extra) -> MetricSpec:
    return MetricSpec(name, label, "cell", higher, description=description, short=short, **extra)


# Declaration order is display order (summary metrics first, in the order front ends show them).
CATALOG: tuple[MetricSpec, ...] = (
    # ---------------------------------------------------------------- per generation
    _sample("refusal", "refusal / don't know", None, "a refusal pattern matches", fmt="d", column_type=int),
    _sample(
        "exact_match",
        "exact match vs reference",
        True,
        "normalised answer equals the reference",
        requires=("reference",),
    ),
    _sample(
        "token_f1",
        "token F1 vs reference",
        True,
        "F1 of normalised token bags (SQuAD)",
        requires=("reference",),
    ),
    _sample(
        "rouge_l",
        "ROUGE-L vs reference",
        True,
        "F1 of the longest common token subsequence",
        requires=("reference",),
    ),
    _sample(
        "number_mismatch",
        "wrong figure vs reference",
        False,
        "the reference states figures and the answer's are not among them",
        fmt="d",
        column_type=int,
        stored=False,
        requires=("reference",),
    ),
    _sample(
        "f1_number_aware",
        "number-aware F1 vs reference",
        True,
        "token F1, 0 when the figures are wrong",
        requires=("reference",),
    ),
    _sample(
        "grounding",
        "grounding in sources",
        True,
        "share of checked terms found in the sources",
        requires=("sources",),
    ),
    _sample(
        "claim_support_min",
        "weakest-claim support",
        True,
        "support of the answer's weakest atomic claim, contradicted = 0: the default hallucination "
        "score (engine/metrics/claims.py)",
        requires=("sources",),
    ),
    _sample(
        "claim_grounding",
        "claim-level grounding",
        True,
        "share of the answer's atomic claims the sources support (engine/metrics/claims.py)",
        requires=("sources",),
    ),
    _sample(
        "conflict",
        "contradicts the sources",
        False,
        "a figure or name the sources state otherwise",
        fmt="d",
        column_type=int,
        requires=("sources",),
    ),
    _sample(
        "uses_entity",
        "uses the entity name",
        None,
        "the masked entity name appears",
        fmt="d",
        column_type=int,
    ),
    _sample("degenerate", "degenerate text", False, "empty, looping or gibberish", fmt="d", column_type=int),
    _sample(
        "n_words", "length (words)", None, "words in the answer", range=(0.0, None), fmt="d", column_type=int
    ),
    # ---------------------------------------------------------------- per cell
    _cell(
        "refusal_rate",
        "refus",
        "refusal / don't-know rate",
        None,
        "share of refusals",
        mean_of="refusal",
        show=Show.SUMMARY,
    ),
    _cell(
        "grounding",
        "ground",
        "grounding in sources",
        True,
        "mean grounding",
        mean_of="grounding",
        show=Show.SUMMARY,
        requires=("sources",),
    ),
    _cell(
        "claim_support_min",
        "weakest",
        "weakest-claim support",
        True,
        "mean support of the weakest atomic claim (contradicted = 0)",
        mean_of="claim_support_min",
        requires=("sources",),
        show=Show.HEATMAP,
        # claims.SUPPORTED_AT: a claim is supported from 0.45 up, and every unsupported or
        # contradicted claim's strength is below it (tests/test_claims.py holds the two equal).
        flags_below=0.45,
    ),
    _cell(
        "claim_grounding",
        "claims",
        "claim-level grounding",
        True,
        "mean share of supported claims",
        mean_of="claim_grounding",
        show=Show.HEATMAP,
        requires=("sources",),
    ),
    _cell(
        "conflict_rate",
        "confl",
        "number/name conflict rate",
        False,
        "share of samples contradicting the sources",
        mean_of="conflict",
        show=Show.SUMMARY,
        requires=("sources",),
    ),
    _cell(
        "semantic_entropy",
        "entropy",
        "semantic entropy (nats)",
        False,
        "entropy of the samples over meaning clusters",
        range=(0.0, None),
        show=Show.SUMMARY,
        requires=("samples>=2",),
    ),
    _cell(
        "majority_share",
        "major",
        "majority-answer share",
        True,
        "size of the largest meaning cluster / N",
        show=Show.SUMMARY,
        requires=("samples>=2",),
    ),
    _cell(
        "token_f1",
        "F1",
        "token F1 vs reference",
        True,
        "mean token F1",
        mean_of="token_f1",
        show=Show.SUMMARY,
        requires=("reference",),
    ),
    _cell(
        "f1_number_aware",
        "F1#",
        "number-aware F1 vs reference",
        True,
        "mean number-aware F1",
        mean_of="f1_number_aware",
        show=Show.HEATMAP,
        requires=("reference",),
    ),
    _cell(
        "exact_match",
        "EM",
        "exact match vs reference",
        True,
        "mean exact match",
        mean_of="exact_match",
        show=Show.HEATMAP,
        requires=("reference",),
    ),
    _cell(
        "rouge_l",
        "RL",
        "ROUGE-L vs reference",
        True,
        "mean ROUGE-L",
        mean_of="rouge_l",
        show=Show.HEATMAP,
        requires=("reference",),
    ),
    _cell(
        "number_mismatch_rate",
        "wrong#",
        "wrong-figure rate vs reference",
        False,
        "share of answers with wrong figures",
        mean_of="number_mismatch",
        show=Show.HEATMAP,
        requires=("reference",),
    ),
    _cell(
        "degenerate_rate",
        "degen",
        "degenerate-text rate",
        False,
        "share of degenerate samples",
        mean_of="degenerate",
        show=Show.TABLE,
    ),
    _cell(
        "uses_entity_rate",
        "entity",
        "uses the entity name",
        None,
        "share of samples naming the entity",
        mean_of="uses_entity",
        show=Show.HEATMAP,
    ),
    _cell(
        "distinct_1", "dist1", "distinct-1", None, "unique unigrams / all unigrams over the cell's samples"
    ),
    _cell(
        "distinct_2",
        "dist2",
        "distinct-2",
        None,
        "unique bigrams / all bigrams over the cell's samples",
        show=Show.HEATMAP,
    ),
    _cell(
        "mean_similarity",
        "sim",
        "mean pairwise similarity",
        None,
        "ROUGE-L F1 or embedding cosine, averaged over pairs",
        range=(-1.0, 1.0),
        show=Show.HEATMAP,
        requires=("samples>=2",),
    ),
    _cell(
        "mean_words",
        "words",
        "mean length (words)",
        None,
        "mean answer length",
        range=(0.0, None),
        fmt=".1f",
        mean_of="n_words",
        show=Show.TABLE,
    ),
    _cell(
        "n_clusters",
        "clust",
        "meaning clusters",
        None,
        "number of meaning clusters",
        range=(1.0, None),
        fmt="d",
        column_type=int,
        requires=("samples>=2",),
    ),
)

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
# Display order: the main hallucination score's group first.
METRIC_GROUPS: tuple[MetricGroup, ...] = (
    HALLUCINATION_GROUP,
    ANSWERS_GROUP,
    AGREEMENT_GROUP,
    REFERENCE_GROUP,
)
_GROUP_BY_NAME = {group.name: group for group in METRIC_GROUPS}


def metric_group(spec: MetricSpec) -> MetricGroup:
    """A metric's group: its declared ``group``, else by what it needs. The sources -> hallucination;
    a reference answer -> reference; the cell's samples together (a cell metric that is no mean of a
    per-sample score, or needs two samples) -> agreement; anything else -> answers. A new metric
    lands in a group without being listed anywhere."""
    if spec.group:
        return _GROUP_BY_NAME[spec.group]
    if "sources" in spec.requires:
        return HALLUCINATION_GROUP
    if "reference" in spec.requires:
        return REFERENCE_GROUP
    if "samples>=2" in spec.requires or (spec.kind == "cell" and not spec.mean_of):
        return AGREEMENT_GROUP
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
