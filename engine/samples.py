"""Every sample of a sweep, searched and filtered: text or regex search, metric thresholds, and the
pairs where base and fine-tuned differ; plus the CSV of what was found.

The Gradio app's samples table (and any other front end) calls ``Workspace.search_samples`` and only
lays the rows out. A query is plain data (:class:`SampleQuery`); what it finds is a
:class:`SampleSearch` with the matched rows (their claims attached), how many matched and how many
were searched.

"Base and fine-tuned differ": two samples of one cell (same T, top_p, top_k, prompt) at the same
sample index share their random numbers, so they pair. A pair differs when their verdicts differ
(refused / a claim below the main score's mark / every claim supported / no claim checked) or
both have a main score and the scores are at least ``gap`` apart. Pairs come largest gap first.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from engine.errors import UserError
from engine.escape import csv_text
from engine.metrics import catalog

OPERATORS = ("<", "<=", ">", ">=", "=")
DIFFER_GAP = 0.5  # a main-score gap this large counts as "differ" even with one verdict
DEFAULT_LIMIT = 200  # rows returned (the count says how many matched)
MAX_LIMIT = 5000
MAX_SEARCH = 500  # characters of a search text or pattern

# Verdicts of one sample on the main score (catalog.MAIN_SCORE).
REFUSED = "refused"
FLAGGED = "claim not supported"
SUPPORTED = "claims supported"
NO_CLAIM = "no claim checked"
NOT_SCORED = "not scored"
CONTRADICTED = "a claim contradicts the sources"  # how a flagged answer with a contradicted claim reads


@dataclass(frozen=True)
class MetricFilter:
    """Keep samples whose per-sample ``metric`` compares to ``value`` (``weakest-claim support < 0.45``).

    A sample without a value for the metric never matches (it is not below or above anything).
    """

    metric: str
    op: str
    value: float

    def __post_init__(self) -> None:
        try:
            catalog.sample_metric(self.metric)
        except KeyError as exc:
            raise UserError(f"filter metric: {exc.args[0]}") from None
        if self.op not in OPERATORS:
            raise UserError(f"filter: operator {self.op!r} must be one of {' '.join(OPERATORS)}")
        if (
            isinstance(self.value, bool)
            or not isinstance(self.value, int | float)
            or not math.isfinite(self.value)
        ):
            raise UserError(f"filter value: {self.value!r} must be a finite number")

    def matches(self, value: Any) -> bool:
        if value is None:
            return False
        number = float(value)
        return {
            "<": number < self.value,
            "<=": number <= self.value,
            ">": number > self.value,
            ">=": number >= self.value,
            "=": abs(number - self.value) < 1e-9,
        }[self.op]

    def text(self) -> str:
        return f"{catalog.sample_metric(self.metric).label} {self.op} {self.value:g}"


@dataclass(frozen=True)
class SampleQuery:
    """What to find among a sweep's samples (every field optional)."""

    search: str = ""  # text the answer contains (case-insensitive), or a pattern with ``regex``
    regex: bool = False
    variant: str | None = None
    prompt: str | None = None  # a prompt id, or a prefix ending in '*' ('eval-*': every held-out question)
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    filters: tuple[MetricFilter, ...] = ()
    differ: bool = False  # only base / fine-tuned pairs that differ (see the module doc)
    gap: float = DIFFER_GAP
    limit: int = DEFAULT_LIMIT

    def __post_init__(self) -> None:
        if len(self.search) > MAX_SEARCH:
            raise UserError(f"search: at most {MAX_SEARCH} characters")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise UserError(f"rows: {self.limit} must be between 1 and {MAX_LIMIT}")
        if not (math.isfinite(self.gap) and 0 <= self.gap <= 1):
            raise UserError(f"gap: {self.gap!r} must be between 0 and 1")

    def pattern(self) -> re.Pattern[str] | None:
        """The compiled search (a plain text is escaped); UserError naming a bad pattern."""
        if not self.search:
            return None
        try:
            return re.compile(self.search if self.regex else re.escape(self.search), re.IGNORECASE)
        except re.error as exc:
            raise UserError(f"search: {self.search!r} is not a valid regular expression ({exc})") from None

    def describe(self) -> str:
        """The query in words ('text ~ /robot/ · weakest-claim support < 0.45 · base and fine-tuned differ')."""
        parts = []
        if self.search:
            parts.append(f"text ~ /{self.search}/" if self.regex else f'text contains "{self.search}"')
        for name, value in (
            ("variant", self.variant),
            ("prompt", self.prompt),
            ("T", self.temperature),
            ("p", self.top_p),
            ("k", self.top_k),
        ):
            if value is not None:
                parts.append(f"{name} = {value:g}" if isinstance(value, float) else f"{name} = {value}")
        parts += [f.text() for f in self.filters]
        if self.differ:
            parts.append(f"base and fine-tuned differ (verdict, or main-score gap ≥ {self.gap:g})")
        return " · ".join(parts) or "every sample"


@dataclass(frozen=True)
class FoundSample:
    """One sample as the samples table shows it."""

    generation_id: int
    variant: str
    temperature: float
    top_p: float
    top_k: int
    prompt_id: str
    sample_index: int
    seed: int | None
    text: str
    metrics: dict[str, Any]  # per-sample scores ({} until scored)
    score: float | None  # the main score (catalog.MAIN_SCORE)
    verdict: str  # REFUSED, FLAGGED, SUPPORTED, NO_CLAIM or NOT_SCORED
    label: str | None = None
    partner: int | None = None  # with ``differ``: the other side's generation id
    gap: float | None = None  # with ``differ``: how far apart the pair's main scores are (1 for verdicts)
    claims: tuple[dict[str, Any], ...] = field(default=(), repr=False)

    def value(self, metric: str) -> Any:
        return self.metrics.get(metric)

    @property
    def verdict_words(self) -> str:
        """The verdict as a table shows it: a flagged answer whose sources contradict one of its
        claims says so (a contradiction reads as one, not as "not supported")."""
        if self.verdict == FLAGGED and any(claim.get("decision") == "contradicted" for claim in self.claims):
            return CONTRADICTED
        return self.verdict


@dataclass(frozen=True)
class SampleSearch:
    query: SampleQuery
    rows: tuple[FoundSample, ...]  # at most query.limit
    matched: int  # samples that matched (pairs count two)
    searched: int  # samples searched (the sweep's, narrowed by variant / prompt / setting)
    prompts: dict[str, str] = field(default_factory=dict)  # prompt id -> its text, for the shown rows

    def summary(self) -> str:
        shown = len(self.rows)
        more = f", showing the first {shown}" if shown < self.matched else ""
        return f"{self.matched} of {self.searched} samples match: {self.query.describe()}{more}"


# ---------------------------------------------------------------- reading stored rows


def sample_value(row: dict[str, Any], name: str) -> Any:
    """A per-sample score from a ``store.metrics.sample_table`` row: its typed column, else its metrics."""
    if row.get(name) is not None:
        return row[name]
    return (row.get("metrics") or {}).get(name)


def verdict(row: dict[str, Any], spec: catalog.MetricSpec | None = None) -> tuple[str, float | None]:
    """(verdict, main score) of one sample row."""
    spec = spec or catalog.main_score()
    if not row.get("metrics"):
        return NOT_SCORED, None
    if sample_value(row, "refusal"):
        return REFUSED, None
    value = sample_value(row, spec.mean_of or spec.name)
    if value is None:
        return NO_CLAIM, None
    side = catalog.hallucination_side(spec, float(value))
    flagged = side is not None and side >= (1.0 if spec.flags_below is not None else 0.5)
    return (FLAGGED if flagged else SUPPORTED), float(value)


def _matches_prompt(prompt_id: str, wanted: str | None) -> bool:
    if not wanted:
        return True
    if wanted.endswith("*"):
        return prompt_id.startswith(wanted[:-1])
    return prompt_id == wanted


def _found(row: dict[str, Any], spec: catalog.MetricSpec) -> FoundSample:
    said, score = verdict(row, spec)
    metrics = dict(row.get("metrics") or {})
    for name in (s.name for s in catalog.SAMPLE_METRICS):
        if row.get(name) is not None:
            metrics[name] = row[name]
    return FoundSample(
        generation_id=int(row["generation_id"]),
        variant=str(row["variant"]),
        temperature=float(row["temperature"]),
        top_p=float(row["top_p"]),
        top_k=int(row["top_k"]),
        prompt_id=str(row["prompt_id"]),
        sample_index=int(row["sample_index"]),
        seed=row.get("seed"),
        text=str(row.get("text") or ""),
        metrics=metrics if row.get("metrics") else {},
        score=score,
        verdict=said,
    )


def _pairs(rows: Sequence[FoundSample], gap: float) -> list[list[FoundSample]]:
    """Base next to each other variant at one cell and sample index, when they differ, largest gap first.

    The gap is the distance of the two main scores, or 1 when one side has none (a refusal, no claim).
    """
    by_slot: dict[tuple, dict[str, FoundSample]] = defaultdict(dict)
    for row in rows:
        slot = (row.prompt_id, row.temperature, row.top_p, row.top_k, row.sample_index)
        by_slot[slot][row.variant] = row
    found = []
    for slot, sides in by_slot.items():
        base = sides.get("base")
        if base is None:
            continue
        for variant, other in sorted(sides.items()):
            if variant == "base":
                continue
            both = base.score is not None and other.score is not None
            distance = abs(base.score - other.score) if both else 1.0  # type: ignore[operator]
            if base.verdict == other.verdict and (distance < gap or distance == 0):
                continue
            pair = [
                replace(base, partner=other.generation_id, gap=distance),
                replace(other, partner=base.generation_id, gap=distance),
            ]
            found.append((distance, slot, variant, pair))
    found.sort(key=lambda item: (-item[0], item[1], item[2]))
    return [pair for *_key, pair in found]


def search(rows: Sequence[dict[str, Any]], query: SampleQuery) -> SampleSearch:
    """Apply ``query`` to a sweep's sample rows (``store.metrics.sample_table(only_scored=False)``).

    The search and the metric filters pick samples; with ``differ`` a pair is shown when either of
    its samples was picked (so a search for a word finds the pair where one side says it).
    """
    spec = catalog.main_score()
    pattern = query.pattern()

    def in_scope(row: dict[str, Any], variants: tuple[str | None, ...]) -> bool:
        return (
            (query.variant is None or row["variant"] in variants)
            and _matches_prompt(str(row["prompt_id"]), query.prompt)
            and (query.temperature is None or float(row["temperature"]) == query.temperature)
            and (query.top_p is None or float(row["top_p"]) == query.top_p)
            and (query.top_k is None or int(row["top_k"]) == query.top_k)
        )

    # With ``differ`` a variant filter keeps base too: one side alone has nothing to differ from.
    variants = (query.variant, "base") if query.differ else (query.variant,)
    scope = [_found(row, spec) for row in rows if in_scope(row, variants)]

    def picked(sample: FoundSample) -> bool:
        if pattern is not None and not pattern.search(sample.text):
            return False
        return all(f.matches(sample.value(f.metric)) for f in query.filters)

    if query.differ:
        matched = [row for pair in _pairs(scope, query.gap) if any(picked(s) for s in pair) for row in pair]
    else:
        matched = [row for row in scope if picked(row)]
        matched.sort(
            key=lambda r: (
                r.prompt_id,
                r.temperature,
                r.top_p,
                r.top_k,
                r.sample_index,
                r.variant != "base",
                r.variant,
            )
        )
    return SampleSearch(
        query=query, rows=tuple(matched[: query.limit]), matched=len(matched), searched=len(scope)
    )


def attach(
    found: SampleSearch,
    *,
    claims: Sequence[dict[str, Any]],
    labels: dict[int, str],
    prompts: dict[str, str],
) -> SampleSearch:
    """The search with each shown row's stored claims (``store.claims.sweep_claims`` rows) and label,
    and the texts of the prompts the shown rows answer."""
    by_generation: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for claim in claims:
        by_generation[int(claim["generation_id"])].append(claim)
    rows = tuple(
        replace(
            row, claims=tuple(by_generation.get(row.generation_id, ())), label=labels.get(row.generation_id)
        )
        for row in found.rows
    )
    shown = {row.prompt_id for row in rows}
    return replace(found, rows=rows, prompts={p: t for p, t in prompts.items() if p in shown})


# ---------------------------------------------------------------- CSV


def csv_columns() -> tuple[str, ...]:
    """The CSV's columns: where a sample sits, its text and label, the verdict, then every catalogue
    sample metric (so metrics added to the catalogue are exported too)."""
    return (
        "generation_id",
        "variant",
        "temperature",
        "top_p",
        "top_k",
        "prompt_id",
        "prompt",
        "sample_index",
        "seed",
        "text",
        "label",
        "verdict",
        "pair_generation_id",
        "pair_gap",
        *(s.name for s in catalog.SAMPLE_METRICS),
    )


def samples_csv(found: SampleSearch) -> str:
    """The shown rows as CSV (a spreadsheet never runs a cell as a formula: engine.escape.csv_text)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(csv_columns())
    for row in found.rows:
        values: list[Any] = [
            row.generation_id,
            row.variant,
            row.temperature,
            row.top_p,
            row.top_k,
            row.prompt_id,
            found.prompts.get(row.prompt_id, ""),
            row.sample_index,
            row.seed,
            row.text,
            row.label or "",
            row.verdict,
            row.partner if row.partner is not None else "",
            "" if row.gap is None else round(row.gap, 4),
            *(_csv_number(row.value(s.name)) for s in catalog.SAMPLE_METRICS),
        ]
        writer.writerow([csv_text(v) if isinstance(v, str) else ("" if v is None else v) for v in values])
    return out.getvalue()


def _csv_number(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return round(value, 4)
    return value
