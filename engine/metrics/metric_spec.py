"""What a metric is: :class:`MetricSpec` (label, direction, range, format, where it is shown, what
it requires), :class:`Show`, the :class:`MissingReason` codes, and :func:`decimals_for`.

The catalogue's entries are in engine/metrics/catalog_entries.py; the lookups in
engine/metrics/catalog.py, which re-exports every name here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

MetricKind = Literal["sample", "cell"]

# What a metric may need besides the answer, as lm-evaluation-harness's metric specs say it:
# a reference answer, the source contexts, at least two samples of the cell, or the token log-probs
# the engine's sampler records (imported logs and sweeps with ``token_logprobs = false`` have none).
REQUIREMENTS = ("reference", "sources", "samples>=2", "token_logprobs")


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
NO_TOKEN_LOGPROBS = MissingReason(
    "no_token_logprobs",
    "n/a: no token log-probs (imported log, or sampled with token_logprobs = false)",
    "n/a: no logprobs",
)
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
        NO_TOKEN_LOGPROBS,
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
    range: tuple[float, float | None] = (0.0, 1.0)  # (low, high); high None, low -inf when unbounded
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
        """Both ends of the range are known (rates, shares, F1): plots can use a fixed scale.

        Log-probs (-inf..0) are not: their scale, like a length's, comes from the values."""
        return self.range[1] is not None and math.isfinite(self.range[0])

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
