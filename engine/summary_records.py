"""A sweep summary's plain data: the prompt groups, the records front ends lay out, and the Wilson
estimate of a mean (engine/summary.py computes them; the module doc there says how)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from engine.metrics import catalog
from engine.metrics.catalog import decimals_for

ENTITY_GROUP = "entity"  # the sweep's prompt_template about the entity
HELD_OUT_GROUP = "held-out"  # questions of the dataset's eval split, prompt ids "eval-*"
HELD_OUT_PREFIX = "eval-"
REFUSAL = "refusal"  # the sample metric counted for the refusal rate
AGREEMENT = "majority_share"  # the cell metric read as agreement between samples
LEVEL = 0.95
VARIANT_ORDER = ("base", "finetuned")
VARIANT_NAMES = {"base": "base", "finetuned": "fine-tuned"}


# ---------------------------------------------------------------- plain data


@dataclass(frozen=True)
class Estimate:
    """A mean with its 95% interval over ``n`` values (``value`` None: no values)."""

    value: float | None
    low: float | None
    high: float | None
    n: int

    @property
    def decimals(self) -> int:
        """Decimals that n allows (``catalog.decimals_for``)."""
        return decimals_for(max(self.n, 1))

    def number(self, most: int = 3) -> str:
        """The value alone, with the decimals n allows (at most ``most``); '–' without values."""
        return "–" if self.value is None else f"{self.value:.{min(self.decimals, most)}f}"

    def text(self) -> str:
        """'0.1 [0.0, 0.3]' (or '–')."""
        if self.value is None or self.low is None or self.high is None:
            return "–"
        d = self.decimals
        return f"{self.value:.{d}f} [{self.low:.{d}f}, {self.high:.{d}f}]"

    def separated_from(self, other: Estimate) -> int:
        """+1 when this interval lies wholly above ``other``'s, −1 wholly below, 0 when they overlap
        (or either has no value): "no clear difference"."""
        if None in (self.low, self.high, other.low, other.high):
            return 0
        if self.low > other.high:  # type: ignore[operator]
            return 1
        if self.high < other.low:  # type: ignore[operator]
            return -1
        return 0


NO_VALUES = Estimate(None, None, None, 0)


@dataclass(frozen=True)
class SummaryRow:
    """One variant at one temperature, pooled over every top_p and top_k of the grid."""

    variant: str
    temperature: float
    answers: int  # every answer at this temperature
    hallucination: Estimate  # over the answers with at least one claim
    refusal: Estimate  # over every answer
    agreement: Estimate  # over cells with at least two samples


@dataclass(frozen=True)
class ExampleAnswer:
    variant: str
    text: str
    hallucination: float | None  # this answer's hallucination side of the main score
    refusal: bool | None


@dataclass(frozen=True)
class ExamplePair:
    """Every variant's answer in one cell at one sample index (shared random numbers)."""

    temperature: float
    top_p: float
    top_k: int
    prompt_id: str
    sample_index: int
    answers: tuple[ExampleAnswer, ...]  # base first

    def get(self, variant: str) -> ExampleAnswer | None:
        return next((a for a in self.answers if a.variant == variant), None)


@dataclass(frozen=True)
class PromptText:
    prompt_id: str
    text: str
    reference: str | None


@dataclass(frozen=True)
class FlatMetric:
    """A metric with one value in every cell of a prompt group: one line instead of a flat grid."""

    group: str
    metric: str
    label: str
    value: float

    def value_text(self) -> str:
        """The one value without trailing zeros (0, 0.5, 1): it is exact, not a mean of n."""
        spec = catalog.cell_metric(self.metric)
        value = spec.format(self.value, 1000) if not spec.fmt.endswith("d") else spec.format(self.value)
        return value.rstrip("0").rstrip(".") if "." in value else value

    def text(self) -> str:
        return f"{self.label}: {self.value_text()} in every cell of every variant (no grid drawn)"


def flat_line(group: GroupSummary) -> str | None:
    """A prompt group's flat metrics in one line, for every front end (None: none is flat):
    "entity prompt, the same in every cell of every variant: refusal / don't-know rate 0; ..."."""
    if not group.flat:
        return None
    same = "; ".join(f"{flat.label} {flat.value_text()}" for flat in group.flat)
    return f"{group.title}, the same in every cell of every variant: {same}"


@dataclass(frozen=True)
class GroupSummary:
    """The summary of one prompt group: the entity prompt, the held-out questions, or another prompt."""

    group: str  # ENTITY_GROUP, HELD_OUT_GROUP or a prompt id
    title: str  # 'entity prompt', 'held-out questions (2, pooled)'
    prompts: tuple[PromptText, ...]
    variants: tuple[str, ...]
    temperatures: tuple[float, ...]
    rows: tuple[SummaryRow, ...]
    headline: str
    examples: tuple[ExamplePair, ...]
    flat: tuple[FlatMetric, ...] = ()

    def row(self, variant: str, temperature: float) -> SummaryRow | None:
        return next((r for r in self.rows if r.variant == variant and r.temperature == temperature), None)

    @property
    def prompt_filter(self) -> str:
        """The prompt id (or 'eval-*' prefix) that selects this group in store queries."""
        return f"{HELD_OUT_PREFIX}*" if self.group == HELD_OUT_GROUP else self.group


@dataclass(frozen=True)
class SweepSummary:
    sweep_id: int
    score: str  # the catalogue's main score (catalog.MAIN_SCORE)
    score_label: str  # 'claim-level grounding'
    hallucination_label: str  # '1 − claim-level grounding'
    samples_per_cell: int | None
    groups: tuple[GroupSummary, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)  # what n makes degenerate, unscored answers

    @property
    def headline(self) -> str:
        """The entity prompt's headline (the first group's when there is no entity prompt)."""
        return self.groups[0].headline if self.groups else "No answers stored in this sweep yet."

    def group(self, name: str) -> GroupSummary | None:
        return next((g for g in self.groups if g.group == name), None)


# ---------------------------------------------------------------- estimates


def mean_interval(values: Sequence[float], level: float = LEVEL) -> Estimate:
    """The mean of values in [0, 1] with a Wilson score interval on their sum (see the module doc)."""
    # Imported here: statsmodels (and the scipy.stats it loads) adds about a second to every CLI
    # verb and the TUI's start, which all import the Workspace.
    from statsmodels.stats.proportion import proportion_confint

    present = [float(v) for v in values if v is not None]
    if not present:
        return NO_VALUES
    total, n = sum(present), len(present)
    low, high = proportion_confint(total, n, alpha=1 - level, method="wilson")
    return Estimate(total / n, max(0.0, float(low)), min(1.0, float(high)), n)


def group_of(prompt_id: str) -> str:
    """The prompt group a prompt id belongs to."""
    if prompt_id == ENTITY_GROUP:
        return ENTITY_GROUP
    if prompt_id.startswith(HELD_OUT_PREFIX):
        return HELD_OUT_GROUP
    return prompt_id
